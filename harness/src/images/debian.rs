//! Debian archive access: mirror discovery, `Packages` indexes, verified `.deb` downloads.
//!
//! The mirror is never hard-coded: it comes from the caller (`--mirror`, `debian_mirror` in
//! matrix.toml), from `REPRO_DEBIAN_MIRROR`, or from the host's apt sources.
//!
//! Indexes are cached under `<cache>/debian/<mirror>/dists/<suite>/<component>/binary-amd64/`
//! and refreshed when older than a TTL (24 h by default); when a refresh fails the cached copy
//! is used with a warning, so offline runs work from the cache. Packages are stored in the
//! content-addressed blob store under their SHA256 from the index, verified while downloading.

use std::cmp::Ordering;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use regex::Regex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::cache::{self, Cache, CacheError};

/// Environment variable naming the Debian archive URL (optionally `ARCHIVE,SECURITY`).
pub const MIRROR_ENV: &str = "REPRO_DEBIAN_MIRROR";
/// Environment variable naming the Debian security archive URL (overrides any other source).
pub const SECURITY_MIRROR_ENV: &str = "REPRO_DEBIAN_SECURITY_MIRROR";
/// Default time after which a cached `Packages` index is refreshed.
pub const DEFAULT_INDEX_TTL: Duration = Duration::from_secs(24 * 3600);
/// The only architecture the harness boots.
pub const ARCH: &str = "amd64";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// What went wrong talking to (or about) a Debian archive.
#[derive(Debug, thiserror::Error)]
pub enum DebianError {
    #[error("no Debian mirror found ({tried}); set {MIRROR_ENV}=<archive URL> or `debian_mirror` in matrix.toml")]
    NoMirror { tried: String },
    #[error("Debian mirror URL `{url}` (from {origin}) is not usable: {why}; give an http://, https:// or file:// URL of the archive root (the folder holding dists/ and pool/)")]
    BadMirrorUrl {
        url: String,
        origin: String,
        why: String,
    },
    #[error("suite `{suite}` lives in the Debian security archive, but no security mirror is known (mirror from {origin}); set {SECURITY_MIRROR_ENV}=<security archive URL>")]
    NoSecurityMirror { suite: String, origin: String },
    #[error("GET {url} answered HTTP {status}: {hint}")]
    Http {
        url: String,
        status: u16,
        hint: String,
    },
    #[error("could not fetch {url}: {message}; check the network and the mirror ({MIRROR_ENV}), or run where the cache already holds this file")]
    Transport { url: String, message: String },
    #[error("{what} is not in the cache and the network is off (would fetch {url}); run `repro images fetch <kernel>` on a connected machine with the same cache folder")]
    Offline { what: String, url: String },
    #[error("{url} does not match its index: expected sha256 {expected}, got {actual}; the file was removed, retry (a broken mirror or proxy will keep failing: try another mirror)")]
    ChecksumMismatch {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("{url} does not match its index: expected {expected} bytes, got {actual}; the file was removed, retry or try another mirror")]
    SizeMismatch {
        url: String,
        expected: u64,
        actual: u64,
    },
    #[error("malformed Packages index {origin}, paragraph at line {line}: {message}; delete the cached file to fetch it again")]
    Index {
        origin: String,
        line: usize,
        message: String,
    },
    #[error("cannot decompress {what}: {source}; the cached file may be truncated, delete it to fetch it again")]
    Decompress { what: String, source: io::Error },
    #[error("no package matches {query}{available}")]
    NotFound { query: String, available: String },
    #[error("cannot read or write {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Cache(#[from] CacheError),
}

pub type Result<T, E = DebianError> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DebianError + '_ {
    move |source| DebianError::Io {
        path: path.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------------------------------------
// Mirror discovery
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// deb822 paragraphs and Packages indexes
// ---------------------------------------------------------------------------------------------

/// One field of a deb822 paragraph. `value` is a slice of the input: the text after the
/// colon, continuation lines included (with their newlines and leading blanks).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field<'a> {
    pub key: &'a str,
    pub value: &'a str,
}

/// Calls `f(first_line_number, fields)` for each paragraph of a deb822 text.
///
/// This small streaming parser exists because the typed parser of the `debian-control` crate
/// (`lossy::apt::Package`) was both slower and lossy on a real index: on bookworm's
/// main/binary-amd64 `Packages` (50 MB, 63 440 paragraphs) it took 0.62 s in release and
/// 3.7 s in a debug build, and rejected the 23 paragraphs with `Essential: yes` (bash,
/// base-files, ...). This parser borrows slices of the input and allocates only the fields
/// kept; it reads the same file in about a tenth of that time.
pub(crate) fn for_each_paragraph<'a, E>(
    text: &'a str,
    allow_comments: bool,
    mut f: impl FnMut(usize, &[Field<'a>]) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let mut fields: Vec<Field<'a>> = Vec::with_capacity(32);
    let mut start_line = 0usize;
    // (key, value start offset, value end offset) of the field being read.
    let mut cur: Option<(&'a str, usize, usize)> = None;
    let mut offset = 0usize;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let line_start = offset;
        offset += line.len();
        let content = line.trim_end_matches(['\n', '\r']);
        if content.trim().is_empty() {
            if let Some((k, s, e)) = cur.take() {
                fields.push(Field {
                    key: k,
                    value: &text[s..e],
                });
            }
            if !fields.is_empty() {
                f(start_line, &fields)?;
                fields.clear();
            }
            continue;
        }
        if allow_comments && content.starts_with('#') {
            continue;
        }
        if content.starts_with([' ', '\t']) {
            if let Some((_, _, e)) = cur.as_mut() {
                *e = line_start + content.len();
            }
            continue;
        }
        if let Some((k, s, e)) = cur.take() {
            fields.push(Field {
                key: k,
                value: &text[s..e],
            });
        }
        if fields.is_empty() {
            start_line = i + 1;
        }
        match content.find(':') {
            Some(c) => {
                let key = &content[..c];
                let vstart = line_start + c + 1;
                cur = Some((key, vstart, line_start + content.len()));
            }
            None => cur = None, // not a field; ignore the line
        }
    }
    if let Some((k, s, e)) = cur.take() {
        fields.push(Field {
            key: k,
            value: &text[s..e],
        });
    }
    if !fields.is_empty() {
        f(start_line, &fields)?;
    }
    Ok(())
}

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

/// Compares two Debian versions the way dpkg does (epochs, `~` sorting before anything).
/// A version that does not parse sorts before every one that does (then by text).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    match (
        a.parse::<debversion::Version>(),
        b.parse::<debversion::Version>(),
    ) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => Ordering::Greater,
        (Err(_), Ok(_)) => Ordering::Less,
        (Err(_), Err(_)) => a.cmp(b),
    }
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

// ---------------------------------------------------------------------------------------------
// Archive: cached indexes and verified downloads
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct IndexMeta {
    url: String,
    fetched_at: u64,
    etag: Option<String>,
    last_modified: Option<String>,
    /// sha256 of the cached Packages.xz.
    #[serde(default)]
    sha256: String,
}

/// Entries of one index matching one name pattern (see `Archive::matching`).
#[derive(Debug, Serialize, Deserialize)]
struct MatchMemo {
    index_sha256: String,
    pattern: String,
    entries: Vec<PackageEntry>,
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn parse_index_file(
    path: &Path,
    suite: &str,
    component: &str,
    keep: Option<&dyn Fn(&str) -> bool>,
) -> Result<Vec<PackageEntry>> {
    let text = read_xz_to_string(path)?;
    let origin = format!("{suite}/{component} ({})", path.display());
    let mut v = parse_packages_from(&text, &origin, keep)?;
    for e in &mut v {
        e.suite = suite.to_string();
    }
    Ok(v)
}

/// Outcome of a conditional GET.
enum Fetched {
    NotModified,
    Body {
        reader: Box<dyn Read + Send>,
        length: Option<u64>,
        etag: Option<String>,
        last_modified: Option<String>,
    },
}

/// A Debian archive seen through the cache.
pub struct Archive {
    mirror: std::result::Result<Mirror, String>,
    cache: Cache,
    agent: ureq::Agent,
    index_ttl: Duration,
    offline: bool,
    warn: Box<dyn Fn(&str) + Send + Sync>,
}

impl fmt::Debug for Archive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Archive")
            .field("mirror", &self.mirror)
            .field("cache", &self.cache)
            .field("index_ttl", &self.index_ttl)
            .field("offline", &self.offline)
            .finish()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Archive {
    pub fn new(mirror: Mirror, cache: Cache) -> Self {
        Self::build(Ok(mirror), cache)
    }

    /// An archive with no mirror (discovery failed): everything cached still works, and
    /// whatever needs the network fails with `reason` (the discovery error's text).
    pub fn without_mirror(cache: Cache, reason: impl fmt::Display) -> Self {
        Self::build(Err(reason.to_string()), cache)
    }

    /// `Archive::new` or `Archive::without_mirror`, from a discovery result.
    pub fn from_discovery(mirror: Result<Mirror>, cache: Cache) -> Self {
        Self::build(mirror.map_err(|e| e.to_string()), cache)
    }

    fn build(mirror: std::result::Result<Mirror, String>, cache: Cache) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout_read(READ_TIMEOUT)
            .user_agent(concat!("repro/", env!("CARGO_PKG_VERSION")))
            .build();
        Archive {
            mirror,
            cache,
            agent,
            index_ttl: DEFAULT_INDEX_TTL,
            offline: false,
            warn: Box::new(|m| eprintln!("warning: {m}")),
        }
    }

    /// Cached indexes younger than this are used without asking the mirror.
    pub fn with_index_ttl(mut self, ttl: Duration) -> Self {
        self.index_ttl = ttl;
        self
    }

    /// Never use the network: only cached indexes and files.
    pub fn with_offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    /// Where warnings go (default: stderr). Warnings say when a stale cached copy was used.
    pub fn with_warnings(mut self, f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.warn = Box::new(f);
        self
    }

    pub fn mirror(&self) -> Option<&Mirror> {
        self.mirror.as_ref().ok()
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    pub fn is_offline(&self) -> bool {
        self.offline
    }

    pub(crate) fn warn(&self, msg: &str) {
        (self.warn)(msg)
    }

    fn mirror_or_err(&self) -> Result<&Mirror> {
        self.mirror
            .as_ref()
            .map_err(|r| DebianError::NoMirror { tried: r.clone() })
    }

    /// The URL of a file of `suite`'s archive root (`rel` relative to it).
    pub fn url_for(&self, suite: &str, rel: &str) -> Result<String> {
        let base = self.mirror_or_err()?.base_for_suite(suite)?;
        Ok(format!("{}/{}", base, rel.trim_start_matches('/')))
    }

    fn index_dir(&self, suite: &str, component: &str) -> Result<PathBuf> {
        let base = self.mirror_or_err()?.base_for_suite(suite)?;
        let key = cache::sanitize_name(base.split_once("://").map(|x| x.1).unwrap_or(base));
        Ok(self.cache.dir(&format!(
            "debian/{key}/dists/{}/{}/binary-{ARCH}",
            cache::sanitize_name(suite),
            cache::sanitize_name(component)
        ))?)
    }

    /// Makes sure `dists/<suite>/<component>/binary-amd64/Packages.xz` is in the cache
    /// (fresh, or stale with a warning when the mirror cannot be reached) and returns its path.
    pub fn index_file(&self, suite: &str, component: &str) -> Result<PathBuf> {
        Ok(self.index_file_meta(suite, component)?.0)
    }

    /// `index_file`, with the sha256 of the cached file.
    fn index_file_meta(&self, suite: &str, component: &str) -> Result<(PathBuf, String)> {
        let rel = format!("dists/{suite}/{component}/binary-{ARCH}/Packages.xz");
        let url = self.url_for(suite, &rel)?;
        let dir = self.index_dir(suite, component)?;
        let path = dir.join("Packages.xz");
        let meta_path = dir.join("Packages.meta.json");
        let _lock = self
            .cache
            .lock(&format!("index-{}", cache::sha256_bytes(url.as_bytes())))?;
        let meta: Option<IndexMeta> = fs::read(&meta_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .filter(|m: &IndexMeta| m.url == url && !m.sha256.is_empty() && path.is_file());
        if let Some(m) = &meta {
            let age = now_secs().saturating_sub(m.fetched_at);
            if self.offline || age < self.index_ttl.as_secs() {
                return Ok((path, m.sha256.clone()));
            }
        } else if self.offline {
            return Err(DebianError::Offline {
                what: format!("the {suite}/{component} package index"),
                url,
            });
        }
        let cond = meta
            .as_ref()
            .map(|m| (m.etag.clone(), m.last_modified.clone()));
        let stale_or = |e: DebianError| -> Result<(PathBuf, String)> {
            match &meta {
                Some(m) => {
                    let hours = now_secs().saturating_sub(m.fetched_at) as f64 / 3600.0;
                    self.warn(&format!(
                        "could not refresh {url} ({e}); using the copy cached {hours:.1} h ago at {}",
                        path.display()
                    ));
                    Ok((path.clone(), m.sha256.clone()))
                }
                None => Err(e),
            }
        };
        match self.get(&url, cond.unwrap_or_default()) {
            Ok(Fetched::NotModified) => {
                let m = IndexMeta {
                    fetched_at: now_secs(),
                    ..meta.clone().unwrap_or_default()
                };
                write_json(&meta_path, &m)?;
                Ok((path, m.sha256))
            }
            Ok(Fetched::Body {
                reader,
                etag,
                last_modified,
                ..
            }) => {
                // Hash while writing, so the file is read once.
                let mut hashing = HashingReader {
                    inner: reader,
                    hasher: Sha256::new(),
                };
                if let Err(e) = cache::atomic_write_from(&path, &mut hashing) {
                    return stale_or(e.into());
                }
                let sha256 = hex::encode(hashing.hasher.finalize());
                write_json(
                    &meta_path,
                    &IndexMeta {
                        url: url.clone(),
                        fetched_at: now_secs(),
                        etag,
                        last_modified,
                        sha256: sha256.clone(),
                    },
                )?;
                Ok((path, sha256))
            }
            Err(e) => stale_or(e),
        }
    }

    /// The packages of `suite`/`component` for amd64 (each entry's `suite` is set).
    pub fn index(&self, suite: &str, component: &str) -> Result<Vec<PackageEntry>> {
        self.index_filtered(suite, component, None)
    }

    /// `index`, keeping only packages whose name passes `keep` (cheaper: nothing is
    /// allocated for the others).
    pub fn index_filtered(
        &self,
        suite: &str,
        component: &str,
        keep: Option<&dyn Fn(&str) -> bool>,
    ) -> Result<Vec<PackageEntry>> {
        let path = self.index_file(suite, component)?;
        parse_index_file(&path, suite, component, keep)
    }

    /// Every package matching `q` in all its suites, newest first.
    ///
    /// Decompressing and parsing a main index costs about 1 s in release builds (0.8 s of it
    /// xz), so the entries whose names match `q.name` are cached next to the index, keyed by
    /// the index file's sha256 and the pattern: later runs read a small JSON file instead.
    pub fn matching(&self, q: &PackageQuery) -> Result<Vec<PackageEntry>> {
        let keep = |n: &str| q.name.is_match(n);
        let mut all = Vec::new();
        for s in &q.suites {
            let (path, sha) = self.index_file_meta(s, &q.component)?;
            let key = &cache::sha256_bytes(q.name.as_str().as_bytes())[..16];
            let memo_path = path.with_file_name(format!("matches-{key}.json"));
            let memo: Option<MatchMemo> = fs::read(&memo_path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .filter(|m: &MatchMemo| m.index_sha256 == sha && m.pattern == q.name.as_str());
            let entries = match memo {
                Some(m) => m.entries,
                None => {
                    let entries = parse_index_file(&path, s, &q.component, Some(&keep))?;
                    write_json(
                        &memo_path,
                        &MatchMemo {
                            index_sha256: sha,
                            pattern: q.name.as_str().to_string(),
                            entries: entries.clone(),
                        },
                    )?;
                    entries
                }
            };
            all.extend(entries);
        }
        Ok(sort_matches(&all, q).into_iter().cloned().collect())
    }

    /// The newest package matching `q` across its suites.
    pub fn newest(&self, q: &PackageQuery) -> Result<PackageEntry> {
        self.matching(q)?
            .into_iter()
            .next()
            .ok_or_else(|| DebianError::NotFound {
                query: q.to_string(),
                available: String::new(),
            })
    }

    /// Downloads `entry`'s .deb into the blob store (verifying size and SHA256) and returns
    /// its path. A package already in the store is returned without any network access.
    pub fn download(&self, entry: &PackageEntry, progress: &dyn Fn(u64, u64)) -> Result<PathBuf> {
        let digest = cache::check_digest(&entry.sha256)?;
        let blob = self.cache.blob_path(&digest);
        if blob.is_file() {
            return Ok(blob);
        }
        let suite = if entry.suite.is_empty() {
            ""
        } else {
            &entry.suite
        };
        let url = self.url_for(suite, &entry.filename)?;
        let (path, _) = self.fetch_blob(
            &url,
            Some(&digest),
            Some(entry.size),
            &format!("package {} {}", entry.name, entry.version),
            progress,
        )?;
        Ok(path)
    }

    /// Downloads any URL into the blob store. With `expected_sha256`, a cached blob is
    /// returned without network access and a mismatch is an error; without it the file is
    /// stored under the digest computed while downloading. Returns (path, sha256).
    pub fn fetch_blob(
        &self,
        url: &str,
        expected_sha256: Option<&str>,
        expected_size: Option<u64>,
        what: &str,
        progress: &dyn Fn(u64, u64),
    ) -> Result<(PathBuf, String)> {
        let expected = expected_sha256.map(cache::check_digest).transpose()?;
        let expected_sha256 = expected.as_deref();
        if let Some(d) = expected_sha256 {
            let blob = self.cache.blob_path(d);
            if blob.is_file() {
                return Ok((blob, d.to_string()));
            }
        }
        if self.offline {
            return Err(DebianError::Offline {
                what: what.to_string(),
                url: url.to_string(),
            });
        }
        let lock_key = expected_sha256
            .map(str::to_string)
            .unwrap_or_else(|| cache::sha256_bytes(url.as_bytes()));
        let _lock = self.cache.lock(&format!("blob-{lock_key}"))?;
        if let Some(d) = expected_sha256 {
            let blob = self.cache.blob_path(d);
            if blob.is_file() {
                return Ok((blob, d.to_string())); // another process fetched it meanwhile
            }
        }
        let Fetched::Body {
            mut reader, length, ..
        } = self.get(url, (None, None))?
        else {
            unreachable!("unconditional GET answered 304");
        };
        let total = expected_size.or(length).unwrap_or(0);
        let mut tmp = self.cache.blob_tempfile()?;
        let tmp_path = tmp.path().to_path_buf();
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut done = 0u64;
        progress(0, total);
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(DebianError::Transport {
                        url: url.to_string(),
                        message: format!("connection broke after {done} bytes: {e}"),
                    })
                }
            };
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n]).map_err(io_err(&tmp_path))?;
            done += n as u64;
            progress(done, total.max(done));
        }
        if let Some(size) = expected_size {
            if size != done {
                return Err(DebianError::SizeMismatch {
                    url: url.to_string(),
                    expected: size,
                    actual: done,
                });
            }
        }
        let actual = hex::encode(hasher.finalize());
        if let Some(d) = expected_sha256 {
            if !d.eq_ignore_ascii_case(&actual) {
                return Err(DebianError::ChecksumMismatch {
                    url: url.to_string(),
                    expected: d.to_string(),
                    actual,
                });
            }
        }
        tmp.as_file().sync_all().map_err(io_err(&tmp_path))?;
        let blob = self.cache.blob_path(&actual);
        cache::create_dir_all(blob.parent().expect("blob path has a parent"))?;
        tmp.persist(&blob).map_err(|e| DebianError::Io {
            path: blob.clone(),
            source: e.error,
        })?;
        Ok((blob, actual))
    }

    /// GET with optional `If-None-Match` / `If-Modified-Since`. `file://` URLs are read from
    /// the local filesystem (a local mirror).
    fn get(&self, url: &str, cond: (Option<String>, Option<String>)) -> Result<Fetched> {
        if let Some(path) = url.strip_prefix("file://") {
            let p = Path::new(path);
            let f = File::open(p).map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    DebianError::Http {
                        url: url.to_string(),
                        status: 404,
                        hint: not_found_hint(url),
                    }
                } else {
                    DebianError::Transport {
                        url: url.to_string(),
                        message: e.to_string(),
                    }
                }
            })?;
            let length = f.metadata().ok().map(|m| m.len());
            return Ok(Fetched::Body {
                reader: Box::new(BufReader::new(f)),
                length,
                etag: None,
                last_modified: None,
            });
        }
        let mut req = self.agent.get(url);
        if let Some(e) = &cond.0 {
            req = req.set("If-None-Match", e);
        }
        if let Some(m) = &cond.1 {
            req = req.set("If-Modified-Since", m);
        }
        match req.call() {
            Ok(resp) if resp.status() == 304 => Ok(Fetched::NotModified),
            Ok(resp) => {
                let length = resp.header("Content-Length").and_then(|v| v.parse().ok());
                let etag = resp.header("ETag").map(str::to_string);
                let last_modified = resp.header("Last-Modified").map(str::to_string);
                Ok(Fetched::Body {
                    reader: Box::new(resp.into_reader()),
                    length,
                    etag,
                    last_modified,
                })
            }
            Err(ureq::Error::Status(status, _)) => Err(DebianError::Http {
                url: url.to_string(),
                status,
                hint: if status == 404 {
                    not_found_hint(url)
                } else {
                    "the server refused or failed; retry later or use another mirror".to_string()
                },
            }),
            Err(ureq::Error::Transport(t)) => {
                // ureq's own text repeats the URL, which the error already names.
                let mut message = t.kind().to_string();
                if let Some(m) = t.message() {
                    message = format!("{message}: {m}");
                }
                if let Some(src) = std::error::Error::source(&t) {
                    message = format!("{message}: {src}");
                }
                Err(DebianError::Transport {
                    url: url.to_string(),
                    message,
                })
            }
        }
    }
}

fn not_found_hint(url: &str) -> String {
    if url.contains("/dists/") {
        "the mirror has no such suite/component: check the kernel manifest's `suites` and that the mirror carries them".to_string()
    } else {
        "the mirror no longer has this file (the index may be newer or older than the pool): retry, and if it persists refresh the index or use another mirror".to_string()
    }
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(v).expect("serializable");
    cache::atomic_write(path, &bytes)?;
    Ok(())
}

/// Decompresses a whole `.xz` file to a string.
pub fn read_xz_to_string(path: &Path) -> Result<String> {
    let f = File::open(path).map_err(io_err(path))?;
    let mut dec = xz2::read::XzDecoder::new_multi_decoder(BufReader::new(f));
    let mut s = String::new();
    dec.read_to_string(&mut s)
        .map_err(|source| DebianError::Decompress {
            what: path.display().to_string(),
            source,
        })?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use std::sync::{Arc, Mutex};

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

    #[rstest]
    #[case("1.0", "1.0", Ordering::Equal)]
    #[case("1.0~rc1", "1.0", Ordering::Less)]
    #[case("1:0.1", "9.9", Ordering::Greater)]
    #[case("6.1.158-1", "6.1.99-1", Ordering::Greater)]
    #[case("6.12.115+deb13.1-1", "6.12.115-1", Ordering::Greater)]
    #[case("6.12.117-1~deb12u1", "6.12.117-1", Ordering::Less)]
    #[case("1.0-1", "1.0-1+b1", Ordering::Less)]
    #[case("1.0a", "1.0+", Ordering::Less)]
    fn debian_version_order(#[case] a: &str, #[case] b: &str, #[case] want: Ordering) {
        assert_eq!(compare_versions(a, b), want);
        assert_eq!(compare_versions(b, a), want.reverse());
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

    /// A local mirror (file://) with one suite holding one package.
    fn local_mirror(deb: &[u8]) -> (tempfile::TempDir, Mirror, PackageEntry) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("debian");
        let pool = root.join("pool/main/h");
        fs::create_dir_all(&pool).unwrap();
        fs::write(pool.join("hello_1.0_amd64.deb"), deb).unwrap();
        let sha = cache::sha256_bytes(deb);
        let text = format!(
            "Package: hello\nVersion: 1.0\nArchitecture: amd64\nFilename: pool/main/h/hello_1.0_amd64.deb\nSize: {}\nSHA256: {sha}\n",
            deb.len()
        );
        let idx = root.join("dists/testing/main/binary-amd64");
        fs::create_dir_all(&idx).unwrap();
        let mut enc = xz2::write::XzEncoder::new(Vec::new(), 1);
        enc.write_all(text.as_bytes()).unwrap();
        fs::write(idx.join("Packages.xz"), enc.finish().unwrap()).unwrap();
        let m = mirror_from_value(&format!("file://{}", root.display()), "test").unwrap();
        let mut e = parse_packages(&text).unwrap().remove(0);
        e.suite = "testing".into();
        (dir, m, e)
    }

    #[test]
    fn archive_index_download_and_offline() {
        let (mdir, mirror, want) = local_mirror(b"not really a deb");
        let cdir = tempfile::tempdir().unwrap();
        let warnings = Arc::new(Mutex::new(Vec::<String>::new()));
        let w = warnings.clone();
        let a = Archive::new(mirror.clone(), Cache::new(cdir.path().into()))
            .with_warnings(move |m| w.lock().unwrap().push(m.to_string()));
        let idx = a.index("testing", "main").unwrap();
        assert_eq!(idx, vec![want.clone()]);
        let seen = Mutex::new(Vec::new());
        let p = a
            .download(&idx[0], &|d, t| seen.lock().unwrap().push((d, t)))
            .unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"not really a deb");
        assert_eq!(seen.lock().unwrap().last(), Some(&(16, 16)));

        // Mirror gone: the cached blob needs no network; a stale index is used with a warning.
        drop(mdir);
        assert_eq!(a.download(&idx[0], &|_, _| {}).unwrap(), p);
        let a = Archive::new(mirror, Cache::new(cdir.path().into()))
            .with_index_ttl(Duration::ZERO)
            .with_warnings({
                let w = warnings.clone();
                move |m| w.lock().unwrap().push(m.to_string())
            });
        assert_eq!(a.index("testing", "main").unwrap().len(), 1);
        assert_eq!(warnings.lock().unwrap().len(), 1, "{warnings:?}");
        // Unknown suite, nothing cached: an error naming the URL.
        let e = a.index("other", "main").unwrap_err();
        assert!(e.to_string().contains("dists/other/main"), "{e}");
        // Offline and not cached.
        let off = Archive::new(a.mirror().unwrap().clone(), Cache::new(cdir.path().into()))
            .with_offline(true);
        assert!(matches!(
            off.index("other", "main"),
            Err(DebianError::Offline { .. })
        ));
        let mut other = want.clone();
        other.sha256 = "1".repeat(64);
        assert!(matches!(
            off.download(&other, &|_, _| {}),
            Err(DebianError::Offline { .. })
        ));
    }

    #[test]
    fn matching_is_memoised_per_index_content() {
        let (mdir, mirror, _) = local_mirror(b"deb one");
        let cdir = tempfile::tempdir().unwrap();
        let a = Archive::new(mirror.clone(), Cache::new(cdir.path().into()))
            .with_index_ttl(Duration::ZERO);
        let q = PackageQuery {
            suites: vec!["testing".into()],
            component: "main".into(),
            name: Regex::new("^hel").unwrap(),
            version_prefix: None,
        };
        assert_eq!(a.matching(&q).unwrap()[0].version, "1.0");
        let memos: Vec<_> =
            fs::read_dir(a.index_file("testing", "main").unwrap().parent().unwrap())
                .unwrap()
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("matches-"))
                .collect();
        assert_eq!(memos.len(), 1);
        // A new index (other content) is not answered from the old memo.
        let idx = mdir
            .path()
            .join("debian/dists/testing/main/binary-amd64/Packages.xz");
        let text = format!(
            "Package: hello\nVersion: 2.0\nArchitecture: amd64\nFilename: f\nSize: 1\nSHA256: {}\n",
            "3".repeat(64)
        );
        let mut enc = xz2::write::XzEncoder::new(Vec::new(), 1);
        enc.write_all(text.as_bytes()).unwrap();
        fs::write(&idx, enc.finish().unwrap()).unwrap();
        assert_eq!(a.matching(&q).unwrap()[0].version, "2.0");
    }

    #[test]
    fn download_checksum_mismatch_removes_file() {
        let (_mdir, mirror, mut e) = local_mirror(b"payload");
        e.sha256 = "2".repeat(64);
        let cdir = tempfile::tempdir().unwrap();
        let a = Archive::new(mirror, Cache::new(cdir.path().into()));
        let err = a.download(&e, &|_, _| {}).unwrap_err();
        assert!(matches!(err, DebianError::ChecksumMismatch { .. }), "{err}");
        assert!(!a.cache().blob_path(&e.sha256).exists());
        let left: Vec<_> = fs::read_dir(cdir.path().join("blobs/tmp"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "temporary file left behind: {left:?}");
    }

    #[test]
    fn without_mirror_errors_say_what_to_do() {
        let cdir = tempfile::tempdir().unwrap();
        let a = Archive::without_mirror(Cache::new(cdir.path().into()), "nothing configured");
        let e = a.index("bookworm", "main").unwrap_err();
        assert!(e.to_string().contains(MIRROR_ENV), "{e}");
    }

    /// Times decompressing and parsing a real index:
    /// `REPRO_PACKAGES_XZ=path/to/Packages.xz cargo test --release -p repro --lib parse_real_index -- --ignored --nocapture`
    #[test]
    #[ignore = "needs a real Packages.xz (REPRO_PACKAGES_XZ)"]
    fn parse_real_index_timing() {
        let path =
            PathBuf::from(std::env::var("REPRO_PACKAGES_XZ").expect("set REPRO_PACKAGES_XZ"));
        let t = std::time::Instant::now();
        let text = read_xz_to_string(&path).unwrap();
        let unxz = t.elapsed();
        let t = std::time::Instant::now();
        let all = parse_packages(&text).unwrap();
        let parse = t.elapsed();
        let re = Regex::new(r"^linux-image-").unwrap();
        let t = std::time::Instant::now();
        let some = parse_packages_from(&text, "x", Some(&|n: &str| re.is_match(n))).unwrap();
        let filtered = t.elapsed();
        println!(
            "{} bytes: unxz {unxz:?}; parse all {} entries {parse:?}; parse keeping {} linux-image entries {filtered:?}",
            text.len(),
            all.len(),
            some.len()
        );
    }
}
