#!/bin/sh
# supercronic-zombies: seed 001, story 1. supercronic before v0.2.31 waited
# only for the jobs it started; as PID 1 of a container it inherited the jobs'
# orphaned children and never reaped them. Zombies hold PIDs until the
# container (here: a pids cgroup) or the node runs out and fork fails
# ("pthread_create failed: No space left on device" in the seed). The seed's
# fix: run the jobs under tini, which reaps.
#
# limit_by=pids-cgroup (default) confines the container to pids.max, and fork
# fails with EAGAIN. limit_by=pid-max shrinks the node's PID space
# (kernel.pid_max) instead, like the seed's node: which errno fork returns
# then depends on the kernel (ENOSPC in the seed; current kernels map it to
# EAGAIN). The whole guest shares that PID space while it is exhausted.
set -u
. "${REPRO_LIB:-../lib}/common.sh"

PIDS_MAX=${REPRO_PARAM_PIDS_MAX:-256}
INTERVAL=${REPRO_PARAM_INTERVAL_MS:-50}
INIT=${REPRO_PARAM_INIT:-none}
MAX_S=${REPRO_PARAM_MAX_SECONDS:-120}
LIMIT_BY=${REPRO_PARAM_LIMIT_BY:-pids-cgroup}
case $LIMIT_BY in pids-cgroup | pid-max) ;; *) die "param limit_by must be pids-cgroup or pid-max, got '$LIMIT_BY'" ;; esac
for v in "$PIDS_MAX" "$INTERVAL" "$MAX_S"; do
    case $v in '' | *[!0-9]*) die "params pids_max, interval_ms and max_seconds must be integers, got '$v'" ;; esac
done
case $INIT in none | tini) ;; *) die "param init must be none or tini, got '$INIT'" ;; esac
[ "$PIDS_MAX" -ge 4 ] || die "param pids_max must be at least 4"
if [ "$INIT" = tini ] && [ ! -x /usr/bin/tini-static ]; then
    skip "/usr/bin/tini-static is not in this image (needed for init=tini)"
fi

PID_MAX_FILE=/proc/sys/kernel/pid_max
PID_MAX_ORIG=$(cat "$PID_MAX_FILE")
CG=
if [ "$LIMIT_BY" = pids-cgroup ]; then
    cg_setup v1 pids
    CG=$(cg_base pids)/repro-cron
fi
undo() {
    [ "$(cat "$PID_MAX_FILE")" = "$PID_MAX_ORIG" ] || echo "$PID_MAX_ORIG" >"$PID_MAX_FILE" || log "could not restore kernel.pid_max"
    [ -n "$CG" ] && { cg_rmtree "$CG" || log "could not remove $CG"; }
}
CLEANUP=undo
if [ -n "$CG" ]; then
    [ -d "$CG" ] && cg_rmtree "$CG"
    cg_mkdir "$CG"
    echo "$PIDS_MAX" >"$CG/pids.max" || die "cannot write $PIDS_MAX to $CG/pids.max"
fi

record_context
emit_string init "$INIT"
emit_string limit_by "$LIMIT_BY"
emit_metric pids_max "$PIDS_MAX" pids
emit_metric interval_ms "$INTERVAL" ms
emit_metric kernel_pid_max "$PID_MAX_ORIG" pids

if [ "$LIMIT_BY" = pid-max ]; then
    # PIDs are handed out cyclically below pid_max, wrapping to 300: leave
    # about PIDS_MAX free above the highest PID in use.
    highest=0
    for d in /proc/[0-9]*; do
        n=${d#/proc/}
        [ "$n" -gt "$highest" ] && highest=$n
    done
    [ "$highest" -lt 300 ] && highest=300
    newmax=$((highest + PIDS_MAX))
    echo "$newmax" >"$PID_MAX_FILE" || die "cannot write $newmax to $PID_MAX_FILE"
    emit_metric kernel_pid_max_set "$newmax" pids
    log "kernel.pid_max $PID_MAX_ORIG -> $newmax (highest PID in use: $highest)"
    CG_ARG=
else
    CG_ARG=$CG
fi

log "cron runner (init=$INIT, limit_by=$LIMIT_BY${CG:+ in $CG}), $PIDS_MAX pids, a job every $INTERVAL ms, at most $MAX_S s"
kit cron zombie-cron --cgroup "$CG_ARG" --interval-ms "$INTERVAL" --max-seconds "$MAX_S" \
    --init "$INIT" --sample-ms 1000
cron_rc=$?
# Give the PID space back before anything else forks.
[ "$LIMIT_BY" = pid-max ] && echo "$PID_MAX_ORIG" >"$PID_MAX_FILE"
case $cron_rc in
0) ;;
3) skip "$(kit_err cron)" ;;
*) die "zombie-cron failed: $(kit_err cron)" ;;
esac

jobs=$(jget cron jobs)
failed=$(jget cron fork_failed)
zombies=$(jget cron zombies_at_end)
zmax=$(jget cron zombies_max)
elapsed=$(jget cron elapsed_s)
emit_metric jobs "$jobs" jobs
emit_metric zombies_at_end "$zombies" zombies
emit_metric zombies_max "$zmax" zombies
emit_metric procs_at_end "$(jget cron procs_at_end)" processes
pc=$(jget cron pids_current_at_end)
[ -n "$pc" ] && emit_metric pids_current_at_end "$pc" pids
emit_metric elapsed_s "$elapsed" s
emit_string stopped_by "$(jget cron stopped_by)"
if [ "$failed" = true ]; then
    errno_name=$(jget cron errno_name)
    error=$(jget cron error)
    emit_string fork_failed_in "$(jget cron failed_in)"
    emit_metric fork_errno "$(jget cron errno)"
    emit_string fork_errno_name "$errno_name"
    emit_string fork_error "$error"
    log "fork failed in the $(jget cron failed_in) after $jobs jobs: $errno_name ($error); $zombies zombies"
    if [ "$zombies" -gt 0 ]; then
        if [ "$LIMIT_BY" = pid-max ]; then what="the PID space (kernel.pid_max=$newmax)"; else what="pids.max=$PIDS_MAX"; fi
        emit_outcome reproduced "after $jobs cron jobs fork failed with $errno_name ($error): $zombies zombies of the non-reaping PID 1 (init=$INIT) filled $what"
    else
        emit_outcome not-reproduced "fork failed with $errno_name ($error) after $jobs jobs, but with no zombies: something else exhausted the PIDs ($LIMIT_BY)"
    fi
else
    log "no fork failed in $elapsed s; $jobs jobs, zombies at end $zombies (max $zmax)"
    emit_outcome not-reproduced "no fork failed in $MAX_S s with init=$INIT: $jobs cron jobs ran, zombies at the end $zombies (at most $zmax)"
fi
