//! `junit.xml`: the run as JUnit XML (via `quick-junit`), for CI systems
//! that show test results. Rendered from a [`RunSummary`] only.
//!
//! Mapping:
//! - one `<testsuite>` per scenario (first-appearance order), one
//!   `<testcase>` per cell, named
//!   `scenario[kernel=…,kubelet=…,driver=…,cgroup=…]` (absent axes left
//!   out; parameters that vary within the scenario appended), classname the
//!   scenario, time the sum of its attempts' totals;
//! - passed → success; attempts that were infrastructure errors before
//!   the pass are `<flakyError>` runs (a retry is visible);
//! - failed → `<failure>`: message `expected E, got O: reason`, type the
//!   outcome, text the crash excerpt or the full reason; the other attempts
//!   are `<rerunFailure>`/`<rerunError>`;
//! - flaky → success with each attempt that missed the expectation as a
//!   `<flakyFailure>` (`<flakyError>` for infrastructure errors). Should a
//!   "flaky" cell have no attempt meeting the expectation at all (attempts
//!   disagree but all miss), it is a `<failure>` with flaky runs instead:
//!   never reported as a success;
//! - error → `<error>`; cancelled → `<skipped>`;
//! - `expect = any` cells that ran → success; the outcome is a property.
//!
//! Every case has properties (kernel package, version and release, accel,
//! machine, outcome, expect, status, attempts, parameters, key metric,
//! number of kernel-log warnings), a system-out pointing at each attempt's
//! artefacts, and a system-err with every attempt's kernel-log warnings
//! (title, log, excerpt), whatever the case's status.

use super::describe::{finding_line, finding_log, findings, rate_text, representative};
use super::format::{first_line, metric};
use super::grid::{case_name, grids};
use super::stale::stale_rules_of;
use super::{CellRecord, RunSummary, Status};
use crate::model::{Attempt, Outcome};
use quick_junit::{
    FlakyOrRerun, NonSuccessKind, Property, Report, SerializeError, TestCase, TestCaseStatus,
    TestRerun, TestSuite,
};
use std::time::Duration;

fn secs(v: f64) -> Duration {
    if v.is_finite() && v > 0.0 {
        Duration::from_secs_f64(v)
    } else {
        Duration::ZERO
    }
}

fn total(c: &CellRecord) -> f64 {
    c.attempts.iter().map(|a| a.timings.total.max(0.0)).sum()
}

fn timestamp(s: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(s).ok()
}

/// The text of a failure: the crash excerpt when there is one, else the
/// whole reason.
fn description(a: &Attempt) -> String {
    match &a.crash {
        Some(c) if !c.excerpt.is_empty() => format!("{}: {}\n{}", c.kind, c.title, c.excerpt),
        Some(c) => format!("{}: {}\n{}", c.kind, c.title, a.reason),
        None => a.reason.clone(),
    }
}

fn artifacts_text(a: &Attempt) -> String {
    let t = &a.timings;
    let dmesg = a
        .artifacts
        .dmesg
        .as_deref()
        .map(|d| format!("  dmesg:     {d}\n"))
        .unwrap_or_default();
    let text = format!(
        "attempt {}: {} in {:.1} s (image {:.1} s, boot {:.1} s, scenario {:.1} s, teardown {:.1} s): {}\n  \
         artifacts: {}/\n  console:   {}\n  stdout:    {}\n  stderr:    {}\n",
        a.number,
        a.outcome,
        t.total,
        t.image,
        t.boot,
        t.scenario,
        t.teardown,
        first_line(&a.reason),
        a.artifacts.dir,
        a.artifacts.console,
        a.artifacts.stdout,
        a.artifacts.stderr,
    );
    text + &dmesg
}

fn rerun(a: &Attempt) -> TestRerun {
    let kind = if matches!(a.outcome, Outcome::Error | Outcome::Cancelled) {
        NonSuccessKind::Error
    } else {
        NonSuccessKind::Failure
    };
    let mut r = TestRerun::new(kind);
    r.set_message(format!(
        "attempt {}: {}: {}",
        a.number,
        a.outcome,
        first_line(&a.reason)
    ))
    .set_type(a.outcome.as_str())
    .set_time(secs(a.timings.total))
    .set_description(description(a))
    .set_system_out(artifacts_text(a));
    if let Some(ts) = timestamp(&a.started_at) {
        r.set_timestamp(ts);
    }
    r
}

fn status(c: &CellRecord) -> TestCaseStatus {
    let rep = representative(c);
    let missed = |a: &&Attempt| !c.expect.accepts(a.outcome) && a.outcome != Outcome::Cancelled;
    match c.status() {
        Status::Passed => {
            let mut st = TestCaseStatus::success();
            st.add_reruns(c.attempts.iter().filter(missed).map(rerun));
            st
        }
        Status::Flaky if c.attempts.iter().any(|a| c.expect.accepts(a.outcome)) => {
            let mut st = TestCaseStatus::success();
            st.add_reruns(c.attempts.iter().filter(missed).map(rerun));
            st
        }
        s @ (Status::Failed | Status::Flaky) => {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
            // A failed or flaky cell has judged attempts: `rep` is some.
            let Some(a) = rep else { return st };
            let flaky = if s == Status::Flaky { "flaky, " } else { "" };
            st.set_message(format!(
                "{flaky}expected {}, got {}: {}",
                c.expect,
                a.outcome,
                first_line(&a.reason)
            ))
            .set_type(a.outcome.as_str())
            .set_description(description(a))
            .add_reruns(
                c.attempts
                    .iter()
                    .filter(|x| x.number != a.number)
                    .map(rerun),
            );
            if s == Status::Flaky {
                st.set_rerun_kind(FlakyOrRerun::Flaky);
            }
            st
        }
        Status::Error => {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
            if let Some(a) = c.attempts.last() {
                let phase = a
                    .phase
                    .map(|p| format!(" in {}", p.as_str()))
                    .unwrap_or_default();
                st.set_message(format!("error{phase}: {}", first_line(&a.reason)))
                    .set_type("error")
                    .set_description(description(a))
                    .add_reruns(
                        c.attempts[..c.attempts.len() - 1]
                            .iter()
                            .filter(|x| x.outcome != Outcome::Cancelled)
                            .map(rerun),
                    );
            }
            st
        }
        Status::Cancelled => {
            let mut st = TestCaseStatus::skipped();
            let reason = c
                .attempts
                .last()
                .map(|a| first_line(&a.reason))
                .unwrap_or("");
            st.set_message(if reason.is_empty() {
                "cancelled".to_string()
            } else {
                format!("cancelled: {reason}")
            })
            .set_type("cancelled");
            st
        }
    }
}

fn case(c: &CellRecord, varying: &[String]) -> TestCase {
    let mut t = TestCase::new(case_name(c, varying), status(c));
    t.set_classname(&c.key.scenario).set_time(secs(total(c)));
    if let Some(ts) = c.attempts.first().and_then(|a| timestamp(&a.started_at)) {
        t.set_timestamp(ts);
    }
    let rep = representative(c);
    let mut props = vec![
        Property::new("id", c.id()),
        Property::new("kernel", &c.key.kernel),
    ];
    if let Some(a) = rep {
        let k = &a.kernel;
        if let Some(p) = &k.package {
            props.push(Property::new("kernel.package", p));
        }
        if let Some(v) = &k.version {
            props.push(Property::new("kernel.version", v));
        }
        props.push(Property::new("kernel.release", &k.release));
        props.push(Property::new("accel", &a.accel));
        props.push(Property::new("machine", &a.machine));
    }
    if let Some(k) = &c.key.kubelet {
        props.push(Property::new("kubelet", k));
    }
    if let Some(d) = c.key.driver {
        props.push(Property::new("driver", d.as_str()));
    }
    props.push(Property::new("cgroup", c.key.cgroup.as_str()));
    props.push(Property::new("outcome", c.outcome().as_str()));
    props.push(Property::new("expect", c.expect.to_string()));
    props.push(Property::new("status", c.status().as_str()));
    props.push(Property::new("attempts", c.attempts.len().to_string()));
    if let Some(r) = rate_text(c) {
        props.push(Property::new("rate", r));
    }
    if let Some(r) = &c.rule {
        props.push(Property::new("rule", r.describe()));
    }
    for r in stale_rules_of(c) {
        props.push(Property::new(
            r.kind.as_str().replace(' ', "-"),
            format!("{}: {}", r.rule.describe(), r.edit),
        ));
    }
    for (k, v) in &c.params {
        props.push(Property::new(format!("param.{k}"), v));
    }
    if let (Some(name), Some(a)) = (&c.key_metric, rep) {
        if let Some(m) = a.metrics.get(name) {
            props.push(Property::new(format!("metric.{name}"), metric(m)));
        }
    }
    let warnings = findings(c);
    if !warnings.is_empty() {
        props.push(Property::new("warnings", warnings.len().to_string()));
    }
    t.add_properties(props);
    let out: String = c.attempts.iter().map(artifacts_text).collect();
    if !out.is_empty() {
        t.set_system_out(out);
    }
    if !warnings.is_empty() {
        t.set_system_err(warnings_text(&warnings));
    }
    t
}

/// The kernel-log warnings of a case: per warning, a line with the attempt,
/// kind, title and log, then the excerpt.
fn warnings_text(warnings: &[(&Attempt, &crate::model::ConsoleFinding)]) -> String {
    warnings
        .iter()
        .map(|(a, f)| {
            format!(
                "attempt {}: {} (from {})\n{}\n\n",
                a.number,
                finding_line(f),
                finding_log(a, f),
                f.excerpt
            )
        })
        .collect()
}

/// Renders the run as JUnit XML.
pub fn junit(s: &RunSummary) -> Result<String, SerializeError> {
    let mut report = Report::new(format!("repro {}", s.run_id));
    if let Some(ts) = timestamp(&s.started_at) {
        report.set_timestamp(ts);
    }
    report.set_time(secs(s.cells.iter().map(total).sum()));
    for g in grids(s) {
        let mut suite = TestSuite::new(g.scenario);
        let m = &s.meta;
        let meta = [
            ("run_id", &s.run_id),
            ("repro_version", &m.repro_version),
            ("qemu_version", &m.qemu_version),
            ("host_kernel", &m.host_kernel),
            ("accel", &m.accel),
            ("accel_reason", &m.accel_reason),
            ("command", &m.command),
        ];
        suite.add_properties(
            meta.into_iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| Property::new(k, v)),
        );
        suite.set_time(secs(g.iter().map(total).sum()));
        suite.add_test_cases(g.iter().map(|c| case(c, &g.varying)));
        report.add_test_suite(suite);
    }
    report.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Outcome::*;
    use crate::report::fixtures::{cell, mixed};
    use crate::report::Expect;
    use quick_junit::{Report, TestCaseStatus};
    use rstest::rstest;

    fn parse(xml: &str) -> Report {
        Report::deserialize_from_str(xml).unwrap_or_else(|e| panic!("{e}\n{xml}"))
    }

    fn prop<'a>(t: &'a quick_junit::TestCase, name: &str) -> Option<&'a str> {
        t.properties
            .iter()
            .find(|p| p.name.as_str() == name)
            .map(|p| p.value.as_str())
    }

    #[test]
    fn one_suite_per_scenario_one_case_per_cell() {
        let xml = junit(&mixed()).unwrap();
        assert!(xml.starts_with("<?xml"), "{xml}");
        let r = parse(&xml);
        assert_eq!(
            r.name.as_ref().unwrap().as_str(),
            "repro 20261122-201500-3fa2"
        );
        assert_eq!(r.tests, 6);
        assert_eq!(r.failures, 1);
        assert_eq!(r.errors, 1);
        let names: Vec<&str> = r.test_suites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["memcg-fill", "pid-leak"]);
        let cases: Vec<&str> = r.test_suites[0]
            .test_cases
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            cases,
            [
                "memcg-fill[kernel=6.1,cgroup=v1]",
                "memcg-fill[kernel=6.1,cgroup=v2]",
                "memcg-fill[kernel=6.12,cgroup=v1]",
                "memcg-fill[kernel=6.12,cgroup=v2]",
            ]
        );
        let first = &r.test_suites[0].test_cases[0];
        assert_eq!(first.classname.as_ref().unwrap().as_str(), "memcg-fill");
        assert_eq!(first.time, Some(Duration::from_secs_f64(5.2)));
        assert_eq!(
            prop(first, "kernel.package"),
            Some("linux-image-6.1.0-50-amd64-unsigned")
        );
        assert_eq!(prop(first, "kernel.version"), Some("6.1.176-1"));
        assert_eq!(prop(first, "kernel.release"), Some("6.1.0-50-amd64"));
        assert_eq!(prop(first, "accel"), Some("tcg"));
        assert_eq!(prop(first, "outcome"), Some("reproduced"));
        assert_eq!(prop(first, "expect"), Some("reproduced"));
        assert_eq!(prop(first, "metric.created"), Some("65533 cgroups"));
        let out = first.system_out.as_ref().unwrap().as_str();
        assert!(
            out.contains("artifacts: memcg-fill__kernel=6.1__cgroup=v1/attempt-1/"),
            "{out}"
        );
        assert!(out.contains("console:   memcg-fill__kernel=6.1__cgroup=v1/attempt-1/console.log"));
        assert!(out.contains("dmesg:     memcg-fill__kernel=6.1__cgroup=v1/attempt-1/dmesg.log"));
        // A passed case still carries its kernel warnings.
        assert_eq!(prop(first, "warnings"), Some("1"));
        let err = first.system_err.as_ref().unwrap().as_str();
        assert!(
            err.starts_with(
                "attempt 1: warning: WARNING: CPU: 0 PID: 151 at mm/memcontrol.c:7129 \
                 <mem_cgroup>+0x1/0x2 (from memcg-fill__kernel=6.1__cgroup=v1/attempt-1/dmesg.log)\n\
                 ------------[ cut here ]------------\n"
            ),
            "{err}"
        );
        assert!(err.contains("Modules linked in: fuse"), "{err}");
        assert!(r.test_suites[0].test_cases[1].system_err.is_none());
        let suite_props: Vec<&str> = r.test_suites[0]
            .properties
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert!(suite_props.contains(&"qemu_version"), "{suite_props:?}");
    }

    #[test]
    fn failed_cells_carry_the_crash_excerpt() {
        let r = parse(&junit(&mixed()).unwrap());
        let crashed = &r.test_suites[0].test_cases[3];
        match &crashed.status {
            TestCaseStatus::NonSuccess {
                kind,
                message,
                ty,
                description,
                ..
            } => {
                assert_eq!(*kind, NonSuccessKind::Failure);
                assert_eq!(
                    message.as_ref().unwrap().as_str(),
                    "expected not-reproduced, got crashed: crashed because of attempt 1"
                );
                assert_eq!(ty.as_ref().unwrap().as_str(), "crashed");
                let d = description.as_ref().unwrap().as_str();
                assert!(d.contains("Kernel panic - not syncing"), "{d}");
                assert!(d.contains("CPU: 0 PID: 1"), "{d}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flaky_cells_are_visible_as_flaky_runs() {
        let xml = junit(&mixed()).unwrap();
        assert!(xml.contains("<flakyFailure"), "{xml}");
        let r = parse(&xml);
        let flaky = &r.test_suites[0].test_cases[2];
        match &flaky.status {
            TestCaseStatus::Success { flaky_runs } => {
                assert_eq!(flaky_runs.len(), 1);
                let m = flaky_runs[0].message.as_ref().unwrap().as_str();
                assert_eq!(
                    m,
                    "attempt 2: not-reproduced: not-reproduced because of attempt 2"
                );
                assert_eq!(flaky_runs[0].kind, NonSuccessKind::Failure);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(prop(flaky, "status"), Some("flaky"));
        assert_eq!(prop(flaky, "attempts"), Some("3"));
        assert_eq!(flaky.time, Some(Duration::from_secs_f64(15.6)));
    }

    #[test]
    fn errors_and_cancellations() {
        let mut s = mixed();
        s.cells.push(cell(
            "pid-leak",
            "6.6",
            "v2",
            Expect::Reproduced,
            &[Cancelled],
            0,
        ));
        let r = parse(&junit(&s).unwrap());
        let cases = &r.test_suites[1].test_cases;
        match &cases[1].status {
            TestCaseStatus::NonSuccess { kind, message, .. } => {
                assert_eq!(*kind, NonSuccessKind::Error);
                assert_eq!(
                    message.as_ref().unwrap().as_str(),
                    "error in boot: qemu exited with status 1"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(cases[2].status, TestCaseStatus::Skipped { .. }));
        assert_eq!(r.skipped, 1);
    }

    #[rstest]
    #[case(Expect::Any, &[Skipped], "success")]
    #[case(Expect::Any, &[Reproduced, NotReproduced], "success")]
    #[case(Expect::Reproduced, &[Error, Reproduced], "flaky-success")]
    #[case(Expect::Reproduced, &[NotReproduced, Skipped], "failure")]
    #[case(Expect::Reproduced, &[NotReproduced, NotReproduced], "failure")]
    fn status_mapping(#[case] expect: Expect, #[case] outcomes: &[Outcome], #[case] want: &str) {
        let mut s = mixed();
        s.cells = vec![cell("x", "6.1", "v1", expect, outcomes, 1)];
        let r = parse(&junit(&s).unwrap());
        let t = &r.test_suites[0].test_cases[0];
        let got = match &t.status {
            TestCaseStatus::Success { flaky_runs } if flaky_runs.is_empty() => "success",
            TestCaseStatus::Success { .. } => "flaky-success",
            TestCaseStatus::NonSuccess {
                kind: NonSuccessKind::Failure,
                ..
            } => "failure",
            TestCaseStatus::NonSuccess { .. } => "error",
            TestCaseStatus::Skipped { .. } => "skipped",
        };
        assert_eq!(got, want, "{t:?}");
    }

    #[test]
    fn text_is_escaped() {
        let mut s = mixed();
        s.cells[3].attempts[0].crash = None;
        s.cells[3].attempts[0].reason = "<boom> & \"quotes\" \u{1b}[31mred\u{1b}[0m".into();
        let xml = junit(&s).unwrap();
        assert!(!xml.contains("<boom>"), "{xml}");
        let r = parse(&xml);
        match &r.test_suites[0].test_cases[3].status {
            TestCaseStatus::NonSuccess { description, .. } => {
                assert_eq!(
                    description.as_ref().unwrap().as_str(),
                    "<boom> & \"quotes\" red"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
