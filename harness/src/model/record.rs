//! The run's record: every cell with its attempts, the cell's expectation
//! and the status derived from both. `summary.json` is this type; reading
//! and writing it is `report::summary`'s job.

use super::attempt::{Attempt, Outcome};
use super::cell::CellKey;
use super::rate::{is_trial, Rate, RateExpect, RateSummary};
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
/// Written with its derived reproduction rate beside it (see
/// [`CellRecordOut`]); read without it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    /// The `[[expect]]` rule that set `expect`, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<RuleSource>,
    /// Rules that matched the cell but no longer apply to it: its kernel
    /// is in their `until` range.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stale_rules: Vec<RuleSource>,
    pub attempts: Vec<Attempt>,
}

/// Where an expectation came from and what its author said of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSource {
    /// `matrix.toml:42`: the rule's `expect` line.
    pub at: String,
    /// Why the cell is expected to behave so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A bug report or discussion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The commit or package version that fixes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_by: Option<String>,
    /// The kernel version range from which the rule stops applying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

impl RuleSource {
    /// `matrix.toml:42: reason (fixed by X, until >=6.7, URL)`: the rule
    /// and what it says, on one line.
    pub fn describe(&self) -> String {
        let mut extra = Vec::new();
        if let Some(f) = &self.fixed_by {
            extra.push(format!("fixed by {f}"));
        }
        if let Some(u) = &self.until {
            extra.push(format!("until {u}"));
        }
        if let Some(u) = &self.url {
            extra.push(u.clone());
        }
        let mut s = self.at.clone();
        if let Some(r) = &self.reason {
            s.push_str(": ");
            s.push_str(r);
        }
        if !extra.is_empty() {
            s.push_str(&format!(" ({})", extra.join(", ")));
        }
        s
    }
}

/// How a cell record is written: its fields plus the derived rate.
#[derive(Serialize)]
struct CellRecordOut<'a> {
    #[serde(flatten)]
    key: &'a CellKey,
    params: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_metric: &'a Option<String>,
    expect: &'a Expect,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: &'a Option<RuleSource>,
    #[serde(skip_serializing_if = "<[RuleSource]>::is_empty")]
    stale_rules: &'a [RuleSource],
    /// Derived: how often the trials ended with the rate's outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    rate: Option<RateSummary>,
    attempts: &'a [Attempt],
}

impl Serialize for CellRecord {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        CellRecordOut {
            key: &self.key,
            params: &self.params,
            key_metric: &self.key_metric,
            expect: &self.expect,
            rule: &self.rule,
            stale_rules: &self.stale_rules,
            rate: RateSummary::new(self.rate_outcome(), self.rate()),
            attempts: &self.attempts,
        }
        .serialize(s)
    }
}

/// A cell's expectation: the outcome that makes it pass, or a rate.
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
    /// A fraction of the trials ending with an outcome (`{"rate":
    /// {"outcome": "reproduced", "cmp": ">=", "threshold": 0.8}}`).
    Rate(RateExpect),
}

/// `reproduced`, `any`, `reproduced >= 0.8`.
impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Expect::Reproduced => "reproduced",
            Expect::NotReproduced => "not-reproduced",
            Expect::Skipped => "skipped",
            Expect::Crashed => "crashed",
            Expect::Timeout => "timeout",
            Expect::Any => "any",
            Expect::Rate(r) => return r.fmt(f),
        })
    }
}

impl Expect {
    /// Whether `o` satisfies the expectation. A single attempt cannot miss
    /// a rate: every judged outcome is accepted, the cell's rate decides.
    pub fn accepts(self, o: Outcome) -> bool {
        match self {
            Expect::Any | Expect::Rate(_) => !matches!(o, Outcome::Error | Outcome::Cancelled),
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

    /// The outcome the cell's rate counts: a rate expectation's, else
    /// `reproduced`.
    pub fn rate_outcome(&self) -> Outcome {
        match self.expect {
            Expect::Rate(r) => r.outcome,
            _ => Outcome::Reproduced,
        }
    }

    /// How many trials ended with [`Self::rate_outcome`].
    pub fn rate(&self) -> Rate {
        Rate::of(self.attempts.iter().map(|a| a.outcome), self.rate_outcome())
    }

    /// Whether the cell had more than one trial, so its rate says more
    /// than its outcome.
    pub fn has_repeats(&self) -> bool {
        self.attempts.iter().filter(|a| is_trial(a.outcome)).count() > 1
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
        if let Expect::Rate(r) = self.expect {
            return if r.holds(self.rate()) {
                Status::Passed
            } else {
                Status::Failed
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
