//! The one table of outcome and status symbols (and the HTML status
//! classes) every report uses, with the legend that explains them.
//!
//! Each medium gets the glyphs it can show: Markdown viewers have colour
//! emoji; the HTML page uses symbols common text fonts have (DejaVu,
//! Liberation, the system UI fonts; `U+FE0E` asks for text presentation),
//! because a browser without an emoji font would show empty boxes; a
//! terminal line uses narrow symbols.

use super::{CellRecord, Expect, Status};
use crate::model::Outcome;

/// Which set of glyphs a renderer draws with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Glyphs {
    /// Colour emoji (`summary.md`, comparisons).
    Emoji,
    /// Symbols of common text fonts (`report.html`).
    Text,
    /// Narrow symbols for terminal lines. Terminals show no status
    /// symbols today; statuses use the [`Glyphs::Text`] ones.
    Terminal,
}

/// One outcome's row of the table.
struct OutcomeRow {
    /// `[emoji, text, terminal]`.
    glyphs: [&'static str; 3],
    /// Its name in the legend.
    legend: &'static str,
}

fn outcome_row(o: Outcome) -> OutcomeRow {
    let (glyphs, legend) = match o {
        Outcome::Reproduced => (["●", "●", "●"], "reproduced"),
        Outcome::NotReproduced => (["○", "○", "○"], "not reproduced"),
        Outcome::Skipped => (["–", "–", "-"], "skipped"),
        Outcome::Crashed => (["💥", "☠\u{fe0e}", "✗"], "crashed"),
        Outcome::Timeout => (["⏱", "◷", "⧗"], "timeout"),
        Outcome::Error => (["🛠", "⚙\u{fe0e}", "!"], "error"),
        Outcome::Cancelled => (["×", "×", "×"], "cancelled"),
    };
    OutcomeRow { glyphs, legend }
}

/// One status's row of the table.
struct StatusRow {
    /// `[emoji, text]`.
    glyphs: [&'static str; 2],
    /// The HTML class colouring a cell with this status.
    class: &'static str,
    /// Its meaning as a marker in the legend; `None`: never a marker (the
    /// outcome symbol says it).
    legend: Option<&'static str>,
}

fn status_row(s: Status) -> StatusRow {
    let (glyphs, class, legend) = match s {
        Status::Passed => (["✅", "✔\u{fe0e}"], "st-passed", Some("as expected")),
        Status::Failed => (["❌", "✘"], "st-failed", Some("not as expected")),
        Status::Flaky => (
            ["⚠️", "⚠\u{fe0e}"],
            "st-flaky",
            Some("flaky (attempts disagree)"),
        ),
        Status::Error => (["🛠", "⚙\u{fe0e}"], "st-error", None),
        Status::Cancelled => (["×", "×"], "st-cancelled", None),
    };
    StatusRow {
        glyphs,
        class,
        legend,
    }
}

/// Legend order.
const OUTCOMES: [Outcome; 7] = [
    Outcome::Reproduced,
    Outcome::NotReproduced,
    Outcome::Skipped,
    Outcome::Crashed,
    Outcome::Timeout,
    Outcome::Error,
    Outcome::Cancelled,
];

/// Legend order (and the order of counts).
pub const STATUSES: [Status; 5] = [
    Status::Passed,
    Status::Failed,
    Status::Flaky,
    Status::Error,
    Status::Cancelled,
];

/// The HTML class of a passed cell that had nothing to be judged against
/// (`expect = any`).
const RECORDED_CLASS: &str = "st-recorded";

/// The symbol of an outcome.
pub fn outcome_symbol(o: Outcome, g: Glyphs) -> &'static str {
    let row = outcome_row(o);
    match g {
        Glyphs::Emoji => row.glyphs[0],
        Glyphs::Text => row.glyphs[1],
        Glyphs::Terminal => row.glyphs[2],
    }
}

/// The symbol of a status, in counts and lists.
pub fn status_symbol(s: Status, g: Glyphs) -> &'static str {
    let row = status_row(s);
    match g {
        Glyphs::Emoji => row.glyphs[0],
        Glyphs::Text | Glyphs::Terminal => row.glyphs[1],
    }
}

/// The marker beside a cell's outcome, relative to its expectation: as
/// expected, failed or flaky. Error and cancelled cells carry none (their
/// outcome symbol already says it), and a passed `expect = any` cell
/// carries none unless its attempts disagree (then the flaky marker:
/// nothing was judged, but the reader should know).
pub fn marker(c: &CellRecord, g: Glyphs) -> &'static str {
    match c.status() {
        Status::Passed if c.expect == Expect::Any && !c.is_flaky() => "",
        Status::Passed if c.expect == Expect::Any => status_symbol(Status::Flaky, g),
        Status::Error | Status::Cancelled => "",
        st => status_symbol(st, g),
    }
}

/// The HTML class that colours a cell by status (`st-passed`, …;
/// `st-recorded` for a passed cell without expectation).
pub fn css_class(c: &CellRecord) -> &'static str {
    match c.status() {
        Status::Passed if c.expect == Expect::Any => RECORDED_CLASS,
        st => status_row(st).class,
    }
}

/// The legend of the symbols: every outcome, then the markers, then
/// attempt fractions.
pub fn legend(g: Glyphs) -> String {
    let outcomes = OUTCOMES
        .iter()
        .map(|o| format!("{} {}", outcome_symbol(*o, g), outcome_row(*o).legend));
    let markers = STATUSES.iter().filter_map(|s| {
        status_row(*s)
            .legend
            .map(|l| format!("{} {l}", status_symbol(*s, g)))
    });
    outcomes
        .chain(markers)
        .chain(["n/m: attempts with that outcome".to_string()])
        .collect::<Vec<_>>()
        .join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::cell;
    use rstest::rstest;

    #[test]
    fn classes_are_named_after_statuses() {
        for s in STATUSES {
            assert_eq!(status_row(s).class, format!("st-{}", s.as_str()));
        }
    }

    #[test]
    fn legends_name_every_symbol() {
        assert_eq!(
            legend(Glyphs::Emoji),
            "● reproduced · ○ not reproduced · – skipped · 💥 crashed · \
             ⏱ timeout · 🛠 error · × cancelled · ✅ as expected · ❌ not as expected · \
             ⚠️ flaky (attempts disagree) · n/m: attempts with that outcome"
        );
        assert_eq!(
            legend(Glyphs::Text),
            "● reproduced · ○ not reproduced · – skipped · ☠\u{fe0e} crashed · \
             ◷ timeout · ⚙\u{fe0e} error · × cancelled · ✔\u{fe0e} as expected · \
             ✘ not as expected · ⚠\u{fe0e} flaky (attempts disagree) · \
             n/m: attempts with that outcome"
        );
    }

    #[rstest]
    #[case(Expect::Reproduced, &[Outcome::Reproduced], "✅", "st-passed")]
    #[case(Expect::Reproduced, &[Outcome::NotReproduced], "❌", "st-failed")]
    #[case(Expect::Reproduced, &[Outcome::Reproduced, Outcome::NotReproduced], "⚠️", "st-flaky")]
    #[case(Expect::Any, &[Outcome::Reproduced], "", "st-recorded")]
    #[case(Expect::Any, &[Outcome::Reproduced, Outcome::NotReproduced], "⚠️", "st-flaky")]
    #[case(Expect::Reproduced, &[Outcome::Error], "", "st-error")]
    #[case(Expect::Reproduced, &[Outcome::Cancelled], "", "st-cancelled")]
    fn markers_are_relative_to_expect(
        #[case] expect: Expect,
        #[case] outcomes: &[Outcome],
        #[case] want: &str,
        #[case] class: &str,
    ) {
        let c = cell("s", "6.1", "v1", expect, outcomes, 1);
        assert_eq!(marker(&c, Glyphs::Emoji), want);
        assert_eq!(css_class(&c), class);
    }
}
