# A kernel warning in the kernel's own format, at KERN_WARNING (<4>).
#
# A stock Debian 6.1 kernel offers no cheap, safe way for userspace to make
# the kernel WARN() itself (no lkdtm, no fault injection), so the splat is
# written through /dev/kmsg. It still goes through the kernel's log levels:
# it reaches the serial console only when the console prints warnings (not
# under `quiet`, console level 4), which is what this fixture proves. One
# record per write; fewer than 10 (devkmsg's rate limit).
kmsg() { printf '<4>%s\n' "$1" > /dev/kmsg; }
kmsg '------------[ cut here ]------------'
kmsg "WARNING: CPU: 0 PID: $$ at mm/repro_fixture.c:42 repro_fixture_warn+0x1a/0x30"
kmsg 'Modules linked in: virtio_net net_failover failover'
kmsg "CPU: 0 PID: $$ Comm: sh Not tainted $(uname -r) #1"
kmsg 'RIP: 0010:repro_fixture_warn+0x1a/0x30'
kmsg '---[ end trace 0000000000000000 ]---'
repro-kit emit metric pid "$$"
repro-kit emit outcome not-reproduced "the warning was logged; the scenario's own verdict stands"
