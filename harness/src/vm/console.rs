//! The guest's serial console: captured to a file, kept in memory, and
//! classified line by line for kernel crashes and warnings (patterns after
//! syzkaller's `pkg/report` and LAVA's kernel-message checks).

use crate::model::ConsoleFinding;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// How a console line matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The kernel died or oopsed: the attempt is `crashed`.
    Crash,
    /// Recorded, does not change the outcome.
    Warning,
}

/// A classified console line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleEvent {
    pub severity: Severity,
    pub kind: &'static str,
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

const MAX_LINES: usize = 100_000;
const EXCERPT_BEFORE: usize = 3;
const EXCERPT_AFTER: usize = 40;

#[derive(Default)]
struct State {
    lines: Vec<String>,
    events: Vec<ConsoleEvent>,
    closed: bool,
}

/// Shared view of one guest's console.
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

    /// Reads `pipe` until EOF on a thread, writing every line to `log`.
    pub fn spawn_reader<R: Read + Send + 'static>(
        self: std::sync::Arc<Self>,
        pipe: R,
        mut log: std::fs::File,
    ) {
        std::thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let _ = log.write_all(&buf);
                        let _ = log.flush();
                        let line = String::from_utf8_lossy(&buf);
                        self.push_line(line.trim_end_matches(['\n', '\r']));
                    }
                }
            }
            let mut st = self.state();
            st.closed = true;
            self.closed.notify_all();
        });
    }

    /// Adds one line (also used by tests).
    pub fn push_line(&self, line: &str) {
        let mut st = self.state();
        if st.lines.len() >= MAX_LINES {
            return;
        }
        let idx = st.lines.len();
        st.lines.push(line.to_string());
        if let Some((severity, kind, title)) = classify_line(line) {
            st.events.push(ConsoleEvent {
                severity,
                kind,
                title,
                line_index: idx,
            });
        }
    }

    /// Waits until the reader saw EOF (QEMU gone) or `timeout` passed.
    pub fn wait_closed(&self, timeout: Duration) {
        let st = self.state();
        let _ = self.closed.wait_timeout_while(st, timeout, |s| !s.closed);
    }

    /// Whether `needle` appeared on any line.
    pub fn contains(&self, needle: &str) -> bool {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .lines
            .iter()
            .any(|l| l.contains(needle))
    }

    /// The reason of the guest's first `REPRO-FAILED` line, if it printed one.
    pub fn guest_failure(&self) -> Option<String> {
        self.state()
            .lines
            .iter()
            .find_map(|l| guest_failure(l).map(str::to_string))
    }

    /// The last `n` lines, joined.
    pub fn tail(&self, n: usize) -> String {
        let st = self.state();
        let start = st.lines.len().saturating_sub(n);
        st.lines[start..].join("\n")
    }

    /// The first crash, with its excerpt.
    pub fn crash(&self) -> Option<ConsoleFinding> {
        self.findings(Severity::Crash).into_iter().next()
    }

    /// All findings of `severity`, each with an excerpt of the console.
    pub fn findings(&self, severity: Severity) -> Vec<ConsoleFinding> {
        let st = self.state();
        st.events
            .iter()
            .filter(|e| e.severity == severity)
            .map(|e| ConsoleFinding {
                kind: e.kind.to_string(),
                title: e.title.clone(),
                excerpt: excerpt(&st.lines, e.line_index),
            })
            .collect()
    }
}

fn excerpt(lines: &[String], at: usize) -> String {
    let start = at.saturating_sub(EXCERPT_BEFORE);
    let end = (at + EXCERPT_AFTER).min(lines.len());
    lines[start..end].join("\n")
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

/// Classifies one console line. Pure; the fixtures in the tests are real
/// kernel output.
pub fn classify_line(line: &str) -> Option<(Severity, &'static str, String)> {
    let msg = strip_timestamp(line);
    let title = |s: &str| s.trim().trim_end_matches(" ]---").to_string();
    // Crashes.
    if let Some(rest) = msg.strip_prefix("Kernel panic - not syncing:") {
        return Some((
            Severity::Crash,
            "panic",
            format!("kernel panic: {}", rest.trim()),
        ));
    }
    if msg.starts_with("BUG: soft lockup") {
        return Some((Severity::Warning, "soft-lockup", title(msg)));
    }
    if msg.starts_with("BUG: workqueue lockup") {
        return Some((Severity::Warning, "workqueue-lockup", title(msg)));
    }
    if msg.starts_with("BUG: ") || msg.starts_with("kernel BUG at ") {
        return Some((Severity::Crash, "bug", title(msg)));
    }
    if msg.starts_with("Oops: ") || msg.starts_with("Oops ") {
        return Some((Severity::Crash, "oops", title(msg)));
    }
    if msg.starts_with("general protection fault") {
        return Some((Severity::Crash, "gpf", title(msg)));
    }
    // Warnings and hangs.
    if msg.starts_with("WARNING: ") {
        return Some((Severity::Warning, "warning", title(msg)));
    }
    if msg.starts_with("watchdog: BUG: soft lockup") {
        return Some((Severity::Warning, "soft-lockup", title(msg)));
    }
    if msg.starts_with("INFO: task ") && msg.contains("blocked for more than") {
        return Some((Severity::Warning, "hung-task", title(msg)));
    }
    if msg.starts_with("rcu: INFO: rcu_") && msg.contains("detected stall")
        || msg.starts_with("INFO: rcu_") && msg.contains("detected stall")
    {
        return Some((Severity::Warning, "rcu-stall", title(msg)));
    }
    if msg.starts_with("Out of memory: Kill")
        || msg.starts_with("Memory cgroup out of memory: Kill")
        || (msg.contains("invoked oom-killer"))
    {
        return Some((Severity::Warning, "oom-kill", title(msg)));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(
        "[   21.104210] Kernel panic - not syncing: sysrq triggered crash",
        Severity::Crash,
        "panic",
        "kernel panic: sysrq triggered crash"
    )]
    #[case(
        "[    3.1] BUG: kernel NULL pointer dereference, address: 0000000000000000",
        Severity::Crash,
        "bug",
        "BUG: kernel NULL pointer dereference, address: 0000000000000000"
    )]
    #[case(
        "[   44.0] Oops: 0002 [#1] PREEMPT SMP NOPTI",
        Severity::Crash,
        "oops",
        "Oops: 0002 [#1] PREEMPT SMP NOPTI"
    )]
    #[case("general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] SMP", Severity::Crash, "gpf", "general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] SMP")]
    #[case(
        "[  52.2] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [repro-kit:211]",
        Severity::Warning,
        "soft-lockup",
        "watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [repro-kit:211]"
    )]
    #[case(
        "[ 242.1] INFO: task kworker/0:1:15 blocked for more than 120 seconds.",
        Severity::Warning,
        "hung-task",
        "INFO: task kworker/0:1:15 blocked for more than 120 seconds."
    )]
    #[case(
        "[ 80.0] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
        Severity::Warning,
        "rcu-stall",
        "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:"
    )]
    #[case(
        "[ 9.9] WARNING: CPU: 0 PID: 1 at mm/memcontrol.c:123 mem_cgroup_css_free+0x1/0x2",
        Severity::Warning,
        "warning",
        "WARNING: CPU: 0 PID: 1 at mm/memcontrol.c:123 mem_cgroup_css_free+0x1/0x2"
    )]
    #[case(
        "[ 70.1] Out of memory: Killed process 321 (repro-kit) total-vm:1kB",
        Severity::Warning,
        "oom-kill",
        "Out of memory: Killed process 321 (repro-kit) total-vm:1kB"
    )]
    #[case(
        "[ 70.0] repro-kit invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0",
        Severity::Warning,
        "oom-kill",
        "repro-kit invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0"
    )]
    fn classifies_real_kernel_lines(
        #[case] line: &str,
        #[case] sev: Severity,
        #[case] kind: &str,
        #[case] title: &str,
    ) {
        let (s, k, t) = classify_line(line).expect("classified");
        assert_eq!((s, k, t.as_str()), (sev, kind, title));
    }

    #[rstest]
    #[case("[    0.000000] Linux version 6.1.0-50-amd64")]
    #[case("REPRO-READY")]
    #[case("[    1.2] virtio_net virtio0 eth0: renamed")]
    #[case("echo BUG: this is a script printing")]
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
    fn crash_excerpt_includes_following_lines() {
        let c = Console::new();
        c.push_line("[ 1.0] sysrq: Trigger a crash");
        c.push_line("[ 1.1] Kernel panic - not syncing: sysrq triggered crash");
        c.push_line("[ 1.2] CPU: 0 PID: 99 Comm: sh");
        c.push_line("[ 1.3] Call Trace:");
        let crash = c.crash().unwrap();
        assert_eq!(crash.kind, "panic");
        assert!(crash.excerpt.contains("Trigger a crash"));
        assert!(crash.excerpt.contains("Call Trace:"));
        assert!(c.findings(Severity::Warning).is_empty());
        assert!(c.tail(1).contains("Call Trace"));
    }
}
