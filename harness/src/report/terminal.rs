//! The terminal reporter: indicatif progress while a run goes on, one
//! human line per finished cell. On a non-terminal (CI logs) it prints
//! plain lines instead of bars.

use crate::model::Attempt;
use crate::model::{Event, EventSink};
use crate::report::describe::{rate_short, rule_text};
use crate::report::stale::stale_rules;
use crate::report::{describe, symbols};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

/// Renders events on stderr (progress) and stdout (result lines).
pub struct TerminalReporter {
    mp: MultiProgress,
    tty: bool,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Default for TerminalReporter {
    fn default() -> Self {
        Self::new()
    }
}

/// A progress style from a template written in this file (a bad one
/// falls back to the default style rather than stopping the run).
fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl TerminalReporter {
    fn bars(&self) -> std::sync::MutexGuard<'_, HashMap<String, ProgressBar>> {
        self.bars.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn new() -> TerminalReporter {
        let tty = std::io::stderr().is_terminal();
        let mp = MultiProgress::with_draw_target(if tty {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        TerminalReporter {
            mp,
            tty,
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, s: &str) {
        if self.tty {
            let _ = self.mp.println(s);
        } else {
            println!("{s}");
        }
    }

    fn note(&self, s: &str) {
        if self.tty {
            let _ = self.mp.println(s);
        } else {
            eprintln!("{s}");
        }
    }

    fn bar(&self, key: &str, make: impl FnOnce() -> ProgressBar) -> ProgressBar {
        let mut bars = self.bars();
        bars.entry(key.to_string())
            .or_insert_with(|| self.mp.add(make()))
            .clone()
    }

    fn finish_bar(&self, key: &str) {
        if let Some(b) = self.bars().remove(key) {
            b.finish_and_clear();
            self.mp.remove(&b);
        }
    }
}

/// The one-line summary of a finished attempt.
pub fn attempt_line(id: &str, a: &Attempt, key_metric: Option<&str>) -> String {
    let symbol = symbols::outcome_symbol(a.outcome, symbols::Glyphs::Terminal);
    let metric = key_metric
        .and_then(|k| a.metrics.get(k).map(|m| (k, m)))
        .map(|(k, m)| {
            let v = match &m.value {
                serde_json::Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            format!(
                " {k}={v}{}",
                if m.unit.is_empty() {
                    String::new()
                } else {
                    format!(" {}", m.unit)
                }
            )
        })
        .unwrap_or_default();
    let mut reason = a.reason.lines().next().unwrap_or("").to_string();
    if reason.chars().count() > 110 {
        reason = reason.chars().take(107).collect::<String>() + "...";
    }
    format!(
        "{symbol} {id}  {}{metric}  [boot {:.1} s, scenario {:.1} s, total {:.1} s]  {reason}",
        a.outcome, a.timings.boot, a.timings.scenario, a.timings.total
    )
}

/// Lines of an attempt's excerpt shown in the terminal, from the finding's
/// own line on; the whole excerpt is in the reports and the log.
const EXCERPT_LINES: usize = 8;

/// The attempt's kernel-log warnings, for under its line: per warning its
/// kind and title, the head of its excerpt, and the log that has the rest.
pub fn attempt_warnings(a: &Attempt) -> Vec<String> {
    let mut out = vec![];
    for f in &a.warnings {
        out.push(format!("  ! {}", describe::finding_line(f)));
        let lines: Vec<&str> = f.excerpt.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.contains(f.title.as_str()))
            .map_or(0, |i| i + 1);
        out.extend(
            lines[at.min(lines.len())..]
                .iter()
                .take(EXCERPT_LINES)
                .map(|l| format!("    | {l}")),
        );
        out.push(format!("    (excerpt in {})", describe::finding_log(a, f)));
    }
    out
}

impl EventSink for TerminalReporter {
    fn event(&self, event: &Event) {
        match event {
            Event::RunStarted { run_id, dir, cells } => {
                self.note(&format!(
                    "repro run {run_id}: {cells} cell(s); results in {}",
                    dir.display()
                ));
                if *cells > 1 {
                    let b = self.bar("overall", || {
                        let b = ProgressBar::new(*cells as u64);
                        b.set_style(style("cells {pos}/{len} {bar:30} {elapsed}"));
                        b
                    });
                    b.tick();
                }
            }
            Event::CellFinished {
                id,
                status,
                done,
                total,
            } => {
                if let Some(b) = self.bars().get("overall") {
                    b.set_position(*done as u64);
                }
                if !self.tty {
                    eprintln!("[{done}/{total}] {id}: {}", status.as_str());
                }
            }
            Event::Notice(n) => self.note(&n.to_string()),
            Event::Download { what, done, total } => {
                let b = self.bar(&format!("dl:{what}"), || {
                    let b = ProgressBar::new(*total);
                    b.set_style(style(
                        "{msg:40!} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}",
                    ));
                    b.set_message(what.clone());
                    b
                });
                if *total > 0 {
                    b.set_length(*total);
                }
                b.set_position(*done);
            }
            Event::DownloadFinished { what } => {
                self.finish_bar(&format!("dl:{what}"));
                if !self.tty {
                    eprintln!("downloaded {what}");
                }
            }
            Event::CellStarted { id } => {
                let b = self.bar(id, || {
                    let b = ProgressBar::new_spinner();
                    b.set_style(style("{spinner} {prefix} {msg} ({elapsed})"));
                    b.set_prefix(id.clone());
                    b.enable_steady_tick(Duration::from_millis(200));
                    b
                });
                b.set_message("starting");
            }
            Event::Phase { id, phase, detail } => {
                if let Some(b) = self.bars().get(id) {
                    b.set_message(format!("{}: {detail}", phase.as_str()));
                }
                if !self.tty {
                    eprintln!("{id}: {} ({detail})", phase.as_str());
                }
            }
            Event::AttemptFinished {
                id,
                attempt,
                key_metric,
            } => {
                self.finish_bar(id);
                self.line(&attempt_line(id, attempt, key_metric.as_deref()));
                for l in attempt_warnings(attempt) {
                    self.line(&l);
                }
            }
            Event::RunFinished { dir, interrupted } => {
                self.finish_bar("overall");
                if *interrupted {
                    self.note(&format!(
                        "interrupted: partial results written to {}",
                        dir.display()
                    ));
                } else {
                    self.note(&format!("results: {}", dir.join("summary.json").display()));
                }
            }
        }
    }
}

/// The end-of-run table: one row per cell with status, outcome, attempts,
/// reproduction rate (cells with repeats) and key metric, the rule behind
/// an expectation when it says why; then unexpected passes and stale
/// rules with their edits.
pub fn summary_table(s: &crate::report::RunSummary) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let width = s
        .cells
        .iter()
        .map(|c| c.id().len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        out,
        "\n{:<width$}  {:<9} {:<15} {:>8}  {:<16}  key metric",
        "cell", "status", "outcome", "attempts", "rate [95% CI]"
    );
    for c in &s.cells {
        let metric = c
            .key_metric
            .as_deref()
            .and_then(|k| {
                c.attempts
                    .iter()
                    .rev()
                    .find_map(|a| a.metrics.get(k).map(|m| (k, m)))
            })
            .map(|(k, m)| {
                let v = match &m.value {
                    serde_json::Value::String(s) => s.clone(),
                    v => v.to_string(),
                };
                format!("{k}={v} {}", m.unit)
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<width$}  {:<9} {:<15} {:>8}  {:<16}  {}",
            c.id(),
            c.status().as_str(),
            c.outcome().as_str(),
            c.attempts.len(),
            rate_short(c).unwrap_or_else(|| "-".into()),
            metric.trim()
        );
        if let Some(r) = rule_text(c) {
            let _ = writeln!(out, "    {r}");
        }
    }
    for r in stale_rules(s) {
        let _ = writeln!(out, "{}", r.line());
    }
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for c in &s.cells {
        *counts.entry(c.status().as_str()).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let _ = writeln!(out, "{} cell(s): {}", s.cells.len(), parts.join(", "));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Outcome;
    use crate::report::summary::tests::attempt;

    #[test]
    fn table_lists_cells_with_status() {
        let mut s = crate::report::summary::tests::summary();
        let t = summary_table(&s);
        assert!(
            t.contains("memcg-fill/kernel=6.1/cgroup=v1  passed    reproduced"),
            "{t}"
        );
        assert!(t.contains("1  -                 created="), "{t}");
        assert!(t.contains("created=65533 cgroups"), "{t}");
        assert!(t.contains("1 cell(s): 1 passed"), "{t}");
        s.cells[0].attempts = vec![
            attempt(Outcome::Reproduced),
            attempt(Outcome::NotReproduced),
            attempt(Outcome::NotReproduced),
        ];
        s.cells[0].rule = Some(crate::model::RuleSource {
            at: "m.toml:3".into(),
            fixed_by: Some("v6.7".into()),
            ..Default::default()
        });
        let t = summary_table(&s);
        assert!(t.contains("3  33% [6–79%]       created="), "{t}");
        assert!(
            t.contains("\n    expect reproduced: m.toml:3 (fixed by v6.7)\n"),
            "{t}"
        );
    }

    #[test]
    fn warnings_show_title_excerpt_and_log() {
        let mut a = attempt(Outcome::Reproduced);
        assert!(attempt_warnings(&a).is_empty());
        a.artifacts.dmesg = Some("c/attempt-1/dmesg.log".into());
        a.warnings = vec![crate::report::fixtures::warning()];
        assert_eq!(
            attempt_warnings(&a),
            [
                "  ! warning: WARNING: CPU: 0 PID: 151 at mm/memcontrol.c:7129 <mem_cgroup>+0x1/0x2",
                "    | Modules linked in: fuse",
                "    | Call Trace:",
                "    |  <TASK>",
                "    (excerpt in c/attempt-1/dmesg.log)",
            ]
        );
    }

    #[test]
    fn line_has_outcome_metric_and_timings() {
        let a = attempt(Outcome::Reproduced);
        let l = attempt_line("memcg-fill/kernel=6.1/cgroup=v1", &a, Some("created"));
        assert!(
            l.starts_with("● memcg-fill/kernel=6.1/cgroup=v1  reproduced created=65533 cgroups"),
            "{l}"
        );
        assert!(l.contains("boot 2.0 s, scenario 3.0 s, total 5.2 s"), "{l}");
    }
}
