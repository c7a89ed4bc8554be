//! `init`: PID 1 of the initramfs guest. It reaps every orphan for as long
//! as the guest runs and keeps one service (the SSH server) running,
//! restarting it whenever it dies, so that a scenario that kills every
//! process it can see (`kill -9 -1`, which spares PID 1) leaves a guest the
//! harness can still reach, and never an init that exits (the kernel
//! panics when PID 1 exits).
//!
//! PID 1 installs no signal handler: the kernel then drops every signal
//! sent to it from inside the guest, SIGKILL included. Outside PID 1 (the
//! tests) it makes itself the child subreaper, so orphans still come to it.
//!
//! What it prints goes to the console (its stdout), where the harness
//! reads it: the ready line once the service listens on `--ready-port`,
//! and `repro-init: NAME (PROGRAM, pid N) <how it ended>; restarting it`
//! whenever the service dies (`harness/src/vm/console.rs` classifies the
//! `repro-init: sshd ` lines).

use crate::args;
use crate::util::{Fail, R};
use std::fs::OpenOptions;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A service that lived at least this long is restarted at once; one that
/// died sooner waits, twice as long each time (up to `MAX_BACKOFF`), so a
/// service that cannot start does not spin the guest's only CPU.
const STABLE_AFTER: Duration = Duration::from_secs(1);
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// How often the ready check looks at the listening sockets.
const READY_POLL: Duration = Duration::from_millis(20);

/// Linux's signal names (x86-64) for the console line.
const SIGNALS: [&str; 15] = [
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
    "PIPE", "ALRM", "TERM",
];

/// How a process ended, from its wait status: `exited with status 1`,
/// `was killed by signal 9 (SIGKILL)`.
pub fn ended(status: i32) -> String {
    if libc::WIFEXITED(status) {
        return format!("exited with status {}", libc::WEXITSTATUS(status));
    }
    let sig = libc::WTERMSIG(status);
    match SIGNALS.get((sig - 1) as usize) {
        Some(name) if sig >= 1 => format!("was killed by signal {sig} (SIG{name})"),
        _ => format!("was killed by signal {sig}"),
    }
}

/// Whether `/proc/net/tcp` or `tcp6` text lists a socket listening on
/// local `port` (state `0A`).
pub fn listening(proc_net_tcp: &str, port: u16) -> bool {
    let want = format!(":{port:04X}");
    proc_net_tcp.lines().skip(1).any(|l| {
        let mut f = l.split_whitespace();
        let local = f.nth(1).unwrap_or("");
        let state = f.nth(1).unwrap_or("");
        local.ends_with(&want) && state == "0A"
    })
}

fn port_listens(port: u16) -> bool {
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|p| {
        std::fs::read_to_string(p)
            .map(|t| listening(&t, port))
            .unwrap_or(false)
    })
}

/// Prints one line on the console. Errors are ignored: PID 1 must not
/// die because nobody reads its output.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn uptime() -> String {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(String::from))
        .unwrap_or_default()
}

struct Service {
    name: String,
    argv: Vec<String>,
    log: Option<String>,
    pid: Option<i32>,
    started: Instant,
    restart_at: Instant,
    backoff: Duration,
}

impl Service {
    fn program(&self) -> &str {
        let p = self.argv.first().map(String::as_str).unwrap_or("");
        p.rsplit('/').next().unwrap_or(p)
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..]).stdin(Stdio::null());
        if let Some(log) = &self.log {
            match OpenOptions::new().create(true).append(true).open(log) {
                Ok(f) => {
                    let f2 = f
                        .try_clone()
                        .map(Stdio::from)
                        .unwrap_or_else(|_| Stdio::null());
                    cmd.stdout(f2).stderr(Stdio::from(f));
                }
                Err(e) => say(&format!("repro-init: cannot open {log}: {e}")),
            }
        }
        self.started = Instant::now();
        match cmd.spawn() {
            // Reaped by the waitpid(-1) loop, never through `Child`.
            Ok(child) => self.pid = Some(child.id() as i32),
            Err(e) => {
                say(&format!(
                    "repro-init: cannot start {} ({}): {e}; retrying in {:.1} s",
                    self.name,
                    self.program(),
                    self.backoff.as_secs_f64()
                ));
                self.schedule_retry();
            }
        }
    }

    fn schedule_retry(&mut self) {
        self.restart_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// The service ended with `status`: say so and schedule its restart.
    fn died(&mut self, pid: i32, status: i32) {
        self.pid = None;
        say(&format!(
            "repro-init: {} ({}, pid {pid}) {}; restarting it",
            self.name,
            self.program(),
            ended(status)
        ));
        if self.started.elapsed() >= STABLE_AFTER {
            self.backoff = FIRST_BACKOFF;
            self.restart_at = Instant::now();
        } else {
            self.schedule_retry();
        }
    }
}

/// Reaps one child; `block` waits for one. `None` when there was none to
/// reap (or no child at all).
fn reap(block: bool) -> Option<(i32, i32)> {
    let mut status = 0;
    loop {
        // SAFETY: plain syscall with a valid out pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, if block { 0 } else { libc::WNOHANG }) };
        if pid > 0 {
            return Some((pid, status));
        }
        if pid < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return None;
    }
}

pub fn cmd_init(args: &[String]) -> R<()> {
    let p = args::parse(
        args,
        &[
            ("name", true),
            ("log", true),
            ("ready", true),
            ("ready-port", true),
        ],
    )?;
    if p.positional.is_empty() {
        return Err(Fail::usage(
            "init [--name NAME] [--log FILE] [--ready LINE --ready-port PORT] -- COMMAND [ARGS...]",
        ));
    }
    let ready_port: Option<u16> = match p.get("ready-port") {
        Some(v) => Some(
            v.parse()
                .map_err(|_| Fail::usage(format!("--ready-port: not a port: {v:?}")))?,
        ),
        None => None,
    };
    let mut ready = p.get("ready").map(String::from);
    // SAFETY: plain syscalls.
    if unsafe { libc::getpid() } != 1 {
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    let now = Instant::now();
    let mut svc = Service {
        name: p.get("name").unwrap_or("service").to_string(),
        argv: p.positional.clone(),
        log: p.get("log").map(String::from),
        pid: None,
        started: now,
        restart_at: now,
        backoff: FIRST_BACKOFF,
    };
    loop {
        while let Some((pid, status)) = reap(false) {
            if svc.pid == Some(pid) {
                svc.died(pid, status);
            }
        }
        if svc.pid.is_none() && Instant::now() >= svc.restart_at {
            svc.spawn();
        }
        if let Some(line) = &ready {
            if svc.pid.is_some() && ready_port.map_or(true, port_listens) {
                say(&format!("{line} {}", uptime()));
                ready = None;
            }
        }
        if ready.is_some() || svc.pid.is_none() {
            let wait = svc
                .restart_at
                .saturating_duration_since(Instant::now())
                .clamp(READY_POLL, MAX_BACKOFF);
            std::thread::sleep(if ready.is_some() { READY_POLL } else { wait });
            continue;
        }
        match reap(true) {
            Some((pid, status)) if svc.pid == Some(pid) => svc.died(pid, status),
            Some(_) => {}
            None => std::thread::sleep(READY_POLL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_statuses_read_as_people_say_them() {
        assert_eq!(ended(9), "was killed by signal 9 (SIGKILL)");
        assert_eq!(ended(15 | 0x80), "was killed by signal 15 (SIGTERM)");
        assert_eq!(ended(1 << 8), "exited with status 1");
        assert_eq!(ended(0), "exited with status 0");
        assert_eq!(ended(40), "was killed by signal 40");
    }

    #[test]
    fn finds_listening_sockets() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1 0000000000000000 100 0 0 10 0
   1: 0F02000A:0016 0202000A:A2C4 01 00000000:00000000 02:000AFC4B 00000000     0        0 5678 4 0000000000000000 20 4 30 10 -1";
        assert!(listening(tcp, 22));
        assert!(!listening(tcp, 2222));
        let established_only = tcp.replace(" 0A ", " 01 ");
        assert!(!listening(&established_only, 22));
    }
}
