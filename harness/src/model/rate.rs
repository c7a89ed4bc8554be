//! Rates: how often a cell's attempts ended with one outcome, with a 95%
//! Wilson score interval, and rate expectations (`reproduced >= 0.8`).
//! Pure.

use super::attempt::Outcome;
use serde::{Deserialize, Serialize};

/// The normal quantile of a two-sided 95% interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// `hits` of `trials` attempts ended with the outcome counted. Trials are
/// the attempts that judged the scenario: not infrastructure errors, not
/// interruptions, not skips (a skip says the guest could not try).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    pub hits: u32,
    pub trials: u32,
}

/// Whether an attempt with outcome `o` is a trial.
pub fn is_trial(o: Outcome) -> bool {
    !matches!(o, Outcome::Error | Outcome::Cancelled | Outcome::Skipped)
}

impl Rate {
    /// How many of `outcomes`' trials were `which`.
    pub fn of(outcomes: impl IntoIterator<Item = Outcome>, which: Outcome) -> Rate {
        let mut r = Rate { hits: 0, trials: 0 };
        for o in outcomes.into_iter().filter(|o| is_trial(*o)) {
            r.trials += 1;
            r.hits += u32::from(o == which);
        }
        r
    }

    /// The observed fraction; `None` without trials.
    pub fn point(&self) -> Option<f64> {
        (self.trials > 0).then(|| f64::from(self.hits) / f64::from(self.trials))
    }

    /// The Wilson score interval for quantile `z` (lower, upper), clamped
    /// to [0, 1]; `None` without trials.
    pub fn wilson(&self, z: f64) -> Option<(f64, f64)> {
        let p = self.point()?;
        let n = f64::from(self.trials);
        let z2 = z * z;
        let denom = 1.0 + z2 / n;
        let centre = (p + z2 / (2.0 * n)) / denom;
        let half = z / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
        Some(((centre - half).max(0.0), (centre + half).min(1.0)))
    }

    /// The 95% Wilson interval.
    pub fn wilson95(&self) -> Option<(f64, f64)> {
        self.wilson(Z95)
    }
}

impl Rate {
    /// `67% [21–94%]`: the fraction and its 95% interval in percent;
    /// `None` without trials.
    pub fn percent(&self) -> Option<String> {
        let (p, (lo, hi)) = (self.point()?, self.wilson95()?);
        let pct = |x: f64| format!("{:.0}", x * 100.0);
        Some(format!("{}% [{}–{}%]", pct(p), pct(lo), pct(hi)))
    }
}

/// `2/3 (67%, 95% CI 21–94%)`; `0/0` without trials.
impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.hits, self.trials)?;
        if let (Some(p), Some((lo, hi))) = (self.point(), self.wilson95()) {
            let pct = |x: f64| format!("{:.0}", x * 100.0);
            write!(f, " ({}%, 95% CI {}–{}%)", pct(p), pct(lo), pct(hi))?;
        }
        Ok(())
    }
}

/// A rate with its interval, as `summary.json` shows it beside a cell
/// (derived from the attempts when written, ignored when read).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateSummary {
    pub outcome: Outcome,
    pub hits: u32,
    pub trials: u32,
    pub rate: f64,
    pub ci95_low: f64,
    pub ci95_high: f64,
}

impl RateSummary {
    pub fn new(outcome: Outcome, r: Rate) -> Option<RateSummary> {
        let (lo, hi) = r.wilson95()?;
        Some(RateSummary {
            outcome,
            hits: r.hits,
            trials: r.trials,
            rate: r.point()?,
            ci95_low: lo,
            ci95_high: hi,
        })
    }
}

/// A comparison in a rate expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RateCmp {
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "<")]
    Lt,
}

impl RateCmp {
    pub fn as_str(self) -> &'static str {
        match self {
            RateCmp::Ge => ">=",
            RateCmp::Gt => ">",
            RateCmp::Le => "<=",
            RateCmp::Lt => "<",
        }
    }

    fn holds(self, x: f64, t: f64) -> bool {
        match self {
            RateCmp::Ge => x >= t,
            RateCmp::Gt => x > t,
            RateCmp::Le => x <= t,
            RateCmp::Lt => x < t,
        }
    }
}

/// `{ reproduced = ">= 0.8" }`: the fraction of trials ending with
/// `outcome` must satisfy the comparison. Judged on the observed fraction;
/// reports show the interval beside it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateExpect {
    pub outcome: Outcome,
    pub cmp: RateCmp,
    pub threshold: f64,
}

impl RateExpect {
    /// Parses the outcome name and a comparison such as `>= 0.8` or
    /// `>= 80%`.
    pub fn parse(outcome: &str, cmp: &str) -> Result<RateExpect, String> {
        let outcome = match outcome {
            "reproduced" => Outcome::Reproduced,
            "not-reproduced" => Outcome::NotReproduced,
            "crashed" => Outcome::Crashed,
            "timeout" => Outcome::Timeout,
            other => {
                return Err(format!(
                    "a rate expectation names reproduced, not-reproduced, crashed or timeout, not `{other}`"
                ))
            }
        };
        let t = cmp.trim();
        let (op, rest) = [
            (">=", RateCmp::Ge),
            ("<=", RateCmp::Le),
            (">", RateCmp::Gt),
            ("<", RateCmp::Lt),
        ]
        .into_iter()
        .find_map(|(s, op)| t.strip_prefix(s).map(|r| (op, r.trim())))
        .ok_or_else(|| {
            format!("rate `{t}`: start with >=, >, <= or <, as in \">= 0.8\" or \">= 80%\"")
        })?;
        let (num, scale) = match rest.strip_suffix('%') {
            Some(n) => (n.trim(), 100.0),
            None => (rest, 1.0),
        };
        let threshold = num
            .parse::<f64>()
            .ok()
            .map(|x| x / scale)
            .filter(|x| (0.0..=1.0).contains(x))
            .ok_or_else(|| {
                format!("rate `{t}`: `{rest}` is not a fraction from 0 to 1 (or 0% to 100%)")
            })?;
        Ok(RateExpect {
            outcome,
            cmp: op,
            threshold,
        })
    }

    /// Whether `r`'s observed fraction satisfies the expectation; no
    /// trials satisfy nothing.
    pub fn holds(&self, r: Rate) -> bool {
        r.point().is_some_and(|p| self.cmp.holds(p, self.threshold))
    }

    /// Whether the expectation wants some attempts to end with its
    /// outcome (`>= 0.8`, `> 0`), as opposed to bounding them from above.
    pub fn wants_hits(&self) -> bool {
        matches!(self.cmp, RateCmp::Ge | RateCmp::Gt) && !self.holds(Rate { hits: 0, trials: 1 })
    }
}

/// The threshold is never NaN (`parse` keeps 0 to 1; summaries hold what
/// it wrote), so equality is an equivalence.
impl Eq for RateExpect {}

/// `reproduced >= 0.8`.
impl std::fmt::Display for RateExpect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.outcome,
            self.cmp.as_str(),
            self.threshold
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 5e-4
    }

    // Reference values: Wilson score interval, z = 1.96 (Newcombe 1998,
    // table I; and by hand for the edges).
    #[rstest]
    #[case(0, 10, 0.0, 0.2775)]
    #[case(10, 10, 0.7225, 1.0)]
    #[case(1, 1, 0.2065, 1.0)]
    #[case(0, 1, 0.0, 0.7935)]
    #[case(2, 3, 0.2077, 0.9385)]
    #[case(15, 148, 0.0624, 0.1605)]
    #[case(81, 263, 0.2553, 0.3662)]
    #[case(5, 10, 0.2366, 0.7634)]
    fn wilson_interval_matches_reference_values(
        #[case] hits: u32,
        #[case] trials: u32,
        #[case] lo: f64,
        #[case] hi: f64,
    ) {
        let (l, h) = Rate { hits, trials }.wilson95().unwrap();
        assert!(close(l, lo) && close(h, hi), "{hits}/{trials}: {l} {h}");
        assert!(l <= f64::from(hits) / f64::from(trials) && h >= l);
    }

    #[test]
    fn no_trials_no_rate() {
        let r = Rate { hits: 0, trials: 0 };
        assert_eq!((r.point(), r.wilson95()), (None, None));
        assert_eq!(r.to_string(), "0/0");
    }

    #[test]
    fn rates_count_trials_only() {
        use Outcome::*;
        let r = Rate::of(
            [
                Reproduced,
                Error,
                NotReproduced,
                Skipped,
                Cancelled,
                Reproduced,
                Crashed,
            ],
            Reproduced,
        );
        assert_eq!(r, Rate { hits: 2, trials: 4 });
        assert_eq!(
            Rate { hits: 2, trials: 3 }.to_string(),
            "2/3 (67%, 95% CI 21–94%)"
        );
        assert_eq!(
            Rate { hits: 2, trials: 3 }.percent().as_deref(),
            Some("67% [21–94%]")
        );
    }

    #[rstest]
    #[case("reproduced", ">= 0.8", 4, 5, true)]
    #[case("reproduced", ">= 0.8", 3, 5, false)]
    #[case("reproduced", ">=80%", 8, 10, true)]
    #[case("reproduced", "> 0.8", 8, 10, false)]
    #[case("reproduced", "< 0.1", 0, 3, true)]
    #[case("crashed", "<= 0.25", 1, 4, true)]
    #[case("crashed", "<= 0.25", 2, 4, false)]
    #[case("reproduced", "> 0", 1, 9, true)]
    #[case("reproduced", "<= 1", 0, 0, false)]
    fn rate_expectations(
        #[case] outcome: &str,
        #[case] cmp: &str,
        #[case] hits: u32,
        #[case] trials: u32,
        #[case] want: bool,
    ) {
        let e = RateExpect::parse(outcome, cmp).unwrap();
        assert_eq!(
            e.holds(Rate { hits, trials }),
            want,
            "{e} on {hits}/{trials}"
        );
    }

    #[rstest]
    #[case("reproduced", "0.8", "start with >=")]
    #[case("reproduced", ">= 1.5", "not a fraction")]
    #[case("reproduced", ">= 120%", "not a fraction")]
    #[case("reproduced", ">= x", "not a fraction")]
    #[case("error", ">= 0.5", "not `error`")]
    fn bad_rate_expectations_say_why(#[case] o: &str, #[case] c: &str, #[case] want: &str) {
        let e = RateExpect::parse(o, c).unwrap_err();
        assert!(e.contains(want), "{e}");
    }

    #[rstest]
    #[case(">= 0.8", true)]
    #[case("> 0", true)]
    #[case(">= 0", false)]
    #[case("<= 0.2", false)]
    fn which_rate_expectations_want_hits(#[case] c: &str, #[case] want: bool) {
        assert_eq!(
            RateExpect::parse("reproduced", c).unwrap().wants_hits(),
            want
        );
    }
}
