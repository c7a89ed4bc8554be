//! The result-line contract: the JSON lines a scenario appends to
//! `$REPRO_RESULT` (see `scenarios/README.md`), typed once.
//!
//! Two crates compile this file: the harness (`repro::result_line`) parses
//! the lines, and the guest helper `repro-kit` (through `#[path]`) writes
//! them, so the writer and the reader cannot drift apart. It depends on
//! nothing but `serde` and `serde_json`.

use serde::{Serialize, Serializer};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

/// A verdict a scenario script may write. The harness's own outcomes
/// (error, timeout, crashed, cancelled) are deliberately absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The failure signature was observed.
    Reproduced,
    /// The scenario ran fully and the signature was not observed.
    NotReproduced,
    /// A requirement is missing; the reason says which.
    Skipped,
}

impl Verdict {
    /// Every verdict, in the order the contract lists them.
    pub const ALL: [Verdict; 3] = [
        Verdict::Reproduced,
        Verdict::NotReproduced,
        Verdict::Skipped,
    ];

    /// The harness's own outcomes: a script that writes one breaks the
    /// contract ([`LineError::ReservedOutcome`]).
    pub const RESERVED: [&'static str; 4] = ["error", "timeout", "crashed", "cancelled"];

    /// The spelling in a result line.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Reproduced => "reproduced",
            Verdict::NotReproduced => "not-reproduced",
            Verdict::Skipped => "skipped",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Verdict {
    type Err = LineError;

    fn from_str(s: &str) -> Result<Verdict, LineError> {
        if let Some(v) = Verdict::ALL.into_iter().find(|v| v.as_str() == s) {
            Ok(v)
        } else if Verdict::RESERVED.contains(&s) {
            Err(LineError::ReservedOutcome(s.to_string()))
        } else {
            Err(LineError::UnknownVerdict(s.to_string()))
        }
    }
}

/// One line of `$REPRO_RESULT`. Serializes to exactly the line the contract
/// shows (keys in this order; absent units left out).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ResultLine {
    /// `{"metric":NAME,"value":NUMBER|STRING,"unit":UNIT}`; `unit` optional.
    Metric {
        metric: String,
        value: Value,
        #[serde(skip_serializing_if = "Option::is_none")]
        unit: Option<String>,
    },
    /// `{"series":NAME,"x":X,"y":Y,"x_unit":U,"y_unit":U}`: one point of a
    /// named curve; units optional when reading.
    Series {
        series: String,
        #[serde(serialize_with = "compact_number")]
        x: f64,
        #[serde(serialize_with = "compact_number")]
        y: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        x_unit: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        y_unit: Option<String>,
    },
    /// `{"outcome":VERDICT,"reason":TEXT}`; the last one written wins.
    Outcome { outcome: Verdict, reason: String },
    /// `{"log":TEXT}`: free text.
    Log { log: String },
}

impl ResultLine {
    /// A metric; an empty `unit` counts as none.
    pub fn metric(name: &str, value: Value, unit: Option<&str>) -> ResultLine {
        ResultLine::Metric {
            metric: name.to_string(),
            value,
            unit: unit.filter(|u| !u.is_empty()).map(str::to_string),
        }
    }

    /// One point of the series `name`.
    pub fn series(name: &str, x: f64, y: f64, x_unit: &str, y_unit: &str) -> ResultLine {
        ResultLine::Series {
            series: name.to_string(),
            x,
            y,
            x_unit: Some(x_unit.to_string()),
            y_unit: Some(y_unit.to_string()),
        }
    }

    /// The scenario's verdict with its reason.
    pub fn outcome(verdict: Verdict, reason: &str) -> ResultLine {
        ResultLine::Outcome {
            outcome: verdict,
            reason: reason.to_string(),
        }
    }

    /// A free-text log line.
    pub fn log(text: &str) -> ResultLine {
        ResultLine::Log {
            log: text.to_string(),
        }
    }

    /// The line as written to `$REPRO_RESULT` (one line: JSON escapes
    /// newlines inside strings), without the trailing newline.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

/// Parses one result line. The kind is the first of `metric`, `series`,
/// `outcome`, `log` whose value is a string; unknown extra keys are ignored.
pub fn parse(line: &str) -> Result<ResultLine, LineError> {
    let v: Value = serde_json::from_str(line).map_err(|e| {
        if e.is_eof() {
            LineError::Truncated
        } else {
            // The line is one line: say the column, not "line 1".
            let full = e.to_string();
            let at = format!(" at line {} column {}", e.line(), e.column());
            let what = full.strip_suffix(&at).unwrap_or(&full);
            LineError::NotJson(format!("{what} at column {}", e.column()))
        }
    })?;
    let Value::Object(o) = &v else {
        return Err(LineError::NotAnObject);
    };
    let s = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
    if let Some(metric) = s("metric") {
        let value = o
            .get("value")
            .cloned()
            .ok_or(LineError::MetricWithoutValue)?;
        Ok(ResultLine::Metric {
            metric,
            value,
            unit: s("unit"),
        })
    } else if let Some(series) = s("series") {
        let coord = |axis: &'static str| {
            o.get(axis)
                .and_then(Value::as_f64)
                .ok_or(LineError::NonNumericPoint { axis })
        };
        Ok(ResultLine::Series {
            series,
            x: coord("x")?,
            y: coord("y")?,
            x_unit: s("x_unit"),
            y_unit: s("y_unit"),
        })
    } else if let Some(outcome) = s("outcome") {
        Ok(ResultLine::Outcome {
            outcome: outcome.parse()?,
            reason: s("reason").unwrap_or_default(),
        })
    } else if let Some(log) = s("log") {
        Ok(ResultLine::Log { log })
    } else {
        Err(LineError::NoKind)
    }
}

/// Why a line is not a valid result line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// Not UTF-8 text: the first bad byte is at this 1-based byte column.
    NotUtf8 { column: usize },
    /// Not JSON at all (the parser's message).
    NotJson(String),
    /// JSON cut off before its end (a record written halfway).
    Truncated,
    /// JSON, but not an object.
    NotAnObject,
    /// No string-valued `metric`, `series`, `outcome` or `log` key.
    NoKind,
    /// A metric line without a `value`.
    MetricWithoutValue,
    /// A series point whose `x` or `y` is missing or not a number.
    NonNumericPoint { axis: &'static str },
    /// An outcome that is not a script verdict (the string written).
    UnknownVerdict(String),
    /// One of the harness's own outcomes ([`Verdict::RESERVED`]).
    ReservedOutcome(String),
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::NotUtf8 { column } => {
                write!(f, "not UTF-8 text (invalid byte at column {column})")
            }
            LineError::NotJson(e) => write!(f, "not JSON: {e}"),
            LineError::Truncated => f.write_str("truncated JSON (the line ends inside a record)"),
            LineError::NotAnObject => f.write_str("not a JSON object"),
            LineError::NoKind => {
                f.write_str("no string-valued \"metric\", \"series\", \"outcome\" or \"log\" key")
            }
            LineError::MetricWithoutValue => f.write_str("a metric line needs a \"value\""),
            LineError::NonNumericPoint { axis } => {
                write!(f, "a series point needs a number as \"{axis}\"")
            }
            LineError::UnknownVerdict(s) => {
                let all: Vec<&str> = Verdict::ALL.iter().map(|v| v.as_str()).collect();
                write!(
                    f,
                    "outcome must be one of {} (error/timeout/crashed belong to the harness), got {s:?}",
                    all.join("|")
                )
            }
            LineError::ReservedOutcome(s) => {
                write!(f, "outcome `{s}` is reserved for the harness")
            }
        }
    }
}

impl std::error::Error for LineError {}

/// Serializes an `f64` the way shell scripts expect numbers: integral values
/// as integers (`3`, not `3.0`), others as the shortest round-trip text,
/// NaN and infinities as `null`.
pub fn compact_number<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
    let x = *x;
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e15 {
        s.serialize_i64(x as i64)
    } else if x.is_finite() {
        s.serialize_f64(x)
    } else {
        s.serialize_unit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(l: &ResultLine) -> String {
        l.to_json().expect("result lines serialize")
    }

    #[test]
    fn lines_are_written_as_the_contract_shows() {
        assert_eq!(
            json(&ResultLine::metric(
                "created",
                Value::from(65533),
                Some("cgroups")
            )),
            r#"{"metric":"created","value":65533,"unit":"cgroups"}"#
        );
        assert_eq!(
            json(&ResultLine::metric("v", Value::from("1.9"), Some(""))),
            r#"{"metric":"v","value":"1.9"}"#
        );
        assert_eq!(
            json(&ResultLine::series(
                "memory_stat_median_ms",
                1000.0,
                0.31,
                "dying memcgs",
                "ms"
            )),
            r#"{"series":"memory_stat_median_ms","x":1000,"y":0.31,"x_unit":"dying memcgs","y_unit":"ms"}"#
        );
        assert_eq!(
            json(&ResultLine::outcome(Verdict::Skipped, "no \"memory\"")),
            r#"{"outcome":"skipped","reason":"no \"memory\""}"#
        );
        assert_eq!(json(&ResultLine::log("a\nb")), r#"{"log":"a\nb"}"#);
    }

    #[test]
    fn what_is_written_parses_back() {
        for l in [
            ResultLine::metric("m", Value::from(-1.5), Some("ms")),
            ResultLine::metric("s", Value::from("x\ty\u{1}é"), None),
            ResultLine::series("lat", 0.0, 2.5e-7, "", "ms"),
            ResultLine::outcome(Verdict::NotReproduced, ""),
            ResultLine::log(""),
        ] {
            let text = json(&l);
            assert!(!text.contains('\n'), "{text}");
            assert_eq!(parse(&text), Ok(l), "{text}");
        }
    }

    #[test]
    fn verdicts_spell_as_the_contract() {
        let all: Vec<&str> = Verdict::ALL.iter().map(|v| v.as_str()).collect();
        assert_eq!(all, ["reproduced", "not-reproduced", "skipped"]);
        for v in Verdict::ALL {
            assert_eq!(v.as_str().parse::<Verdict>(), Ok(v));
            assert_eq!(
                serde_json::to_value(v).expect("serializes"),
                Value::from(v.as_str())
            );
        }
        for harness_own in Verdict::RESERVED {
            assert_eq!(
                harness_own.parse::<Verdict>(),
                Err(LineError::ReservedOutcome(harness_own.into()))
            );
        }
        assert_eq!(
            "Reproduced".parse::<Verdict>(),
            Err(LineError::UnknownVerdict("Reproduced".into()))
        );
    }

    #[test]
    fn reading_is_lenient_where_the_harness_always_was() {
        // Units and reasons may be missing; extra keys are ignored; the first
        // string-valued kind key decides.
        assert_eq!(
            parse(r#"{"series":"s","x":1,"y":2,"extra":true}"#),
            Ok(ResultLine::Series {
                series: "s".into(),
                x: 1.0,
                y: 2.0,
                x_unit: None,
                y_unit: None
            })
        );
        assert_eq!(
            parse(r#"{"outcome":"reproduced"}"#),
            Ok(ResultLine::outcome(Verdict::Reproduced, ""))
        );
        assert_eq!(parse(r#"{"metric":1,"log":"x"}"#), Ok(ResultLine::log("x")));
        assert_eq!(
            parse(r#"{"metric":"m","value":null}"#),
            Ok(ResultLine::metric("m", Value::Null, None))
        );
    }

    #[test]
    fn rejections_say_why() {
        assert_eq!(
            parse("not json"),
            Err(LineError::NotJson("expected ident at column 2".into())),
            "the column, not \"line 1\" of a one-line text"
        );
        assert_eq!(
            parse(r#"{"log":"x"} trailing"#).unwrap_err().to_string(),
            "not JSON: trailing characters at column 13"
        );
        assert_eq!(parse("[1]"), Err(LineError::NotAnObject));
        assert_eq!(parse(r#"{"value":1}"#), Err(LineError::NoKind));
        assert_eq!(
            parse(r#"{"metric":"m"}"#),
            Err(LineError::MetricWithoutValue)
        );
        assert_eq!(
            parse(r#"{"series":"s","x":1,"y":"2"}"#),
            Err(LineError::NonNumericPoint { axis: "y" })
        );
        assert_eq!(
            parse(r#"{"metric":"m","val"#),
            Err(LineError::Truncated),
            "cut off"
        );
        let e = parse(r#"{"outcome":"crashed","reason":"x"}"#).unwrap_err();
        assert_eq!(e, LineError::ReservedOutcome("crashed".into()));
        assert_eq!(
            e.to_string(),
            "outcome `crashed` is reserved for the harness"
        );
        let e = parse(r#"{"outcome":"maybe"}"#).unwrap_err();
        assert_eq!(e, LineError::UnknownVerdict("maybe".into()));
        assert_eq!(
            e.to_string(),
            "outcome must be one of reproduced|not-reproduced|skipped \
             (error/timeout/crashed belong to the harness), got \"maybe\""
        );
    }

    #[test]
    fn numbers_are_compact() {
        let n = |x: f64| {
            let mut out = Vec::new();
            compact_number(&x, &mut serde_json::Serializer::new(&mut out)).expect("serializes");
            String::from_utf8(out).expect("utf-8")
        };
        assert_eq!(n(3.0), "3");
        assert_eq!(n(-0.0), "0");
        assert_eq!(n(0.31), "0.31");
        assert_eq!(n(2.5e-7), "2.5e-7");
        assert_eq!(n(f64::NAN), "null");
        assert_eq!(n(f64::INFINITY), "null");
        assert_eq!(n(1e20), serde_json::to_string(&1e20).expect("serializes"));
    }
}
