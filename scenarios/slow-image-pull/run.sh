#!/bin/sh
# slow-image-pull: seed 001, story 4 ("历史4.规划吊舱的竞争"). A pod whose
# image comes from a slow registry is pulled for minutes; a second pod that
# lands on the same node does not even start pulling its own (small) image:
# the kubelet pulls images one at a time (serializeImagePulls, true by
# default in every version; maxParallelImagePulls since 1.27 only bounds
# parallel pulls once serialization is switched off), so the small pod waits
# in ContainerCreating until the slow pull is done.
#
# Here, on a root-filesystem guest: two instances of Debian's docker-registry
# share one storage folder, a fast one on 127.0.0.1:5000 and a slow one on
# 127.0.0.1:5001 whose replies are throttled to `bandwidth` by tc (prio qdisc
# on lo, a u32 filter on source port 5001 into a tbf band). The scenario
# builds two busybox images itself (layer tarballs, image config and a
# Docker schema-2 manifest with tar, gzip, sha256sum and jq; pushed with
# curl through the registry API v2): `large` carries an extra layer of
# `large_mb` random MiB and is pulled from the slow registry, `small` from
# the fast one (the filler layer is an uncompressed tar: random data does not
# compress anyway, and the guest is spared gzip and gunzip of megabytes under
# emulation). containerd (ctr) pulls the large image, then the small one,
# both requested at t0: one at a time (serial) or at the same time
# (parallel, at most max_parallel_pulls), like the kubelet's image puller.
# The small image's delay (t0 until its pull is done) is the key metric;
# `reproduced` when its pull ends after the large one's or the delay exceeds
# delay_threshold_s.
set -u
. "${REPRO_LIB:-../lib}/common.sh"
. "${REPRO_LIB:-../lib}/runtime.sh"

LARGE_MB=${REPRO_PARAM_LARGE_MB:-16}
BANDWIDTH=${REPRO_PARAM_BANDWIDTH:-8mbit}
THRESHOLD_S=${REPRO_PARAM_DELAY_THRESHOLD_S:-30}
PULL_MODE=${REPRO_PARAM_PULL_MODE:-}
MAXP=${REPRO_PARAM_MAX_PARALLEL_PULLS:-}
for v in "$LARGE_MB" "$THRESHOLD_S"; do
    case $v in '' | *[!0-9]*) die "params large_mb and delay_threshold_s must be non-negative integers, got '$v'" ;; esac
done
[ "$LARGE_MB" -ge 1 ] || die "param large_mb must be at least 1"
case $MAXP in *[!0-9]*) die "param max_parallel_pulls must be empty or a non-negative integer, got '$MAXP'" ;; esac
# The rate in bit/s, for the metrics and the expected transfer time.
case ${BANDWIDTH%?bit} in '' | *[!0-9]*) die "param bandwidth must be <N>kbit or <N>mbit, got '$BANDWIDTH'" ;; esac
case $BANDWIDTH in
*kbit) BW_BITS=$((${BANDWIDTH%kbit} * 1000)) ;;
*mbit) BW_BITS=$((${BANDWIDTH%mbit} * 1000000)) ;;
*) die "param bandwidth must be <N>kbit or <N>mbit, got '$BANDWIDTH'" ;;
esac
[ "$BW_BITS" -ge 64000 ] || die "param bandwidth must be at least 64kbit, got '$BANDWIDTH'"

# Pull mode: the parameter, else the kubelet profile, else serialized (the
# default of every kubelet: serializeImagePulls=true).
MODE_FROM=param
if [ -z "$PULL_MODE" ]; then
    if [ "${REPRO_KUBELET_SERIALIZE_IMAGE_PULLS:-1}" = 0 ]; then
        PULL_MODE=parallel
    else
        PULL_MODE=serial
    fi
    MODE_FROM=${REPRO_KUBELET_SERIALIZE_IMAGE_PULLS:+kubelet profile}
    MODE_FROM=${MODE_FROM:-default}
fi
case $PULL_MODE in serial | parallel) ;; *) die "param pull_mode must be empty, serial or parallel, got '$PULL_MODE'" ;; esac
[ -n "$MAXP" ] || MAXP=${REPRO_KUBELET_MAX_PARALLEL_IMAGE_PULLS:-0}
case $MAXP in '' | *[!0-9]*) MAXP=0 ;; esac
# Pulls at once: 1 when serialized; else maxParallelImagePulls (0: no bound).
if [ "$PULL_MODE" = serial ]; then SLOTS=1; else SLOTS=$MAXP; fi

FAST_PORT=5000
SLOW_PORT=5001
FAST=http://127.0.0.1:$FAST_PORT
STORE=/var/lib/repro-slow-image-pull
NS=k8s.io
LARGE_REF=127.0.0.1:$SLOW_PORT/repro/large:1
SMALL_REF=127.0.0.1:$FAST_PORT/repro/small:1

rt_require
for t in tc curl jq gzip sha256sum ctr docker-registry systemd-run; do
    command -v "$t" >/dev/null 2>&1 || skip "$t is not installed in this image"
done
[ -x /bin/busybox ] || skip "/bin/busybox is not installed in this image"
record_context
emit_string pull_mode "$PULL_MODE"
emit_string pull_mode_from "$MODE_FROM"
emit_metric pull_slots "$SLOTS" "pulls at once (0: unlimited)"
emit_metric kubelet_serialize_image_pulls "${REPRO_KUBELET_SERIALIZE_IMAGE_PULLS:-1}"
emit_metric kubelet_max_parallel_image_pulls "${REPRO_KUBELET_MAX_PARALLEL_IMAGE_PULLS:-0}"
emit_string registry_version "$(dpkg-query -W -f '${Version}' docker-registry 2>/dev/null)"
emit_string bandwidth "$BANDWIDTH"
emit_metric bandwidth_kbit $((BW_BITS / 1000)) kbit/s
emit_metric large_mb "$LARGE_MB" MiB
emit_metric delay_threshold_s "$THRESHOLD_S" s

TC_SET=0
undo() {
    [ "$TC_SET" = 1 ] && { tc qdisc del dev lo root 2>/dev/null || log "could not remove the qdisc on lo"; }
    ctr -n "$NS" images rm "$LARGE_REF" "$SMALL_REF" >/dev/null 2>&1
    for p in $FAST_PORT $SLOW_PORT; do
        systemctl stop "repro-registry-$p.service" 2>/dev/null
        systemctl reset-failed "repro-registry-$p.service" 2>/dev/null
    done
    rm -rf "$STORE"
}
CLEANUP=undo

now_ms() { date +%s%3N; }

# --- registries ------------------------------------------------------------------
rt_containerd_start
rm -rf "$STORE"
mkdir -p "$STORE/registry" || die "cannot create $STORE"
for p in $FAST_PORT $SLOW_PORT; do
    curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$p/v2/" && die "something already listens on 127.0.0.1:$p"
    cat >"$STORE/registry-$p.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $STORE/registry
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$p
  secret: repro-slow-image-pull
EOF
    systemd-run --quiet --unit "repro-registry-$p" /usr/bin/docker-registry serve "$STORE/registry-$p.yml" ||
        die "systemd-run docker-registry on port $p failed"
done
T_REG=$(now_ms)
for p in $FAST_PORT $SLOW_PORT; do
    i=0
    until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$p/v2/")" = 200 ]; do
        i=$((i + 1))
        if [ "$i" -ge 240 ] || ! systemctl is-active --quiet "repro-registry-$p.service"; then
            die "docker-registry on port $p does not answer: $(journalctl -u "repro-registry-$p" -n 3 --no-pager 2>&1 | tr '\n' ' ')"
        fi
        sleep 0.5
    done
done
log "registries up on $FAST_PORT (fast) and $SLOW_PORT (slow) after $(($(now_ms) - T_REG)) ms"

# --- images ----------------------------------------------------------------------
IMG=$WORK/img
mkdir -p "$IMG"
rt_busybox_rootfs "$WORK/rootfs"

# make_layer SRC_DIR OUT [raw]: a layer blob from the folder: OUT.tar.gz, or
# with `raw` the plain OUT.tar (for random data, which gzip cannot shrink:
# it saves compressing and decompressing megabytes under emulation). Sets
# L_BLOB, L_TYPE (media type), L_DIFF (digest of the tar: the config's
# diff_id), L_DIGEST and L_SIZE (of the blob).
make_layer() {
    tar --numeric-owner --owner=0 --group=0 -C "$1" -cf "$2.tar" . || die "tar of $1 failed"
    L_DIFF=sha256:$(sha256sum "$2.tar" | cut -d' ' -f1)
    if [ "${3:-}" = raw ]; then
        L_BLOB=$2.tar
        L_TYPE=application/vnd.docker.image.rootfs.diff.tar
        L_DIGEST=$L_DIFF
    else
        gzip -1 -n -c "$2.tar" >"$2.tar.gz" || die "gzip of $2.tar failed"
        rm -f "$2.tar"
        L_BLOB=$2.tar.gz
        L_TYPE=application/vnd.docker.image.rootfs.diff.tar.gzip
        L_DIGEST=sha256:$(sha256sum "$L_BLOB" | cut -d' ' -f1)
    fi
    L_SIZE=$(stat -c %s "$L_BLOB")
}

# push_blob REPO FILE DIGEST: monolithic upload (POST, then PUT with the digest).
push_blob() {
    _loc=$(curl -sS -f -X POST -o /dev/null -D - "$FAST/v2/$1/blobs/uploads/" | tr -d '\r' |
        sed -n 's/^[Ll]ocation: *//p')
    [ -n "$_loc" ] || return 1
    case $_loc in /*) _loc=$FAST$_loc ;; esac
    case $_loc in *\?*) _sep='&' ;; *) _sep='?' ;; esac
    curl -sS -f -o /dev/null -H 'Content-Type: application/octet-stream' \
        --upload-file "$2" "$_loc${_sep}digest=$3"
}

# build_push NAME FILLER_MB: a busybox layer (with /etc/repro-image naming the
# image, so no layer is shared between the two images) plus, when FILLER_MB
# is not 0, a layer of that many random MiB; pushed as repro/NAME:1. Sets
# IMG_BYTES (config and layers, as transferred).
build_push() {
    _n=$1
    _d=$IMG/$_n
    mkdir -p "$_d/base" "$_d/filler"
    cp -a "$WORK/rootfs/." "$_d/base/" || die "cannot copy the busybox root filesystem"
    echo "$_n" >"$_d/base/etc/repro-image"
    make_layer "$_d/base" "$_d/layer-base"
    _diffs="\"$L_DIFF\""
    _layers=$(jq -n -c --arg t "$L_TYPE" --arg d "$L_DIGEST" --argjson s "$L_SIZE" \
        '{mediaType: $t, size: $s, digest: $d}')
    _blobs="$L_BLOB $L_DIGEST"
    IMG_BYTES=$L_SIZE
    rm -rf "$_d/base"
    if [ "$2" -gt 0 ]; then
        head -c $(($2 * 1048576)) /dev/urandom >"$_d/filler/filler.bin" || die "cannot write the filler"
        make_layer "$_d/filler" "$_d/layer-filler" raw
        rm -rf "$_d/filler"
        _diffs="$_diffs,\"$L_DIFF\""
        _layers="$_layers
$(jq -n -c --arg t "$L_TYPE" --arg d "$L_DIGEST" --argjson s "$L_SIZE" \
            '{mediaType: $t, size: $s, digest: $d}')"
        _blobs="$_blobs
$L_BLOB $L_DIGEST"
        IMG_BYTES=$((IMG_BYTES + L_SIZE))
    fi
    jq -n -c --argjson diffs "[$_diffs]" --arg n "$_n" '{
        architecture: "amd64", os: "linux",
        config: {Env: ["PATH=/bin"], Cmd: ["/bin/sh"], Labels: {"repro.image": $n}},
        rootfs: {type: "layers", diff_ids: $diffs}}' >"$_d/config.json" || die "jq (config of $_n) failed"
    _cdig=sha256:$(sha256sum "$_d/config.json" | cut -d' ' -f1)
    _csize=$(stat -c %s "$_d/config.json")
    IMG_BYTES=$((IMG_BYTES + _csize))
    printf '%s\n' "$_layers" | jq -s -c --arg d "$_cdig" --argjson s "$_csize" '{
        schemaVersion: 2,
        mediaType: "application/vnd.docker.distribution.manifest.v2+json",
        config: {mediaType: "application/vnd.docker.container.image.v1+json", size: $s, digest: $d},
        layers: .}' >"$_d/manifest.json" || die "jq (manifest of $_n) failed"
    _blobs="$_blobs
$_d/config.json $_cdig"
    printf '%s\n' "$_blobs" >"$_d/blobs"
    while read -r _f _dig; do
        push_blob "repro/$_n" "$_f" "$_dig" || die "pushing blob $_dig of $_n failed"
    done <"$_d/blobs"
    curl -sS -f -o /dev/null -X PUT -H 'Content-Type: application/vnd.docker.distribution.manifest.v2+json' \
        --data-binary @"$_d/manifest.json" "$FAST/v2/repro/$_n/manifests/1" || die "pushing the manifest of $_n failed"
    rm -f "$_d"/layer-*.tar "$_d"/layer-*.tar.gz
}

T_BUILD=$(now_ms)
build_push large "$LARGE_MB"
LARGE_BYTES=$IMG_BYTES
build_push small 0
SMALL_BYTES=$IMG_BYTES
log "images built and pushed in $(($(now_ms) - T_BUILD)) ms: large $LARGE_BYTES bytes, small $SMALL_BYTES bytes"
emit_metric large_image_bytes "$LARGE_BYTES" bytes
emit_metric small_image_bytes "$SMALL_BYTES" bytes
# The slow instance must see what was pushed through the fast one.
curl -s -f -o /dev/null -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://127.0.0.1:$SLOW_PORT/v2/repro/large/manifests/1" ||
    die "the slow registry does not serve repro/large:1 (shared storage $STORE/registry)"

# --- throttle: replies from the slow registry's port go through a tbf band ----------
# The bucket holds at least one 64 KiB loopback packet (lo's MTU is 65536).
BURST=$((BW_BITS / 8 / 10))
[ "$BURST" -ge 131072 ] || BURST=131072
tc_err=$(
    {
        tc qdisc add dev lo root handle 1: prio bands 4 priomap 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 &&
            tc qdisc add dev lo parent 1:4 handle 40: tbf rate "$BANDWIDTH" burst "$BURST" latency 60s &&
            tc filter add dev lo parent 1: protocol ip prio 1 u32 match ip sport "$SLOW_PORT" 0xffff flowid 1:4
    } 2>&1
) || {
    tc qdisc del dev lo root 2>/dev/null
    skip "cannot throttle the slow registry with tc on lo: $tc_err"
}
TC_SET=1
EXPECT_MS=$((LARGE_BYTES * 8 / (BW_BITS / 1000)))
emit_metric large_expected_transfer_ms "$EXPECT_MS" ms
log "slow registry throttled to $BANDWIDTH (burst $BURST bytes): the large image needs about $EXPECT_MS ms"

# --- pulls ---------------------------------------------------------------------------
# pull NAME REF: one image pull through containerd, like the kubelet's CRI
# PullImage (fetch and unpack); start and end in ms, exit status in files.
pull() {
    now_ms >"$WORK/$1.start"
    ctr -n "$NS" images pull --plain-http "$2" >"$WORK/$1.log" 2>&1
    _rc=$?
    now_ms >"$WORK/$1.end"
    echo "$_rc" >"$WORK/$1.rc"
}

log "pulling $LARGE_REF then $SMALL_REF ($PULL_MODE, slots $SLOTS)"
T0=$(now_ms)
if [ "$SLOTS" = 1 ]; then
    # One image puller: the small image's request waits in the queue.
    pull large "$LARGE_REF"
    pull small "$SMALL_REF"
else
    # Two images, at least two slots: both pulls start at once.
    pull large "$LARGE_REF" &
    PID_LARGE=$!
    pull small "$SMALL_REF" &
    PID_SMALL=$!
    wait "$PID_LARGE"
    wait "$PID_SMALL"
fi
for n in large small; do
    tail -n 5 "$WORK/$n.log" >"$REPRO_OUT/pull-$n.log" 2>/dev/null
    [ "$(cat "$WORK/$n.rc" 2>/dev/null)" = 0 ] || die "ctr pull of the $n image failed: $(tail -n 1 "$WORK/$n.log")"
done
tc -s qdisc show dev lo >"$REPRO_OUT/tc-qdisc.txt" 2>&1
THROTTLED=$(awk '/^qdisc tbf 40:/ {f = 1; next} f && /Sent/ {print $2; exit}' "$REPRO_OUT/tc-qdisc.txt")
THROTTLED=${THROTTLED:-0}
emit_metric throttled_bytes "$THROTTLED" bytes
# Conditions: the large image really came through the throttle.
[ "$THROTTLED" -ge $((LARGE_BYTES * 9 / 10)) ] ||
    die "only $THROTTLED bytes went through the throttle, the large image has $LARGE_BYTES: the slow registry was not slow"

rel() { echo $(($(cat "$WORK/$1") - T0)); }
LS=$(rel large.start)
LE=$(rel large.end)
SS=$(rel small.start)
SE=$(rel small.end)
emit_metric large_pull_ms $((LE - LS)) ms
emit_metric large_end_ms "$LE" ms
emit_metric small_pull_ms $((SE - SS)) ms
emit_metric small_start_ms "$SS" ms
emit_metric small_end_ms "$SE" ms
# Both images were requested at T0: the small one is there SE ms later.
emit_metric small_delay_ms "$SE" ms
emit_series pull_start_ms 1 "$LS" "queue position" ms
emit_series pull_start_ms 2 "$SS" "queue position" ms
emit_series pull_end_ms 1 "$LE" "queue position" ms
emit_series pull_end_ms 2 "$SE" "queue position" ms
log "large: $LS..$LE ms; small: $SS..$SE ms"

if [ "$SE" -gt "$LE" ]; then
    emit_outcome reproduced "$PULL_MODE pulls: the small image ($SMALL_BYTES bytes, fast registry) was there only after $SE ms, $((SE - LE)) ms after the large one ($LARGE_BYTES bytes at $BANDWIDTH, $((LE - LS)) ms); its own pull took $((SE - SS)) ms"
elif [ "$SE" -gt $((THRESHOLD_S * 1000)) ]; then
    emit_outcome reproduced "$PULL_MODE pulls (slots $SLOTS): the small image was there $((LE - SE)) ms before the large one but only after $SE ms, more than delay_threshold_s=$THRESHOLD_S s (its own pull $((SE - SS)) ms)"
else
    emit_outcome not-reproduced "$PULL_MODE pulls (slots $SLOTS): the small image was there after $SE ms (its own pull $((SE - SS)) ms), $((LE - SE)) ms before the large one ($LE ms at $BANDWIDTH)"
fi
