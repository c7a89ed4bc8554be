//! `repro fixed-in`: find the first kernel (in version order) from which a
//! scenario no longer reproduces, like syzbot's fix bisection over
//! releases: both ends checked first, each kernel judged by a decision
//! rule over its attempts, and the chance of having missed a reproduction
//! stated. Pure: the caller runs the probes this asks for.

use crate::model::Rate;
use serde::Serialize;

/// What a probe of one kernel found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Probe {
    Reproduces,
    Fixed,
    /// Could not judge (error, skipped, timeout...).
    Unknown,
}

/// Linear scans up to this many kernels (and so see regressions); longer
/// lists are bisected.
pub const LINEAR_MAX: usize = 4;

/// How a kernel's attempts decide its probe: it reproduces when at least
/// `min_hits` trials reproduced, is fixed when none did, and is unknown
/// otherwise (too few trials, or fewer hits than the rule wants: flaky).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DecisionRule {
    pub min_hits: u32,
}

impl DecisionRule {
    /// At least 2 reproducing attempts when there are 2 or more, else 1.
    pub fn for_repeat(repeat: u32) -> DecisionRule {
        DecisionRule {
            min_hits: repeat.clamp(1, 2),
        }
    }

    pub fn decide(&self, r: Rate) -> Probe {
        if r.trials == 0 {
            Probe::Unknown
        } else if r.hits >= self.min_hits {
            Probe::Reproduces
        } else if r.hits == 0 {
            Probe::Fixed
        } else {
            Probe::Unknown
        }
    }
}

/// The chance that `trials` attempts all miss a bug that reproduces with
/// probability `p` per attempt: `(1 - p)^trials`.
pub fn miss_chance(p: f64, trials: u32) -> f64 {
    (1.0 - p.clamp(0.0, 1.0)).powi(i32::try_from(trials).unwrap_or(i32::MAX))
}

/// Why a search cannot start: the ends of the range do not bracket a fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndpointProblem {
    /// The oldest kernel does not reproduce (or could not be judged).
    OldestDoesNotReproduce(Probe),
    /// The newest kernel still reproduces (or could not be judged).
    NewestNotFixed(Probe),
}

/// The endpoint problem, once the oldest kernel is probed (it must
/// reproduce) and then the newest (it must be fixed).
pub fn endpoint_problem(results: &[Option<Probe>]) -> Option<EndpointProblem> {
    let first = results.first()?.as_ref()?;
    if *first != Probe::Reproduces {
        return Some(EndpointProblem::OldestDoesNotReproduce(*first));
    }
    let last = results.last()?.as_ref()?;
    if *last != Probe::Fixed {
        Some(EndpointProblem::NewestNotFixed(*last))
    } else {
        None
    }
}

/// The next kernel index to probe, given what is known so far (`None`:
/// done). Both ends first (stop when they do not bracket a fix); then
/// linear for short lists (to see regressions), binary search between the
/// last reproducing and first fixed kernel for long ones.
pub fn next_probe(results: &[Option<Probe>]) -> Option<usize> {
    let n = results.len();
    if n == 0 {
        return None;
    }
    if results[0].is_none() {
        return Some(0);
    }
    if endpoint_problem(results).is_some() {
        return None;
    }
    if results[n - 1].is_none() {
        return Some(n - 1);
    }
    if endpoint_problem(results).is_some() {
        return None;
    }
    if n <= LINEAR_MAX {
        return results.iter().position(Option::is_none);
    }
    // Bisect between the last known reproducing index and the first known
    // fixed index after it; unknown results are skipped over.
    let last_repro = results
        .iter()
        .rposition(|r| *r == Some(Probe::Reproduces))?;
    let first_fixed = (last_repro + 1..n).find(|&i| results[i] == Some(Probe::Fixed))?;
    let gap: Vec<usize> = (last_repro + 1..first_fixed)
        .filter(|&i| results[i].is_none())
        .collect();
    if gap.is_empty() {
        return None;
    }
    Some(gap[gap.len() / 2])
}

/// The verdict over all probes made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// First kernel index after which every probed kernel is fixed.
    pub fixed_in: Option<usize>,
    /// Indices that reproduce again after a fixed one (regressions).
    pub comes_back: Vec<usize>,
    /// Whether the oldest kernel reproduced at all.
    pub reproduced_at_start: bool,
}

pub fn verdict(results: &[Option<Probe>]) -> Verdict {
    let known: Vec<(usize, Probe)> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.filter(|p| *p != Probe::Unknown).map(|p| (i, p)))
        .collect();
    let reproduced_at_start = known.first().is_some_and(|(_, p)| *p == Probe::Reproduces);
    let last_repro = known.iter().rposition(|(_, p)| *p == Probe::Reproduces);
    let fixed_in = match last_repro {
        Some(j) => known.get(j + 1).map(|(i, _)| *i),
        None => known.first().map(|(i, _)| *i),
    };
    let mut comes_back = Vec::new();
    let mut seen_fixed = false;
    for (i, p) in &known {
        match p {
            Probe::Fixed => seen_fixed = true,
            Probe::Reproduces if seen_fixed => comes_back.push(*i),
            _ => {}
        }
    }
    Verdict {
        fixed_in,
        comes_back,
        reproduced_at_start,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use Probe::*;

    /// Runs the search against a known truth and returns the probes made.
    fn search(truth: &[Probe]) -> (Vec<usize>, Verdict) {
        let mut results = vec![None; truth.len()];
        let mut order = Vec::new();
        while let Some(i) = next_probe(&results) {
            assert!(results[i].is_none(), "probed {i} twice");
            results[i] = Some(truth[i]);
            order.push(i);
        }
        (order, verdict(&results))
    }

    #[test]
    fn short_lists_are_scanned_and_see_regressions() {
        let (order, v) = search(&[Reproduces, Fixed, Reproduces, Fixed]);
        assert_eq!(order, vec![0, 3, 1, 2]);
        assert_eq!(v.fixed_in, Some(3), "it came back before the end");
        assert_eq!(v.comes_back, vec![2]);
        let (_, v) = search(&[Reproduces, Reproduces, Fixed, Fixed]);
        assert_eq!(v.fixed_in, Some(2));
        assert!(v.comes_back.is_empty());
    }

    #[rstest]
    #[case::both_ends_reproduce(&[Reproduces, Fixed, Reproduces], vec![0, 2],
        Some(EndpointProblem::NewestNotFixed(Reproduces)))]
    #[case::oldest_fixed(&[Fixed, Reproduces, Fixed], vec![0],
        Some(EndpointProblem::OldestDoesNotReproduce(Fixed)))]
    #[case::oldest_unknown(&[Unknown; 8], vec![0],
        Some(EndpointProblem::OldestDoesNotReproduce(Unknown)))]
    #[case::newest_flaky(&[Reproduces, Reproduces, Unknown], vec![0, 2],
        Some(EndpointProblem::NewestNotFixed(Unknown)))]
    #[case::bracketed(&[Reproduces, Fixed, Fixed], vec![0, 2, 1], None)]
    fn both_ends_are_checked_first(
        #[case] truth: &[Probe],
        #[case] order: Vec<usize>,
        #[case] problem: Option<EndpointProblem>,
    ) {
        let mut results = vec![None; truth.len()];
        let mut seen = Vec::new();
        while let Some(i) = next_probe(&results) {
            results[i] = Some(truth[i]);
            seen.push(i);
        }
        assert_eq!(seen, order);
        assert_eq!(endpoint_problem(&results), problem);
    }

    #[rstest]
    #[case(3, 3, 3, Reproduces)]
    #[case(3, 2, 3, Reproduces)]
    #[case::flaky_boundary(3, 1, 3, Unknown)]
    #[case(3, 0, 3, Fixed)]
    #[case::errors_only(3, 0, 0, Unknown)]
    #[case::one_attempt(1, 1, 1, Reproduces)]
    #[case(1, 0, 1, Fixed)]
    #[case(10, 2, 10, Reproduces)]
    fn the_decision_rule(
        #[case] repeat: u32,
        #[case] hits: u32,
        #[case] trials: u32,
        #[case] want: Probe,
    ) {
        assert_eq!(
            DecisionRule::for_repeat(repeat).decide(Rate { hits, trials }),
            want
        );
    }

    #[rstest]
    #[case(0.5, 3, 0.125)]
    #[case(0.9, 3, 0.001)]
    #[case(1.0, 3, 0.0)]
    #[case(0.0, 3, 1.0)]
    #[case(0.2, 10, 0.107_374_182_4)]
    fn the_chance_of_missing_a_reproduction(#[case] p: f64, #[case] n: u32, #[case] want: f64) {
        assert!(
            (miss_chance(p, n) - want).abs() < 1e-9,
            "{}",
            miss_chance(p, n)
        );
    }

    #[test]
    fn long_lists_are_bisected() {
        let mut truth = vec![Reproduces; 11];
        truth.extend(vec![Fixed; 21]);
        let (order, v) = search(&truth);
        assert_eq!(v.fixed_in, Some(11));
        assert!(order.len() <= 2 + 6, "{order:?}");
    }

    #[test]
    fn never_reproducing_and_never_fixed() {
        let (order, v) = search(&[Fixed; 6]);
        assert_eq!(order, vec![0]);
        assert!(!v.reproduced_at_start);
        let (order, v) = search(&[Reproduces; 6]);
        assert_eq!(order, vec![0, 5]);
        assert_eq!(v.fixed_in, None);
    }

    #[test]
    fn unknown_results_are_stepped_over() {
        let truth = [Reproduces, Reproduces, Unknown, Fixed, Fixed, Fixed];
        let (_, v) = search(&truth);
        assert_eq!(v.fixed_in, Some(3));
    }
}
