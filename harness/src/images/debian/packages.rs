//! `Packages` indexes: their entries, parsing them, and which entries a query picks
//! (newest first).

use std::cmp::Ordering;
use std::fmt;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::deb822::for_each_paragraph;
use super::{DebianError, Result, ARCH};
use crate::images::cache;

/// One binary package of a `Packages` index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageEntry {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// Path of the .deb relative to the archive root serving `suite`.
    pub filename: String,
    pub sha256: String,
    pub size: u64,
    pub depends: Option<String>,
    pub source: Option<String>,
    /// Suite whose index listed it (empty when parsed from a bare text): decides which
    /// archive root (`Mirror::base_for_suite`) `filename` is relative to.
    #[serde(default)]
    pub suite: String,
}

impl PackageEntry {
    /// The file name of the .deb (last component of `filename`).
    pub fn file_name(&self) -> &str {
        self.filename.rsplit('/').next().unwrap_or(&self.filename)
    }

    /// The source package's name (`Source: linux-signed-amd64 (7.2.13+1)` gives
    /// `linux-signed-amd64`; no `Source` field means the package's own name).
    pub fn source_name(&self) -> &str {
        self.source
            .as_deref()
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or(&self.name)
    }

    /// The packages this one's `Depends` pins to exactly its own version
    /// (`linux-modules-7.2.13+deb14-amd64 (= 7.2.13-1)`), in field order: the parts
    /// of a kernel that a distribution split into several packages. Alternatives
    /// (`a | b`) count when the pinned one is among them; an architecture
    /// qualifier (`:amd64`) is dropped.
    pub fn pinned_depends(&self) -> Vec<String> {
        let Some(depends) = self.depends.as_deref() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for alt in depends.split([',', '|']) {
            let alt = alt.trim();
            let (name, rel) = match alt.split_once('(') {
                Some((n, r)) => (n.trim(), r.trim_end().trim_end_matches(')').trim()),
                None => (alt, ""),
            };
            let name = name.split(':').next().unwrap_or(name);
            let Some(v) = rel.strip_prefix('=') else {
                continue;
            };
            if v.trim() == self.version && !name.is_empty() && !out.iter().any(|n| n == name) {
                out.push(name.to_string());
            }
        }
        out
    }
}

/// Parses a `Packages` index (uncompressed text). See `for_each_paragraph` for why this
/// does not use the `debian-control` crate.
pub fn parse_packages(text: &str) -> Result<Vec<PackageEntry>> {
    parse_packages_from(text, "<text>", None)
}

/// `parse_packages` with a name for messages and an optional name filter applied before
/// anything is allocated.
pub fn parse_packages_from(
    text: &str,
    origin: &str,
    keep: Option<&dyn Fn(&str) -> bool>,
) -> Result<Vec<PackageEntry>> {
    let mut out = Vec::new();
    for_each_paragraph(text, false, |line, fields| {
        let mut get = [None::<&str>; 8];
        const KEYS: [&str; 8] = [
            "Package",
            "Version",
            "Architecture",
            "Filename",
            "SHA256",
            "Size",
            "Depends",
            "Source",
        ];
        for fld in fields {
            if let Some(i) = KEYS.iter().position(|k| *k == fld.key) {
                get[i] = Some(fld.value.trim());
            }
        }
        let bad = |message: String| DebianError::Index {
            origin: origin.to_string(),
            line,
            message,
        };
        let name = get[0].ok_or_else(|| bad("no Package field".into()))?;
        if let Some(keep) = keep {
            if !keep(name) {
                return Ok(());
            }
        }
        let need = |i: usize| {
            get[i].ok_or_else(|| bad(format!("package {name} has no {} field", KEYS[i])))
        };
        let size = need(5)?;
        let sha256 = need(4)?;
        if !cache::is_sha256_hex(sha256) {
            return Err(bad(format!(
                "package {name} has a malformed SHA256 `{sha256}`"
            )));
        }
        out.push(PackageEntry {
            name: name.to_string(),
            version: need(1)?.to_string(),
            architecture: need(2)?.to_string(),
            filename: need(3)?.to_string(),
            sha256: sha256.to_ascii_lowercase(),
            size: size
                .parse()
                .map_err(|_| bad(format!("package {name} has a malformed Size `{size}`")))?,
            depends: get[6].map(str::to_string),
            source: get[7].map(str::to_string),
            suite: String::new(),
        });
        Ok(())
    })?;
    Ok(out)
}

/// Which packages to look for.
#[derive(Debug, Clone)]
pub struct PackageQuery {
    /// Suites to search (all of them; the newest wins across suites).
    pub suites: Vec<String>,
    pub component: String,
    /// Package name pattern (anchor it with `^...$` to match whole names).
    pub name: Regex,
    /// Only versions starting with this (e.g. `6.1.`), to keep out other kernel series.
    pub version_prefix: Option<String>,
}

impl PackageQuery {
    pub fn matches(&self, e: &PackageEntry) -> bool {
        (e.architecture == ARCH || e.architecture == "all")
            && self.name.is_match(&e.name)
            && self
                .version_prefix
                .as_deref()
                .map(|p| e.version.starts_with(p))
                .unwrap_or(true)
    }
}

impl fmt::Display for PackageQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "name /{}/ in suites [{}] component {}",
            self.name.as_str(),
            self.suites.join(", "),
            self.component
        )?;
        if let Some(p) = &self.version_prefix {
            write!(f, " with version {p}*")?;
        }
        Ok(())
    }
}

/// All entries matching `q`, newest first (by Debian version, then by name, both descending).
pub fn sort_matches<'a>(
    entries: impl IntoIterator<Item = &'a PackageEntry>,
    q: &PackageQuery,
) -> Vec<&'a PackageEntry> {
    let mut v: Vec<(Option<debversion::Version>, &PackageEntry)> = entries
        .into_iter()
        .filter(|e| q.matches(e))
        .map(|e| (e.version.parse().ok(), e))
        .collect();
    // Stable sort: among identical (version, name) pairs the earlier suite stays first.
    v.sort_by(|(va, a), (vb, b)| {
        let by_version = match (va, vb) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => Ordering::Greater,
            (None, Some(_)) => Ordering::Less,
            (None, None) => a.version.cmp(&b.version),
        };
        by_version.then_with(|| a.name.cmp(&b.name)).reverse()
    });
    v.into_iter().map(|(_, e)| e).collect()
}

/// The newest entry matching `q` (highest Debian version, then greatest name).
pub fn pick_newest<'a>(
    entries: impl IntoIterator<Item = &'a PackageEntry>,
    q: &PackageQuery,
) -> Option<&'a PackageEntry> {
    sort_matches(entries, q).into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACKAGES: &str = "\
Package: bash
Essential: yes
Version: 5.2.15-2+b7
Architecture: amd64
Depends: base-files (>= 2.1.12), debianutils (>= 5.6-0.1)
Description: GNU Bourne Again SHell
 Bash is an sh-compatible command language interpreter.
 .
 more text: with a colon
Filename: pool/main/b/bash/bash_5.2.15-2+b7_amd64.deb
Size: 1491868
SHA256: 1b1bd3c3bfd1e1c6d1fe3f6e3e2e1b1e0d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a

Package: linux-image-6.1.0-50-amd64-unsigned
Source: linux (6.1.158-1)
Version: 6.1.158-1
Architecture: amd64
Filename: pool/main/l/linux/linux-image-6.1.0-50-amd64-unsigned_6.1.158-1_amd64.deb
Size: 70000000
SHA256: 00000000000000000000000000000000000000000000000000000000000000aa
";

    #[test]
    fn packages_parse() {
        let v = parse_packages(PACKAGES).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].name, "bash");
        assert_eq!(v[0].version, "5.2.15-2+b7");
        assert_eq!(v[0].size, 1491868);
        assert!(v[0].depends.as_deref().unwrap().starts_with("base-files"));
        assert_eq!(v[1].source.as_deref(), Some("linux (6.1.158-1)"));
        assert_eq!(
            v[1].file_name(),
            "linux-image-6.1.0-50-amd64-unsigned_6.1.158-1_amd64.deb"
        );
        let only =
            parse_packages_from(PACKAGES, "t", Some(&|n: &str| n.starts_with("linux"))).unwrap();
        assert_eq!(only.len(), 1);
    }

    #[test]
    fn packages_parse_errors_name_line() {
        let text = "Package: a\nVersion: 1\nArchitecture: amd64\nFilename: x\nSize: 1\n\n\nPackage: b\nVersion: 1\n";
        let e = parse_packages(text).unwrap_err();
        match e {
            DebianError::Index { line, message, .. } => {
                assert_eq!(line, 1);
                assert!(message.contains("SHA256"), "{message}");
            }
            e => panic!("{e}"),
        }
    }

    fn entry(name: &str, version: &str, suite: &str) -> PackageEntry {
        PackageEntry {
            name: name.into(),
            version: version.into(),
            architecture: "amd64".into(),
            filename: format!("pool/{name}_{version}.deb"),
            sha256: "0".repeat(64),
            size: 1,
            depends: None,
            source: None,
            suite: suite.into(),
        }
    }

    #[test]
    fn newest_kernel_excludes_flavours_and_series() {
        let entries = vec![
            entry(
                "linux-image-6.1.0-47-amd64-unsigned",
                "6.1.153-1",
                "bookworm",
            ),
            entry(
                "linux-image-6.1.0-56-amd64-unsigned",
                "6.1.176-1",
                "bookworm-security",
            ),
            entry(
                "linux-image-6.1.0-57-cloud-amd64-unsigned",
                "6.1.180-1",
                "bookworm-security",
            ),
            entry(
                "linux-image-6.1.0-57-rt-amd64-unsigned",
                "6.1.180-1",
                "bookworm-security",
            ),
            entry(
                "linux-image-6.12.117+deb12-amd64-unsigned",
                "6.12.117-1~deb12u1",
                "bookworm-security",
            ),
        ];
        let q = PackageQuery {
            suites: vec!["bookworm".into(), "bookworm-security".into()],
            component: "main".into(),
            name: Regex::new(r"^linux-image-[0-9][^-]*-[0-9.]+-amd64-unsigned$").unwrap(),
            version_prefix: Some("6.1.".into()),
        };
        let n = pick_newest(&entries, &q).unwrap();
        assert_eq!(n.name, "linux-image-6.1.0-56-amd64-unsigned");
        let all = sort_matches(&entries, &q);
        assert_eq!(all.len(), 2);
        let q2 = PackageQuery {
            version_prefix: None,
            name: Regex::new(r"^linux-image-.*-amd64-unsigned$").unwrap(),
            ..q
        };
        // Without the prefix the 6.12 backport wins; with a looser name the cloud flavour
        // ties with rt on version and wins on name order (greater name), deterministic.
        assert_eq!(
            pick_newest(&entries, &q2).unwrap().name,
            "linux-image-6.12.117+deb12-amd64-unsigned"
        );
    }

    #[test]
    fn same_package_in_two_suites_keeps_first_suite() {
        let entries = vec![
            entry("k", "1.0", "trixie"),
            entry("k", "1.0", "trixie-security"),
        ];
        let q = PackageQuery {
            suites: vec![],
            component: "main".into(),
            name: Regex::new("^k$").unwrap(),
            version_prefix: None,
        };
        assert_eq!(pick_newest(&entries, &q).unwrap().suite, "trixie");
    }

    fn entry_with(depends: &str, version: &str) -> PackageEntry {
        PackageEntry {
            name: "linux-image-7.2.13+deb14-amd64".into(),
            version: version.into(),
            architecture: "amd64".into(),
            filename: "pool/x.deb".into(),
            sha256: "0".repeat(64),
            size: 1,
            depends: Some(depends.into()),
            source: Some("linux-signed-amd64 (7.2.13+1)".into()),
            suite: "sid".into(),
        }
    }

    /// Debian's own split kernel (sid, 7.2.13-1), verbatim: the meta image package pins
    /// the binary, modules and base packages to its version; the initramfs tools and
    /// kmod are not part of the kernel.
    #[test]
    fn pinned_depends_follow_only_exact_pins_on_the_own_version() {
        let e = entry_with(
            "dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, linux-base-7.2.13+deb14-amd64 (= 7.2.13-1), linux-binary-7.2.13+deb14-amd64 (= 7.2.13-1), linux-modules-7.2.13+deb14-amd64 (= 7.2.13-1)",
            "7.2.13-1",
        );
        assert_eq!(
            e.pinned_depends(),
            [
                "linux-base-7.2.13+deb14-amd64",
                "linux-binary-7.2.13+deb14-amd64",
                "linux-modules-7.2.13+deb14-amd64"
            ]
        );
        assert_eq!(e.source_name(), "linux-signed-amd64");
        // Ubuntu's layout: an alternative, an arch qualifier, a pin on another version.
        let u = entry_with(
            "linux-modules-5.15.0-91-generic:amd64 (= 5.15.0-91.101) | foo, linux-firmware (>= 1.187) | wireless-regdb, linux-base (= 4.5ubuntu9)",
            "5.15.0-91.101",
        );
        assert_eq!(u.pinned_depends(), ["linux-modules-5.15.0-91-generic"]);
        // A complete package (trixie) pins nothing.
        let t = entry_with(
            "kmod, initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool",
            "6.12.57-1",
        );
        assert!(t.pinned_depends().is_empty());
        let none = PackageEntry {
            depends: None,
            source: None,
            ..t
        };
        assert!(none.pinned_depends().is_empty());
        assert_eq!(none.source_name(), "linux-image-7.2.13+deb14-amd64");
    }
}
