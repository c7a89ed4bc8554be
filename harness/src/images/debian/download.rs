//! Verified downloads into the content-addressed blob store: a package named by an index
//! entry or a source package's file (size and SHA256 checked while downloading), or any URL (an RPM) with an optional
//! expected SHA256. A blob already in the store needs no network.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::archive::Archive;
use super::http::{self, Fetched};
use super::packages::PackageEntry;
use super::sources::{SourceEntry, SourceFile};
use super::{io_err, DebianError, Result};
use crate::images::cache;

impl Archive {
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

    /// Downloads `file` of the source package `entry` into the blob store (verifying size
    /// and SHA256 from the `Sources` index) and returns its path; a cached file needs no
    /// network.
    pub fn download_source_file(
        &self,
        entry: &SourceEntry,
        file: &SourceFile,
        progress: &dyn Fn(u64, u64),
    ) -> Result<PathBuf> {
        let digest = cache::check_digest(&file.sha256)?;
        let blob = self.cache.blob_path(&digest);
        if blob.is_file() {
            return Ok(blob);
        }
        let url = self.url_for(&entry.suite, &entry.path_of(file))?;
        let (path, _) = self.fetch_blob(
            &url,
            Some(&digest),
            Some(file.size),
            &format!(
                "{} of source package {} {}",
                file.name, entry.name, entry.version
            ),
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
        let cached = || {
            let d = expected_sha256?;
            let blob = self.cache.blob_path(d);
            blob.is_file().then(|| (blob, d.to_string()))
        };
        if self.offline {
            // From the store or not at all, without waiting for another process's lock.
            return cached().ok_or_else(|| DebianError::Offline {
                what: what.to_string(),
                url: url.to_string(),
            });
        }
        let lock_key = expected_sha256
            .map(str::to_string)
            .unwrap_or_else(|| cache::sha256_bytes(url.as_bytes()));
        self.cache
            .build_once(&format!("blob-{lock_key}"), cached, || {
                self.download_blob(url, expected_sha256, expected_size, progress)
            })
    }

    /// Downloads `url` into a temporary file of the blob store, hashing and counting while
    /// writing, checks size and digest when expected, and renames it to its blob path.
    fn download_blob(
        &self,
        url: &str,
        expected_sha256: Option<&str>,
        expected_size: Option<u64>,
        progress: &dyn Fn(u64, u64),
    ) -> Result<(PathBuf, String)> {
        let Fetched::Body {
            mut reader, length, ..
        } = http::get(&self.agent, url, (None, None))?
        else {
            return Err(DebianError::Http {
                url: url.to_string(),
                status: 304,
                hint: "the server answered \"not modified\" to an unconditional request; retry or use another mirror".into(),
            });
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
        if let Some(parent) = blob.parent() {
            cache::create_dir_all(parent)?;
        }
        tmp.persist(&blob).map_err(|e| DebianError::Io {
            path: blob.clone(),
            source: e.error,
        })?;
        Ok((blob, actual))
    }
}

#[cfg(test)]
mod tests {
    use crate::images::cache::Cache;
    use crate::images::debian::archive::tests::local_mirror;
    use crate::images::debian::{Archive, DebianError};
    use std::fs;

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
}
