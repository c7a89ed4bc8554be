//! Version numbers as the axes use them: the leading numeric components of
//! `1.22` or `6.1.0-56-amd64`, compared component-wise.

use std::cmp::Ordering;

/// Leading numeric components of a version: `1.22` → [1, 22],
/// `6.1.0-56-amd64` → [6, 1, 0]. `None` if it does not start with a digit.
pub fn parse_version(s: &str) -> Option<Vec<u64>> {
    let mut out = Vec::new();
    for part in s.split('.') {
        let digits: String = part.chars().take_while(|c| c.is_ascii_digit()).collect();
        if digits.is_empty() {
            break;
        }
        out.push(digits.parse().ok()?);
        if digits.len() != part.len() {
            break;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Compares versions component-wise, missing components as 0.
pub fn cmp_versions(a: &[u64], b: &[u64]) -> Ordering {
    let n = a.len().max(b.len());
    for i in 0..n {
        let (x, y) = (
            a.get(i).copied().unwrap_or(0),
            b.get(i).copied().unwrap_or(0),
        );
        match x.cmp(&y) {
            Ordering::Equal => continue,
            o => return o,
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("6.1.0-56-amd64"), Some(vec![6, 1, 0]));
        assert_eq!(cmp_versions(&[1, 9], &[1, 10]), Ordering::Less);
        assert_eq!(cmp_versions(&[6, 1], &[6, 1, 0]), Ordering::Equal);
    }
}
