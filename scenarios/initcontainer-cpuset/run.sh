#!/bin/sh
# initcontainer-cpuset: seed 003, problems 1 and 3. A node with the static
# CPU manager (and the NUMA topology manager) does not pin a Deployment's app
# container: (1) kubelet's cpu_manager ReconcileState fails to update the
# container's cpuset: `runc update` → "unable to freeze"; (3) the pod has an
# init container whose resources differ from the app container's (the seed's
# init container declares none), and the pinning "does not take effect".
#
# Here, on a root-filesystem guest (systemd as PID 1, the release's runc):
#  1. model the static CPU manager for the kubelet profile (cpuset.sh): CPU 0
#     reserved, the init container allocated first, its CPUs offered to the
#     app container only from 1.19 (REPRO_KUBELET_CPU_REUSE_INIT); an init
#     container without resources makes the pod Burstable (no pinning at all).
#     That gives the set the pod's author expects for the app container
#     (expected_cpus) and the one the kubelet applies (applied_cpus).
#  2. run the init container with runc in the pod's cgroup with its cpuset,
#     to completion; then the app container (detached) with the applied
#     cpuset, running `forkers` loops that fork+exec without pause (the case
#     where freezing a cgroup is slow: new tasks keep appearing).
#  3. `updates` times `runc update --cpuset-cpus <applied>` like the CPU
#     manager's reconcile loop, each timed; with the systemd driver runc
#     freezes the container around the systemd property change, and reports
#     "unable to freeze" when the freezer stays FREEZING.
#  4. read the app process's real affinity (Cpus_allowed_list of its
#     /proc/<pid>/status, and of every task of its cgroup).
# reproduced: an update failed (freeze_failures counts "freeze" in the
# error), or the real affinity differs from the expected exclusive set.
set -u
. "${REPRO_LIB:-../lib}/common.sh"
. "$REPRO_LIB/runtime.sh"
. "$REPRO_SCENARIO_DIR/cpuset.sh"

INIT_CPUS=${REPRO_PARAM_INIT_CPUS:-1}
APP_CPUS=${REPRO_PARAM_APP_CPUS:-2}
RESERVED=${REPRO_PARAM_RESERVED_CPUS:-1}
FORKERS=${REPRO_PARAM_FORKERS:-4}
UPDATES=${REPRO_PARAM_UPDATES:-3}
WARMUP=${REPRO_PARAM_WARMUP_S:-3}
RUNC_TIMEOUT=${REPRO_PARAM_RUNC_TIMEOUT_S:-120}
STUCK=${REPRO_PARAM_STUCK_TASKS:-0}
for v in "$STUCK" "$APP_CPUS" "$RESERVED" "$FORKERS" "$UPDATES" "$WARMUP" "$RUNC_TIMEOUT"; do
    case $v in '' | *[!0-9]*) die "numeric params must be non-negative integers, got '$v'" ;; esac
done
case $INIT_CPUS in
none) ;;
'' | *[!0-9]* | 0) die "init_cpus must be a positive integer or 'none', got '$INIT_CPUS'" ;;
esac
[ "$APP_CPUS" -ge 1 ] || die "app_cpus must be at least 1"
[ "$RUNC_TIMEOUT" -ge 1 ] || die "runc_timeout_s must be at least 1"
# Without --kubelet: a current kubelet (init CPUs reused, as since 1.19).
REUSE=${REPRO_KUBELET_CPU_REUSE_INIT:-1}
SIDECARS_EXCLUDED=${REPRO_KUBELET_CPU_SIDECARS_EXCLUDED:-0}

rt_require
record_context
emit_string cgroup_driver "$REPRO_DRIVER"
MODE=$(rt_cgroup_mode)
case $MODE in
v2) [ "${REPRO_CGROUP:-v2}" = v2 ] || die "asked for cgroup ${REPRO_CGROUP:-}, systemd mounted v2" ;;
*) [ "${REPRO_CGROUP:-v1}" = v1 ] || die "asked for cgroup ${REPRO_CGROUP:-}, systemd mounted $MODE" ;;
esac
command -v runc >/dev/null || skip "runc is not installed"
command -v jq >/dev/null || skip "jq is not installed"
if [ "$MODE" = v2 ]; then
    grep -qw cpuset /sys/fs/cgroup/cgroup.controllers || skip "no cpuset controller in cgroup v2's cgroup.controllers"
else
    [ -d /sys/fs/cgroup/cpuset ] || skip "no cgroup v1 cpuset hierarchy"
    [ -d /sys/fs/cgroup/freezer ] || skip "no cgroup v1 freezer hierarchy"
fi

NCPUS=$(getconf _NPROCESSORS_ONLN)
emit_metric node_cpus "$NCPUS" cpus
emit_metric reserved_cpus "$RESERVED" cpus
emit_string init_cpus_request "$INIT_CPUS"
emit_metric app_cpus_request "$APP_CPUS" cpus
emit_metric cpu_reuse_init "$REUSE"
emit_metric cpu_sidecars_excluded "$SIDECARS_EXCLUDED"
emit_metric forkers "$FORKERS"
emit_metric updates "$UPDATES"
emit_metric stuck_tasks "$STUCK"
[ "$RESERVED" -lt "$NCPUS" ] || skip "the guest has $NCPUS CPUs, all reserved ($RESERVED): give it more (--vcpus)"

cpu_model "$NCPUS" "$RESERVED" "$INIT_CPUS" "$APP_CPUS" "$REUSE"
# The set the pod's author expects: the static policy's exclusive
# assignment when the pod is Guaranteed; for a Burstable pod the exclusive
# set it would have got (the lowest assignable CPUs).
if [ "$M_QOS" = guaranteed ]; then
    EXPECTED=$M_APP_SET
else
    EXPECTED=$M_APP_EXPECTED
fi
APPLIED=$M_APP_SET
log "model: qos=$M_QOS init=$M_INIT_SET app=$M_APP_SET shared=$M_SHARED admit=$M_ADMIT: $M_NOTE"
emit_string pod_qos "$M_QOS"
emit_string init_cpus_set "$M_INIT_SET"
emit_string expected_cpus "$EXPECTED"
emit_string applied_cpus "$APPLIED"
emit_string shared_pool "$M_SHARED"
emit_metric admitted "$M_ADMIT"
emit_log "CPU manager model: $M_NOTE"
if [ "$M_ADMIT" != 1 ]; then
    # The kubelet rejects the pod (UnexpectedAdmissionError): its app
    # container never runs, pinned or not. Nothing to run with runc.
    if [ "$INIT_CPUS" -gt $((NCPUS - RESERVED)) ] || [ "$APP_CPUS" -gt $((NCPUS - RESERVED)) ]; then
        skip "the pod cannot fit on $NCPUS CPUs with $RESERVED reserved even with reuse: give the guest more vCPUs (--vcpus) or ask for fewer CPUs"
    fi
    emit_outcome reproduced "CPU manager model (no container started): $M_NOTE"
    exit 0
fi

# --- runc --------------------------------------------------------------------
if [ "$REPRO_DRIVER" = systemd ]; then
    RUNC="runc --systemd-cgroup"
else
    RUNC=runc
fi
emit_string runc_path "$(command -v runc)"
emit_string runc_version_full "$(runc --version 2>/dev/null | sed -n 1p)"

POD_UID=$(new_uuid)
POD_PARENT=$(rt_pod_parent "$M_QOS" "$POD_UID")
INIT_ID=init-$(container_id | cut -c1-16)
APP_ID=app-$(container_id | cut -c1-16)
INIT_CGP=$(rt_cgroups_path "$POD_PARENT" "$INIT_ID")
APP_CGP=$(rt_cgroups_path "$POD_PARENT" "$APP_ID")
if [ "$MODE" = v2 ]; then
    APP_CG=$(rt_container_cgroup "$APP_CGP")
    APP_CPUSET_CG=$APP_CG
    APP_FREEZER_CG=$APP_CG
else
    APP_CPUSET_CG=$(rt_container_cgroup "$APP_CGP" cpuset)
    APP_FREEZER_CG=$(rt_container_cgroup "$APP_CGP" freezer)
fi
emit_string app_cgroups_path "$APP_CGP"

STUCK_PIDS=
FUSE_DIR=/run/repro-icc-fuse
cleanup() {
    for _p in $STUCK_PIDS; do kill -9 "$_p" 2>/dev/null; done
    if [ -n "$STUCK_PIDS" ] || [ -d "$FUSE_DIR" ]; then
        umount -l "$FUSE_DIR" 2>/dev/null
        exec 3>&-
    fi
    # A freeze that never completed leaves the cgroup FREEZING: thaw it.
    [ -n "${APP_FREEZER_CG:-}" ] && [ -e "$APP_FREEZER_CG/freezer.state" ] &&
        echo THAWED >"$APP_FREEZER_CG/freezer.state" 2>/dev/null
    [ -n "${APP_FREEZER_CG:-}" ] && [ -e "$APP_FREEZER_CG/cgroup.freeze" ] &&
        echo 0 >"$APP_FREEZER_CG/cgroup.freeze" 2>/dev/null
    for _id in "$APP_ID" "$INIT_ID"; do
        $RUNC state "$_id" >/dev/null 2>&1 || continue
        # A container left frozen by a failed update cannot be killed.
        timeout 30 $RUNC resume "$_id" >/dev/null 2>&1
        timeout 60 $RUNC kill "$_id" KILL >/dev/null 2>&1
        timeout 60 $RUNC delete -f "$_id" >/dev/null 2>&1 || log "runc delete $_id failed"
    done
    if [ "$REPRO_DRIVER" = systemd ]; then
        systemctl stop "$POD_PARENT" >/dev/null 2>&1
    else
        for _d in /sys/fs/cgroup/*"$POD_PARENT" /sys/fs/cgroup"$POD_PARENT"; do
            [ -d "$_d" ] && rmdir "$_d" 2>/dev/null
        done
    fi
    return 0
}
CLEANUP=cleanup

# now_ms: monotonic-enough wall clock in milliseconds.
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# --- the init container: runs to completion on its exclusive CPUs ----------
INIT_CPUSET=$M_INIT_SET
[ "$M_QOS" = guaranteed ] || INIT_CPUSET=$M_SHARED
rt_bundle "$WORK/init" "$INIT_CGP" "$INIT_CPUSET" /bin/sh -c 'grep Cpus_allowed_list /proc/self/status'
log "init container $INIT_ID on $INIT_CPUSET"
t0=$(now_ms)
(cd "$WORK/init" && timeout "$RUNC_TIMEOUT" $RUNC run "$INIT_ID" >"$WORK/init.out" 2>"$WORK/init.err" </dev/null)
rc=$?
t1=$(now_ms)
emit_metric init_run_ms $((t1 - t0)) ms
[ $rc = 0 ] || die "runc run of the init container failed ($rc): $(tail -n 3 "$WORK/init.err" | tr '\n' ' ')"
INIT_REAL=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "$WORK/init.out" | tr -d '\r')
emit_string init_real_cpus "$INIT_REAL"
log "init container ran in $((t1 - t0)) ms, affinity $INIT_REAL"
# `runc run` (not detached) deletes the container when its process exits.
if $RUNC state "$INIT_ID" >/dev/null 2>&1; then
    timeout 60 $RUNC delete "$INIT_ID" >/dev/null 2>&1 || log "runc delete $INIT_ID failed"
fi

# --- the app container: keeps forking ---------------------------------------
# Each forker is a subshell that fork+execs busybox `true` without pause.
WORKLOAD="i=0; while [ \$i -lt $FORKERS ]; do (while :; do /bin/true; done) & i=\$((i+1)); done; wait"
rt_bundle "$WORK/app" "$APP_CGP" "$APPLIED" /bin/sh -c "$WORKLOAD"
log "app container $APP_ID on $APPLIED with $FORKERS forkers"
t0=$(now_ms)
(cd "$WORK/app" && timeout "$RUNC_TIMEOUT" $RUNC run -d "$APP_ID" >"$WORK/app.out" 2>"$WORK/app.err" </dev/null)
rc=$?
t1=$(now_ms)
emit_metric app_run_ms $((t1 - t0)) ms
[ $rc = 0 ] || die "runc run -d of the app container failed ($rc): $(tail -n 3 "$WORK/app.err" | tr '\n' ' ')"
APP_PID=$($RUNC state "$APP_ID" | jq -r .pid)
case $APP_PID in '' | *[!0-9]*) die "no pid for $APP_ID from runc state" ;; esac
sleep "$WARMUP"
[ -d "$APP_CPUSET_CG" ] || die "the app container's cgroup $APP_CPUSET_CG does not exist"
tasks_before=$(wc -l <"$APP_CPUSET_CG/cgroup.procs")
emit_metric app_tasks "$tasks_before" tasks
log "app pid $APP_PID, $tasks_before tasks in $APP_CPUSET_CG"

# --- optional: tasks stuck in an uninterruptible wait ------------------------
# runc issue 3803: a container with a task in D state cannot be frozen. A
# FUSE mount whose daemon (this script, holding /dev/fuse as fd 3) never
# answers FUSE_INIT: every lookup on it waits killably (D state, which the
# freezer cannot wake), like a process stuck on a hung NFS or FUSE mount.
# The stuck tasks are started here and moved into the app container's
# cgroups (every v1 hierarchy, or the v2 cgroup).
if [ "$STUCK" -gt 0 ]; then
    [ -c /dev/fuse ] || modprobe fuse 2>"$WORK/modprobe.err"
    [ -c /dev/fuse ] || skip "stuck_tasks needs /dev/fuse (FUSE): modprobe fuse: $(tail -n 1 "$WORK/modprobe.err" 2>/dev/null)"
    mkdir -p "$FUSE_DIR"
    exec 3<>/dev/fuse || skip "cannot open /dev/fuse"
    /bin/busybox mount -t fuse -o fd=3,rootmode=40000,user_id=0,group_id=0 repro-stuck "$FUSE_DIR" 2>"$WORK/fuse.err" ||
        skip "cannot mount a FUSE file system: $(cat "$WORK/fuse.err")"
    i=0
    while [ $i -lt "$STUCK" ]; do
        i=$((i + 1))
        /bin/busybox cat "$FUSE_DIR/stuck-$i" >/dev/null 2>&1 3>&- &
        STUCK_PIDS="$STUCK_PIDS $!"
    done
    sleep 1
    REL=${APP_CPUSET_CG#/sys/fs/cgroup}
    [ "$MODE" = v2 ] || REL=${APP_CPUSET_CG#/sys/fs/cgroup/cpuset}
    nd=0
    for p in $STUCK_PIDS; do
        st=$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)
        [ "$st" = D ] && nd=$((nd + 1))
        if [ "$MODE" = v2 ]; then
            echo "$p" >"$APP_CPUSET_CG/cgroup.procs" || die "cannot move stuck task $p into $APP_CPUSET_CG"
        else
            for h in /sys/fs/cgroup/*/; do
                [ -d "$h$REL" ] && echo "$p" >"$h$REL/cgroup.procs" 2>/dev/null
            done
            grep -qx "$p" "$APP_FREEZER_CG/cgroup.procs" || die "cannot move stuck task $p into $APP_FREEZER_CG"
        fi
    done
    emit_metric stuck_tasks_in_d_state "$nd" tasks
    [ "$nd" -gt 0 ] || skip "the stuck tasks are not in D state (state of the last: ${st:-gone}): cannot set up an unfreezable task"
    log "$nd tasks in D state on $FUSE_DIR moved into the app container's cgroups"
fi

# --- reconcile: runc update --cpuset-cpus, timed ------------------------------
# A watcher (shell builtins only, no fork per read) records every change of
# the app cgroup's freezer state while the updates run: evidence that runc
# froze the container (systemd driver) or did not (cgroupfs).
if [ "$MODE" = v2 ]; then
    FZ_FILE=$APP_FREEZER_CG/cgroup.freeze
else
    FZ_FILE=$APP_FREEZER_CG/freezer.state
fi
[ -r "$FZ_FILE" ] || die "cannot read $FZ_FILE"
: >"$WORK/watch.on"
(
    last=
    while [ -e "$WORK/watch.on" ]; do
        read -r st <"$FZ_FILE" 2>/dev/null || st=gone
        if [ "$st" != "$last" ]; then
            echo "$st"
            last=$st
        fi
    done
) >"$WORK/freezer.log" 2>/dev/null &
WATCHER=$!
FAILS=0
FREEZE_FAILS=0
FIRST_ERR=
MAX_MS=0
TOTAL_MS=0
u=0
while [ $u -lt "$UPDATES" ]; do
    u=$((u + 1))
    t0=$(now_ms)
    timeout "$RUNC_TIMEOUT" $RUNC update --cpuset-cpus "$APPLIED" "$APP_ID" >"$WORK/update.out" 2>"$WORK/update.err" </dev/null
    rc=$?
    t1=$(now_ms)
    ms=$((t1 - t0))
    TOTAL_MS=$((TOTAL_MS + ms))
    [ $ms -gt $MAX_MS ] && MAX_MS=$ms
    emit_series update_ms "$u" "$ms" update ms
    if [ $rc != 0 ]; then
        FAILS=$((FAILS + 1))
        err=$(tr '\n' ' ' <"$WORK/update.err" | sed 's/  */ /g; s/ $//')
        [ $rc = 124 ] && err="timed out after ${RUNC_TIMEOUT}s${err:+: $err}"
        [ -n "$err" ] || err="exit status $rc"
        case $err in *[Ff]reez*) FREEZE_FAILS=$((FREEZE_FAILS + 1)) ;; esac
        [ -n "$FIRST_ERR" ] || FIRST_ERR=$err
        log "update $u failed after $ms ms ($rc): $err"
    else
        log "update $u took $ms ms"
    fi
done
rm -f "$WORK/watch.on"
wait "$WATCHER" 2>/dev/null
cp "$WORK/freezer.log" "$REPRO_OUT/freezer-states.log" 2>/dev/null
# v1: FREEZING/FROZEN; v2: cgroup.freeze 1.
FREEZE_SEEN=$(grep -c -E '^(FREEZING|FROZEN|1)$' "$WORK/freezer.log")
emit_metric freezer_transitions_seen "$FREEZE_SEEN"
emit_string freezer_states "$(tr '\n' ' ' <"$WORK/freezer.log" | cut -c1-200)"
log "freezer states during the updates: $(tr '\n' ' ' <"$WORK/freezer.log" | cut -c1-200)"
# runc before 1.1.8 gives up a freeze that does not complete without
# failing the update (FREEZING, then THAWED, never FROZEN): the cpuset is
# then written to a running, unfrozen container.
GAVE_UP=0
if [ "$MODE" != v2 ] && grep -q '^FREEZING$' "$WORK/freezer.log" && ! grep -q '^FROZEN$' "$WORK/freezer.log"; then
    GAVE_UP=1
fi
emit_metric freeze_gave_up "$GAVE_UP"
emit_metric update_failures "$FAILS"
emit_metric freeze_failures "$FREEZE_FAILS"
emit_metric freeze_failed $([ "$FREEZE_FAILS" -gt 0 ] && echo 1 || echo 0)
emit_string update_error "$FIRST_ERR"
[ "$UPDATES" -gt 0 ] && emit_metric update_ms_mean $((TOTAL_MS / UPDATES)) ms
emit_metric update_ms_max "$MAX_MS" ms

# Freezer state after the updates (a failed update may leave it frozen).
if [ "$MODE" = v2 ]; then
    fz=$(cat "$APP_FREEZER_CG/cgroup.freeze" 2>/dev/null)
    case $fz in 1) fz=FROZEN ;; 0) fz=THAWED ;; esac
else
    fz=$(cat "$APP_FREEZER_CG/freezer.state" 2>/dev/null)
fi
emit_string freezer_state_after "${fz:-unknown}"

# --- the real affinity --------------------------------------------------------
REAL=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "/proc/$APP_PID/status")
[ -n "$REAL" ] || die "cannot read Cpus_allowed_list of the app process $APP_PID"
REAL=$(cs_canon "$REAL")
CG_CPUS=$(cat "$APP_CPUSET_CG/cpuset.cpus.effective" 2>/dev/null || cat "$APP_CPUSET_CG/cpuset.effective_cpus" 2>/dev/null || cat "$APP_CPUSET_CG/cpuset.cpus" 2>/dev/null)
emit_string real_cpus "$REAL"
emit_string cgroup_effective_cpus "$(cs_canon "${CG_CPUS:-}")"
# Every task of the container's cgroup (forked children included). The
# kernel prints Cpus_allowed_list in canonical form; shell builtins only.
checked=0
off=0
for p in $(cat "$APP_CPUSET_CG/cgroup.procs" 2>/dev/null); do
    a=
    while read -r k v; do
        [ "$k" = Cpus_allowed_list: ] && { a=$v; break; }
    done 2>/dev/null <"/proc/$p/status"
    [ -n "$a" ] || continue
    checked=$((checked + 1))
    [ "$a" = "$EXPECTED" ] || off=$((off + 1))
done
emit_metric tasks_checked "$checked" tasks
emit_metric tasks_off_expected "$off" tasks
MISMATCH=0
[ "$REAL" = "$EXPECTED" ] || MISMATCH=1
emit_metric affinity_mismatch "$MISMATCH"
log "expected $EXPECTED, applied $APPLIED, real $REAL (cgroup $CG_CPUS), $off of $checked tasks off; $FAILS failed updates ($FREEZE_FAILS freeze)"

why=
if [ "$FAILS" -gt 0 ]; then
    why="$FAILS of $UPDATES runc updates failed (first: $FIRST_ERR)"
fi
if [ $MISMATCH = 1 ]; then
    why="${why:+$why; }the app process runs on $REAL, not the expected exclusive $EXPECTED ($M_QOS pod: $M_NOTE)"
fi
if [ -n "$why" ]; then
    emit_outcome reproduced "$why"
else
    gave_up=
    [ "$GAVE_UP" = 1 ] && gave_up="; runc gave up freezing the container (FREEZING, never FROZEN) without reporting an error"
    emit_outcome not-reproduced "the app process runs on exactly $EXPECTED and all $UPDATES runc updates succeeded (max $MAX_MS ms) with $FORKERS forkers$gave_up"
fi
