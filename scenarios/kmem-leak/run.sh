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
#
# runtime=runc (root-filesystem guests, e.g. --rootfs bullseye): the
# containers are real ones started by the release's runc with a memory
# limit, in the pod cgroup of the cell's driver. Bullseye's runc
# 1.0.0~rc93 still enables kmem accounting on every memory cgroup it
# creates (FACTS.md); a kprobe on the kernel's memcg write handler counts
# the "1" and "-1" that runc itself writes, so the result says whether
# runc really did it.
#
# kubelet_mode=real (default when the cell's kubelet is a real binary, e.g.
# --kubelet 1.20 --rootfs bullseye): the pods are static pods of that
# kubelet, run by containerd's CRI plugin and runc; the kubelet creates the
# pod cgroups (its vendored libcontainer switches kmem accounting on), the
# runtime the sandbox's and the container's. The kprobe counts the kmem
# writes of both. Each pod is 3 memcgs: the pod's, the sandbox's (pause)
# and its one container's, as in the seed.
set -u
. "${REPRO_LIB:-../lib}/common.sh"

HEADROOM=${REPRO_PARAM_HEADROOM:-99}
PODS=${REPRO_PARAM_PODS:-20}
CONTAINERS=${REPRO_PARAM_CONTAINERS:-2}
FRESH=${REPRO_PARAM_FRESH_KUBEPODS:-1}
WFILES=${REPRO_PARAM_WORKLOAD_FILES:-100}
SETTLE=${REPRO_PARAM_SETTLE_S:-3}
RUNTIME=${REPRO_PARAM_RUNTIME:-cgroups}
MEMLIMIT=${REPRO_PARAM_MEMORY_LIMIT_MIB:-64}
KMODE=${REPRO_PARAM_KUBELET_MODE:-auto}
DOFILL=${REPRO_PARAM_FILL:-1}
case $RUNTIME in cgroups | runc) ;; *) die "param runtime must be cgroups or runc, got '$RUNTIME'" ;; esac
case $KMODE in
auto) if [ "${REPRO_KUBELET_REAL:-0}" = 1 ]; then KMODE=real; else KMODE=profile; fi ;;
real | profile) ;;
*) die "param kubelet_mode must be auto, real or profile, got '$KMODE'" ;;
esac
[ "$KMODE" = real ] && RUNTIME=kubelet
for v in "$HEADROOM" "$PODS" "$CONTAINERS" "$FRESH" "$WFILES" "$SETTLE" "$MEMLIMIT"; do
    case $v in '' | *[!0-9]*) die "all params must be non-negative integers, got '$v'" ;; esac
done
[ "$HEADROOM" -ge $((CONTAINERS + 1)) ] || die "headroom ($HEADROOM) must leave room for one pod ($((CONTAINERS + 1)) memcgs)"
KMEM=$REPRO_KUBELET_KMEM_ACCOUNTING
if [ "$RUNTIME" != cgroups ]; then
    . "$REPRO_LIB/runtime.sh"
    rt_require
    # The kubelet's own cgroups follow the driver the runtime uses.
    REPRO_KUBELET_CGROUP_LAYOUT=$REPRO_DRIVER
fi
if [ "$RUNTIME" = kubelet ]; then
    . "$REPRO_LIB/kubelet.sh"
    kubelet_require
    # The kubelet and the runtime switch kmem accounting on themselves.
    KMEM=0
    CONTAINERS=2
fi

cg_setup v1 memory
BASE=$(cg_base memory)
KUBE=$(kube_qos_dirs "$BASE" | sed -n 1p)
BURST=$(kube_qos_dirs "$BASE" | sed -n 2p)
FILL=$BASE/repro-fill
FILES=/tmp/repro-kmem

remove_all() {
    [ "$RUNTIME" = kubelet ] && kubelet_cleanup
    kprobe_stop
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

# --- runc's own kmem writes, seen by a kprobe -------------------------------
TRACE=/sys/kernel/tracing
KPROBE=
kprobe_start() {
    [ -d "$TRACE/events" ] || mount -t tracefs nodev "$TRACE" 2>/dev/null
    [ -w "$TRACE/kprobe_events" ] || return 1
    # mem_cgroup_write handles writes to the memory.*limit_in_bytes files;
    # its second argument (%si on x86-64) is the text written.
    echo 'p:repro/memcgw mem_cgroup_write buf=+0(%si):string' >>"$TRACE/kprobe_events" 2>/dev/null || return 1
    echo >"$TRACE/trace"
    echo 1 >"$TRACE/events/repro/memcgw/enable" || return 1
    KPROBE=1
}
kprobe_stop() {
    [ -n "$KPROBE" ] || return 0
    echo 0 >"$TRACE/events/repro/memcgw/enable"
    cp "$TRACE/trace" "$REPRO_OUT/memcg-writes.trace" 2>/dev/null
    echo '-:repro/memcgw' >>"$TRACE/kprobe_events"
    KPROBE=
}
# runc_kmem_writes [COMM]: "ONES MINUS_ONES" written by processes whose
# name contains COMM (default runc) so far.
runc_kmem_writes() {
    awk -v comm="${1:-runc}" '/memcgw:/ && index($1, comm) {
        if ($0 ~ /buf="1"/) one++
        else if ($0 ~ /buf="-1"/) minus++
    } END { printf "%d %d\n", one, minus }' "$TRACE/trace"
}

# run_container PARENT N: one real container through runc, with a memory
# limit (runc <= rc93 enables kmem accounting only on memory cgroups it
# creates for a container with memory settings), creating N files on its
# tmpfs. Sets RUNC_FAILURE when runc fails.
RUNC_FAILURE=
RUNC_DONE=0
run_container() {
    _cid=$(container_id)
    _cgp=$(rt_cgroups_path "$1" "$_cid")
    RT_MEM_LIMIT=$((MEMLIMIT * 1024 * 1024)) rt_bundle "$WORK/c" "$_cgp" "" \
        sh -c "i=0; while [ \$i -lt $2 ]; do echo x >/dev/shm/f\$i; i=\$((i + 1)); done"
    if ! rt_runc run --bundle "$WORK/c" "$_cid" </dev/null >/dev/null 2>"$WORK/runc.err"; then
        RUNC_FAILURE=$(grep -v '^$' "$WORK/runc.err" | tail -n 1)
        rt_runc delete -f "$_cid" >/dev/null 2>&1
    else
        RUNC_DONE=$((RUNC_DONE + 1))
    fi
    rm -rf "$WORK/c"
}

# remove_pod POD_UID POD_DIR: what the kubelet does after the pod: the
# cgroupfs driver removes the pod's folders in every hierarchy, the systemd
# driver stops the pod's slice.
remove_pod() {
    if [ "$RUNTIME" = runc ] && [ "$REPRO_DRIVER" = systemd ]; then
        systemctl stop "$(rt_pod_parent burstable "$1")" 2>/dev/null
        return 0
    fi
    if [ "$RUNTIME" = runc ] && [ "$CG_VERSION" = v1 ]; then
        _rel=${2#"$BASE"}
        for _h in /sys/fs/cgroup/*/; do
            [ "$_h" = "$BASE/" ] && continue
            cg_rmtree "$_h${_rel#/}" >/dev/null 2>&1
        done
    fi
    cg_rmtree "$2"
}

record_context
emit_string runtime "$RUNTIME"
emit_string kubelet_mode "$KMODE"
emit_metric headroom "$HEADROOM" cgroups
emit_metric pods "$PODS" pods
emit_metric memcgs_per_pod $((CONTAINERS + 1)) cgroups
emit_metric fresh_kubepods "$FRESH"
emit_metric fill "$DOFILL"

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
# With fill=0 there is nothing to probe against: FREE_IDS is then 65535
# minus the memory cgroups the hierarchy still holds, dying ones included
# (a memcg the kernel never frees keeps counting), counted until two
# counts agree.
free_ids() {
    _last=-1
    _n=0
    _try=0
    while [ $_try -lt 6 ]; do
        if [ "$DOFILL" = 0 ]; then
            _n=$((65535 - $(cg_count memory)))
        else
            kit probe memcg-fill --root "$FILL" --prefix probe || die "probe fill failed: $(kit_err probe)"
            [ "$(jget probe stopped_by)" = refused ] || die "probe fill stopped without a refusal"
            _n=$(jget probe created)
            "$RK" memcg-rmdir --root "$FILL" --prefix probe >/dev/null || die "cannot remove the probe cgroups"
        fi
        [ "$_n" = "$_last" ] && break
        _last=$_n
        _try=$((_try + 1))
        sleep "$SETTLE"
    done
    FREE_IDS=$_n
}

if [ "$RUNTIME" = kubelet ]; then
    # Before the fill: started on a node whose memory hierarchy holds
    # 65,000 cgroups, kubelet 1.20's cAdvisor walks and watches every one
    # and the kubelet syncs no pod for minutes (measured: 5 min under
    # TCG). Started first, it makes its QoS cgroups, then sees the fill
    # arrive (which makes the fill slower).
    kubelet_start
    emit_metric kubelet_ready_s "$KL_READY_S" s
fi
if [ "$DOFILL" = 1 ]; then
    log "filling memory cgroups until the kernel refuses"
    kit fill memcg-fill --root "$FILL" --prefix fill || die "memcg-fill failed: $(kit_err fill)"
    [ "$(jget fill stopped_by)" = refused ] || die "the fill stopped without a refusal"
    emit_metric filled "$(jget fill created)" cgroups
    emit_string fill_errno_name "$(jget fill errno_name)"
    log "filled $(jget fill created) ($(jget fill error)); freeing $HEADROOM"
    kit free memcg-rmdir --root "$FILL" --prefix fill --count "$HEADROOM" || die "cannot free $HEADROOM cgroups: $(kit_err free)"
else
    log "no fill: counting the memory hierarchy's cgroups instead of probing free IDs"
fi
sleep "$SETTLE"
free_ids
before=$FREE_IDS
count_before=$(cg_count memory)
emit_metric free_before "$before" cgroups
emit_metric memory_hierarchy_cgroups_before "$count_before" cgroups
log "free memory cgroup IDs before the pods: $before"
[ "$before" -ge $((CONTAINERS + 1)) ] || die "only $before free IDs after freeing $HEADROOM: not enough for one pod"

mkdir -p "$FILES" || die "mkdir $FILES failed"
if [ "$RUNTIME" != cgroups ]; then
    if kprobe_start; then
        emit_metric kprobe 1
    else
        emit_metric kprobe 0
        log "no kprobe on mem_cgroup_write: runc's kmem writes cannot be seen on this kernel"
    fi
fi
pods_done=0
pod_failure=
i=0
while [ $i -lt "$PODS" ]; do
    i=$((i + 1))
    if [ "$RUNTIME" = kubelet ]; then
        # One container writing workload_files files to its /dev/shm,
        # then waiting to be stopped; a memory limit makes the pod
        # Burstable and gives runc memory settings (its kmem write).
        kubelet_pod "kmem-$i" "$BUSYBOX_IMAGE" "i=0; while [ \$i -lt $WFILES ]; do echo x >/dev/shm/f\$i; i=\$((i + 1)); done; exec sleep 3600" "${MEMLIMIT}Mi"
        if ! kubelet_wait_running "kmem-$i" 300; then
            why=$(kubelet_pod_field "kmem-$i" '.status.containerStatuses[0].state.waiting.message // .status.message // .status.phase')
            # A pod whose cgroup or sandbox could not be made says why only
            # in the kubelet's log.
            err=$(kubelet_pod_errors "kmem-$i" | tail -n 1)
            [ -n "$err" ] && why="$why; kubelet: $err"
            kubelet_remove_pod "kmem-$i"
            kubelet_wait_gone "kmem-$i" 120
            # Only a cgroup the kernel refused (ENOSPC: no memcg ID left)
            # is the seed's failure; anything else is the setup's.
            case $why in
            *"no space left on device"*) pod_failure="the kubelet could not start pod kmem-$i: $why" ;;
            *) die "the kubelet did not start pod kmem-$i within 300 s: ${why:-no status} (see kubelet.log)" ;;
            esac
            break
        fi
        log "pod kmem-$i running (uid $(kubelet_pod_field "kmem-$i" .metadata.uid))"
        kubelet_remove_pod "kmem-$i"
        kubelet_wait_gone "kmem-$i" 300 || die "the kubelet did not remove pod kmem-$i within 300 s"
        pods_done=$i
        continue
    fi
    UID_=$(new_uuid)
    POD=$(kube_pod_dir "$BURST" "$UID_")
    # With runc and the systemd driver, systemd creates the pod slice when
    # runc asks for the first scope; otherwise the kubelet makes the pod
    # cgroup (with kmem accounting per its profile).
    if [ "$RUNTIME" != runc ] || [ "$REPRO_DRIVER" != systemd ]; then
        kit pod try-mkdir "$POD" || die "try-mkdir: $(kit_err pod)"
        if [ "$(jget pod ok)" != true ]; then
            pod_failure=$(jget pod message)
            break
        fi
        kmem "$POD"
        cg_enable "$POD" memory || die "cannot enable memory in $POD"
    fi
    if [ "$RUNTIME" = runc ]; then
        c=0
        while [ $c -lt "$CONTAINERS" ]; do
            c=$((c + 1))
            run_container "$(rt_pod_parent burstable "$UID_")" "$WFILES"
            if [ -n "$RUNC_FAILURE" ]; then
                pod_failure="runc: $RUNC_FAILURE"
                break
            fi
        done
        remove_pod "$UID_" "$POD" || die "could not remove pod cgroup $POD"
        [ -n "$pod_failure" ] && break
        pods_done=$i
        continue
    fi
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
RUNC_NOTE=
if [ "$RUNTIME" = kubelet ] && [ -n "$KPROBE" ]; then
    set -- $(runc_kmem_writes kubelet)
    emit_metric kubelet_kmem_enable_writes "$1" writes
    emit_metric kubelet_kmem_reset_writes "$2" writes
    kl_ones=$1
    set -- $(runc_kmem_writes runc)
    emit_metric runc_kmem_enable_writes "$1" writes
    emit_metric runc_kmem_reset_writes "$2" writes
    kprobe_stop
    RUNC_NOTE="; real kubelet $KUBELET_VERSION: $kl_ones kmem-accounting writes of 1 by the kubelet and $1 by runc $(dpkg-query -W -f '${Version}' runc) to memory.kmem.limit_in_bytes (kprobe)"
fi
if [ "$RUNTIME" = runc ]; then
    emit_metric runc_containers "$RUNC_DONE" containers
    if [ -n "$KPROBE" ]; then
        set -- $(runc_kmem_writes)
        emit_metric runc_kmem_enable_writes "$1" writes
        emit_metric runc_kmem_reset_writes "$2" writes
        kprobe_stop
        if [ "$1" -gt 0 ]; then
            RUNC_NOTE="; runc $(dpkg-query -W -f '${Version}' runc) switched kmem accounting on itself ($1 writes of 1 and $2 of -1 to memory.kmem.limit_in_bytes, seen by a kprobe)"
        else
            RUNC_NOTE="; runc $(dpkg-query -W -f '${Version}' runc) wrote no kmem limit (kprobe on mem_cgroup_write)"
        fi
    fi
fi

if [ "$DOFILL" = 0 ]; then
    # Without the probe, a memcg that is only dying (charged page cache,
    # its ID already free since 4.7) would count as leaked: reclaim first,
    # so that what stays is what the kernel never frees.
    sync
    echo 3 >/proc/sys/vm/drop_caches
fi
sleep "$SETTLE"
free_ids
after=$FREE_IDS
count_after=$(cg_count memory)
leaked=$((before - after))
emit_metric free_after "$after" cgroups
emit_metric memory_hierarchy_cgroups_after "$count_after" cgroups
emit_metric leaked "$leaked" cgroups
log "free IDs: $before before, $after after $pods_done pods; leaked $leaked"

if [ "$RUNTIME" = kubelet ]; then
    kmem_note="pods run by the real kubelet $KUBELET_VERSION through containerd"
elif [ "$KMEM" != 1 ]; then
    kmem_note="kmem accounting off (kubelet profile)"
elif [ "$CG_VERSION" = v2 ]; then
    kmem_note="cgroup v2 always accounts kernel memory"
elif [ "$KMEM_SET" -gt 0 ] && [ "$KMEM_EFFECT" -eq 0 ]; then
    kmem_note="kmem accounting writes were no-ops on this kernel (limit read back as $KMEM_FIRST)"
else
    kmem_note="kmem accounting switched on in $KMEM_EFFECT of $KMEM_SET cgroups"
fi
if [ -n "$pod_failure" ]; then
    emit_outcome reproduced "pod $i could not be created after $pods_done pods ($pod_failure); free memory cgroup IDs went from $before to $after; $kmem_note$RUNC_NOTE"
elif [ "$leaked" -gt 0 ] && [ "$DOFILL" = 0 ]; then
    emit_outcome reproduced "$leaked memory cgroups of $pods_done removed pods of $((CONTAINERS + 1)) memcgs were never freed, even after dropping caches ($count_before cgroups before, $count_after after; no fill, IDs not probed); $kmem_note$RUNC_NOTE"
elif [ "$DOFILL" = 0 ]; then
    emit_outcome not-reproduced "the memory cgroups of $pods_done removed pods of $((CONTAINERS + 1)) memcgs were all freed after dropping caches ($count_before cgroups before, $count_after after; no fill, IDs not probed); $kmem_note$RUNC_NOTE"
elif [ "$leaked" -gt 0 ]; then
    emit_outcome reproduced "$leaked memory cgroup IDs did not come back after $pods_done pods of $((CONTAINERS + 1)) memcgs ($before free before, $after after); $kmem_note$RUNC_NOTE"
else
    emit_outcome not-reproduced "all memory cgroup IDs came back after $pods_done pods of $((CONTAINERS + 1)) memcgs ($before free before, $after after); $kmem_note$RUNC_NOTE"
fi
