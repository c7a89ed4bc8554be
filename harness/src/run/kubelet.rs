//! The real kubelet of a cell: when the cell's `--kubelet` manifest has a
//! binary (built from Debian's source, see `images::kubelet`), the
//! kubelet, the OCI archives of the pause and busybox images and a
//! `bundle.env` are put in one cached folder, made into a read-only ext4
//! disk, and handed to root-filesystem guests with the variables
//! `scenarios/lib/kubelet.sh` reads. Profiles (manifests without a binary)
//! get none of this: a cell is real or a profile, never both.

use crate::images::cache::{sha256_bytes, Cache};
use crate::images::datadisk;
use crate::model::{Event, EventSink, KubeletInfo, Notice};
use crate::vm::DataDisk;
use std::path::{Path, PathBuf};

/// The data disk's serial (virtio-blk: at most 20 bytes).
pub const DISK_SERIAL: &str = "repro-kubelet";
/// Where `scenarios/lib/kubelet.sh` mounts the disk in the guest.
pub const GUEST_DIR: &str = "/run/repro-kubelet";
/// The image names the bundle's archives carry (the pause image is
/// containerd's sandbox image in the guest): those `repro images
/// build-kubelet` writes by default, so both share the archives.
pub const PAUSE_IMAGE: &str = crate::images::kubelet::container_images::DEFAULT_PAUSE_IMAGE;
pub const BUSYBOX_IMAGE: &str = crate::images::kubelet::container_images::DEFAULT_BUSYBOX_IMAGE;

/// The pieces of a bundle, as the kubelet build delivers them.
#[derive(Debug, Clone)]
pub struct BundleParts {
    pub kubelet: PathBuf,
    pub info: KubeletInfo,
    /// OCI image archives, each with the image name it carries.
    pub images: Vec<(PathBuf, String)>,
    pub pause_image: String,
    pub busybox_image: String,
}

/// A real kubelet ready for guests.
#[derive(Debug, Clone)]
pub struct PreparedKubelet {
    pub info: KubeletInfo,
    pub disk: DataDisk,
}

#[derive(Debug, thiserror::Error)]
pub enum KubeletPrepError {
    #[error(transparent)]
    Cache(#[from] crate::images::cache::CacheError),
    #[error(transparent)]
    Disk(#[from] datadisk::DataDiskError),
    #[error("cannot assemble the kubelet bundle in {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl PreparedKubelet {
    /// The variables a scenario's `kubelet.sh` reads.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("REPRO_KUBELET_REAL".into(), "1".into()),
            ("REPRO_KUBELET_BUNDLE".into(), GUEST_DIR.into()),
            ("REPRO_KUBELET_DISK".into(), DISK_SERIAL.into()),
        ]
    }
}

/// `bundle.env`: what the guest learns about the bundle (shell syntax,
/// values quoted where they need it).
pub fn bundle_env(parts: &BundleParts) -> String {
    let q = crate::guest::shell_quote;
    format!(
        "KUBELET_VERSION={}\nPAUSE_IMAGE={}\nBUSYBOX_IMAGE={}\n",
        q(&parts.info.version),
        q(&parts.pause_image),
        q(&parts.busybox_image)
    )
}

/// The key of a bundle: the kubelet's and every image's content and names.
pub fn bundle_key(parts: &BundleParts, image_digests: &[String]) -> String {
    let mut s = format!("kubelet {}\n{}", parts.info.sha256, bundle_env(parts));
    for ((_, name), d) in parts.images.iter().zip(image_digests) {
        s.push_str(&format!("image {name} {d}\n"));
    }
    sha256_bytes(s.as_bytes())
}

/// Assembles the bundle folder and its disk in the cache (once per key).
pub fn prepare(cache: &Cache, parts: BundleParts) -> Result<PreparedKubelet, KubeletPrepError> {
    let mut digests = Vec::new();
    for (p, _) in &parts.images {
        digests.push(crate::images::cache::sha256_file(p)?);
    }
    let key = bundle_key(&parts, &digests);
    let base = cache.dir("kubelet-bundles")?.join(&key);
    let src = base.join("bundle");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KubeletPrepError::Io { path, source }
    };
    cache.build_dir_once(&format!("kubelet-bundle-{key}"), &src, ".complete", |dir| {
        let images = dir.join("images");
        std::fs::create_dir_all(&images).map_err(io(&images))?;
        link_or_copy(&parts.kubelet, &dir.join("kubelet")).map_err(io(&parts.kubelet))?;
        for (i, (p, _)) in parts.images.iter().enumerate() {
            link_or_copy(p, &images.join(format!("{i}.tar"))).map_err(io(p))?;
        }
        let env = dir.join("bundle.env");
        std::fs::write(&env, bundle_env(&parts)).map_err(io(&env))?;
        Ok::<(), KubeletPrepError>(())
    })?;
    let disk = datadisk::ensure_ext4(cache, &src, &base.join("disk"), DISK_SERIAL)?;
    Ok(PreparedKubelet {
        info: parts.info,
        disk: DataDisk {
            path: disk,
            serial: DISK_SERIAL.into(),
        },
    })
}

/// The parts of the real kubelet `version`: built (or found in the cache)
/// from its manifest's `[build]` table, with the pause image of that build
/// and the busybox image; `None` when the manifest is a profile. Steps and
/// the compile's progress go to `sink` as notices.
pub fn parts_for(
    root: &Path,
    cache: &Cache,
    mirror: Option<&str>,
    version: &str,
    sink: &dyn EventSink,
) -> Result<Option<BundleParts>, String> {
    use crate::images::kubelet::{self as kb, BuildEvent};
    let profile =
        crate::kubelet::find(&root.join("images/kubelet"), version).map_err(|e| e.to_string())?;
    if profile.build.is_none() {
        return Ok(None);
    }
    let userland_path = root.join("images/userland.toml");
    let userland =
        crate::images::initramfs::Userland::load(&userland_path).map_err(|e| e.to_string())?;
    let archive = crate::images::Archive::from_discovery(
        crate::images::discover_mirror(mirror),
        cache.clone(),
    );
    let say = |step: String| {
        sink.event(&Event::Notice(Notice::KubeletStep {
            version: version.to_string(),
            step,
        }))
    };
    let last_tenth = std::sync::atomic::AtomicUsize::new(usize::MAX);
    let on_event = |e: BuildEvent| match e {
        BuildEvent::Step(s) => say(s),
        BuildEvent::Compile { done, total, .. } if total > 0 => {
            let tenth = done * 10 / total;
            if last_tenth.swap(tenth, std::sync::atomic::Ordering::SeqCst) != tenth {
                say(format!("compiling: {done} of {total} packages"));
            }
        }
        _ => {}
    };
    let fail = |e: kb::KubeletError| format!("kubelet {version}: {e}");
    let build = kb::ensure_kubelet(&archive, &profile, &on_event).map_err(fail)?;
    let pause = kb::ensure_pause_image(&build, PAUSE_IMAGE).map_err(fail)?;
    let busybox = kb::ensure_busybox_image(
        &archive,
        &userland,
        &userland_path,
        BUSYBOX_IMAGE,
        &on_event,
    )
    .map_err(fail)?;
    Ok(Some(BundleParts {
        kubelet: build.binary.clone(),
        info: KubeletInfo {
            version: build
                .version
                .rsplit(' ')
                .next()
                .unwrap_or(&build.version)
                .to_string(),
            sha256: build.sha256.clone(),
            origin: match build.go_version.as_str() {
                "" => format!("{} binary", build.origin),
                go => format!(
                    "built from Debian source {} with {go}",
                    build.source_version
                ),
            },
        },
        images: vec![
            (pause.path, pause.name.clone()),
            (busybox.path, busybox.name.clone()),
        ],
        pause_image: pause.name,
        busybox_image: busybox.name,
    }))
}

fn link_or_copy(from: &Path, to: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_file(to);
    std::fs::hard_link(from, to).or_else(|_| std::fs::copy(from, to).map(|_| ()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(dir: &Path) -> BundleParts {
        let k = dir.join("kubelet");
        std::fs::write(&k, b"#!/bin/sh\necho v1.20.2\n").unwrap();
        let img = dir.join("pause.tar");
        std::fs::write(&img, b"oci").unwrap();
        BundleParts {
            kubelet: k,
            info: KubeletInfo {
                version: "v1.20.2".into(),
                sha256: "ab".repeat(32),
                origin: "test".into(),
            },
            images: vec![(img, "repro.local/pause:3.2".into())],
            pause_image: "repro.local/pause:3.2".into(),
            busybox_image: "repro.local/busybox:1".into(),
        }
    }

    #[test]
    fn bundle_env_is_shell_and_names_the_images() {
        let t = tempfile::tempdir().unwrap();
        let e = bundle_env(&parts(t.path()));
        assert_eq!(
            e,
            "KUBELET_VERSION=v1.20.2\nPAUSE_IMAGE=repro.local/pause:3.2\nBUSYBOX_IMAGE=repro.local/busybox:1\n"
        );
    }

    #[test]
    fn the_key_follows_every_part() {
        let t = tempfile::tempdir().unwrap();
        let p = parts(t.path());
        let k = bundle_key(&p, &["11".into()]);
        assert_eq!(k, bundle_key(&p, &["11".into()]));
        assert_ne!(k, bundle_key(&p, &["12".into()]));
        let mut q = p.clone();
        q.info.sha256 = "cd".repeat(32);
        assert_ne!(k, bundle_key(&q, &["11".into()]));
        let mut r = p.clone();
        r.pause_image = "other/pause:3.2".into();
        assert_ne!(k, bundle_key(&r, &["11".into()]));
    }

    #[test]
    fn a_bundle_becomes_a_disk_with_the_guests_variables() {
        let t = tempfile::tempdir().unwrap();
        let cache = Cache::new(t.path().join("cache"));
        let p = prepare(&cache, parts(t.path())).unwrap();
        assert_eq!(p.disk.serial, DISK_SERIAL);
        assert!(p.disk.path.is_file());
        let env = p.env();
        assert!(env.contains(&("REPRO_KUBELET_REAL".into(), "1".into())));
        assert!(env.contains(&("REPRO_KUBELET_DISK".into(), DISK_SERIAL.into())));
        // Cached: the same parts give the same disk.
        assert_eq!(prepare(&cache, parts(t.path())).unwrap().disk, p.disk);
    }
}
