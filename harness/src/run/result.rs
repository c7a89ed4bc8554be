//! Turning what a scenario left behind into an outcome (pure; tested).
//!
//! The script appends JSON lines to `$REPRO_RESULT` (see
//! `scenarios/README.md`; typed in [`crate::result_line`], which the guest
//! helper writes with); the harness adds what it saw: the exit status, a
//! timeout, a dropped connection, a kernel crash.

use crate::model::{ConsoleFinding, Metric, Outcome, Phase, Series};
use crate::result_line::{self, LineError, ResultLine, Verdict};
use std::collections::BTreeMap;

/// What the result file said.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ScriptResult {
    pub outcome: Option<(Outcome, String)>,
    pub metrics: BTreeMap<String, Metric>,
    pub series: BTreeMap<String, Series>,
    pub logs: Vec<String>,
    /// Lines that were not valid result records, each with why (reported,
    /// not fatal).
    pub bad_lines: Vec<(String, LineError)>,
}

/// The harness outcome of a script verdict.
pub fn outcome_of(v: Verdict) -> Outcome {
    match v {
        Verdict::Reproduced => Outcome::Reproduced,
        Verdict::NotReproduced => Outcome::NotReproduced,
        Verdict::Skipped => Outcome::Skipped,
    }
}

/// Parses the JSON-lines result file.
pub fn parse_result(text: &str) -> ScriptResult {
    let mut r = ScriptResult::default();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match result_line::parse(line) {
            Ok(ResultLine::Metric {
                metric,
                value,
                unit,
            }) => {
                let unit = unit.unwrap_or_default();
                r.metrics.insert(metric, Metric { value, unit });
            }
            Ok(ResultLine::Series {
                series,
                x,
                y,
                x_unit,
                y_unit,
            }) => {
                let e = r.series.entry(series).or_default();
                if let Some(u) = x_unit {
                    e.x_unit = u;
                }
                if let Some(u) = y_unit {
                    e.y_unit = u;
                }
                e.points.push((x, y));
            }
            Ok(ResultLine::Outcome { outcome, reason }) => {
                r.outcome = Some((outcome_of(outcome), reason));
            }
            Ok(ResultLine::Log { log }) => r.logs.push(log),
            Err(why) => r.bad_lines.push((line.to_string(), why)),
        }
    }
    r
}

/// How running the entry script ended, from the harness's side.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptEnd {
    Exited(i32),
    TimedOut(f64),
    Cancelled,
    /// The SSH connection broke or the guest went away.
    Lost(String),
}

/// The attempt's outcome, reason and (for harness outcomes) phase.
pub fn decide(
    end: &ScriptEnd,
    script: &ScriptResult,
    crash: Option<&ConsoleFinding>,
    stderr_tail: &str,
) -> (Outcome, String, Option<Phase>) {
    if let Some(c) = crash {
        return (Outcome::Crashed, c.title.clone(), Some(Phase::Scenario));
    }
    let last_err = stderr_tail.lines().rev().find(|l| !l.trim().is_empty());
    match end {
        ScriptEnd::Cancelled => (
            Outcome::Cancelled,
            "the run was interrupted".into(),
            Some(Phase::Scenario),
        ),
        ScriptEnd::TimedOut(s) => (
            Outcome::Timeout,
            format!("the scenario did not finish within its {s:.0} s time limit"),
            Some(Phase::Scenario),
        ),
        ScriptEnd::Lost(why) => (
            Outcome::Error,
            format!("lost the guest while the scenario ran: {why}"),
            Some(Phase::Scenario),
        ),
        ScriptEnd::Exited(code) if *code != 0 => {
            let mut reason = format!("the entry script exited with status {code}");
            if let Some(l) = last_err {
                reason.push_str(&format!(": {}", l.trim()));
            }
            (Outcome::Error, reason, Some(Phase::Scenario))
        }
        ScriptEnd::Exited(_) => match &script.outcome {
            Some((o, reason)) => (*o, reason.clone(), None),
            None => (
                Outcome::Error,
                "the entry script ended without writing an outcome to $REPRO_RESULT".into(),
                Some(Phase::Scenario),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const GOOD: &str = r#"
{"metric":"created","value":65533,"unit":"cgroups"}
{"metric":"errno","value":"ENOSPC"}
{"series":"lat","x":0,"y":0.2,"x_unit":"dying","y_unit":"ms"}
{"series":"lat","x":1000,"y":0.4}
{"log":"hello"}
not json
{"outcome":"not-reproduced","reason":"first"}
{"outcome":"reproduced","reason":"mkdir kubepods/burstable/pod1: No space left on device"}
"#;

    #[test]
    fn parses_every_record_kind() {
        let r = parse_result(GOOD);
        assert_eq!(r.metrics["created"].value, serde_json::json!(65533));
        assert_eq!(r.metrics["created"].unit, "cgroups");
        assert_eq!(r.metrics["errno"].value, serde_json::json!("ENOSPC"));
        assert_eq!(r.series["lat"].points, vec![(0.0, 0.2), (1000.0, 0.4)]);
        assert_eq!(r.series["lat"].y_unit, "ms");
        assert_eq!(r.logs, vec!["hello"]);
        assert_eq!(r.bad_lines.len(), 1);
        assert_eq!(r.bad_lines[0].0, "not json");
        assert!(matches!(r.bad_lines[0].1, LineError::NotJson(_)));
        assert_eq!(
            r.outcome.as_ref().unwrap().0,
            Outcome::Reproduced,
            "last wins"
        );
    }

    #[test]
    fn scripts_cannot_claim_harness_outcomes() {
        let r = parse_result(r#"{"outcome":"crashed","reason":"x"}"#);
        assert!(r.outcome.is_none());
        assert_eq!(
            r.bad_lines,
            vec![(
                r#"{"outcome":"crashed","reason":"x"}"#.to_string(),
                LineError::UnknownVerdict("crashed".into())
            )]
        );
    }

    #[test]
    fn the_shared_verdicts_are_the_models_script_outcomes() {
        for v in Verdict::ALL {
            let o = outcome_of(v);
            assert_eq!(Outcome::from_script(v.as_str()), Some(o));
            assert_eq!(o.as_str(), v.as_str());
            assert!(o.is_verdict());
        }
        for o in [
            Outcome::Crashed,
            Outcome::Timeout,
            Outcome::Error,
            Outcome::Cancelled,
        ] {
            assert_eq!(Outcome::from_script(o.as_str()), None);
            assert!(o.as_str().parse::<Verdict>().is_err());
        }
    }

    fn with_outcome(o: Outcome) -> ScriptResult {
        ScriptResult {
            outcome: Some((o, "r".into())),
            ..Default::default()
        }
    }

    #[rstest]
    #[case(
        ScriptEnd::Exited(0),
        Some(Outcome::Reproduced),
        false,
        Outcome::Reproduced
    )]
    #[case(ScriptEnd::Exited(0), Some(Outcome::Skipped), false, Outcome::Skipped)]
    #[case(ScriptEnd::Exited(0), None, false, Outcome::Error)]
    #[case(ScriptEnd::Exited(2), Some(Outcome::Reproduced), false, Outcome::Error)]
    #[case(ScriptEnd::TimedOut(60.0), None, false, Outcome::Timeout)]
    #[case(ScriptEnd::Cancelled, None, false, Outcome::Cancelled)]
    #[case(ScriptEnd::Lost("eof".into()), None, false, Outcome::Error)]
    #[case(ScriptEnd::Lost("eof".into()), None, true, Outcome::Crashed)]
    #[case(
        ScriptEnd::Exited(0),
        Some(Outcome::NotReproduced),
        true,
        Outcome::Crashed
    )]
    fn decides(
        #[case] end: ScriptEnd,
        #[case] script: Option<Outcome>,
        #[case] crashed: bool,
        #[case] want: Outcome,
    ) {
        let script = script.map(with_outcome).unwrap_or_default();
        let crash = ConsoleFinding {
            kind: "panic".into(),
            title: "kernel panic: sysrq triggered crash".into(),
            excerpt: String::new(),
        };
        let (o, reason, _) = decide(
            &end,
            &script,
            crashed.then_some(&crash),
            "oops\nlast line\n",
        );
        assert_eq!(o, want, "{reason}");
        if matches!(end, ScriptEnd::Exited(2)) {
            assert!(reason.contains("status 2: last line"), "{reason}");
        }
    }
}
