//! Which Debian mirror: the caller's (`--mirror`, `debian_mirror` in matrix.toml), then
//! `REPRO_DEBIAN_MIRROR`, then the host's apt sources (one-line and deb822 formats). The
//! mirror is never hard-coded.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::deb822::for_each_paragraph;
use super::{DebianError, Result, MIRROR_ENV, SECURITY_MIRROR_ENV};

/// Where Debian packages come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mirror {
    /// Archive root for regular suites (holds `dists/` and `pool/`), without trailing `/`.
    pub archive: String,
    /// Archive root for `<suite>-security` suites, if known.
    pub security: Option<String>,
    /// Where this came from, for messages (e.g. `REPRO_DEBIAN_MIRROR`, a sources file path).
    pub source: String,
}

impl Mirror {
    /// The archive root serving `suite`: the security archive for `*-security` suites.
    pub fn base_for_suite(&self, suite: &str) -> Result<&str> {
        if is_security_suite(suite) {
            self.security
                .as_deref()
                .ok_or_else(|| DebianError::NoSecurityMirror {
                    suite: suite.to_string(),
                    origin: self.source.clone(),
                })
        } else {
            Ok(&self.archive)
        }
    }
}

impl fmt::Display for Mirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.archive)?;
        if let Some(s) = &self.security {
            write!(f, " (security: {s})")?;
        }
        write!(f, " from {}", self.source)
    }
}

pub fn is_security_suite(suite: &str) -> bool {
    suite.ends_with("-security") || suite.ends_with("/updates")
}

/// One apt source entry (a one-line `deb` line or a deb822 stanza).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptSource {
    pub types: Vec<String>,
    pub uris: Vec<String>,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    pub enabled: bool,
    /// File (and line) it came from.
    pub origin: String,
}

/// Finds the Debian mirror: `explicit` (from `--mirror` or matrix.toml), then
/// `REPRO_DEBIAN_MIRROR`, then the host's apt sources in `/etc/apt`.
/// An explicit or environment value is `ARCHIVE_URL` or `ARCHIVE_URL,SECURITY_URL`;
/// `REPRO_DEBIAN_SECURITY_MIRROR` overrides the security archive in every case.
pub fn discover_mirror(explicit: Option<&str>) -> Result<Mirror> {
    discover_mirror_from(
        explicit,
        &|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()),
        Path::new("/etc/apt"),
    )
}

/// `discover_mirror` with the environment and the apt folder given (for tests).
pub fn discover_mirror_from(
    explicit: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    apt_dir: &Path,
) -> Result<Mirror> {
    let mut mirror = if let Some(v) = explicit.filter(|v| !v.trim().is_empty()) {
        mirror_from_value(v, "the --mirror option or `debian_mirror` in matrix.toml")?
    } else if let Some(v) = env(MIRROR_ENV) {
        mirror_from_value(&v, MIRROR_ENV)?
    } else {
        let sources = read_apt_sources(apt_dir);
        choose_mirror(&sources).ok_or_else(|| DebianError::NoMirror {
            tried: format!(
                "no --mirror, no {MIRROR_ENV}, and no Debian archive in {}/sources.list or {}/sources.list.d/",
                apt_dir.display(),
                apt_dir.display()
            ),
        })?
    };
    if let Some(sec) = env(SECURITY_MIRROR_ENV) {
        let sec = normalize_url(&sec, SECURITY_MIRROR_ENV)?;
        mirror.security = Some(sec);
        mirror.source = format!("{} (security from {SECURITY_MIRROR_ENV})", mirror.source);
    }
    Ok(mirror)
}

/// Parses `ARCHIVE[,SECURITY]` (a comma or whitespace between them).
pub fn mirror_from_value(value: &str, origin: &str) -> Result<Mirror> {
    let mut parts = value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty());
    let archive = normalize_url(parts.next().unwrap_or(""), origin)?;
    let security = match parts.next() {
        Some(s) => Some(normalize_url(s, origin)?),
        None => derived_security(&archive),
    };
    if let Some(extra) = parts.next() {
        return Err(DebianError::BadMirrorUrl {
            url: value.to_string(),
            origin: origin.to_string(),
            why: format!("unexpected third URL `{extra}` (expected ARCHIVE or ARCHIVE,SECURITY)"),
        });
    }
    Ok(Mirror {
        archive,
        security,
        source: origin.to_string(),
    })
}

/// The usual layout of a Debian mirror puts the security archive beside the main one:
/// `<root>/debian` and `<root>/debian-security`.
fn derived_security(archive: &str) -> Option<String> {
    archive
        .ends_with("/debian")
        .then(|| format!("{archive}-security"))
}

fn normalize_url(url: &str, origin: &str) -> Result<String> {
    let u = url.trim().trim_end_matches('/');
    let bad = |why: &str| DebianError::BadMirrorUrl {
        url: url.to_string(),
        origin: origin.to_string(),
        why: why.to_string(),
    };
    if u.is_empty() {
        return Err(bad("it is empty"));
    }
    let rest = ["http://", "https://", "file://"]
        .iter()
        .find_map(|s| u.strip_prefix(s))
        .ok_or_else(|| bad("only http://, https:// and file:// are supported"))?;
    if rest.is_empty() || u.starts_with("file://") && !rest.starts_with('/') {
        return Err(bad("it has no host or absolute path"));
    }
    Ok(u.to_string())
}

fn read_apt_sources(apt_dir: &Path) -> Vec<AptSource> {
    let mut out = Vec::new();
    let main = apt_dir.join("sources.list");
    if let Ok(text) = fs::read_to_string(&main) {
        out.extend(parse_one_line_sources(&text, &main.display().to_string()));
    }
    let mut files: Vec<PathBuf> = fs::read_dir(apt_dir.join("sources.list.d"))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    for f in files {
        let origin = f.display().to_string();
        let Ok(text) = fs::read_to_string(&f) else {
            continue;
        };
        match f.extension().and_then(|e| e.to_str()) {
            Some("list") => out.extend(parse_one_line_sources(&text, &origin)),
            Some("sources") => out.extend(parse_deb822_sources(&text, &origin)),
            _ => {} // apt ignores other names too (e.g. `*.disabled`, `*.save`)
        }
    }
    out
}

/// Parses the one-line format: `deb [opt=val ...] URI SUITE [COMPONENT...]`.
pub fn parse_one_line_sources(text: &str, origin: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (ty, mut rest) = match line.split_once(char::is_whitespace) {
            Some((t, r)) => (t, r.trim_start()),
            None => continue,
        };
        if ty != "deb" && ty != "deb-src" {
            continue;
        }
        if rest.starts_with('[') {
            match rest.find(']') {
                Some(end) => rest = rest[end + 1..].trim_start(),
                None => continue,
            }
        }
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        out.push(AptSource {
            types: vec![ty.to_string()],
            uris: vec![uri.to_string()],
            suites: vec![suite.to_string()],
            components: words.map(str::to_string).collect(),
            enabled: true,
            origin: format!("{origin}:{}", i + 1),
        });
    }
    out
}

/// Parses the deb822 format (`Types:`, `URIs:`, `Suites:`, `Components:`, `Enabled:`).
pub fn parse_deb822_sources(text: &str, origin: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    for_each_paragraph(text, true, |line, fields| {
        let get = |k: &str| -> Vec<String> {
            fields
                .iter()
                .find(|f| f.key.eq_ignore_ascii_case(k))
                .map(|f| f.value.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        let enabled = get("Enabled")
            .first()
            .map(|v| !v.eq_ignore_ascii_case("no") && !v.eq_ignore_ascii_case("false"))
            .unwrap_or(true);
        out.push(AptSource {
            types: get("Types"),
            uris: get("URIs"),
            suites: get("Suites"),
            components: get("Components"),
            enabled,
            origin: format!("{origin}:{line}"),
        });
        Ok::<(), ()>(())
    })
    .ok();
    out
}

const DEBIAN_CODENAMES: &[&str] = &[
    "buzz",
    "rex",
    "bo",
    "hamm",
    "slink",
    "potato",
    "woody",
    "sarge",
    "etch",
    "lenny",
    "squeeze",
    "wheezy",
    "jessie",
    "stretch",
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
    "sid",
    "stable",
    "oldstable",
    "oldoldstable",
    "testing",
    "unstable",
    "experimental",
];

/// Whether `suite` names a Debian suite (a codename or alias, with an optional
/// `-updates`/`-backports`/`-security`/... suffix), as opposed to a third-party repository's.
pub fn is_debian_suite(suite: &str) -> bool {
    let base = suite.split(['-', '/']).next().unwrap_or("");
    DEBIAN_CODENAMES.contains(&base)
}

fn usable_uri(uri: &str) -> bool {
    uri.starts_with("http://") || uri.starts_with("https://") || uri.starts_with("file:///")
}

/// Picks the main archive and the security archive from apt sources.
///
/// The main archive is a `deb` source serving a Debian suite that is not `-security`
/// (sources of third-party repositories, whose suites are no Debian codenames, are skipped;
/// among the rest, one whose path ends in `/debian` and that serves `main` is preferred).
/// The security archive is the source serving a `<suite>-security` suite, else derived as
/// `<archive>-security` when the archive path ends in `/debian`.
pub fn choose_mirror(sources: &[AptSource]) -> Option<Mirror> {
    let debs = || {
        sources
            .iter()
            .filter(|s| s.enabled && s.types.iter().any(|t| t == "deb"))
    };
    let mut best: Option<(u32, &AptSource, &str)> = None;
    for s in debs() {
        let regular = s
            .suites
            .iter()
            .any(|x| is_debian_suite(x) && !is_security_suite(x));
        if !regular {
            continue;
        }
        for uri in s.uris.iter().filter(|u| usable_uri(u)) {
            let mut score = 0;
            if uri.trim_end_matches('/').ends_with("/debian") {
                score += 2;
            }
            if s.components.iter().any(|c| c == "main") {
                score += 1;
            }
            if !matches!(best, Some((b, _, _)) if score <= b) {
                best = Some((score, s, uri));
            }
        }
    }
    let (_, src, uri) = best?;
    let archive = uri.trim_end_matches('/').to_string();
    let sec = debs()
        .filter(|s| {
            s.suites
                .iter()
                .any(|x| is_debian_suite(x) && is_security_suite(x))
        })
        .find_map(|s| {
            s.uris
                .iter()
                .find(|u| usable_uri(u))
                .map(|u| (u.trim_end_matches('/').to_string(), s.origin.clone()))
        });
    let (security, source) = match sec {
        Some((u, o)) => (Some(u), format!("apt sources {} and {}", src.origin, o)),
        None => (
            derived_security(&archive),
            format!("apt sources {}", src.origin),
        ),
    };
    Some(Mirror {
        archive,
        security,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const ONE_LINE: &str = "\
# comment
deb http://mirror.example/debian bookworm main contrib
deb-src http://mirror.example/debian bookworm main
deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian-security/ bookworm-security main # trailing
deb https://third.example/apt cloud-sdk-bookworm main
";

    const DEB822: &str = "\
Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://m.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://m.example/debian-security
Suites: bookworm-security
Components: main
";

    #[test]
    fn one_line_sources() {
        let s = parse_one_line_sources(ONE_LINE, "f");
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].uris, ["http://mirror.example/debian"]);
        assert_eq!(s[0].components, ["main", "contrib"]);
        assert_eq!(s[0].origin, "f:2");
        assert_eq!(s[1].types, ["deb-src"]);
        assert_eq!(s[2].uris, ["http://mirror.example/debian-security/"]);
        assert_eq!(s[2].suites, ["bookworm-security"]);
        let m = choose_mirror(&s).unwrap();
        assert_eq!(m.archive, "http://mirror.example/debian");
        assert_eq!(
            m.security.as_deref(),
            Some("http://mirror.example/debian-security")
        );
    }

    #[test]
    fn deb822_sources() {
        let s = parse_deb822_sources(DEB822, "d.sources");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].suites, ["bookworm", "bookworm-updates"]);
        assert_eq!(s[0].origin, "d.sources:1");
        assert!(s[0].enabled);
        let m = choose_mirror(&s).unwrap();
        assert_eq!(m.archive, "http://m.example/debian");
        assert_eq!(
            m.security.as_deref(),
            Some("http://m.example/debian-security")
        );
        assert!(m.source.contains("d.sources:1"));
    }

    #[test]
    fn deb822_disabled_and_multiline() {
        let text = "Types: deb\nURIs: http://a.example/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n\n\
                    Types: deb\nURIs:\n http://b.example/mirror\nSuites: trixie\nComponents: main\n";
        let s = parse_deb822_sources(text, "x");
        assert!(!s[0].enabled);
        assert_eq!(s[1].uris, ["http://b.example/mirror"]);
        let m = choose_mirror(&s).unwrap();
        assert_eq!(m.archive, "http://b.example/mirror");
        assert_eq!(m.security, None, "no /debian suffix: nothing to derive");
    }

    #[test]
    fn third_party_only_gives_nothing() {
        let s = parse_one_line_sources(
            "deb https://third.example/apt cloud-sdk-bookworm main\n",
            "f",
        );
        assert_eq!(choose_mirror(&s), None);
        let s = parse_deb822_sources(
            "Types: deb\nURIs: https://n.example/node_20.x\nSuites: nodistro\nComponents: main\n",
            "f",
        );
        assert_eq!(choose_mirror(&s), None);
    }

    #[test]
    fn security_derived_when_missing() {
        let s = parse_one_line_sources("deb http://m.example/debian/ bullseye main\n", "f");
        let m = choose_mirror(&s).unwrap();
        assert_eq!(
            m.security.as_deref(),
            Some("http://m.example/debian-security")
        );
    }

    #[rstest]
    #[case("bookworm", true)]
    #[case("bookworm-security", true)]
    #[case("sid", true)]
    #[case("nodistro", false)]
    #[case("cloud-sdk-bookworm", false)]
    fn debian_suites(#[case] s: &str, #[case] want: bool) {
        assert_eq!(is_debian_suite(s), want);
    }

    #[test]
    fn discovery_order() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("sources.list.d")).unwrap();
        fs::write(tmp.path().join("sources.list.d/debian.sources"), DEB822).unwrap();
        fs::write(
            tmp.path().join("sources.list.d/x.list.disabled"),
            "deb http://z.example/debian sid main\n",
        )
        .unwrap();
        let no_env = |_: &str| None;
        let m = discover_mirror_from(None, &no_env, tmp.path()).unwrap();
        assert_eq!(m.archive, "http://m.example/debian");
        let env = |k: &str| (k == MIRROR_ENV).then(|| "http://e.example/debian/".to_string());
        let m = discover_mirror_from(None, &env, tmp.path()).unwrap();
        assert_eq!(m.archive, "http://e.example/debian");
        assert_eq!(
            m.security.as_deref(),
            Some("http://e.example/debian-security")
        );
        assert_eq!(m.source, MIRROR_ENV);
        let m = discover_mirror_from(
            Some("http://x.example/d,http://x.example/s"),
            &env,
            tmp.path(),
        )
        .unwrap();
        assert_eq!(m.archive, "http://x.example/d");
        assert_eq!(m.security.as_deref(), Some("http://x.example/s"));
        let sec = |k: &str| (k == SECURITY_MIRROR_ENV).then(|| "file:///srv/sec".to_string());
        let m = discover_mirror_from(Some("http://x.example/debian"), &sec, tmp.path()).unwrap();
        assert_eq!(m.security.as_deref(), Some("file:///srv/sec"));

        let empty = tempfile::tempdir().unwrap();
        let e = discover_mirror_from(None, &no_env, empty.path()).unwrap_err();
        assert!(e.to_string().contains(MIRROR_ENV), "{e}");
        assert!(e.to_string().contains("debian_mirror"), "{e}");
        assert!(matches!(
            discover_mirror_from(Some("ftp://x"), &no_env, empty.path()),
            Err(DebianError::BadMirrorUrl { .. })
        ));
    }

    #[test]
    fn base_for_suite() {
        let m = mirror_from_value("http://a.example/mirror", "t").unwrap();
        assert_eq!(
            m.base_for_suite("trixie").unwrap(),
            "http://a.example/mirror"
        );
        assert!(matches!(
            m.base_for_suite("trixie-security"),
            Err(DebianError::NoSecurityMirror { .. })
        ));
    }
}
