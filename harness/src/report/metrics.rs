//! `repro compare`'s metric table, in lkp's style: for each cell in both
//! runs and each metric its scenario declares (`[metrics.NAME]`:
//! direction and noise floor), mean ± stddev of the attempts' samples on
//! each side, the change in percent, and a class: `perf-regression` when
//! the change exceeds the floor in the bad direction and the samples do
//! not overlap (at least 3 samples a side for any verdict). Pure.

use super::escape::{html as esc, markdown as md};
use super::{CellRecord, RunSummary};
use crate::scenario::{MetricDirection, MetricSpec};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Fewer samples than this on a side give no verdict.
pub const MIN_SAMPLES: usize = 3;

/// Samples of one metric on one side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n − 1); 0 for one sample.
    pub stddev: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    pub fn of(xs: &[f64]) -> Option<Stats> {
        if xs.is_empty() {
            return None;
        }
        let n = xs.len();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        Some(Stats {
            n,
            mean,
            stddev: var.sqrt(),
            min: xs.iter().copied().fold(f64::INFINITY, f64::min),
            max: xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }

    fn text(&self) -> String {
        format!("{} ± {} (n={})", num(self.mean), num(self.stddev), self.n)
    }
}

fn num(x: f64) -> String {
    if x.abs() >= 100.0 || x == x.trunc() {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

/// What a metric's change means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricClass {
    PerfRegression,
    Improvement,
    /// Within the noise floor, or the samples overlap.
    NoChange,
    /// Fewer than [`MIN_SAMPLES`] on a side.
    TooFewSamples,
}

impl MetricClass {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricClass::PerfRegression => "perf-regression",
            MetricClass::Improvement => "improvement",
            MetricClass::NoChange => "no change",
            MetricClass::TooFewSamples => "too few samples",
        }
    }
}

/// Classifies `new` against `old` under `spec`.
pub fn classify(old: &Stats, new: &Stats, spec: &MetricSpec) -> (Option<f64>, MetricClass) {
    let change = (old.mean != 0.0).then(|| (new.mean - old.mean) / old.mean.abs());
    if old.n < MIN_SAMPLES || new.n < MIN_SAMPLES {
        return (change, MetricClass::TooFewSamples);
    }
    let Some(c) = change else {
        return (None, MetricClass::NoChange);
    };
    // Higher is worse: worse means up; `up` and `apart` are in that sense.
    let (worse, better_apart, worse_apart) = match spec.direction {
        MetricDirection::HigherIsWorse => (c, new.max < old.min, new.min > old.max),
        MetricDirection::LowerIsWorse => (-c, new.min > old.max, new.max < old.min),
    };
    let class = if worse > spec.noise && worse_apart {
        MetricClass::PerfRegression
    } else if -worse > spec.noise && better_apart {
        MetricClass::Improvement
    } else {
        MetricClass::NoChange
    };
    (change, class)
}

/// One metric of one cell in both runs.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    pub cell: String,
    pub metric: String,
    pub spec: MetricSpec,
    pub old: Stats,
    pub new: Stats,
    pub change: Option<f64>,
    pub class: MetricClass,
}

/// Every declared metric of the cells in both runs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricComparison {
    pub rows: Vec<MetricRow>,
}

fn samples(c: &CellRecord, metric: &str) -> Vec<f64> {
    c.attempts
        .iter()
        .filter_map(|a| a.metrics.get(metric)?.value.as_f64())
        .collect()
}

/// Compares the metrics `specs` declares (scenario name → metric name →
/// spec) of the cells both runs have.
pub fn compare_metrics(
    old: &RunSummary,
    new: &RunSummary,
    specs: &BTreeMap<String, BTreeMap<String, MetricSpec>>,
) -> MetricComparison {
    let mut rows = Vec::new();
    for n in &new.cells {
        let id = n.id();
        let Some(o) = old.cells.iter().find(|o| o.id() == id) else {
            continue;
        };
        let Some(declared) = specs.get(&n.key.scenario) else {
            continue;
        };
        for (metric, spec) in declared {
            let (Some(os), Some(ns)) = (
                Stats::of(&samples(o, metric)),
                Stats::of(&samples(n, metric)),
            ) else {
                continue;
            };
            let (change, class) = classify(&os, &ns, spec);
            rows.push(MetricRow {
                cell: id.clone(),
                metric: metric.clone(),
                spec: *spec,
                old: os,
                new: ns,
                change,
                class,
            });
        }
    }
    MetricComparison { rows }
}

impl MetricRow {
    fn cells(&self) -> [String; 6] {
        [
            self.cell.clone(),
            self.metric.clone(),
            self.old.text(),
            self.new.text(),
            self.change
                .map(|c| format!("{:+.1}%", c * 100.0))
                .unwrap_or_else(|| "-".into()),
            self.class.as_str().to_string(),
        ]
    }
}

const HEADER: [&str; 6] = ["cell", "metric", "old", "new", "%change", "class"];

impl MetricComparison {
    pub fn has_regressions(&self) -> bool {
        self.rows
            .iter()
            .any(|r| r.class == MetricClass::PerfRegression)
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        if self.rows.is_empty() {
            return out;
        }
        out.push_str("metrics:\n");
        for r in &self.rows {
            let c = r.cells();
            let _ = writeln!(
                out,
                "  {} {}: {} -> {} ({}): {}",
                c[0], c[1], c[2], c[3], c[4], c[5]
            );
        }
        out
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        if self.rows.is_empty() {
            return out;
        }
        let _ = writeln!(
            out,
            "### Metrics\n\n| {} |\n|{}",
            HEADER.join(" | "),
            " --- |".repeat(6)
        );
        for r in &self.rows {
            let c: Vec<String> = r.cells().iter().map(|s| md(s)).collect();
            let _ = writeln!(out, "| {} |", c.join(" | "));
        }
        out.push('\n');
        out
    }

    /// The table as an HTML fragment (`<table class="metrics">`).
    pub fn html(&self) -> String {
        let mut out = String::from("<table class=\"metrics\"><thead><tr>");
        for h in HEADER {
            let _ = write!(out, "<th>{h}</th>");
        }
        out.push_str("</tr></thead><tbody>\n");
        for r in &self.rows {
            let class = r.class.as_str().replace(' ', "-");
            let _ = write!(out, "<tr class=\"{class}\">");
            for c in r.cells() {
                let _ = write!(out, "<td>{}</td>", esc(&c));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody></table>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use MetricClass::*;
    use MetricDirection::*;

    fn spec(direction: MetricDirection) -> MetricSpec {
        MetricSpec {
            direction,
            noise: 0.05,
        }
    }

    #[test]
    fn stats_are_mean_and_sample_stddev() {
        let s = Stats::of(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(s.mean, 5.0);
        assert!((s.stddev - 2.138_089_935).abs() < 1e-6);
        assert_eq!((s.min, s.max, s.n), (2.0, 9.0, 8));
        assert_eq!(Stats::of(&[]), None);
        assert_eq!(s.text(), "5 ± 2.14 (n=8)");
    }

    #[rstest]
    #[case::slower(HigherIsWorse, &[10.0, 11.0, 10.5], &[13.0, 12.5, 13.5], PerfRegression)]
    #[case::faster(HigherIsWorse, &[13.0, 12.5, 13.5], &[10.0, 11.0, 10.5], Improvement)]
    #[case::overlap(HigherIsWorse, &[10.0, 11.0, 14.0], &[13.0, 12.5, 13.5], NoChange)]
    #[case::within_noise(HigherIsWorse, &[100.0, 100.0, 100.0], &[104.0, 104.0, 104.0], NoChange)]
    #[case::too_few(HigherIsWorse, &[10.0, 11.0], &[20.0, 21.0, 22.0], TooFewSamples)]
    #[case::fewer_created(LowerIsWorse, &[300.0, 300.0, 300.0], &[200.0, 210.0, 190.0], PerfRegression)]
    #[case::more_created(LowerIsWorse, &[200.0, 210.0, 190.0], &[300.0, 300.0, 300.0], Improvement)]
    fn metric_classes(
        #[case] d: MetricDirection,
        #[case] old: &[f64],
        #[case] new: &[f64],
        #[case] want: MetricClass,
    ) {
        let (o, n) = (Stats::of(old).unwrap(), Stats::of(new).unwrap());
        assert_eq!(classify(&o, &n, &spec(d)).1, want);
    }

    #[test]
    fn runs_compare_declared_metrics_of_common_cells() {
        use crate::model::Outcome::*;
        use crate::report::fixtures::cell;
        use crate::report::Expect;
        let run = |scale: i64| {
            let mut s = crate::report::summary::tests::summary();
            let mut c = cell("memcg-fill", "6.1", "v1", Expect::Any, &[Reproduced; 3], 0);
            for (i, a) in c.attempts.iter_mut().enumerate() {
                a.metrics.get_mut("created").unwrap().value = serde_json::json!(scale + i as i64);
            }
            s.cells = vec![c];
            s
        };
        let specs: BTreeMap<String, BTreeMap<String, MetricSpec>> = [(
            "memcg-fill".to_string(),
            [("created".to_string(), spec(LowerIsWorse))].into(),
        )]
        .into();
        let m = compare_metrics(&run(1000), &run(500), &specs);
        assert_eq!(m.rows.len(), 1);
        assert_eq!(m.rows[0].class, PerfRegression);
        assert!(m.has_regressions());
        assert!(
            m.markdown().contains(
                "| memcg-fill/kernel=6.1/cgroup=v1 | created | 1001 ± 1 (n=3) | 501 ± 1 (n=3) | -50.0% | perf-regression |"
            ),
            "{}",
            m.markdown()
        );
        assert!(m.html().contains("<tr class=\"perf-regression\">"));
        assert!(compare_metrics(&run(1000), &run(500), &BTreeMap::new())
            .rows
            .is_empty());
    }
}
