//! `summary.json`: schema-versioned record of every cell and attempt.

pub use crate::model::{CellRecord, Expect, RunMeta, RunSummary, Status, SCHEMA_VERSION};
use std::path::Path;

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

impl SummaryError {
    /// The exit status this error means: a summary that cannot be read is
    /// bad input (2: the user named the wrong folder or file); one that
    /// cannot be written is infrastructure (3).
    pub fn exit_status(&self) -> crate::model::ExitStatus {
        match self {
            SummaryError::Read { .. }
            | SummaryError::Parse { .. }
            | SummaryError::Version { .. } => crate::model::ExitStatus::BadInput,
            SummaryError::Write { .. } => crate::model::ExitStatus::Infrastructure,
        }
    }
}

impl RunSummary {
    /// Writes `dir/summary.json` atomically (temp file + rename).
    pub fn write(&self, dir: &Path) -> Result<(), SummaryError> {
        let path = dir.join("summary.json");
        let json = serde_json::to_vec_pretty(self).map_err(|e| SummaryError::Write {
            path: path.clone(),
            source: e.into(),
        })?;
        crate::fsutil::atomic_write(&path, &json)
            .map_err(|source| SummaryError::Write { path, source })
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
                packages: Vec::new(),
                version: Some("6.1.176-1".into()),
                release: "6.1.0-50-amd64".into(),
                sha256: "ab".into(),
            },
            kubelet: None,
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
            retry: Retry::MayHelp,
            artifacts: Artifacts::default(),
            started_at: "2026-11-22T20:00:00Z".into(),
            limits: None,
            dropped: Default::default(),
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
                key: "memcg-fill/kernel=6.1/cgroup=v1".parse().unwrap(),
                params: [("limit".to_string(), "100".to_string())].into(),
                key_metric: Some("created".into()),
                expect: Expect::Reproduced,
                rule: None,
                stale_rules: vec![],
                attempts: vec![attempt(Outcome::Reproduced)],
            }],
        }
    }

    #[test]
    fn rates_and_rules_are_written_and_read_back() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = summary();
        let c = &mut s.cells[0];
        c.attempts = vec![
            attempt(Outcome::Reproduced),
            attempt(Outcome::NotReproduced),
        ];
        c.expect = Expect::Rate(crate::model::RateExpect::parse("reproduced", ">= 0.5").unwrap());
        c.rule = Some(crate::model::RuleSource {
            at: "matrix.toml:3".into(),
            reason: Some("r".into()),
            ..Default::default()
        });
        s.write(tmp.path()).unwrap();
        let back = RunSummary::read(tmp.path()).unwrap();
        assert_eq!(back, s);
        let v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(tmp.path().join("summary.json")).unwrap(),
        )
        .unwrap();
        let cell = &v["cells"][0];
        assert_eq!(cell["rate"]["hits"], 1);
        assert_eq!(cell["rate"]["trials"], 2);
        assert_eq!(cell["rate"]["rate"], 0.5);
        assert!(cell["rate"]["ci95_low"].as_f64().unwrap() < 0.1);
        assert_eq!(cell["expect"]["rate"]["cmp"], ">=");
        assert_eq!(cell["rule"]["at"], "matrix.toml:3");
    }

    #[test]
    fn an_older_summary_without_rates_or_rules_reads() {
        let tmp = tempfile::tempdir().unwrap();
        let s = summary();
        s.write(tmp.path()).unwrap();
        let path = tmp.path().join("summary.json");
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let cell = v["cells"][0].as_object_mut().unwrap();
        cell.remove("rate");
        assert!(cell.get("rule").is_none() && cell.get("stale_rules").is_none());
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        let back = RunSummary::read(tmp.path()).unwrap();
        assert_eq!(back.cells[0].rule, None);
        assert_eq!(back.cells[0].rate().trials, 1);
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

    #[test]
    fn limits_and_dropped_bytes_are_optional_both_ways() {
        // A summary written before they were recorded still reads...
        let mut old = serde_json::to_value(attempt(Outcome::Timeout)).unwrap();
        assert!(old.get("limits").is_none() && old.get("dropped").is_none());
        old.as_object_mut().unwrap().remove("limits");
        let back: Attempt = serde_json::from_value(old).unwrap();
        assert_eq!((back.limits, back.dropped.len()), (None, 0));
        // ...and a new one round-trips them.
        let mut a = attempt(Outcome::NotReproduced);
        a.limits = Some(Limits {
            timeout_s: 90,
            stall_s: Some(300),
            log_cap_bytes: 16 << 20,
            out_cap_bytes: 64 << 20,
        });
        a.dropped = [(Captured::Stdout, 42), (Captured::Out, 7)].into();
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["dropped"], serde_json::json!({"stdout": 42, "out": 7}));
        assert_eq!(v["limits"]["stall_s"], 300);
        assert_eq!(serde_json::from_value::<Attempt>(v).unwrap(), a);
    }

    fn cell(expect: Expect, outcomes: &[Outcome]) -> CellRecord {
        crate::report::fixtures::cell("memcg-fill", "6.1", "v1", expect, outcomes, 1)
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
