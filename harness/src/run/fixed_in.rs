//! `repro fixed-in`: probes kernels in the order `plan::bisect` asks for,
//! one run per probe, and states the verdict.

use super::{execute, plan_request, ExecOptions, RunError};
use crate::model::{CellRecord, EventSink, Outcome};
use crate::plan::bisect::{next_probe, verdict, Probe, Verdict};
use crate::plan::Request;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What `fixed-in` found.
#[derive(Debug, Clone)]
pub struct FixedInReport {
    pub scenario: String,
    pub kernels: Vec<String>,
    /// What each kernel's probe found (`None`: not probed).
    pub probes: Vec<Option<Probe>>,
    pub verdict: Verdict,
    /// The run was interrupted; the verdict covers the probes made.
    pub interrupted: bool,
}

/// What one probe's cell says about its kernel: reproduces when any
/// attempt reproduced, fixed when any ran to `not-reproduced`, else
/// unknown.
pub fn probe_of(cell: &CellRecord) -> Probe {
    let any = |o: Outcome| cell.attempts.iter().any(|a| a.outcome == o);
    if any(Outcome::Reproduced) {
        Probe::Reproduces
    } else if any(Outcome::NotReproduced) {
        Probe::Fixed
    } else {
        Probe::Unknown
    }
}

/// Probes `kernels` (oldest first) with the cells of `template` (whose
/// own kernels are ignored). `on_probe` hears each kernel's probe and its
/// cell's outcome as soon as it is known.
pub fn fixed_in(
    opts: &ExecOptions,
    template: &Request,
    kernels: &[String],
    sink: &dyn EventSink,
    cancel: Arc<AtomicBool>,
    on_probe: &dyn Fn(&str, Probe, Outcome),
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
    let mut probes: Vec<Option<Probe>> = vec![None; kernels.len()];
    let mut interrupted = false;
    while let Some(i) = next_probe(&probes) {
        let req = Request {
            kernels: vec![kernels[i].clone()],
            ..template.clone()
        };
        let done = execute(opts, plan_request(&opts.root, &req)?, sink, cancel.clone())?;
        if cancel.load(Ordering::SeqCst) {
            interrupted = true;
            break;
        }
        let Some(cell) = done.summary.cells.first() else {
            return Err(RunError::Empty);
        };
        let probe = probe_of(cell);
        on_probe(&kernels[i], probe, cell.outcome());
        probes[i] = Some(probe);
    }
    Ok(FixedInReport {
        scenario: template.scenarios.first().cloned().unwrap_or_default(),
        kernels: kernels.to_vec(),
        verdict: verdict(&probes),
        probes,
        interrupted,
    })
}

impl FixedInReport {
    /// The verdict in words.
    pub fn text(&self) -> String {
        let (s, k, v) = (&self.scenario, &self.kernels, &self.verdict);
        let mut out = String::new();
        if self.interrupted {
            out.push_str("interrupted: the verdict covers only the kernels probed\n");
        }
        if !v.reproduced_at_start {
            let _ = writeln!(
                out,
                "{s} does not reproduce on the oldest kernel probed ({}): nothing to bisect",
                k[0]
            );
        }
        match v.fixed_in {
            Some(i) => {
                let _ = writeln!(
                    out,
                    "{s}: fixed in {} (first kernel from which it no longer reproduces)",
                    k[i]
                );
            }
            None => {
                let _ = writeln!(out, "{s}: still reproduces on {}", k[k.len() - 1]);
            }
        }
        for i in &v.comes_back {
            let _ = writeln!(out, "{s}: reproduces again on {} (regression)", k[*i]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(probes: &[Option<Probe>]) -> FixedInReport {
        FixedInReport {
            scenario: "kmem-leak".into(),
            kernels: vec!["3.10".into(), "5.10".into(), "6.1".into()],
            probes: probes.to_vec(),
            verdict: verdict(probes),
            interrupted: false,
        }
    }

    #[test]
    fn the_verdict_names_the_first_fixed_kernel() {
        use Probe::*;
        let t = report(&[Some(Reproduces), Some(Fixed), Some(Fixed)]).text();
        assert_eq!(
            t,
            "kmem-leak: fixed in 5.10 (first kernel from which it no longer reproduces)\n"
        );
        let t = report(&[Some(Reproduces), Some(Fixed), Some(Reproduces)]).text();
        assert!(t.contains("reproduces again on 6.1 (regression)"), "{t}");
        let t = report(&[Some(Fixed), Some(Fixed), Some(Fixed)]).text();
        assert!(
            t.starts_with("kmem-leak does not reproduce on the oldest kernel probed (3.10)"),
            "{t}"
        );
    }

    #[test]
    fn probes_read_every_attempt() {
        let mut cell = crate::report::summary::tests::summary().cells.remove(0);
        let a = |o| crate::report::summary::tests::attempt(o);
        cell.attempts = vec![a(Outcome::Error), a(Outcome::NotReproduced)];
        assert_eq!(probe_of(&cell), Probe::Fixed);
        cell.attempts.push(a(Outcome::Reproduced));
        assert_eq!(probe_of(&cell), Probe::Reproduces);
        cell.attempts = vec![a(Outcome::Timeout)];
        assert_eq!(probe_of(&cell), Probe::Unknown);
    }
}
