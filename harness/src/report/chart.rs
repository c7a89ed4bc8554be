//! The SVG charts of `report.html`, inline and script-free: a stacked bar
//! chart of phase timings (one row per cell) and one line plot per
//! scenario series (one line per kernel and column).

use super::describe::representative;
use super::escape::html as esc;
use super::format;
use super::grid::Grid;
use super::CellRecord;
use crate::model::Series;
use std::fmt::Write as _;

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

/// The stacked horizontal bar chart of phase timings, one row per cell.
pub(crate) fn timings(o: &mut String, grids: &[Grid]) {
    let rows: Vec<(String, [f64; 4], usize)> = grids
        .iter()
        .flat_map(|g| {
            g.iter()
                .map(move |c| (g.label(c), phase_secs(c), c.attempts.len()))
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
    let axis_max = ticks.last().copied().unwrap_or(1.0);
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
pub(crate) fn series(o: &mut String, grids: &[Grid]) {
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
    let (xlo, xhi) = (xt[0], xt.last().copied().unwrap_or(x1));
    let (ylo, yhi) = (yt[0], yt.last().copied().unwrap_or(y1));
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
    use rstest::rstest;

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
}
