//! One attempt's record: its outcome, phase, timings, metrics, console
//! findings and artefacts. All serializable; the run summary is built from
//! these.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What one attempt of one cell ended as.
///
/// The first three come from the scenario script; the rest from the harness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The failure signature was observed.
    Reproduced,
    /// The scenario ran fully and the signature was not observed.
    NotReproduced,
    /// A requirement is missing; the reason says which.
    Skipped,
    /// The guest kernel panicked or oopsed.
    Crashed,
    /// No progress within the scenario's time limit.
    Timeout,
    /// Infrastructure failed (download, image, QEMU, SSH) or the script broke
    /// its contract; never a scenario verdict.
    Error,
    /// The run was interrupted before this attempt finished.
    Cancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Reproduced => "reproduced",
            Outcome::NotReproduced => "not-reproduced",
            Outcome::Skipped => "skipped",
            Outcome::Crashed => "crashed",
            Outcome::Timeout => "timeout",
            Outcome::Error => "error",
            Outcome::Cancelled => "cancelled",
        }
    }

    /// Parses a verdict a scenario script may write (only the first three).
    pub fn from_script(s: &str) -> Option<Outcome> {
        match s {
            "reproduced" => Some(Outcome::Reproduced),
            "not-reproduced" => Some(Outcome::NotReproduced),
            "skipped" => Some(Outcome::Skipped),
            _ => None,
        }
    }

    /// True for verdicts about the scenario (as opposed to the harness).
    pub fn is_verdict(self) -> bool {
        matches!(
            self,
            Outcome::Reproduced | Outcome::NotReproduced | Outcome::Skipped
        )
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A phase of one attempt, used in timings, errors and progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Image,
    Boot,
    Scenario,
    Teardown,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Image => "image",
            Phase::Boot => "boot",
            Phase::Scenario => "scenario",
            Phase::Teardown => "teardown",
        }
    }
}

/// Wall-clock seconds per phase, measured by the harness.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub image: f64,
    pub boot: f64,
    pub scenario: f64,
    pub teardown: f64,
    pub total: f64,
}

/// A named value reported by a scenario (number or text) with its unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub value: serde_json::Value,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
}

/// A curve reported by a scenario, e.g. latency against dying memcgs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    #[serde(default)]
    pub x_unit: String,
    #[serde(default)]
    pub y_unit: String,
    pub points: Vec<(f64, f64)>,
}

/// Something the console classifier found (panic, oops, warning...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsoleFinding {
    pub kind: String,
    pub title: String,
    pub excerpt: String,
}

/// Paths of an attempt's artefacts, relative to the run's results folder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Artifacts {
    pub dir: String,
    pub console: String,
    pub stdout: String,
    pub stderr: String,
    pub result: String,
    /// `journalctl -b` of a root-filesystem guest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<String>,
}

/// The resolved kernel a cell ran on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KernelInfo {
    /// What the user asked for (`6.1`, `bookworm`, a path...).
    pub alias: String,
    pub package: Option<String>,
    pub version: Option<String>,
    /// `uname -r` of the guest kernel.
    pub release: String,
    pub sha256: String,
}

/// The root filesystem a cell's guest booted (root-filesystem guests only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RootfsInfo {
    /// `bullseye`, `bookworm`, `trixie`...
    pub name: String,
    pub suite: String,
    /// SHA256 of the base qcow2 image.
    pub sha256: String,
    /// Installed versions of the runtime packages (systemd, runc, containerd...).
    pub versions: BTreeMap<String, String>,
}

/// One attempt of one cell: everything needed to judge and re-render it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub number: u32,
    pub outcome: Outcome,
    pub reason: String,
    /// Phase in which a harness outcome (error, timeout, crash) happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    pub accel: String,
    pub machine: String,
    pub kernel: KernelInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<RootfsInfo>,
    #[serde(default)]
    pub image_sha256: String,
    pub timings: Timings,
    #[serde(default)]
    pub metrics: BTreeMap<String, Metric>,
    #[serde(default)]
    pub series: BTreeMap<String, Series>,
    /// Crash report when `outcome` is `crashed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash: Option<ConsoleFinding>,
    /// Warnings seen on the console that did not change the outcome.
    #[serde(default)]
    pub warnings: Vec<ConsoleFinding>,
    /// Exit status of the scenario's entry script, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
    pub artifacts: Artifacts,
    pub started_at: String,
    /// The bounds the scenario ran under (absent in summaries written
    /// before they were recorded, and for attempts that never booted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// Bytes dropped from each capped log or from the artefacts, for those
    /// that passed their cap.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dropped: BTreeMap<Captured, u64>,
}

/// The limits an attempt's scenario ran under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// The scenario's time limit that applied (`scenario.toml`, or the
    /// matrix entry's `timeout_s`).
    pub timeout_s: u64,
    /// The no-progress limit that applied; absent: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_s: Option<u64>,
    /// The cap on each of the console, stdout, stderr and result logs.
    pub log_cap_bytes: u64,
    /// The cap on all the artefacts fetched from `$REPRO_OUT` together.
    pub out_cap_bytes: u64,
}

/// What the guest sends the host that is capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Captured {
    /// `console.log`, the serial console.
    Console,
    /// `stdout.log`, the entry script's standard output.
    Stdout,
    /// `stderr.log`.
    Stderr,
    /// `out/result.jsonl`.
    Result,
    /// `journal.log`, a root-filesystem guest's journal.
    Journal,
    /// Every other file fetched from `$REPRO_OUT`, together.
    Out,
}

impl Captured {
    /// The file (or folder) as a report names it.
    pub fn file(self) -> &'static str {
        match self {
            Captured::Console => "console.log",
            Captured::Stdout => "stdout.log",
            Captured::Stderr => "stderr.log",
            Captured::Result => "result.jsonl",
            Captured::Journal => "journal.log",
            Captured::Out => "out/",
        }
    }
}

/// Why the harness stopped waiting on a guest before it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The run was interrupted (a signal).
    Cancelled,
    /// The guest kernel crashed; the title of its report.
    KernelCrash(String),
    /// QEMU exited; its exit status.
    QemuExited(String),
    /// What was awaited did not happen before the deadline.
    Deadline(String),
    /// Nothing came from the guest for this many seconds: no console
    /// line, no stdout or stderr byte, no growth of the result file.
    Stalled(u64),
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Cancelled => f.write_str("cancelled"),
            StopReason::KernelCrash(t) => write!(f, "kernel crash: {t}"),
            StopReason::QemuExited(st) => write!(f, "QEMU exited ({st})"),
            StopReason::Deadline(what) => write!(f, "{what} did not appear in time"),
            StopReason::Stalled(s) => write!(
                f,
                "no output from the guest for {s} s: console, stdout, stderr and result.jsonl all silent"
            ),
        }
    }
}

/// Linux's signal numbers (x86-64 and arm64) and names, for exit statuses
/// `128 + N` and SSH `exit-signal` names (`KILL`).
const SIGNALS: [(i32, &str); 15] = [
    (1, "HUP"),
    (2, "INT"),
    (3, "QUIT"),
    (4, "ILL"),
    (5, "TRAP"),
    (6, "ABRT"),
    (7, "BUS"),
    (8, "FPE"),
    (9, "KILL"),
    (10, "USR1"),
    (11, "SEGV"),
    (12, "USR2"),
    (13, "PIPE"),
    (14, "ALRM"),
    (15, "TERM"),
];

/// `SIGKILL` for 9.
pub fn signal_name(number: i32) -> Option<String> {
    SIGNALS
        .iter()
        .find(|(n, _)| *n == number)
        .map(|(_, name)| format!("SIG{name}"))
}

/// 9 for `KILL` or `SIGKILL`.
pub fn signal_number(name: &str) -> Option<i32> {
    let name = name.strip_prefix("SIG").unwrap_or(name);
    SIGNALS.iter().find(|(_, n)| *n == name).map(|(n, _)| *n)
}
