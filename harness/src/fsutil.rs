//! Atomic file writes: the one way the harness replaces a file's content, so that a reader
//! (another `repro` process, a report viewer, a crash-interrupted run) sees either the old
//! content or the new one, never a part.

use std::io::{self, Read};
use std::path::Path;

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, fsync, rename.
/// The folder must exist.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    atomic_write_from(path, &mut &*bytes).map(|_| ())
}

/// Like [`atomic_write`], with the content read from `reader` (for large files). Returns
/// the number of bytes written.
pub fn atomic_write_from(path: &Path, reader: &mut dyn Read) -> io::Result<u64> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Same folder, so the rename cannot cross filesystems; dropped on error, it is removed.
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    let n = io::copy(reader, &mut tmp)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn replaces_content_and_leaves_no_temporary_file() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("file");
        atomic_write(&p, b"old").unwrap();
        atomic_write(&p, b"new content").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new content");
        let n = atomic_write_from(&p, &mut &b"streamed"[..]).unwrap();
        assert_eq!(n, 8);
        assert_eq!(fs::read(&p).unwrap(), b"streamed");
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_missing_folder_is_an_error_and_nothing_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("no/such/folder/file");
        assert!(atomic_write(&p, b"x").is_err());
        assert!(!tmp.path().join("no").exists());
    }
}
