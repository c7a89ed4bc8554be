//! `--kernel` arguments: a manifest name, an alias, a package version, `NAME@VERSION`, or
//! `PATH/TO/vmlinuz[:MODULES_DIR]`, and finding the manifest an alias names.

use std::fmt;
use std::path::{Path, PathBuf};

use super::manifest::{KernelKind, KernelManifest};
use super::{KernelError, Result};

/// A `--kernel` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSpec {
    /// A manifest name, an alias, a package version, or `NAME@VERSION`.
    Alias(String),
    /// A local kernel: a bzImage (or an ELF vmlinux) and optionally its modules folder.
    Path {
        vmlinuz: PathBuf,
        modules: Option<PathBuf>,
    },
}

impl KernelSpec {
    /// `PATH/TO/vmlinuz[:MODULES_DIR]` when the argument contains `/` or names an existing
    /// file; otherwise an alias.
    pub fn parse(s: &str) -> KernelSpec {
        Self::parse_with(s, &|p| p.exists())
    }

    /// `parse` with the existence check given (pure, for tests).
    pub fn parse_with(s: &str, exists: &dyn Fn(&Path) -> bool) -> KernelSpec {
        if !s.contains('/') && !exists(Path::new(s)) {
            return KernelSpec::Alias(s.to_string());
        }
        if exists(Path::new(s)) {
            return KernelSpec::Path {
                vmlinuz: PathBuf::from(s),
                modules: None,
            };
        }
        match s.rsplit_once(':') {
            Some((k, m)) if !k.is_empty() && !m.is_empty() => KernelSpec::Path {
                vmlinuz: PathBuf::from(k),
                modules: Some(PathBuf::from(m)),
            },
            _ => KernelSpec::Path {
                vmlinuz: PathBuf::from(s),
                modules: None,
            },
        }
    }
}

impl std::str::FromStr for KernelSpec {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(KernelSpec::parse(s))
    }
}

impl fmt::Display for KernelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelSpec::Alias(a) => f.write_str(a),
            KernelSpec::Path {
                vmlinuz,
                modules: None,
            } => write!(f, "{}", vmlinuz.display()),
            KernelSpec::Path {
                vmlinuz,
                modules: Some(m),
            } => write!(f, "{}:{}", vmlinuz.display(), m.display()),
        }
    }
}

/// A manifest chosen by `resolve_alias`, with the exact version asked for, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasMatch<'a> {
    pub manifest: &'a KernelManifest,
    pub version: Option<String>,
}

/// Finds the manifest for a name, an alias, a package version, or `NAME@VERSION`.
pub fn resolve_alias<'a>(manifests: &'a [KernelManifest], wanted: &str) -> Result<AliasMatch<'a>> {
    let by_name = |n: &str| {
        manifests
            .iter()
            .find(|m| m.name == n)
            .or_else(|| manifests.iter().find(|m| m.aliases.iter().any(|a| a == n)))
    };
    let unknown = || KernelError::UnknownKernel {
        wanted: wanted.to_string(),
        known: if manifests.is_empty() {
            "none (images/kernels/ is empty)".to_string()
        } else {
            manifests
                .iter()
                .map(KernelManifest::label)
                .collect::<Vec<_>>()
                .join("; ")
        },
    };
    if let Some((n, v)) = wanted.split_once('@') {
        let m = by_name(n).ok_or_else(unknown)?;
        return Ok(AliasMatch {
            manifest: m,
            version: Some(v.to_string()),
        });
    }
    if let Some(m) = by_name(wanted) {
        return Ok(AliasMatch {
            manifest: m,
            version: m.pin.clone(),
        });
    }
    let fits: Vec<&KernelManifest> = manifests
        .iter()
        .filter(|m| match m.kind {
            KernelKind::Debian => m
                .version_prefix
                .as_deref()
                .is_some_and(|p| wanted.starts_with(p) && wanted.len() > p.len()),
            KernelKind::RpmUrl => m.version.as_deref() == Some(wanted),
        })
        .collect();
    match fits.as_slice() {
        [] => Err(unknown()),
        [m] => Ok(AliasMatch {
            manifest: m,
            version: Some(wanted.to_string()),
        }),
        many => Err(KernelError::AmbiguousVersion {
            wanted: wanted.to_string(),
            candidates: many
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::kernel::manifest::tests::manifests;
    use rstest::rstest;

    #[rstest]
    #[case("6.1", "bookworm", None)]
    #[case("bookworm", "bookworm", None)]
    #[case("5.10", "bullseye", None)]
    #[case("6.12", "trixie", None)]
    #[case("trixie", "trixie", None)]
    #[case("3.10", "centos7-3.10", None)]
    #[case("centos7", "centos7-3.10", None)]
    #[case("6.1.158-1", "bookworm", Some("6.1.158-1"))]
    #[case("6.12.57-1", "trixie", Some("6.12.57-1"))]
    #[case("5.10.237-1", "bullseye", Some("5.10.237-1"))]
    #[case("bookworm@6.1.99-1", "bookworm", Some("6.1.99-1"))]
    #[case("3.10.0-957.21.3.el7", "centos7-3.10", Some("3.10.0-957.21.3.el7"))]
    fn aliases(#[case] wanted: &str, #[case] manifest: &str, #[case] version: Option<&str>) {
        let ms = manifests();
        let m = resolve_alias(&ms, wanted).unwrap();
        assert_eq!(m.manifest.name, manifest);
        assert_eq!(m.version.as_deref(), version);
    }

    #[test]
    fn unknown_alias_lists_known() {
        let ms = manifests();
        let e = resolve_alias(&ms, "4.19").unwrap_err().to_string();
        assert!(e.contains("bookworm (6.1, bookworm)"), "{e}");
        assert!(e.contains("trixie (6.12, trixie)"), "{e}");
        assert!(e.contains("centos7-3.10"), "{e}");
        assert!(resolve_alias(&ms, "nope@1").is_err());
    }

    #[test]
    fn ambiguous_version() {
        let mut ms = manifests();
        let mut twin = ms.iter().find(|m| m.name == "bookworm").unwrap().clone();
        twin.name = "bookworm-twin".into();
        twin.aliases.clear();
        ms.push(twin);
        let e = resolve_alias(&ms, "6.1.158-1").unwrap_err();
        assert!(matches!(e, KernelError::AmbiguousVersion { .. }), "{e}");
        assert_eq!(
            resolve_alias(&ms, "bookworm-twin@6.1.158-1")
                .unwrap()
                .manifest
                .name,
            "bookworm-twin"
        );
    }

    #[rstest]
    #[case("6.1", KernelSpec::Alias("6.1".into()))]
    #[case("./vmlinuz", KernelSpec::Path { vmlinuz: "./vmlinuz".into(), modules: None })]
    #[case("/k/vmlinuz:/k/modules", KernelSpec::Path { vmlinuz: "/k/vmlinuz".into(), modules: Some("/k/modules".into()) })]
    #[case("exists", KernelSpec::Path { vmlinuz: "exists".into(), modules: None })]
    #[case("/odd:name", KernelSpec::Path { vmlinuz: "/odd:name".into(), modules: None })]
    fn specs(#[case] s: &str, #[case] want: KernelSpec) {
        let exists = |p: &Path| p == Path::new("exists") || p == Path::new("/odd:name");
        assert_eq!(KernelSpec::parse_with(s, &exists), want);
    }
}
