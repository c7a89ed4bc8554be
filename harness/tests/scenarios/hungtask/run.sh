# A task blocked uninterruptibly (D state) for longer than
# hung_task_timeout_secs, lowered here from Debian's 120 s to 5 s.
#
# A FUSE mount whose daemon (this shell, holding /dev/fuse as fd 3) never
# answers FUSE_INIT: `cat` looks a name up in its root and waits (killably)
# while holding the root folder's lock shared; `mkdir` in that folder then
# waits for the lock exclusively, uninterruptibly, which the kernel's
# hung-task detector reports ("INFO: task mkdir:N blocked for more than 5
# seconds", KERN_ERR; the task's stack follows at KERN_INFO, in dmesg
# only). Closing fd 3 aborts the connection and frees both.
set -u
T=/proc/sys/kernel/hung_task_timeout_secs
if [ ! -w "$T" ]; then
    echo "this kernel has no hung-task detector ($T)" >&2
    exit 1
fi
[ -c /dev/fuse ] || insmod /lib/modules/fuse.ko || exit 1
mkdir -p /mnt/stuck
exec 3<>/dev/fuse
/bin/busybox mount -t fuse -o fd=3,rootmode=40000,user_id=0,group_id=0 repro-stuck /mnt/stuck || exit 1
old=$(cat "$T")
echo 5 > "$T"
cat /mnt/stuck/held 3>&- 2>/dev/null &
sleep 1
mkdir /mnt/stuck/blocked 3>&- 2>/dev/null &
i=0
while [ "$i" -lt 90 ] && ! dmesg | grep -q 'INFO: task mkdir:.* blocked for more than'; do
    sleep 1
    i=$((i + 1))
done
exec 3>&-
wait
/bin/busybox umount /mnt/stuck
echo "$old" > "$T"
if dmesg | grep -q 'INFO: task mkdir:.* blocked for more than'; then
    repro-kit emit outcome reproduced "mkdir stayed in D state past hung_task_timeout_secs (5 s)"
else
    repro-kit emit outcome not-reproduced "the hung-task detector did not report mkdir within 90 s"
fi
