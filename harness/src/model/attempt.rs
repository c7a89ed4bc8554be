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

/// What a kernel-log line is, by its own wording (`vm::console`'s
/// classifier decides). Serialized kebab-case (`hung-task`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// `Kernel panic - not syncing: ...`, unless init's exit caused it.
    Panic,
    /// `BUG: ...` or `kernel BUG at ...`.
    Bug,
    /// `Oops: ...`.
    Oops,
    /// `general protection fault ...`.
    Gpf,
    /// `Kernel panic - not syncing: Attempted to kill init!`: the guest's
    /// init (PID 1) exited and the kernel panicked because of it. The
    /// guest's infrastructure died, not the kernel, unless the panic's
    /// stack shows a kernel fault (then it is a crash).
    InitExit,
    /// `WARNING: CPU: ... at ...`: a `WARN()` splat.
    Warning,
    /// `watchdog: BUG: soft lockup` and `BUG: soft lockup`.
    SoftLockup,
    /// `BUG: workqueue lockup`.
    WorkqueueLockup,
    /// `INFO: task ... blocked for more than N seconds`.
    HungTask,
    /// `rcu: INFO: rcu_... detected stalls`.
    RcuStall,
    /// The OOM killer's report (`invoked oom-killer`, `Out of memory: Killed process`).
    OomKill,
    /// The guest's SSH server ended (killed, or stopping on a signal) and
    /// the guest's init restarts it: `repro-init: sshd ...` on the
    /// initramfs guest's console, systemd's `ssh.service: Main process
    /// exited, ...` on a root-filesystem guest's (there once journald is
    /// gone too, as after `kill -9 -1`).
    SshdRestart,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Panic => "panic",
            FindingKind::Bug => "bug",
            FindingKind::Oops => "oops",
            FindingKind::Gpf => "gpf",
            FindingKind::InitExit => "init-exit",
            FindingKind::Warning => "warning",
            FindingKind::SoftLockup => "soft-lockup",
            FindingKind::WorkqueueLockup => "workqueue-lockup",
            FindingKind::HungTask => "hung-task",
            FindingKind::RcuStall => "rcu-stall",
            FindingKind::OomKill => "oom-kill",
            FindingKind::SshdRestart => "sshd-restart",
        }
    }

    /// A kernel crash: the attempt is `crashed` whatever else happened.
    pub fn is_crash(self) -> bool {
        matches!(
            self,
            FindingKind::Panic | FindingKind::Bug | FindingKind::Oops | FindingKind::Gpf
        )
    }
}

impl std::fmt::Display for FindingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a finding's excerpt was read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingSource {
    /// The serial console, captured live (the only source once the guest
    /// died).
    #[default]
    Console,
    /// `dmesg` fetched at the end of the attempt: every log level, so
    /// stacks printed below the console's level are there too.
    Dmesg,
}

/// Something the kernel-log classifier found (panic, oops, warning...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsoleFinding {
    pub kind: FindingKind,
    pub title: String,
    pub excerpt: String,
    #[serde(default)]
    pub source: FindingSource,
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
    /// The guest's `dmesg` (every level) at the end of the attempt, when
    /// the guest still answered; bounded by the kernel's log buffer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dmesg: Option<String>,
}

/// The resolved kernel a cell ran on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KernelInfo {
    /// What the user asked for (`6.1`, `bookworm`, a path...).
    pub alias: String,
    pub package: Option<String>,
    /// Every package unpacked for the kernel, `name=version`, when there is more than the
    /// one named (a distribution that splits image, modules and base into packages).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
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

/// The real kubelet binary a cell's guest ran (absent when the cell's
/// kubelet is a profile: the record never lets the two be mistaken).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KubeletInfo {
    /// What the binary says of itself (`kubelet --version`'s version, e.g.
    /// `v1.20.2`).
    pub version: String,
    /// SHA256 of the binary.
    pub sha256: String,
    /// Where it came from, e.g. `built from Debian source kubernetes
    /// 1.20.5+really1.20.2-1 with go 1.15.15`.
    pub origin: String,
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
    /// The real kubelet, when the cell ran one (see [`KubeletInfo`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubelet: Option<KubeletInfo>,
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
    /// Every other finding of the console and `dmesg`, in console order:
    /// kernel warnings, hung tasks, lockups, OOM kills, an exited init, a
    /// restarted SSH server. Some explain the outcome (an OOM-killed
    /// script, init's exit, a dropped session); the others did not change it.
    #[serde(default)]
    pub warnings: Vec<ConsoleFinding>,
    /// Exit status of the scenario's entry script, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
    /// Whether trying an `error` attempt again could end differently.
    #[serde(default, skip_serializing_if = "Retry::is_default")]
    pub retry: Retry,
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

impl Attempt {
    /// An infrastructure `error` that another attempt might not repeat: not a script that
    /// broke its contract (it would again), not a guest that said what it lacks.
    pub fn worth_retrying(&self) -> bool {
        self.outcome == Outcome::Error && self.exit_status.is_none() && self.retry == Retry::MayHelp
    }
}

/// Whether trying an `error` attempt again could help.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Retry {
    /// A transient failure (download, QEMU, SSH) may pass the next time.
    #[default]
    MayHelp,
    /// The same kernel and image fail the same way: the guest's `/init` reported a missing
    /// driver, no network interface or an unmountable root disk (`StopReason::GuestFailed`).
    Futile,
}

impl Retry {
    pub fn is_default(&self) -> bool {
        *self == Retry::MayHelp
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
    /// The guest's `/init` could not set the guest up and said why (its `REPRO-FAILED`
    /// line: a required driver missing, no network interface, the root disk not mounted).
    /// Booting the same image again fails the same way.
    GuestFailed(String),
}

impl StopReason {
    /// What another attempt could change.
    pub fn retry(&self) -> Retry {
        match self {
            StopReason::GuestFailed(_) => Retry::Futile,
            _ => Retry::MayHelp,
        }
    }
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
            StopReason::GuestFailed(why) => write!(f, "the guest's /init failed: {why}"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_that_said_what_it_lacks_is_not_retried() {
        let mut a = Attempt {
            number: 1,
            outcome: Outcome::Error,
            reason: "why".into(),
            phase: Some(Phase::Boot),
            accel: "tcg".into(),
            machine: "microvm".into(),
            kernel: KernelInfo::default(),
            rootfs: None,
            kubelet: None,
            image_sha256: String::new(),
            timings: Timings::default(),
            metrics: BTreeMap::new(),
            series: BTreeMap::new(),
            crash: None,
            warnings: vec![],
            exit_status: None,
            retry: Retry::default(),
            artifacts: Artifacts::default(),
            started_at: String::new(),
            limits: None,
            dropped: BTreeMap::new(),
        };
        assert!(a.worth_retrying(), "an SSH or QEMU failure may pass");
        a.retry = StopReason::GuestFailed("no network interface: virtio_net ...".into()).retry();
        assert_eq!(a.retry, Retry::Futile);
        assert!(!a.worth_retrying());
        // Recorded as such, and absent from the JSON when retrying may help.
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["retry"], "futile");
        a.retry = StopReason::QemuExited("signal 9".into()).retry();
        assert!(serde_json::to_value(&a).unwrap().get("retry").is_none());
        let back: Attempt = serde_json::from_value(json).unwrap();
        assert_eq!(back.retry, Retry::Futile);
        // A script that exited non-zero broke its contract: not retried either.
        a.exit_status = Some(3);
        assert!(!a.worth_retrying());
        a.outcome = Outcome::Crashed;
        a.exit_status = None;
        assert!(!a.worth_retrying());
    }

    #[test]
    fn guest_failure_reads_as_the_guests_words() {
        assert_eq!(
            StopReason::GuestFailed("root disk /dev/vda did not appear: virtio_blk loaded".into())
                .to_string(),
            "the guest's /init failed: root disk /dev/vda did not appear: virtio_blk loaded"
        );
    }
}
