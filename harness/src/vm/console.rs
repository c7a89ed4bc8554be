//! The guest's serial console: captured to a file, kept in memory, and
//! classified line by line for kernel crashes and warnings (patterns after
//! syzkaller's `pkg/report` and LAVA's kernel-message checks). The same
//! classifier reads the `dmesg` fetched at the end of an attempt
//! ([`classify_log`]), merged with the console's findings by
//! [`merge_dmesg`].

use crate::caplog::{CappedFile, Capture};
use crate::model::{ConsoleFinding, FindingKind, FindingSource};
use std::collections::VecDeque;
use std::io::Read;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// A classified console line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleEvent {
    pub kind: FindingKind,
    pub title: String,
    pub line_index: usize,
}

/// What the guest's `/init` prints, then powers off, when it cannot set the guest up
/// (images/initramfs/init.sh): `REPRO-FAILED <what failed>: <why>`.
pub const FAILED_MARKER: &str = "REPRO-FAILED ";

/// The reason on a `REPRO-FAILED` line, if `line` holds one.
pub fn guest_failure(line: &str) -> Option<&str> {
    let at = line.find(FAILED_MARKER)?;
    let why = line[at + FAILED_MARKER.len()..].trim();
    (!why.is_empty()).then_some(why)
}

/// Console lines kept from the start (the boot, the ready line).
const HEAD_LINES: usize = 10_000;
/// Console lines kept from the end (the tail shown in errors).
const RECENT_LINES: usize = 2_000;
/// Bytes of one line kept in memory and classified (printk's own limit
/// is 1024); the log file has every byte up to its cap.
const MAX_LINE: usize = 1024;
const EXCERPT_BEFORE: usize = 3;
const EXCERPT_AFTER: usize = 40;

#[derive(Default)]
struct State {
    /// The first [`HEAD_LINES`] lines.
    head: Vec<String>,
    /// The last [`RECENT_LINES`] lines after those.
    recent: VecDeque<String>,
    /// Lines seen.
    count: usize,
    events: Vec<ConsoleEvent>,
    /// Each event's excerpt: a few lines before it, it, the lines after.
    excerpts: Vec<Vec<String>>,
    /// Events whose excerpts still take lines, with how many.
    open: Vec<(usize, usize)>,
    /// The first `REPRO-FAILED` reason, kept whatever scrolls past.
    failure: Option<String>,
    /// Bytes read from the console, and when the last ones came.
    bytes: u64,
    last_output: Option<Instant>,
    /// What the capped console log kept, once the console closed.
    log: Option<Capture>,
    closed: bool,
}

impl State {
    fn last_lines(&self, n: usize) -> Vec<&str> {
        let from_recent = n.min(self.recent.len());
        let from_head = (n - from_recent).min(self.head.len());
        self.head[self.head.len() - from_head..]
            .iter()
            .chain(self.recent.iter().skip(self.recent.len() - from_recent))
            .map(String::as_str)
            .collect()
    }
}

/// Shared view of one guest's console.
///
/// The classifier reads the pipe, not the log file: it sees every line
/// however much the capped log drops (each on its first [`MAX_LINE`]
/// bytes), so a crash after a flood is still found. Memory is bounded:
/// the first and last lines are kept, and each finding keeps its own
/// excerpt.
pub struct Console {
    state: Mutex<State>,
    closed: Condvar,
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl Console {
    pub fn new() -> Console {
        Console {
            state: Mutex::new(State::default()),
            closed: Condvar::new(),
        }
    }

    /// The captured state; a reader thread that panicked left lines that
    /// are still worth reading.
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads `pipe` until EOF on a thread, writing every byte to the
    /// capped `log` and every line to the classifier.
    pub fn spawn_reader<R: Read + Send + 'static>(
        self: std::sync::Arc<Self>,
        mut pipe: R,
        mut log: CappedFile,
    ) {
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 8192];
            let mut line = Vec::with_capacity(256);
            loop {
                let n = match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let _ = log.put(&buf[..n]);
                self.note_output(n);
                for b in &buf[..n] {
                    if *b == b'\n' {
                        self.push_line(String::from_utf8_lossy(&line).trim_end_matches('\r'));
                        line.clear();
                    } else if line.len() < MAX_LINE {
                        line.push(*b);
                    }
                }
            }
            if !line.is_empty() {
                self.push_line(String::from_utf8_lossy(&line).trim_end_matches('\r'));
            }
            let kept = log.finish().ok();
            let mut st = self.state();
            st.log = kept;
            st.closed = true;
            self.closed.notify_all();
        });
    }

    fn note_output(&self, n: usize) {
        let mut st = self.state();
        st.bytes += n as u64;
        st.last_output = Some(Instant::now());
    }

    /// When the console last had output (`None`: never).
    pub fn last_output(&self) -> Option<Instant> {
        self.state().last_output
    }

    /// What the capped console log kept, once QEMU is gone.
    pub fn log_capture(&self) -> Option<Capture> {
        self.state().log
    }

    /// Adds one line (also used by tests).
    pub fn push_line(&self, line: &str) {
        let mut guard = self.state();
        let st = &mut *guard;
        let idx = st.count;
        st.count += 1;
        for (e, left) in st.open.iter_mut() {
            st.excerpts[*e].push(line.to_string());
            *left -= 1;
        }
        st.open.retain(|(_, left)| *left > 0);
        if st.failure.is_none() {
            st.failure = guest_failure(line).map(str::to_string);
        }
        if let Some((kind, title)) = classify_line(line) {
            let mut excerpt: Vec<String> = st
                .last_lines(EXCERPT_BEFORE)
                .into_iter()
                .map(str::to_string)
                .collect();
            excerpt.push(line.to_string());
            st.events.push(ConsoleEvent {
                kind,
                title,
                line_index: idx,
            });
            st.excerpts.push(excerpt);
            st.open.push((st.events.len() - 1, EXCERPT_AFTER - 1));
        }
        if st.head.len() < HEAD_LINES {
            st.head.push(line.to_string());
        } else {
            if st.recent.len() >= RECENT_LINES {
                st.recent.pop_front();
            }
            st.recent.push_back(line.to_string());
        }
    }

    /// Waits until the reader saw EOF (QEMU gone) or `timeout` passed.
    pub fn wait_closed(&self, timeout: Duration) {
        let st = self.state();
        let _ = self.closed.wait_timeout_while(st, timeout, |s| !s.closed);
    }

    /// Whether `needle` appeared on any line kept (the first
    /// [`HEAD_LINES`] and the last [`RECENT_LINES`]).
    pub fn contains(&self, needle: &str) -> bool {
        let st = self.state();
        st.head
            .iter()
            .chain(st.recent.iter())
            .any(|l| l.contains(needle))
    }

    /// The reason of the guest's first `REPRO-FAILED` line, if it printed one.
    pub fn guest_failure(&self) -> Option<String> {
        self.state().failure.clone()
    }

    /// The last `n` lines, joined.
    pub fn tail(&self, n: usize) -> String {
        self.state().last_lines(n).join("\n")
    }

    /// The first kernel crash, with its excerpt: a panic, BUG, oops or
    /// general protection fault, or init's exit when its panic's stack
    /// shows a kernel fault ([`is_kernel_fault`]).
    pub fn crash(&self) -> Option<ConsoleFinding> {
        self.all().into_iter().find(is_kernel_fault)
    }

    /// Every finding that is not a kernel crash ([`Console::crash`]), in
    /// console order: warnings, hangs, OOM kills, init's exit, a restarted
    /// SSH server.
    pub fn findings(&self) -> Vec<ConsoleFinding> {
        self.all()
            .into_iter()
            .filter(|f| !is_kernel_fault(f))
            .collect()
    }

    fn all(&self) -> Vec<ConsoleFinding> {
        let st = self.state();
        st.events
            .iter()
            .zip(&st.excerpts)
            .map(|(e, x)| ConsoleFinding {
                kind: e.kind,
                title: e.title.clone(),
                excerpt: x.join("\n"),
                source: FindingSource::Console,
            })
            .collect()
    }
}

fn excerpt<S: AsRef<str>>(lines: &[S], at: usize) -> String {
    let start = at.saturating_sub(EXCERPT_BEFORE);
    let end = (at + EXCERPT_AFTER).min(lines.len());
    lines[start..end]
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Functions on the stack of a task the kernel kills because it faulted
/// (an oops in its context): `make_task_dead` since 5.17 (and 5.10/5.15
/// stable), `rewind_stack_do_exit` before.
const FAULT_FRAMES: &[&str] = &[
    "make_task_dead",
    "rewind_stack_and_make_dead",
    "rewind_stack_do_exit",
    "oops_end",
    "page_fault_oops",
    "die_body",
];

/// Whether `f` is a kernel crash. init's exit is one only when its
/// panic's stack shows the kernel killed init for a fault of its own; an
/// init that exited or was killed by a signal is the guest's userland
/// dying, which the kernel answers with a panic by design.
pub fn is_kernel_fault(f: &ConsoleFinding) -> bool {
    match f.kind {
        FindingKind::InitExit => init_exit_shows_fault(&f.excerpt),
        k => k.is_crash(),
    }
}

/// Whether the panic report in `excerpt` (from the `Attempted to kill
/// init!` line to `---[ end Kernel panic`) has a fault frame on its stack.
fn init_exit_shows_fault(excerpt: &str) -> bool {
    excerpt
        .lines()
        .skip_while(|l| !l.contains("Attempted to kill init!"))
        .take_while(|l| !l.contains("---[ end Kernel panic"))
        .any(|l| {
            FAULT_FRAMES.iter().any(|f| {
                l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .any(|w| w == *f)
            })
        })
}

/// The findings in a whole log (a `dmesg` output), each with its excerpt
/// of that log, marked as read from `source`.
pub fn classify_log(text: &str, source: FindingSource) -> Vec<ConsoleFinding> {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            classify_line(l).map(|(kind, title)| ConsoleFinding {
                kind,
                title,
                excerpt: excerpt(&lines, i),
                source,
            })
        })
        .collect()
}

/// The console's non-crash findings with what `dmesg` adds. A `dmesg`
/// finding of the same kind and title as a console one is the same
/// message (each console finding matches at most one): the console's
/// stays, with the `dmesg` excerpt when that one is longer (it holds the
/// levels the console does not print, e.g. a hung task's stack). The
/// others are added after the console's. Crashes, init's exit and a
/// restarted SSH server are the console's alone: a kernel crash prints
/// at levels the console always shows, and the others are not kernel
/// messages.
pub fn merge_dmesg(
    console: Vec<ConsoleFinding>,
    dmesg: Vec<ConsoleFinding>,
) -> Vec<ConsoleFinding> {
    let mut out = console;
    let mut matched = vec![false; out.len()];
    let mut added = vec![];
    for d in dmesg {
        if d.kind.is_crash() || matches!(d.kind, FindingKind::InitExit | FindingKind::SshdRestart) {
            continue;
        }
        let same = (0..out.len())
            .find(|&i| !matched[i] && out[i].kind == d.kind && out[i].title == d.title);
        match same {
            Some(i) => {
                matched[i] = true;
                if d.excerpt.lines().count() > out[i].excerpt.lines().count() {
                    out[i].excerpt = d.excerpt;
                    out[i].source = d.source;
                }
            }
            None => added.push(d),
        }
    }
    out.extend(added);
    out
}

/// Strips a `[   12.345678] ` printk timestamp.
fn strip_timestamp(line: &str) -> &str {
    let t = line.trim_start();
    if let Some(rest) = t.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            let inner = &rest[..end];
            if inner.trim().chars().all(|c| c.is_ascii_digit() || c == '.') {
                return rest[end + 1..].trim_start();
            }
        }
    }
    t
}

/// What the initramfs guest's init (`repro-kit init`) prints when it
/// restarts a killed SSH server; the rest of the line says how it ended.
pub const SSHD_RESTART_PREFIX: &str = "repro-init: sshd ";

/// Classifies one console line. Pure; the fixtures in the tests are real
/// kernel output.
pub fn classify_line(line: &str) -> Option<(FindingKind, String)> {
    use FindingKind::*;
    let msg = strip_timestamp(line);
    let title = |s: &str| s.trim().trim_end_matches(" ]---").to_string();
    // Crashes, and init's exit (which the kernel answers with a panic).
    if let Some(rest) = msg.strip_prefix("Kernel panic - not syncing:") {
        let kind = if rest.trim_start().starts_with("Attempted to kill init!") {
            InitExit
        } else {
            Panic
        };
        return Some((kind, format!("kernel panic: {}", title(rest))));
    }
    if msg.starts_with("BUG: soft lockup") {
        return Some((SoftLockup, title(msg)));
    }
    if msg.starts_with("BUG: workqueue lockup") {
        return Some((WorkqueueLockup, title(msg)));
    }
    if msg.starts_with("BUG: ") || msg.starts_with("kernel BUG at ") {
        return Some((Bug, title(msg)));
    }
    if msg.starts_with("Oops: ") || msg.starts_with("Oops ") {
        return Some((Oops, title(msg)));
    }
    if msg.starts_with("general protection fault") {
        return Some((Gpf, title(msg)));
    }
    // Warnings and hangs.
    if msg.starts_with("WARNING: ") {
        return Some((Warning, title(msg)));
    }
    if msg.starts_with("watchdog: BUG: soft lockup") {
        return Some((SoftLockup, title(msg)));
    }
    if msg.starts_with("INFO: task ") && msg.contains("blocked for more than") {
        return Some((HungTask, title(msg)));
    }
    if msg.starts_with("rcu: INFO: rcu_") && msg.contains("detected stall")
        || msg.starts_with("INFO: rcu_") && msg.contains("detected stall")
    {
        return Some((RcuStall, title(msg)));
    }
    if msg.starts_with("Out of memory: Kill")
        || msg.starts_with("Memory cgroup out of memory: Kill")
        || (msg.contains("invoked oom-killer"))
    {
        return Some((OomKill, title(msg)));
    }
    // The guest's own helpers (not kernel messages, never timestamped).
    if line.starts_with(SSHD_RESTART_PREFIX) {
        return Some((SshdRestart, title(&line["repro-init: ".len()..])));
    }
    // systemd on a root-filesystem guest: on the console once journald is
    // gone too (e.g. `kill -9 -1`); ssh.service restarts on failure.
    if let Some(rest) = msg.strip_prefix("systemd[1]: ") {
        if rest.starts_with("ssh.service: Main process exited, ") {
            return Some((SshdRestart, title(rest)));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use FindingKind::*;

    #[rstest]
    #[case(
        "[   21.104210] Kernel panic - not syncing: sysrq triggered crash",
        Panic,
        "kernel panic: sysrq triggered crash"
    )]
    #[case(
        "[    3.1] BUG: kernel NULL pointer dereference, address: 0000000000000000",
        Bug,
        "BUG: kernel NULL pointer dereference, address: 0000000000000000"
    )]
    #[case(
        "[   44.0] Oops: 0002 [#1] PREEMPT SMP NOPTI",
        Oops,
        "Oops: 0002 [#1] PREEMPT SMP NOPTI"
    )]
    #[case("general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] SMP", Gpf, "general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] SMP")]
    #[case(
        "[   37.520318] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000009",
        InitExit,
        "kernel panic: Attempted to kill init! exitcode=0x00000009"
    )]
    #[case(
        "[  52.2] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [repro-kit:211]",
        SoftLockup,
        "watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [repro-kit:211]"
    )]
    #[case(
        "[ 242.1] INFO: task kworker/0:1:15 blocked for more than 120 seconds.",
        HungTask,
        "INFO: task kworker/0:1:15 blocked for more than 120 seconds."
    )]
    #[case(
        "[ 80.0] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
        RcuStall,
        "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:"
    )]
    #[case(
        "[ 9.9] WARNING: CPU: 0 PID: 1 at mm/memcontrol.c:123 mem_cgroup_css_free+0x1/0x2",
        Warning,
        "WARNING: CPU: 0 PID: 1 at mm/memcontrol.c:123 mem_cgroup_css_free+0x1/0x2"
    )]
    #[case(
        "[ 70.1] Out of memory: Killed process 321 (repro-kit) total-vm:1kB",
        OomKill,
        "Out of memory: Killed process 321 (repro-kit) total-vm:1kB"
    )]
    #[case(
        "[ 70.0] repro-kit invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0",
        OomKill,
        "repro-kit invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0"
    )]
    #[case(
        "repro-init: sshd (dropbear, pid 91) was killed by signal 9 (SIGKILL); restarting it",
        SshdRestart,
        "sshd (dropbear, pid 91) was killed by signal 9 (SIGKILL); restarting it"
    )]
    #[case(
        "[   22.460919] systemd[1]: ssh.service: Main process exited, code=killed, status=9/KILL",
        SshdRestart,
        "ssh.service: Main process exited, code=killed, status=9/KILL"
    )]
    fn classifies_real_kernel_lines(
        #[case] line: &str,
        #[case] kind: FindingKind,
        #[case] title: &str,
    ) {
        let (k, t) = classify_line(line).expect("classified");
        assert_eq!((k, t.as_str()), (kind, title));
    }

    #[rstest]
    #[case("[    0.000000] Linux version 6.1.0-50-amd64")]
    #[case("REPRO-READY")]
    #[case("[    1.2] virtio_net virtio0 eth0: renamed")]
    #[case("echo BUG: this is a script printing")]
    #[case("[    5.0] repro-init: sshd was killed")]
    #[case("[   22.4] systemd[1]: ssh.service: Failed with result 'signal'.")]
    fn ignores_ordinary_lines(#[case] line: &str) {
        assert_eq!(classify_line(line), None);
    }

    #[test]
    fn guest_failure_lines_give_their_reason() {
        assert_eq!(
            guest_failure("REPRO-FAILED no network interface: virtio_net not loaded (insmod: can't insert '/lib/modules/virtio_net.ko': invalid module format)"),
            Some("no network interface: virtio_net not loaded (insmod: can't insert '/lib/modules/virtio_net.ko': invalid module format)")
        );
        // Behind a kernel message that lacked its newline.
        assert_eq!(
            guest_failure("[    2.1] random: crng init doneREPRO-FAILED root disk /dev/vda did not appear: x\r"),
            Some("root disk /dev/vda did not appear: x")
        );
        assert_eq!(guest_failure("REPRO-FAILED "), None);
        assert_eq!(guest_failure("REPRO-READY 1.23"), None);
        let c = Console::new();
        c.push_line("[ 1.0] virtio_net: Unknown symbol net_failover_create");
        assert_eq!(c.guest_failure(), None);
        c.push_line("REPRO-FAILED no network interface: virtio_net not loaded");
        c.push_line("REPRO-FAILED a second line is not the reason");
        assert_eq!(
            c.guest_failure().as_deref(),
            Some("no network interface: virtio_net not loaded")
        );
        assert!(c.crash().is_none(), "a guest failure is no kernel crash");
    }

    #[test]
    fn a_crash_after_a_flood_is_found_with_its_excerpt_and_memory_stays_bounded() {
        let c = Console::new();
        for i in 0..(HEAD_LINES + 3 * RECENT_LINES) {
            c.push_line(&format!("[ 1.0] noise {i}"));
        }
        c.push_line("[ 9.0] Kernel panic - not syncing: late");
        for i in 0..50 {
            c.push_line(&format!("[ 9.1] after {i}"));
        }
        let crash = c.crash().expect("found past every kept line");
        assert_eq!(crash.title, "kernel panic: late");
        let lines: Vec<&str> = crash.excerpt.lines().collect();
        assert_eq!(lines.len(), EXCERPT_BEFORE + EXCERPT_AFTER, "{lines:?}");
        assert!(lines[0].ends_with(&format!("noise {}", HEAD_LINES + 3 * RECENT_LINES - 3)));
        assert_eq!(
            lines[EXCERPT_BEFORE],
            "[ 9.0] Kernel panic - not syncing: late"
        );
        assert_eq!(lines.last().unwrap(), &"[ 9.1] after 38");
        let st = c.state();
        assert_eq!(st.head.len() + st.recent.len(), HEAD_LINES + RECENT_LINES);
        assert_eq!(st.count, HEAD_LINES + 3 * RECENT_LINES + 51);
        drop(st);
        assert!(c.contains("noise 0"), "the boot is kept");
        assert!(c.tail(2).ends_with("after 49"));
    }

    #[test]
    fn the_reader_caps_the_log_but_classifies_every_line() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("console.log");
        let log = CappedFile::create(&path, 4096, crate::caplog::Marker::Text).unwrap();
        let mut text = String::new();
        for i in 0..1000 {
            text.push_str(&format!("[ 1.0] line {i}\n"));
        }
        text.push_str(&"x".repeat(5000));
        text.push('\n');
        text.push_str("[ 2.0] Kernel panic - not syncing: at the end\n");
        let c = std::sync::Arc::new(Console::new());
        c.clone()
            .spawn_reader(std::io::Cursor::new(text.clone().into_bytes()), log);
        c.wait_closed(Duration::from_secs(10));
        assert_eq!(c.crash().unwrap().title, "kernel panic: at the end");
        let kept = c.log_capture().unwrap();
        assert_eq!(kept.bytes, text.len() as u64);
        assert_eq!(kept.dropped, text.len() as u64 - 4096);
        let file = std::fs::read_to_string(&path).unwrap();
        assert!(file.starts_with("[ 1.0] line 0\n"));
        assert!(file.ends_with("Kernel panic - not syncing: at the end\n"));
        assert!(file.contains("bytes dropped here: console.log is capped at 4096 bytes"));
        assert!(c.last_output().is_some());
        // The long line is kept to its first MAX_LINE bytes in memory.
        assert!(c.state().head.iter().any(|l| l.len() == MAX_LINE));
    }

    #[test]
    fn crash_excerpt_includes_following_lines() {
        let c = Console::new();
        c.push_line("[ 1.0] sysrq: Trigger a crash");
        c.push_line("[ 1.1] Kernel panic - not syncing: sysrq triggered crash");
        c.push_line("[ 1.2] CPU: 0 PID: 99 Comm: sh");
        c.push_line("[ 1.3] Call Trace:");
        let crash = c.crash().unwrap();
        assert_eq!(crash.kind, Panic);
        assert_eq!(crash.source, FindingSource::Console);
        assert!(crash.excerpt.contains("Trigger a crash"));
        assert!(crash.excerpt.contains("Call Trace:"));
        assert!(c.findings().is_empty());
        assert!(c.tail(1).contains("Call Trace"));
    }

    /// The end of a real 6.1 console (Debian 6.1.0-57, TCG) whose init
    /// exited with status 2 (`rdinit=/usr/bin/repro-kit`, a usage error;
    /// register dump left out):
    /// the stack is init leaving through `exit_group`.
    const INIT_KILLED: &str = "\
[    3.684284] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000200
[    3.687065] CPU: 0 PID: 1 Comm: repro-kit Not tainted 6.1.0-57-amd64 #1  Debian 6.1.192-3
[    3.690135] Call Trace:
[    3.704674]  <TASK>
[    3.705265]  dump_stack_lvl+0x44/0x5c
[    3.705745]  panic+0x118/0x2f4
[    3.705950]  do_exit.cold+0x15/0x15
[    3.705990]  ? syscall_exit_to_user_mode+0x1e/0x40
[    3.706042]  ? do_syscall_64+0x69/0xb0
[    3.706082]  do_group_exit+0x2d/0x80
[    3.706125]  __x64_sys_exit_group+0x14/0x20
[    3.706221]  do_syscall_64+0x5d/0xb0
[    3.710431]  ? __mod_memcg_lruvec_state+0x41/0x90
[    3.710786]  ? __mod_lruvec_page_state+0x93/0x140
[    3.710837]  ? page_add_file_rmap+0x178/0x2f0
[    3.710912]  ? do_set_pte+0x189/0x1d0
[    3.710955]  ? update_load_avg+0x7e/0x780
[    3.710998]  ? filemap_map_pages+0x153/0x720
[    3.711046]  ? enqueue_entity+0x195/0x4f0
[    3.711089]  ? check_preempt_wakeup+0x17b/0x2c0
[    3.711147]  ? check_preempt_curr+0x5a/0x70
[    3.711192]  ? update_load_avg+0x7e/0x780
[    3.711233]  ? update_load_avg+0x7e/0x780
[    3.711275]  ? set_next_entity+0xda/0x150
[    3.711316]  ? psi_task_switch+0x67/0x1f0
[    3.711359]  ? __rseq_handle_notify_resume+0xa9/0x480
[    3.711408]  ? finish_task_switch.isra.0+0x90/0x2d0
[    3.711469]  ? exit_to_user_mode_prepare+0x172/0x240
[    3.711521]  entry_SYSCALL_64_after_hwframe+0x6e/0xd8
[    3.711600]  </TASK>
[    3.712000] Kernel Offset: disabled";

    /// An oops in init's own context: the kernel kills it, then panics.
    const INIT_FAULTED: &str = "\
[    9.100000] BUG: kernel NULL pointer dereference, address: 0000000000000008
[    9.100500] Oops: 0000 [#1] PREEMPT SMP NOPTI
[    9.101000] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000009
[    9.101200] Call Trace:
[    9.101300]  <TASK>
[    9.101400]  dump_stack_lvl+0x44/0x5c
[    9.101500]  panic+0x118/0x2ed
[    9.101600]  do_exit.cold+0x15/0x15
[    9.101700]  make_task_dead+0x8b/0x90
[    9.101800]  rewind_stack_and_make_dead+0x17/0x20
[    9.101900]  </TASK>
[    9.102000] ---[ end Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000009 ]---";

    fn console_of(text: &str) -> Console {
        let c = Console::new();
        for l in text.lines() {
            c.push_line(l);
        }
        c
    }

    #[test]
    fn init_exiting_is_not_a_kernel_crash() {
        let c = console_of(INIT_KILLED);
        assert_eq!(c.crash(), None);
        let f = c.findings();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind, InitExit);
        assert!(
            f[0].excerpt.contains("__x64_sys_exit_group"),
            "{}",
            f[0].excerpt
        );
    }

    #[test]
    fn init_killed_by_a_kernel_fault_is_a_crash() {
        let c = console_of(INIT_FAULTED);
        assert_eq!(c.crash().map(|f| f.kind), Some(Bug), "the first fault wins");
        // Without the lines before the panic, the stack alone says so.
        let panic_only: String = INIT_FAULTED.lines().skip(2).collect::<Vec<_>>().join("\n");
        let c = console_of(&panic_only);
        let crash = c.crash().expect("a crash");
        assert_eq!(crash.kind, InitExit);
        assert!(c.findings().is_empty());
    }

    #[test]
    fn a_word_that_only_contains_a_fault_frame_is_not_one() {
        let text = INIT_KILLED.replace("psi_task_switch", "my_make_task_dead_helper");
        assert_eq!(console_of(&text).crash(), None);
    }

    const DMESG: &str = "\
[   20.000000] INFO: task mkdir:151 blocked for more than 5 seconds.
[   20.000100]       Not tainted 6.1.0-56-amd64 #1 Debian 6.1.158-1
[   20.000200] \"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.
[   20.000300] task:mkdir           state:D stack:0     pid:151   ppid:140    flags:0x00004000
[   20.000400] Call Trace:
[   20.000500]  <TASK>
[   20.000600]  rwsem_down_write_slowpath+0x2f5/0x5a0
[   20.000700]  filename_create+0x5d/0x150
[   20.000800]  </TASK>
[   30.000000] WARNING: CPU: 0 PID: 160 at fs/x.c:1 f+0x1/0x2";

    #[test]
    fn dmesg_adds_what_the_console_missed_and_fuller_excerpts() {
        let console = console_of(
            "[   20.000000] INFO: task mkdir:151 blocked for more than 5 seconds.\n\
             [   20.000100]       Not tainted 6.1.0-56-amd64 #1 Debian 6.1.158-1\n\
             [   37.520318] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\n\
             repro-init: sshd (dropbear, pid 91) was killed by signal 9 (SIGKILL); restarting it",
        );
        let dmesg = classify_log(DMESG, FindingSource::Dmesg);
        assert_eq!(dmesg.len(), 2);
        assert!(dmesg[0].excerpt.contains("filename_create"));
        let merged = merge_dmesg(console.findings(), dmesg);
        let kinds: Vec<_> = merged.iter().map(|f| (f.kind, f.source)).collect();
        assert_eq!(
            kinds,
            [
                (HungTask, FindingSource::Dmesg),
                (InitExit, FindingSource::Console),
                (SshdRestart, FindingSource::Console),
                (Warning, FindingSource::Dmesg),
            ]
        );
        assert!(merged[0].excerpt.contains("rwsem_down_write_slowpath"));
    }

    #[test]
    fn identical_messages_match_once_each() {
        let line = "[ 1.0] WARNING: CPU: 0 PID: 1 at fs/x.c:1 f+0x1/0x2";
        let console = console_of(line).findings();
        let twice = classify_log(&format!("{line}\n{line}"), FindingSource::Dmesg);
        let merged = merge_dmesg(console.clone(), twice);
        assert_eq!(merged.len(), 2, "the second is a second warning");
        assert_eq!(merged[1].source, FindingSource::Dmesg);
        // An excerpt no longer than the console's leaves the console's.
        let once = classify_log(line, FindingSource::Dmesg);
        assert_eq!(merge_dmesg(console.clone(), once), console);
    }

    #[test]
    fn crashes_in_dmesg_are_left_to_the_console() {
        let dmesg = classify_log("[ 1.0] Oops: 0002 [#1] SMP", FindingSource::Dmesg);
        assert_eq!(dmesg.len(), 1);
        assert!(merge_dmesg(vec![], dmesg).is_empty());
    }
}
