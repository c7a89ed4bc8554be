#!/bin/sh
# inotify-exhaust: seed 003, problem 2. After a kubelet restart: "Error: Too
# many open files" / "failed to create fsnotify watcher: too many open files".
# inotify instances are limited per user by fs.inotify.max_user_instances
# (default 128); inotify_init1() then fails with EMFILE, whose text is "Too
# many open files". The seed's fix raises the limit to 8192.
set -u
. "${REPRO_LIB:-../lib}/common.sh"

MAXF=/proc/sys/fs/inotify/max_user_instances
FIXED=${REPRO_PARAM_FIXED_LIMIT:-}
RUN_UID=${REPRO_PARAM_UID:-65534}
case $FIXED in *[!0-9]*) die "param fixed_limit must be an integer, got '$FIXED'" ;; esac
case $RUN_UID in '' | *[!0-9]*) die "param uid must be an integer, got '$RUN_UID'" ;; esac

[ -r "$MAXF" ] || skip "$MAXF does not exist: this kernel has no inotify (CONFIG_INOTIFY_USER)"
orig=$(cat "$MAXF")
restore_limit() { echo "$orig" >"$MAXF" || log "could not restore $MAXF to $orig"; }
CLEANUP=restore_limit

record_context
emit_metric uid "$RUN_UID"
emit_metric max_user_instances_default "$orig" instances

log "uid $RUN_UID creates inotify instances until refused (max_user_instances=$orig)"
kit default inotify-exhaust --uid "$RUN_UID" || die "inotify-exhaust failed: $(kit_err default)"
created0=$(jget default created)
errno0=$(jget default errno_name)
error0=$(jget default error)
emit_metric created_default "$created0" instances
emit_string errno_default "$errno0"
emit_string error_default "$error0"
emit_metric instances_held_elsewhere $((orig - created0)) instances
log "default limit: $created0 instances, then $errno0 ($error0)"

fixed_note=
if [ -n "$FIXED" ]; then
    echo "$FIXED" >"$MAXF" || die "cannot write $FIXED to $MAXF"
    now=$(cat "$MAXF")
    [ "$now" = "$FIXED" ] || die "$MAXF reads $now after writing $FIXED"
    kit fixed inotify-exhaust --uid "$RUN_UID" || die "inotify-exhaust failed: $(kit_err fixed)"
    created1=$(jget fixed created)
    emit_metric max_user_instances_fixed "$FIXED" instances
    emit_metric created_fixed "$created1" instances
    emit_string errno_fixed "$(jget fixed errno_name)"
    log "limit $FIXED: $created1 instances, then $(jget fixed errno_name)"
    if [ "$created1" -gt "$created0" ]; then
        fixed_note="; with max_user_instances=$FIXED (the seed's fix) the same user created $created1"
    else
        fixed_note="; raising max_user_instances to $FIXED did not help: $created1 instances"
    fi
fi

if [ "$errno0" = EMFILE ] && [ "$created0" -le "$orig" ]; then
    emit_outcome reproduced "uid $RUN_UID could create only $created0 inotify instances (max_user_instances=$orig), then inotify_init1 failed with EMFILE ($error0), the seed's 'failed to create fsnotify watcher: too many open files'$fixed_note"
elif [ "$errno0" = EMFILE ]; then
    emit_outcome not-reproduced "uid $RUN_UID created $created0 inotify instances, more than max_user_instances=$orig, before EMFILE$fixed_note"
else
    emit_outcome not-reproduced "inotify_init1 stopped after $created0 instances with ${errno0:-no error} (${error0:-none}), not EMFILE$fixed_note"
fi
