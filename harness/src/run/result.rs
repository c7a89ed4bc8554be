//! Turning what a scenario left behind into an outcome (pure; tested).
//!
//! The script appends JSON lines to `$REPRO_RESULT` (see
//! `scenarios/README.md`; typed in [`crate::result_line`], which the guest
//! helper writes with); the harness adds what it saw: the exit status (or
//! the signal), a timeout, a dropped connection, a kernel crash, an OOM
//! kill on the console.

use crate::model::{signal_name, ConsoleFinding, FindingKind, Metric, Outcome, Phase, Series};
use crate::result_line::{self, LineError, ResultLine, Verdict};
use std::collections::BTreeMap;

/// The result file's name, as reasons name it.
pub const RESULT_FILE: &str = "result.jsonl";

/// What the result file said.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ScriptResult {
    pub outcome: Option<(Outcome, String)>,
    pub metrics: BTreeMap<String, Metric>,
    pub series: BTreeMap<String, Series>,
    pub logs: Vec<String>,
    /// Lines that were not valid result records, in file order. Any makes
    /// the attempt an `error` ([`decide`]); the valid lines are kept.
    pub bad_lines: Vec<BadLine>,
}

/// A rejected line of the result file.
#[derive(Debug, Clone, PartialEq)]
pub struct BadLine {
    /// 1-based, counting every line of the file (blank ones too).
    pub number: usize,
    pub text: String,
    pub error: LineError,
}

impl ScriptResult {
    /// One line naming the first rejected line and how many more there
    /// are, if any line was rejected.
    pub fn bad_lines_reason(&self) -> Option<String> {
        let first = self.bad_lines.first()?;
        let mut reason = format!("{RESULT_FILE} line {}: {}", first.number, first.error);
        match self.bad_lines.len() - 1 {
            0 => {}
            1 => reason.push_str(" (and 1 more bad line)"),
            n => reason.push_str(&format!(" (and {n} more bad lines)")),
        }
        Some(reason)
    }
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
    parse_result_bytes(text.as_bytes())
}

/// Parses the result file as the guest left it: a line that is not UTF-8
/// is rejected on its own ([`LineError::NotUtf8`]), the others are kept.
pub fn parse_result_bytes(bytes: &[u8]) -> ScriptResult {
    let mut r = ScriptResult::default();
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let parsed = std::str::from_utf8(raw)
            .map_err(|e| LineError::NotUtf8 {
                column: e.valid_up_to() + 1,
            })
            .map(str::trim);
        let line = match parsed {
            Ok("") => continue,
            Ok(line) => result_line::parse(line),
            Err(e) => Err(e),
        };
        match line {
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
            Err(error) => r.bad_lines.push(BadLine {
                number: i + 1,
                text: String::from_utf8_lossy(raw).trim().to_string(),
                error,
            }),
        }
    }
    r
}

/// How running the entry script ended, from the harness's side.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptEnd {
    /// The exit status; 128 + N when signal N killed the script (the
    /// shell's convention, which `guest` follows for SSH's `exit-signal`).
    Exited(i32),
    TimedOut(f64),
    /// Nothing came from the guest for this many seconds (`stall_s`).
    Stalled(u64),
    Cancelled,
    /// The SSH connection broke or the guest went away.
    Lost(String),
    /// The SSH connection broke, but the guest answered a new session
    /// afterwards: something inside the guest ended the scenario's.
    Dropped(String),
}

/// The OOM killer's report among `findings`: its "Killed process" line
/// when the console has one, else its first line.
fn oom_kill(findings: &[ConsoleFinding]) -> Option<&ConsoleFinding> {
    let mut ooms = findings.iter().filter(|f| f.kind == FindingKind::OomKill);
    let first = ooms.clone().next();
    ooms.find(|f| f.title.contains("Killed process")).or(first)
}

/// The first finding of `kind`.
fn first_of(findings: &[ConsoleFinding], kind: FindingKind) -> Option<&ConsoleFinding> {
    findings.iter().find(|f| f.kind == kind)
}

/// How a process ended, from its wait status (`exitcode=0x00000009` in
/// the kernel's "Attempted to kill init!" panic).
fn wait_status_text(status: u32) -> String {
    let signal = (status & 0x7f) as i32;
    if signal == 0 {
        return format!("it exited with status {}", (status >> 8) & 0xff);
    }
    let name = signal_name(signal)
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    let core = if status & 0x80 != 0 {
        ", core dumped"
    } else {
        ""
    };
    format!("it was killed by signal {signal}{name}{core}")
}

/// The reason of an attempt whose guest's init exited (a
/// [`FindingKind::InitExit`] finding that is not a kernel fault).
pub fn init_exit_reason(f: &ConsoleFinding) -> String {
    let panic = f.title.strip_prefix("kernel panic: ").unwrap_or(&f.title);
    let how = panic
        .split_once("exitcode=0x")
        .and_then(|(_, hex)| {
            let digits: String = hex.chars().take_while(char::is_ascii_hexdigit).collect();
            u32::from_str_radix(&digits, 16).ok()
        })
        .map(|st| format!("{}; ", wait_status_text(st)))
        .unwrap_or_default();
    format!(
        "the guest's init exited: {how}the kernel panics when init exits (\"{panic}\"): \
         the guest's userland died, not its kernel"
    )
}

/// The signal number of a shell exit status `128 + N`.
fn signal_of(status: i32) -> Option<i32> {
    (129..=128 + 64).contains(&status).then_some(status - 128)
}

/// The attempt's outcome, reason and (for harness outcomes) phase.
///
/// Precedence, first match wins: a kernel crash; the guest's init exited
/// (an `error`: the kernel panics by design then); the harness's own ends
/// (cancelled, timeout, lost guest or session: a session dropped because
/// the guest's SSH server ended says so); the entry script's failure
/// (killed by the OOM killer, by a signal, a non-zero status, each of
/// which may also explain a half-written result line); rejected result
/// lines; the script's verdict; no verdict at all. `findings` are the
/// console's non-crash findings seen while the scenario ran (`oom-kill`,
/// `init-exit` and `sshd-restart` ones count).
pub fn decide(
    end: &ScriptEnd,
    script: &ScriptResult,
    crash: Option<&ConsoleFinding>,
    stderr_tail: &str,
    findings: &[ConsoleFinding],
) -> (Outcome, String, Option<Phase>) {
    if let Some(c) = crash {
        return (Outcome::Crashed, c.title.clone(), Some(Phase::Scenario));
    }
    if let Some(i) = first_of(findings, FindingKind::InitExit) {
        return (Outcome::Error, init_exit_reason(i), Some(Phase::Scenario));
    }
    let last_err = stderr_tail
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!(": {}", l.trim()))
        .unwrap_or_default();
    let error = |reason: String| (Outcome::Error, reason, Some(Phase::Scenario));
    let code = match end {
        ScriptEnd::Cancelled => {
            return (
                Outcome::Cancelled,
                "the run was interrupted".into(),
                Some(Phase::Scenario),
            )
        }
        ScriptEnd::TimedOut(s) => {
            return (
                Outcome::Timeout,
                format!("the scenario did not finish within its {s:.0} s time limit"),
                Some(Phase::Scenario),
            )
        }
        ScriptEnd::Stalled(s) => {
            return (
                Outcome::Timeout,
                crate::model::StopReason::Stalled(*s).to_string(),
                Some(Phase::Scenario),
            )
        }
        ScriptEnd::Lost(why) => {
            return error(match first_of(findings, FindingKind::SshdRestart) {
                Some(r) => format!(
                    "lost the guest while the scenario ran: {why} (its SSH server \
                     ended during the scenario: {})",
                    r.title
                ),
                None => format!("lost the guest while the scenario ran: {why}"),
            })
        }
        ScriptEnd::Dropped(why) => {
            return error(match first_of(findings, FindingKind::SshdRestart) {
                Some(r) => format!(
                    "the SSH session running the entry script was dropped: the guest's \
                     SSH server ended during the scenario and its init restarted it \
                     ({}): {why}",
                    r.title
                ),
                None => format!(
                    "the SSH session running the entry script was dropped while the guest \
                     kept running (did the scenario kill its SSH server or session?): {why}"
                ),
            })
        }
        ScriptEnd::Exited(code) => *code,
    };
    let signal = signal_of(code);
    let oom = oom_kill(findings);
    // The OOM killer sends SIGKILL. A script that ended without an outcome
    // while it struck was cut short by it too. Any other failure keeps its
    // own reason, the OOM kill added.
    if let Some(o) = oom {
        if signal == Some(9) || (code == 0 && script.outcome.is_none()) {
            return error(format!(
                "the entry script was killed by the OOM killer: {}",
                o.title
            ));
        }
    }
    if let Some(n) = signal {
        let name = signal_name(n)
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        return error(format!(
            "the entry script was killed by signal {n}{name}{last_err}"
        ));
    }
    if code != 0 {
        let mut reason = format!("the entry script exited with status {code}{last_err}");
        if let Some(o) = oom {
            reason.push_str(&format!(
                " (the OOM killer struck during the scenario: {})",
                o.title
            ));
        }
        return error(reason);
    }
    if let Some(reason) = script.bad_lines_reason() {
        return error(reason);
    }
    match &script.outcome {
        Some((o, reason)) => (*o, reason.clone(), None),
        None => error("the entry script ended without writing an outcome to $REPRO_RESULT".into()),
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
        assert_eq!(r.bad_lines[0].text, "not json");
        assert_eq!(r.bad_lines[0].number, 7, "blank lines count");
        assert!(matches!(r.bad_lines[0].error, LineError::NotJson(_)));
        assert_eq!(
            r.outcome.as_ref().unwrap().0,
            Outcome::Reproduced,
            "last wins"
        );
    }

    #[test]
    fn a_line_that_is_not_utf8_is_rejected_alone() {
        let r = parse_result_bytes(
            b"{\"metric\":\"m\",\"value\":1}\r\n{\"log\":\"a\xffb\"}\n\n{\"outcome\":\"reproduced\"}",
        );
        assert_eq!(r.metrics["m"].value, serde_json::json!(1));
        assert_eq!(r.outcome.as_ref().map(|o| o.0), Some(Outcome::Reproduced));
        assert_eq!(r.bad_lines.len(), 1);
        assert_eq!(r.bad_lines[0].text, "{\"log\":\"a\u{fffd}b\"}");
        assert_eq!(
            r.bad_lines_reason().unwrap(),
            "result.jsonl line 2: not UTF-8 text (invalid byte at column 10)"
        );
    }

    #[test]
    fn scripts_cannot_claim_harness_outcomes() {
        let r = parse_result(r#"{"outcome":"crashed","reason":"x"}"#);
        assert!(r.outcome.is_none());
        assert_eq!(
            r.bad_lines,
            vec![BadLine {
                number: 1,
                text: r#"{"outcome":"crashed","reason":"x"}"#.to_string(),
                error: LineError::ReservedOutcome("crashed".into())
            }]
        );
    }

    /// What the script wrote decides alone: it exited 0.
    fn judge(text: &str) -> (Outcome, String) {
        let (o, reason, _) = decide(&ScriptEnd::Exited(0), &parse_result(text), None, "", &[]);
        (o, reason)
    }

    #[test]
    fn a_malformed_line_is_an_error_naming_its_line() {
        let (o, reason) = judge(
            "{\"metric\":\"m\",\"value\":1}\nnot json\n{\"outcome\":\"reproduced\",\"reason\":\"r\"}\n",
        );
        assert_eq!(o, Outcome::Error, "{reason}");
        assert!(
            reason.starts_with("result.jsonl line 2: not JSON: expected"),
            "{reason}"
        );
        assert!(!reason.contains('\n'), "one line: {reason}");
    }

    #[test]
    fn a_truncated_line_is_an_error() {
        let (o, reason) =
            judge("{\"outcome\":\"reproduced\",\"reason\":\"r\"}\n{\"metric\":\"m\",\"val");
        assert_eq!(o, Outcome::Error);
        assert_eq!(
            reason,
            "result.jsonl line 2: truncated JSON (the line ends inside a record)"
        );
    }

    #[test]
    fn a_reserved_outcome_is_an_error() {
        let (o, reason) = judge("\n\n{\"outcome\":\"crashed\"}\n");
        assert_eq!(o, Outcome::Error);
        assert_eq!(
            reason,
            "result.jsonl line 3: outcome `crashed` is reserved for the harness"
        );
        let (o, reason) = judge("{\"outcome\":\"passed\"}\n");
        assert_eq!(o, Outcome::Error);
        assert!(reason.contains("got \"passed\""), "{reason}");
    }

    #[test]
    fn a_line_with_only_unknown_keys_is_an_error_but_extra_keys_are_not() {
        let (o, reason) = judge("{\"temperature\":3}\n{\"outcome\":\"skipped\",\"reason\":\"r\"}");
        assert_eq!(o, Outcome::Error);
        assert_eq!(
            reason,
            "result.jsonl line 1: no string-valued \"metric\", \"series\", \"outcome\" or \"log\" key"
        );
        let (o, reason) = judge(
            "{\"metric\":\"m\",\"value\":1,\"extra\":true}\n{\"outcome\":\"skipped\",\"reason\":\"r\"}",
        );
        assert_eq!((o, reason.as_str()), (Outcome::Skipped, "r"));
    }

    #[test]
    fn several_bad_lines_name_the_first_and_count_the_rest() {
        let (_, reason) =
            judge("{\"a\nnope\n{\"outcome\":\"error\"}\n{\"metric\":\"m\",\"value\":1}");
        assert_eq!(
            reason,
            "result.jsonl line 1: truncated JSON (the line ends inside a record) (and 2 more bad lines)"
        );
        let (_, reason) = judge("nope\n{\"outcome\":\"timeout\"}");
        assert!(reason.ends_with(" (and 1 more bad line)"), "{reason}");
    }

    #[test]
    fn valid_lines_are_kept_beside_bad_ones() {
        let r = parse_result(
            "{\"metric\":\"a\",\"value\":1,\"unit\":\"x\"}\n{\"b\nnot json\n{\"outcome\":\"crashed\"}\n\
             {\"series\":\"s\",\"x\":1,\"y\":2}\n{\"log\":\"l\"}\n{\"metric\":\"c\",\"value\":\"v\"}",
        );
        assert_eq!(
            r.bad_lines.iter().map(|b| b.number).collect::<Vec<_>>(),
            [2, 3, 4]
        );
        assert_eq!(r.metrics.len(), 2);
        assert_eq!(r.metrics["a"].unit, "x");
        assert_eq!(r.series["s"].points, vec![(1.0, 2.0)]);
        assert_eq!(r.logs, vec!["l"]);
        assert!(r.outcome.is_none());
    }

    fn finding(kind: FindingKind, title: &str) -> ConsoleFinding {
        ConsoleFinding {
            kind,
            title: title.into(),
            excerpt: String::new(),
            source: Default::default(),
        }
    }

    const OOM: &str = "Out of memory: Killed process 113 (sh) total-vm:2048kB, anon-rss:1024kB";

    fn ooms() -> Vec<ConsoleFinding> {
        vec![
            finding(
                FindingKind::HungTask,
                "INFO: task x:1 blocked for more than 120 seconds.",
            ),
            finding(
                FindingKind::OomKill,
                "tail invoked oom-killer: gfp_mask=0x140cca",
            ),
            finding(FindingKind::OomKill, OOM),
        ]
    }

    #[test]
    fn an_oom_killed_script_says_so() {
        let none = ScriptResult::default();
        let want = format!("the entry script was killed by the OOM killer: {OOM}");
        for end in [ScriptEnd::Exited(0), ScriptEnd::Exited(137)] {
            let (o, reason, phase) = decide(&end, &none, None, "Killed\n", &ooms());
            assert_eq!((o, phase), (Outcome::Error, Some(Phase::Scenario)));
            assert_eq!(reason, want);
        }
        // Also when the kill left a half-written line behind.
        let r = parse_result("{\"metric\":\"m\",\"va");
        let (_, reason, _) = decide(&ScriptEnd::Exited(137), &r, None, "", &ooms());
        assert_eq!(reason, want);
        // Only the first line of the report when there is no "Killed process".
        let (_, reason, _) = decide(&ScriptEnd::Exited(0), &none, None, "", &ooms()[..2]);
        assert!(
            reason.ends_with(": tail invoked oom-killer: gfp_mask=0x140cca"),
            "{reason}"
        );
    }

    #[test]
    fn an_oom_kill_does_not_override_a_verdict_or_hide_the_scripts_own_error() {
        // A scenario that provokes OOM kills on purpose still reports.
        let (o, reason, _) = decide(
            &ScriptEnd::Exited(0),
            &with_outcome(Outcome::Reproduced),
            None,
            "",
            &ooms(),
        );
        assert_eq!((o, reason.as_str()), (Outcome::Reproduced, "r"));
        let (o, reason, _) = decide(
            &ScriptEnd::Exited(1),
            &ScriptResult::default(),
            None,
            "cannot mount\n",
            &ooms(),
        );
        assert_eq!(o, Outcome::Error);
        assert_eq!(
            reason,
            format!("the entry script exited with status 1: cannot mount (the OOM killer struck during the scenario: {OOM})")
        );
        // Without an OOM report, no OOM reason.
        let (_, reason, _) = decide(
            &ScriptEnd::Exited(0),
            &ScriptResult::default(),
            None,
            "",
            &ooms()[..1],
        );
        assert!(reason.contains("without writing an outcome"), "{reason}");
    }

    const INIT: &str = "kernel panic: Attempted to kill init! exitcode=0x00000009";
    const SSHD: &str = "sshd (dropbear, pid 91) was killed by signal 9 (SIGKILL); restarting it";

    #[rstest]
    #[case("exitcode=0x00000009", "it was killed by signal 9 (SIGKILL); ")]
    #[case(
        "exitcode=0x0000008b",
        "it was killed by signal 11 (SIGSEGV), core dumped; "
    )]
    #[case("exitcode=0x00000100", "it exited with status 1; ")]
    #[case("exitcode=0x00007f00", "it exited with status 127; ")]
    #[case("exitcode=zz", "")]
    fn an_exited_init_is_an_error_that_says_how_it_ended(#[case] code: &str, #[case] how: &str) {
        let title = format!("kernel panic: Attempted to kill init! {code}");
        let f = finding(FindingKind::InitExit, &title);
        let (o, reason, phase) = decide(
            &ScriptEnd::Lost("QEMU exited".into()),
            &ScriptResult::default(),
            None,
            "",
            &[f],
        );
        assert_eq!((o, phase), (Outcome::Error, Some(Phase::Scenario)));
        assert_eq!(
            reason,
            format!(
                "the guest's init exited: {how}the kernel panics when init exits \
                 (\"Attempted to kill init! {code}\"): the guest's userland died, not its kernel"
            )
        );
    }

    #[test]
    fn a_session_dropped_with_its_ssh_server_says_so() {
        let (o, reason, _) = decide(
            &ScriptEnd::Dropped("the SSH connection broke: EOF".into()),
            &with_outcome(Outcome::Reproduced),
            None,
            "",
            &[finding(FindingKind::SshdRestart, SSHD)],
        );
        assert_eq!(o, Outcome::Error);
        assert_eq!(
            reason,
            format!(
                "the SSH session running the entry script was dropped: the guest's SSH server \
                 ended during the scenario and its init restarted it ({SSHD}): the SSH \
                 connection broke: EOF"
            )
        );
        let drop = |end: ScriptEnd, findings: &[ConsoleFinding]| {
            decide(&end, &ScriptResult::default(), None, "", findings).1
        };
        assert_eq!(
            drop(ScriptEnd::Dropped("EOF".into()), &[]),
            "the SSH session running the entry script was dropped while the guest kept running \
             (did the scenario kill its SSH server or session?): EOF"
        );
        assert_eq!(
            drop(
                ScriptEnd::Lost("EOF".into()),
                &[finding(FindingKind::SshdRestart, SSHD)]
            ),
            format!(
                "lost the guest while the scenario ran: EOF (its SSH server ended during \
                 the scenario: {SSHD})"
            )
        );
    }

    #[test]
    fn a_script_killed_by_a_signal_says_which() {
        let none = ScriptResult::default();
        let (o, reason, _) = decide(&ScriptEnd::Exited(137), &none, None, "", &[]);
        assert_eq!(o, Outcome::Error);
        assert_eq!(reason, "the entry script was killed by signal 9 (SIGKILL)");
        let (_, reason, _) = decide(&ScriptEnd::Exited(143), &none, None, "Terminated\n", &[]);
        assert_eq!(
            reason,
            "the entry script was killed by signal 15 (SIGTERM): Terminated"
        );
        let (_, reason, _) = decide(&ScriptEnd::Exited(128 + 40), &none, None, "", &[]);
        assert_eq!(reason, "the entry script was killed by signal 40");
        for status in [3, 128, 200, 255] {
            let (_, reason, _) = decide(&ScriptEnd::Exited(status), &none, None, "", &[]);
            assert_eq!(
                reason,
                format!("the entry script exited with status {status}")
            );
        }
        assert_eq!(crate::model::signal_number("KILL"), Some(9));
        assert_eq!(crate::model::signal_number("SIGSEGV"), Some(11));
        assert_eq!(crate::model::signal_number("NOPE"), None);
    }

    /// What outranks rejected result lines and what they outrank.
    #[rstest]
    #[case::crash(ScriptEnd::Exited(0), true, &[], Outcome::Crashed, "kernel panic")]
    #[case::crash_over_oom(ScriptEnd::Exited(137), true, &["oom"], Outcome::Crashed, "kernel panic")]
    #[case::timeout(ScriptEnd::TimedOut(60.0), false, &[], Outcome::Timeout, "time limit")]
    #[case::timeout_over_oom(ScriptEnd::TimedOut(60.0), false, &["oom"], Outcome::Timeout, "time limit")]
    #[case::stalled(ScriptEnd::Stalled(300), false, &[], Outcome::Timeout, "no output from the guest for 300 s: console, stdout, stderr and result.jsonl all silent")]
    #[case::crash_over_init(ScriptEnd::Lost("eof".into()), true, &["init"], Outcome::Crashed, "kernel panic: sysrq")]
    #[case::init(ScriptEnd::Lost("eof".into()), false, &["oom", "init"], Outcome::Error, "the guest's init exited: ")]
    #[case::init_over_timeout(ScriptEnd::TimedOut(60.0), false, &["init"], Outcome::Error, "init exited")]
    #[case::lost(ScriptEnd::Lost("eof".into()), false, &[], Outcome::Error, "lost the guest")]
    #[case::sshd(ScriptEnd::Dropped("eof".into()), false, &["sshd"], Outcome::Error, "SSH server ended")]
    #[case::dropped(ScriptEnd::Dropped("eof".into()), false, &[], Outcome::Error, "kept running")]
    #[case::sshd_not_alone(ScriptEnd::Exited(0), false, &["sshd"], Outcome::Error, "result.jsonl line 2:")]
    #[case::cancelled(ScriptEnd::Cancelled, false, &[], Outcome::Cancelled, "interrupted")]
    #[case::oom(ScriptEnd::Exited(137), false, &["oom"], Outcome::Error, "OOM killer")]
    #[case::signal(ScriptEnd::Exited(137), false, &[], Outcome::Error, "signal 9")]
    #[case::status(ScriptEnd::Exited(2), false, &[], Outcome::Error, "status 2")]
    #[case::bad_lines(ScriptEnd::Exited(0), false, &[], Outcome::Error, "result.jsonl line 2:")]
    fn precedence_over_bad_lines(
        #[case] end: ScriptEnd,
        #[case] crashed: bool,
        #[case] console: &[&str],
        #[case] want: Outcome,
        #[case] says: &str,
    ) {
        let script = parse_result(
            "{\"outcome\":\"reproduced\",\"reason\":\"r\"}\n{\"outcome\":\"crashed\"}",
        );
        let crash = finding(FindingKind::Panic, "kernel panic: sysrq triggered crash");
        let warnings: Vec<ConsoleFinding> = console
            .iter()
            .map(|k| match *k {
                "oom" => finding(FindingKind::OomKill, OOM),
                "init" => finding(FindingKind::InitExit, INIT),
                _ => finding(FindingKind::SshdRestart, SSHD),
            })
            .collect();
        let (o, reason, phase) = decide(&end, &script, crashed.then_some(&crash), "", &warnings);
        assert_eq!(o, want, "{reason}");
        assert!(reason.contains(says), "{reason}");
        assert_eq!(phase, Some(Phase::Scenario));
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
        let crash = finding(FindingKind::Panic, "kernel panic: sysrq triggered crash");
        let (o, reason, _) = decide(
            &end,
            &script,
            crashed.then_some(&crash),
            "oops\nlast line\n",
            &[],
        );
        assert_eq!(o, want, "{reason}");
        if matches!(end, ScriptEnd::Exited(2)) {
            assert!(reason.contains("status 2: last line"), "{reason}");
        }
    }
}
