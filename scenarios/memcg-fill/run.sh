#!/bin/sh
# memcg-fill: seed 004, section "2.问题重现" step 1. Memory cgroup IDs are 16
# bits (MEM_CGROUP_ID_MAX = 65535): create memory cgroups in one tight loop
# until the kernel refuses, then try to create a pod cgroup the way the
# kubelet does (kubepods/burstable/pod<uid>/<container-id>, or the systemd
# layout's slices per REPRO_KUBELET_CGROUP_LAYOUT). The seed's
# signature: "mkdir /sys/fs/cgroup/memory/kubepods/burstable/pod...: no space
# left on device".
set -u
. "${REPRO_LIB:-../lib}/common.sh"

LIMIT=${REPRO_PARAM_LIMIT:-}
case $LIMIT in
'' | *[!0-9]*) [ -z "$LIMIT" ] || die "param limit must be a non-negative integer, got '$LIMIT'" ;;
esac
[ "$LIMIT" = 0 ] && LIMIT=

cg_setup v1 memory
BASE=$(cg_base memory)
KUBE=$(kube_qos_dirs "$BASE" | sed -n 1p)
BURST=$(kube_qos_dirs "$BASE" | sed -n 2p)
FILL=$BASE/repro-fill

remove_all() {
    if [ -d "$FILL" ]; then
        "$RK" memcg-rmdir --root "$FILL" --prefix fill >/dev/null || log "memcg-rmdir under $FILL failed"
        cg_rmtree "$FILL"
    fi
    cg_rmtree "$KUBE"
}
CLEANUP=remove_all

# Leftovers of an interrupted run would distort the count.
if [ -d "$FILL" ] || [ -d "$KUBE" ]; then
    log "removing leftovers of an earlier run"
    remove_all
fi

record_context
used_before=$(mem_used_mib)
count_before=$(cg_count memory)

# The node's own hierarchy exists before the pods come and go.
cg_mkdir "$KUBE" memory
cg_mkdir "$BURST" memory
cg_mkdir "$FILL" memory

log "filling memory cgroups under $FILL${LIMIT:+ (limit $LIMIT)}"
kit fill memcg-fill --root "$FILL" --prefix fill --limit "$LIMIT" ||
    die "memcg-fill failed: $(kit_err fill)"
created=$(jget fill created)
stopped_by=$(jget fill stopped_by)
log "created $created memory cgroups, stopped by: $stopped_by $(jget fill error)"

used_after=$(mem_used_mib)
count_after=$(cg_count memory)

emit_metric created "$created" cgroups
emit_string stopped_by "$stopped_by"
if [ "$stopped_by" = refused ]; then
    emit_metric errno "$(jget fill errno)"
    emit_string errno_name "$(jget fill errno_name)"
    emit_string error "$(jget fill error)"
fi
emit_metric elapsed_s "$(jget fill elapsed_s)" s
[ "$created" -gt 0 ] && emit_metric ns_per_mkdir "$(jget fill ns_per_mkdir)" ns
emit_metric mem_used_before_mib "$used_before" MiB
emit_metric mem_used_after_mib "$used_after" MiB
emit_metric mem_used_delta_mib $((used_after - used_before)) MiB
emit_metric memory_hierarchy_cgroups_before "$count_before" cgroups
emit_metric memory_hierarchy_cgroups_after "$count_after" cgroups

# Now a pod arrives: the kubelet creates the pod cgroup, then runc the
# container's cgroup below it.
POD=$(kube_pod_dir "$BURST" "$(new_uuid)")
CTR=$(kube_container_dir "$POD" "$(container_id)")
kit pod try-mkdir "$POD" || die "try-mkdir failed: $(kit_err pod)"
if [ "$(jget pod ok)" = true ]; then
    cg_enable "$POD" memory || die "cannot enable memory in $POD/cgroup.subtree_control"
    kit pod try-mkdir "$CTR" || die "try-mkdir failed: $(kit_err pod)"
fi
pod_ok=$(jget pod ok)
if [ "$pod_ok" = true ]; then
    emit_metric pod_cgroup_created 1
    log "pod cgroup created: $CTR"
    if [ "$stopped_by" = limit ]; then
        emit_outcome not-reproduced "the limit ($LIMIT) stopped the fill at $created memory cgroups before the kernel refused one; the pod cgroup was created"
    else
        emit_outcome not-reproduced "the kernel refused memory cgroup $((created + 1)) ($(jget fill error)), yet the pod cgroup was created afterwards"
    fi
    exit 0
fi

signature=$(jget pod message)
emit_metric pod_cgroup_created 0
emit_string pod_cgroup_error "$signature"
log "pod cgroup failed: $signature"
if [ "$(jget pod refused)" != true ]; then
    die "pod cgroup creation failed for another reason than exhaustion: $signature"
fi
emit_outcome reproduced "after $created new memory cgroups the kernel refused more ($(jget fill errno_name)); the kubelet-style pod cgroup cannot be created: $signature"
