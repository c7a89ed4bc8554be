//! `[profile.NAME]` sections of `matrix.toml`: nextest-style run settings
//! with inheritance (`inherits`, default `default`), resolved into a
//! [`Profile`].

use crate::model::limits::{MAX_MEMORY_MIB, MAX_TIMEOUT_S, MAX_VCPUS, MIN_MEMORY_MIB};
use crate::model::AccelChoice;
use crate::tomlfile;
use serde::Deserialize;
use serde_spanned::Spanned;

/// `[profile.NAME]`: run settings; `inherits` names another profile
/// (default: `default`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFile {
    pub inherits: Option<Spanned<String>>,
    /// Cells in parallel (0 or absent: what cores and memory allow).
    pub jobs: Option<usize>,
    /// Attempts per cell (all are kept; mixed outcomes make it flaky).
    pub repeat: Option<u32>,
    /// Extra attempts when an attempt ends in `error` (infrastructure).
    pub retries: Option<u32>,
    /// `auto`, `kvm` or `tcg`.
    pub accel: Option<Spanned<String>>,
    #[serde(
        default,
        deserialize_with = "tomlfile::within_opt::<_, _, 1, MAX_TIMEOUT_S>"
    )]
    pub boot_timeout_s: Option<u64>,
    /// Guest memory for every cell (default: each scenario's own).
    #[serde(
        default,
        deserialize_with = "tomlfile::within_opt::<_, _, MIN_MEMORY_MIB, MAX_MEMORY_MIB>"
    )]
    pub memory_mib: Option<u32>,
    #[serde(
        default,
        deserialize_with = "tomlfile::within_opt::<_, _, 1, MAX_VCPUS>"
    )]
    pub vcpus: Option<u32>,
    /// Results folder.
    pub results: Option<String>,
    /// Cap of each log (console, stdout, stderr, result file): a size
    /// such as `16M`.
    pub log_cap: Option<Spanned<String>>,
    /// Cap of all artefacts fetched from `$REPRO_OUT` together (a size).
    pub out_cap: Option<Spanned<String>>,
    /// Seconds without any output from the guest that end a scenario
    /// whose `scenario.toml` sets no `stall_s` (0: off).
    #[serde(
        default,
        deserialize_with = "tomlfile::within_opt::<_, _, 0, MAX_TIMEOUT_S>"
    )]
    pub stall_s: Option<u64>,
}

/// Resolved run settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    pub jobs: Option<usize>,
    pub repeat: u32,
    pub retries: u32,
    pub accel: AccelChoice,
    pub boot_timeout_s: u64,
    pub memory_mib: Option<u32>,
    pub vcpus: Option<u32>,
    pub results: Option<String>,
    /// Absent: the matrix file's, else the default.
    pub log_cap: Option<u64>,
    pub out_cap: Option<u64>,
    pub stall_s: Option<u64>,
}

impl Default for Profile {
    fn default() -> Profile {
        Profile {
            name: "default".into(),
            jobs: None,
            repeat: 1,
            retries: 1,
            accel: AccelChoice::Auto,
            boot_timeout_s: 180,
            memory_mib: None,
            vcpus: None,
            results: None,
            log_cap: None,
            out_cap: None,
            stall_s: None,
        }
    }
}

impl Profile {
    /// Applies `chain` (the named profile first, its ancestors after) on
    /// top of the defaults. `accel` values are checked by the caller.
    pub fn resolve(name: &str, chain: &[&ProfileFile]) -> Profile {
        let mut p = Profile {
            name: name.to_string(),
            ..Profile::default()
        };
        for f in chain.iter().rev() {
            if let Some(v) = f.jobs {
                p.jobs = (v > 0).then_some(v);
            }
            if let Some(v) = f.repeat {
                p.repeat = v.max(1);
            }
            if let Some(v) = f.retries {
                p.retries = v;
            }
            if let Some(v) = f.accel.as_ref().and_then(|a| a.get_ref().parse().ok()) {
                p.accel = v;
            }
            if let Some(v) = f.boot_timeout_s {
                p.boot_timeout_s = v;
            }
            if f.memory_mib.is_some() {
                p.memory_mib = f.memory_mib;
            }
            if f.vcpus.is_some() {
                p.vcpus = f.vcpus;
            }
            if f.results.is_some() {
                p.results = f.results.clone();
            }
            let size = |v: &Option<Spanned<String>>| {
                v.as_ref()
                    .and_then(|s| crate::scenario::parse_size(s.get_ref()))
            };
            if let Some(v) = size(&f.log_cap) {
                p.log_cap = Some(v);
            }
            if let Some(v) = size(&f.out_cap) {
                p.out_cap = Some(v);
            }
            if f.stall_s.is_some() {
                p.stall_s = f.stall_s;
            }
        }
        p
    }
}
