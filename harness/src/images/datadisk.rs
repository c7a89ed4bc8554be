//! Read-only data disks: a folder of the cache made into an ext4 image the
//! guest mounts (the real kubelet's bundle: a 110 MB binary and OCI
//! archives would take many seconds to send over SSH under emulation on
//! every attempt; a disk costs nothing per attempt). Built once per content
//! hash with `mkfs.ext4 -d` (`rootfs::mkfs_ext4`), next to the folder it
//! was made from.

use super::cache::{Cache, CacheError};
use super::rootfs::{self, RootfsError};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DataDiskError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make the data disk of {src}: {source}")]
    Mkfs {
        src: PathBuf,
        source: Box<RootfsError>,
    },
}

/// The image's size for `bytes` of files: ext4's metadata and journal need
/// room beside the data (a fifth more, plus 32 MiB), rounded up to MiB.
pub fn image_mib(bytes: u64) -> u64 {
    let mib = bytes.div_ceil(1 << 20);
    mib + mib / 5 + 32
}

/// The ext4 image of `src` (labelled `label`), built once at `dir/disk.ext4`
/// (`dir` must be named by the content's hash: the image is never rebuilt).
pub fn ensure_ext4(
    cache: &Cache,
    src: &Path,
    dir: &Path,
    label: &str,
) -> Result<PathBuf, DataDiskError> {
    let img = dir.join("disk.ext4");
    let lock = format!("datadisk-{}", dir.display());
    cache.build_dir_once(&lock, dir, ".disk-complete", |dir| {
        let size = image_mib(super::inventory::du(src));
        let tmp = dir.join("disk.ext4.tmp");
        rootfs::mkfs_ext4(src, &tmp, size, label, &dir.join("mkfs.log")).map_err(|e| {
            DataDiskError::Mkfs {
                src: src.to_path_buf(),
                source: Box::new(e),
            }
        })?;
        std::fs::rename(&tmp, &img).map_err(|source| DataDiskError::Io {
            path: img.clone(),
            source,
        })
    })?;
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_leaves_room_for_ext4s_metadata() {
        assert_eq!(image_mib(0), 32);
        assert_eq!(image_mib(1), 33);
        assert_eq!(image_mib(110 << 20), 110 + 22 + 32);
    }

    #[test]
    fn a_folder_becomes_an_ext4_image_once() {
        let t = tempfile::tempdir().unwrap();
        let cache = Cache::new(t.path().join("cache"));
        let src = t.path().join("src");
        std::fs::create_dir_all(src.join("images")).unwrap();
        std::fs::write(src.join("kubelet"), vec![7u8; 100_000]).unwrap();
        std::fs::write(src.join("images/a.tar"), b"x").unwrap();
        let dir = t.path().join("cache/disk-abc");
        let img = ensure_ext4(&cache, &src, &dir, "repro-test").unwrap();
        let meta = std::fs::metadata(&img).unwrap();
        assert_eq!(meta.len(), 33 << 20);
        // ext4's magic 0xEF53 at byte 1080 of the image.
        let bytes = std::fs::read(&img).unwrap();
        assert_eq!(&bytes[1080..1082], &[0x53, 0xef]);
        // The label is in the superblock (offset 1024 + 0x78).
        assert_eq!(&bytes[1024 + 0x78..1024 + 0x78 + 10], b"repro-test");
        // A second call finds it and does not rebuild.
        std::fs::remove_file(src.join("kubelet")).unwrap();
        assert_eq!(ensure_ext4(&cache, &src, &dir, "repro-test").unwrap(), img);
        assert_eq!(std::fs::metadata(&img).unwrap().len(), 33 << 20);
    }
}
