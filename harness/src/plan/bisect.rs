//! `repro fixed-in`: find the first kernel (in version order) from which a
//! scenario no longer reproduces, like syzbot's fix bisection over
//! releases. Pure: the caller runs the probes this asks for.

/// What a probe of one kernel found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Reproduces,
    Fixed,
    /// Could not judge (error, skipped, timeout...).
    Unknown,
}

/// Linear scans up to this many kernels (and so see regressions); longer
/// lists are bisected.
pub const LINEAR_MAX: usize = 4;

/// The next kernel index to probe, given what is known so far (`None`:
/// done). Linear for short lists; for long ones the first and last, then
/// binary search between the last reproducing and first fixed kernel.
pub fn next_probe(results: &[Option<Probe>]) -> Option<usize> {
    let n = results.len();
    if n <= LINEAR_MAX {
        return results.iter().position(Option::is_none);
    }
    if results[0].is_none() {
        return Some(0);
    }
    if results[n - 1].is_none() {
        return Some(n - 1);
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
        let (order, v) = search(&[Reproduces, Fixed, Reproduces]);
        assert_eq!(order, vec![0, 1, 2]);
        assert_eq!(v.fixed_in, None, "it came back at the end");
        assert_eq!(v.comes_back, vec![2]);
        let (_, v) = search(&[Reproduces, Reproduces, Fixed, Fixed]);
        assert_eq!(v.fixed_in, Some(2));
        assert!(v.comes_back.is_empty());
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
        let (_, v) = search(&[Fixed; 6]);
        assert_eq!(v.fixed_in, Some(0));
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
