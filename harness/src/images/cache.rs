//! The on-disk cache shared by every `repro` process of a user.
//!
//! Layout under the root (by default `$XDG_CACHE_HOME/repro` or `~/.cache/repro`):
//!
//! ```text
//! blobs/sha256/<first two hex digits>/<sha256>   content-addressed files (.deb, .rpm)
//! locks/<name>.lock                              advisory locks (flock), one per thing being built
//! <kind>/...                                     anything else, by kind (see `Cache::dir`)
//! ```
//!
//! Writers never leave half-written files behind: they write to a temporary file in the
//! destination's folder and rename it into place (`atomic_write`, built on
//! [`crate::fsutil`], and `Cache::blob_tempfile`).
//! Processes that build the same thing serialize on `Cache::lock`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;
use sha2::{Digest, Sha256};

use crate::fsutil;

/// What went wrong in the cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot create cache folder {path}: {source}; check that the cache root is writable or point XDG_CACHE_HOME elsewhere")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot lock {path}: {source}; check that the cache root is on a local, writable filesystem")]
    Lock { path: PathBuf, source: io::Error },
    #[error(
        "cannot write {path}: {source}; check free disk space and permissions of the cache root"
    )]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("`{0}` is not a sha256 digest (64 lowercase hex digits)")]
    BadDigest(String),
}

pub type Result<T, E = CacheError> = std::result::Result<T, E>;

/// A cache root folder. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    pub fn new(root: PathBuf) -> Self {
        Cache { root }
    }

    /// `$XDG_CACHE_HOME/repro` if that variable is set to an absolute path, else
    /// `$HOME/.cache/repro`, else `<temp dir>/repro-cache` (no home at all, e.g. in a bare container).
    pub fn default_root() -> PathBuf {
        default_root_from(
            std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from),
            std::env::var_os("HOME").map(PathBuf::from),
        )
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder `root/<kind>`, created if missing. `kind` may contain `/` for sub folders.
    pub fn dir(&self, kind: &str) -> Result<PathBuf> {
        let path = self.root.join(kind);
        create_dir_all(&path)?;
        Ok(path)
    }

    /// Where the blob with this sha256 lives (whether or not it exists yet).
    /// Panics on a digest that is not 64 hex digits: callers pass digests from an index or
    /// from `sha256_file`, and a malformed one would be a bug (use `check_digest` first for
    /// untrusted input).
    pub fn blob_path(&self, sha256_hex: &str) -> PathBuf {
        assert!(
            is_sha256_hex(sha256_hex),
            "blob_path needs a sha256 hex digest, got {sha256_hex:?}"
        );
        let lower = sha256_hex.to_ascii_lowercase();
        self.root.join("blobs/sha256").join(&lower[..2]).join(lower)
    }

    /// A temporary file in the blob folder, to be renamed onto `blob_path` once verified
    /// (same filesystem, so the rename is atomic). Dropped without persisting, it is removed.
    pub fn blob_tempfile(&self) -> Result<tempfile::NamedTempFile> {
        let dir = self.dir("blobs/tmp")?;
        tempfile::Builder::new()
            .prefix(".partial-")
            .tempfile_in(&dir)
            .map_err(|source| CacheError::Write { path: dir, source })
    }

    /// Takes the exclusive lock `root/locks/<name>.lock`, blocking until it is free.
    /// The lock is held until the returned guard is dropped (or the process dies: flock).
    /// Characters other than `[A-Za-z0-9._-]` in `name` are replaced by `_`.
    pub fn lock(&self, name: &str) -> Result<CacheLock> {
        let path = self.lock_path(name)?;
        let file = open_lock_file(&path)?;
        match file.try_lock_exclusive() {
            Ok(()) => {}
            Err(_) => {
                // Someone else holds it: wait for them (they are building the same thing).
                file.lock_exclusive().map_err(|source| CacheError::Lock {
                    path: path.clone(),
                    source,
                })?;
            }
        }
        Ok(CacheLock { _file: file, path })
    }

    /// Like `lock` but returns `None` instead of waiting when another process holds it.
    pub fn try_lock(&self, name: &str) -> Result<Option<CacheLock>> {
        let path = self.lock_path(name)?;
        let file = open_lock_file(&path)?;
        match file.try_lock_exclusive() {
            Ok(()) => Ok(Some(CacheLock { _file: file, path })),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(None),
            Err(source) => Err(CacheError::Lock { path, source }),
        }
    }

    /// Builds something in the cache once, however many processes want it at the same time:
    /// returns what `cached` finds; else takes the lock `lock_name`, asks `cached` again
    /// (another process may have finished while this one waited) and only then runs
    /// `build`. `build` writes its completion marker last, so `cached` never sees a
    /// half-built thing.
    pub fn build_once<T, E: From<CacheError>>(
        &self,
        lock_name: &str,
        mut cached: impl FnMut() -> Option<T>,
        build: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        if let Some(t) = cached() {
            return Ok(t);
        }
        let _lock = self.lock(lock_name)?;
        if let Some(t) = cached() {
            return Ok(t);
        }
        build()
    }

    /// [`Cache::build_once`] for a folder that is complete when the empty file `marker` is in
    /// it: creates `dir`, runs `build(dir)` and writes the marker. Returns whether it built.
    pub fn build_dir_once<E: From<CacheError>>(
        &self,
        lock_name: &str,
        dir: &Path,
        marker: &str,
        build: impl FnOnce(&Path) -> Result<(), E>,
    ) -> Result<bool, E> {
        let done = dir.join(marker);
        self.build_once(
            lock_name,
            || done.is_file().then_some(false),
            || {
                create_dir_all(dir)?;
                build(dir)?;
                atomic_write(&done, b"")?;
                Ok(true)
            },
        )
    }

    fn lock_path(&self, name: &str) -> Result<PathBuf> {
        let dir = self.dir("locks")?;
        Ok(dir.join(format!("{}.lock", sanitize_name(name))))
    }
}

fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|source| CacheError::Lock {
            path: path.to_path_buf(),
            source,
        })
}

/// An exclusive advisory lock; released on drop.
#[derive(Debug)]
pub struct CacheLock {
    _file: File,
    path: PathBuf,
}

impl CacheLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Pure part of `Cache::default_root`.
pub fn default_root_from(xdg_cache_home: Option<PathBuf>, home: Option<PathBuf>) -> PathBuf {
    if let Some(x) = xdg_cache_home.filter(|p| p.is_absolute()) {
        return x.join("repro");
    }
    if let Some(h) = home.filter(|p| !p.as_os_str().is_empty()) {
        return h.join(".cache").join("repro");
    }
    std::env::temp_dir().join("repro-cache")
}

/// Replaces every character outside `[A-Za-z0-9._-]` by `_` (and a leading `.` too, so
/// names never become hidden or `..`).
pub fn sanitize_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with('.') || s.is_empty() {
        s.insert(0, '_');
    }
    s
}

pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Checks an untrusted digest (from a manifest, say) before it is used as a path.
pub fn check_digest(s: &str) -> Result<String> {
    if is_sha256_hex(s) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(CacheError::BadDigest(s.to_string()))
    }
}

pub(crate) fn create_dir_all(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|source| CacheError::CreateDir {
        path: path.to_path_buf(),
        source,
    })
}

/// [`fsutil::atomic_write`] into the cache: creates the parent folder first, and names the
/// file and the cure in errors.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    create_parent(path)?;
    fsutil::atomic_write(path, bytes).map_err(write_err(path))
}

/// [`fsutil::atomic_write_from`] into the cache (for large files), like [`atomic_write`].
pub fn atomic_write_from(path: &Path, reader: &mut dyn Read) -> Result<u64> {
    create_parent(path)?;
    fsutil::atomic_write_from(path, reader).map_err(write_err(path))
}

/// Writes `value` as pretty JSON with [`atomic_write`] (records and markers in the cache).
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| write_err(path)(e.into()))?;
    atomic_write(path, &bytes)
}

fn create_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => create_dir_all(p),
        _ => Ok(()),
    }
}

fn write_err(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
    move |source| CacheError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// The sha256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let err = |source| CacheError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(err)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// The sha256 of some bytes, as lowercase hex.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(Some("/x/cache"), Some("/home/u"), "/x/cache/repro")]
    #[case(Some("relative"), Some("/home/u"), "/home/u/.cache/repro")]
    #[case(None, Some("/home/u"), "/home/u/.cache/repro")]
    fn default_root_rules(
        #[case] xdg: Option<&str>,
        #[case] home: Option<&str>,
        #[case] want: &str,
    ) {
        assert_eq!(
            default_root_from(xdg.map(PathBuf::from), home.map(PathBuf::from)),
            PathBuf::from(want)
        );
    }

    #[test]
    fn default_root_without_home_is_in_temp() {
        assert!(default_root_from(None, None).starts_with(std::env::temp_dir()));
    }

    #[rstest]
    #[case("kernel-abc", "kernel-abc")]
    #[case("a/b c", "a_b_c")]
    #[case("..", "_..")]
    #[case("", "_")]
    fn sanitize(#[case] input: &str, #[case] want: &str) {
        assert_eq!(sanitize_name(input), want);
    }

    #[test]
    fn blob_path_is_sharded() {
        let c = Cache::new(PathBuf::from("/c"));
        let d = "AB".to_string() + &"0".repeat(62);
        assert_eq!(
            c.blob_path(&d),
            PathBuf::from(format!("/c/blobs/sha256/ab/ab{}", "0".repeat(62)))
        );
        assert!(check_digest("xyz").is_err());
    }

    #[test]
    fn atomic_write_and_hash() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("sub/file");
        atomic_write(&p, b"hello").unwrap();
        atomic_write(&p, b"hello").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"hello");
        assert_eq!(
            sha256_file(&p).unwrap(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(sha256_bytes(b"hello"), sha256_file(&p).unwrap());
        // No temporary files left behind.
        assert_eq!(fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn build_once_builds_once_and_rechecks_under_the_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let c = Cache::new(tmp.path().to_path_buf());
        let dir = tmp.path().join("thing");
        let built = std::cell::Cell::new(0);
        let build = |d: &Path| -> Result<()> {
            built.set(built.get() + 1);
            fs::write(d.join("data"), b"x").map_err(|source| CacheError::Write {
                path: d.to_path_buf(),
                source,
            })
        };
        assert!(c.build_dir_once("thing", &dir, ".complete", build).unwrap());
        assert!(!c.build_dir_once("thing", &dir, ".complete", build).unwrap());
        assert_eq!(built.get(), 1);
        assert!(dir.join(".complete").is_file() && dir.join("data").is_file());
        // The second check runs under the lock: a build finished while waiting is reused.
        let checks = std::cell::Cell::new(0);
        let got = c
            .build_once(
                "other",
                || {
                    checks.set(checks.get() + 1);
                    (checks.get() == 2).then_some("made by another process")
                },
                || -> Result<&str> { Ok("built here") },
            )
            .unwrap();
        assert_eq!((got, checks.get()), ("made by another process", 2));
        // A failed build leaves no marker, so the next call builds again.
        let failing = |_: &Path| -> Result<()> { Err(CacheError::BadDigest("boom".into())) };
        let other = tmp.path().join("failing");
        assert!(c.build_dir_once("f", &other, ".complete", failing).is_err());
        assert!(!other.join(".complete").exists());
        assert!(c.build_dir_once("f", &other, ".complete", build).unwrap());
    }

    #[test]
    fn lock_is_exclusive_until_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let c = Cache::new(tmp.path().to_path_buf());
        let g = c.lock("thing/1").unwrap();
        assert!(g.path().ends_with("locks/thing_1.lock"));
        // flock locks are per open file description, so a second open in the same process
        // contends like another process would.
        assert!(c.try_lock("thing/1").unwrap().is_none());
        drop(g);
        assert!(c.try_lock("thing/1").unwrap().is_some());
    }
}
