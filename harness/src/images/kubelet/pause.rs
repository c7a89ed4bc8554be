//! The pause container's binary: the tree's `pause.c` compiled with the host's C compiler,
//! `cc -static -Os` (as upstream's Makefile does, with the version it prints), so the
//! image needs nothing but the one file.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::KubeletError;

/// The version string `pause -v` prints (upstream: `v$(TAG)-$(git describe)`).
const PAUSE_VERSION: &str = "repro-from-debian-source";

/// Whether `name` is an executable file in one of `path`'s folders.
fn on_path(name: &str, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path?)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Compiles `source` into the static binary `out`.
pub fn compile(source: &Path, out: &Path) -> Result<(), KubeletError> {
    if on_path("cc", std::env::var_os("PATH").as_deref()).is_none() {
        return Err(KubeletError::NoCc);
    }
    let output = Command::new("cc")
        .args(["-static", "-Os", "-Wall"])
        .arg(format!("-DVERSION={PAUSE_VERSION}"))
        .arg("-o")
        .arg(out)
        .arg(source)
        .output()
        .map_err(|source| KubeletError::Spawn {
            program: "cc".into(),
            source,
            hint: "; install `build-essential`",
        })?;
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stderr);
        return Err(KubeletError::Cc {
            source_file: source.display().to_string(),
            output: text
                .lines()
                .find(|l| l.contains("error"))
                .or_else(|| text.lines().next())
                .unwrap_or("no output")
                .trim()
                .to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compiler_is_looked_up_on_the_path() {
        let d = tempfile::tempdir().unwrap();
        assert!(on_path("cc", Some(d.path().as_os_str())).is_none());
        let cc = d.path().join("cc");
        std::fs::write(&cc, b"#!/bin/sh\n").unwrap();
        assert!(
            on_path("cc", Some(d.path().as_os_str())).is_none(),
            "not executable"
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cc, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(on_path("cc", Some(d.path().as_os_str())), Some(cc));
        assert!(on_path("cc", None).is_none());
    }
}
