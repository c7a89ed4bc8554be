//! What the reports say about a cell and a run, as plain unescaped text:
//! the attempt that stands for a cell, its key metric, attempt fraction
//! and one-line problem, the run's status counts, and the kubelet note.

use super::format::{first_line, metric};
use super::symbols::STATUSES;
use super::{CellRecord, RunSummary, Status};
use crate::model::{Attempt, ConsoleFinding, FindingSource, Outcome};

/// Said wherever kubelet profiles appear in a report.
pub const KUBELET_NOTE: &str = "Kubelet profiles reproduce each kubelet version's node-level actions \
(the cgroups it creates, its runc's kernel-memory accounting, its defaults), not the kubelet binary.";

/// What the caps dropped from an attempt's logs and artefacts, as one
/// line (`None` when nothing was dropped): "output capped: stdout.log lost
/// 255.0 MiB (16.0 MiB kept per log)".
pub(crate) fn capped_note(a: &Attempt) -> Option<String> {
    if a.dropped.is_empty() {
        return None;
    }
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64);
    let parts: Vec<String> = a
        .dropped
        .iter()
        .map(|(what, n)| format!("{} lost {}", what.file(), mib(*n)))
        .collect();
    let caps = a
        .limits
        .as_ref()
        .map(|l| {
            format!(
                " (caps: {} per log, {} of artefacts)",
                mib(l.log_cap_bytes),
                mib(l.out_cap_bytes)
            )
        })
        .unwrap_or_default();
    Some(format!("output capped: {}{caps}", parts.join(", ")))
}

/// How many cells have each status, every status in legend order.
pub(crate) fn status_counts(s: &RunSummary) -> Vec<(Status, usize)> {
    STATUSES
        .iter()
        .map(|st| (*st, s.cells.iter().filter(|c| c.status() == *st).count()))
        .collect()
}

/// The attempt that stands for the cell: the last one whose outcome is the
/// cell's outcome, else the last one.
pub(crate) fn representative(c: &CellRecord) -> Option<&Attempt> {
    let o = c.outcome();
    c.attempts
        .iter()
        .rev()
        .find(|a| a.outcome == o)
        .or(c.attempts.last())
}

/// The cell's key metric with its unit, from the representative attempt
/// (else the last attempt that reported it).
pub(crate) fn key_metric(c: &CellRecord) -> Option<String> {
    let name = c.key_metric.as_deref()?;
    let m = representative(c)
        .and_then(|a| a.metrics.get(name))
        .or_else(|| c.attempts.iter().rev().find_map(|a| a.metrics.get(name)))?;
    Some(metric(m))
}

/// "2/3" when the cell had more than one attempt: how many attempts ended
/// with the cell's outcome.
pub(crate) fn attempt_fraction(c: &CellRecord) -> Option<String> {
    if c.attempts.len() < 2 {
        return None;
    }
    let o = c.outcome();
    let n = c.attempts.iter().filter(|a| a.outcome == o).count();
    Some(format!("{n}/{}", c.attempts.len()))
}

/// `reproduced 2/3 (67%, 95% CI 21–94%)`: the cell's rate with its 95%
/// Wilson interval, when it had more than one trial.
pub(crate) fn rate_text(c: &CellRecord) -> Option<String> {
    c.has_repeats()
        .then(|| format!("{} {}", c.rate_outcome(), c.rate()))
}

/// `67% [21–94%]`: the rate for a table cell, when it had repeats.
pub(crate) fn rate_short(c: &CellRecord) -> Option<String> {
    c.has_repeats().then(|| c.rate().percent()).flatten()
}

/// The rule that set the cell's expectation and what it says, when the
/// rule says more than where it is (a reason, link, fix or `until`).
pub(crate) fn rule_text(c: &CellRecord) -> Option<String> {
    c.rule
        .as_ref()
        .filter(|r| {
            r.reason.is_some() || r.url.is_some() || r.fixed_by.is_some() || r.until.is_some()
        })
        .map(|r| format!("expect {}: {}", c.expect, r.describe()))
}

/// What went wrong with a cell, in one line: `expected reproduced, got
/// not-reproduced: <reason>`; empty for cells that passed.
pub(crate) fn problem(c: &CellRecord) -> String {
    let rep = representative(c);
    let reason = rep.map(|a| first_line(&a.reason)).unwrap_or("");
    let with_reason = |head: String| {
        if reason.is_empty() {
            head
        } else {
            format!("{head}: {reason}")
        }
    };
    match c.status() {
        Status::Passed => String::new(),
        Status::Failed if matches!(c.expect, crate::model::Expect::Rate(_)) => {
            format!(
                "expected {}, got {} {}",
                c.expect,
                c.rate_outcome(),
                c.rate()
            )
        }
        Status::Failed => with_reason(format!("expected {}, got {}", c.expect, c.outcome())),
        Status::Flaky => {
            let mut counts: Vec<(Outcome, usize)> = vec![];
            for a in &c.attempts {
                match counts.iter_mut().find(|(o, _)| *o == a.outcome) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((a.outcome, 1)),
                }
            }
            let list = counts
                .iter()
                .map(|(o, n)| format!("{o} ×{n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let miss = c
                .attempts
                .iter()
                .rev()
                .find(|a| !c.expect.accepts(a.outcome))
                .map(|a| first_line(&a.reason))
                .unwrap_or("");
            let head = format!("flaky, expected {}: {list}", c.expect);
            if miss.is_empty() {
                head
            } else {
                format!("{head}: {miss}")
            }
        }
        Status::Error => {
            let phase = rep
                .and_then(|a| a.phase)
                .map(|p| format!(" in {}", p.as_str()))
                .unwrap_or_default();
            with_reason(format!("error{phase}"))
        }
        Status::Cancelled => with_reason("cancelled".to_string()),
    }
}

/// Every attempt's kernel-log findings (warnings, hangs, lockups, OOM
/// kills, init's exit, a restarted SSH server) with their attempt, in
/// attempt order. Crashes are the attempt's `crash`, shown with failures.
pub(crate) fn findings(c: &CellRecord) -> Vec<(&Attempt, &ConsoleFinding)> {
    c.attempts
        .iter()
        .flat_map(|a| a.warnings.iter().map(move |f| (a, f)))
        .collect()
}

/// `hung-task: INFO: task mkdir:151 blocked for more than 5 seconds.`
pub(crate) fn finding_line(f: &ConsoleFinding) -> String {
    format!("{}: {}", f.kind, f.title)
}

/// The artefact a finding's excerpt was read from: the attempt's console
/// log, or its `dmesg` (falling back to the console log when it has none).
pub(crate) fn finding_log<'a>(a: &'a Attempt, f: &ConsoleFinding) -> &'a str {
    match (f.source, a.artifacts.dmesg.as_deref()) {
        (FindingSource::Dmesg, Some(d)) => d,
        _ => &a.artifacts.console,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Expect, RateExpect, RuleSource};
    use crate::report::fixtures::{cell, mixed};
    use rstest::rstest;
    use Outcome::*;

    #[rstest]
    #[case(">= 0.8", &[Reproduced, Reproduced, NotReproduced], Status::Failed,
        "expected reproduced >= 0.8, got reproduced 2/3 (67%, 95% CI 21–94%)")]
    #[case(">= 0.5", &[Reproduced, Reproduced, NotReproduced], Status::Passed, "")]
    #[case(">= 0.5", &[Reproduced, Error, Error], Status::Passed, "")]
    #[case(">= 0.5", &[Skipped], Status::Failed,
        "expected reproduced >= 0.5, got reproduced 0/0")]
    fn rate_expectations_judge_the_cell(
        #[case] rate: &str,
        #[case] outcomes: &[Outcome],
        #[case] status: Status,
        #[case] want: &str,
    ) {
        let e = Expect::Rate(RateExpect::parse("reproduced", rate).unwrap());
        let c = cell("kmem-leak", "6.1", "v1", e, outcomes, 1);
        assert_eq!(c.status(), status);
        assert_eq!(problem(&c), want);
        assert!(
            c.is_flaky()
                == (outcomes
                    .iter()
                    .filter(|o| **o != Error)
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
                    > 1)
        );
    }

    #[test]
    fn a_rule_with_provenance_is_described() {
        let mut c = cell(
            "kmem-leak",
            "6.1",
            "v1",
            Expect::Reproduced,
            &[Reproduced],
            1,
        );
        c.rule = Some(RuleSource {
            at: "matrix.toml:40".into(),
            ..Default::default()
        });
        assert_eq!(rule_text(&c), None, "a bare rule says nothing new");
        c.rule = Some(RuleSource {
            at: "matrix.toml:40".into(),
            reason: Some("runc 1.0 leaks kmem".into()),
            url: Some("https://example.org/bug/1".into()),
            fixed_by: Some("6.7".into()),
            until: Some(">=6.7".into()),
        });
        assert_eq!(
            rule_text(&c).as_deref(),
            Some("expect reproduced: matrix.toml:40: runc 1.0 leaks kmem (fixed by 6.7, until >=6.7, https://example.org/bug/1)")
        );
    }

    #[test]
    fn describes_every_kind_of_cell() {
        let s = mixed();
        let problems: Vec<String> = s.cells.iter().map(problem).collect();
        assert_eq!(
            problems,
            [
                "",
                "",
                "flaky, expected reproduced: reproduced ×2, not-reproduced ×1: \
                 not-reproduced because of attempt 2",
                "expected not-reproduced, got crashed: crashed because of attempt 1",
                "",
                "error in boot: qemu exited with status 1",
            ]
        );
        assert_eq!(attempt_fraction(&s.cells[2]).as_deref(), Some("2/3"));
        assert_eq!(attempt_fraction(&s.cells[0]), None);
        assert_eq!(
            rate_text(&s.cells[2]).as_deref(),
            Some("reproduced 2/3 (67%, 95% CI 21–94%)")
        );
        assert_eq!(rate_short(&s.cells[2]).as_deref(), Some("67% [21–94%]"));
        assert_eq!(rate_text(&s.cells[0]), None);
        assert_eq!(key_metric(&s.cells[0]).as_deref(), Some("65533 cgroups"));
        assert_eq!(representative(&s.cells[2]).map(|a| a.number), Some(3));
        let counts: Vec<usize> = status_counts(&s).into_iter().map(|(_, n)| n).collect();
        assert_eq!(counts, [3, 1, 1, 1, 0]);
    }
}
