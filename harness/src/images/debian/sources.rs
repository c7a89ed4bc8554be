//! `Sources` indexes: source packages (name, version, pool folder) and their files with
//! size and SHA256 (the `Checksums-Sha256` field), and which file is the upstream tarball.

use serde::{Deserialize, Serialize};

use super::deb822::for_each_paragraph;
use super::version::compare_versions;
use super::{DebianError, Result};
use crate::images::cache;

/// One file of a source package (`.dsc`, `.orig.tar.*`, `.debian.tar.*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// One source package of a `Sources` index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceEntry {
    pub name: String,
    pub version: String,
    /// The pool folder holding the files, relative to the archive root serving `suite`.
    pub directory: String,
    pub files: Vec<SourceFile>,
    /// Suite whose index listed it (empty when parsed from a bare text).
    #[serde(default)]
    pub suite: String,
}

impl SourceEntry {
    /// The upstream tarball (`<name>_<upstream>.orig.tar.<ext>`); `None` for a native package.
    pub fn orig_tarball(&self) -> Option<&SourceFile> {
        self.files.iter().find(|f| f.name.contains(".orig.tar."))
    }

    /// The path of `file` relative to the archive root.
    pub fn path_of(&self, file: &SourceFile) -> String {
        format!("{}/{}", self.directory.trim_end_matches('/'), file.name)
    }
}

/// Parses a `Sources` index (uncompressed text); `origin` names it in errors, and `keep`
/// filters by source package name before anything is allocated.
pub fn parse_sources_from(
    text: &str,
    origin: &str,
    keep: Option<&dyn Fn(&str) -> bool>,
) -> Result<Vec<SourceEntry>> {
    let mut out = Vec::new();
    for_each_paragraph(text, false, |line, fields| {
        let get = |k: &str| fields.iter().find(|f| f.key == k).map(|f| f.value);
        let bad = |message: String| DebianError::Index {
            origin: origin.to_string(),
            line,
            message,
        };
        let name = get("Package")
            .map(str::trim)
            .ok_or_else(|| bad("no Package field".into()))?;
        if keep.is_some_and(|k| !k(name)) {
            return Ok(());
        }
        let need = |k: &str| {
            get(k)
                .map(str::trim)
                .ok_or_else(|| bad(format!("source package {name} has no {k} field")))
        };
        let version = need("Version")?;
        let directory = need("Directory")?;
        let mut files = Vec::new();
        for l in need("Checksums-Sha256")?.lines() {
            let parts: Vec<&str> = l.split_whitespace().collect();
            match parts[..] {
                [] => continue,
                [sha256, size, file] if cache::is_sha256_hex(sha256) => files.push(SourceFile {
                    name: file.to_string(),
                    size: size.parse().map_err(|_| {
                        bad(format!(
                            "source package {name}: size `{size}` of {file} is not a number"
                        ))
                    })?,
                    sha256: sha256.to_ascii_lowercase(),
                }),
                _ => {
                    return Err(bad(format!(
                    "source package {name}: Checksums-Sha256 line `{}` is not `SHA256 SIZE FILE`",
                    l.trim()
                )))
                }
            }
        }
        out.push(SourceEntry {
            name: name.to_string(),
            version: version.to_string(),
            directory: directory.to_string(),
            files,
            suite: String::new(),
        });
        Ok(())
    })?;
    Ok(out)
}

/// The newest entry (Debian version order) among `entries`.
pub fn newest_source(entries: &[SourceEntry]) -> Option<&SourceEntry> {
    entries
        .iter()
        .max_by(|a, b| compare_versions(&a.version, &b.version))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bullseye main's paragraph, verbatim.
    pub(crate) const KUBERNETES: &str = "Package: kubernetes
Binary: kubernetes-client
Version: 1.20.5+really1.20.2-1
Maintainer: Janos Lenart <ocsi@debian.org>
Build-Depends: debhelper (>= 12~), bash-completion, golang-1.15-go, jq, rsync
Architecture: amd64 i386 armel armhf arm64 s390x
Standards-Version: 4.5.0
Format: 3.0 (quilt)
Files:
 80b2e265a0210aa648ff4dc67893a5bb 1963 kubernetes_1.20.5+really1.20.2-1.dsc
 20b98978e86e1e783dd226ce966a85e8 34428927 kubernetes_1.20.5+really1.20.2.orig.tar.gz
 77d5e9d889234b55325d222c65a2b4d6 17136 kubernetes_1.20.5+really1.20.2-1.debian.tar.xz
Checksums-Sha256:
 0b44020d43c4ed903eb2276db7d158b7f9d52e98339957f865fc3d7cc8fe458c 1963 kubernetes_1.20.5+really1.20.2-1.dsc
 b83c0780efb182d928dc63d46488a847f161f04e40a94b96bf5247dd671ecdfc 34428927 kubernetes_1.20.5+really1.20.2.orig.tar.gz
 b71a0398d189fe8459dd776052d5495d8267abb18a9f2174a0f2f71ca609e950 17136 kubernetes_1.20.5+really1.20.2-1.debian.tar.xz
Homepage: http://kubernetes.io/
Package-List: 
 kubernetes-client deb admin optional arch=amd64,i386,armel,armhf,arm64,s390x
Directory: pool/main/k/kubernetes
Priority: optional
Section: misc
";

    #[test]
    fn a_verbatim_paragraph_gives_the_files_with_their_sha256() {
        let text = format!("Package: other\nVersion: 1\nDirectory: pool/main/o/other\nChecksums-Sha256:\n {} 3 other_1.dsc\n\n{KUBERNETES}", "a".repeat(64));
        let all = parse_sources_from(&text, "t", None).unwrap();
        assert_eq!(all.len(), 2);
        let k = &all[1];
        assert_eq!(
            (k.name.as_str(), k.version.as_str(), k.directory.as_str()),
            (
                "kubernetes",
                "1.20.5+really1.20.2-1",
                "pool/main/k/kubernetes"
            )
        );
        assert_eq!(k.files.len(), 3);
        let orig = k.orig_tarball().unwrap();
        assert_eq!(orig.name, "kubernetes_1.20.5+really1.20.2.orig.tar.gz");
        assert_eq!(orig.size, 34_428_927);
        assert_eq!(
            orig.sha256,
            "b83c0780efb182d928dc63d46488a847f161f04e40a94b96bf5247dd671ecdfc"
        );
        assert_eq!(
            k.path_of(orig),
            "pool/main/k/kubernetes/kubernetes_1.20.5+really1.20.2.orig.tar.gz"
        );
        // The filter keeps only what it names.
        let only = parse_sources_from(&text, "t", Some(&|n: &str| n == "kubernetes")).unwrap();
        assert_eq!(only, vec![k.clone()]);
        assert!(all[0].orig_tarball().is_none(), "a native package has none");
    }

    #[test]
    fn malformed_paragraphs_are_refused_at_their_line() {
        let no_dir = KUBERNETES.replace("Directory: pool/main/k/kubernetes\n", "");
        let e = parse_sources_from(&format!("\n\n{no_dir}"), "bullseye/main", None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bullseye/main, paragraph at line 3")
                && e.contains("kubernetes has no Directory field"),
            "{e}"
        );
        let bad_size = KUBERNETES.replace(
            " 34428927 kubernetes_1.20.5+really1.20.2.orig",
            " 34x kubernetes_1.20.5+really1.20.2.orig",
        );
        let e = parse_sources_from(&bad_size, "x", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("size `34x`"), "{e}");
        let bad_line = KUBERNETES.replace(
            "0b44020d43c4ed903eb2276db7d158b7f9d52e98339957f865fc3d7cc8fe458c 1963",
            "0b44 1963",
        );
        let e = parse_sources_from(&bad_line, "x", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not `SHA256 SIZE FILE`"), "{e}");
    }

    #[test]
    fn newest_follows_debian_version_order() {
        let mut a = parse_sources_from(KUBERNETES, "x", None).unwrap().remove(0);
        let mut b = a.clone();
        b.version = "1.20.5+really1.20.2-1~bpo10+1".into();
        a.suite = "one".into();
        assert_eq!(newest_source(&[b.clone(), a.clone()]).unwrap().suite, "one");
        assert!(newest_source(&[]).is_none());
    }
}
