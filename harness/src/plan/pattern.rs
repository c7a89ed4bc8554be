//! Patterns over axis values in matrix rules: globs (`3.10*`, `6.*`) and
//! version ranges (`>=1.8,<1.22`). Pure.

use crate::model::version::{cmp_versions, parse_version};
use std::cmp::Ordering;

/// A parsed pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    /// `*` and `?` wildcards; a plain string matches itself.
    Glob(String),
    /// Comma-separated comparisons, all of which must hold.
    Range(Vec<(Cmp, Vec<u64>)>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
}

impl Pattern {
    /// Parses `s`: a range when it starts with a comparison operator.
    pub fn parse(s: &str) -> Result<Pattern, String> {
        let t = s.trim();
        if t.starts_with(['<', '>', '=']) {
            let mut parts = Vec::new();
            for p in t.split(',') {
                let p = p.trim();
                let (cmp, rest) = if let Some(r) = p.strip_prefix(">=") {
                    (Cmp::Ge, r)
                } else if let Some(r) = p.strip_prefix("<=") {
                    (Cmp::Le, r)
                } else if let Some(r) = p.strip_prefix("==") {
                    (Cmp::Eq, r)
                } else if let Some(r) = p.strip_prefix('>') {
                    (Cmp::Gt, r)
                } else if let Some(r) = p.strip_prefix('<') {
                    (Cmp::Lt, r)
                } else if let Some(r) = p.strip_prefix('=') {
                    (Cmp::Eq, r)
                } else {
                    return Err(format!(
                        "`{p}` in `{s}` is not a comparison (use >=, >, <=, <, =)"
                    ));
                };
                let v = parse_version(rest.trim()).ok_or_else(|| {
                    format!("`{}` in `{s}` is not a version like 1.22", rest.trim())
                })?;
                parts.push((cmp, v));
            }
            Ok(Pattern::Range(parts))
        } else {
            Ok(Pattern::Glob(t.to_string()))
        }
    }

    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Glob(g) => glob_match(g, value),
            Pattern::Range(parts) => {
                let Some(v) = parse_version(value) else {
                    return false;
                };
                parts.iter().all(|(cmp, want)| {
                    let o = cmp_versions(&v, want);
                    match cmp {
                        Cmp::Ge => o != Ordering::Less,
                        Cmp::Gt => o == Ordering::Greater,
                        Cmp::Le => o != Ordering::Greater,
                        Cmp::Lt => o == Ordering::Less,
                        Cmp::Eq => o == Ordering::Equal,
                    }
                })
            }
        }
    }
}

/// `*` matches any run of characters, `?` one character.
pub fn glob_match(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    let (mut pi, mut vi) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

impl std::str::FromStr for Pattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Pattern, String> {
        Pattern::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("3.10*", "3.10", true)]
    #[case("3.10*", "3.10.0-957", true)]
    #[case("3.10*", "5.10", false)]
    #[case("6.1", "6.1", true)]
    #[case("6.1", "6.12", false)]
    #[case("*", "anything", true)]
    #[case("6.?", "6.1", true)]
    #[case("kmem-*", "kmem-leak", true)]
    #[case(">=1.8,<1.22", "1.9", true)]
    #[case(">=1.8,<1.22", "1.21", true)]
    #[case(">=1.8,<1.22", "1.22", false)]
    #[case(">=1.8,<1.22", "1.6", false)]
    #[case(">=5.4", "6.12", true)]
    #[case("<5.4", "3.10", true)]
    #[case("=1.27", "1.27", true)]
    #[case(">1.27", "1.27", false)]
    #[case(">=1.8", "bookworm", false)]
    fn patterns_match(#[case] pat: &str, #[case] value: &str, #[case] want: bool) {
        assert_eq!(
            Pattern::parse(pat).unwrap().matches(value),
            want,
            "{pat} vs {value}"
        );
    }

    #[rstest]
    #[case(">=x")]
    #[case(">=1.8,~2")]
    fn bad_ranges_are_errors(#[case] pat: &str) {
        assert!(Pattern::parse(pat).is_err());
    }
}
