//! `summary.md`: the run as Markdown, short enough for a CI job summary or
//! a pull-request comment. Rendered from a [`RunSummary`] only.
//!
//! Also home of the pieces every table-shaped report shares (the HTML
//! report draws the same tables): the scenario grids, cell names and
//! key-metric formatting.

use super::escape::{markdown as md, markdown_code};
use super::summary::{CellRecord, RunSummary, Status};
use super::symbols::{legend, marker, outcome_symbol, status_symbol, Glyphs, STATUSES};
use crate::model::{Attempt, Metric, Outcome};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Said wherever kubelet profiles appear in a report.
pub const KUBELET_NOTE: &str = "Kubelet profiles reproduce each kubelet version's node-level actions \
(the cgroups it creates, its runc's kernel-memory accounting, its defaults), not the kubelet binary.";

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

/// The first line of a (possibly multi-line) reason.
pub(crate) fn first_line(s: &str) -> &str {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

/// A number or text for people: integers as they are, other numbers with
/// at most three decimals (scientific when tiny).
pub(crate) fn format_number(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    if v != 0.0 && v.abs() < 0.001 {
        return format!("{v:.2e}");
    }
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

pub(crate) fn format_metric(m: &Metric) -> String {
    let value = match &m.value {
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => format_number(f),
            _ => n.to_string(),
        },
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if m.unit.is_empty() {
        value
    } else {
        format!("{value} {}", m.unit)
    }
}

/// The cell's key metric with its unit, from the representative attempt
/// (else the last attempt that reported it).
pub(crate) fn key_metric(c: &CellRecord) -> Option<String> {
    let name = c.key_metric.as_deref()?;
    let m = representative(c)
        .and_then(|a| a.metrics.get(name))
        .or_else(|| c.attempts.iter().rev().find_map(|a| a.metrics.get(name)))?;
    Some(format_metric(m))
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

/// Parameter names whose values differ between the given cells (they
/// become part of the column and the cell's name).
pub(crate) fn varying_params<'a>(cells: impl IntoIterator<Item = &'a CellRecord>) -> Vec<String> {
    let mut seen: BTreeMap<&str, BTreeSet<Option<&str>>> = BTreeMap::new();
    let cells: Vec<&CellRecord> = cells.into_iter().collect();
    for c in &cells {
        for k in c.params.keys() {
            seen.entry(k).or_default();
        }
    }
    for (k, values) in seen.iter_mut() {
        for c in &cells {
            values.insert(c.params.get(*k).map(String::as_str));
        }
    }
    seen.into_iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, _)| k.to_string())
        .collect()
}

/// `scenario[kernel=6.1,kubelet=1.29,driver=systemd,cgroup=v2]`, absent
/// axes left out, parameters that vary within the scenario appended.
pub(crate) fn case_name(c: &CellRecord, varying: &[String]) -> String {
    format!("{}[{}]", c.scenario, axes(c, varying).join(","))
}

/// `kernel=6.1`, `kubelet=…`, `driver=…`, `cgroup=…`, varying parameters.
pub(crate) fn axes(c: &CellRecord, varying: &[String]) -> Vec<String> {
    let mut v = vec![format!("kernel={}", c.kernel)];
    if let Some(k) = &c.kubelet {
        v.push(format!("kubelet={k}"));
    }
    if let Some(d) = &c.driver {
        v.push(format!("driver={d}"));
    }
    v.push(format!("cgroup={}", c.cgroup));
    for p in varying {
        if let Some(val) = c.params.get(p) {
            v.push(format!("{p}={val}"));
        }
    }
    v
}

/// A table column: one combination of kubelet × driver × cgroup (and
/// varying parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    pub kubelet: Option<String>,
    pub driver: Option<String>,
    pub cgroup: String,
    pub params: Vec<(String, String)>,
}

impl Column {
    fn of(c: &CellRecord, varying: &[String]) -> Column {
        Column {
            kubelet: c.kubelet.clone(),
            driver: c.driver.clone(),
            cgroup: c.cgroup.clone(),
            params: varying
                .iter()
                .filter_map(|p| c.params.get(p).map(|v| (p.clone(), v.clone())))
                .collect(),
        }
    }

    /// `kubelet 1.29 · systemd · v2`, or just `v2`.
    pub fn label(&self) -> String {
        let mut parts = vec![];
        if let Some(k) = &self.kubelet {
            parts.push(format!("kubelet {k}"));
        }
        if let Some(d) = &self.driver {
            parts.push(d.clone());
        }
        parts.push(self.cgroup.clone());
        for (k, v) in &self.params {
            parts.push(format!("{k}={v}"));
        }
        parts.join(" · ")
    }
}

/// One scenario's table: kernels as rows (first-appearance order), column
/// combinations as columns (first-appearance order), cells at crossings.
pub(crate) struct Grid<'a> {
    pub scenario: &'a str,
    pub varying: Vec<String>,
    pub kernels: Vec<&'a str>,
    pub columns: Vec<Column>,
    /// `cells[row][column]`: usually zero or one cell; more only if the
    /// summary holds duplicates.
    pub cells: Vec<Vec<Vec<&'a CellRecord>>>,
}

impl Grid<'_> {
    /// Every cell of the scenario in table order (row by row).
    pub fn iter(&self) -> impl Iterator<Item = &CellRecord> {
        self.cells.iter().flatten().flatten().copied()
    }
}

/// The scenarios' grids, in first-appearance order.
pub(crate) fn grids(s: &RunSummary) -> Vec<Grid<'_>> {
    let mut scenarios: Vec<&str> = vec![];
    for c in &s.cells {
        if !scenarios.contains(&c.scenario.as_str()) {
            scenarios.push(&c.scenario);
        }
    }
    scenarios
        .into_iter()
        .map(|name| {
            let cells: Vec<&CellRecord> = s.cells.iter().filter(|c| c.scenario == name).collect();
            let varying = varying_params(cells.iter().copied());
            let mut kernels: Vec<&str> = vec![];
            let mut columns: Vec<Column> = vec![];
            for c in &cells {
                if !kernels.contains(&c.kernel.as_str()) {
                    kernels.push(&c.kernel);
                }
                let col = Column::of(c, &varying);
                if !columns.contains(&col) {
                    columns.push(col);
                }
            }
            let mut grid = vec![vec![vec![]; columns.len()]; kernels.len()];
            for c in &cells {
                let r = kernels.iter().position(|k| *k == c.kernel).unwrap();
                let col = Column::of(c, &varying);
                let k = columns.iter().position(|x| *x == col).unwrap();
                grid[r][k].push(*c);
            }
            Grid {
                scenario: name,
                varying,
                kernels,
                columns,
                cells: grid,
            }
        })
        .collect()
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
        Status::Failed => with_reason(format!(
            "expected {}, got {}",
            c.expect.as_str(),
            c.outcome()
        )),
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
            let head = format!("flaky, expected {}: {list}", c.expect.as_str());
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

/// Text of one table cell: symbol, key metric, marker, attempt fraction.
fn cell_text(c: &CellRecord) -> String {
    let mut parts = vec![outcome_symbol(c.outcome(), Glyphs::Emoji).to_string()];
    if let Some(m) = key_metric(c) {
        parts.push(md(&m));
    }
    let marker = marker(c, Glyphs::Emoji);
    if !marker.is_empty() {
        parts.push(marker.to_string());
    }
    if let Some(f) = attempt_fraction(c) {
        parts.push(f);
    }
    parts.join(" ")
}

/// Renders the run as Markdown.
pub fn markdown(s: &RunSummary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## repro run `{}`\n", md(&s.run_id));
    let counts: Vec<String> = status_counts(s)
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(st, n)| format!("{} {n} {}", status_symbol(st, Glyphs::Emoji), st.as_str()))
        .collect();
    let cells = match s.cells.len() {
        1 => "1 cell".to_string(),
        n => format!("{n} cells"),
    };
    let incomplete = if s.complete { "" } else { " (incomplete run)" };
    if counts.is_empty() {
        let _ = writeln!(out, "**{cells}**{incomplete}\n");
    } else {
        let _ = writeln!(out, "**{cells}**: {}{incomplete}\n", counts.join(" · "));
    }
    let mut facts = vec![];
    if !s.meta.accel.is_empty() {
        facts.push(format!("accelerator {}", md(&s.meta.accel)));
    }
    if !s.meta.repro_version.is_empty() {
        facts.push(format!("repro {}", md(&s.meta.repro_version)));
    }
    facts.push(format!("started {}", md(&s.started_at)));
    if let Some(f) = &s.finished_at {
        facts.push(format!("finished {}", md(f)));
    }
    let _ = writeln!(out, "{}\n", facts.join(" · "));
    if s.cells.iter().any(|c| c.kubelet.is_some()) {
        let _ = writeln!(out, "{}\n", KUBELET_NOTE);
    }

    for g in grids(s) {
        let _ = writeln!(out, "### {}\n", md(g.scenario));
        let mut header = vec!["kernel".to_string()];
        header.extend(g.columns.iter().map(|c| md(&c.label())));
        let _ = writeln!(out, "| {} |", header.join(" | "));
        let _ = writeln!(out, "|{}", " --- |".repeat(header.len()));
        for (r, kernel) in g.kernels.iter().enumerate() {
            let mut row = vec![md(kernel)];
            for cells in &g.cells[r] {
                row.push(
                    cells
                        .iter()
                        .map(|c| cell_text(c))
                        .collect::<Vec<_>>()
                        .join(" / "),
                );
            }
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        out.push('\n');
    }

    let mut problems = vec![];
    for g in grids(s) {
        for c in g.iter() {
            if matches!(c.status(), Status::Failed | Status::Flaky | Status::Error) {
                problems.push(format!(
                    "- {} `{}`: {}",
                    status_symbol(c.status(), Glyphs::Emoji),
                    markdown_code(&case_name(c, &g.varying)),
                    md(&problem(c))
                ));
            }
        }
    }
    if !problems.is_empty() {
        let _ = writeln!(out, "### Failures and errors\n");
        for p in problems {
            let _ = writeln!(out, "{p}");
        }
        out.push('\n');
    }
    let _ = writeln!(out, "<sub>{}</sub>", legend(Glyphs::Emoji));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use crate::report::fixtures::{cell, mixed};
    use crate::report::summary::tests::summary;
    use crate::report::Expect;
    use rstest::rstest;

    #[test]
    fn renders_a_mixed_run() {
        let want = "\
## repro run `20261122-201500-3fa2`

**6 cells**: ✅ 3 passed · ❌ 1 failed · ⚠️ 1 flaky · 🛠 1 error

accelerator tcg · repro 0.1.0 · started 2026-11-22T20:00:00Z · finished 2026-11-22T20:01:00Z

### memcg-fill

| kernel | v1 | v2 |
| --- | --- | --- |
| 6.1 | ● 65533 cgroups ✅ | ○ 12 cgroups ✅ |
| 6.12 | ● 65533 cgroups ⚠️ 2/3 | 💥 7 cgroups ❌ |

### pid-leak

| kernel | v2 |
| --- | --- |
| 6.1 | – |
| 6.12 | 🛠 |

### Failures and errors

- ⚠️ `memcg-fill[kernel=6.12,cgroup=v1]`: flaky, expected reproduced: reproduced ×2, not-reproduced ×1: not-reproduced because of attempt 2
- ❌ `memcg-fill[kernel=6.12,cgroup=v2]`: expected not-reproduced, got crashed: crashed because of attempt 1
- 🛠 `pid-leak[kernel=6.12,cgroup=v2]`: error in boot: qemu exited with status 1

<sub>● reproduced · ○ not reproduced · – skipped · 💥 crashed · ⏱ timeout · 🛠 error · × cancelled · ✅ as expected · ❌ not as expected · ⚠️ flaky (attempts disagree) · n/m: attempts with that outcome</sub>
";
        let got = markdown(&mixed());
        assert_eq!(got, want, "\n--- got ---\n{got}");
    }

    #[test]
    fn columns_combine_kubelet_driver_and_cgroup() {
        use Outcome::*;
        let mut s = summary();
        let mut a = cell("kubelet-oom", "6.1", "v1", Expect::Any, &[Reproduced], 1);
        a.kubelet = Some("1.9".into());
        a.driver = Some("cgroupfs".into());
        let mut b = cell("kubelet-oom", "6.1", "v2", Expect::Any, &[NotReproduced], 2);
        b.kubelet = Some("1.29".into());
        b.driver = Some("systemd".into());
        let mut c = cell("kubelet-oom", "6.12", "v2", Expect::Any, &[Cancelled], 3);
        c.kubelet = Some("1.29".into());
        c.driver = Some("systemd".into());
        c.key_metric = None;
        s.cells = vec![a, b, c];
        s.complete = false;
        let got = markdown(&s);
        assert!(got.contains("(incomplete run)"), "{got}");
        assert!(
            got.contains(
                "| kernel | kubelet 1.9 · cgroupfs · v1 | kubelet 1.29 · systemd · v2 |\n\
                 | --- | --- | --- |\n\
                 | 6.1 | ● 1 cgroups | ○ 2 cgroups |\n\
                 | 6.12 |  | × |\n"
            ),
            "{got}"
        );
        assert!(got.contains("✅ 2 passed · × 1 cancelled"), "{got}");
        assert!(!got.contains("Failures"), "{got}");
    }

    #[test]
    fn varying_parameters_become_columns_and_names() {
        use Outcome::*;
        let mut s = summary();
        let mut a = cell("memcg-fill", "6.1", "v1", Expect::Any, &[Reproduced], 1);
        a.params.insert("limit".into(), "10".into());
        let mut b = cell(
            "memcg-fill",
            "6.1",
            "v1",
            Expect::Reproduced,
            &[NotReproduced],
            2,
        );
        b.params.insert("limit".into(), "20".into());
        b.id.push_str("/limit=20");
        s.cells = vec![a, b];
        let got = markdown(&s);
        assert!(
            got.contains("| kernel | v1 · limit=10 | v1 · limit=20 |"),
            "{got}"
        );
        assert!(
            got.contains("`memcg-fill[kernel=6.1,cgroup=v1,limit=20]`"),
            "{got}"
        );
    }

    #[test]
    fn reasons_cannot_inject_html_or_break_tables() {
        let mut s = mixed();
        s.cells[1].expect = Expect::Reproduced;
        s.cells[1].attempts[0].reason = "<script>alert(1)</script> | x".into();
        s.cells[1].attempts[0]
            .metrics
            .get_mut("created")
            .unwrap()
            .unit = "a|b".into();
        let got = markdown(&s);
        assert!(!got.contains("<script>"), "{got}");
        assert!(
            got.contains("&lt;script&gt;alert(1)&lt;/script&gt; \\| x"),
            "{got}"
        );
        assert!(got.contains("○ 12 a\\|b ❌"), "{got}");
    }

    #[rstest]
    #[case(serde_json::json!(65533), "cgroups", "65533 cgroups")]
    #[case(serde_json::json!(1.5), "s", "1.5 s")]
    #[case(serde_json::json!(2.0), "", "2")]
    #[case(serde_json::json!(0.123456), "ms", "0.123 ms")]
    #[case(serde_json::json!(0.0000123), "s", "1.23e-5 s")]
    #[case(serde_json::json!("cgroup2"), "", "cgroup2")]
    #[case(serde_json::json!(true), "", "true")]
    fn formats_metrics(#[case] value: serde_json::Value, #[case] unit: &str, #[case] want: &str) {
        let m = Metric {
            value,
            unit: unit.into(),
        };
        assert_eq!(format_metric(&m), want);
    }
}
