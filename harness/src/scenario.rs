//! Scenario folders: `scenarios/<name>/scenario.toml` plus scripts.
//!
//! The contract is documented in `scenarios/README.md`. This module parses
//! the manifest, resolves parameters and builds the script's environment;
//! it never runs anything.

use crate::model::CgroupVersion;
use crate::tomlfile::{self, TomlFileError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `scenario.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub summary: String,
    pub entry: String,
    pub timeout_s: u64,
    pub memory_mib: u32,
    #[serde(default = "one")]
    pub vcpus: u32,
    /// Supported cgroup versions; the first is the default.
    #[serde(default = "default_cgroup")]
    pub cgroup: Vec<CgroupVersion>,
    #[serde(default)]
    pub requires: Vec<String>,
    #[serde(default)]
    pub key_metric: Option<String>,
    /// The scenario needs a root-filesystem guest (systemd as PID 1, the
    /// release's runc and containerd): on the initramfs guest it is
    /// `skipped`.
    #[serde(default)]
    pub needs_rootfs: bool,
    pub seed: Seed,
    #[serde(default)]
    pub params: BTreeMap<String, ParamSpec>,
}

fn one() -> u32 {
    1
}

fn default_cgroup() -> Vec<CgroupVersion> {
    vec![CgroupVersion::V1]
}

/// The incident report a scenario reproduces.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    pub file: String,
    pub section: String,
}

/// One parameter: a string default (empty = unset) and a description.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    #[serde(default)]
    pub default: String,
    pub description: String,
}

/// A loaded scenario folder.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub manifest: Manifest,
    pub dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("unknown scenario `{name}`; known scenarios: {known} (folders under {root})")]
    Unknown {
        name: String,
        known: String,
        root: PathBuf,
    },
    #[error(transparent)]
    Manifest(#[from] TomlFileError),
    #[error("{path}: name `{found}` does not match its folder `{folder}`")]
    NameMismatch {
        path: PathBuf,
        found: String,
        folder: String,
    },
    #[error("{path}: entry script `{entry}` does not exist")]
    MissingEntry { path: PathBuf, entry: String },
    #[error("scenario `{scenario}` has no parameter `{param}`; its parameters: {known}")]
    UnknownParam {
        scenario: String,
        param: String,
        known: String,
    },
    #[error("scenario `{scenario}` supports cgroup {supported}, not {asked}")]
    UnsupportedCgroup {
        scenario: String,
        supported: String,
        asked: String,
    },
    #[error("cannot list scenarios in {root}: {source}")]
    List {
        root: PathBuf,
        source: std::io::Error,
    },
}

impl Scenario {
    /// Loads and checks `dir/scenario.toml`.
    pub fn load(dir: &Path) -> Result<Scenario, ScenarioError> {
        let path = dir.join("scenario.toml");
        let manifest: Manifest = tomlfile::load(&path)?;
        let folder = dir
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        if manifest.name != folder {
            return Err(ScenarioError::NameMismatch {
                path,
                found: manifest.name,
                folder,
            });
        }
        if !dir.join(&manifest.entry).is_file() {
            return Err(ScenarioError::MissingEntry {
                path,
                entry: manifest.entry,
            });
        }
        Ok(Scenario {
            manifest,
            dir: dir.to_path_buf(),
        })
    }

    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// Parameters with defaults filled in and `overrides` applied.
    pub fn params(
        &self,
        overrides: &[(String, String)],
    ) -> Result<BTreeMap<String, String>, ScenarioError> {
        resolve_params(&self.manifest, overrides)
    }

    /// The cgroup version to use: `asked`, else the scenario's default.
    /// Whether the scenario supports it is [`Scenario::supports_cgroup`].
    pub fn cgroup(&self, asked: Option<CgroupVersion>) -> CgroupVersion {
        asked
            .or_else(|| self.manifest.cgroup.first().copied())
            .unwrap_or(CgroupVersion::V1)
    }

    /// Whether the scenario declares support for cgroup `version`.
    pub fn supports_cgroup(&self, version: CgroupVersion) -> bool {
        self.manifest.cgroup.contains(&version)
    }

    /// The supported versions as written: `v1/v2`.
    pub fn cgroups_text(&self) -> String {
        let v: Vec<&str> = self.manifest.cgroup.iter().map(|c| c.as_str()).collect();
        v.join("/")
    }
}

/// Pure parameter resolution (tested).
pub fn resolve_params(
    manifest: &Manifest,
    overrides: &[(String, String)],
) -> Result<BTreeMap<String, String>, ScenarioError> {
    let mut out: BTreeMap<String, String> = manifest
        .params
        .iter()
        .map(|(k, v)| (k.clone(), v.default.clone()))
        .collect();
    for (k, v) in overrides {
        if !manifest.params.contains_key(k) {
            let known: Vec<&str> = manifest.params.keys().map(String::as_str).collect();
            return Err(ScenarioError::UnknownParam {
                scenario: manifest.name.clone(),
                param: k.clone(),
                known: if known.is_empty() {
                    "(none)".into()
                } else {
                    known.join(", ")
                },
            });
        }
        out.insert(k.clone(), v.clone());
    }
    Ok(out)
}

/// `REPRO_PARAM_<NAME>` for a parameter name.
pub fn param_env_name(name: &str) -> String {
    let mut s = String::from("REPRO_PARAM_");
    for c in name.chars() {
        s.push(if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        });
    }
    s
}

/// All scenario folders under `root`, sorted by name.
pub fn list(root: &Path) -> Result<Vec<Result<Scenario, ScenarioError>>, ScenarioError> {
    let rd = std::fs::read_dir(root).map_err(|source| ScenarioError::List {
        root: root.to_path_buf(),
        source,
    })?;
    let mut dirs: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("scenario.toml").is_file())
        .collect();
    dirs.sort();
    Ok(dirs.iter().map(|d| Scenario::load(d)).collect())
}

/// Finds scenario `name` under `root`.
pub fn find(root: &Path, name: &str) -> Result<Scenario, ScenarioError> {
    let dir = root.join(name);
    if name.contains('/') || !dir.join("scenario.toml").is_file() {
        let known: Vec<String> = list(root)?
            .into_iter()
            .filter_map(|s| s.ok())
            .map(|s| s.manifest.name)
            .collect();
        return Err(ScenarioError::Unknown {
            name: name.into(),
            known: known.join(", "),
            root: root.to_path_buf(),
        });
    }
    Scenario::load(&dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const GOOD: &str = r#"
name = "demo"
summary = "a demo"
entry = "run.sh"
timeout_s = 60
memory_mib = 512
cgroup = ["v1", "v2"]
[seed]
file = "004.txt"
section = "2"
[params.limit]
default = ""
description = "stop early"
[params.headroom]
default = "99"
description = "free ids"
"#;

    fn manifest() -> Manifest {
        tomlfile::parse(Path::new("demo/scenario.toml"), GOOD).unwrap()
    }

    #[test]
    fn defaults_fill_and_overrides_apply() {
        let p = resolve_params(&manifest(), &[("limit".into(), "100".into())]).unwrap();
        assert_eq!(p["limit"], "100");
        assert_eq!(p["headroom"], "99");
        assert_eq!(manifest().vcpus, 1);
    }

    #[test]
    fn unknown_param_names_the_known_ones() {
        let e = resolve_params(&manifest(), &[("limt".into(), "1".into())]).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("limt") && msg.contains("headroom, limit"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_manifest_key_is_an_error_with_position() {
        let bad = GOOD.replace("timeout_s = 60", "timeout_s = 60\ntimout = 3");
        let e = tomlfile::parse::<Manifest>(Path::new("s.toml"), &bad).unwrap_err();
        assert!(e.to_string().starts_with("s.toml:6:1"), "{e}");
    }

    #[rstest]
    #[case("limit", "REPRO_PARAM_LIMIT")]
    #[case("pids-max", "REPRO_PARAM_PIDS_MAX")]
    #[case("interval_ms", "REPRO_PARAM_INTERVAL_MS")]
    fn env_names(#[case] name: &str, #[case] want: &str) {
        assert_eq!(param_env_name(name), want);
    }

    #[test]
    fn finds_and_rejects_scenarios_on_disk() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("demo");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("scenario.toml"), GOOD).unwrap();
        std::fs::write(d.join("run.sh"), "true").unwrap();
        assert_eq!(find(tmp.path(), "demo").unwrap().name(), "demo");
        let e = find(tmp.path(), "nope").unwrap_err().to_string();
        assert!(
            e.contains("unknown scenario `nope`") && e.contains("demo"),
            "{e}"
        );
    }
}
