//! `repro fixed-in`: probes kernels in the order `plan::bisect` asks for,
//! one run per probe, and states the verdict.

use super::{execute, plan_request, ExecOptions, RunError};
use crate::model::{CellRecord, EventSink, Outcome, Rate};
use crate::plan::bisect::{
    endpoint_problem, miss_chance, next_probe, verdict, DecisionRule, EndpointProblem, Probe,
    Verdict,
};
use crate::plan::Request;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// One kernel's probe: its attempts' reproduction rate, the decision, the
/// kernel package that ran, and the run folder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KernelProbe {
    pub kernel: String,
    pub package: Option<String>,
    pub version: Option<String>,
    pub rate: Rate,
    pub probe: Probe,
    pub run_dir: PathBuf,
}

/// What `fixed-in` found; `fixed-in.json` is this.
#[derive(Debug, Clone, Serialize)]
pub struct FixedInReport {
    pub scenario: String,
    pub kernels: Vec<String>,
    pub rule: DecisionRule,
    /// What each kernel's probe found (`None`: not probed).
    pub probes: Vec<Option<KernelProbe>>,
    /// Why the search did not start, if it did not.
    pub endpoints: Option<EndpointProblem>,
    pub verdict: Verdict,
    /// The boundary pair (last reproducing, first fixed) run again.
    pub confirmation: Vec<KernelProbe>,
    /// The reproduction rate on the kernels that reproduce, pooled.
    pub pooled_rate: Option<f64>,
    /// The chance that the first fixed kernel still has the bug and all
    /// its attempts missed it, at `pooled_rate`.
    pub miss_chance: Option<f64>,
    /// The run was interrupted; the verdict covers the probes made.
    pub interrupted: bool,
}

/// What one probe's cell says about its kernel under `rule`, over the
/// attempts that ran to a verdict (`reproduced` or `not-reproduced`): a
/// timeout or crash says neither that the bug is there nor that it is
/// fixed.
pub fn probe_of(cell: &CellRecord, rule: DecisionRule) -> Probe {
    rule.decide(verdict_rate(cell))
}

fn verdict_rate(cell: &CellRecord) -> Rate {
    Rate::of(
        cell.attempts
            .iter()
            .map(|a| a.outcome)
            .filter(|o| matches!(o, Outcome::Reproduced | Outcome::NotReproduced)),
        Outcome::Reproduced,
    )
}

fn probe_kernel(
    opts: &ExecOptions,
    template: &Request,
    kernel: &str,
    rule: DecisionRule,
    sink: &dyn EventSink,
    cancel: &Arc<AtomicBool>,
) -> Result<Option<KernelProbe>, RunError> {
    let req = Request {
        kernels: vec![kernel.to_string()],
        ..template.clone()
    };
    let done = execute(opts, plan_request(&opts.root, &req)?, sink, cancel.clone())?;
    if cancel.load(Ordering::SeqCst) {
        return Ok(None);
    }
    let Some(cell) = done.summary.cells.first() else {
        return Err(RunError::Empty);
    };
    let k = cell.attempts.iter().find(|a| !a.kernel.release.is_empty());
    Ok(Some(KernelProbe {
        kernel: kernel.to_string(),
        package: k.and_then(|a| a.kernel.package.clone()),
        version: k.and_then(|a| a.kernel.version.clone()),
        rate: verdict_rate(cell),
        probe: probe_of(cell, rule),
        run_dir: done.dir,
    }))
}

/// Probes `kernels` (oldest first) with the cells of `template` (whose
/// own kernels are ignored; its `repeat` attempts per kernel): both ends
/// first, then the search, then the boundary pair again. `on_probe` hears
/// each kernel's probe and rate as soon as they are known.
pub fn fixed_in(
    opts: &ExecOptions,
    template: &Request,
    kernels: &[String],
    sink: &dyn EventSink,
    cancel: Arc<AtomicBool>,
    on_probe: &dyn Fn(&str, Probe, Rate),
) -> Result<FixedInReport, RunError> {
    if kernels.len() < 2 {
        return Err(RunError::TooFewKernels(kernels.len()));
    }
    // Check every kernel before the first boot: a typo in the last one
    // should not cost the probes before it.
    let all = Request {
        kernels: kernels.to_vec(),
        ..template.clone()
    };
    plan_request(&opts.root, &all)?;
    let rule = DecisionRule::for_repeat(template.repeat);
    let mut probes: Vec<Option<KernelProbe>> = vec![None; kernels.len()];
    let mut interrupted = false;
    let decided = |p: &[Option<KernelProbe>]| -> Vec<Option<Probe>> {
        p.iter().map(|k| k.as_ref().map(|k| k.probe)).collect()
    };
    while let Some(i) = next_probe(&decided(&probes)) {
        let Some(p) = probe_kernel(opts, template, &kernels[i], rule, sink, &cancel)? else {
            interrupted = true;
            break;
        };
        on_probe(&kernels[i], p.probe, p.rate);
        probes[i] = Some(p);
    }
    let results = decided(&probes);
    let endpoints = endpoint_problem(&results);
    let v = verdict(&results);
    let mut confirmation = Vec::new();
    if let (None, Some(first_fixed), false) = (endpoints, v.fixed_in, interrupted) {
        let last_repro = results[..first_fixed]
            .iter()
            .rposition(|r| *r == Some(Probe::Reproduces));
        for i in last_repro.into_iter().chain([first_fixed]) {
            match probe_kernel(opts, template, &kernels[i], rule, sink, &cancel)? {
                Some(p) => {
                    on_probe(&kernels[i], p.probe, p.rate);
                    confirmation.push(p);
                }
                None => {
                    interrupted = true;
                    break;
                }
            }
        }
    }
    let (hits, trials) = probes
        .iter()
        .flatten()
        .chain(confirmation.iter())
        .filter(|p| p.probe == Probe::Reproduces)
        .fold((0, 0), |(h, t), p| (h + p.rate.hits, t + p.rate.trials));
    let pooled_rate = (trials > 0).then(|| f64::from(hits) / f64::from(trials));
    let fixed_trials: u32 = v
        .fixed_in
        .map(|i| {
            let k = &kernels[i];
            probes[i]
                .iter()
                .chain(confirmation.iter().filter(|p| &p.kernel == k))
                .map(|p| p.rate.trials)
                .sum()
        })
        .unwrap_or(0);
    let miss = match (pooled_rate, endpoints) {
        (Some(p), None) if fixed_trials > 0 => Some(miss_chance(p, fixed_trials)),
        _ => None,
    };
    Ok(FixedInReport {
        scenario: template.scenarios.first().cloned().unwrap_or_default(),
        kernels: kernels.to_vec(),
        rule,
        verdict: v,
        endpoints,
        probes,
        confirmation,
        pooled_rate,
        miss_chance: miss,
        interrupted,
    })
}

impl FixedInReport {
    /// Writes `dir/fixed-in.json`.
    pub fn write(&self, dir: &std::path::Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("fixed-in.json");
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::fsutil::atomic_write(&path, &json)?;
        Ok(path)
    }

    /// Whether the boundary pair, run again, gave the same probes.
    pub fn confirmed(&self) -> Option<bool> {
        if self.confirmation.is_empty() {
            return None;
        }
        Some(self.confirmation.iter().all(|c| {
            self.kernels
                .iter()
                .position(|k| *k == c.kernel)
                .and_then(|i| self.probes[i].as_ref())
                .is_some_and(|p| p.probe == c.probe)
        }))
    }

    /// The verdict in words.
    pub fn text(&self) -> String {
        let (s, k, v) = (&self.scenario, &self.kernels, &self.verdict);
        let mut out = String::new();
        if self.interrupted {
            out.push_str("interrupted: the verdict covers only the kernels probed\n");
        }
        let rate_of = |i: usize| {
            self.probes[i]
                .as_ref()
                .map(|p| p.rate.to_string())
                .unwrap_or_else(|| "not probed".into())
        };
        let _ = writeln!(
            out,
            "decision rule: a kernel reproduces when at least {} attempt(s) do, is fixed when none do",
            self.rule.min_hits
        );
        match self.endpoints {
            Some(EndpointProblem::OldestDoesNotReproduce(_)) => {
                let _ = writeln!(
                    out,
                    "{s} does not reproduce on the oldest kernel ({}: {}): nothing to search; \
                     start the range at a kernel that reproduces (or raise --repeat if it is flaky)",
                    k[0],
                    rate_of(0)
                );
                return out;
            }
            Some(EndpointProblem::NewestNotFixed(p)) => {
                let n = k.len() - 1;
                let what = if p == Probe::Reproduces {
                    format!(
                        "{s} still reproduces on {} ({}), the newest kernel",
                        k[n],
                        rate_of(n)
                    )
                } else {
                    format!(
                        "{s} is not fixed on the newest kernel ({}: {})",
                        k[n],
                        rate_of(n)
                    )
                };
                let _ = writeln!(
                    out,
                    "{what}: no fix in this range; end the range at a kernel that does not reproduce"
                );
                return out;
            }
            None => {}
        }
        match v.fixed_in {
            Some(i) => {
                let _ = writeln!(
                    out,
                    "{s}: fixed in {} (first kernel from which it no longer reproduces: {})",
                    k[i],
                    rate_of(i)
                );
            }
            None => {
                let _ = writeln!(out, "{s}: still reproduces on {}", k[k.len() - 1]);
            }
        }
        for i in &v.comes_back {
            let _ = writeln!(out, "{s}: reproduces again on {} (regression)", k[*i]);
        }
        match self.confirmed() {
            Some(true) => out.push_str("boundary pair re-run: confirmed\n"),
            Some(false) => out.push_str(
                "boundary pair re-run: NOT confirmed (a kernel changed its verdict): the boundary is flaky; raise --repeat\n",
            ),
            None => {}
        }
        if let (Some(p), Some(m)) = (self.pooled_rate, self.miss_chance) {
            let _ = writeln!(
                out,
                "confidence: at the rate seen where it reproduces ({:.0}%), the chance that the fixed kernel \
                 still has the bug and every attempt missed it is {:.2}%",
                p * 100.0,
                m * 100.0
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use Probe::*;

    fn kp(kernel: &str, hits: u32, trials: u32) -> KernelProbe {
        let rate = Rate { hits, trials };
        KernelProbe {
            kernel: kernel.into(),
            package: None,
            version: None,
            rate,
            probe: DecisionRule::for_repeat(3).decide(rate),
            run_dir: PathBuf::new(),
        }
    }

    fn report(probes: Vec<Option<KernelProbe>>, confirmation: Vec<KernelProbe>) -> FixedInReport {
        let results: Vec<Option<Probe>> =
            probes.iter().map(|p| p.as_ref().map(|p| p.probe)).collect();
        FixedInReport {
            scenario: "kmem-leak".into(),
            kernels: vec!["3.10".into(), "5.10".into(), "6.1".into()],
            rule: DecisionRule::for_repeat(3),
            endpoints: endpoint_problem(&results),
            verdict: verdict(&results),
            probes,
            confirmation,
            pooled_rate: Some(0.9),
            miss_chance: Some(miss_chance(0.9, 3)),
            interrupted: false,
        }
    }

    #[test]
    fn the_verdict_names_the_first_fixed_kernel_with_its_confidence() {
        let t = report(
            vec![
                Some(kp("3.10", 3, 3)),
                Some(kp("5.10", 0, 3)),
                Some(kp("6.1", 0, 3)),
            ],
            vec![kp("3.10", 3, 3), kp("5.10", 0, 3)],
        )
        .text();
        assert!(
            t.contains(
                "kmem-leak: fixed in 5.10 (first kernel from which it no longer reproduces: 0/3"
            ),
            "{t}"
        );
        assert!(t.contains("boundary pair re-run: confirmed"), "{t}");
        assert!(t.contains("every attempt missed it is 0.10%"), "{t}");
    }

    #[rstest]
    #[case::both_ends_reproduce(vec![Some(kp("3.10", 3, 3)), None, Some(kp("6.1", 2, 3))],
        "kmem-leak still reproduces on 6.1 (2/3 (67%, 95% CI 21–94%)), the newest kernel: no fix in this range")]
    #[case::newest_flaky(vec![Some(kp("3.10", 3, 3)), None, Some(kp("6.1", 1, 3))],
        "is not fixed on the newest kernel (6.1: 1/3")]
    #[case::oldest_fixed(vec![Some(kp("3.10", 0, 3)), None, Some(kp("6.1", 0, 3))],
        "does not reproduce on the oldest kernel (3.10: 0/3")]
    #[case::oldest_flaky(vec![Some(kp("3.10", 1, 3)), None, Some(kp("6.1", 0, 3))],
        "raise --repeat if it is flaky")]
    fn endpoint_checks_stop_with_a_clear_message(
        #[case] probes: Vec<Option<KernelProbe>>,
        #[case] want: &str,
    ) {
        let r = report(probes, vec![]);
        assert!(r.endpoints.is_some());
        let t = r.text();
        assert!(t.contains(want), "{t}");
        assert!(!t.contains("fixed in"), "{t}");
    }

    #[test]
    fn a_flaky_boundary_is_not_confirmed() {
        let r = report(
            vec![
                Some(kp("3.10", 3, 3)),
                Some(kp("5.10", 0, 3)),
                Some(kp("6.1", 0, 3)),
            ],
            vec![kp("3.10", 3, 3), kp("5.10", 2, 3)],
        );
        assert_eq!(r.confirmed(), Some(false));
        assert!(r.text().contains("NOT confirmed"), "{}", r.text());
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["probes"][1]["probe"], "fixed");
        assert_eq!(json["confirmation"][1]["rate"]["hits"], 2);
        assert_eq!(json["rule"]["min_hits"], 2);
    }

    #[test]
    fn probes_read_every_attempt() {
        let mut cell = crate::report::summary::tests::summary().cells.remove(0);
        let a = |o| crate::report::summary::tests::attempt(o);
        let rule = DecisionRule::for_repeat(3);
        cell.attempts = vec![a(Outcome::Error), a(Outcome::NotReproduced)];
        assert_eq!(probe_of(&cell, rule), Fixed);
        cell.attempts.push(a(Outcome::Reproduced));
        assert_eq!(probe_of(&cell, rule), Unknown, "1 of 2: flaky");
        cell.attempts.push(a(Outcome::Reproduced));
        assert_eq!(probe_of(&cell, rule), Reproduces);
        cell.attempts = vec![a(Outcome::Timeout), a(Outcome::Crashed)];
        assert_eq!(probe_of(&cell, rule), Unknown);
    }
}
