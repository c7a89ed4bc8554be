//! The plan: scenario entries (from CLI flags or `matrix.toml`) into
//! cells, with include/exclude rules, expectations, filters and sharding.
//! Pure and unit-tested; the runner executes what this produces.

pub mod bisect;
pub mod expand;
pub mod matrix;
pub mod pattern;
pub mod profile;
pub mod request;

pub use expand::{expand, AxisValues, Entry, Expectation, Filter, Include, Rules, Selector};
pub use matrix::{load_matrix, FileSettings, Matrix, MatrixError};
pub use profile::Profile;
pub use request::Request;

use crate::model::{CellKey, Expect, RuleSource};
use crate::scenario::Scenario;
use std::collections::BTreeMap;

/// One cell to run: where it sits, what it runs and how often.
#[derive(Debug, Clone)]
pub struct PlannedCell {
    pub key: CellKey,
    /// The loaded scenario (`key.scenario` names it).
    pub scenario: Scenario,
    pub params: BTreeMap<String, String>,
    pub expect: Expect,
    /// The `[[expect]]` rule that set `expect`, if any.
    pub rule: Option<RuleSource>,
    /// Rules that matched but whose `until` the cell's kernel has passed.
    pub stale_rules: Vec<RuleSource>,
    /// Attempts to make (all are kept).
    pub repeat: u32,
    pub timeout_s: Option<u64>,
    pub memory_mib: Option<u32>,
    pub vcpus: Option<u32>,
}

impl PlannedCell {
    /// The cell's id (`key`'s `Display`).
    pub fn id(&self) -> String {
        self.key.to_string()
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CgroupVersion, Driver};
    use rstest::rstest;

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
    fn shard_hash_is_pinned() {
        // FNV-1a is fixed: these values must never change, or CI shards
        // shift between nights.
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
        let id = "memcg-fill/kernel=6.1/cgroup=v1";
        let pinned: Vec<bool> = (1..=4)
            .map(|i| Shard { index: i, count: 4 }.contains(id))
            .collect();
        assert_eq!(
            pinned.iter().filter(|b| **b).count(),
            1,
            "exactly one of 4 shards holds {id}"
        );
        assert_eq!(stable_hash(id) % 4, stable_hash_reference(id) % 4);
    }

    /// FNV-1a written out independently (byte loop over u128 arithmetic
    /// truncated to 64 bits), to pin `stable_hash` against a second
    /// implementation rather than itself.
    fn stable_hash_reference(s: &str) -> u64 {
        let mut h: u128 = 14_695_981_039_346_656_037;
        for b in s.bytes() {
            h ^= u128::from(b);
            h = (h * 1_099_511_628_211) % (1u128 << 64);
        }
        h as u64
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
    #[case("driver=systemd", true)]
    #[case("rootfs=*", false)]
    #[case("kmem-leak", true)]
    #[case("memcg", false)]
    #[case("*/kubelet=1.9/*", true)]
    #[case("kernel=6.1 kubelet=1.9", true)]
    #[case("kernel=6.1 kubelet=1.8", false)]
    fn filters(#[case] expr: &str, #[case] want: bool) {
        let key = CellKey {
            scenario: "kmem-leak".into(),
            label: "kmem-leak".into(),
            kernel: "6.1".into(),
            rootfs: None,
            kubelet: Some("1.9".into()),
            driver: Some(Driver::Systemd),
            cgroup: CgroupVersion::V1,
        };
        let f: Filter = expr.parse().unwrap();
        assert_eq!(f.matches(&key), want, "{expr}");
    }
}
