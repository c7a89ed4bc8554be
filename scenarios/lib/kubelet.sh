# shellcheck shell=sh
# Helpers for scenarios that drive a real kubelet: a cell whose --kubelet
# names a manifest with a binary the harness built or downloaded (e.g.
# `--kubelet 1.20`, built from Debian's `kubernetes` source) on a
# root-filesystem guest. The kubelet runs standalone (no API server): static
# pods from a manifest folder, containers through the release's containerd
# CRI plugin with the cell's cgroup driver. Source after common.sh and
# runtime.sh:
#
#     . "$REPRO_LIB/common.sh"
#     . "$REPRO_LIB/runtime.sh"
#     . "$REPRO_LIB/kubelet.sh"
#
# The harness hands over (see scenarios/README.md):
#   REPRO_KUBELET_REAL     1 when the cell's kubelet is a real binary
#   REPRO_KUBELET_BUNDLE   where to mount the bundle: `kubelet`,
#                          `images/*.tar` (OCI archives) and `bundle.env`
#                          (KUBELET_VERSION, PAUSE_IMAGE, BUSYBOX_IMAGE)
#   REPRO_KUBELET_DISK     the serial of the read-only disk holding it
# Everything the kubelet writes goes under /var/lib/kubelet and
# /etc/kubernetes of the throw-away overlay; kubelet_stop saves its log as
# $REPRO_OUT/kubelet.log.

: "${REPRO_KUBELET_REAL:=0}"
: "${REPRO_KUBELET_BUNDLE:=}"
: "${REPRO_KUBELET_DISK:=}"
KL_MANIFESTS=/etc/kubernetes/manifests
KL_CONFIG=/var/lib/kubelet/config.yaml
KL_UNIT=repro-kubelet
# The read-only port: pod status without authentication (standalone).
KL_PORT=10255
KL_SOCK=/run/containerd/containerd.sock

# kubelet_real: whether the cell's kubelet is a real binary.
kubelet_real() { [ "$REPRO_KUBELET_REAL" = 1 ]; }

# kubelet_require: skip unless the cell has a real kubelet in a
# root-filesystem guest with containerd; loads the bundle's facts
# (KUBELET_VERSION, PAUSE_IMAGE, BUSYBOX_IMAGE) and records them.
kubelet_require() {
    rt_require
    kubelet_real || skip "the cell's kubelet ${REPRO_KUBELET_VERSION:-} is a profile, not a real kubelet binary (--kubelet 1.20 is one)"
    kubelet_mount_bundle
    [ -n "$REPRO_KUBELET_BUNDLE" ] && [ -x "$REPRO_KUBELET_BUNDLE/kubelet" ] ||
        die "the harness said the kubelet is real but $REPRO_KUBELET_BUNDLE/kubelet is missing"
    [ -r "$REPRO_KUBELET_BUNDLE/bundle.env" ] || die "$REPRO_KUBELET_BUNDLE/bundle.env is missing"
    . "$REPRO_KUBELET_BUNDLE/bundle.env"
    command -v containerd >/dev/null || skip "containerd is not installed in this root filesystem"
    command -v ctr >/dev/null || skip "ctr (containerd's client) is not installed"
    command -v jq >/dev/null || skip "jq is not installed"
    command -v curl >/dev/null || skip "curl is not installed"
    emit_string kubelet_binary_version "$("$REPRO_KUBELET_BUNDLE/kubelet" --version 2>/dev/null)"
}

# kubelet_mount_bundle: mounts the harness's read-only disk whose serial is
# REPRO_KUBELET_DISK at REPRO_KUBELET_BUNDLE (found by its serial, not by
# its device name).
kubelet_mount_bundle() {
    [ -n "$REPRO_KUBELET_DISK" ] || return 0
    mountpoint -q "$REPRO_KUBELET_BUNDLE" 2>/dev/null && return 0
    _dev=
    for _b in /sys/block/vd*; do
        [ "$(cat "$_b/serial" 2>/dev/null)" = "$REPRO_KUBELET_DISK" ] && _dev=/dev/${_b##*/}
    done
    [ -n "$_dev" ] || die "no disk with serial $REPRO_KUBELET_DISK (disks: $(cat /sys/block/vd*/serial 2>/dev/null | tr '\n' ' '))"
    mkdir -p "$REPRO_KUBELET_BUNDLE"
    mount -t ext4 -o ro "$_dev" "$REPRO_KUBELET_BUNDLE" 2>"$WORK/mount.err" ||
        die "cannot mount the kubelet bundle $_dev: $(cat "$WORK/mount.err")"
}

# kubelet_start [CPU_POLICY [RESERVED_CPUS]]: containerd (restarted with
# the config above, the bundle's images imported), then the kubelet as the
# transient unit repro-kubelet.service; waits until its read-only port
# answers. CPU_POLICY: none (default) or static (RESERVED_CPUS, e.g. "0",
# are kept for the system). Extra kubelet configuration lines can be put in
# KL_EXTRA_CONFIG (YAML, top level) and extra flags in KL_EXTRA_FLAGS.
kubelet_start() {
    _policy=${1:-none}
    _reserved=${2:-}
    RT_SANDBOX_IMAGE=$PAUSE_IMAGE
    rt_containerd_start
    for _img in "$REPRO_KUBELET_BUNDLE"/images/*.tar; do
        [ -e "$_img" ] || continue
        ctr --address "$KL_SOCK" -n k8s.io images import "$_img" >"$WORK/import.out" 2>&1 ||
            die "ctr images import $(basename "$_img") failed: $(tail -n 2 "$WORK/import.out" | tr '\n' ' ')"
    done
    for _ref in "$PAUSE_IMAGE" "$BUSYBOX_IMAGE"; do
        ctr --address "$KL_SOCK" -n k8s.io images ls -q | grep -qxF "$_ref" ||
            die "image $_ref is not in containerd after the import (has: $(ctr --address "$KL_SOCK" -n k8s.io images ls -q | tr '\n' ' '))"
    done
    mkdir -p "$KL_MANIFESTS" /var/lib/kubelet
    {
        echo "apiVersion: kubelet.config.k8s.io/v1beta1"
        echo "kind: KubeletConfiguration"
        echo "cgroupDriver: $REPRO_DRIVER"
        echo "staticPodPath: $KL_MANIFESTS"
        echo "fileCheckFrequency: 1s"
        echo "failSwapOn: false"
        echo "readOnlyPort: $KL_PORT"
        echo "authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}"
        echo "authorization: {mode: AlwaysAllow}"
        # A small guest: evict nothing the scenario did not ask for.
        echo "evictionHard: {memory.available: 1Mi, nodefs.available: 1%, imagefs.available: 1%}"
        echo "cpuManagerPolicy: $_policy"
        if [ "$_policy" = static ]; then
            echo "reservedSystemCPUs: \"$_reserved\""
        fi
        [ -n "${KL_EXTRA_CONFIG:-}" ] && printf '%s\n' "$KL_EXTRA_CONFIG"
    } >"$KL_CONFIG"
    systemctl reset-failed "$KL_UNIT" >/dev/null 2>&1
    # shellcheck disable=SC2086
    systemd-run --unit="$KL_UNIT" --property=Delegate=yes --property=KillMode=process \
        "$REPRO_KUBELET_BUNDLE/kubelet" --config="$KL_CONFIG" \
        --container-runtime=remote --container-runtime-endpoint="unix://$KL_SOCK" \
        --hostname-override=repro-node --v=2 ${KL_EXTRA_FLAGS:-} >"$WORK/kubelet-run.out" 2>&1 ||
        die "systemd-run of the kubelet failed: $(tail -n 2 "$WORK/kubelet-run.out" | tr '\n' ' ')"
    KL_STARTED=1
    _t0=$(cut -d. -f1 /proc/uptime)
    while ! curl -sf "http://127.0.0.1:$KL_PORT/healthz" >/dev/null 2>&1; do
        if ! systemctl is-active --quiet "$KL_UNIT"; then
            kubelet_save_log
            die "the kubelet exited: $(journalctl -u "$KL_UNIT" --no-pager -o cat | grep -E '^[EF][0-9]{4}' | tail -n 1)"
        fi
        [ $(($(cut -d. -f1 /proc/uptime) - _t0)) -le 180 ] || {
            kubelet_save_log
            die "the kubelet did not answer on :$KL_PORT/healthz within 180 s"
        }
        sleep 1
    done
    KL_READY_S=$(($(cut -d. -f1 /proc/uptime) - _t0))
    log "kubelet $KUBELET_VERSION ready after ${KL_READY_S} s (driver $REPRO_DRIVER, cpu policy $_policy)"
}

# kubelet_save_log: the kubelet's journal as $REPRO_OUT/kubelet.log.
kubelet_save_log() {
    journalctl -u "$KL_UNIT" --no-pager -o short-monotonic >"$REPRO_OUT/kubelet.log" 2>/dev/null
}

# kubelet_stop: stops the kubelet (pods keep running, as on a real node)
# and saves its log.
kubelet_stop() {
    [ -n "${KL_STARTED:-}" ] || return 0
    systemctl stop "$KL_UNIT" >/dev/null 2>&1
    kubelet_save_log
    KL_STARTED=
}

# kubelet_cleanup: removes every static pod, waits (up to 120 s) for the
# kubelet to stop their containers, then stops the kubelet. For CLEANUP.
kubelet_cleanup() {
    [ -n "${KL_STARTED:-}" ] || return 0
    rm -f "$KL_MANIFESTS"/*.yaml
    _i=0
    while [ "$(kubelet_pod_count)" != 0 ] && [ $_i -lt 120 ]; do
        sleep 1
        _i=$((_i + 1))
    done
    kubelet_stop
}

# kubelet_pod NAME IMAGE SCRIPT [MEMORY_LIMIT [CPU]]: writes a static pod
# manifest with one container running `sh -c SCRIPT` (host network: no CNI
# needed). MEMORY_LIMIT like 64Mi; CPU like 1 (requests = limits, so with
# both the pod is Guaranteed).
kubelet_pod() {
    _res=
    if [ -n "${4:-}" ] || [ -n "${5:-}" ]; then
        _lim="${4:+memory: $4}${4:+${5:+, }}${5:+cpu: \"$5\"}"
        _res="    resources: {limits: {$_lim}, requests: {$_lim}}"
    fi
    _script=$(printf '%s' "$3" | sed 's/\\/\\\\/g; s/"/\\"/g')
    {
        echo "apiVersion: v1"
        echo "kind: Pod"
        echo "metadata: {name: $1, namespace: default}"
        echo "spec:"
        echo "  hostNetwork: true"
        echo "  terminationGracePeriodSeconds: 1"
        echo "  containers:"
        echo "  - name: c"
        echo "    image: $2"
        echo "    imagePullPolicy: Never"
        echo "    command: [\"/bin/sh\", \"-c\", \"$_script\"]"
        [ -n "$_res" ] && echo "$_res"
    } >"$WORK/$1.yaml"
    mv "$WORK/$1.yaml" "$KL_MANIFESTS/$1.yaml"
}

# kubelet_remove_pod NAME: removes the static pod's manifest (the kubelet
# stops and removes the pod).
kubelet_remove_pod() { rm -f "$KL_MANIFESTS/$1.yaml"; }

# kubelet_pods_json: the kubelet's pods (its /pods endpoint).
kubelet_pods_json() { curl -sf "http://127.0.0.1:$KL_PORT/pods"; }

# kubelet_pod_count: how many pods the kubelet has.
kubelet_pod_count() {
    kubelet_pods_json | jq '.items | length' 2>/dev/null || echo unknown
}

# kubelet_pod_field NAME JQ: a field of the static pod NAME (the kubelet
# names it NAME-<node name>), e.g. `.metadata.uid`, `.status.phase`.
kubelet_pod_field() {
    kubelet_pods_json | jq -r --arg n "$1" "[.items[] | select(.metadata.name | startswith(\$n + \"-\"))][0] | $2 // empty" 2>/dev/null
}

# kubelet_pod_errors NAME: the kubelet's error lines about the static pod
# NAME (its log prefix and the pod's long name cut off).
kubelet_pod_errors() {
    journalctl -u "$KL_UNIT" --no-pager -o cat 2>/dev/null |
        grep -E '^E[0-9]{4} ' | grep -F "\"$1-" | sed 's/^E[0-9]* [0-9:.]* *[0-9]* [^]]*\] //' | cut -c1-400
}

# kubelet_wait_running NAME TIMEOUT_S: waits until the pod's container is
# running (or has run: a container that exits quickly counts); 1 on
# timeout.
kubelet_wait_running() {
    _t0=$(cut -d. -f1 /proc/uptime)
    while :; do
        _st=$(kubelet_pod_field "$1" '.status.containerStatuses[0].state | keys[0]')
        case $_st in running | terminated) return 0 ;; esac
        [ $(($(cut -d. -f1 /proc/uptime) - _t0)) -lt "$2" ] || return 1
        sleep 0.5
    done
}

# kubelet_wait_gone NAME TIMEOUT_S: waits until the kubelet no longer has
# the pod; 1 on timeout.
kubelet_wait_gone() {
    _t0=$(cut -d. -f1 /proc/uptime)
    while [ -n "$(kubelet_pod_field "$1" .metadata.uid)" ]; do
        [ $(($(cut -d. -f1 /proc/uptime) - _t0)) -lt "$2" ] || return 1
        sleep 0.5
    done
}

# kubelet_pod_cgroup UID QOS [CONTROLLER]: the pod's cgroup folder as the
# kubelet names it for the cell's driver (QOS: guaranteed, burstable,
# besteffort; v1: in CONTROLLER's hierarchy, default memory).
kubelet_pod_cgroup() {
    _p=$(rt_pod_parent "$2" "$1")
    case $_p in
    *.slice) rt_container_cgroup "$_p:x:y" "${3:-memory}" | sed 's#/x-y\.scope$##' ;;
    *) if [ "$(rt_cgroup_mode)" = v2 ]; then echo "/sys/fs/cgroup$_p"; else echo "/sys/fs/cgroup/${3:-memory}$_p"; fi ;;
    esac
}
