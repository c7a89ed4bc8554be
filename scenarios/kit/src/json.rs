//! JSON output: an order-preserving object builder, result-line emission to
//! `$REPRO_RESULT`, and the `emit` / `json-get` subcommands.

use crate::util::{Fail, R};
use serde_json::Value;
use std::io::Write;

/// Builds one JSON object, keeping keys in insertion order.
#[derive(Debug, Default, Clone)]
pub struct Obj {
    parts: Vec<String>,
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("strings always serialize")
}

/// JSON for an f64: integral values as integers (`3`, not `3.0`), others as
/// shortest round-trip text; NaN/inf become null.
pub fn num_f(x: f64) -> String {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e15 {
        format!("{}", x as i64)
    } else if x.is_finite() {
        serde_json::Number::from_f64(x)
            .map(|n| n.to_string())
            .unwrap_or_else(|| "null".into())
    } else {
        "null".into()
    }
}

impl Obj {
    pub fn new() -> Obj {
        Obj::default()
    }
    fn push(mut self, k: &str, raw: String) -> Obj {
        self.parts.push(format!("{}:{}", quote(k), raw));
        self
    }
    pub fn s(self, k: &str, v: &str) -> Obj {
        let q = quote(v);
        self.push(k, q)
    }
    pub fn opt_s(self, k: &str, v: Option<&str>) -> Obj {
        match v {
            Some(v) => self.s(k, v),
            None => self.push(k, "null".into()),
        }
    }
    pub fn i(self, k: &str, v: i64) -> Obj {
        self.push(k, v.to_string())
    }
    pub fn u(self, k: &str, v: u64) -> Obj {
        self.push(k, v.to_string())
    }
    pub fn opt_i(self, k: &str, v: Option<i64>) -> Obj {
        self.push(k, v.map(|v| v.to_string()).unwrap_or_else(|| "null".into()))
    }
    pub fn f(self, k: &str, v: f64) -> Obj {
        self.push(k, num_f(v))
    }
    pub fn opt_f(self, k: &str, v: Option<f64>) -> Obj {
        self.push(k, v.map(num_f).unwrap_or_else(|| "null".into()))
    }
    pub fn b(self, k: &str, v: bool) -> Obj {
        self.push(k, v.to_string())
    }
    /// Insert already-serialized JSON (a nested object or array).
    pub fn raw(self, k: &str, json: String) -> Obj {
        self.push(k, json)
    }
    /// An errno as three fields: `errno` (number), `errno_name`, `error` (strerror text).
    pub fn errno(self, e: Option<i32>) -> Obj {
        match e {
            Some(e) => self
                .i("errno", e as i64)
                .s("errno_name", &crate::util::errno_name(e))
                .s("error", &crate::util::strerror(e)),
            None => self
                .push("errno", "null".into())
                .push("errno_name", "null".into())
                .push("error", "null".into()),
        }
    }
    pub fn build(&self) -> String {
        format!("{{{}}}", self.parts.join(","))
    }
}

/// Serialize a list of already-built JSON values as an array.
pub fn array(items: &[String]) -> String {
    format!("[{}]", items.join(","))
}

/// Print one object on stdout (the subcommand's machine-readable answer).
pub fn print(o: &Obj) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", o.build());
    let _ = out.flush();
}

/// Append one JSON line to `$REPRO_RESULT` (stdout when unset, for manual use).
pub fn append_result(line: &str) -> R<()> {
    let mut data = line.to_string();
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

/// True when `s` is exactly a JSON number (no surrounding space, no leading zeros,
/// no `inf`/`nan`), so `emit metric` stores it as a number.
pub fn is_json_number(s: &str) -> bool {
    if s.is_empty() || s.trim() != s {
        return false;
    }
    matches!(serde_json::from_str::<Value>(s), Ok(Value::Number(_)))
}

pub fn metric_line(name: &str, value: &str, unit: Option<&str>, force_string: bool) -> String {
    let v = if !force_string && is_json_number(value) {
        value.to_string()
    } else {
        quote(value)
    };
    let mut o = Obj::new().s("metric", name).raw("value", v);
    if let Some(u) = unit.filter(|u| !u.is_empty()) {
        o = o.s("unit", u);
    }
    o.build()
}

pub fn series_line(name: &str, x: f64, y: f64, x_unit: &str, y_unit: &str) -> String {
    Obj::new()
        .s("series", name)
        .f("x", x)
        .f("y", y)
        .s("x_unit", x_unit)
        .s("y_unit", y_unit)
        .build()
}

pub const OUTCOMES: &[&str] = &["reproduced", "not-reproduced", "skipped"];

pub fn outcome_line(outcome: &str, reason: &str) -> R<String> {
    if !OUTCOMES.contains(&outcome) {
        return Err(Fail::usage(format!(
            "outcome must be one of {} (error/timeout/crashed belong to the harness), got {outcome:?}",
            OUTCOMES.join("|")
        )));
    }
    Ok(Obj::new().s("outcome", outcome).s("reason", reason).build())
}

pub fn log_line(text: &str) -> String {
    Obj::new().s("log", text).build()
}

/// Emit a series point directly (used by measuring subcommands).
pub fn emit_series(name: &str, x: f64, y: f64, x_unit: &str, y_unit: &str) -> R<()> {
    append_result(&series_line(name, x, y, x_unit, y_unit))
}

fn parse_number(what: &str, s: &str) -> R<()> {
    if is_json_number(s) {
        Ok(())
    } else {
        Err(Fail::usage(format!("{what} must be a number, got {s:?}")))
    }
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
            parse_number("X", &pos[2])?;
            parse_number("Y", &pos[3])?;
            // Keep the caller's exact number text (e.g. integers stay integers).
            Obj::new()
                .s("series", &pos[1])
                .raw("x", pos[2].clone())
                .raw("y", pos[3].clone())
                .s("x_unit", &pos[4])
                .s("y_unit", &pos[5])
                .build()
        }
        "outcome" => {
            if pos.len() < 3 {
                return Err(Fail::usage(
                    "usage: emit outcome reproduced|not-reproduced|skipped REASON",
                ));
            }
            outcome_line(&pos[1], &pos[2..].join(" "))?
        }
        "log" => {
            if pos.len() < 2 {
                return Err(Fail::usage("usage: emit log TEXT"));
            }
            log_line(&pos[1..].join(" "))
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
            assert!(is_json_number(n), "{n}");
        }
        for s in [
            "", " 1", "1 ", "01", "inf", "NaN", "0x10", "1.", ".5", "ENOSPC", "1,5",
        ] {
            assert!(!is_json_number(s), "{s}");
        }
    }

    #[test]
    fn metric_escaping() {
        assert_eq!(
            metric_line("created", "65533", Some("cgroups"), false),
            r#"{"metric":"created","value":65533,"unit":"cgroups"}"#
        );
        assert_eq!(
            metric_line("v", "1.9", None, true),
            r#"{"metric":"v","value":"1.9"}"#
        );
        let l = metric_line(
            "sig",
            "mkdir \"/a\\b\": No space\nleft\t\u{1}é",
            Some(""),
            false,
        );
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["value"], "mkdir \"/a\\b\": No space\nleft\t\u{1}é");
        assert!(v.get("unit").is_none());
        assert!(!l.contains('\n'));
    }

    #[test]
    fn series_and_outcome() {
        assert_eq!(
            series_line("memory_stat_median_ms", 1000.0, 0.31, "dying memcgs", "ms"),
            r#"{"series":"memory_stat_median_ms","x":1000,"y":0.31,"x_unit":"dying memcgs","y_unit":"ms"}"#
        );
        assert_eq!(
            outcome_line("skipped", "no \"memory\"").unwrap(),
            r#"{"outcome":"skipped","reason":"no \"memory\""}"#
        );
        assert_eq!(outcome_line("error", "x").unwrap_err().code, 2);
        assert_eq!(num_f(f64::NAN), "null");
        assert_eq!(num_f(-0.0), "0");
        assert_eq!(num_f(2.5e-7), "2.5e-7");
        assert_eq!(num_f(1e20), "1e+20");
    }

    #[test]
    fn obj_builder_order_and_errno() {
        let s = Obj::new()
            .s("b", "x")
            .i("a", -2)
            .errno(Some(libc::ENOSPC))
            .build();
        assert_eq!(
            s,
            r#"{"b":"x","a":-2,"errno":28,"errno_name":"ENOSPC","error":"No space left on device"}"#
        );
        let n = Obj::new().errno(None).build();
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
