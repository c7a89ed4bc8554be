#!/bin/sh
# Run by the rootfs builder (harness/src/images/rootfs.rs) as mmdebstrap's
# customize hook, on the host, with the new root filesystem as $1.
# Everything here is part of the image's input hash.
#
# The guest's network, its run key, repro-kit and the kernel's modules
# come from the initramfs at boot (images/initramfs/init.sh), so that the
# image does not depend on the kernel or the harness build.
set -eu
root="$1"

echo repro > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\trepro\n' > "$root/etc/hosts"
# The initramfs mounts the root read-write; no fsck on a throw-away overlay.
echo '/dev/vda / ext4 rw,noatime 0 0' > "$root/etc/fstab"

# SSH: root by key only, ed25519 host key only (its public half is
# recorded next to the image and pinned by the harness).
rm -f "$root"/etc/ssh/ssh_host_*
chroot "$root" ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
mkdir -p "$root/etc/ssh/sshd_config.d"
cat > "$root/etc/ssh/sshd_config.d/repro.conf" <<'CONF'
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
MaxSessions 64
MaxStartups 64
# No PAM: no logind session and no per-login `systemd --user` to start
# (seconds under TCG); the harness's commands run in ssh.service, as a
# node's daemons run in their own services.
UsePAM no
CONF

# Tell the harness when sshd listens: the console line it waits for.
cat > "$root/etc/systemd/system/repro-ready.service" <<'UNIT'
[Unit]
Description=Tell the repro harness that sshd is up
After=ssh.service
Wants=ssh.service

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo "REPRO-READY $(cut -d" " -f1 /proc/uptime)" > /dev/console'

[Install]
WantedBy=multi-user.target
UNIT
chroot "$root" systemctl enable repro-ready.service ssh.service

# The journal stays in memory (the cell saves `journalctl -b`) and is big
# enough to hold a flood of slice messages.
mkdir -p "$root/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=256M\n' \
    > "$root/etc/systemd/journald.conf.d/repro.conf"

# Services a scenario starts itself, with its own configuration (the
# cgroup driver decides containerd's), and boot-time work nobody needs.
for unit in containerd.service docker-registry.service \
    apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
    e2scrub_reap.service fstrim.timer man-db.timer \
    systemd-networkd-wait-online.service getty@tty1.service; do
    chroot "$root" systemctl disable "$unit" >/dev/null 2>&1 || true
done
chroot "$root" systemctl mask systemd-networkd-wait-online.service \
    getty@tty1.service >/dev/null 2>&1 || true

# Boot time under TCG: no login prompt on the serial console, no module
# loading (the image has no modules: the initramfs loaded what guests
# need), no daily timers, no first-boot cache rebuilds (every boot of a
# fresh overlay is a "first" boot: ldconfig, hwdb, journal catalog), and
# sshd not started twice (Debian's unit runs `sshd -t` first).
for unit in serial-getty@ttyS0.service modprobe@.service \
    systemd-modules-load.service dpkg-db-backup.timer \
    systemd-tmpfiles-clean.timer ldconfig.service \
    systemd-update-done.service systemd-hwdb-update.service \
    systemd-journal-catalog-update.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
mkdir -p "$root/etc/systemd/system/ssh.service.d"
printf '[Service]\nExecStartPre=\n' >"$root/etc/systemd/system/ssh.service.d/repro.conf"

# Package caches are not part of the image.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
