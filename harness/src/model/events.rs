//! What the runner tells the world: typed [`Event`]s and the
//! [`EventSink`] that receives them. Reporters (terminal, files) consume
//! these; the runner never prints.

use super::attempt::{Attempt, Phase};
use super::cell::Accel;
use super::record::Status;
use std::fmt;

/// One thing that happened during a run.
#[derive(Debug, Clone)]
pub enum Event {
    RunStarted {
        run_id: String,
        dir: std::path::PathBuf,
        cells: usize,
    },
    /// A one-line notice about the run's preparation.
    Notice(Notice),
    /// Bytes of a download so far (`total` 0 when unknown).
    Download {
        what: String,
        done: u64,
        total: u64,
    },
    DownloadFinished {
        what: String,
    },
    CellStarted {
        id: String,
    },
    Phase {
        id: String,
        phase: Phase,
        detail: String,
    },
    AttemptFinished {
        id: String,
        attempt: Box<Attempt>,
        key_metric: Option<String>,
    },
    /// A cell has all its attempts.
    CellFinished {
        id: String,
        status: Status,
        done: usize,
        total: usize,
    },
    RunFinished {
        dir: std::path::PathBuf,
        interrupted: bool,
    },
}

/// Something worth one line while a run prepares.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// Cells will run this many at a time.
    Parallel { jobs: usize },
    /// A kernel and its guest image are being prepared.
    PreparingKernel { kernel: String },
    /// The accelerator chosen for the run, and why.
    Accelerator { accel: Accel, why: String },
    /// A root filesystem is built (once; cached afterwards).
    RootfsBuilding { name: String },
    /// A step of a root filesystem's build.
    RootfsStep { name: String, step: String },
    /// A root filesystem was built.
    RootfsBuilt { name: String, secs: f64, bytes: u64 },
    /// Wanted guest modules a kernel lacks or may lack (one phrase each, joined).
    KernelModules { kernel: String, text: String },
    /// A step of getting a real kubelet ready (its build, once; cached
    /// afterwards).
    KubeletStep { version: String, step: String },
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::Parallel { jobs } => write!(f, "running up to {jobs} cells in parallel"),
            Notice::PreparingKernel { kernel } => {
                write!(f, "preparing kernel {kernel} and its guest image")
            }
            Notice::Accelerator { accel, why } => {
                write!(f, "accelerator: {} ({why})", accel.as_str())
            }
            Notice::RootfsBuilding { name } => {
                write!(
                    f,
                    "building root filesystem {name} (once; cached afterwards)"
                )
            }
            Notice::RootfsStep { name, step } => write!(f, "rootfs {name}: {step}"),
            Notice::KubeletStep { version, step } => write!(f, "kubelet {version}: {step}"),
            Notice::KernelModules { kernel, text } => {
                write!(
                    f,
                    "kernel {kernel}: guest modules missing or not known to be there: {text}"
                )
            }
            Notice::RootfsBuilt { name, secs, bytes } => write!(
                f,
                "rootfs {name}: built in {secs:.0} s, {} MiB",
                bytes / (1024 * 1024)
            ),
        }
    }
}

/// Receives events; must be cheap and never block for long.
pub trait EventSink: Send + Sync {
    fn event(&self, event: &Event);
}

/// Discards everything (tests).
pub struct NullSink;

impl EventSink for NullSink {
    fn event(&self, _: &Event) {}
}

/// Collects events (tests).
#[derive(Default)]
pub struct VecSink(pub std::sync::Mutex<Vec<Event>>);

impl EventSink for VecSink {
    fn event(&self, event: &Event) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.clone());
    }
}
