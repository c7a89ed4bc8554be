//! The run summary (one serializable record of a run) and the reporters
//! that render it. Reporters never run anything: they read a
//! [`RunSummary`] or the runner's events.
//!
//! Invariant: every report file is rendered from `summary.json`'s type, so
//! `repro report DIR` can re-render all of them.

pub mod chart;
pub mod compare;
pub mod describe;
pub mod escape;
#[cfg(test)]
pub mod fixtures;
pub mod format;
pub mod grid;
pub mod html;
pub mod junit;
pub mod markdown;
pub mod merge;
pub mod metrics;
pub mod render;
pub mod stale;
pub mod summary;
pub mod symbols;
pub mod terminal;

pub use crate::model::{CellRecord, Expect, RunMeta, RunSummary, Status, SCHEMA_VERSION};
