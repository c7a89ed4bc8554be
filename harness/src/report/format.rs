//! Plain-text formatting of numbers, metrics and reasons for people, the
//! same in every report (Markdown, HTML, JUnit, comparisons). No escaping:
//! callers escape for their format with [`super::escape`].

use crate::model::Metric;

/// A number for people: integers as they are, other numbers with at most
/// three decimals (scientific when tiny).
pub(crate) fn number(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    if v != 0.0 && v.abs() < 0.001 {
        return format!("{v:.2e}");
    }
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A metric's value with its unit: `65533 cgroups`, `1.5 s`, `cgroup2`.
pub(crate) fn metric(m: &Metric) -> String {
    let value = match &m.value {
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => number(f),
            _ => n.to_string(),
        },
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if m.unit.is_empty() {
        value
    } else {
        format!("{value} {}", m.unit)
    }
}

/// The first non-blank line of a (possibly multi-line) reason, trimmed.
pub(crate) fn first_line(s: &str) -> &str {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(serde_json::json!(65533), "cgroups", "65533 cgroups")]
    #[case(serde_json::json!(1.5), "s", "1.5 s")]
    #[case(serde_json::json!(2.0), "", "2")]
    #[case(serde_json::json!(0.123456), "ms", "0.123 ms")]
    #[case(serde_json::json!(0.0000123), "s", "1.23e-5 s")]
    #[case(serde_json::json!("cgroup2"), "", "cgroup2")]
    #[case(serde_json::json!(true), "", "true")]
    fn formats_metrics(#[case] value: serde_json::Value, #[case] unit: &str, #[case] want: &str) {
        let m = Metric {
            value,
            unit: unit.into(),
        };
        assert_eq!(metric(&m), want);
    }

    #[test]
    fn first_line_skips_blank_lines() {
        assert_eq!(first_line("\n  \n  qemu exited \nmore"), "qemu exited");
        assert_eq!(first_line(""), "");
    }
}
