//! The Go toolchain of a `[build]`: Debian's Go packages (the compiler and the standard
//! library's sources) downloaded, verified and unpacked side by side into
//! `<cache>/kubelet/go/<hash of their sha256s>/`, where `usr/lib/go-<v>` is a complete
//! GOROOT (its `src`, `api`, `misc` and `test` are relative links into `usr/share/go-<v>`).
//! Nothing is installed on the host.

use std::path::{Path, PathBuf};

use super::{BuildEvent, KubeletError};
use crate::images::cache;
use crate::images::debian::{Archive, PackageEntry};
use crate::kubelet::Build;

/// A GOROOT in the cache.
#[derive(Debug, Clone)]
pub struct Toolchain {
    pub goroot: PathBuf,
}

impl Toolchain {
    /// `$GOROOT/bin/go`.
    pub fn go(&self) -> PathBuf {
        self.goroot.join("bin/go")
    }
}

/// The newest of each `spec.go_packages` in `spec.go_suite`/`spec.go_component`.
pub fn find(archive: &Archive, spec: &Build) -> Result<Vec<PackageEntry>, KubeletError> {
    spec.go_packages
        .iter()
        .map(|name| Ok(archive.newest_named(&spec.go_suite, &spec.go_component, name)?))
        .collect()
}

/// Downloads and unpacks `packages` once; returns the GOROOT inside.
pub fn ensure_goroot(
    archive: &Archive,
    packages: &[PackageEntry],
    event: &dyn Fn(BuildEvent),
) -> Result<Toolchain, KubeletError> {
    let shas: Vec<&str> = packages.iter().map(|p| p.sha256.as_str()).collect();
    let key = cache::sha256_bytes(shas.join("\n").as_bytes());
    let cache = archive.cache();
    let dir = cache.dir("kubelet/go")?.join(&key);
    cache.build_dir_once(&format!("kubelet-go-{key}"), &dir, ".complete", |dir| {
        for p in packages {
            let what = format!("{} {}", p.name, p.version);
            event(BuildEvent::Step(format!("downloading {what}")));
            let deb = archive.download(p, &super::download_progress(event, &what))?;
            event(BuildEvent::Step(format!("unpacking {what}")));
            crate::images::deb::extract(&deb, dir, &|_| true)?;
        }
        goroot_in(dir, packages).map(|_| ())
    })?;
    goroot_in(&dir, packages)
}

/// The GOROOT in an unpacked tree: the `usr/lib/go-*` folder with `bin/go` and `src/runtime`.
fn goroot_in(dir: &Path, packages: &[PackageEntry]) -> Result<Toolchain, KubeletError> {
    let names = || {
        packages
            .iter()
            .map(|p| format!("{} {}", p.name, p.version))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let lib = dir.join("usr/lib");
    let goroot = std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("go-"))
                && p.join("bin/go").is_file()
        })
        .ok_or_else(|| KubeletError::NoGoroot {
            packages: names(),
            missing: "usr/lib/go-*/bin/go".into(),
        })?;
    if !goroot.join("src/runtime").is_dir() {
        return Err(KubeletError::NoGoroot {
            packages: names(),
            missing: format!(
                "{}/src/runtime (the standard library's sources)",
                goroot.display()
            ),
        });
    }
    Ok(Toolchain { goroot })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_goroot_needs_the_compiler_and_the_sources_side_by_side() {
        let d = tempfile::tempdir().unwrap();
        let e = goroot_in(d.path(), &[]).unwrap_err().to_string();
        assert!(e.contains("usr/lib/go-*/bin/go"), "{e}");
        let root = d.path().join("usr/lib/go-1.15");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/go"), b"").unwrap();
        let e = goroot_in(d.path(), &[]).unwrap_err().to_string();
        assert!(e.contains("src/runtime"), "{e}");
        // As Debian lays it out: src is a relative link into usr/share.
        std::fs::create_dir_all(d.path().join("usr/share/go-1.15/src/runtime")).unwrap();
        std::os::unix::fs::symlink("../../share/go-1.15/src", root.join("src")).unwrap();
        assert_eq!(goroot_in(d.path(), &[]).unwrap().goroot, root);
    }
}
