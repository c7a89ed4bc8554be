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

# Modules, dependencies first; `mod.param=value` kernel arguments are
# passed on to insmod as a modprobe would. Without a PCI bus (microvm)
# the virtio-pci chain is skipped: it would only cost boot time.
pci=0
[ -n "$(ls /sys/bus/pci/devices 2>/dev/null)" ] && pci=1
while read -r m; do
    [ -n "$m" ] || continue
    case "$m" in virtio_pci*) [ "$pci" = 1 ] || continue ;; esac
    params=""
    for arg in $cmdline; do
        case "$arg" in "$m".*) params="$params ${arg#"$m".}" ;; esac
    done
    # shellcheck disable=SC2086
    insmod "/lib/modules/$m.ko" $params || echo "repro-init: insmod $m failed"
done < /etc/repro/modules
if [ -n "$root" ]; then
    while read -r m; do
        [ -n "$m" ] || continue
        insmod "/lib/modules/$m.ko" || echo "repro-init: insmod $m failed"
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

hostname repro
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
echo "nameserver 10.0.2.3" > /etc/resolv.conf

if [ -n "$root" ]; then
    i=0
    while [ ! -b "$root" ] && [ "$i" -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    mkdir -p /newroot
    if ! mount -t ext4 -o rw,noatime "$root" /newroot; then
        echo "REPRO-ROOT-FAILED: cannot mount $root (is the disk attached and ext4?)"
        poweroff -f
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
