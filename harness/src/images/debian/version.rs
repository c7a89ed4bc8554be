//! Debian version order (epochs, `~` before anything), as dpkg compares versions.

use std::cmp::Ordering;

/// Compares two Debian versions the way dpkg does (epochs, `~` sorting before anything).
/// A version that does not parse sorts before every one that does (then by text).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    match (
        a.parse::<debversion::Version>(),
        b.parse::<debversion::Version>(),
    ) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => Ordering::Greater,
        (Err(_), Ok(_)) => Ordering::Less,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("1.0", "1.0", Ordering::Equal)]
    #[case("1.0~rc1", "1.0", Ordering::Less)]
    #[case("1:0.1", "9.9", Ordering::Greater)]
    #[case("6.1.158-1", "6.1.99-1", Ordering::Greater)]
    #[case("6.12.115+deb13.1-1", "6.12.115-1", Ordering::Greater)]
    #[case("6.12.117-1~deb12u1", "6.12.117-1", Ordering::Less)]
    #[case("1.0-1", "1.0-1+b1", Ordering::Less)]
    #[case("1.0a", "1.0+", Ordering::Less)]
    fn debian_version_order(#[case] a: &str, #[case] b: &str, #[case] want: Ordering) {
        assert_eq!(compare_versions(a, b), want);
        assert_eq!(compare_versions(b, a), want.reverse());
    }
}
