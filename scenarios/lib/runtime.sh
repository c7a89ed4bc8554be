# shellcheck shell=sh
# Helpers for scenarios on root-filesystem guests (`needs_rootfs = true`,
# `--rootfs bullseye|bookworm|trixie`): systemd is PID 1, and the release's
# own runc and containerd create the cgroups. Source after common.sh:
#
#     . "$REPRO_LIB/common.sh"
#     . "$REPRO_LIB/runtime.sh"
#
# The cgroup driver comes from REPRO_DRIVER (--driver; default cgroupfs):
# `systemd` makes runc (and containerd's runc shim) create cgroups as
# systemd units through D-Bus, `cgroupfs` makes them write cgroupfs directly.

: "${REPRO_DRIVER:=cgroupfs}"
: "${REPRO_ROOTFS:=}"

# rt_require: skip unless this is a root-filesystem guest with systemd as
# PID 1; then record the runtime versions and the cgroup mode.
rt_require() {
    [ -n "$REPRO_ROOTFS" ] || skip "needs a root-filesystem guest (--rootfs)"
    [ "$(cat /proc/1/comm)" = systemd ] || skip "PID 1 is $(cat /proc/1/comm), not systemd"
    emit_string rootfs "$REPRO_ROOTFS"
    emit_string driver "$REPRO_DRIVER"
    emit_string systemd_version "$(dpkg-query -W -f '${Version}' systemd 2>/dev/null)"
    emit_string runc_version "$(dpkg-query -W -f '${Version}' runc 2>/dev/null)"
    emit_string containerd_version "$(dpkg-query -W -f '${Version}' containerd 2>/dev/null)"
    emit_string cgroup_mode "$(rt_cgroup_mode)"
}

# rt_cgroup_mode: v2 (unified), hybrid or v1, as systemd mounted it.
rt_cgroup_mode() {
    if [ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ]; then
        echo v2
    elif [ -d /sys/fs/cgroup/unified ]; then
        echo hybrid
    else
        echo v1
    fi
}

# rt_runc ARGS...: the release's runc with the cell's cgroup driver.
rt_runc() {
    if [ "$REPRO_DRIVER" = systemd ]; then
        runc --systemd-cgroup "$@"
    else
        runc "$@"
    fi
}

# rt_pod_parent QOS POD_UID: the pod's cgroup as the kubelet names it for
# the driver (QOS: guaranteed, burstable or besteffort).
#   cgroupfs: /kubepods[/burstable]/pod<uid>
#   systemd:  kubepods[-burstable]-pod<uid_with_underscores>.slice
rt_pod_parent() {
    _uid=$(echo "$2" | tr - _)
    if [ "$REPRO_DRIVER" = systemd ]; then
        case $1 in
        guaranteed) echo "kubepods-pod$_uid.slice" ;;
        *) echo "kubepods-$1-pod$_uid.slice" ;;
        esac
    else
        case $1 in
        guaranteed) echo "/kubepods/pod$2" ;;
        *) echo "/kubepods/$1/pod$2" ;;
        esac
    fi
}

# rt_cgroups_path POD_PARENT CONTAINER_ID: runc's linux.cgroupsPath.
#   cgroupfs: <parent>/<id>;  systemd: <parent slice>:cri-containerd:<id>
rt_cgroups_path() {
    if [ "$REPRO_DRIVER" = systemd ]; then
        echo "$1:cri-containerd:$2"
    else
        echo "$1/$2"
    fi
}

# rt_container_cgroup CGROUPS_PATH [CONTROLLER]: the container's cgroup
# folder under /sys/fs/cgroup (v1: in CONTROLLER's hierarchy).
rt_container_cgroup() {
    case $1 in
    *:*:*)
        _slice=${1%%:*}
        _rest=${1#*:}
        _prefix=${_rest%%:*}
        _name=${_rest#*:}
        # systemd nests slices by their dash-separated prefixes.
        _path=
        _acc=
        _s=${_slice%.slice}
        _IFS=$IFS
        IFS=-
        for _part in $_s; do
            _acc=${_acc:+$_acc-}$_part
            _path="$_path/$_acc.slice"
        done
        IFS=$_IFS
        _rel="$_path/$_prefix-$_name.scope"
        ;;
    *) _rel=$1 ;;
    esac
    if [ "$(rt_cgroup_mode)" = v2 ]; then
        echo "/sys/fs/cgroup$_rel"
    else
        echo "/sys/fs/cgroup/${2:-memory}$_rel"
    fi
}

# rt_busybox_rootfs DIR: a minimal container root filesystem: the guest's
# static busybox and its applets, made with one `busybox --install -s`
# (one `ln` per applet is about 400 forks, 12 s under TCG). The links point
# to the path busybox runs from (/usr/bin/busybox on a merged /usr), so that
# path leads to /bin/busybox inside the image too.
rt_busybox_rootfs() {
    mkdir -p "$1/bin" "$1/proc" "$1/sys" "$1/dev" "$1/tmp" "$1/etc"
    cp /bin/busybox "$1/bin/busybox" || die "cannot copy /bin/busybox into $1"
    /bin/busybox --install -s "$1/bin" 2>/dev/null || die "busybox --install -s $1/bin failed"
    _t=$(readlink "$1/bin/sh") || die "busybox --install made no $1/bin/sh"
    case $_t in
    /bin/busybox) ;;
    /*)
        mkdir -p "$1${_t%/*}"
        [ -e "$1$_t" ] || ln -s /bin/busybox "$1$_t"
        ;;
    *) die "busybox --install made a relative link $1/bin/sh -> $_t" ;;
    esac
    echo "root:x:0:0:root:/:/bin/sh" >"$1/etc/passwd"
}

# rt_bundle DIR CGROUPS_PATH CPUS ARGS...: an OCI bundle in DIR (rootfs
# shared from $WORK/rootfs) running ARGS, in CGROUPS_PATH, pinned to CPUS
# (empty: no cpuset). Uses the release's `runc spec`. With RT_MEM_LIMIT set
# (bytes), the container gets that memory limit, as a pod with limits does.
rt_bundle() {
    _dir=$1
    _cgp=$2
    _cpus=$3
    shift 3
    [ -d "$WORK/rootfs/bin" ] || rt_busybox_rootfs "$WORK/rootfs"
    mkdir -p "$_dir"
    (cd "$_dir" && runc spec) || die "runc spec failed"
    _args=$(printf '%s\n' "$@" | jq -R . | jq -s -c .)
    jq --arg root "$WORK/rootfs" --arg cgp "$_cgp" --arg cpus "$_cpus" --arg mem "${RT_MEM_LIMIT:-}" \
        --argjson args "$_args" '
        .root = {path: $root, readonly: true}
        | .process.terminal = false
        | .process.args = $args
        | .linux.cgroupsPath = $cgp
        | if $cpus != "" then .linux.resources.cpu = {cpus: $cpus} else . end
        | if $mem != "" then .linux.resources.memory = {limit: ($mem | tonumber)} else . end' \
        "$_dir/config.json" >"$_dir/config.json.new" || die "jq on $_dir/config.json failed"
    mv "$_dir/config.json.new" "$_dir/config.json"
}

# rt_containerd_start: write containerd's configuration for the cell's
# driver (runc's SystemdCgroup option, as a kubelet with that driver
# requires) and start it; waits until `ctr` answers. With RT_SANDBOX_IMAGE
# set, the CRI plugin uses that image for pod sandboxes (the version-2
# format is read by containerd 1.4 to 1.7 alike).
rt_containerd_start() {
    _sd=false
    [ "$REPRO_DRIVER" = systemd ] && _sd=true
    _sandbox=
    [ -n "${RT_SANDBOX_IMAGE:-}" ] && _sandbox="sandbox_image = \"$RT_SANDBOX_IMAGE\""
    mkdir -p /etc/containerd
    # The root filesystems have no apparmor_parser: without this the CRI
    # plugin fails every container on a kernel with AppArmor enabled
    # ("get apparmor_parser version") trying to load its default profile.
    cat >/etc/containerd/config.toml <<EOF
version = 2
[plugins."io.containerd.grpc.v1.cri"]
  disable_apparmor = true
  $_sandbox
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = $_sd
EOF
    systemctl restart containerd || die "containerd did not start: $(systemctl status containerd 2>&1 | tail -n 5)"
    _i=0
    until ctr version >/dev/null 2>&1; do
        _i=$((_i + 1))
        [ "$_i" -lt 100 ] || die "containerd does not answer on its socket"
        sleep 0.2
    done
    emit_string containerd_systemd_cgroup "$_sd"
}
