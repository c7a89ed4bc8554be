//! Expectations that no longer hold up: a cell that did not reproduce
//! although its `[[expect]]` rule expected a failure (an **unexpected
//! pass**), and a rule whose `until` range a cell's kernel has reached (a
//! **stale rule**). Each comes with the edit to make to the matrix file.
//! `repro matrix --strict` fails on any. Pure: read off a run's record.

use super::{CellRecord, Expect, RunSummary};
use crate::model::rate::{is_trial, Rate};
use crate::model::version::{cmp_versions, parse_version};
use crate::model::{Outcome, RuleSource};
use serde::Serialize;

/// Which way a rule stopped holding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StaleKind {
    /// The rule expected a failure; every trial passed.
    UnexpectedPass,
    /// The cells' kernel is in the rule's `until` range.
    UntilPassed,
}

impl StaleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StaleKind::UnexpectedPass => "unexpected pass",
            StaleKind::UntilPassed => "stale rule",
        }
    }
}

/// One rule and the cells on which it stopped holding, with an edit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaleRule {
    pub kind: StaleKind,
    pub rule: RuleSource,
    /// Cell ids, in run order.
    pub cells: Vec<String>,
    /// What to change in the matrix file.
    pub edit: String,
}

impl StaleRule {
    /// `unexpected pass: matrix.toml:42 (reason) on a/b, c/d: edit`.
    pub fn line(&self) -> String {
        format!(
            "{}: {} on {}: {}",
            self.kind.as_str(),
            self.rule.describe(),
            self.cells.join(", "),
            self.edit
        )
    }
}

/// The outcome a rule expecting a failure wants, if it expects one.
fn wanted_failure(e: Expect) -> Option<Outcome> {
    match e {
        Expect::Reproduced => Some(Outcome::Reproduced),
        Expect::Crashed => Some(Outcome::Crashed),
        Expect::Timeout => Some(Outcome::Timeout),
        Expect::Rate(r) if r.wants_hits() && r.outcome != Outcome::NotReproduced => Some(r.outcome),
        _ => None,
    }
}

/// Whether the cell's rule expected a failure and every trial (at least
/// one) ended `not-reproduced`.
fn unexpected_pass(c: &CellRecord) -> bool {
    let Some(want) = wanted_failure(c.expect) else {
        return false;
    };
    let trials: Vec<Outcome> = c
        .attempts
        .iter()
        .map(|a| a.outcome)
        .filter(|o| is_trial(*o))
        .collect();
    c.rule.is_some()
        && !trials.is_empty()
        && trials.iter().all(|o| *o == Outcome::NotReproduced)
        && Rate::of(trials, want).hits == 0
}

/// The oldest of `kernels` that is a version (`6.1`), if any.
fn oldest_version<'a>(kernels: &[&'a str]) -> Option<&'a str> {
    kernels
        .iter()
        .filter_map(|k| parse_version(k).map(|v| (v, *k)))
        .min_by(|a, b| cmp_versions(&a.0, &b.0))
        .map(|(_, k)| k)
}

fn edit_for(kind: StaleKind, rule: &RuleSource, kernels: &[&str]) -> String {
    match kind {
        StaleKind::UnexpectedPass => match oldest_version(kernels) {
            Some(k) if rule.until.is_none() => format!(
                "if the fix is in kernel {k}, add `until = \">={k}\"` (and `fixed_by`) to the rule at {}; \
                 otherwise check why it did not reproduce",
                rule.at
            ),
            _ => format!(
                "if these kernels have the fix, narrow the `kernel` pattern of the rule at {} so it \
                 no longer matches {}, or remove the rule; otherwise check why it did not reproduce",
                rule.at,
                kernels.join(", ")
            ),
        },
        StaleKind::UntilPassed => {
            let until = rule.until.as_deref().unwrap_or_default();
            match until.trim().strip_prefix(">=").map(str::trim) {
                Some(v) if !v.contains(',') => format!(
                    "the rule at {} no longer applies from kernel {v}: set its `kernel = \"<{v}\"` and drop \
                     `until`, or remove it when no kernel it matches is still run",
                    rule.at
                ),
                _ => format!(
                    "the rule at {} no longer applies to kernels in `{until}`: narrow its `kernel` \
                     pattern to exclude them and drop `until`, or remove it",
                    rule.at
                ),
            }
        }
    }
}

/// Every unexpected pass and stale rule of the run, grouped by rule and
/// kind, in the order the cells come.
pub fn stale_rules(s: &RunSummary) -> Vec<StaleRule> {
    grouped(&s.cells)
}

/// The unexpected pass and stale rules of one cell.
pub fn stale_rules_of(c: &CellRecord) -> Vec<StaleRule> {
    grouped(std::slice::from_ref(c))
}

fn grouped(cells: &[CellRecord]) -> Vec<StaleRule> {
    let mut found: Vec<(StaleKind, RuleSource, Vec<&CellRecord>)> = Vec::new();
    let mut add = |kind, rule: &RuleSource, c| match found
        .iter_mut()
        .find(|(k, r, _)| *k == kind && r == rule)
    {
        Some((_, _, cells)) => cells.push(c),
        None => found.push((kind, rule.clone(), vec![c])),
    };
    for c in cells {
        if let (true, Some(rule)) = (unexpected_pass(c), &c.rule) {
            add(StaleKind::UnexpectedPass, rule, c);
        }
        for rule in &c.stale_rules {
            add(StaleKind::UntilPassed, rule, c);
        }
    }
    found
        .into_iter()
        .map(|(kind, rule, cells)| {
            let mut kernels: Vec<&str> = cells.iter().map(|c| c.key.kernel.as_str()).collect();
            kernels.dedup();
            StaleRule {
                kind,
                edit: edit_for(kind, &rule, &kernels),
                cells: cells.iter().map(|c| c.id()).collect(),
                rule,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{RateExpect, RunMeta, SCHEMA_VERSION};
    use crate::report::fixtures::cell;
    use rstest::rstest;
    use Outcome::*;

    fn rule(at: &str, until: Option<&str>) -> RuleSource {
        RuleSource {
            at: at.into(),
            reason: Some("memcg leak".into()),
            until: until.map(Into::into),
            ..Default::default()
        }
    }

    fn run(cells: Vec<CellRecord>) -> RunSummary {
        RunSummary {
            schema_version: SCHEMA_VERSION,
            run_id: "r".into(),
            started_at: String::new(),
            finished_at: None,
            complete: true,
            meta: RunMeta::default(),
            cells,
        }
    }

    fn ruled(kernel: &str, expect: Expect, outcomes: &[Outcome]) -> CellRecord {
        let mut c = cell("kmem-leak", kernel, "v1", expect, outcomes, 1);
        c.rule = Some(rule("matrix.toml:9", None));
        c
    }

    fn rate(s: &str) -> Expect {
        Expect::Rate(RateExpect::parse("reproduced", s).unwrap())
    }

    #[rstest]
    #[case::fixed(Expect::Reproduced, &[NotReproduced, NotReproduced], true)]
    #[case::still_broken(Expect::Reproduced, &[Reproduced], false)]
    #[case::flaky_is_not_a_pass(Expect::Reproduced, &[Reproduced, NotReproduced], false)]
    #[case::errors_judge_nothing(Expect::Reproduced, &[Error, Error], false)]
    #[case::errors_are_not_trials(Expect::Reproduced, &[Error, NotReproduced], true)]
    #[case::a_crash_is_no_pass(Expect::Reproduced, &[Crashed], false)]
    #[case::expected_crash(Expect::Crashed, &[NotReproduced], true)]
    #[case::expected_pass(Expect::NotReproduced, &[NotReproduced], false)]
    #[case::any(Expect::Any, &[NotReproduced], false)]
    #[case::rate_wanting_hits(rate(">= 0.5"), &[NotReproduced, NotReproduced, NotReproduced], true)]
    #[case::rate_bounding_hits(rate("<= 0.1"), &[NotReproduced], false)]
    fn unexpected_passes(#[case] e: Expect, #[case] outcomes: &[Outcome], #[case] want: bool) {
        let found = stale_rules(&run(vec![ruled("6.12", e, outcomes)]));
        assert_eq!(found.len(), usize::from(want), "{found:?}");
        if want {
            assert_eq!(found[0].kind, StaleKind::UnexpectedPass);
            assert!(
                found[0].edit.contains("add `until = \">=6.12\"`"),
                "{}",
                found[0].edit
            );
        }
    }

    #[test]
    fn a_cell_without_a_rule_is_never_an_unexpected_pass() {
        let mut c = ruled("6.12", Expect::Reproduced, &[NotReproduced]);
        c.rule = None;
        assert!(stale_rules(&run(vec![c])).is_empty());
    }

    #[test]
    fn unexpected_passes_group_by_rule_and_suggest_the_oldest_kernel() {
        let cells = vec![
            ruled("6.12", Expect::Reproduced, &[NotReproduced]),
            ruled("6.1", Expect::Reproduced, &[Reproduced]),
            ruled("6.6", Expect::Reproduced, &[NotReproduced]),
        ];
        let found = stale_rules(&run(cells));
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].cells,
            [
                "kmem-leak/kernel=6.12/cgroup=v1",
                "kmem-leak/kernel=6.6/cgroup=v1"
            ]
        );
        assert!(found[0].edit.contains("\">=6.6\""), "{}", found[0].edit);
    }

    #[rstest]
    #[case(">=6.7", "set its `kernel = \"<6.7\"` and drop `until`")]
    #[case(">= 6.7", "set its `kernel = \"<6.7\"`")]
    #[case(">=6.7,<7", "kernels in `>=6.7,<7`: narrow its `kernel` pattern")]
    fn stale_rules_say_how_to_narrow_the_rule(#[case] until: &str, #[case] want: &str) {
        let mut c = cell(
            "kmem-leak",
            "6.8",
            "v1",
            Expect::NotReproduced,
            &[NotReproduced],
            1,
        );
        c.stale_rules = vec![rule("matrix.toml:20", Some(until))];
        let found = stale_rules(&run(vec![c]));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, StaleKind::UntilPassed);
        assert!(found[0].edit.contains(want), "{}", found[0].edit);
        assert!(
            found[0]
                .line()
                .starts_with("stale rule: matrix.toml:20: memcg leak (until "),
            "{}",
            found[0].line()
        );
    }

    #[test]
    fn a_kernel_that_is_no_version_gets_a_pattern_edit() {
        let found = stale_rules(&run(vec![ruled(
            "bookworm",
            Expect::Reproduced,
            &[NotReproduced],
        )]));
        assert!(
            found[0].edit.contains("no longer matches bookworm"),
            "{}",
            found[0].edit
        );
    }
}
