# shellcheck shell=sh
# Shared helpers for scenario entry scripts. POSIX sh as busybox ash runs it:
# no bash-isms. Source it first thing:
#
#     . "$REPRO_LIB/common.sh"
#
# Every JSON line goes through `repro-kit emit`, never hand-formatted.

RK=${REPRO_KIT:-repro-kit}
: "${REPRO_SCENARIO_DIR:=$PWD}"
# The scenario's name, for logs (the harness uploads every scenario to the
# same folder name, so read it from the manifest).
SCENARIO=${SCENARIO:-$(sed -n 's/^name *= *"\(.*\)".*/\1/p' "$REPRO_SCENARIO_DIR/scenario.toml" 2>/dev/null)}
SCENARIO=${SCENARIO:-scenario}

# Outside the harness (a manual run in a guest) fall back to local paths.
: "${REPRO_OUT:=/tmp/repro-out/$SCENARIO}"
mkdir -p "$REPRO_OUT"
: "${REPRO_RESULT:=$REPRO_OUT/result.jsonl}"
export REPRO_OUT REPRO_RESULT

# Kubelet profile: "1.9-like" unless the harness says otherwise.
: "${REPRO_KUBELET_VERSION:=1.9}"
: "${REPRO_KUBELET_KMEM_ACCOUNTING:=1}"
: "${REPRO_KUBELET_CGROUP_LAYOUT:=cgroupfs}"
: "${REPRO_KERNEL:=}"

# Scratch space for kit output; removed at exit by scripts that call cleanup_work.
WORK=$(mktemp -d "/tmp/repro-$SCENARIO.XXXXXX") || exit 1

log() {
    printf '%s [%s] %s\n' "$(cut -d' ' -f1 /proc/uptime)" "$SCENARIO" "$*" >&2
}

# --- result lines ------------------------------------------------------------

# emit_metric NAME VALUE [UNIT]   (numbers stay numbers)
emit_metric() { "$RK" emit metric "$@"; }
# emit_string NAME VALUE [UNIT]   (always a JSON string, e.g. "1.9")
emit_string() { "$RK" emit metric "$@" --string; }
# emit_series NAME X Y X_UNIT Y_UNIT
emit_series() { "$RK" emit series "$@"; }
emit_log() { "$RK" emit log "$*"; }
# emit_outcome reproduced|not-reproduced|skipped REASON
emit_outcome() { "$RK" emit outcome "$1" "$2"; }

# skip REASON: a requirement is missing. Ends the script (exit 0).
skip() {
    log "skipped: $1"
    emit_outcome skipped "$1"
    exit 0
}

# die MESSAGE: the scenario could not run as designed. The harness records
# `error` (exit 1, no outcome line); the message is also the last line on
# stderr, which the harness quotes.
_DIE_MSG=
die() {
    _DIE_MSG="$*"
    log "error: $*"
    "$RK" emit log "error: $*" 2>/dev/null
    exit 1
}

# Exit handling: set CLEANUP to the name of a function that undoes what the
# scenario made; it runs once at exit (also after die or a signal).
CLEANUP=
_repro_exit() {
    _st=$?
    trap - EXIT
    if [ -n "$CLEANUP" ]; then
        _c=$CLEANUP
        CLEANUP=
        "$_c"
    fi
    rm -rf "$WORK"
    [ -n "$_DIE_MSG" ] && echo "$SCENARIO: $_DIE_MSG" >&2
    exit "$_st"
}
trap _repro_exit EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# --- kit output ----------------------------------------------------------------

# kit OUT_NAME SUBCOMMAND ARGS... : run repro-kit, keep its JSON answer in
# $WORK/OUT_NAME.json and a copy in $REPRO_OUT; stderr in $WORK/OUT_NAME.err.
# Returns the kit's exit status.
kit() {
    _name=$1
    shift
    "$RK" "$@" >"$WORK/$_name.json" 2>"$WORK/$_name.err"
    _rc=$?
    cp "$WORK/$_name.json" "$REPRO_OUT/$_name.json" 2>/dev/null
    if [ -s "$WORK/$_name.err" ]; then
        cat "$WORK/$_name.err" >&2
    fi
    return $_rc
}

# kit_err OUT_NAME: the kit's error message without the "repro-kit: " prefix.
kit_err() { sed -n 's/^repro-kit: //p' "$WORK/$1.err" | tail -n 1; }

# jget OUT_NAME KEY... : print fields of a kept kit answer (dotted keys).
jget() {
    _name=$1
    shift
    "$RK" json-get "$@" <"$WORK/$_name.json"
}

# --- system facts ----------------------------------------------------------------

# Guest memory in use, MiB: MemTotal - MemAvailable.
mem_used_mib() {
    awk '/^MemTotal:/ {t = $2} /^MemAvailable:/ {a = $2} END {printf "%d\n", (t - a) / 1024}' /proc/meminfo
}

# cg_count CONTROLLER: how many cgroups the controller's hierarchy holds,
# dying ones included (after cg_setup). On v1 the num_cgroups column of
# /proc/cgroups. On v2 recent kernels leave controllers without v1 support out
# of /proc/cgroups, so count the cgroup2 hierarchy from the root cgroup.stat:
# the root, its live and its dying descendants (what num_cgroups counted).
cg_count() {
    if [ "$CG_VERSION" = v2 ]; then
        awk '$1 == "nr_descendants" || $1 == "nr_dying_descendants" {n += $2} END {print n + 1}' /sys/fs/cgroup/cgroup.stat
    else
        awk -v c="$1" '$1 == c {print $3}' /proc/cgroups
    fi
}

new_uuid() { cat /proc/sys/kernel/random/uuid; }
# A 64-hex-digit id like a container id.
container_id() { printf '%s%s\n' "$(new_uuid | tr -d -)" "$(new_uuid | tr -d -)"; }

# Record the run's context as metrics (kernel, cgroup version, kubelet profile).
record_context() {
    emit_string kernel "$(uname -r)"
    [ -n "$REPRO_KERNEL" ] && emit_string kernel_alias "$REPRO_KERNEL"
    [ -n "$CG_VERSION" ] && emit_string cgroup_version "$CG_VERSION"
    emit_string kubelet_version "$REPRO_KUBELET_VERSION"
    [ -n "${REPRO_KUBELET_RUNC:-}" ] && emit_string kubelet_runc "$REPRO_KUBELET_RUNC"
    emit_metric kubelet_kmem_accounting "$REPRO_KUBELET_KMEM_ACCOUNTING"
    emit_string kubelet_cgroup_layout "$REPRO_KUBELET_CGROUP_LAYOUT"
    return 0
}

# --- cgroups ---------------------------------------------------------------------

CG_VERSION=

# cg_setup DEFAULT_VERSION CONTROLLER...: pick $REPRO_CGROUP (or the default),
# mount the controllers; a missing controller ends the scenario as `skipped`.
cg_setup() {
    CG_VERSION=${REPRO_CGROUP:-$1}
    shift
    case $CG_VERSION in
    v1 | v2) ;;
    *) die "unknown cgroup version '$CG_VERSION' (expected v1 or v2)" ;;
    esac
    kit cgroup-mount cgroup-mount "$CG_VERSION" "$@"
    case $? in
    0) log "cgroup $CG_VERSION mounted: $*" ;;
    3) skip "$(kit_err cgroup-mount)" ;;
    *) die "$(kit_err cgroup-mount)" ;;
    esac
}

# cg_base CONTROLLER: where that controller's hierarchy is mounted.
cg_base() {
    if [ "$CG_VERSION" = v1 ]; then
        echo "/sys/fs/cgroup/$1"
    else
        echo /sys/fs/cgroup
    fi
}

# cg_enable DIR CONTROLLER...: on v2 give DIR's children these controllers
# (cgroup.subtree_control); nothing to do on v1.
cg_enable() {
    [ "$CG_VERSION" = v2 ] || return 0
    _d=$1
    shift
    for _c in "$@"; do
        echo "+$_c" >"$_d/cgroup.subtree_control" || return 1
    done
}

# cg_mkdir DIR [CONTROLLER...]: create a cgroup (dies on failure) and, on v2,
# enable the controllers for its children.
cg_mkdir() {
    _d=$1
    shift
    [ -d "$_d" ] || mkdir "$_d" || die "mkdir $_d failed"
    cg_enable "$_d" "$@" || die "cannot enable controllers '$*' in $_d/cgroup.subtree_control"
}

# cg_rmtree DIR: remove a cgroup and all its descendants, deepest first
# (small trees; use `repro-kit memcg-rmdir` for thousands of numbered ones).
cg_rmtree() {
    [ -d "$1" ] || return 0
    find "$1" -depth -type d | while IFS= read -r _d; do
        rmdir "$_d" 2>/dev/null || log "rmdir $_d failed"
    done
    [ ! -d "$1" ]
}

# --- kubelet cgroup layout (REPRO_KUBELET_CGROUP_LAYOUT) --------------------------
# cgroupfs: kubepods/burstable/pod<uid>/<container-id>
# systemd:  kubepods.slice/kubepods-burstable.slice/
#           kubepods-burstable-pod<uid with _>.slice/docker-<container-id>.scope

# kube_qos_dirs BASE: print the kubepods and burstable QoS cgroup paths.
kube_qos_dirs() {
    if [ "$REPRO_KUBELET_CGROUP_LAYOUT" = systemd ]; then
        echo "$1/kubepods.slice"
        echo "$1/kubepods.slice/kubepods-burstable.slice"
    else
        echo "$1/kubepods"
        echo "$1/kubepods/burstable"
    fi
}

# kube_pod_dir BURSTABLE_DIR POD_UID
kube_pod_dir() {
    if [ "$REPRO_KUBELET_CGROUP_LAYOUT" = systemd ]; then
        echo "$1/kubepods-burstable-pod$(echo "$2" | tr - _).slice"
    else
        echo "$1/pod$2"
    fi
}

# kube_container_dir POD_DIR CONTAINER_ID
kube_container_dir() {
    if [ "$REPRO_KUBELET_CGROUP_LAYOUT" = systemd ]; then
        echo "$1/docker-$2.scope"
    else
        echo "$1/$2"
    fi
}

# kmem_enable DIR: what runc's EnableKernelMemoryAccounting does on cgroup v1:
# write 1, then -1, to memory.kmem.limit_in_bytes. Prints the value read back
# after writing 1 ("absent" when the file does not exist, "write-failed: ..."
# when the kernel refused the write). Returns 0 when the writes succeeded.
kmem_enable() {
    _f=$1/memory.kmem.limit_in_bytes
    if [ ! -e "$_f" ]; then
        echo absent
        return 1
    fi
    if ! _e=$( (echo 1 >"$_f") 2>&1); then
        echo "write-failed: $_e"
        return 1
    fi
    _v=$(cat "$_f")
    if ! _e=$( (echo -1 >"$_f") 2>&1); then
        echo "write-failed: $_e"
        return 1
    fi
    echo "$_v"
}

# kmem_took_effect VALUE: true when a kmem limit read back after writing 1 is
# a real limit (not the unlimited maximum that a no-op write leaves behind).
kmem_took_effect() {
    case $1 in
    '' | absent | write-failed*) return 1 ;;
    esac
    # Unlimited reads back as 9223372036854771712 (PAGE_COUNTER_MAX pages);
    # a real limit of "1" reads back as one page or so.
    [ "${#1}" -lt 16 ]
}
