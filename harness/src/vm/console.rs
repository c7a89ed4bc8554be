//! The guest's serial console: captured to a file, kept in memory, and
//! classified line by line for kernel crashes and warnings (patterns after
//! syzkaller's `pkg/report` and LAVA's kernel-message checks).

use crate::caplog::{CappedFile, Capture};
use crate::model::ConsoleFinding;
use std::collections::VecDeque;
use std::io::Read;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

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
        if let Some((severity, kind, title)) = classify_line(line) {
            let mut excerpt: Vec<String> = st
                .last_lines(EXCERPT_BEFORE)
                .into_iter()
                .map(str::to_string)
                .collect();
            excerpt.push(line.to_string());
            st.events.push(ConsoleEvent {
                severity,
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

    /// The last `n` lines, joined.
    pub fn tail(&self, n: usize) -> String {
        self.state().last_lines(n).join("\n")
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
            .zip(&st.excerpts)
            .filter(|(e, _)| e.severity == severity)
            .map(|(e, x)| ConsoleFinding {
                kind: e.kind.to_string(),
                title: e.title.clone(),
                excerpt: x.join("\n"),
            })
            .collect()
    }
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
        assert_eq!(crash.kind, "panic");
        assert!(crash.excerpt.contains("Trigger a crash"));
        assert!(crash.excerpt.contains("Call Trace:"));
        assert!(c.findings(Severity::Warning).is_empty());
        assert!(c.tail(1).contains("Call Trace"));
    }
}
