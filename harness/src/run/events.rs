//! What the runner tells the world. Reporters (terminal, files) consume
//! these; the runner never prints.

use crate::model::{Attempt, Phase};

/// One thing that happened during a run.
#[derive(Debug, Clone)]
pub enum Event {
    RunStarted {
        run_id: String,
        dir: std::path::PathBuf,
        cells: usize,
    },
    /// A one-line notice (accelerator decision, cache use...).
    Info(String),
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
        status: crate::report::Status,
        done: usize,
        total: usize,
    },
    RunFinished {
        dir: std::path::PathBuf,
        interrupted: bool,
    },
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
        self.0.lock().unwrap().push(event.clone());
    }
}
