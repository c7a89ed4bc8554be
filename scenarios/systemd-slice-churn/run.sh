#!/bin/sh
# systemd-slice-churn: seed 000 (CentOS 7, kubelet 1.15, --cgroup-driver=systemd).
# PID 1 burns CPU and the journal fills with about 50 lines/s of
#   Created slice libcontainer_NNNN_systemd_test_default.slice
#   Removed slice libcontainer_NNNN_systemd_test_default.slice
# and kubelet's cAdvisor logs inotify errors for slices that vanished.
# Cause (FACTS.md): runc's systemd cgroup driver created and removed a
# throw-away transient slice to probe systemd every time a cgroup manager
# was built (runc PR 1084, rc3), until runc PR 2117 (rc9) removed the probe;
# kubelet 1.14/1.15 built managers constantly.
#
# Here: `repro-kit slice-churn` makes the same D-Bus calls to PID 1
# (StartTransientUnit then StopUnit of a new libcontainer_*_systemd_test_default.slice)
# at `rate` per second, with an inotify watcher on the cgroup tree; the
# script measures PID 1's and journald's CPU and the journal's growth.
set -u
. "${REPRO_LIB:-../lib}/common.sh"
. "$REPRO_LIB/runtime.sh"

RATE=${REPRO_PARAM_RATE:-50}
DURATION=${REPRO_PARAM_DURATION_S:-30}
BASELINE=${REPRO_PARAM_BASELINE_S:-5}
CPU_T=${REPRO_PARAM_CPU_THRESHOLD:-5}
LINES_T=${REPRO_PARAM_LINES_THRESHOLD:-10}
PROBE=${REPRO_PARAM_PROBE:-auto}
WATCH=${REPRO_PARAM_WATCH:-1}
for v in "$RATE" "$DURATION" "$BASELINE" "$CPU_T" "$LINES_T"; do
    case $v in '' | *[!0-9.]*) die "rate, duration_s, baseline_s, cpu_threshold and lines_threshold must be numbers, got '$v'" ;; esac
done
case $PROBE in auto | on | off) ;; *) die "param probe must be auto, on or off, got '$PROBE'" ;; esac

rt_require
record_context
# Kubelet 1.9-like default (common.sh): its runc (rc4/rc5) probes.
SLICE_PROBE=${REPRO_KUBELET_SYSTEMD_TEST_SLICE:-1}
emit_metric kubelet_runc_probes "$SLICE_PROBE"

why_probe=
case $PROBE in
on) run_probe=1 why_probe="forced on (param probe=on)" ;;
off) run_probe=0 why_probe="forced off (param probe=off)" ;;
auto)
    if [ "$REPRO_DRIVER" != systemd ]; then
        run_probe=0
        why_probe="the cgroupfs driver never asks systemd for cgroups, so runc never probes it"
    elif [ "$SLICE_PROBE" != 1 ]; then
        run_probe=0
        why_probe="kubelet $REPRO_KUBELET_VERSION vendors a runc without the test-slice probe (removed in rc9, runc PR 2117)"
    else
        run_probe=1
        why_probe="kubelet $REPRO_KUBELET_VERSION with the systemd driver: its runc probes systemd with a test slice per cgroup manager"
    fi
    ;;
esac
emit_metric probe_ran "$run_probe"
log "probe: $why_probe"

HZ=$(getconf CLK_TCK)
ticks() { awk '{ s = $0; sub(/^.*\) /, "", s); split(s, f, " "); print f[12] + f[13] }' "/proc/$1/stat" 2>/dev/null || echo 0; }
jpid=$(pidof systemd-journald | cut -d' ' -f1)
[ -n "$jpid" ] || die "systemd-journald is not running"
jlines() { journalctl -b -q --no-pager -o cat | wc -l; }
now_ms() { awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime; }
pct() { awk -v t="$1" -v hz="$HZ" -v ms="$2" 'BEGIN { printf "%.2f\n", (ms > 0) ? t / hz / (ms / 1000) * 100 : 0 }'; }

# Idle baseline: the same measures with nothing churning.
b_t0=$(now_ms)
b_p1=$(ticks 1)
b_j=$(ticks "$jpid")
b_l=$(jlines)
sleep "$BASELINE"
b_ms=$(($(now_ms) - b_t0))
base_pid1=$(pct $(($(ticks 1) - b_p1)) "$b_ms")
base_journald=$(pct $(($(ticks "$jpid") - b_j)) "$b_ms")
base_lines=$(awk -v n=$(($(jlines) - b_l)) -v ms="$b_ms" 'BEGIN { printf "%.2f\n", n / (ms / 1000) }')
emit_metric baseline_pid1_cpu_percent "$base_pid1" "%"
emit_metric baseline_journald_cpu_percent "$base_journald" "%"
emit_metric baseline_journal_lines_per_s "$base_lines" "lines/s"
log "baseline: PID 1 $base_pid1% CPU, journald $base_journald%, $base_lines journal lines/s"

watch_args=
if [ "$WATCH" = 1 ]; then
    if [ "$(rt_cgroup_mode)" = v2 ]; then
        watch_args="--watch /sys/fs/cgroup"
    else
        for h in systemd memory cpu,cpuacct pids; do
            [ -d "/sys/fs/cgroup/$h" ] && watch_args="$watch_args --watch /sys/fs/cgroup/$h"
        done
    fi
fi

t0=$(now_ms)
p1=$(ticks 1)
j0=$(ticks "$jpid")
l0=$(jlines)
if [ "$run_probe" = 1 ]; then
    log "churning probe slices at $RATE/s for ${DURATION}s ($watch_args)"
    # shellcheck disable=SC2086
    kit churn slice-churn --rate "$RATE" --duration "$DURATION" $watch_args --series ||
        die "slice-churn failed: $(kit_err churn)"
else
    sleep "$DURATION"
fi
ms=$(($(now_ms) - t0))
pid1=$(pct $(($(ticks 1) - p1)) "$ms")
journald=$(pct $(($(ticks "$jpid") - j0)) "$ms")
lines=$(($(jlines) - l0))
lps=$(awk -v n="$lines" -v ms="$ms" 'BEGIN { printf "%.2f\n", n / (ms / 1000) }')
created=$(journalctl -b -q --no-pager -o cat | grep -c '_systemd_test_default.slice' || true)

emit_metric pid1_cpu_percent "$pid1" "%"
emit_metric journald_cpu_percent "$journald" "%"
emit_metric journal_lines "$lines" lines
emit_metric journal_lines_per_s "$lps" "lines/s"
emit_metric journal_test_slice_lines "$created" lines
emit_metric measured_s "$(awk -v ms="$ms" 'BEGIN { printf "%.1f\n", ms / 1000 }')" s
if [ "$run_probe" = 1 ]; then
    emit_metric slices "$(jget churn pairs)" slices
    emit_metric slice_rate "$(jget churn rate)" "slices/s"
    emit_metric dbus_errors $(($(jget churn start_errors) + $(jget churn stop_errors)))
    first=$(jget churn first_error --default "")
    [ -n "$first" ] && emit_string first_dbus_error "$first"
    if [ "$WATCH" = 1 ]; then
        emit_metric watcher_dirs_created "$(jget churn created_seen)" dirs
        emit_metric watcher_errors "$(jget churn watch_errors)" errors
        werr=$(jget churn first_watch_error --default "")
        [ -n "$werr" ] && emit_string first_watcher_error "$werr"
    fi
fi
log "churn: PID 1 $pid1% CPU, journald $journald%, $lps journal lines/s ($created test-slice lines)"
journalctl -b -q --no-pager -o short-monotonic | grep '_systemd_test_default.slice' | tail -n 20 >"$REPRO_OUT/journal-sample.txt" || true

over=$(awk -v c="$pid1" -v ct="$CPU_T" -v l="$lps" -v lt="$LINES_T" 'BEGIN {
    r = ""
    if (c > ct) r = sprintf("PID 1 used %.1f%% of a CPU (threshold %s%%)", c, ct)
    if (l > lt) r = r (r ? " and " : "") sprintf("the journal grew by %.1f lines/s (threshold %s)", l, lt)
    print r }')
if [ -n "$over" ]; then
    emit_outcome reproduced "$over while $why_probe; baseline PID 1 $base_pid1%, $base_lines lines/s"
elif [ "$run_probe" = 1 ] && awk -v r="$(jget churn rate)" -v t="$RATE" 'BEGIN { exit !(r < t / 2) }'; then
    skip "the churn reached only $(jget churn rate) slices/s of the $RATE asked for; cannot judge"
else
    emit_outcome not-reproduced "PID 1 used $pid1% of a CPU and the journal grew by $lps lines/s (thresholds $CPU_T% and $LINES_T lines/s): $why_probe"
fi
