//! Hand-rolled argument parsing: `--name value`, `--name=value`, flags, `--`.
//! Only arguments starting with `--` are options, so negative numbers such as
//! `-1` are positional values.

use crate::util::{Fail, R};

/// One accepted option: its name without dashes and whether it takes a value.
pub type Spec = [(&'static str, bool)];

#[derive(Debug, Default)]
pub struct Parsed {
    opts: Vec<(String, Option<String>)>,
    pub positional: Vec<String>,
}

pub fn parse(args: &[String], spec: &Spec) -> R<Parsed> {
    let mut p = Parsed::default();
    let mut i = 0;
    let mut only_positional = false;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if only_positional || !a.starts_with("--") {
            p.positional.push(a.clone());
            continue;
        }
        if a == "--" {
            only_positional = true;
            continue;
        }
        let body = &a[2..];
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let Some(&(_, takes_value)) = spec.iter().find(|(n, _)| *n == name) else {
            return Err(Fail::usage(format!("unknown option --{name}")));
        };
        let value = if takes_value {
            match inline {
                Some(v) => Some(v),
                None => {
                    let Some(v) = args.get(i) else {
                        return Err(Fail::usage(format!("option --{name} needs a value")));
                    };
                    i += 1;
                    Some(v.clone())
                }
            }
        } else {
            if inline.is_some() {
                return Err(Fail::usage(format!("option --{name} takes no value")));
            }
            None
        };
        p.opts.push((name.to_string(), value));
    }
    Ok(p)
}

impl Parsed {
    /// Last value given for `name` (empty strings count as given).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.opts
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Every value given for a repeatable option, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.opts
            .iter()
            .filter(|(n, _)| n == name)
            .filter_map(|(_, v)| v.as_deref())
            .collect()
    }

    /// Value for `name`, treating an empty string as unset (scenario params are
    /// strings where empty means unset).
    pub fn get_nonempty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    pub fn has(&self, name: &str) -> bool {
        self.opts.iter().any(|(n, _)| n == name)
    }

    pub fn required(&self, name: &str) -> R<&str> {
        self.get_nonempty(name)
            .ok_or_else(|| Fail::usage(format!("missing --{name}")))
    }

    pub fn u64_opt(&self, name: &str) -> R<Option<u64>> {
        match self.get_nonempty(name) {
            None => Ok(None),
            Some(v) => {
                v.trim().parse::<u64>().map(Some).map_err(|_| {
                    Fail::usage(format!("--{name}: not a non-negative integer: {v:?}"))
                })
            }
        }
    }

    pub fn u64_or(&self, name: &str, default: u64) -> R<u64> {
        Ok(self.u64_opt(name)?.unwrap_or(default))
    }

    pub fn f64_or(&self, name: &str, default: f64) -> R<f64> {
        match self.get_nonempty(name) {
            None => Ok(default),
            Some(v) => match v.trim().parse::<f64>() {
                Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
                _ => Err(Fail::usage(format!(
                    "--{name}: not a non-negative number: {v:?}"
                ))),
            },
        }
    }

    pub fn choice<'a>(&'a self, name: &str, allowed: &[&'a str], default: &'a str) -> R<&'a str> {
        let v = self.get_nonempty(name).unwrap_or(default);
        if allowed.contains(&v) {
            Ok(v)
        } else {
            Err(Fail::usage(format!(
                "--{name}: expected one of {}, got {v:?}",
                allowed.join("|")
            )))
        }
    }

    pub fn no_positional(&self) -> R<()> {
        match self.positional.first() {
            None => Ok(()),
            Some(p) => Err(Fail::usage(format!("unexpected argument {p:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    const SPEC: &Spec = &[("root", true), ("limit", true), ("string", false)];

    #[test]
    fn options_and_positionals() {
        let p = parse(
            &v(&["--root", "/a", "x", "--limit=5", "-1", "--string"]),
            SPEC,
        )
        .unwrap();
        assert_eq!(p.get("root"), Some("/a"));
        assert_eq!(p.u64_or("limit", 0).unwrap(), 5);
        assert!(p.has("string"));
        assert_eq!(p.positional, vec!["x", "-1"]);
    }

    #[test]
    fn empty_value_means_unset() {
        let p = parse(&v(&["--limit", ""]), SPEC).unwrap();
        assert_eq!(p.u64_opt("limit").unwrap(), None);
        assert_eq!(p.get("limit"), Some(""));
        assert!(p.required("limit").is_err());
    }

    #[test]
    fn last_value_wins() {
        let p = parse(&v(&["--limit", "1", "--limit", "2"]), SPEC).unwrap();
        assert_eq!(p.u64_or("limit", 0).unwrap(), 2);
    }

    #[test]
    fn double_dash_ends_options() {
        let p = parse(&v(&["--", "--root", "x"]), SPEC).unwrap();
        assert_eq!(p.positional, vec!["--root", "x"]);
        assert!(!p.has("root"));
    }

    #[test]
    fn errors() {
        assert_eq!(parse(&v(&["--nope"]), SPEC).unwrap_err().code, 2);
        assert_eq!(parse(&v(&["--root"]), SPEC).unwrap_err().code, 2);
        assert_eq!(parse(&v(&["--string=1"]), SPEC).unwrap_err().code, 2);
        let p = parse(&v(&["--limit", "x"]), SPEC).unwrap();
        assert!(p.u64_opt("limit").is_err());
        let p = parse(&v(&["--limit", "-3"]), SPEC).unwrap();
        assert!(p.u64_opt("limit").is_err());
    }
}
