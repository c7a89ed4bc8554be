//! Debian archive access: mirror discovery, `Packages` and `Sources` indexes, verified
//! downloads of `.deb`s and source packages' files.
//! This file holds the constants, the error type and the public names; each job lives in
//! its own submodule:
//!
//! - [`mirror`]: which mirror (flag, environment, apt sources);
//! - [`deb822`]: the paragraph format of indexes, apt sources and dpkg's status file;
//! - [`packages`]: `Packages` index entries and package queries;
//! - [`sources`]: `Sources` index entries (source packages and their files);
//! - [`version`]: Debian version order;
//! - [`archive`]: an [`Archive`]: the cached indexes of a mirror;
//! - [`download`]: verified downloads into the blob store;
//! - `http`: the HTTP client (GET, conditional GET, `file://`).
//!
//! The mirror is never hard-coded: it comes from the caller (`--mirror`, `debian_mirror` in
//! matrix.toml), from `REPRO_DEBIAN_MIRROR`, or from the host's apt sources.
//!
//! Indexes are cached under `<cache>/debian/<mirror>/dists/<suite>/<component>/binary-amd64/`
//! and refreshed when older than a TTL (24 h by default); when a refresh fails the cached copy
//! is used with a warning, so offline runs work from the cache. Packages are stored in the
//! content-addressed blob store under their SHA256 from the index, verified while downloading.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::cache::CacheError;

pub mod archive;
pub mod deb822;
pub mod download;
mod http;
pub mod mirror;
pub mod packages;
pub mod sources;
pub mod version;

pub use archive::{read_xz_to_string, Archive};
pub use mirror::{
    choose_mirror, discover_mirror, discover_mirror_from, is_debian_suite, is_security_suite,
    mirror_from_value, parse_deb822_sources, parse_one_line_sources, AptSource, Mirror,
};
pub use packages::{
    parse_packages, parse_packages_from, pick_newest, sort_matches, PackageEntry, PackageQuery,
};
pub use sources::{SourceEntry, SourceFile};
pub use version::compare_versions;

/// Environment variable naming the Debian archive URL (optionally `ARCHIVE,SECURITY`).
pub const MIRROR_ENV: &str = "REPRO_DEBIAN_MIRROR";
/// Environment variable naming the Debian security archive URL (overrides any other source).
pub const SECURITY_MIRROR_ENV: &str = "REPRO_DEBIAN_SECURITY_MIRROR";
/// Default time after which a cached `Packages` index is refreshed.
pub const DEFAULT_INDEX_TTL: Duration = Duration::from_secs(24 * 3600);
/// The only architecture the harness boots.
pub const ARCH: &str = "amd64";

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
    #[error("malformed index {origin}, paragraph at line {line}: {message}; delete the cached file to fetch it again")]
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

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DebianError + '_ {
    move |source| DebianError::Io {
        path: path.to_path_buf(),
        source,
    }
}
