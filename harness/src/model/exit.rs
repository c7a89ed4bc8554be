//! The exit statuses of the `repro` binary, typed once: what each code
//! means ([`HELP`], the table `repro --help` and README.md show) and how a
//! run's record turns into one ([`ExitStatus::of_run`]). Which error means
//! which status is decided beside each error type (`RunError::exit_status`
//! and the like); the binary only maps. Pure.

use super::record::{RunSummary, Status};

/// How `repro` ends. The order is the precedence when several apply: a
/// later variant wins (`max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExitStatus {
    /// 0: the command did what it was asked.
    Success,
    /// 1: a cell failed its expectation (status `failed` or `flaky`) where
    /// expectations are enforced, or `repro compare` found a regression.
    Failed,
    /// 2: bad input, refused before anything ran: flags, unknown names,
    /// malformed files.
    BadInput,
    /// 3: infrastructure: a cell ended in `error`, or the harness failed
    /// after it started (results folder, image build, download).
    Infrastructure,
    /// 130: interrupted by a signal; partial results are written.
    Interrupted,
}

/// Whether a run's cells failing their expectation fail the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expectations {
    /// `repro matrix`, `repro run --fail-on-flaky`: a `failed` or `flaky`
    /// cell exits 1.
    Enforced,
    /// `repro run`: cells are recorded; their status does not change the
    /// exit code (an `error` still does).
    Recorded,
}

/// The exit-code table, as `repro --help` prints it and README.md quotes
/// it (a test keeps the two identical).
pub const HELP: &str = "\
Exit status:
  0    success; for matrix (and run --fail-on-flaky) every cell also met
       its expectation
  1    a cell failed its expectation (status failed or flaky): always for
       matrix, for run only with --fail-on-flaky (run's cells expect `any`,
       so they fail only when their attempts disagree); compare: a regression
  2    bad input, refused before anything ran: a bad flag, an unknown
       scenario, kernel, root filesystem, kubelet or matrix profile, a bad
       --param, malformed TOML, no cells left by --filter/--shard, a missing
       or unreadable summary.json
  3    infrastructure: a cell of run or matrix ended in `error` (download,
       image, QEMU, SSH, a script that broke its contract), or the harness
       failed after it started (results folder, image build, download)
  130  interrupted (Ctrl-C, SIGTERM, SIGHUP): partial results are written;
       a second signal exits at once with 128 + its number
When several apply, the highest wins: 130, then 3, then 1.";

impl ExitStatus {
    /// The process exit code.
    pub const fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failed => 1,
            ExitStatus::BadInput => 2,
            ExitStatus::Infrastructure => 3,
            ExitStatus::Interrupted => 130,
        }
    }

    /// What one cell's status means for the exit code.
    pub fn of_cell(status: Status, expectations: Expectations) -> ExitStatus {
        match status {
            Status::Passed => ExitStatus::Success,
            Status::Failed | Status::Flaky => match expectations {
                Expectations::Enforced => ExitStatus::Failed,
                Expectations::Recorded => ExitStatus::Success,
            },
            Status::Error => ExitStatus::Infrastructure,
            Status::Cancelled => ExitStatus::Interrupted,
        }
    }

    /// The exit status of a finished (or interrupted) run: interrupted
    /// when the summary is not complete, else the worst of its cells.
    pub fn of_run(summary: &RunSummary, expectations: Expectations) -> ExitStatus {
        let cells = summary
            .cells
            .iter()
            .map(|c| ExitStatus::of_cell(c.status(), expectations))
            .max()
            .unwrap_or(ExitStatus::Success);
        if summary.complete {
            cells
        } else {
            cells.max(ExitStatus::Interrupted)
        }
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(s: ExitStatus) -> Self {
        std::process::ExitCode::from(s.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Expect, Outcome};
    use crate::report::fixtures::{cell, mixed};
    use rstest::rstest;
    use Outcome::*;

    /// A complete run of one cell per (expectation, attempts).
    fn run(cells: &[(Expect, &[Outcome])]) -> RunSummary {
        let mut s = mixed();
        s.cells = cells
            .iter()
            .enumerate()
            .map(|(i, (e, o))| cell("memcg-fill", &format!("6.{i}"), "v2", *e, o, 1))
            .collect();
        s
    }

    #[test]
    fn codes_are_distinct_and_the_help_names_each() {
        use ExitStatus::*;
        let all = [Success, Failed, BadInput, Infrastructure, Interrupted];
        let codes: std::collections::BTreeSet<u8> = all.iter().map(|s| s.code()).collect();
        assert_eq!(codes.len(), all.len());
        assert_eq!(
            all.map(ExitStatus::code),
            [0, 1, 2, 3, 130],
            "the codes are documented; change them only with README.md and ci/"
        );
        for c in codes {
            assert!(
                HELP.contains(&format!("\n  {c:<4} ")),
                "{c} missing:\n{HELP}"
            );
        }
        assert!(HELP.lines().all(|l| l.chars().count() <= 80), "{HELP}");
    }

    #[rstest]
    #[case::nothing_to_judge(vec![], ExitStatus::Success, ExitStatus::Success)]
    #[case::all_passed(
        vec![(Expect::Reproduced, vec![Reproduced]), (Expect::Any, vec![Crashed])],
        ExitStatus::Success,
        ExitStatus::Success
    )]
    #[case::a_failed_cell(
        vec![(Expect::Reproduced, vec![Reproduced]), (Expect::Reproduced, vec![NotReproduced])],
        ExitStatus::Failed,
        ExitStatus::Success
    )]
    #[case::a_flaky_cell(
        vec![(Expect::NotReproduced, vec![NotReproduced, Reproduced])],
        ExitStatus::Failed,
        ExitStatus::Success
    )]
    #[case::a_flaky_cell_that_expects_any(
        vec![(Expect::Any, vec![NotReproduced, Reproduced])],
        ExitStatus::Failed,
        ExitStatus::Success
    )]
    #[case::an_error_cell(
        vec![(Expect::Any, vec![Reproduced]), (Expect::Any, vec![Error])],
        ExitStatus::Infrastructure,
        ExitStatus::Infrastructure
    )]
    #[case::an_error_beats_a_failure(
        vec![(Expect::Reproduced, vec![NotReproduced]), (Expect::Reproduced, vec![Error, Error])],
        ExitStatus::Infrastructure,
        ExitStatus::Infrastructure
    )]
    #[case::an_error_then_a_verdict_is_judged(
        vec![(Expect::Reproduced, vec![Error, Reproduced])],
        ExitStatus::Success,
        ExitStatus::Success
    )]
    fn a_complete_run_exits_with_its_worst_cell(
        #[case] cells: Vec<(Expect, Vec<Outcome>)>,
        #[case] enforced: ExitStatus,
        #[case] recorded: ExitStatus,
    ) {
        let cells: Vec<(Expect, &[Outcome])> = cells.iter().map(|(e, o)| (*e, &o[..])).collect();
        let s = run(&cells);
        assert_eq!(ExitStatus::of_run(&s, Expectations::Enforced), enforced);
        assert_eq!(ExitStatus::of_run(&s, Expectations::Recorded), recorded);
    }

    #[rstest]
    #[case(Expectations::Enforced)]
    #[case(Expectations::Recorded)]
    fn an_interrupted_run_exits_130_whatever_its_cells(#[case] e: Expectations) {
        let mut s = run(&[
            (Expect::Reproduced, &[NotReproduced]),
            (Expect::Any, &[Error]),
            (Expect::Any, &[Cancelled]),
        ]);
        assert_eq!(ExitStatus::of_run(&s, e), ExitStatus::Interrupted);
        s.cells.truncate(2);
        s.complete = false;
        assert_eq!(ExitStatus::of_run(&s, e), ExitStatus::Interrupted);
        s.cells.clear();
        assert_eq!(ExitStatus::of_run(&s, e), ExitStatus::Interrupted);
    }

    #[test]
    fn the_fixture_run_with_every_status_is_an_infrastructure_error() {
        let s = mixed();
        assert_eq!(
            ExitStatus::of_run(&s, Expectations::Enforced),
            ExitStatus::Infrastructure
        );
    }
}
