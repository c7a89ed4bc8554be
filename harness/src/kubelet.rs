//! Kubelet profiles (`images/kubelet/<version>.toml`): what a kubelet
//! version does to a node that matters to the scenarios, each item with
//! its source. A profile reproduces the kubelet's node-level actions (the
//! cgroups it creates, whether its runc enables kernel-memory accounting,
//! its defaults), not the kubelet binary; scenarios receive its values as
//! `REPRO_KUBELET_*` environment variables. Where a real kubelet exists, the
//! file also says where it comes from: `[build]` (built from a Debian source
//! package, see `images::kubelet`) or `[binary]` (the official binary, pinned
//! by sha256).

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

/// An official kubelet binary (for connected machines): downloaded from
/// `url` and verified against `sha256`; a binary without a pinned sha256 is
/// not downloaded.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Binary {
    pub version: String,
    pub url: String,
    #[serde(default, deserialize_with = "sha256_opt")]
    pub sha256: Option<String>,
}

/// Where a `[build]` table's kubelet comes from.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum BuildKind {
    /// Built on the host from a Debian source package with Debian's Go.
    DebianSource,
}

/// `[build]`: a real kubelet built from a Debian source package.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Build {
    pub binary: BuildKind,
    /// The source package (`kubernetes`) and where its `Sources` entry is.
    pub package: String,
    pub suite: String,
    pub component: String,
    /// The upstream tag the tree is (`v1.20.2`): what the binaries print,
    /// set with `-ldflags -X`.
    #[serde(deserialize_with = "git_version")]
    pub git_version: String,
    /// The Go toolchain's packages (compiler, standard library sources),
    /// unpacked side by side into a GOROOT, and their suite and component.
    #[serde(deserialize_with = "go_packages")]
    pub go_packages: Vec<String>,
    pub go_suite: String,
    #[serde(default = "main_component")]
    pub go_component: String,
    /// Commands built from `./cmd/<name>` of the tree (`kubelet` first).
    #[serde(deserialize_with = "commands")]
    pub commands: Vec<String>,
    /// The pause container's C source in the tree.
    pub pause_source: String,
}

fn main_component() -> String {
    "main".into()
}

impl Build {
    /// `(major, minor)` of `git_version` (`v1.20.2` gives `("1", "20")`).
    pub fn major_minor(&self) -> (&str, &str) {
        let mut it = self.git_version.trim_start_matches('v').split('.');
        (it.next().unwrap_or(""), it.next().unwrap_or(""))
    }

    /// The linker flags every command is built with: stripped, and the
    /// version the binaries print.
    pub fn ldflags(&self) -> String {
        let (major, minor) = self.major_minor();
        let v = "k8s.io/component-base/version";
        format!(
            "-s -w -X {v}.gitVersion={} -X {v}.gitMajor={major} -X {v}.gitMinor={minor}",
            self.git_version
        )
    }
}

fn sha256_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(Some(s.to_ascii_lowercase()))
    } else {
        Err(serde::de::Error::custom(format!(
            "`{s}` is not a sha256 (64 hex digits)"
        )))
    }
}

fn git_version<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let ok = s.strip_prefix('v').is_some_and(|rest| {
        let parts: Vec<&str> = rest.split('.').collect();
        parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    });
    if ok {
        Ok(s)
    } else {
        Err(serde::de::Error::custom(format!(
            "`{s}` is not an upstream tag like `v1.20.2`"
        )))
    }
}

/// A name that is safe in a path and on a command line: `[a-z0-9.+-]`.
fn plain_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(['.', '-'])
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
}

fn names<'de, D: serde::Deserializer<'de>>(d: D, what: &str) -> Result<Vec<String>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    if v.is_empty() {
        return Err(serde::de::Error::custom(format!(
            "list at least one {what}"
        )));
    }
    match v.iter().find(|s| !plain_name(s)) {
        Some(bad) => Err(serde::de::Error::custom(format!(
            "`{bad}` is not a {what} name (lowercase letters, digits, `.`, `+`, `-`)"
        ))),
        None => Ok(v),
    }
}

fn go_packages<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    names(d, "package")
}

fn commands<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = names(d, "command")?;
    if v[0] != "kubelet" {
        return Err(serde::de::Error::custom(format!(
            "the first command must be `kubelet`, not `{}`",
            v[0]
        )));
    }
    Ok(v)
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
    /// A real kubelet built from source (see [`Build`]).
    pub build: Option<Build>,
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
        for v in [
            "1.6", "1.9", "1.15", "1.20", "1.21", "1.23", "1.27", "1.29", "1.31",
        ] {
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

    #[test]
    fn the_1_20_profile_builds_from_debian_source() {
        let p = find(&root(), "1.20.2").unwrap();
        let b = p.build.expect("1.20 has a [build] table");
        assert_eq!(b.binary, BuildKind::DebianSource);
        assert_eq!(
            (b.package.as_str(), b.suite.as_str(), b.component.as_str()),
            ("kubernetes", "bullseye", "main")
        );
        assert_eq!(b.go_packages, ["golang-1.15-go", "golang-1.15-src"]);
        assert_eq!(b.commands, ["kubelet"]);
        assert_eq!(b.major_minor(), ("1", "20"));
        assert_eq!(
            b.ldflags(),
            "-s -w -X k8s.io/component-base/version.gitVersion=v1.20.2 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=20"
        );
        assert!(
            p.kmem_accounting.value,
            "runc rc92 still enables kmem accounting"
        );
        // Profiles without [build] keep working, and their [binary] parses.
        let old = find(&root(), "1.23").unwrap();
        assert!(old.build.is_none());
        let bin = old.binary.unwrap();
        assert_eq!(bin.sha256.as_deref().map(str::len), Some(64));
        assert!(find(&root(), "1.21")
            .unwrap()
            .binary
            .unwrap()
            .sha256
            .is_none());
    }

    /// 1.20.toml with one line of its [build] table replaced.
    fn with_build_line(key: &str, line: &str) -> (String, Result<Profile, ProfileError>) {
        let text = std::fs::read_to_string(root().join("1.20.toml")).unwrap();
        let changed: Vec<&str> = text
            .lines()
            .map(|l| {
                if l.starts_with(&format!("{key} = ")) {
                    line
                } else {
                    l
                }
            })
            .collect();
        let changed = changed.join("\n");
        let r = parse_profile(Path::new("1.20.toml"), &changed);
        (changed, r)
    }

    #[test]
    fn build_table_errors_point_at_the_value() {
        let cases = [
            (
                "binary",
                "binary = \"magic\"",
                "unknown variant `magic`, expected `debian-source`",
            ),
            (
                "git_version",
                "git_version = \"1.20\"",
                "`1.20` is not an upstream tag like `v1.20.2`",
            ),
            ("commands", "commands = []", "list at least one command"),
            (
                "commands",
                "commands = [\"kube-apiserver\", \"kubelet\"]",
                "the first command must be `kubelet`, not `kube-apiserver`",
            ),
            (
                "commands",
                "commands = [\"kubelet\", \"../x\"]",
                "`../x` is not a command name (lowercase letters, digits, `.`, `+`, `-`)",
            ),
            (
                "go_packages",
                "go_packages = [\"Go 1.15\"]",
                "`Go 1.15` is not a package name (lowercase letters, digits, `.`, `+`, `-`)",
            ),
        ];
        for (key, line, want) in cases {
            let (text, r) = with_build_line(key, line);
            let e = r.unwrap_err().to_string();
            let at = text.lines().position(|l| l == line).unwrap() + 1;
            let col = line.find('=').unwrap() + 3;
            assert_eq!(e, format!("1.20.toml:{at}:{col}: {want}"), "{line}");
        }
        let (_, r) = with_build_line("package", "packages = \"kubernetes\"");
        let e = r.unwrap_err().to_string();
        assert!(e.contains("unknown field `packages`"), "{e}");
    }

    #[test]
    fn a_malformed_pinned_sha256_is_refused_at_its_place() {
        let text = std::fs::read_to_string(root().join("1.23.toml")).unwrap();
        let bad = text.replace(
            "sha256 = \"ab4c64a54c3c6de57108b7b83bdcf03413285f06adccfa2bbc5535d20a684682\"",
            "sha256 = \"ab4c\"",
        );
        let e = parse_profile(Path::new("1.23.toml"), &bad)
            .unwrap_err()
            .to_string();
        let line = bad
            .lines()
            .position(|l| l.starts_with("sha256 = "))
            .unwrap()
            + 1;
        assert_eq!(
            e,
            format!("1.23.toml:{line}:10: `ab4c` is not a sha256 (64 hex digits)")
        );
    }
}
