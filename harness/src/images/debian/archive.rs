//! An [`Archive`]: a Debian mirror seen through the cache. `Packages` indexes are cached
//! under `<cache>/debian/<mirror>/dists/<suite>/<component>/binary-amd64/` (`Sources`
//! indexes under `.../source/`) and refreshed
//! when older than a TTL (24 h by default); when a refresh fails the cached copy is used
//! with a warning, so offline runs work from the cache.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::http::{self, Fetched};
use super::mirror::Mirror;
use super::packages::{parse_packages_from, sort_matches, PackageEntry, PackageQuery};
use super::sources::{newest_source, parse_sources_from, SourceEntry};
use super::{io_err, DebianError, Result, ARCH, DEFAULT_INDEX_TTL};
use crate::images::cache::{self, Cache};
use crate::images::compress::{self, Compression, Extent};

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

/// Which index of a suite's component: binary packages for amd64, or source packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IndexKind {
    Packages,
    Sources,
}

impl IndexKind {
    /// The index's folder under `dists/<suite>/<component>/`.
    fn folder(self) -> String {
        match self {
            IndexKind::Packages => format!("binary-{ARCH}"),
            IndexKind::Sources => "source".into(),
        }
    }

    /// The index's file name without `.xz`.
    fn file(self) -> &'static str {
        match self {
            IndexKind::Packages => "Packages",
            IndexKind::Sources => "Sources",
        }
    }
}

/// A Debian archive seen through the cache.
pub struct Archive {
    mirror: std::result::Result<Mirror, String>,
    pub(super) cache: Cache,
    pub(super) agent: http::Agent,
    index_ttl: Duration,
    pub(super) offline: bool,
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
        Archive {
            mirror,
            cache,
            agent: http::agent(),
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

    pub(super) fn mirror_or_err(&self) -> Result<&Mirror> {
        self.mirror
            .as_ref()
            .map_err(|r| DebianError::NoMirror { tried: r.clone() })
    }

    /// The URL of a file of `suite`'s archive root (`rel` relative to it).
    pub fn url_for(&self, suite: &str, rel: &str) -> Result<String> {
        let base = self.mirror_or_err()?.base_for_suite(suite)?;
        Ok(format!("{}/{}", base, rel.trim_start_matches('/')))
    }

    fn index_dir(&self, suite: &str, component: &str, kind: IndexKind) -> Result<PathBuf> {
        let base = self.mirror_or_err()?.base_for_suite(suite)?;
        let key = cache::sanitize_name(base.split_once("://").map(|x| x.1).unwrap_or(base));
        Ok(self.cache.dir(&format!(
            "debian/{key}/dists/{}/{}/{}",
            cache::sanitize_name(suite),
            cache::sanitize_name(component),
            kind.folder()
        ))?)
    }

    /// Makes sure `dists/<suite>/<component>/binary-amd64/Packages.xz` is in the cache
    /// (fresh, or stale with a warning when the mirror cannot be reached) and returns its path.
    pub fn index_file(&self, suite: &str, component: &str) -> Result<PathBuf> {
        Ok(self
            .index_file_meta(suite, component, IndexKind::Packages)?
            .0)
    }

    /// `index_file` for an index of `kind`, with the sha256 of the cached file.
    pub(super) fn index_file_meta(
        &self,
        suite: &str,
        component: &str,
        kind: IndexKind,
    ) -> Result<(PathBuf, String)> {
        let (folder, file) = (kind.folder(), kind.file());
        let rel = format!("dists/{suite}/{component}/{folder}/{file}.xz");
        let url = self.url_for(suite, &rel)?;
        let dir = self.index_dir(suite, component, kind)?;
        let path = dir.join(format!("{file}.xz"));
        let meta_path = dir.join(format!("{file}.meta.json"));
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
                what: format!("the {suite}/{component} {} index", kind.file()),
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
        match http::get(&self.agent, &url, cond.unwrap_or_default()) {
            Ok(Fetched::NotModified) => {
                let m = IndexMeta {
                    fetched_at: now_secs(),
                    ..meta.clone().unwrap_or_default()
                };
                cache::write_json(&meta_path, &m)?;
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
                cache::write_json(
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
            let (path, sha) = self.index_file_meta(s, &q.component, IndexKind::Packages)?;
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
                    cache::write_json(
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

    /// The newest package named exactly `name` in `suite`/`component`.
    pub fn newest_named(&self, suite: &str, component: &str, name: &str) -> Result<PackageEntry> {
        let not_found = || DebianError::NotFound {
            query: format!("package {name} in {suite}/{component}"),
            available: String::new(),
        };
        let q = PackageQuery {
            suites: vec![suite.to_string()],
            component: component.to_string(),
            name: regex::Regex::new(&format!("^{}$", regex::escape(name)))
                .map_err(|_| not_found())?,
            version_prefix: None,
        };
        self.newest(&q)
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
}

/// The source packages named `name` in one `Sources` index, memoised beside it like
/// `Archive::matching`'s entries.
#[derive(Debug, Serialize, Deserialize)]
struct SourceMemo {
    index_sha256: String,
    name: String,
    entries: Vec<SourceEntry>,
}

impl Archive {
    /// The newest source package `name` of `suite`/`component` (its `Sources` index cached
    /// like a `Packages` index; the entries for `name` memoised beside it, so a second
    /// look-up reads a small JSON file instead of a 40 MB index).
    pub fn newest_source(&self, suite: &str, component: &str, name: &str) -> Result<SourceEntry> {
        let (path, sha) = self.index_file_meta(suite, component, IndexKind::Sources)?;
        let key = &cache::sha256_bytes(name.as_bytes())[..16];
        let memo_path = path.with_file_name(format!("source-{key}.json"));
        let memo: Option<SourceMemo> = fs::read(&memo_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .filter(|m: &SourceMemo| m.index_sha256 == sha && m.name == name);
        let entries = match memo {
            Some(m) => m.entries,
            None => {
                let text = read_xz_to_string(&path)?;
                let origin = format!("{suite}/{component} ({})", path.display());
                let mut entries = parse_sources_from(&text, &origin, Some(&|n: &str| n == name))?;
                for e in &mut entries {
                    e.suite = suite.to_string();
                }
                cache::write_json(
                    &memo_path,
                    &SourceMemo {
                        index_sha256: sha,
                        name: name.to_string(),
                        entries: entries.clone(),
                    },
                )?;
                entries
            }
        };
        newest_source(&entries)
            .cloned()
            .ok_or_else(|| DebianError::NotFound {
                query: format!("source package {name} in {suite}/{component}"),
                available: String::new(),
            })
    }
}

/// Decompresses a whole `.xz` file to a string.
pub fn read_xz_to_string(path: &Path) -> Result<String> {
    let f = File::open(path).map_err(io_err(path))?;
    let decompress_err = |source| DebianError::Decompress {
        what: path.display().to_string(),
        source,
    };
    let mut dec = compress::decoder(Compression::Xz, BufReader::new(f), Extent::All)
        .map_err(decompress_err)?;
    let mut s = String::new();
    dec.read_to_string(&mut s).map_err(decompress_err)?;
    Ok(s)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::images::debian::mirror::mirror_from_value;
    use crate::images::debian::packages::parse_packages;
    use crate::images::debian::MIRROR_ENV;
    use regex::Regex;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// A local mirror (file://) with one suite holding one package.
    pub(crate) fn local_mirror(deb: &[u8]) -> (tempfile::TempDir, Mirror, PackageEntry) {
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
    fn a_source_package_is_found_memoised_and_downloaded_verified() {
        let (mdir, mirror, _) = local_mirror(b"deb");
        let root = mdir.path().join("debian");
        let orig = b"an upstream tarball";
        std::fs::create_dir_all(root.join("pool/main/k/kubernetes")).unwrap();
        fs::write(root.join("pool/main/k/kubernetes/k_1.0.orig.tar.gz"), orig).unwrap();
        let para = |version: &str, sha: &str| {
            format!(
                "Package: k\nVersion: {version}\nDirectory: pool/main/k/kubernetes\nChecksums-Sha256:\n {sha} {} k_1.0.orig.tar.gz\n",
                orig.len()
            )
        };
        let text = format!(
            "{}\n{}\nPackage: other\nVersion: 9\nDirectory: pool/main/o\nChecksums-Sha256:\n",
            para("1.0-1", &cache::sha256_bytes(orig)),
            para("0.9-1", &"0".repeat(64))
        );
        let idx = root.join("dists/testing/main/source");
        fs::create_dir_all(&idx).unwrap();
        let mut enc = xz2::write::XzEncoder::new(Vec::new(), 1);
        enc.write_all(text.as_bytes()).unwrap();
        fs::write(idx.join("Sources.xz"), enc.finish().unwrap()).unwrap();
        let cdir = tempfile::tempdir().unwrap();
        let a = Archive::new(mirror, Cache::new(cdir.path().into()));
        let e = a.newest_source("testing", "main", "k").unwrap();
        assert_eq!((e.version.as_str(), e.suite.as_str()), ("1.0-1", "testing"));
        let p = a
            .download_source_file(&e, e.orig_tarball().unwrap(), &|_, _| {})
            .unwrap();
        assert_eq!(fs::read(&p).unwrap(), orig);
        let missing = a.newest_source("testing", "main", "nothing").unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("source package nothing in testing/main"),
            "{missing}"
        );
        // Mirror gone, offline: the memo and the blob answer.
        drop(mdir);
        let off = a.with_offline(true);
        let e2 = off.newest_source("testing", "main", "k").unwrap();
        assert_eq!(e2, e);
        assert_eq!(
            off.download_source_file(&e2, e2.orig_tarball().unwrap(), &|_, _| {})
                .unwrap(),
            p
        );
        // A file whose sha256 does not match its index is refused.
        let mut wrong = e.clone();
        wrong.files[0].sha256 = "1".repeat(64);
        assert!(matches!(
            off.download_source_file(&wrong, &wrong.files[0], &|_, _| {}),
            Err(DebianError::Offline { .. })
        ));
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
