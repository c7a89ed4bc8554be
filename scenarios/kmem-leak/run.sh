#!/bin/sh
# kmem-leak: seed 004, section "2.问题重现". kubelet 1.9's vendored runc
# switched kernel-memory accounting on for every cgroup it created (write 1,
# then -1, to memory.kmem.limit_in_bytes). On CentOS 7's 3.10 kernel a
# kmem-accounted memcg was never freed after rmdir, so its ID (of 65535)
# leaked. The seed: fill to 65535, free 99, create and delete a pod (3
# memcgs), and the 3 IDs never come back.
#
# Here: fill until refused, free exactly `headroom`, count the free IDs
# (create probes until refused, remove them), churn `pods` pods whose cgroups
# get kmem accounting per REPRO_KUBELET_KMEM_ACCOUNTING, each container
# running a workload that allocates kernel memory, then count again.
# leaked = before - after.
set -u
. "${REPRO_LIB:-../lib}/common.sh"

HEADROOM=${REPRO_PARAM_HEADROOM:-99}
PODS=${REPRO_PARAM_PODS:-20}
CONTAINERS=${REPRO_PARAM_CONTAINERS:-2}
FRESH=${REPRO_PARAM_FRESH_KUBEPODS:-1}
WFILES=${REPRO_PARAM_WORKLOAD_FILES:-100}
SETTLE=${REPRO_PARAM_SETTLE_S:-3}
for v in "$HEADROOM" "$PODS" "$CONTAINERS" "$FRESH" "$WFILES" "$SETTLE"; do
    case $v in '' | *[!0-9]*) die "all params must be non-negative integers, got '$v'" ;; esac
done
[ "$HEADROOM" -ge $((CONTAINERS + 1)) ] || die "headroom ($HEADROOM) must leave room for one pod ($((CONTAINERS + 1)) memcgs)"
KMEM=$REPRO_KUBELET_KMEM_ACCOUNTING

cg_setup v1 memory
BASE=$(cg_base memory)
KUBE=$(kube_qos_dirs "$BASE" | sed -n 1p)
BURST=$(kube_qos_dirs "$BASE" | sed -n 2p)
FILL=$BASE/repro-fill
FILES=/tmp/repro-kmem

remove_all() {
    rm -rf "$FILES"
    if [ -d "$FILL" ]; then
        "$RK" memcg-rmdir --root "$FILL" --prefix fill >/dev/null 2>&1
        "$RK" memcg-rmdir --root "$FILL" --prefix probe >/dev/null 2>&1
        cg_rmtree "$FILL" || log "could not remove $FILL"
    fi
    cg_rmtree "$KUBE" || log "could not remove $KUBE"
}
CLEANUP=remove_all
if [ -d "$FILL" ] || [ -d "$KUBE" ]; then
    log "removing leftovers of an earlier run"
    remove_all
fi

record_context
emit_metric headroom "$HEADROOM" cgroups
emit_metric pods "$PODS" pods
emit_metric memcgs_per_pod $((CONTAINERS + 1)) cgroups
emit_metric fresh_kubepods "$FRESH"

# kmem DIR: switch kernel-memory accounting on like kubelet 1.9's runc, when
# the profile says so. Tallies what the kernel did with the writes.
KMEM_SET=0
KMEM_EFFECT=0
KMEM_FAILED=0
KMEM_FIRST=
kmem() {
    [ "$KMEM" = 1 ] || return 0
    [ "$CG_VERSION" = v1 ] || return 0
    _r=$(kmem_enable "$1")
    KMEM_SET=$((KMEM_SET + 1))
    [ -n "$KMEM_FIRST" ] || KMEM_FIRST=$_r
    case $_r in
    absent | write-failed*)
        KMEM_FAILED=$((KMEM_FAILED + 1))
        log "kmem accounting on $1: $_r"
        ;;
    *) kmem_took_effect "$_r" && KMEM_EFFECT=$((KMEM_EFFECT + 1)) ;;
    esac
    return 0
}

# The node's hierarchy. A fresh kubepods gets kmem accounting (and, with
# use_hierarchy, passes it on to every child).
cg_mkdir "$KUBE" memory
[ "$FRESH" = 1 ] && kmem "$KUBE"
cg_mkdir "$BURST" memory
[ "$FRESH" = 1 ] && kmem "$BURST"
cg_mkdir "$FILL" memory

# free_ids: sets FREE_IDS to how many memory cgroups can be created now
# (creates probes until the kernel refuses, then removes them). Repeats after
# settle_s seconds until two counts agree, since IDs come back asynchronously
# after rmdir. (Not called as $(...): die must end the script itself.)
free_ids() {
    _last=-1
    _n=0
    _try=0
    while [ $_try -lt 6 ]; do
        kit probe memcg-fill --root "$FILL" --prefix probe || die "probe fill failed: $(kit_err probe)"
        [ "$(jget probe stopped_by)" = refused ] || die "probe fill stopped without a refusal"
        _n=$(jget probe created)
        "$RK" memcg-rmdir --root "$FILL" --prefix probe >/dev/null || die "cannot remove the probe cgroups"
        [ "$_n" = "$_last" ] && break
        _last=$_n
        _try=$((_try + 1))
        sleep "$SETTLE"
    done
    FREE_IDS=$_n
}

log "filling memory cgroups until the kernel refuses"
kit fill memcg-fill --root "$FILL" --prefix fill || die "memcg-fill failed: $(kit_err fill)"
[ "$(jget fill stopped_by)" = refused ] || die "the fill stopped without a refusal"
emit_metric filled "$(jget fill created)" cgroups
emit_string fill_errno_name "$(jget fill errno_name)"
log "filled $(jget fill created) ($(jget fill error)); freeing $HEADROOM"
kit free memcg-rmdir --root "$FILL" --prefix fill --count "$HEADROOM" || die "cannot free $HEADROOM cgroups: $(kit_err free)"
sleep "$SETTLE"
free_ids
before=$FREE_IDS
count_before=$(proc_cgroups_count memory)
emit_metric free_before "$before" cgroups
emit_metric proc_cgroups_memory_before "$count_before" cgroups
log "free memory cgroup IDs before the pods: $before"
[ "$before" -ge $((CONTAINERS + 1)) ] || die "only $before free IDs after freeing $HEADROOM: not enough for one pod"

mkdir -p "$FILES" || die "mkdir $FILES failed"
pods_done=0
pod_failure=
i=0
while [ $i -lt "$PODS" ]; do
    i=$((i + 1))
    POD=$(kube_pod_dir "$BURST" "$(new_uuid)")
    kit pod try-mkdir "$POD" || die "try-mkdir: $(kit_err pod)"
    if [ "$(jget pod ok)" != true ]; then
        pod_failure=$(jget pod message)
        break
    fi
    kmem "$POD"
    cg_enable "$POD" memory || die "cannot enable memory in $POD"
    c=0
    while [ $c -lt "$CONTAINERS" ]; do
        c=$((c + 1))
        CTR=$(kube_container_dir "$POD" "$(container_id)")
        kit ctr try-mkdir "$CTR" || die "try-mkdir: $(kit_err ctr)"
        if [ "$(jget ctr ok)" != true ]; then
            pod_failure=$(jget ctr message)
            break
        fi
        kmem "$CTR"
        kit work kmem-workload --cgroup "$CTR" --dir "$FILES/pod$i-$c" --files "$WFILES" ||
            die "kmem workload failed: $(kit_err work)"
    done
    cg_rmtree "$POD" || die "could not remove pod cgroup $POD"
    # The container runtime removes the containers' files after the cgroups.
    rm -rf "$FILES/pod$i-"*
    [ -n "$pod_failure" ] && break
    pods_done=$i
done
emit_metric pods_done "$pods_done" pods
if [ "$CG_VERSION" = v1 ] && [ "$KMEM" = 1 ]; then
    emit_metric kmem_writes "$KMEM_SET" cgroups
    emit_metric kmem_took_effect "$KMEM_EFFECT" cgroups
    emit_metric kmem_write_failures "$KMEM_FAILED" cgroups
    emit_string kmem_limit_readback "$KMEM_FIRST"
fi
[ -n "$pod_failure" ] && emit_string pod_failure "$pod_failure"

sleep "$SETTLE"
free_ids
after=$FREE_IDS
count_after=$(proc_cgroups_count memory)
leaked=$((before - after))
emit_metric free_after "$after" cgroups
emit_metric proc_cgroups_memory_after "$count_after" cgroups
emit_metric leaked "$leaked" cgroups
log "free IDs: $before before, $after after $pods_done pods; leaked $leaked"

if [ "$KMEM" != 1 ]; then
    kmem_note="kmem accounting off (kubelet profile)"
elif [ "$CG_VERSION" = v2 ]; then
    kmem_note="cgroup v2 always accounts kernel memory"
elif [ "$KMEM_SET" -gt 0 ] && [ "$KMEM_EFFECT" -eq 0 ]; then
    kmem_note="kmem accounting writes were no-ops on this kernel (limit read back as $KMEM_FIRST)"
else
    kmem_note="kmem accounting switched on in $KMEM_EFFECT of $KMEM_SET cgroups"
fi
if [ -n "$pod_failure" ]; then
    emit_outcome reproduced "pod $i could not be created after $pods_done pods ($pod_failure); free memory cgroup IDs went from $before to $after; $kmem_note"
elif [ "$leaked" -gt 0 ]; then
    emit_outcome reproduced "$leaked memory cgroup IDs did not come back after $pods_done pods of $((CONTAINERS + 1)) memcgs ($before free before, $after after); $kmem_note"
else
    emit_outcome not-reproduced "all memory cgroup IDs came back after $pods_done pods of $((CONTAINERS + 1)) memcgs ($before free before, $after after); $kmem_note"
fi
