//! JSON output: printing a subcommand's answer (a `Serialize` struct),
//! result-line emission to `$REPRO_RESULT` through the contract type shared
//! with the harness, and the `emit` / `json-get` subcommands.

use crate::result_line::{self, ResultLine, Verdict};
use crate::util::{Fail, R};
use serde::{Serialize, Serializer};
use serde_json::Value;
use std::io::Write;

/// An `f64` in an answer: integral values print as integers (`3`, not
/// `3.0`), NaN and infinities as `null`. Scripts pass these values on to
/// `emit metric`, so `3` must stay `3`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Num(pub f64);

impl Serialize for Num {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        result_line::compact_number(&self.0, s)
    }
}

/// An errno as three fields of an answer: `errno` (number), `errno_name`,
/// `error` (strerror text); all `null` when there was no error.
/// Embed it with `#[serde(flatten)]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Errno {
    pub errno: Option<i32>,
    pub errno_name: Option<String>,
    pub error: Option<String>,
}

impl Errno {
    pub fn of(e: Option<i32>) -> Errno {
        Errno {
            errno: e,
            errno_name: e.map(crate::util::errno_name),
            error: e.map(crate::util::strerror),
        }
    }
}

/// Print a subcommand's machine-readable answer on stdout, one line. A
/// closed stdout is ignored (the work is done; the exit status still tells).
pub fn print<T: Serialize>(answer: &T) -> R<()> {
    let line = serde_json::to_string(answer)
        .map_err(|e| Fail::failed(format!("serialize the answer: {e}")))?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    Ok(())
}

/// Append one result line to `$REPRO_RESULT` (stdout when unset, for manual use).
pub fn append_result(line: &ResultLine) -> R<()> {
    let mut data = line
        .to_json()
        .map_err(|e| Fail::failed(format!("serialize a result line: {e}")))?;
    data.push('\n');
    match std::env::var_os("REPRO_RESULT") {
        Some(p) if !p.is_empty() => {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&p)
                .map_err(|e| Fail::os(format!("open {}", p.to_string_lossy()), &e))?;
            // One write() per line: O_APPEND keeps concurrent writers' lines whole.
            f.write_all(data.as_bytes())
                .map_err(|e| Fail::os(format!("write {}", p.to_string_lossy()), &e))
        }
        _ => {
            let mut out = std::io::stdout().lock();
            out.write_all(data.as_bytes())
                .map_err(|e| Fail::os("write stdout", &e))?;
            out.flush().map_err(|e| Fail::os("write stdout", &e))
        }
    }
}

/// The JSON number `s` is, when it is exactly one (no surrounding space, no
/// leading zeros, no `inf`/`nan`), so `emit metric` stores it as a number.
pub fn json_number(s: &str) -> Option<Value> {
    if s.is_empty() || s.trim() != s {
        return None;
    }
    match serde_json::from_str::<Value>(s) {
        Ok(v @ Value::Number(_)) => Some(v),
        _ => None,
    }
}

/// A metric line from the command line's text: a number when the text is
/// one (and `--string` was not given), else a string.
pub fn metric_line(name: &str, value: &str, unit: Option<&str>, force_string: bool) -> ResultLine {
    let v = match json_number(value) {
        Some(n) if !force_string => n,
        _ => Value::String(value.to_string()),
    };
    ResultLine::metric(name, v, unit)
}

/// Emit a series point directly (used by measuring subcommands).
pub fn emit_series(name: &str, x: f64, y: f64, x_unit: &str, y_unit: &str) -> R<()> {
    append_result(&ResultLine::series(name, x, y, x_unit, y_unit))
}

fn parse_number(what: &str, s: &str) -> R<f64> {
    json_number(s)
        .and_then(|v| v.as_f64())
        .ok_or_else(|| Fail::usage(format!("{what} must be a number, got {s:?}")))
}

/// `repro-kit emit metric NAME VALUE [UNIT] [--string]` and friends.
pub fn cmd_emit(args: &[String]) -> R<()> {
    let p = crate::args::parse(args, &[("string", false)])?;
    let pos = &p.positional;
    let kind = pos.first().map(String::as_str).unwrap_or("");
    let line = match kind {
        "metric" => {
            if !(3..=4).contains(&pos.len()) {
                return Err(Fail::usage(
                    "usage: emit metric NAME VALUE [UNIT] [--string]",
                ));
            }
            metric_line(
                &pos[1],
                &pos[2],
                pos.get(3).map(String::as_str),
                p.has("string"),
            )
        }
        "series" => {
            if pos.len() != 6 {
                return Err(Fail::usage("usage: emit series NAME X Y X_UNIT Y_UNIT"));
            }
            let x = parse_number("X", &pos[2])?;
            let y = parse_number("Y", &pos[3])?;
            ResultLine::series(&pos[1], x, y, &pos[4], &pos[5])
        }
        "outcome" => {
            if pos.len() < 3 {
                return Err(Fail::usage(
                    "usage: emit outcome reproduced|not-reproduced|skipped REASON",
                ));
            }
            let verdict: Verdict = pos[1]
                .parse()
                .map_err(|e: result_line::LineError| Fail::usage(e.to_string()))?;
            ResultLine::outcome(verdict, &pos[2..].join(" "))
        }
        "log" => {
            if pos.len() < 2 {
                return Err(Fail::usage("usage: emit log TEXT"));
            }
            ResultLine::log(&pos[1..].join(" "))
        }
        _ => return Err(Fail::usage("usage: emit metric|series|outcome|log ...")),
    };
    append_result(&line)
}

/// Look up a dotted path (`a.b.0.c`) in a JSON value.
pub fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for part in path.split('.') {
        cur = match cur {
            Value::Object(m) => m.get(part)?,
            Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Shell-friendly rendering: strings raw, null empty, others compact JSON.
pub fn render_plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `repro-kit json-get KEY...` : read one JSON value on stdin, print each key's
/// value on its own line. Missing keys fail (exit 1) unless `--default` is given.
pub fn cmd_json_get(args: &[String]) -> R<()> {
    let p = crate::args::parse(args, &[("default", true)])?;
    if p.positional.is_empty() {
        return Err(Fail::usage(
            "usage: json-get KEY [KEY...] [--default VALUE] < file.json",
        ));
    }
    let mut input = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut input)
        .map_err(|e| Fail::os("read stdin", &e))?;
    // Accept several lines (take the last non-empty one that parses as JSON).
    let value: Value = match serde_json::from_str(&input) {
        Ok(v) => v,
        Err(_) => input
            .lines()
            .rev()
            .filter(|l| !l.trim().is_empty())
            .find_map(|l| serde_json::from_str(l).ok())
            .ok_or_else(|| Fail::failed("json-get: stdin holds no JSON value"))?,
    };
    let mut out = String::new();
    for key in &p.positional {
        match lookup(&value, key) {
            Some(v) => out.push_str(&render_plain(v)),
            None => match p.get("default") {
                Some(d) => out.push_str(d),
                None => return Err(Fail::failed(format!("json-get: no key {key:?} in input"))),
            },
        }
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        for n in ["0", "65533", "-1", "0.31", "1e5", "1.5E-3"] {
            assert!(json_number(n).is_some(), "{n}");
        }
        for s in [
            "", " 1", "1 ", "01", "inf", "NaN", "0x10", "1.", ".5", "ENOSPC", "1,5", "1e400",
        ] {
            assert!(json_number(s).is_none(), "{s}");
        }
    }

    #[test]
    fn metric_escaping() {
        let json = |l: ResultLine| l.to_json().unwrap();
        assert_eq!(
            json(metric_line("created", "65533", Some("cgroups"), false)),
            r#"{"metric":"created","value":65533,"unit":"cgroups"}"#
        );
        assert_eq!(
            json(metric_line("v", "1.9", None, true)),
            r#"{"metric":"v","value":"1.9"}"#
        );
        assert_eq!(
            json(metric_line("r", "1.50", None, false)),
            r#"{"metric":"r","value":1.5}"#
        );
        let l = json(metric_line(
            "sig",
            "mkdir \"/a\\b\": No space\nleft\t\u{1}é",
            Some(""),
            false,
        ));
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["value"], "mkdir \"/a\\b\": No space\nleft\t\u{1}é");
        assert!(v.get("unit").is_none());
        assert!(!l.contains('\n'));
    }

    #[test]
    fn harness_reads_the_same_value_as_from_the_callers_text() {
        // The number text is normalised ("1e5" becomes 100000.0), the value
        // the harness parses is not: integers are exact, and so are the
        // decimals scripts pass on (kit answers' shortest round-trip text,
        // shell arithmetic, awk's printf). Only mantissas beyond 17 digits
        // or huge exponents may land one ULP away: serde_json's default
        // float parser (no `float_roundtrip`) rounds twice there.
        for n in [
            "65533",
            "-1",
            "18446744073709551615",
            "-9223372036854775808",
            "0.31",
            "1.50",
            "1e5",
            "-0",
            "1.5E-3",
            "2.5e-7",
            "0.123456789012345",
            "98765.4321",
            "1.2345678901234567",
            "0.30000000000000004",
            "123456.78901234567",
        ] {
            let raw = format!(r#"{{"metric":"m","value":{n}}}"#);
            let ours = metric_line("m", n, None, false).to_json().unwrap();
            assert_eq!(result_line::parse(&ours), result_line::parse(&raw), "{n}");
            let raw = format!(r#"{{"series":"s","x":{n},"y":{n},"x_unit":"","y_unit":""}}"#);
            let p = parse_number("X", n).unwrap();
            let ours = ResultLine::series("s", p, p, "", "").to_json().unwrap();
            assert_eq!(result_line::parse(&ours), result_line::parse(&raw), "{n}");
        }
    }

    #[test]
    fn answers_keep_integral_floats_integral_and_flatten_errno() {
        #[derive(Serialize)]
        struct Answer {
            b: &'static str,
            a: i64,
            #[serde(flatten)]
            errno: Errno,
            whole: Num,
            part: Num,
            none: Option<Num>,
        }
        let s = serde_json::to_string(&Answer {
            b: "x",
            a: -2,
            errno: Errno::of(Some(libc::ENOSPC)),
            whole: Num(1000.0),
            part: Num(0.31),
            none: None,
        })
        .unwrap();
        assert_eq!(
            s,
            r#"{"b":"x","a":-2,"errno":28,"errno_name":"ENOSPC","error":"No space left on device","whole":1000,"part":0.31,"none":null}"#
        );
        let n = serde_json::to_string(&Errno::of(None)).unwrap();
        assert_eq!(n, r#"{"errno":null,"errno_name":null,"error":null}"#);
    }

    #[test]
    fn lookup_paths() {
        let v: Value =
            serde_json::from_str(r#"{"a":{"b":[1,{"c":"x"}]},"n":null,"s":"t"}"#).unwrap();
        assert_eq!(render_plain(lookup(&v, "a.b.1.c").unwrap()), "x");
        assert_eq!(render_plain(lookup(&v, "a.b.0").unwrap()), "1");
        assert_eq!(render_plain(lookup(&v, "n").unwrap()), "");
        assert_eq!(render_plain(lookup(&v, "a.b").unwrap()), r#"[1,{"c":"x"}]"#);
        assert!(lookup(&v, "a.z").is_none());
        assert!(lookup(&v, "s.x").is_none());
    }
}
