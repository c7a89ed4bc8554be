//! Kernel manifests (`images/kernels/*.toml`): parsing and checking them, with
//! `file:line:column` errors, and the uniqueness of names and aliases across them.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::{KernelError, Result};
use crate::images::cache;
use crate::images::debian::PackageQuery;
use crate::tomlfile;

/// How a manifest's kernel is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KernelKind {
    /// A `linux-image-*` package from the Debian archive (mirror from configuration).
    Debian,
    /// An RPM at a fixed URL (CentOS kernels).
    RpmUrl,
}

/// `images/kernels/<name>.toml`. The fields are documented once, in `images/kernels/README.md`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelManifest {
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub distro: String,
    pub kind: KernelKind,
    /// kind debian: suites searched (all of them; the newest matching package wins).
    #[serde(default)]
    pub suites: Vec<String>,
    /// kind debian: archive component (default `main`).
    pub component: Option<String>,
    /// kind debian: regular expression for whole package names.
    pub package: Option<String>,
    /// kind debian: only package versions starting with this.
    pub version_prefix: Option<String>,
    /// kind debian: this exact package version instead of the newest.
    pub pin: Option<String>,
    /// kind rpm-url: where the package is.
    pub url: Option<String>,
    /// kind rpm-url: its sha256 (absent: pinned on first download, see kernels/pins/).
    pub sha256: Option<String>,
    /// kind rpm-url: the package version (so `--kernel <version>` finds it).
    pub version: Option<String>,
    /// Free text for people.
    pub note: Option<String>,
}

impl KernelManifest {
    pub fn component(&self) -> &str {
        self.component.as_deref().unwrap_or("main")
    }

    /// The package query of a `debian` manifest.
    pub fn query(&self) -> Result<PackageQuery> {
        let pattern = self.package.as_deref().unwrap_or("");
        let name = Regex::new(pattern).map_err(|e| KernelError::Manifest {
            path: PathBuf::from(format!("images/kernels/{}.toml", self.name)),
            line: 0,
            column: 0,
            message: format!("`package` is not a valid regular expression: {e}"),
        })?;
        Ok(PackageQuery {
            suites: self.suites.clone(),
            component: self.component().to_string(),
            name,
            version_prefix: self.version_prefix.clone(),
        })
    }

    /// Name and aliases, for messages: `bookworm (6.1, bookworm)`.
    pub fn label(&self) -> String {
        if self.aliases.is_empty() {
            self.name.clone()
        } else {
            format!("{} ({})", self.name, self.aliases.join(", "))
        }
    }

    /// The sha256 of the manifest's fields: a recorded resolution is valid only for the
    /// manifest that made it.
    pub(super) fn digest(&self) -> Result<String> {
        let json = serde_json::to_vec(self).map_err(|e| KernelError::Manifest {
            path: PathBuf::from(format!("images/kernels/{}.toml", self.name)),
            line: 0,
            column: 0,
            message: format!("cannot serialize the manifest: {e}"),
        })?;
        Ok(cache::sha256_bytes(&json))
    }
}

/// Parses and checks one manifest; `path` names it in errors (with line and column).
pub fn parse_manifest(path: &Path, text: &str) -> Result<KernelManifest> {
    let m: KernelManifest = tomlfile::parse(path, text)?;
    let err = |key: &str, message: String| {
        let (line, column) = key_position(text, key);
        KernelError::Manifest {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    };
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
    };
    if !name_ok(&m.name) {
        return Err(err(
            "name",
            format!(
                "name `{}` must be non-empty and use only letters, digits and . _ - +",
                m.name
            ),
        ));
    }
    if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
        if stem != m.name {
            return Err(err(
                "name",
                format!("name `{}` must match the file name `{stem}.toml`", m.name),
            ));
        }
    }
    for a in &m.aliases {
        if !name_ok(a) || a.contains('@') || a.contains('/') {
            return Err(err(
                "aliases",
                format!("alias `{a}` must be non-empty and use only letters, digits and . _ - +"),
            ));
        }
    }
    let forbid = |keys: &[(&str, bool)], kind: &str| -> Result<()> {
        for (k, present) in keys {
            if *present {
                return Err(err(k, format!("`{k}` does not apply to kind = \"{kind}\"")));
            }
        }
        Ok(())
    };
    match m.kind {
        KernelKind::Debian => {
            forbid(
                &[
                    ("url", m.url.is_some()),
                    ("sha256", m.sha256.is_some()),
                    ("version", m.version.is_some()),
                ],
                "debian",
            )?;
            if m.suites.is_empty() {
                return Err(err(
                    "kind",
                    "kind = \"debian\" needs `suites` (e.g. [\"bookworm\", \"bookworm-security\"])"
                        .into(),
                ));
            }
            let Some(p) = &m.package else {
                return Err(err(
                    "kind",
                    "kind = \"debian\" needs `package`, a regular expression for package names"
                        .into(),
                ));
            };
            if let Err(e) = Regex::new(p) {
                return Err(err(
                    "package",
                    format!("`package` is not a valid regular expression: {e}"),
                ));
            }
            if let (Some(pin), Some(prefix)) = (&m.pin, &m.version_prefix) {
                if !pin.starts_with(prefix.as_str()) {
                    return Err(err(
                        "pin",
                        format!("pin `{pin}` does not start with version_prefix `{prefix}`"),
                    ));
                }
            }
        }
        KernelKind::RpmUrl => {
            forbid(
                &[
                    ("suites", !m.suites.is_empty()),
                    ("component", m.component.is_some()),
                    ("package", m.package.is_some()),
                    ("version_prefix", m.version_prefix.is_some()),
                    ("pin", m.pin.is_some()),
                ],
                "rpm-url",
            )?;
            match &m.url {
                Some(u)
                    if u.starts_with("https://")
                        || u.starts_with("http://")
                        || u.starts_with("file:///") => {}
                Some(u) => {
                    return Err(err(
                        "url",
                        format!("url `{u}` must be an http(s):// or file:/// URL"),
                    ))
                }
                None => return Err(err("kind", "kind = \"rpm-url\" needs `url`".into())),
            }
            if let Some(s) = &m.sha256 {
                if !cache::is_sha256_hex(s) {
                    return Err(err("sha256", format!("sha256 `{s}` is not 64 hex digits")));
                }
            }
        }
    }
    Ok(m)
}

/// 1-based line and column of `key = ...` in a TOML text (1:1 when absent).
fn key_position(text: &str, key: &str) -> (usize, usize) {
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix(key) {
            if rest.trim_start().starts_with('=') {
                return (i + 1, line.len() - t.len() + 1);
            }
        }
    }
    (1, 1)
}

/// Loads every `*.toml` of a folder (sorted by file name) and checks that names and
/// aliases are unique.
pub fn load_manifests(dir: &Path) -> Result<Vec<KernelManifest>> {
    let rd = fs::read_dir(dir).map_err(|source| KernelError::ManifestDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = tomlfile::read(&f)?;
        out.push(parse_manifest(&f, &text)?);
    }
    check_unique(&out)?;
    Ok(out)
}

/// Names and aliases must be unique across manifests (a manifest may list its own name as
/// an alias).
pub fn check_unique(manifests: &[KernelManifest]) -> Result<()> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for m in manifests {
        let own: BTreeSet<&str> = std::iter::once(m.name.as_str())
            .chain(m.aliases.iter().map(String::as_str))
            .collect();
        for a in own {
            if let Some(prev) = seen.insert(a, &m.name) {
                return Err(KernelError::DuplicateAlias {
                    alias: a.to_string(),
                    first: prev.to_string(),
                    second: m.name.clone(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The manifests shipped in `images/kernels/`.
    pub(crate) fn manifests() -> Vec<KernelManifest> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/kernels");
        load_manifests(&dir).unwrap()
    }
    #[test]
    fn shipped_manifests_load() {
        let ms = manifests();
        let names: Vec<_> = ms.iter().map(|m| m.name.as_str()).collect();
        for n in ["bookworm", "bullseye", "centos7-3.10", "trixie"] {
            assert!(names.contains(&n), "{names:?}");
        }
        for m in ms.iter().filter(|m| m.kind == KernelKind::Debian) {
            m.query().unwrap();
        }
    }

    const GOOD: &str = r#"
name = "k"
aliases = ["1.0"]
distro = "debian-12"
kind = "debian"
suites = ["bookworm"]
package = '^linux-image-.*$'
version_prefix = "1.0."
"#;

    #[test]
    fn manifest_validation_points_at_lines() {
        parse_manifest(Path::new("k.toml"), GOOD).unwrap();
        let e = parse_manifest(Path::new("k.toml"), &format!("{GOOD}bogus = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("k.toml:9:1:"), "{e}");
        let e = parse_manifest(
            Path::new("k.toml"),
            &GOOD.replace("'^linux-image-.*$'", "'('"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("k.toml:7:1:") && e.contains("regular expression"),
            "{e}"
        );
        let e = parse_manifest(Path::new("other.toml"), GOOD)
            .unwrap_err()
            .to_string();
        assert!(e.contains("must match the file name"), "{e}");
        let e = parse_manifest(
            Path::new("k.toml"),
            &format!("{GOOD}url = \"https://x.example/a.rpm\"\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("k.toml:9:1:") && e.contains("does not apply"),
            "{e}"
        );
        let e = parse_manifest(Path::new("k.toml"), &GOOD.replace("\"debian\"", "\"rpm\""))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("k.toml:5:"), "{e}");
        let e = parse_manifest(Path::new("k.toml"), &format!("{GOOD}pin = \"2.0-1\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("version_prefix"), "{e}");
    }

    #[test]
    fn duplicate_aliases_rejected() {
        let a = parse_manifest(Path::new("k.toml"), GOOD).unwrap();
        let mut b = a.clone();
        b.name = "j".into();
        let e = check_unique(&[a, b]).unwrap_err().to_string();
        assert!(e.contains("`1.0`") || e.contains("`k`"), "{e}");
    }
}
