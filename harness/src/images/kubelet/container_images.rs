//! The container images a real kubelet needs in the guest, as OCI archives for
//! `ctr -n k8s.io images import`: `pause` (the build's static pause binary as `/pause`,
//! kept in the build's folder, so it is keyed with the kubelet) and `busybox` (the
//! initramfs guest's static busybox, `/bin/busybox` with a few applet links, entrypoint
//! `/bin/sh`; keyed by its package's sha256). Image names are parameters: an archive is
//! written once per name, atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::oci::{write_oci_archive, ImageSpec, LayerFile};
use super::{io_err, BuildEvent, KubeletBuild, KubeletError};
use crate::images::cache::{self, Cache};
use crate::images::debian::Archive;
use crate::images::initramfs::{self, Userland};

/// The name the pause image gets unless the caller says otherwise (containerd's
/// `sandbox_image` must name the same).
pub const DEFAULT_PAUSE_IMAGE: &str = "repro.local/pause:latest";
/// The name the busybox image gets unless the caller says otherwise.
pub const DEFAULT_BUSYBOX_IMAGE: &str = "repro.local/busybox:latest";
/// The userland package whose static busybox the busybox image holds.
pub const BUSYBOX_PACKAGE: &str = "busybox-static";
/// The applets linked to `/bin/busybox` in the busybox image.
pub const BUSYBOX_APPLETS: &[&str] = &["sh", "sleep", "cat", "true", "mkdir", "ls", "echo", "dd"];

/// An OCI archive in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageArchive {
    pub name: String,
    pub path: PathBuf,
    pub bytes: u64,
}

/// Writes `spec` to `<dir>/<name>.oci.tar` unless it is there.
fn ensure_archive(dir: &Path, spec: &ImageSpec) -> Result<ImageArchive, KubeletError> {
    let path = dir.join(format!("{}.oci.tar", cache::sanitize_name(&spec.name)));
    if !path.is_file() {
        let mut bytes = Vec::new();
        write_oci_archive(spec, &mut bytes).map_err(io_err(&path))?;
        cache::atomic_write(&path, &bytes)?;
    }
    let bytes = std::fs::metadata(&path).map_err(io_err(&path))?.len();
    Ok(ImageArchive {
        name: spec.name.clone(),
        path,
        bytes,
    })
}

fn read(path: &Path) -> Result<Vec<u8>, KubeletError> {
    std::fs::read(path).map_err(io_err(path))
}

/// The pause image of `build` named `name`, in `<build>/images/`.
pub fn ensure_pause_image(build: &KubeletBuild, name: &str) -> Result<ImageArchive, KubeletError> {
    let pause = build.pause.as_ref().ok_or_else(|| KubeletError::Io {
        path: build.dir.join("pause"),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "this kubelet was not built from source, so there is no pause binary",
        ),
    })?;
    let mut files = BTreeMap::new();
    files.insert(
        "/pause".to_string(),
        LayerFile::File {
            data: read(&pause.path)?,
            mode: 0o755,
        },
    );
    let spec = ImageSpec {
        name: name.to_string(),
        entrypoint: vec!["/pause".into()],
        files,
    };
    ensure_archive(&build.dir.join("images"), &spec)
}

/// The busybox image's files: the binary and its applet links.
pub fn busybox_files(busybox: Vec<u8>) -> BTreeMap<String, LayerFile> {
    let mut files = BTreeMap::new();
    files.insert(
        "/bin/busybox".to_string(),
        LayerFile::File {
            data: busybox,
            mode: 0o755,
        },
    );
    for a in BUSYBOX_APPLETS {
        files.insert(format!("/bin/{a}"), LayerFile::Symlink("busybox".into()));
    }
    files.insert("/tmp".to_string(), LayerFile::Dir);
    files
}

/// The busybox image named `name`: the userland's `busybox-static` (from `userland`'s
/// suite, downloaded and unpacked like the initramfs guest's), in
/// `<cache>/kubelet/busybox/<package sha256>/`.
pub fn ensure_busybox_image(
    archive: &Archive,
    userland: &Userland,
    userland_path: &Path,
    name: &str,
    event: &dyn Fn(BuildEvent),
) -> Result<ImageArchive, KubeletError> {
    if !userland.packages.iter().any(|p| p == BUSYBOX_PACKAGE) {
        return Err(KubeletError::NoBusybox {
            path: userland_path.to_path_buf(),
            package: BUSYBOX_PACKAGE.into(),
        });
    }
    let entry = archive.newest_named(&userland.suite, &userland.component, BUSYBOX_PACKAGE)?;
    let what = format!("{} {}", entry.name, entry.version);
    let deb = archive.download(&entry, &super::download_progress(event, &what))?;
    let cache: &Cache = archive.cache();
    let tree = initramfs::unpack_package(cache, &deb, &entry.sha256)?;
    let spec = ImageSpec {
        name: name.to_string(),
        entrypoint: vec!["/bin/sh".into()],
        files: busybox_files(read(&tree.join("bin/busybox"))?),
    };
    ensure_archive(&cache.dir("kubelet/busybox")?.join(&entry.sha256), &spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::kubelet::BuiltBinary;

    #[test]
    fn the_pause_archive_is_written_once_per_name_in_the_build_folder() {
        let d = tempfile::tempdir().unwrap();
        let pause = d.path().join("pause");
        std::fs::write(&pause, b"\x7fELF").unwrap();
        let build = KubeletBuild {
            profile: "1.20".into(),
            origin: "debian-source".into(),
            key: "k".into(),
            dir: d.path().into(),
            binary: d.path().join("bin/kubelet"),
            version: "Kubernetes v1.20.2".into(),
            sha256: String::new(),
            size: 0,
            go_version: String::new(),
            source_version: String::new(),
            orig_sha256: String::new(),
            ldflags: String::new(),
            binaries: vec![],
            pause: Some(BuiltBinary {
                name: "pause".into(),
                path: pause,
                sha256: String::new(),
                size: 4,
            }),
            build_seconds: 0.0,
            built: false,
        };
        let a = ensure_pause_image(&build, DEFAULT_PAUSE_IMAGE).unwrap();
        assert_eq!(
            a.path,
            d.path().join("images/repro.local_pause_latest.oci.tar")
        );
        let first = std::fs::read(&a.path).unwrap();
        let b = ensure_pause_image(&build, DEFAULT_PAUSE_IMAGE).unwrap();
        assert_eq!(std::fs::read(&b.path).unwrap(), first);
        let other = ensure_pause_image(&build, "k8s.example/pause:3.2").unwrap();
        assert_ne!(other.path, a.path);
        let no_pause = KubeletBuild {
            pause: None,
            ..build
        };
        assert!(ensure_pause_image(&no_pause, "x").is_err());
    }

    #[test]
    fn busybox_has_its_applets_as_links() {
        let files = busybox_files(b"bb".to_vec());
        for a in ["sh", "sleep", "cat", "true", "mkdir", "ls", "echo", "dd"] {
            assert_eq!(
                files[&format!("/bin/{a}")],
                LayerFile::Symlink("busybox".into())
            );
        }
        assert!(matches!(
            files["/bin/busybox"],
            LayerFile::File { mode: 0o755, .. }
        ));
    }
}
