//! Kubelet profiles (`images/kubelet/<version>.toml`): what a kubelet
//! version does to a node that matters to the scenarios, each item with
//! its source. A profile reproduces the kubelet's node-level actions (the
//! cgroups it creates, whether its runc enables kernel-memory accounting,
//! its defaults), not the kubelet binary; scenarios receive its values as
//! `REPRO_KUBELET_*` environment variables.

use crate::model::version::{cmp_versions, parse_version};
use crate::model::Driver;
use crate::tomlfile::{self, TomlFileError};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// One behaviour with the commit, PR or issue it comes from.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(
    deny_unknown_fields,
    expecting = "a table { value = ..., source = \"...\" }"
)]
pub struct Sourced<T> {
    pub value: T,
    pub source: String,
}

/// An official kubelet binary (for connected machines; not used yet).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Binary {
    pub version: String,
    pub url: String,
    pub sha256: Option<String>,
}

/// `images/kubelet/<version>.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Minor version, e.g. `1.9`.
    pub version: String,
    pub summary: String,
    /// runc version vendored into this kubelet.
    pub runc: Sourced<String>,
    /// Pod and container memory cgroups get kernel-memory accounting
    /// (runc writes 1, then -1, to `memory.kmem.limit_in_bytes`).
    pub kmem_accounting: Sourced<bool>,
    /// runc's systemd driver creates and removes a probe slice
    /// (`libcontainer_<pid>_systemd_test_default.slice`) per cgroup manager.
    pub systemd_test_slice_probe: Sourced<bool>,
    /// Image pulls are serialized by default.
    pub serialize_image_pulls: Sourced<bool>,
    /// `maxParallelImagePulls` default (0: not available).
    pub max_parallel_image_pulls: Sourced<u32>,
    pub api_qps: Sourced<u32>,
    pub api_burst: Sourced<u32>,
    /// CPU manager offers init-container CPUs to app containers.
    pub cpu_manager_reuse_init_cpus: Sourced<bool>,
    /// ... except restartable init containers (sidecars).
    pub cpu_manager_sidecars_excluded: Sourced<bool>,
    /// Pod cgroup layout for the cgroupfs driver (`<uid>`, `<container>`).
    pub cgroupfs_layout: Sourced<String>,
    /// Pod cgroup layout for the systemd driver.
    pub systemd_layout: Sourced<String>,
    pub binary: Option<Binary>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error(transparent)]
    Toml(#[from] TomlFileError),
    #[error("unknown kubelet profile `{asked}`; known: {known} (files in {dir})")]
    Unknown {
        asked: String,
        known: String,
        dir: PathBuf,
    },
    #[error("cannot list kubelet profiles in {dir}: {source}")]
    List {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: version `{found}` does not match the file name")]
    Mismatch {
        path: PathBuf,
        line: usize,
        column: usize,
        found: String,
    },
}

/// All profiles, oldest version first.
pub fn load_all(dir: &Path) -> Result<Vec<Profile>, ProfileError> {
    let rd = std::fs::read_dir(dir).map_err(|source| ProfileError::List {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "toml") {
            out.push(parse_profile(&p, &tomlfile::read(&p)?)?);
        }
    }
    out.sort_by(|a, b| {
        cmp_versions(
            &parse_version(&a.version).unwrap_or_default(),
            &parse_version(&b.version).unwrap_or_default(),
        )
    });
    Ok(out)
}

/// Parses and checks one profile; `path` names it in errors, and its
/// file name must be the profile's version.
pub fn parse_profile(path: &Path, text: &str) -> Result<Profile, ProfileError> {
    let prof: Profile = tomlfile::parse(path, text)?;
    if path.file_stem().map(|s| s.to_string_lossy().into_owned()) != Some(prof.version.clone()) {
        let (line, column) = tomlfile::value_position(text, "version").unwrap_or((1, 1));
        return Err(ProfileError::Mismatch {
            path: path.to_path_buf(),
            line,
            column,
            found: prof.version,
        });
    }
    Ok(prof)
}

/// The profile for `version` (`1.9`, or `1.9.11` → `1.9`).
pub fn find(dir: &Path, version: &str) -> Result<Profile, ProfileError> {
    let all = load_all(dir)?;
    let minor: String = version
        .trim_start_matches('v')
        .split('.')
        .take(2)
        .collect::<Vec<_>>()
        .join(".");
    all.iter()
        .find(|p| p.version == minor)
        .cloned()
        .ok_or_else(|| ProfileError::Unknown {
            asked: version.into(),
            known: all
                .iter()
                .map(|p| p.version.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            dir: dir.to_path_buf(),
        })
}

impl Profile {
    /// The `REPRO_KUBELET_*` variables for a cell with `driver`.
    pub fn env(&self, driver: Option<Driver>) -> Vec<(String, String)> {
        let b = |v: bool| if v { "1" } else { "0" }.to_string();
        let driver = driver.unwrap_or(Driver::Cgroupfs);
        let layout = if driver == Driver::Systemd {
            &self.systemd_layout.value
        } else {
            &self.cgroupfs_layout.value
        };
        vec![
            ("REPRO_KUBELET_VERSION".into(), self.version.clone()),
            ("REPRO_KUBELET_RUNC".into(), self.runc.value.clone()),
            (
                "REPRO_KUBELET_KMEM_ACCOUNTING".into(),
                b(self.kmem_accounting.value),
            ),
            (
                "REPRO_KUBELET_SYSTEMD_TEST_SLICE".into(),
                b(self.systemd_test_slice_probe.value),
            ),
            (
                "REPRO_KUBELET_SERIALIZE_IMAGE_PULLS".into(),
                b(self.serialize_image_pulls.value),
            ),
            (
                "REPRO_KUBELET_MAX_PARALLEL_IMAGE_PULLS".into(),
                self.max_parallel_image_pulls.value.to_string(),
            ),
            (
                "REPRO_KUBELET_API_QPS".into(),
                self.api_qps.value.to_string(),
            ),
            (
                "REPRO_KUBELET_API_BURST".into(),
                self.api_burst.value.to_string(),
            ),
            (
                "REPRO_KUBELET_CPU_REUSE_INIT".into(),
                b(self.cpu_manager_reuse_init_cpus.value),
            ),
            (
                "REPRO_KUBELET_CPU_SIDECARS_EXCLUDED".into(),
                b(self.cpu_manager_sidecars_excluded.value),
            ),
            ("REPRO_KUBELET_CGROUP_DRIVER".into(), driver.to_string()),
            ("REPRO_KUBELET_CGROUP_LAYOUT".into(), driver.to_string()),
            ("REPRO_KUBELET_POD_CGROUP".into(), layout.clone()),
            ("REPRO_DRIVER".into(), driver.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/kubelet")
    }

    #[test]
    fn shipped_profiles_parse_and_cover_the_required_versions() {
        let all = load_all(&root()).unwrap();
        let versions: Vec<&str> = all.iter().map(|p| p.version.as_str()).collect();
        for v in ["1.6", "1.9", "1.15", "1.21", "1.23", "1.27", "1.29", "1.31"] {
            assert!(versions.contains(&v), "missing {v}: {versions:?}");
        }
        // Sorted by version, not as strings.
        let i9 = versions.iter().position(|v| *v == "1.9").unwrap();
        let i15 = versions.iter().position(|v| *v == "1.15").unwrap();
        assert!(i9 < i15);
        for p in &all {
            for s in [&p.kmem_accounting.source, &p.api_qps.source, &p.runc.source] {
                assert!(!s.trim().is_empty(), "{} lacks a source", p.version);
            }
        }
    }

    #[test]
    fn facts_from_the_seeds_hold() {
        let get = |v| find(&root(), v).unwrap();
        assert!(!get("1.6").kmem_accounting.value);
        assert!(get("1.9").kmem_accounting.value);
        assert!(get("1.21").kmem_accounting.value);
        assert!(!get("1.23").kmem_accounting.value);
        assert!(get("1.15").systemd_test_slice_probe.value);
        assert!(!get("1.21").systemd_test_slice_probe.value);
        assert_eq!(
            (get("1.23").api_qps.value, get("1.27").api_qps.value),
            (5, 50)
        );
        assert_eq!(
            get("1.27").max_parallel_image_pulls.value,
            0,
            "unset by default: serialized"
        );
        assert!(get("1.29").cpu_manager_sidecars_excluded.value);
        assert!(!get("1.15").cpu_manager_reuse_init_cpus.value);
        assert!(get("1.21").cpu_manager_reuse_init_cpus.value);
    }

    #[test]
    fn a_version_unlike_the_file_name_is_an_error_at_its_place() {
        let text = std::fs::read_to_string(root().join("1.9.toml")).unwrap();
        parse_profile(Path::new("1.9.toml"), &text).unwrap();
        let e = parse_profile(Path::new("1.10.toml"), &text)
            .unwrap_err()
            .to_string();
        let (line, _) = text
            .lines()
            .enumerate()
            .find(|(_, l)| l.starts_with("version = "))
            .unwrap();
        assert_eq!(
            e,
            format!(
                "1.10.toml:{}:11: version `1.9` does not match the file name",
                line + 1
            )
        );
        // A bare value where a sourced one goes says what is expected.
        let bare: Vec<&str> = text
            .lines()
            .map(|l| {
                if l.starts_with("api_qps = ") {
                    "api_qps = 5"
                } else {
                    l
                }
            })
            .collect();
        let e = parse_profile(Path::new("1.9.toml"), &bare.join("\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with(
                ":11: invalid type: integer `5`, expected a table { value = ..., source = \"...\" }"
            ),
            "{e}"
        );
    }

    #[test]
    fn env_follows_the_driver_and_patch_versions_find_their_minor() {
        let p = find(&root(), "1.9.11").unwrap();
        let env = p.env(Some(Driver::Systemd));
        let get = |k: &str| {
            env.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(get("REPRO_KUBELET_KMEM_ACCOUNTING"), "1");
        assert_eq!(get("REPRO_KUBELET_CGROUP_LAYOUT"), "systemd");
        assert!(get("REPRO_KUBELET_POD_CGROUP").contains(".slice"));
        let e = find(&root(), "2.0").unwrap_err().to_string();
        assert!(
            e.contains("unknown kubelet profile `2.0`") && e.contains("1.9"),
            "{e}"
        );
    }
}
