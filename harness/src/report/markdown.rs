//! `summary.md`: the run as Markdown, short enough for a CI job summary or
//! a pull-request comment. Rendered from a [`RunSummary`] only.

use super::describe::{
    attempt_fraction, capped_note, finding_line, finding_log, findings, key_metric, problem,
    rate_short, rule_text, status_counts, KUBELET_NOTE,
};
use super::escape::{html, markdown as md, markdown_code};
use super::grid::{case_name, grids};
use super::stale::stale_rules;
use super::symbols::{legend, marker, outcome_symbol, status_symbol, Glyphs};
use super::{CellRecord, RunSummary, Status};
use std::fmt::Write as _;

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
    if let Some(r) = rate_short(c) {
        parts.push(format!("· {}", md(&r)));
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
    if s.cells.iter().any(|c| c.key.kubelet.is_some()) {
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
    list_section(&mut out, "Failures and errors", &problems);
    let stale: Vec<String> = stale_rules(s)
        .iter()
        .map(|r| format!("- {}", md(&r.line())))
        .collect();
    list_section(&mut out, "Unexpected passes and stale rules", &stale);
    let mut rules = vec![];
    for g in grids(s) {
        for c in g.iter() {
            if let Some(r) = rule_text(c) {
                rules.push(format!(
                    "- `{}`: {}",
                    markdown_code(&case_name(c, &g.varying)),
                    md(&r)
                ));
            }
        }
    }
    list_section(&mut out, "Expectations", &rules);
    warnings(&mut out, s);
    let mut capped = vec![];
    for g in grids(s) {
        for c in g.iter() {
            for a in &c.attempts {
                if let Some(note) = capped_note(a) {
                    capped.push(format!(
                        "- `{}` attempt {}: {}",
                        markdown_code(&case_name(c, &g.varying)),
                        a.number,
                        md(&note)
                    ));
                }
            }
        }
    }
    list_section(&mut out, "Capped output", &capped);
    let _ = writeln!(out, "<sub>{}</sub>", legend(Glyphs::Emoji));
    out
}

/// `### title` and its list items, when there are any.
fn list_section(out: &mut String, title: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(out, "### {title}\n");
    for i in items {
        let _ = writeln!(out, "{i}");
    }
    out.push('\n');
}

/// At most this many warnings get their excerpt (a CI job summary is
/// limited in size); the rest are counted, and every one is in
/// `report.html` and `summary.json`.
const MAX_WARNINGS: usize = 50;

/// Every cell's kernel-log warnings: title in a `<details>` summary, the
/// excerpt inside, and the log it was read from.
fn warnings(out: &mut String, s: &RunSummary) {
    let grids = grids(s);
    let mut all = vec![];
    for g in &grids {
        for c in g.iter() {
            let name = case_name(c, &g.varying);
            all.extend(findings(c).into_iter().map(|(a, f)| (name.clone(), a, f)));
        }
    }
    if all.is_empty() {
        return;
    }
    let _ = writeln!(out, "### Warnings\n");
    for (name, a, f) in all.iter().take(MAX_WARNINGS) {
        let _ = writeln!(
            out,
            "<details><summary><code>{}</code> attempt {}: {}</summary>\n\n<pre>{}</pre>\n\n\
             from <code>{}</code>\n</details>\n",
            html(name),
            a.number,
            html(&finding_line(f)),
            html(&f.excerpt),
            html(finding_log(a, f)),
        );
    }
    if all.len() > MAX_WARNINGS {
        let _ = writeln!(
            out,
            "{} more warnings: see `report.html` or `summary.json`.\n",
            all.len() - MAX_WARNINGS
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use crate::report::fixtures::{cell, mixed};
    use crate::report::summary::tests::summary;
    use crate::report::Expect;

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
| 6.12 | ● 65533 cgroups ⚠️ 2/3 · 67% [21–94%] | 💥 7 cgroups ❌ |

### pid-leak

| kernel | v2 |
| --- | --- |
| 6.1 | – |
| 6.12 | 🛠 |

### Failures and errors

- ⚠️ `memcg-fill[kernel=6.12,cgroup=v1]`: flaky, expected reproduced: reproduced ×2, not-reproduced ×1: not-reproduced because of attempt 2
- ❌ `memcg-fill[kernel=6.12,cgroup=v2]`: expected not-reproduced, got crashed: crashed because of attempt 1
- 🛠 `pid-leak[kernel=6.12,cgroup=v2]`: error in boot: qemu exited with status 1

### Warnings

<details><summary><code>memcg-fill[kernel=6.1,cgroup=v1]</code> attempt 1: warning: WARNING: CPU: 0 PID: 151 at mm/memcontrol.c:7129 &lt;mem_cgroup&gt;+0x1/0x2</summary>

<pre>------------[ cut here ]------------
WARNING: CPU: 0 PID: 151 at mm/memcontrol.c:7129 &lt;mem_cgroup&gt;+0x1/0x2
Modules linked in: fuse
Call Trace:
 &lt;TASK&gt;</pre>

from <code>memcg-fill__kernel=6.1__cgroup=v1/attempt-1/dmesg.log</code>
</details>

<sub>● reproduced · ○ not reproduced · – skipped · 💥 crashed · ⏱ timeout · 🛠 error · × cancelled · ✅ as expected · ❌ not as expected · ⚠️ flaky (attempts disagree) · n/m: attempts with that outcome</sub>
";
        let got = markdown(&mixed());
        assert_eq!(got, want, "\n--- got ---\n{got}");
    }

    #[test]
    fn capped_output_is_listed_with_the_caps() {
        let mut s = summary();
        let mut c = cell(
            "flood",
            "6.1",
            "v1",
            Expect::Any,
            &[Outcome::NotReproduced],
            1,
        );
        c.attempts[0].dropped = [(Captured::Stdout, 255 << 20)].into();
        c.attempts[0].limits = Some(Limits {
            timeout_s: 60,
            stall_s: None,
            log_cap_bytes: 1 << 20,
            out_cap_bytes: 64 << 20,
        });
        s.cells = vec![c];
        let got = markdown(&s);
        assert!(
            got.contains(
                "### Capped output\n\n- `flood[kernel=6.1,cgroup=v1]` attempt 1: output capped: \
                 stdout.log lost 255.0 MiB (caps: 1.0 MiB per log, 64.0 MiB of artefacts)\n"
            ),
            "{got}"
        );
        assert!(!markdown(&mixed()).contains("Capped"));
    }

    #[test]
    fn rates_rules_and_stale_rules_are_shown() {
        use Outcome::*;
        let mut s = summary();
        let mut a = cell(
            "kmem-leak",
            "6.1",
            "v1",
            Expect::Reproduced,
            &[Reproduced, Reproduced, NotReproduced],
            1,
        );
        a.rule = Some(crate::model::RuleSource {
            at: "matrix.toml:7".into(),
            reason: Some("kmem accounting leaks".into()),
            ..Default::default()
        });
        let mut b = cell(
            "kmem-leak",
            "6.12",
            "v1",
            Expect::Reproduced,
            &[NotReproduced],
            1,
        );
        b.rule = a.rule.clone();
        s.cells = vec![a, b];
        let got = markdown(&s);
        assert!(got.contains("2/3 · 67% [21–94%]"), "{got}");
        assert!(
            got.contains(
                "### Unexpected passes and stale rules\n\n- unexpected pass: matrix.toml:7: kmem accounting leaks \
                 on kmem-leak/kernel=6.12/cgroup=v1: if the fix is in kernel 6.12, add `until = \"&gt;=6.12\"`"
            ),
            "{got}"
        );
        assert!(
            got.contains("### Expectations\n\n- `kmem-leak[kernel=6.1,cgroup=v1]`: expect reproduced: matrix.toml:7: kmem accounting leaks\n"),
            "{got}"
        );
    }

    #[test]
    fn columns_combine_kubelet_driver_and_cgroup() {
        use Outcome::*;
        let mut s = summary();
        let mut a = cell("kubelet-oom", "6.1", "v1", Expect::Any, &[Reproduced], 1);
        a.key.kubelet = Some("1.9".into());
        a.key.driver = Some(Driver::Cgroupfs);
        let mut b = cell("kubelet-oom", "6.1", "v2", Expect::Any, &[NotReproduced], 2);
        b.key.kubelet = Some("1.29".into());
        b.key.driver = Some(Driver::Systemd);
        let mut c = cell("kubelet-oom", "6.12", "v2", Expect::Any, &[Cancelled], 3);
        c.key.kubelet = Some("1.29".into());
        c.key.driver = Some(Driver::Systemd);
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
        b.key.label.push_str("-limit20");
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
}
