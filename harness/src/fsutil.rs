//! Filesystem helpers shared by every module that writes results or cache
//! entries: atomic writes (temporary file in the same folder, then rename).

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` through a temporary file in the same folder,
/// so a reader never sees half a file.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.flush()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
