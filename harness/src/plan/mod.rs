//! The plan: `matrix.toml` (or CLI flags) into cells, with include/exclude
//! rules, expectations, filters and sharding. Pure and unit-tested; the
//! runner executes what this produces.

pub mod bisect;
pub mod matrix;
pub mod pattern;

pub use matrix::{load_matrix, Matrix, MatrixError, Profile};

use crate::report::Expect;
use std::collections::BTreeMap;

/// One cell to run.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedCell {
    /// `scenario/kernel=6.1[/rootfs=bullseye][/kubelet=1.9][/driver=cgroupfs]/cgroup=v1`;
    /// `scenario` is the entry's label when it has one.
    pub id: String,
    pub scenario: String,
    pub kernel: String,
    /// Root filesystem (`None`: the initramfs guest).
    pub rootfs: Option<String>,
    pub kubelet: Option<String>,
    pub driver: Option<String>,
    pub cgroup: String,
    pub params: BTreeMap<String, String>,
    pub expect: Expect,
    pub repeat: u32,
    pub timeout_s: Option<u64>,
    pub memory_mib: Option<u32>,
    pub vcpus: Option<u32>,
}

/// A cell's stable id.
pub fn cell_id(
    label: &str,
    kernel: &str,
    rootfs: Option<&str>,
    kubelet: Option<&str>,
    driver: Option<&str>,
    cgroup: &str,
) -> String {
    let mut id = format!("{label}/kernel={kernel}");
    if let Some(r) = rootfs {
        id.push_str(&format!("/rootfs={r}"));
    }
    if let Some(k) = kubelet {
        id.push_str(&format!("/kubelet={k}"));
    }
    if let Some(d) = driver {
        id.push_str(&format!("/driver={d}"));
    }
    id.push_str(&format!("/cgroup={cgroup}"));
    id
}

/// 64-bit FNV-1a: a stable hash (unlike std's) for sharding.
pub fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// `--shard I/N` (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("expected I/N (e.g. 1/4), got `{s}`"))?;
        let index: u64 = i
            .trim()
            .parse()
            .map_err(|_| format!("bad shard index in `{s}`"))?;
        let count: u64 = n
            .trim()
            .parse()
            .map_err(|_| format!("bad shard count in `{s}`"))?;
        if count == 0 || index == 0 || index > count {
            return Err(format!("shard `{s}`: need 1 <= I <= N"));
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Whether cell `id` belongs to this shard.
    pub fn contains(&self, id: &str) -> bool {
        stable_hash(id) % self.count == self.index - 1
    }
}

/// `--filter EXPR`: whitespace-separated terms that must all match; a term
/// is `field=pattern` (field: scenario, kernel, rootfs, kubelet, driver, cgroup) or
/// a glob over the cell id. Patterns as in matrix rules.
#[derive(Debug, Clone)]
pub struct Filter {
    terms: Vec<(Option<String>, pattern::Pattern)>,
}

impl std::str::FromStr for Filter {
    type Err = String;
    fn from_str(s: &str) -> Result<Filter, String> {
        let mut terms = Vec::new();
        for t in s.split_whitespace() {
            match t.split_once('=') {
                Some((f, p))
                    if [
                        "scenario", "kernel", "rootfs", "kubelet", "driver", "cgroup",
                    ]
                    .contains(&f) =>
                {
                    terms.push((Some(f.to_string()), pattern::Pattern::parse(p)?))
                }
                _ => terms.push((None, pattern::Pattern::Glob(t.to_string()))),
            }
        }
        Ok(Filter { terms })
    }
}

impl Filter {
    pub fn matches(&self, c: &PlannedCell) -> bool {
        self.terms.iter().all(|(field, p)| match field.as_deref() {
            Some("scenario") => p.matches(&c.scenario),
            Some("kernel") => p.matches(&c.kernel),
            Some("rootfs") => c.rootfs.as_deref().is_some_and(|r| p.matches(r)),
            Some("kubelet") => c.kubelet.as_deref().is_some_and(|k| p.matches(k)),
            Some("driver") => c.driver.as_deref().is_some_and(|d| p.matches(d)),
            Some("cgroup") => p.matches(&c.cgroup),
            _ => match p {
                // A bare word is a substring of the id; with wildcards, a
                // glob over the whole id.
                pattern::Pattern::Glob(g) if !g.contains(['*', '?']) => c.id.contains(g.as_str()),
                p => p.matches(&c.id),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn cell(id: &str, scenario: &str, kernel: &str, kubelet: Option<&str>) -> PlannedCell {
        PlannedCell {
            id: id.into(),
            scenario: scenario.into(),
            kernel: kernel.into(),
            rootfs: None,
            kubelet: kubelet.map(String::from),
            driver: None,
            cgroup: "v1".into(),
            params: BTreeMap::new(),
            expect: Expect::NotReproduced,
            repeat: 1,
            timeout_s: None,
            memory_mib: None,
            vcpus: None,
        }
    }

    #[test]
    fn ids_name_present_axes_only() {
        assert_eq!(
            cell_id("memcg-fill", "6.1", None, None, None, "v1"),
            "memcg-fill/kernel=6.1/cgroup=v1"
        );
        assert_eq!(
            cell_id(
                "kmem-leak",
                "5.10",
                None,
                Some("1.9"),
                Some("cgroupfs"),
                "v1"
            ),
            "kmem-leak/kernel=5.10/kubelet=1.9/driver=cgroupfs/cgroup=v1"
        );
        assert_eq!(
            cell_id(
                "kmem-leak",
                "5.10",
                Some("bullseye"),
                None,
                Some("systemd"),
                "v1"
            ),
            "kmem-leak/kernel=5.10/rootfs=bullseye/driver=systemd/cgroup=v1"
        );
    }

    #[rstest]
    #[case(1)]
    #[case(2)]
    #[case(3)]
    #[case(7)]
    fn every_cell_lands_in_exactly_one_shard(#[case] n: u64) {
        let ids: Vec<String> = (0..200)
            .map(|i| format!("s{}/kernel={}/cgroup=v1", i % 7, i))
            .collect();
        let shards: Vec<Shard> = (1..=n)
            .map(|i| format!("{i}/{n}").parse().unwrap())
            .collect();
        for id in &ids {
            assert_eq!(shards.iter().filter(|s| s.contains(id)).count(), 1, "{id}");
        }
        if n > 1 {
            // Not all in one shard.
            assert!(shards.iter().all(|s| ids.iter().any(|id| s.contains(id))));
        }
    }

    #[test]
    fn shard_is_stable_across_runs() {
        // FNV-1a is fixed: this value must never change, or CI shards shift.
        assert_eq!(
            stable_hash("memcg-fill/kernel=6.1/cgroup=v1") % 4,
            stable_hash("memcg-fill/kernel=6.1/cgroup=v1") % 4
        );
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[rstest]
    #[case("0/2")]
    #[case("3/2")]
    #[case("1")]
    #[case("a/b")]
    fn bad_shards(#[case] s: &str) {
        assert!(s.parse::<Shard>().is_err());
    }

    #[rstest]
    #[case("kernel=6.1", true)]
    #[case("kernel=5.*", false)]
    #[case("scenario=kmem-*", true)]
    #[case("kubelet=>=1.8,<1.22", true)]
    #[case("kubelet=1.6", false)]
    #[case("kmem-leak", true)]
    #[case("memcg", false)]
    #[case("*/kubelet=1.9/*", true)]
    #[case("kernel=6.1 kubelet=1.9", true)]
    fn filters(#[case] expr: &str, #[case] want: bool) {
        let c = cell(
            "kmem-leak/kernel=6.1/kubelet=1.9/cgroup=v1",
            "kmem-leak",
            "6.1",
            Some("1.9"),
        );
        let f: Filter = expr.parse().unwrap();
        assert_eq!(f.matches(&c), want, "{expr}");
    }
}
