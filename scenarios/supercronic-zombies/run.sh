#!/bin/sh
# supercronic-zombies: seed 001, story 1. supercronic before v0.2.31 waited
# only for the jobs it started; as PID 1 of a container it inherited the jobs'
# orphaned children and never reaped them. Zombies hold PIDs until the
# container (here: a pids cgroup) or the node runs out and fork fails
# ("pthread_create failed: No space left on device" in the seed). The seed's
# fix: run the jobs under tini, which reaps.
set -u
. "${REPRO_LIB:-../lib}/common.sh"

PIDS_MAX=${REPRO_PARAM_PIDS_MAX:-256}
INTERVAL=${REPRO_PARAM_INTERVAL_MS:-50}
INIT=${REPRO_PARAM_INIT:-none}
MAX_S=${REPRO_PARAM_MAX_SECONDS:-120}
for v in "$PIDS_MAX" "$INTERVAL" "$MAX_S"; do
    case $v in '' | *[!0-9]*) die "params pids_max, interval_ms and max_seconds must be integers, got '$v'" ;; esac
done
case $INIT in none | tini) ;; *) die "param init must be none or tini, got '$INIT'" ;; esac
[ "$PIDS_MAX" -ge 4 ] || die "param pids_max must be at least 4"
if [ "$INIT" = tini ] && [ ! -x /usr/bin/tini-static ]; then
    skip "/usr/bin/tini-static is not in this image (needed for init=tini)"
fi

cg_setup v1 pids
CG=$(cg_base pids)/repro-cron
remove_cg() { cg_rmtree "$CG" || log "could not remove $CG"; }
CLEANUP=remove_cg
[ -d "$CG" ] && remove_cg
cg_mkdir "$CG"
echo "$PIDS_MAX" >"$CG/pids.max" || die "cannot write $PIDS_MAX to $CG/pids.max"

record_context
emit_string init "$INIT"
emit_metric pids_max "$PIDS_MAX" pids
emit_metric interval_ms "$INTERVAL" ms
emit_metric kernel_pid_max "$(cat /proc/sys/kernel/pid_max)" pids

log "cron runner (init=$INIT) in $CG, pids.max=$PIDS_MAX, a job every $INTERVAL ms, at most $MAX_S s"
kit cron zombie-cron --cgroup "$CG" --interval-ms "$INTERVAL" --max-seconds "$MAX_S" \
    --init "$INIT" --sample-ms 1000
case $? in
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
        emit_outcome reproduced "after $jobs cron jobs fork failed with $errno_name ($error): $zombies zombies of the non-reaping PID 1 (init=$INIT) filled pids.max=$PIDS_MAX"
    else
        emit_outcome not-reproduced "fork failed with $errno_name ($error) after $jobs jobs, but with no zombies: something else exhausted pids.max=$PIDS_MAX"
    fi
else
    log "no fork failed in $elapsed s; $jobs jobs, zombies at end $zombies (max $zmax)"
    emit_outcome not-reproduced "no fork failed in $MAX_S s with init=$INIT: $jobs cron jobs ran, zombies at the end $zombies (at most $zmax)"
fi
