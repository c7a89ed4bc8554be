//! `report.html`: one self-contained page (inline CSS and SVG; no scripts,
//! fonts or images from anywhere) rendered from a [`RunSummary`] only.
//!
//! It holds the run's metadata, the same tables as `summary.md` coloured
//! by status with each cell linking to its attempts' console logs and
//! folders (paths relative to the run folder, where `report.html` is
//! written), the failures with their crash excerpts, a stacked bar chart of
//! phase timings (one row per cell) and one line plot per scenario series
//! (one line per kernel). All text is HTML-escaped.

use super::describe::{
    attempt_fraction, key_metric, problem, representative, status_counts, KUBELET_NOTE,
};
use super::escape::{href, html as esc};
use super::format::{self, first_line};
use super::grid::{case_name, grids, Grid};
use super::symbols::{css_class, legend, marker, outcome_symbol, status_symbol, Glyphs};
use super::{CellRecord, RunSummary, Status};
use crate::model::{Attempt, Series};
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
    if s.cells.iter().any(|c| c.kubelet.is_some()) {
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
        c.expect.as_str()
    );
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
                        esc(&crash.kind),
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
                for w in &a.warnings {
                    let _ = write!(
                        o,
                        "<details><summary>warning: {}</summary><pre>{}</pre></details>",
                        esc(&w.title),
                        esc(&w.excerpt)
                    );
                }
            }
            o.push_str("</div>\n");
        }
    }
    if any {
        o.push_str("</section>\n");
    }
}

/// Tick positions covering `lo..=hi` with a 1-2-5 step, about `target`
/// of them.
fn ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let (lo, hi) = if hi > lo { (lo, hi) } else { (lo, lo + 1.0) };
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let start = (lo / step).floor() * step;
    let mut v = vec![];
    let mut i = 0;
    loop {
        let t = start + step * i as f64;
        // Snap away float noise (0.30000000000000004).
        let t = (t / step).round() * step;
        v.push(t);
        if t >= hi - step * 1e-9 || i > 1000 {
            break;
        }
        i += 1;
    }
    v
}

const PHASES: [(&str, &str); 4] = [
    ("image", "#9aa0a6"),
    ("boot", "#4285f4"),
    ("scenario", "#34a853"),
    ("teardown", "#fbbc04"),
];

fn phase_secs(c: &CellRecord) -> [f64; 4] {
    let mut v = [0.0; 4];
    for a in &c.attempts {
        let t = &a.timings;
        for (i, x) in [t.image, t.boot, t.scenario, t.teardown].iter().enumerate() {
            if x.is_finite() && *x > 0.0 {
                v[i] += x;
            }
        }
    }
    v
}

fn short_label(g: &Grid, c: &CellRecord) -> String {
    let mut parts = vec![g.scenario.to_string(), c.kernel.clone()];
    if let Some(k) = &c.kubelet {
        parts.push(format!("kubelet {k}"));
    }
    if let Some(d) = &c.driver {
        parts.push(d.clone());
    }
    parts.push(c.cgroup.clone());
    for p in &g.varying {
        if let Some(v) = c.params.get(p) {
            parts.push(format!("{p}={v}"));
        }
    }
    parts.join(" · ")
}

/// The stacked horizontal bar chart of phase timings, one row per cell.
fn timings(o: &mut String, grids: &[Grid]) {
    let rows: Vec<(String, [f64; 4], usize)> = grids
        .iter()
        .flat_map(|g| {
            g.iter()
                .map(move |c| (short_label(g, c), phase_secs(c), c.attempts.len()))
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    let max = rows
        .iter()
        .map(|(_, p, _)| p.iter().sum::<f64>())
        .fold(0.0, f64::max);
    let ticks = ticks(0.0, if max > 0.0 { max } else { 1.0 }, 8);
    let axis_max = *ticks.last().unwrap();
    let (w, label_w, right, top, row_h, bar_h) = (1100.0, 300.0, 70.0, 34.0, 22.0, 14.0);
    let plot_w = w - label_w - right;
    let h = top + row_h * rows.len() as f64 + 44.0;
    let x = |v: f64| label_w + v / axis_max * plot_w;
    let _ = write!(
        o,
        "<section class=\"timings\"><h2>Phase timings</h2>\n\
         <svg class=\"timings\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"Phase timings per cell\">\n"
    );
    // Legend.
    let mut lx = label_w;
    for (name, colour) in PHASES {
        let _ = write!(
            o,
            "<rect x=\"{lx}\" y=\"6\" width=\"12\" height=\"12\" fill=\"{colour}\"/>\
             <text x=\"{}\" y=\"16\">{name}</text>",
            lx + 16.0
        );
        lx += 90.0;
    }
    let _ = writeln!(
        o,
        "<text x=\"{lx}\" y=\"16\" class=\"muted\">(summed over attempts)</text>"
    );
    // Grid lines and tick labels.
    let bottom = top + row_h * rows.len() as f64;
    for t in &ticks {
        let tx = x(*t);
        let _ = writeln!(
            o,
            "<line class=\"grid\" x1=\"{tx:.1}\" y1=\"{top}\" x2=\"{tx:.1}\" y2=\"{bottom}\"/>\
             <text x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            bottom + 14.0,
            format::number(*t)
        );
    }
    let _ = writeln!(
        o,
        "<line class=\"axis\" x1=\"{label_w}\" y1=\"{bottom}\" x2=\"{:.1}\" y2=\"{bottom}\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">seconds</text>",
        label_w + plot_w,
        label_w + plot_w / 2.0,
        bottom + 32.0
    );
    for (i, (label, phases, attempts)) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        let by = y + (row_h - bar_h) / 2.0;
        let _ = write!(
            o,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            label_w - 8.0,
            y + row_h / 2.0 + 4.0,
            esc(label)
        );
        let mut acc = 0.0;
        for (k, (name, colour)) in PHASES.iter().enumerate() {
            let v = phases[k];
            if v <= 0.0 {
                continue;
            }
            let _ = write!(
                o,
                "<rect x=\"{:.2}\" y=\"{by:.1}\" width=\"{:.2}\" height=\"{bar_h}\" fill=\"{colour}\">\
                 <title>{}: {name} {} s</title></rect>",
                x(acc),
                (x(acc + v) - x(acc)).max(0.5),
                esc(label),
                format::number((v * 100.0).round() / 100.0)
            );
            acc += v;
        }
        let note = if *attempts > 1 {
            format!(" ({attempts} attempts)")
        } else {
            String::new()
        };
        let _ = writeln!(
            o,
            "<text x=\"{:.1}\" y=\"{:.1}\">{} s{note}</text>",
            x(acc) + 6.0,
            y + row_h / 2.0 + 4.0,
            format::number((acc * 10.0).round() / 10.0)
        );
    }
    o.push_str("</svg></section>\n");
}

const PALETTE: [&str; 10] = [
    "#1a73e8", "#d93025", "#188038", "#f29900", "#9334e6", "#129eaf", "#e52592", "#5f6368",
    "#b06000", "#3949ab",
];
const DASHES: [&str; 4] = ["", "6 4", "2 3", "10 3 2 3"];

struct Line<'a> {
    label: String,
    colour: &'static str,
    dash: &'static str,
    series: &'a Series,
}

fn units(lines: &[Line], f: impl Fn(&Series) -> &str) -> String {
    let mut v: Vec<&str> = vec![];
    for l in lines {
        let u = f(l.series);
        if !u.is_empty() && !v.contains(&u) {
            v.push(u);
        }
    }
    v.join(", ")
}

/// One line plot per series name of each scenario, one line per kernel
/// (colour) and column (dash pattern, when the scenario has several).
fn series(o: &mut String, grids: &[Grid]) {
    let mut figures = String::new();
    for g in grids {
        let mut names: Vec<&str> = vec![];
        for c in g.iter() {
            for a in &c.attempts {
                for n in a.series.keys() {
                    if !names.contains(&n.as_str()) {
                        names.push(n);
                    }
                }
            }
        }
        names.sort_unstable();
        for name in names {
            let mut lines = vec![];
            for (r, kernel) in g.kernels.iter().enumerate() {
                for (k, col) in g.columns.iter().enumerate() {
                    for c in &g.cells[r][k] {
                        let s = representative(c)
                            .and_then(|a| a.series.get(name))
                            .or_else(|| c.attempts.iter().rev().find_map(|a| a.series.get(name)));
                        let Some(s) = s else { continue };
                        let label = if g.columns.len() > 1 {
                            format!("{kernel} · {}", col.label())
                        } else {
                            kernel.to_string()
                        };
                        lines.push(Line {
                            label,
                            colour: PALETTE[r % PALETTE.len()],
                            dash: DASHES[k % DASHES.len()],
                            series: s,
                        });
                    }
                }
            }
            plot(&mut figures, g.scenario, name, &lines);
        }
    }
    if !figures.is_empty() {
        let _ = write!(
            o,
            "<section class=\"series\"><h2>Series</h2><div class=\"charts\">\n{figures}</div></section>\n"
        );
    }
}

fn plot(o: &mut String, scenario: &str, name: &str, lines: &[Line]) {
    let pts = || {
        lines
            .iter()
            .flat_map(|l| l.series.points.iter())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
    };
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in pts() {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y0 = y0.min(*y);
        y1 = y1.max(*y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    let y0 = y0.min(0.0);
    let xt = ticks(x0, x1, 6);
    let yt = ticks(y0, y1, 5);
    let (xlo, xhi) = (xt[0], *xt.last().unwrap());
    let (ylo, yhi) = (yt[0], *yt.last().unwrap());
    let (pw, ph, ml, mt, legend_w): (f64, f64, f64, f64, f64) = (520.0, 280.0, 64.0, 12.0, 190.0);
    let w = ml + pw + 16.0 + legend_w;
    let legend_h = 20.0 * lines.len() as f64 + 8.0;
    let h = (mt + ph + 52.0).max(mt + legend_h);
    let sx = |v: f64| ml + (v - xlo) / (xhi - xlo).max(f64::MIN_POSITIVE) * pw;
    let sy = |v: f64| mt + ph - (v - ylo) / (yhi - ylo).max(f64::MIN_POSITIVE) * ph;
    let xu = units(lines, |s| &s.x_unit);
    let yu = units(lines, |s| &s.y_unit);
    let _ = write!(
        o,
        "<figure><figcaption>{} · {}</figcaption>\n\
         <svg class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{}\">\n",
        esc(scenario),
        esc(name),
        esc(&format!("{scenario} {name}"))
    );
    for t in &xt {
        let x = sx(*t);
        let _ = write!(
            o,
            "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{mt}\" x2=\"{x:.1}\" y2=\"{:.1}\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            mt + ph,
            mt + ph + 15.0,
            format::number(*t)
        );
    }
    for t in &yt {
        let y = sy(*t);
        let _ = write!(
            o,
            "<line class=\"grid\" x1=\"{ml}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            ml + pw,
            ml - 6.0,
            y + 4.0,
            format::number(*t)
        );
    }
    let _ = writeln!(
        o,
        "\n<line class=\"axis\" x1=\"{ml}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>\
         <line class=\"axis\" x1=\"{ml}\" y1=\"{mt}\" x2=\"{ml}\" y2=\"{:.1}\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
         <text transform=\"translate(14 {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        mt + ph,
        ml + pw,
        mt + ph,
        mt + ph,
        ml + pw / 2.0,
        mt + ph + 36.0,
        esc(&xu),
        mt + ph / 2.0,
        esc(&yu)
    );
    for l in lines {
        let mut points: Vec<(f64, f64)> = l
            .series
            .points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let path = points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
            .collect::<Vec<_>>()
            .join(" ");
        let dash = if l.dash.is_empty() {
            String::new()
        } else {
            format!(" stroke-dasharray=\"{}\"", l.dash)
        };
        let _ = writeln!(
            o,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{dash} points=\"{path}\">\
             <title>{}</title></polyline>",
            l.colour,
            esc(&l.label)
        );
        if points.len() <= 40 {
            for (x, y) in &points {
                let _ = write!(
                    o,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{}\"><title>{}: {} {}, {} {}</title></circle>",
                    sx(*x),
                    sy(*y),
                    l.colour,
                    esc(&l.label),
                    format::number(*x),
                    esc(&l.series.x_unit),
                    format::number(*y),
                    esc(&l.series.y_unit)
                );
            }
            o.push('\n');
        }
    }
    let lx = ml + pw + 16.0;
    for (i, l) in lines.iter().enumerate() {
        let y = mt + 20.0 * i as f64 + 10.0;
        let dash = if l.dash.is_empty() {
            String::new()
        } else {
            format!(" stroke-dasharray=\"{}\"", l.dash)
        };
        let _ = writeln!(
            o,
            "<line x1=\"{lx}\" y1=\"{y}\" x2=\"{:.1}\" y2=\"{y}\" stroke=\"{}\" stroke-width=\"2.5\"{dash}/>\
             <text class=\"legend\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            lx + 24.0,
            l.colour,
            lx + 30.0,
            y + 4.0,
            esc(&l.label)
        );
    }
    o.push_str("</svg></figure>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Outcome, Series};
    use crate::report::fixtures::mixed;
    use rstest::rstest;

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

    #[rstest]
    #[case(0.0, 10.0, 5, vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0])]
    #[case(0.0, 7.3, 8, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])]
    #[case(0.0, 0.3, 3, vec![0.0, 0.1, 0.2, 0.3])]
    #[case(1000.0, 9000.0, 4, vec![0.0, 2000.0, 4000.0, 6000.0, 8000.0, 10000.0])]
    #[case(5.0, 5.0, 4, vec![5.0, 5.5, 6.0])]
    fn ticks_are_round(#[case] lo: f64, #[case] hi: f64, #[case] n: usize, #[case] want: Vec<f64>) {
        let got = ticks(lo, hi, n);
        assert_eq!(got.len(), want.len(), "{got:?}");
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-9, "{got:?}");
        }
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
