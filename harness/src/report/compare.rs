//! Comparing two runs cell by cell (matched by cell `id`).
//!
//! The rule:
//! - When both runs judged the cell (`expect` is not `any` in either), the
//!   status decides: **regression** = passed → failed or flaky; **fix** =
//!   failed or flaky → passed.
//! - When either run has `expect = any` (recorded, not judged), the
//!   outcome decides: **regression** = not-reproduced → reproduced, crashed
//!   or timeout; **fix** = the reverse.
//! - Error and cancelled (the harness could not judge) are never a
//!   regression or a fix: a cell going to or from them is **changed**.
//! - **changed** = the outcome or the status differs but the rule above
//!   does not call it a regression or a fix; **unchanged** = same outcome
//!   and status.
//! - Cells only in the new run are **new**, only in the old **removed**.

use super::describe::representative;
use super::escape::{markdown as md, markdown_code};
use super::format::first_line;
use super::symbols::{status_symbol, Glyphs};
use super::{CellRecord, Expect, RunSummary, Status};
use crate::model::Outcome;
use std::collections::HashMap;
use std::fmt::Write as _;

/// A cell's state in one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellState {
    pub status: Status,
    pub outcome: Outcome,
    pub expect: Expect,
    /// First line of the representative attempt's reason.
    pub reason: String,
}

impl CellState {
    fn of(c: &CellRecord) -> CellState {
        CellState {
            status: c.status(),
            outcome: c.outcome(),
            expect: c.expect,
            reason: representative(c)
                .map(|a| first_line(&a.reason).to_string())
                .unwrap_or_default(),
        }
    }

    fn describe(&self) -> String {
        if self.expect == Expect::Any {
            format!("{} (recorded)", self.outcome)
        } else {
            format!("{} ({})", self.status.as_str(), self.outcome)
        }
    }
}

/// A cell present in both runs whose state differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellChange {
    pub id: String,
    pub old: CellState,
    pub new: CellState,
}

/// A cell present in only one of the runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellEntry {
    pub id: String,
    pub state: CellState,
}

/// The difference between two runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    pub old_run: String,
    pub new_run: String,
    pub regressions: Vec<CellChange>,
    pub fixes: Vec<CellChange>,
    /// Outcome or status changed without a pass/fail change.
    pub changed: Vec<CellChange>,
    pub new_cells: Vec<CellEntry>,
    pub removed_cells: Vec<CellEntry>,
    pub unchanged: usize,
}

enum Kind {
    Regression,
    Fix,
    Changed,
    Unchanged,
}

fn classify(old: &CellState, new: &CellState) -> Kind {
    let judged = old.expect != Expect::Any && new.expect != Expect::Any;
    let unjudgeable = |s: &CellState| matches!(s.status, Status::Error | Status::Cancelled);
    if !unjudgeable(old) && !unjudgeable(new) {
        if judged {
            let bad = |s: Status| matches!(s, Status::Failed | Status::Flaky);
            if old.status == Status::Passed && bad(new.status) {
                return Kind::Regression;
            }
            if bad(old.status) && new.status == Status::Passed {
                return Kind::Fix;
            }
        } else {
            let bad =
                |o: Outcome| matches!(o, Outcome::Reproduced | Outcome::Crashed | Outcome::Timeout);
            if old.outcome == Outcome::NotReproduced && bad(new.outcome) {
                return Kind::Regression;
            }
            if bad(old.outcome) && new.outcome == Outcome::NotReproduced {
                return Kind::Fix;
            }
        }
    }
    if old.outcome != new.outcome || old.status != new.status {
        Kind::Changed
    } else {
        Kind::Unchanged
    }
}

/// Compares `new` against `old`, matching cells by id.
pub fn compare(old: &RunSummary, new: &RunSummary) -> Comparison {
    let old_by_id: HashMap<String, &CellRecord> = old.cells.iter().map(|c| (c.id(), c)).collect();
    let new_ids: std::collections::HashSet<String> = new.cells.iter().map(|c| c.id()).collect();
    let mut cmp = Comparison {
        old_run: old.run_id.clone(),
        new_run: new.run_id.clone(),
        regressions: vec![],
        fixes: vec![],
        changed: vec![],
        new_cells: vec![],
        removed_cells: vec![],
        unchanged: 0,
    };
    for c in &new.cells {
        let state = CellState::of(c);
        let Some(o) = old_by_id.get(&c.id()) else {
            cmp.new_cells.push(CellEntry { id: c.id(), state });
            continue;
        };
        let change = CellChange {
            id: c.id(),
            old: CellState::of(o),
            new: state,
        };
        match classify(&change.old, &change.new) {
            Kind::Regression => cmp.regressions.push(change),
            Kind::Fix => cmp.fixes.push(change),
            Kind::Changed => cmp.changed.push(change),
            Kind::Unchanged => cmp.unchanged += 1,
        }
    }
    for c in &old.cells {
        if !new_ids.contains(&c.id()) {
            cmp.removed_cells.push(CellEntry {
                id: c.id(),
                state: CellState::of(c),
            });
        }
    }
    cmp
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn with_reason(s: String, reason: &str) -> String {
    if reason.is_empty() {
        s
    } else {
        format!("{s}: {reason}")
    }
}

impl Comparison {
    pub fn has_regressions(&self) -> bool {
        !self.regressions.is_empty()
    }

    /// `1 regression, 0 fixes, 2 changed, 1 new, 0 removed, 5 unchanged`.
    pub fn counts(&self) -> String {
        format!(
            "{}, {}, {} changed, {} new, {} removed, {} unchanged",
            plural(self.regressions.len(), "regression", "regressions"),
            plural(self.fixes.len(), "fix", "fixes"),
            self.changed.len(),
            self.new_cells.len(),
            self.removed_cells.len(),
            self.unchanged
        )
    }

    fn change_line(c: &CellChange) -> String {
        with_reason(
            format!("{}: {} → {}", c.id, c.old.describe(), c.new.describe()),
            &c.new.reason,
        )
    }

    fn entry_line(e: &CellEntry) -> String {
        with_reason(format!("{}: {}", e.id, e.state.describe()), &e.state.reason)
    }

    fn sections(&self) -> Vec<(&'static str, Vec<String>)> {
        vec![
            (
                "Regressions",
                self.regressions.iter().map(Self::change_line).collect(),
            ),
            ("Fixes", self.fixes.iter().map(Self::change_line).collect()),
            (
                "Changed",
                self.changed.iter().map(Self::change_line).collect(),
            ),
            (
                "New cells",
                self.new_cells.iter().map(Self::entry_line).collect(),
            ),
            (
                "Removed cells",
                self.removed_cells.iter().map(Self::entry_line).collect(),
            ),
        ]
    }

    /// Markdown for a PR comment or job summary.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "## repro: `{}` compared with `{}`\n",
            markdown_code(&md(&self.new_run)),
            markdown_code(&md(&self.old_run))
        );
        let head = status_symbol(
            if self.has_regressions() {
                Status::Failed
            } else {
                Status::Passed
            },
            Glyphs::Emoji,
        );
        let _ = writeln!(out, "**{head} {}**\n", self.counts());
        for (title, lines) in self.sections() {
            if lines.is_empty() {
                continue;
            }
            let _ = writeln!(out, "### {title}\n");
            for l in lines {
                let _ = writeln!(out, "- {}", md(&l));
            }
            out.push('\n');
        }
        out
    }

    /// Plain text for a terminal.
    pub fn text(&self) -> String {
        let mut out = format!(
            "{} compared with {}: {}\n",
            self.new_run,
            self.old_run,
            self.counts()
        );
        for (title, lines) in self.sections() {
            if lines.is_empty() {
                continue;
            }
            let _ = writeln!(out, "{title}:");
            for l in lines {
                let _ = writeln!(out, "  {l}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Outcome::*;
    use crate::report::fixtures::cell;
    use crate::report::summary::tests::summary;
    use rstest::rstest;

    fn run(id: &str, cells: Vec<CellRecord>) -> RunSummary {
        let mut s = summary();
        s.run_id = id.into();
        s.cells = cells;
        s
    }

    fn c(kernel: &str, expect: Expect, outcomes: &[Outcome]) -> CellRecord {
        cell("memcg-fill", kernel, "v1", expect, outcomes, 1)
    }

    #[rstest]
    #[case(Expect::Reproduced, &[Reproduced], Expect::Reproduced, &[NotReproduced], "regression")]
    #[case(Expect::Reproduced, &[Reproduced], Expect::Reproduced, &[Reproduced, NotReproduced], "regression")]
    #[case(Expect::Reproduced, &[NotReproduced], Expect::Reproduced, &[Reproduced], "fix")]
    #[case(Expect::Reproduced, &[Reproduced, NotReproduced], Expect::Reproduced, &[Reproduced], "fix")]
    #[case(Expect::Reproduced, &[NotReproduced], Expect::Reproduced, &[Crashed], "changed")]
    #[case(Expect::Reproduced, &[Reproduced], Expect::Reproduced, &[Error], "changed")]
    #[case(Expect::Reproduced, &[Error], Expect::Reproduced, &[NotReproduced], "changed")]
    #[case(Expect::Reproduced, &[Reproduced], Expect::Reproduced, &[Error, Reproduced], "unchanged")]
    #[case(Expect::Any, &[NotReproduced], Expect::Any, &[Reproduced], "regression")]
    #[case(Expect::Any, &[NotReproduced], Expect::Any, &[Crashed], "regression")]
    #[case(Expect::Any, &[Reproduced], Expect::Any, &[NotReproduced], "fix")]
    #[case(Expect::Any, &[Skipped], Expect::Any, &[Reproduced], "changed")]
    #[case(Expect::Any, &[NotReproduced], Expect::Reproduced, &[Reproduced], "regression")]
    #[case(Expect::Any, &[Reproduced], Expect::Any, &[Reproduced], "unchanged")]
    #[case(Expect::Any, &[Reproduced], Expect::Any, &[Cancelled], "changed")]
    fn classifies(
        #[case] old_expect: Expect,
        #[case] old: &[Outcome],
        #[case] new_expect: Expect,
        #[case] new: &[Outcome],
        #[case] want: &str,
    ) {
        let cmp = compare(
            &run("a", vec![c("6.1", old_expect, old)]),
            &run("b", vec![c("6.1", new_expect, new)]),
        );
        let got = match (
            cmp.regressions.len(),
            cmp.fixes.len(),
            cmp.changed.len(),
            cmp.unchanged,
        ) {
            (1, 0, 0, 0) => "regression",
            (0, 1, 0, 0) => "fix",
            (0, 0, 1, 0) => "changed",
            (0, 0, 0, 1) => "unchanged",
            _ => panic!("{cmp:?}"),
        };
        assert_eq!(got, want, "{cmp:?}");
        assert_eq!(cmp.has_regressions(), want == "regression");
    }

    fn pair() -> Comparison {
        let old = run(
            "old",
            vec![
                c("6.1", Expect::Reproduced, &[Reproduced]),
                c("6.6", Expect::Reproduced, &[NotReproduced]),
                c("6.10", Expect::Reproduced, &[Reproduced]),
                c("6.11", Expect::Reproduced, &[Reproduced]),
                c("5.10", Expect::Reproduced, &[Reproduced]),
            ],
        );
        let mut regressed = c("6.1", Expect::Reproduced, &[NotReproduced]);
        regressed.attempts[0].reason = "only 12 <cgroups>\nsecond line".into();
        let new = run(
            "new",
            vec![
                regressed,
                c("6.6", Expect::Reproduced, &[Reproduced]),
                c("6.10", Expect::Reproduced, &[Reproduced]),
                c("6.11", Expect::Reproduced, &[Error]),
                c("6.12", Expect::Reproduced, &[Reproduced]),
            ],
        );
        compare(&old, &new)
    }

    #[test]
    fn groups_cells() {
        let cmp = pair();
        let ids = |v: &[CellChange]| v.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&cmp.regressions), ["memcg-fill/kernel=6.1/cgroup=v1"]);
        assert_eq!(ids(&cmp.fixes), ["memcg-fill/kernel=6.6/cgroup=v1"]);
        assert_eq!(ids(&cmp.changed), ["memcg-fill/kernel=6.11/cgroup=v1"]);
        assert_eq!(cmp.new_cells[0].id, "memcg-fill/kernel=6.12/cgroup=v1");
        assert_eq!(cmp.removed_cells[0].id, "memcg-fill/kernel=5.10/cgroup=v1");
        assert_eq!(cmp.unchanged, 1);
        assert!(cmp.has_regressions());
    }

    #[test]
    fn renders_markdown_and_text() {
        let cmp = pair();
        let md = cmp.markdown();
        assert_eq!(
            md,
            "\
## repro: `new` compared with `old`

**❌ 1 regression, 1 fix, 1 changed, 1 new, 1 removed, 1 unchanged**

### Regressions

- memcg-fill/kernel=6.1/cgroup=v1: passed (reproduced) → failed (not-reproduced): only 12 &lt;cgroups&gt;

### Fixes

- memcg-fill/kernel=6.6/cgroup=v1: failed (not-reproduced) → passed (reproduced): reproduced because of attempt 1

### Changed

- memcg-fill/kernel=6.11/cgroup=v1: passed (reproduced) → error (error): error because of attempt 1

### New cells

- memcg-fill/kernel=6.12/cgroup=v1: passed (reproduced): reproduced because of attempt 1

### Removed cells

- memcg-fill/kernel=5.10/cgroup=v1: passed (reproduced): reproduced because of attempt 1

"
        );
        let text = cmp.text();
        assert!(text.starts_with(
            "new compared with old: 1 regression, 1 fix, 1 changed, 1 new, 1 removed, 1 unchanged\nRegressions:\n  memcg-fill/kernel=6.1/cgroup=v1: passed (reproduced) → failed (not-reproduced): only 12 <cgroups>\n"
        ), "{text}");
    }

    #[test]
    fn markdown_lines_are_escaped_like_summary_md() {
        let old = run("a`b", vec![c("6.1", Expect::Reproduced, &[Reproduced])]);
        let mut regressed = c("6.1", Expect::Reproduced, &[NotReproduced]);
        regressed.attempts[0].reason = "x | y   <z>".into();
        let md = compare(&old, &run("n", vec![regressed])).markdown();
        assert!(
            md.starts_with("## repro: `n` compared with `a'b`\n"),
            "{md}"
        );
        assert!(md.contains("(not-reproduced): x \\| y &lt;z&gt;\n"), "{md}");
    }

    #[test]
    fn identical_runs_have_nothing_to_say() {
        let s = run("a", vec![c("6.1", Expect::Reproduced, &[Reproduced])]);
        let cmp = compare(&s, &s);
        assert!(!cmp.has_regressions());
        assert_eq!(cmp.unchanged, 1);
        assert_eq!(
            cmp.text(),
            "a compared with a: 0 regressions, 0 fixes, 0 changed, 0 new, 0 removed, 1 unchanged\n"
        );
    }
}
