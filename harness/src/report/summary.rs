//! `summary.json`: schema-versioned record of every cell and attempt.

use crate::model::{Attempt, Outcome};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

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
    pub id: String,
    pub scenario: String,
    pub kernel: String,
    pub cgroup: String,
    /// Root filesystem (`None`: the initramfs guest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubelet: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
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

#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a repro summary: {source}")]
    Parse {
        path: std::path::PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} has schema version {found}; this repro reads version {SCHEMA_VERSION}")]
    Version {
        path: std::path::PathBuf,
        found: u32,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl RunSummary {
    /// Writes `dir/summary.json` atomically (temp file + rename).
    pub fn write(&self, dir: &Path) -> Result<(), SummaryError> {
        let path = dir.join("summary.json");
        let json = serde_json::to_vec_pretty(self).expect("summary serializes");
        write_atomic(&path, &json).map_err(|source| SummaryError::Write { path, source })
    }

    /// Reads `dir/summary.json` (or a summary file given directly).
    pub fn read(path: &Path) -> Result<RunSummary, SummaryError> {
        let path = if path.is_dir() {
            path.join("summary.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read(&path).map_err(|source| SummaryError::Read {
            path: path.clone(),
            source,
        })?;
        let v: serde_json::Value =
            serde_json::from_slice(&text).map_err(|source| SummaryError::Parse {
                path: path.clone(),
                source,
            })?;
        let found = v
            .get("schema_version")
            .and_then(|v| v.as_u64())
            .unwrap_or(0) as u32;
        if found != SCHEMA_VERSION {
            return Err(SummaryError::Version { path, found });
        }
        serde_json::from_value(v).map_err(|source| SummaryError::Parse { path, source })
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.flush()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::*;

    pub fn attempt(outcome: Outcome) -> Attempt {
        Attempt {
            number: 1,
            outcome,
            reason: "why".into(),
            phase: None,
            accel: "tcg".into(),
            machine: "microvm".into(),
            rootfs: None,
            kernel: KernelInfo {
                alias: "6.1".into(),
                package: Some("linux-image-6.1.0-50-amd64-unsigned".into()),
                version: Some("6.1.176-1".into()),
                release: "6.1.0-50-amd64".into(),
                sha256: "ab".into(),
            },
            image_sha256: "cd".into(),
            timings: Timings {
                image: 0.1,
                boot: 2.0,
                scenario: 3.0,
                teardown: 0.1,
                total: 5.2,
            },
            metrics: [(
                "created".to_string(),
                Metric {
                    value: serde_json::json!(65533),
                    unit: "cgroups".into(),
                },
            )]
            .into(),
            series: Default::default(),
            crash: None,
            warnings: vec![],
            exit_status: Some(0),
            artifacts: Artifacts::default(),
            started_at: "2026-11-22T20:00:00Z".into(),
        }
    }

    pub fn summary() -> RunSummary {
        RunSummary {
            schema_version: SCHEMA_VERSION,
            run_id: "r1".into(),
            started_at: "2026-11-22T20:00:00Z".into(),
            finished_at: Some("2026-11-22T20:01:00Z".into()),
            complete: true,
            meta: RunMeta::default(),
            cells: vec![CellRecord {
                id: "memcg-fill/kernel=6.1/cgroup=v1".into(),
                scenario: "memcg-fill".into(),
                kernel: "6.1".into(),
                cgroup: "v1".into(),
                rootfs: None,
                kubelet: None,
                driver: None,
                params: [("limit".to_string(), "100".to_string())].into(),
                key_metric: Some("created".into()),
                expect: Expect::Reproduced,
                attempts: vec![attempt(Outcome::Reproduced)],
            }],
        }
    }

    #[test]
    fn round_trips_through_disk() {
        let tmp = tempfile::tempdir().unwrap();
        let s = summary();
        s.write(tmp.path()).unwrap();
        let back = RunSummary::read(tmp.path()).unwrap();
        assert_eq!(back, s);
        let text = std::fs::read_to_string(tmp.path().join("summary.json")).unwrap();
        assert!(text.contains("\"outcome\": \"reproduced\""), "{text}");
        assert!(text.contains("\"schema_version\": 1"));
    }

    fn cell(expect: Expect, outcomes: &[Outcome]) -> CellRecord {
        let mut c = summary().cells.remove(0);
        c.expect = expect;
        c.attempts = outcomes
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let mut a = attempt(*o);
                a.number = i as u32 + 1;
                a
            })
            .collect();
        c
    }

    use rstest::rstest;
    use Outcome::*;

    #[rstest]
    #[case(Expect::Reproduced, &[Reproduced], Status::Passed)]
    #[case(Expect::NotReproduced, &[Reproduced], Status::Failed)]
    #[case(Expect::Reproduced, &[Reproduced, NotReproduced, Reproduced], Status::Flaky)]
    #[case(Expect::Reproduced, &[Error, Reproduced], Status::Passed)]
    #[case(Expect::Reproduced, &[Error, Error], Status::Error)]
    #[case(Expect::Reproduced, &[Cancelled], Status::Cancelled)]
    #[case(Expect::Any, &[Reproduced, NotReproduced], Status::Flaky)]
    #[case(Expect::Reproduced, &[NotReproduced, Skipped], Status::Failed)]
    #[case(Expect::Any, &[Error], Status::Error)]
    #[case(Expect::NotReproduced, &[Crashed], Status::Failed)]
    #[case(Expect::Crashed, &[Crashed], Status::Passed)]
    #[case(Expect::Skipped, &[Skipped, Skipped], Status::Passed)]
    fn status_is_derived_from_attempts(
        #[case] expect: Expect,
        #[case] outcomes: &[Outcome],
        #[case] want: Status,
    ) {
        assert_eq!(cell(expect, outcomes).status(), want);
    }

    #[rstest]
    #[case(&[Reproduced, NotReproduced, Reproduced], Reproduced, true)]
    #[case(&[NotReproduced, Error], NotReproduced, false)]
    #[case(&[Error], Error, false)]
    #[case(&[Reproduced, NotReproduced], NotReproduced, true)]
    fn outcome_and_flakiness(
        #[case] outcomes: &[Outcome],
        #[case] want: Outcome,
        #[case] flaky: bool,
    ) {
        let c = cell(Expect::Any, outcomes);
        assert_eq!(c.outcome(), want);
        assert_eq!(c.is_flaky(), flaky);
    }

    #[test]
    fn rejects_other_schema_versions() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("summary.json"), r#"{"schema_version": 99}"#).unwrap();
        let e = RunSummary::read(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("schema version 99"), "{e}");
    }
}
