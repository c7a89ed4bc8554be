//! `report.html`: one self-contained page (inline CSS and SVG; no scripts,
//! fonts or images from anywhere) rendered from a [`RunSummary`] only.
//!
//! It holds the run's metadata, the same tables as `summary.md` coloured
//! by status with each cell linking to its attempts' console logs and
//! folders (paths relative to the run folder, where `report.html` is
//! written), the failures with their crash excerpts, a stacked bar chart of
//! phase timings (one row per cell) and one line plot per scenario series
//! (one line per kernel). All text is HTML-escaped.

use super::chart::{series, timings};
use super::describe::{
    attempt_fraction, capped_note, finding_line, finding_log, findings, key_metric, problem,
    rate_short, rate_text, representative, rule_text, status_counts, KUBELET_NOTE,
};
use super::escape::{href, html as esc};
use super::format::{self, first_line};
use super::grid::{case_name, grids, Grid};
use super::stale::stale_rules;
use super::symbols::{css_class, legend, marker, outcome_symbol, status_symbol, Glyphs};
use super::{CellRecord, RunSummary, Status};
use crate::model::Attempt;
use std::fmt::Write as _;

/// The page draws with text-font symbols, not colour emoji (see
/// [`Glyphs::Text`]).
const GLYPHS: Glyphs = Glyphs::Text;

/// What the cell colours mean, after the symbols' legend.
const COLOUR_LEGEND: &str = "colour: green passed, red failed, amber flaky, violet error, \
grey cancelled, blue recorded without expectation";

const CSS: &str = r#"
:root{--ok:#188038;--okbg:#e6f4ea;--bad:#c5221f;--badbg:#fce8e6;--flaky:#b06000;--flakybg:#fef7e0;
--err:#8430ce;--errbg:#f3e8fd;--can:#5f6368;--canbg:#f1f3f4;--rec:#1967d2;--recbg:#e8f0fe;
--line:#dadce0;--muted:#5f6368}
*{box-sizing:border-box}
body{margin:0;background:#f6f7f9;color:#202124;
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans",sans-serif}
main{max-width:1200px;margin:0 auto;padding:20px 24px 40px}
h1{font-size:22px;margin:0 0 8px}
h2{font-size:17px;margin:0 0 12px}
h3{font-size:15px;margin:18px 0 8px}
code,pre{font-family:ui-monospace,"SFMono-Regular","DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12.5px}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px 18px;margin:16px 0}
.pills{display:flex;flex-wrap:wrap;gap:8px;margin:6px 0}
.pill{border-radius:999px;padding:2px 12px;font-weight:600;border:1px solid transparent}
.pill.total{background:#fff;border-color:var(--line)}
.banner{background:var(--flakybg);border:1px solid var(--flaky);color:var(--flaky);border-radius:6px;padding:6px 12px;margin:8px 0;font-weight:600}
table{border-collapse:collapse}
table.kv td,table.kv th{padding:3px 12px 3px 0;vertical-align:top;text-align:left}
table.kv th{color:var(--muted);font-weight:500;white-space:nowrap}
table.kv code{word-break:break-all}
table.grid{margin:4px 0 8px;min-width:40%}
table.grid th,table.grid td{border:1px solid var(--line);padding:6px 10px;text-align:left;vertical-align:top}
table.grid thead th{background:#f1f3f4;font-weight:600}
table.grid tbody th{background:#fafafa;font-weight:600;white-space:nowrap}
td.cell{min-width:150px;border-left-width:4px}
td.empty{background:repeating-linear-gradient(45deg,#fff,#fff 6px,#f6f6f6 6px,#f6f6f6 12px)}
.st-passed{background:var(--okbg);border-left-color:var(--ok)!important}
.st-failed{background:var(--badbg);border-left-color:var(--bad)!important}
.st-flaky{background:var(--flakybg);border-left-color:var(--flaky)!important}
.st-error{background:var(--errbg);border-left-color:var(--err)!important}
.st-cancelled{background:var(--canbg);border-left-color:var(--can)!important}
.st-recorded{background:var(--recbg);border-left-color:var(--rec)!important}
.pill.p-passed{color:var(--ok);background:var(--okbg)}.pill.p-failed{color:var(--bad);background:var(--badbg)}
.pill.p-flaky{color:var(--flaky);background:var(--flakybg)}.pill.p-error{color:var(--err);background:var(--errbg)}
.pill.p-cancelled{color:var(--can);background:var(--canbg)}
.oc{font-weight:600}
.sym{display:inline-block;min-width:1.2em}
.km{font-variant-numeric:tabular-nums}
.frac,.muted{color:var(--muted)}
.links{font-size:12.5px;margin-top:2px}
.links a{margin-right:8px}
a{color:#1a57c8;text-decoration:none}a:hover{text-decoration:underline}
.legend{color:var(--muted);font-size:12.5px}
.problem{border-left:4px solid var(--line);padding:6px 10px;margin:8px 0;border-radius:4px}
.problem code{font-weight:600}
details{margin-top:4px}
summary{cursor:pointer;color:var(--muted)}
pre{background:#f8f9fa;border:1px solid var(--line);border-radius:4px;padding:8px;overflow:auto;max-height:320px;white-space:pre-wrap}
.charts{display:flex;flex-wrap:wrap;gap:16px}
figure{margin:0}
figcaption{font-weight:600;margin-bottom:4px}
svg{max-width:100%;height:auto}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;font-size:11px;fill:#3c4043}
svg .grid{stroke:#e8eaed}
svg .axis{stroke:#9aa0a6}
footer{color:var(--muted);font-size:12.5px;text-align:center;margin-top:16px}
"#;

/// Renders the run as one self-contained HTML page.
pub fn html(s: &RunSummary) -> String {
    let mut o = String::new();
    let title = format!("repro run {}", s.run_id);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        esc(&title)
    );
    header(&mut o, s);
    meta(&mut o, s);
    let grids = grids(s);
    results(&mut o, &grids);
    problems(&mut o, &grids);
    expectations(&mut o, s, &grids);
    warnings(&mut o, &grids);
    timings(&mut o, &grids);
    series(&mut o, &grids);
    let _ = write!(
        o,
        "<footer>Rendered by repro {} from <a href=\"summary.json\">summary.json</a> · \
         <a href=\"junit.xml\">junit.xml</a> · <a href=\"summary.md\">summary.md</a></footer>\n\
         </main>\n</body>\n</html>\n",
        esc(&s.meta.repro_version)
    );
    o
}

fn header(o: &mut String, s: &RunSummary) {
    let _ = writeln!(o, "<h1>repro run <code>{}</code></h1>", esc(&s.run_id));
    if s.cells.iter().any(|c| c.key.kubelet.is_some()) {
        let _ = writeln!(o, "<p class=\"muted\">{}</p>", esc(KUBELET_NOTE));
    }
    if !s.complete {
        let _ = writeln!(
            o,
            "<div class=\"banner\">Incomplete run: interrupted or still going on.</div>"
        );
    }
    let _ = write!(
        o,
        "<div class=\"pills\"><span class=\"pill total\">{} cells</span>",
        s.cells.len()
    );
    for (st, n) in status_counts(s) {
        if n > 0 {
            let _ = write!(
                o,
                "<span class=\"pill p-{0}\">{1} {n} {0}</span>",
                st.as_str(),
                status_symbol(st, GLYPHS)
            );
        }
    }
    o.push_str("</div>\n");
}

fn meta(o: &mut String, s: &RunSummary) {
    let m = &s.meta;
    let or_dash = |v: &str| {
        if v.is_empty() {
            "<span class=\"muted\">—</span>".to_string()
        } else {
            esc(v)
        }
    };
    let accel = if m.accel_reason.is_empty() {
        or_dash(&m.accel)
    } else {
        format!(
            "{} <span class=\"muted\">({})</span>",
            or_dash(&m.accel),
            esc(&m.accel_reason)
        )
    };
    let mut rows = vec![
        ("repro", or_dash(&m.repro_version)),
        ("QEMU", or_dash(&m.qemu_version)),
        ("Host kernel", or_dash(&m.host_kernel)),
        ("Accelerator", accel),
        ("Started", or_dash(&s.started_at)),
        (
            "Finished",
            or_dash(s.finished_at.as_deref().unwrap_or_default()),
        ),
        (
            "Command",
            if m.command.is_empty() {
                or_dash("")
            } else {
                format!("<code>{}</code>", esc(&m.command))
            },
        ),
    ];
    if !m.images.is_empty() {
        let list = m
            .images
            .iter()
            .map(|(k, v)| format!("{}: <code>{}</code>", esc(k), esc(v)))
            .collect::<Vec<_>>()
            .join("<br>");
        rows.push(("Guest images", list));
    }
    o.push_str("<section class=\"meta\"><h2>Run</h2><table class=\"kv\">\n");
    for (k, v) in rows {
        let _ = writeln!(o, "<tr><th>{k}</th><td>{v}</td></tr>");
    }
    o.push_str("</table></section>\n");
}

fn attempt_links(o: &mut String, a: &Attempt, numbered: bool) {
    let n = if numbered {
        format!(" #{}", a.number)
    } else {
        String::new()
    };
    o.push_str("<div class=\"links\">");
    if !a.artifacts.console.is_empty() {
        let _ = write!(
            o,
            "<a class=\"log\" href=\"{}\">log{n}</a>",
            href(&a.artifacts.console)
        );
    }
    if let Some(j) = a.artifacts.journal.as_deref().filter(|j| !j.is_empty()) {
        let _ = write!(o, "<a class=\"log\" href=\"{}\">journal{n}</a>", href(j));
    }
    if let Some(d) = a.artifacts.dmesg.as_deref().filter(|d| !d.is_empty()) {
        let _ = write!(o, "<a class=\"log\" href=\"{}\">dmesg{n}</a>", href(d));
    }
    if !a.artifacts.dir.is_empty() {
        let mut dir = a.artifacts.dir.clone();
        if !dir.ends_with('/') {
            dir.push('/');
        }
        let _ = write!(o, "<a class=\"dir\" href=\"{}\">files{n}</a>", href(&dir));
    }
    o.push_str("</div>");
}

fn cell_html(o: &mut String, c: &CellRecord, varying: &[String]) {
    let outcome = c.outcome();
    let mut tip = format!(
        "{}\nstatus {} · expect {}",
        case_name(c, varying),
        c.status().as_str(),
        c.expect
    );
    for line in [rate_text(c), rule_text(c)].into_iter().flatten() {
        tip.push('\n');
        tip.push_str(&line);
    }
    for a in &c.attempts {
        let _ = write!(
            tip,
            "\nattempt {}: {} ({} s): {}",
            a.number,
            a.outcome,
            format::number((a.timings.total * 10.0).round() / 10.0),
            first_line(&a.reason)
        );
    }
    let _ = write!(
        o,
        "<td class=\"cell {}\" title=\"{}\"><div class=\"oc\"><span class=\"sym\">{}</span>{}",
        css_class(c),
        esc(&tip),
        outcome_symbol(outcome, GLYPHS),
        esc(outcome.as_str())
    );
    let marker = marker(c, GLYPHS);
    if !marker.is_empty() {
        let _ = write!(o, " <span class=\"mk\">{marker}</span>");
    }
    if let Some(f) = attempt_fraction(c) {
        let _ = write!(o, " <span class=\"frac\">{f}</span>");
    }
    if let Some(r) = rate_short(c) {
        let _ = write!(o, " <span class=\"rate\">{}</span>", esc(&r));
    }
    o.push_str("</div>");
    if let Some(m) = key_metric(c) {
        let _ = write!(o, "<div class=\"km\">{}</div>", esc(&m));
    }
    let numbered = c.attempts.len() > 1;
    for a in &c.attempts {
        attempt_links(o, a, numbered);
    }
    o.push_str("</td>");
}

fn results(o: &mut String, grids: &[Grid]) {
    o.push_str("<section class=\"results\"><h2>Results</h2>\n");
    if grids.is_empty() {
        o.push_str("<p class=\"muted\">No cells.</p>\n");
    }
    for g in grids {
        let _ = write!(
            o,
            "<h3>{}</h3>\n<table class=\"grid\"><thead><tr><th>kernel</th>",
            esc(g.scenario)
        );
        for c in &g.columns {
            let _ = write!(o, "<th>{}</th>", esc(&c.label()));
        }
        o.push_str("</tr></thead>\n<tbody>\n");
        for (r, kernel) in g.kernels.iter().enumerate() {
            let _ = write!(o, "<tr><th>{}</th>", esc(kernel));
            for cells in &g.cells[r] {
                match cells.as_slice() {
                    [] => o.push_str("<td class=\"empty\"></td>"),
                    [c] => cell_html(o, c, &g.varying),
                    many => {
                        // Duplicates in the summary: show them stacked.
                        o.push_str("<td><table>");
                        for c in many {
                            o.push_str("<tr>");
                            cell_html(o, c, &g.varying);
                            o.push_str("</tr>");
                        }
                        o.push_str("</table></td>");
                    }
                }
            }
            o.push_str("</tr>\n");
        }
        o.push_str("</tbody></table>\n");
    }
    let _ = writeln!(
        o,
        "<p class=\"legend\">{} · {COLOUR_LEGEND}</p></section>",
        esc(&legend(GLYPHS))
    );
}

/// Unexpected passes and stale rules with their edits, then every cell
/// whose rule says why it expects what it does.
fn expectations(o: &mut String, s: &RunSummary, grids: &[Grid]) {
    let stale = stale_rules(s);
    if !stale.is_empty() {
        o.push_str("<section class=\"stale\"><h2>Unexpected passes and stale rules</h2><ul>\n");
        for r in &stale {
            let _ = writeln!(o, "<li>{}</li>", esc(&r.line()));
        }
        o.push_str("</ul></section>\n");
    }
    let mut rows = String::new();
    for g in grids {
        for c in g.iter() {
            if let (Some(text), Some(rule)) = (rule_text(c), &c.rule) {
                // Only web links become links: a `javascript:` URL in a
                // matrix file must not run in the report.
                let link = rule
                    .url
                    .as_deref()
                    .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
                    .map(|u| format!(" <a href=\"{}\">link</a>", esc(u)))
                    .unwrap_or_default();
                let _ = writeln!(
                    rows,
                    "<li><code>{}</code>: {}{link}</li>",
                    esc(&case_name(c, &g.varying)),
                    esc(&text)
                );
            }
        }
    }
    if !rows.is_empty() {
        let _ = write!(
            o,
            "<section class=\"expectations\"><h2>Expectations</h2><ul>\n{rows}</ul></section>\n"
        );
    }
}

fn problems(o: &mut String, grids: &[Grid]) {
    let mut any = false;
    for g in grids {
        for c in g.iter() {
            let st = c.status();
            if !matches!(st, Status::Failed | Status::Flaky | Status::Error) {
                continue;
            }
            if !any {
                o.push_str("<section class=\"problems\"><h2>Failures and errors</h2>\n");
                any = true;
            }
            let _ = write!(
                o,
                "<div class=\"problem {}\"><div><span class=\"sym\">{}</span><code>{}</code>: {}</div>",
                css_class(c),
                status_symbol(st, GLYPHS),
                esc(&case_name(c, &g.varying)),
                esc(&problem(c))
            );
            if let Some(a) = representative(c) {
                attempt_links(o, a, c.attempts.len() > 1);
                if let Some(crash) = &a.crash {
                    let _ = write!(
                        o,
                        "<details open><summary>{}: {}</summary><pre>{}</pre></details>",
                        esc(crash.kind.as_str()),
                        esc(&crash.title),
                        esc(&crash.excerpt)
                    );
                }
                if a.reason.trim().lines().count() > 1 {
                    let _ = write!(
                        o,
                        "<details><summary>full reason</summary><pre>{}</pre></details>",
                        esc(&a.reason)
                    );
                }
                if !a.warnings.is_empty() {
                    let _ = write!(
                        o,
                        "<div class=\"muted\">{} kernel-log warning(s): see \
                         <a href=\"#warnings\">Warnings</a></div>",
                        a.warnings.len()
                    );
                }
                if let Some(note) = capped_note(a) {
                    let _ = write!(o, "<p class=\"capped\">{}</p>", esc(&note));
                }
            }
            o.push_str("</div>\n");
        }
    }
    if any {
        o.push_str("</section>\n");
    }
}

/// Every cell's kernel-log findings, whatever its status: title, excerpt,
/// and a link to the log it was read from.
fn warnings(o: &mut String, grids: &[Grid]) {
    let mut any = false;
    for g in grids {
        for c in g.iter() {
            for (a, f) in findings(c) {
                if !any {
                    o.push_str("<section class=\"warnings\" id=\"warnings\"><h2>Warnings</h2>\n");
                    any = true;
                }
                let log = finding_log(a, f);
                let _ = writeln!(
                    o,
                    "<div class=\"problem\"><div><code>{}</code> attempt {}: {}</div>\
                     <details open><summary>excerpt from <a href=\"{}\">{}</a></summary>\
                     <pre>{}</pre></details></div>",
                    esc(&case_name(c, &g.varying)),
                    a.number,
                    esc(&finding_line(f)),
                    href(log),
                    esc(log.rsplit('/').next().unwrap_or(log)),
                    esc(&f.excerpt)
                );
            }
        }
    }
    if any {
        o.push_str("</section>\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Outcome, Series};
    use crate::report::fixtures::mixed;

    fn with_series() -> RunSummary {
        let mut s = mixed();
        for (i, c) in s.cells.iter_mut().enumerate() {
            for a in &mut c.attempts {
                a.series.insert(
                    "rmdir latency".into(),
                    Series {
                        x_unit: "dying memcgs".into(),
                        y_unit: "ms".into(),
                        points: (0..10)
                            .map(|k| (k as f64 * 1000.0, (k * (i + 1)) as f64 * 0.5))
                            .collect(),
                    },
                );
            }
        }
        s
    }

    #[test]
    fn is_one_self_contained_document() {
        let h = html(&with_series());
        assert!(h.starts_with("<!DOCTYPE html>"));
        assert!(h.trim_end().ends_with("</html>"));
        assert!(!h.contains("<script"), "no scripts");
        assert!(!h.contains("<link"), "no external stylesheets");
        assert!(!h.contains("<img"), "no images");
        assert!(!h
            .replace("http://www.w3.org/2000/svg", "")
            .contains("http://"));
        assert!(!h.contains("https://"));
        assert!(!h.contains("url("), "no external resources from CSS");
    }

    #[test]
    fn rates_rules_and_stale_rules_are_shown() {
        use crate::model::{Expect, Outcome::*, RuleSource};
        let mut s = mixed();
        let mut c = crate::report::fixtures::cell(
            "kmem-leak",
            "6.12",
            "v1",
            Expect::Reproduced,
            &[NotReproduced, NotReproduced],
            1,
        );
        c.rule = Some(RuleSource {
            at: "matrix.toml:7".into(),
            reason: Some("a <leak>".into()),
            url: Some("https://example.org/b?x=1&y=2".into()),
            ..Default::default()
        });
        s.cells.push(c);
        let h = html(&s);
        assert!(
            h.contains("<span class=\"rate\">67% [21–94%]</span>"),
            "{h}"
        );
        assert!(h.contains("reproduced 2/3 (67%, 95% CI 21–94%)"), "{h}");
        assert!(
            h.contains("<h2>Unexpected passes and stale rules</h2><ul>\n<li>unexpected pass: matrix.toml:7: a &lt;leak&gt;"),
            "{h}"
        );
        s.cells[6].rule.as_mut().unwrap().url = Some("javascript:alert(1)".into());
        assert!(!html(&s).contains("href=\"javascript"));
        s.cells[6].rule.as_mut().unwrap().url = Some("https://example.org/b?x=1&y=2".into());
        let h = html(&s);
        assert!(
            h.contains("<code>kmem-leak[kernel=6.12,cgroup=v1]</code>: expect reproduced: matrix.toml:7: a &lt;leak&gt; (https://example.org/b?x=1&amp;y=2) <a href=\"https://example.org/b?x=1&amp;y=2\">link</a></li>"),
            "{h}"
        );
    }

    #[test]
    fn every_cells_warnings_have_title_excerpt_and_log() {
        let h = html(&mixed());
        assert!(
            h.contains("<section class=\"warnings\" id=\"warnings\"><h2>Warnings</h2>"),
            "{h}"
        );
        assert!(
            h.contains(
                "<code>memcg-fill[kernel=6.1,cgroup=v1]</code> attempt 1: warning: WARNING: CPU: 0 \
                 PID: 151 at mm/memcontrol.c:7129 &lt;mem_cgroup&gt;+0x1/0x2</div>"
            ),
            "{h}"
        );
        assert!(
            h.contains("Modules linked in: fuse\nCall Trace:\n &lt;TASK&gt;</pre>"),
            "{h}"
        );
        assert!(h.contains(
            "excerpt from <a href=\"memcg-fill__kernel=6.1__cgroup=v1/attempt-1/dmesg.log\">dmesg.log</a>"
        ));
        assert!(h.contains(
            "<a class=\"log\" href=\"memcg-fill__kernel=6.1__cgroup=v1/attempt-1/dmesg.log\">dmesg</a>"
        ));
        let mut quiet = mixed();
        quiet.cells[0].attempts[0].warnings.clear();
        assert!(!html(&quiet).contains("id=\"warnings\""));
    }

    #[test]
    fn has_metadata_tables_and_links() {
        let h = html(&mixed());
        for want in [
            "<title>repro run 20261122-201500-3fa2</title>",
            "QEMU emulator version 7.2.15",
            "6.1.0-40-amd64",
            "tcg <span class=\"muted\">(/dev/kvm is missing)</span>",
            "<code>repro run memcg-fill --kernel 6.1,6.12</code>",
            &"cd".repeat(32),
            "<th>v1</th><th>v2</th>",
            "class=\"cell st-passed\"",
            "class=\"cell st-failed\"",
            "class=\"cell st-flaky\"",
            "class=\"cell st-error\"",
            "class=\"cell st-recorded\"",
            "<a class=\"log\" href=\"memcg-fill__kernel=6.1__cgroup=v1/attempt-1/console.log\">log</a>",
            "<a class=\"dir\" href=\"memcg-fill__kernel=6.1__cgroup=v1/attempt-1/\">files</a>",
            "href=\"memcg-fill__kernel=6.12__cgroup=v1/attempt-2/console.log\">log #2</a>",
            "65533 cgroups",
            "Kernel panic - not syncing: Out of memory\nCPU: 0 PID: 1",
            "error in boot: qemu exited with status 1",
            "<span class=\"pill p-failed\">✘ 1 failed</span>",
            "<p class=\"legend\">● reproduced · ○ not reproduced · – skipped · ☠\u{fe0e} crashed · \
             ◷ timeout · ⚙\u{fe0e} error · × cancelled · ✔\u{fe0e} as expected · ✘ not as expected · \
             ⚠\u{fe0e} flaky (attempts disagree) · n/m: attempts with that outcome · \
             colour: green passed, red failed, amber flaky, violet error, grey cancelled, \
             blue recorded without expectation</p>",
        ] {
            assert!(h.contains(want), "missing {want:?} in\n{h}");
        }
    }

    #[test]
    fn draws_timings_and_series() {
        let h = html(&with_series());
        assert_eq!(
            h.matches("<svg").count(),
            3,
            "timings + one plot per scenario"
        );
        assert!(h.contains("<svg class=\"timings\""));
        assert!(h.contains("memcg-fill · rmdir latency"));
        assert!(h.contains("pid-leak · rmdir latency"));
        // One row per cell in the timings chart, four phases each.
        assert_eq!(h.matches(": boot ").count(), 6, "{h}");
        assert!(h.contains(">seconds</text>"));
        assert!(h.contains(">dying memcgs</text>"));
        assert!(h.contains("rotate(-90)\" text-anchor=\"middle\">ms</text>"));
        // memcg-fill has two columns: lines are labelled kernel · column.
        assert!(h.contains(">6.12 · v2</text>"), "{h}");
        assert_eq!(h.matches("<polyline").count(), 6);
        assert!(h.contains("stroke-dasharray=\"6 4\""));
    }

    #[test]
    fn escapes_everything() {
        let mut s = mixed();
        s.cells[3].attempts[0].reason = "<script>alert('x')</script>".into();
        s.cells[3].attempts[0].crash.as_mut().unwrap().excerpt = "<b>oops</b> & co".into();
        s.meta.command = "repro run \"a\" <b>".into();
        s.cells[0].attempts[0].artifacts.console = "we:ird #dir/con sole?.log".into();
        let h = html(&s);
        assert!(!h.contains("<script>"), "{h}");
        assert!(
            h.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"),
            "{h}"
        );
        assert!(h.contains("&lt;b&gt;oops&lt;/b&gt; &amp; co"));
        assert!(h.contains("repro run &quot;a&quot; &lt;b&gt;"));
        assert!(
            h.contains("href=\"we%3Aird%20%23dir/con%20sole%3F.log\""),
            "{h}"
        );
    }

    #[test]
    fn empty_run_renders() {
        let mut s = mixed();
        s.cells.clear();
        s.complete = false;
        let h = html(&s);
        assert!(h.contains("No cells."));
        assert!(h.contains("Incomplete run"));
        assert!(!h.contains("<svg"));
    }

    #[test]
    fn cells_with_no_attempts_do_not_panic() {
        let mut s = mixed();
        s.cells[0].attempts.clear();
        s.cells[1].attempts[0].outcome = Outcome::Cancelled;
        let h = html(&s);
        assert!(h.contains("class=\"cell st-cancelled\""));
    }
}
