#!/bin/sh
# /init of repro's initramfs guest (built by harness/src/images/initramfs.rs).
# Mounts the pseudo-filesystems, loads the kernel modules in dependency
# order, installs the run's SSH key from the kernel command line, brings up
# the user-mode network and hands over to `repro-kit init`, which runs
# dropbear (restarting it when it dies), reaps orphans, and prints
# REPRO-READY once sshd listens. Nothing here mounts cgroups: scenarios
# mount what they need.
#
# With `repro.root=/dev/vda` (a root-filesystem guest) it also loads the
# block, filesystem and runtime modules, mounts that disk, puts the run's
# key, repro-kit and the resolver into it, and hands over to its systemd;
# the image's repro-ready.service prints REPRO-READY once its sshd is up.
#
# A guest that cannot work says so at once: when a required driver is
# missing, no network interface appears, or the root disk cannot be mounted,
# it prints ONE line `REPRO-FAILED <what failed>: <why>` and powers off. The
# harness ends the attempt `error` with that reason (no wait for SSH, no
# retry). /etc/repro/required lists the drivers each guest shape needs and
# what the harness knew of them when it built the image:
#   PURPOSE MODULE STATE DETAIL   (PURPOSE net|root; STATE module: a file here,
#   builtin, missing, unknown: no modules.builtin or kernel config told)
export PATH=/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
read -r cmdline < /proc/cmdline
root=""
for arg in $cmdline; do
    case "$arg" in repro.root=*) root="${arg#repro.root=}" ;; esac
done

# fail WHAT: the one failure line, then power off (never returns).
fail() {
    echo "REPRO-FAILED $*"
    poweroff -f
    while :; do sleep 60; done
}

# why PURPOSE: what became of the drivers PURPOSE needs, for a failure line.
why() {
    _out=""
    _named=" "
    while read -r _p _m _s _d; do
        [ "$_p" = "$1" ] || continue
        _named="$_named$_m "
        case $_s in
        module)
            if [ -d "/sys/module/$_m" ]; then
                _r="$_m loaded"
            else
                _e=$(sed -n "s/^$_m: //p" /run/repro-insmod.err | head -n 1)
                _r="$_m not loaded (${_e:-insmod was not tried})"
            fi
            ;;
        builtin) _r="$_m built in ($_d)" ;;
        missing) _r="$_m not in this kernel ($_d)" ;;
        *) _r="$_m not loaded: no module file for it ($_d)" ;;
        esac
        _out="${_out:+$_out; }$_r"
    done < /etc/repro/required
    # Other modules that did not load (a dependency, the device's bus).
    _others=""
    for _m in $(cut -d: -f1 /run/repro-insmod.err); do
        case "$_named" in *" $_m "*) ;; *) _others="$_others $_m" ;; esac
    done
    [ -n "$_others" ] && _out="${_out:+$_out; }insmod also failed for:$_others"
    echo "${_out:-the image names no driver for it}"
}

# Modules, dependencies first; `mod.param=value` kernel arguments are
# passed on to insmod as a modprobe would. Without a PCI bus (microvm)
# the virtio-pci chain is skipped: it would only cost boot time. Failures
# are kept in /run/repro-insmod.err (`module: insmod's message`).
: > /run/repro-insmod.err
load() {
    # shellcheck disable=SC2086
    if ! _e=$(insmod "/lib/modules/$1.ko" $2 2>&1); then
        _e=$(echo "$_e" | tr '\n' ' ')
        echo "repro-init: $1: $_e"
        echo "$1: ${_e% }" >> /run/repro-insmod.err
    fi
}
pci=0
[ -n "$(ls /sys/bus/pci/devices 2>/dev/null)" ] && pci=1
while read -r m; do
    [ -n "$m" ] || continue
    case "$m" in virtio_pci*) [ "$pci" = 1 ] || continue ;; esac
    params=""
    for arg in $cmdline; do
        case "$arg" in "$m".*) params="$params ${arg#"$m".}" ;; esac
    done
    load "$m" "$params"
done < /etc/repro/modules
if [ -n "$root" ]; then
    while read -r m; do
        [ -n "$m" ] || continue
        load "$m" ""
    done < /etc/repro/rootfs-modules
fi

for arg in $cmdline; do
    case "$arg" in
    repro.probe=1)
        echo "REPRO-PROBE-OK"
        reboot -f
        ;;
    repro.key=*)
        mkdir -p /root/.ssh
        echo "ssh-ed25519 ${arg#repro.key=}" > /root/.ssh/authorized_keys
        chmod 700 /root/.ssh
        chmod 600 /root/.ssh/authorized_keys
        ;;
    esac
done

# The network interface: the first one backed by a device (eth0 on the
# kernels here), given up to 3 s to appear.
hostname repro
ip link set lo up
nic=""
i=0
while :; do
    for d in /sys/class/net/*; do
        [ -e "$d/device" ] && nic=${d##*/} && break
    done
    [ -n "$nic" ] || [ "$i" -ge 30 ] && break
    sleep 0.1
    i=$((i + 1))
done
[ -n "$nic" ] || fail "no network interface: $(why net)"
ip link set "$nic" up
ip addr add 10.0.2.15/24 dev "$nic"
ip route add default via 10.0.2.2
echo "nameserver 10.0.2.3" > /etc/resolv.conf

if [ -n "$root" ]; then
    i=0
    while [ ! -b "$root" ] && [ "$i" -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    [ -b "$root" ] || fail "root disk $root did not appear: $(why root)"
    mkdir -p /newroot
    if ! e=$(mount -t ext4 -o rw,noatime "$root" /newroot 2>&1); then
        e=$(echo "$e" | tr '\n' ' ')
        fail "cannot mount the root disk $root as ext4 (${e% }): $(why root)"
    fi
    mkdir -p /newroot/root/.ssh
    cp /root/.ssh/authorized_keys /newroot/root/.ssh/authorized_keys
    chmod 700 /newroot/root/.ssh
    chmod 600 /newroot/root/.ssh/authorized_keys
    cp /usr/bin/repro-kit /newroot/usr/bin/repro-kit
    rm -f /newroot/etc/resolv.conf
    cp /etc/resolv.conf /newroot/etc/resolv.conf
    umount /tmp /run /dev/pts
    for fs in dev proc sys; do
        mount --move "/$fs" "/newroot/$fs"
    done
    exec switch_root /newroot /sbin/init
fi
# repro-kit init stays PID 1 for good: it reaps every orphan, runs
# dropbear in the foreground and restarts it whenever it dies (a scenario
# may kill every process it can see: `kill -9 -1` spares only PID 1), and
# prints REPRO-READY once dropbear listens. An init that exited would
# panic the kernel ("Attempted to kill init!").
exec /usr/bin/repro-kit init --name sshd --log /run/dropbear.log \
    --ready REPRO-READY --ready-port 22 -- \
    /usr/sbin/dropbear -F -E -r /etc/dropbear/dropbear_ed25519_host_key -p 22 -s -j -k
