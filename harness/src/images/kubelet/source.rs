//! The source tree of a `[build]`: the source package's entry in the `Sources` index, its
//! orig tarball downloaded into the blob store (size and sha256 from the index), and the
//! tarball unpacked into a temporary folder of the cache, removed when the build is done.

use std::path::{Path, PathBuf};

use super::{io_err, BuildEvent, KubeletError};
use crate::images::compress::{self, Extent};
use crate::images::deb;
use crate::images::debian::{Archive, SourceEntry, SourceFile};
use crate::kubelet::Build;

/// A source package and its orig tarball.
#[derive(Debug, Clone)]
pub struct SourcePackage {
    pub entry: SourceEntry,
    pub orig: SourceFile,
}

/// The newest `spec.package` of `spec.suite`/`spec.component` and its orig tarball.
pub fn find(archive: &Archive, spec: &Build) -> Result<SourcePackage, KubeletError> {
    let entry = archive.newest_source(&spec.suite, &spec.component, &spec.package)?;
    let orig = entry
        .orig_tarball()
        .cloned()
        .ok_or_else(|| KubeletError::NoOrigTarball {
            package: entry.name.clone(),
            version: entry.version.clone(),
            files: entry
                .files
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    Ok(SourcePackage { entry, orig })
}

/// An unpacked tree; the temporary folder holding it goes when this is dropped.
#[derive(Debug)]
pub struct Tree {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Tree {
    /// The tree's top folder (`kubernetes-1.20.2/`).
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// Downloads (or finds in the blob store) the orig tarball and unpacks it into a
/// temporary folder under `<cache>/kubelet/tmp/`.
pub fn unpack(
    archive: &Archive,
    src: &SourcePackage,
    event: &dyn Fn(BuildEvent),
) -> Result<Tree, KubeletError> {
    let what = src.orig.name.clone();
    event(BuildEvent::Step(format!("downloading {what}")));
    let tarball = archive.download_source_file(
        &src.entry,
        &src.orig,
        &super::download_progress(event, &what),
    )?;
    event(BuildEvent::Step(format!("unpacking {what}")));
    let parent = archive.cache().dir("kubelet/tmp")?;
    let tmp = tempfile::Builder::new()
        .prefix("src-")
        .tempdir_in(&parent)
        .map_err(io_err(&parent))?;
    let f = std::fs::File::open(&tarball).map_err(io_err(&tarball))?;
    let (_, reader) =
        compress::sniff(std::io::BufReader::new(f), Extent::All).map_err(io_err(&tarball))?;
    deb::unpack_tar(reader, &tarball, &what, tmp.path(), &|_| true)?;
    let root = top_folder(tmp.path())?;
    Ok(Tree { _tmp: tmp, root })
}

/// The one folder an upstream tarball unpacks to (or `dir` itself when it has more).
fn top_folder(dir: &Path) -> Result<PathBuf, KubeletError> {
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .flatten()
        .map(|e| e.path())
        .collect();
    match &entries[..] {
        [one] if one.is_dir() => Ok(one.clone()),
        _ => Ok(dir.to_path_buf()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_folder_is_the_single_folder_or_the_dir() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("kubernetes-1.20.2")).unwrap();
        assert_eq!(
            top_folder(d.path()).unwrap(),
            d.path().join("kubernetes-1.20.2")
        );
        std::fs::write(d.path().join("README"), b"x").unwrap();
        assert_eq!(top_folder(d.path()).unwrap(), d.path());
    }
}
