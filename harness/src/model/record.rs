//! The run's record: every cell with its attempts, the cell's expectation
//! and the status derived from both. `summary.json` is this type; reading
//! and writing it is `report::summary`'s job.

use super::attempt::{Attempt, Outcome};
use super::cell::CellKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bumped on incompatible changes to the summary's shape.
pub const SCHEMA_VERSION: u32 = 1;

/// Facts about the run as a whole.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    pub repro_version: String,
    pub qemu_version: String,
    pub host_kernel: String,
    pub accel: String,
    pub accel_reason: String,
    /// Guest image sha256 by kernel alias.
    #[serde(default)]
    pub images: BTreeMap<String, String>,
    pub command: String,
}

/// One cell: a scenario with its parameters on one kernel (and later one
/// kubelet profile, driver and cgroup version), with every attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellRecord {
    /// Where the cell sits; serialized as its id beside the axis values.
    #[serde(flatten)]
    pub key: CellKey,
    pub params: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_metric: Option<String>,
    /// What the matrix expects of this cell (`any` for `repro run`).
    #[serde(default)]
    pub expect: Expect,
    pub attempts: Vec<Attempt>,
}

/// A cell's expectation: the outcome that makes it pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expect {
    Reproduced,
    #[default]
    NotReproduced,
    Skipped,
    Crashed,
    Timeout,
    /// Record without judging.
    Any,
}

impl Expect {
    pub fn as_str(self) -> &'static str {
        match self {
            Expect::Reproduced => "reproduced",
            Expect::NotReproduced => "not-reproduced",
            Expect::Skipped => "skipped",
            Expect::Crashed => "crashed",
            Expect::Timeout => "timeout",
            Expect::Any => "any",
        }
    }

    /// Whether `o` satisfies the expectation.
    pub fn accepts(self, o: Outcome) -> bool {
        match self {
            Expect::Any => !matches!(o, Outcome::Error | Outcome::Cancelled),
            Expect::Reproduced => o == Outcome::Reproduced,
            Expect::NotReproduced => o == Outcome::NotReproduced,
            Expect::Skipped => o == Outcome::Skipped,
            Expect::Crashed => o == Outcome::Crashed,
            Expect::Timeout => o == Outcome::Timeout,
        }
    }
}

/// A cell's judged status, derived from its attempts and expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Every judged attempt met the expectation.
    Passed,
    /// Every judged attempt missed it.
    Failed,
    /// Attempts disagree: some met it, some did not.
    Flaky,
    /// Only infrastructure errors: the harness could not judge the cell.
    Error,
    /// Interrupted before any attempt finished.
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Flaky => "flaky",
            Status::Error => "error",
            Status::Cancelled => "cancelled",
        }
    }
}

impl CellRecord {
    /// The cell's id.
    pub fn id(&self) -> String {
        self.key.to_string()
    }

    /// Outcomes of the attempts that judged the scenario (not
    /// infrastructure errors or interruptions), in order.
    fn judged(&self) -> Vec<Outcome> {
        self.attempts
            .iter()
            .map(|a| a.outcome)
            .filter(|o| !matches!(o, Outcome::Error | Outcome::Cancelled))
            .collect()
    }

    /// The cell's outcome: the most frequent outcome among attempts that
    /// are not infrastructure errors (ties: the later one), else the last
    /// attempt's. All attempts are kept; this is only a summary.
    pub fn outcome(&self) -> Outcome {
        let judged = self.judged();
        if judged.is_empty() {
            return self
                .attempts
                .last()
                .map(|a| a.outcome)
                .unwrap_or(Outcome::Cancelled);
        }
        let mut best = judged[0];
        let mut best_n = 0;
        for o in &judged {
            let n = judged.iter().filter(|x| *x == o).count();
            if n >= best_n {
                best = *o;
                best_n = n;
            }
        }
        best
    }

    /// Whether the attempts' outcomes disagree (ignoring infrastructure
    /// errors).
    pub fn is_flaky(&self) -> bool {
        let judged = self.judged();
        judged.iter().any(|o| *o != judged[0])
    }

    /// Passed, failed, flaky, error or cancelled.
    pub fn status(&self) -> Status {
        let judged = self.judged();
        if judged.is_empty() {
            return match self.attempts.last().map(|a| a.outcome) {
                Some(Outcome::Error) => Status::Error,
                _ => Status::Cancelled,
            };
        }
        if self.expect == Expect::Any {
            // Nothing to judge against: mixed outcomes are still flaky.
            return if self.is_flaky() {
                Status::Flaky
            } else {
                Status::Passed
            };
        }
        let ok = judged.iter().filter(|o| self.expect.accepts(**o)).count();
        if ok == judged.len() {
            Status::Passed
        } else if ok == 0 {
            Status::Failed
        } else {
            Status::Flaky
        }
    }
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub schema_version: u32,
    pub run_id: String,
    pub started_at: String,
    #[serde(default)]
    pub finished_at: Option<String>,
    /// False while the run is going on or when it was interrupted.
    #[serde(default)]
    pub complete: bool,
    pub meta: RunMeta,
    pub cells: Vec<CellRecord>,
}
