//! Where the repository's data folders (`scenarios/`, `images/`) are found.
//!
//! Order: an explicit environment variable (`REPRO_ROOT`), then the nearest
//! ancestor of the current directory holding `scenarios/` and `images/`,
//! then the source tree the binary was built from.

use std::path::{Path, PathBuf};

/// The folder holding `scenarios/`, `images/` and `matrix.toml`.
pub fn repo_root() -> PathBuf {
    if let Some(root) = std::env::var_os("REPRO_ROOT") {
        return PathBuf::from(root);
    }
    if let Ok(cwd) = std::env::current_dir() {
        let mut dir: Option<&Path> = Some(&cwd);
        while let Some(d) = dir {
            if is_root(d) {
                return d.to_path_buf();
            }
            dir = d.parent();
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn is_root(dir: &Path) -> bool {
    dir.join("scenarios").is_dir() && dir.join("images").is_dir()
}

/// The scenarios folder: `REPRO_SCENARIOS_DIR` (used by the tests for
/// their fixture scenarios), else `<root>/scenarios`.
pub fn scenarios_dir(root: &Path) -> PathBuf {
    std::env::var_os("REPRO_SCENARIOS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("scenarios"))
}
