//! What the cache holds, for `repro images list`: unpacked kernels, guest
//! images (initramfs and root filesystems), real kubelets and downloaded packages, with
//! sizes and content hashes; and `repro images gc`: what it may remove, and
//! removing it.

use super::cache::Cache;
use std::fmt;
use std::path::{Path, PathBuf};

/// One cached item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// `kernel`, `initramfs`, `rootfs`, `kubelet` or `downloads`.
    pub kind: &'static str,
    /// Kernel release, or a short description.
    pub name: String,
    /// The content hash naming it (package sha256 or image input hash).
    pub hash: String,
    pub bytes: u64,
    pub path: PathBuf,
}

/// Bytes under `p` (a file's length, a folder's contents, symlinks not
/// followed); what cannot be read counts 0.
pub fn du(p: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if meta.is_dir() {
        std::fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| du(&e.path())).sum())
            .unwrap_or(0)
    } else {
        meta.len()
    }
}

fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// Everything in `cache`, kernels first, then images, then downloads.
pub fn inventory(cache: &Cache) -> Vec<Item> {
    let mut out = Vec::new();
    // Cached items are folders named by a 64-hex content hash.
    let hashed = |sub: &str| -> Vec<(String, PathBuf)> {
        let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(cache.root().join(sub))
            .map(|rd| {
                rd.flatten()
                    .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                    .filter(|(name, _)| is_hash(name))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    for (hash, d) in hashed("kernels") {
        let release = std::fs::read(d.join("kernel.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["release"].as_str().map(str::to_string))
            .unwrap_or_else(|| "(incomplete)".into());
        out.push(Item {
            kind: "kernel",
            name: release,
            hash,
            bytes: du(&d),
            path: d,
        });
    }
    for (hash, d) in hashed("initramfs") {
        let done = d.join(".complete").is_file();
        out.push(Item {
            kind: "initramfs",
            name: if done {
                "guest image".into()
            } else {
                "(incomplete)".into()
            },
            hash,
            bytes: du(&d),
            path: d,
        });
    }
    for (hash, d) in hashed("rootfs") {
        let meta = super::rootfs::read_image(&d).map(|i| i.meta);
        out.push(Item {
            kind: "rootfs",
            name: meta
                .map(|m| format!("{} ({} MiB fs)", m.name, m.size_mib))
                .unwrap_or_else(|| "(incomplete)".into()),
            hash,
            bytes: du(&d),
            path: d,
        });
    }
    for (hash, d) in hashed("kubelet") {
        let name = super::kubelet::read_build(&d)
            .map(|b| format!("{} {} ({})", b.profile, b.version, b.origin))
            .unwrap_or_else(|| "(incomplete)".into());
        out.push(Item {
            kind: "kubelet",
            name,
            hash,
            bytes: du(&d),
            path: d,
        });
    }
    let blobs = cache.root().join("blobs");
    if blobs.is_dir() {
        out.push(Item {
            kind: "downloads",
            name: "packages (.deb/.rpm)".into(),
            hash: String::new(),
            bytes: du(&blobs),
            path: blobs,
        });
    }
    out
}

/// Name of the file an image's user touches each time it uses the image
/// (`images gc` removes images nobody used for a while).
pub const LAST_USED: &str = ".last-used";

/// Marks the image folder `dir` as used now. The mark is renewed at most
/// once an hour: `gc` counts in days, and a cached run should leave the
/// cache as it found it.
pub fn touch_used(dir: &Path) {
    let mark = dir.join(LAST_USED);
    let fresh = std::fs::metadata(&mark)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < std::time::Duration::from_secs(3600));
    if !fresh {
        let _ = std::fs::write(mark, b"");
    }
}

fn last_used(dir: &Path) -> Option<std::time::SystemTime> {
    [LAST_USED, ".complete"]
        .iter()
        .filter_map(|f| {
            std::fs::metadata(dir.join(f))
                .and_then(|m| m.modified())
                .ok()
        })
        .max()
}

/// What `repro images gc` removes, with the reason: root-filesystem images
/// that no current manifest builds (`current_rootfs` holds the input
/// hashes of `images/rootfs/*.toml`), initramfs images unused for
/// `older_than`, and builds that never completed (unless a build holds
/// their lock right now). Kernels, complete kubelet builds and downloads are
/// kept: a kernel fetched on a connected machine may not be fetchable again,
/// and a kubelet build takes many minutes.
pub fn gc_candidates(
    cache: &Cache,
    current_rootfs: &[String],
    older_than: std::time::Duration,
    now: std::time::SystemTime,
) -> Vec<(Item, String)> {
    let mut out = Vec::new();
    for item in inventory(cache) {
        let complete = item.path.join(".complete").is_file();
        let locked =
            |prefix: &str| matches!(cache.try_lock(&format!("{prefix}-{}", item.hash)), Ok(None));
        let why = match item.kind {
            "rootfs" if !complete && !locked("rootfs") => Some("incomplete build".to_string()),
            "rootfs" if complete && !current_rootfs.contains(&item.hash) => {
                Some("no manifest in images/rootfs builds it any more".into())
            }
            "initramfs" if !complete && !locked("initramfs") => Some("incomplete build".into()),
            "kubelet" if !complete && !locked("kubelet") => Some("incomplete build".into()),
            "initramfs" if complete => last_used(&item.path)
                .and_then(|t| now.duration_since(t).ok())
                .filter(|age| *age > older_than)
                .map(|age| format!("unused for {} days", age.as_secs() / 86_400)),
            _ => None,
        };
        if let Some(w) = why {
            out.push((item, w));
        }
    }
    out
}

/// What [`gc`] removed, or with `dry_run` would remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub dry_run: bool,
    /// The items, each with the reason (see [`gc_candidates`]).
    pub removed: Vec<(Item, String)>,
    /// Bytes freed (or that would be).
    pub freed: u64,
}

/// One line per item, then the total: what `repro images gc` prints.
impl fmt::Display for GcReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (verb, total) = if self.dry_run {
            ("would remove", "would free")
        } else {
            ("removing", "freed")
        };
        for (item, why) in &self.removed {
            writeln!(
                f,
                "{verb} {} {} {} ({why})",
                item.kind,
                item.name,
                human(item.bytes)
            )?;
        }
        writeln!(f, "{total} {}", human(self.freed))
    }
}

/// What went wrong in `repro images gc`.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("cannot remove {path}: {source}; check the permissions of the cache folder")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `repro images gc`: removes what [`gc_candidates`] names (with `dry_run`, only reports
/// it), stopping at the first folder that cannot be removed.
pub fn gc(
    cache: &Cache,
    current_rootfs: &[String],
    older_than: std::time::Duration,
    now: std::time::SystemTime,
    dry_run: bool,
) -> Result<GcReport, GcError> {
    let removed = gc_candidates(cache, current_rootfs, older_than, now);
    if !dry_run {
        for (item, _) in &removed {
            std::fs::remove_dir_all(&item.path).map_err(|source| GcError::Remove {
                path: item.path.clone(),
                source,
            })?;
        }
    }
    let freed = removed.iter().map(|(item, _)| item.bytes).sum();
    Ok(GcReport {
        dry_run,
        removed,
        freed,
    })
}

/// A human size: `1.5 GiB`, `17.1 MiB`, `300 B`.
pub fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// The table `repro images list` prints.
pub fn table(items: &[Item]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "{:<10} {:<24} {:>10}  hash", "kind", "name", "size");
    for i in items {
        let _ = writeln!(
            s,
            "{:<10} {:<24} {:>10}  {}",
            i.kind,
            i.name,
            human(i.bytes),
            i.hash
        );
    }
    let total: u64 = items.iter().map(|i| i.bytes).sum();
    let _ = writeln!(s, "total {}", human(total));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_kernels_images_and_downloads_with_sizes() {
        let tmp = tempfile::tempdir().unwrap();
        let c = Cache::new(tmp.path().to_path_buf());
        let h = "a".repeat(64);
        let k = tmp.path().join("kernels").join(&h);
        std::fs::create_dir_all(k.join("root")).unwrap();
        std::fs::write(k.join("kernel.json"), r#"{"release":"6.1.0-56-amd64"}"#).unwrap();
        std::fs::write(k.join("root/vmlinuz"), vec![0u8; 2048]).unwrap();
        std::fs::create_dir_all(tmp.path().join("kernels/resolved")).unwrap();
        let i = tmp.path().join("initramfs").join("b".repeat(64));
        std::fs::create_dir_all(&i).unwrap();
        std::fs::write(i.join("initramfs.cpio"), vec![0u8; 100]).unwrap();
        let kb = tmp.path().join("kubelet").join("c".repeat(64));
        std::fs::create_dir_all(&kb).unwrap();
        std::fs::write(kb.join(".complete"), b"").unwrap();
        std::fs::write(
            kb.join("build.json"),
            serde_json::json!({"profile": "1.20", "origin": "debian-source", "key": "c".repeat(64),
                "dir": kb, "binary": kb.join("bin/kubelet"), "version": "Kubernetes v1.20.2",
                "sha256": "", "size": 1, "go_version": "", "source_version": "", "orig_sha256": "",
                "ldflags": "", "binaries": [], "pause": null, "build_seconds": 1.0})
            .to_string(),
        )
        .unwrap();
        std::fs::create_dir_all(tmp.path().join("kubelet/gocache")).unwrap();
        let items = inventory(&c);
        assert_eq!(items.len(), 3, "{items:?}");
        assert_eq!(
            (items[2].kind, items[2].name.as_str()),
            ("kubelet", "1.20 Kubernetes v1.20.2 (debian-source)")
        );
        assert_eq!(
            (items[0].kind, items[0].name.as_str()),
            ("kernel", "6.1.0-56-amd64")
        );
        assert!(items[0].bytes >= 2048);
        assert_eq!(
            (items[1].kind, items[1].name.as_str()),
            ("initramfs", "(incomplete)")
        );
        let t = table(&items);
        assert!(t.contains("6.1.0-56-amd64") && t.contains(&h), "{t}");
    }

    #[test]
    fn gc_takes_stale_rootfs_old_initramfs_and_partial_builds_only() {
        let tmp = tempfile::tempdir().unwrap();
        let c = Cache::new(tmp.path().to_path_buf());
        let mk = |kind: &str, h: &str, complete: bool| {
            let d = tmp.path().join(kind).join(h.repeat(64));
            std::fs::create_dir_all(&d).unwrap();
            if complete {
                std::fs::write(d.join(".complete"), b"").unwrap();
            }
            if kind == "rootfs" && complete {
                std::fs::write(
                    d.join("image.json"),
                    serde_json::json!({"name": "bullseye", "suite": "bullseye",
                        "input_hash": h.repeat(64), "sha256": "", "bytes": 1, "size_mib": 2048,
                        "build_secs": 1.0, "built_at": "", "versions": {}, "host_key": ""})
                    .to_string(),
                )
                .unwrap();
            }
        };
        mk("rootfs", "a", true); // current
        mk("rootfs", "b", true); // stale
        mk("rootfs", "c", false); // partial
        mk("initramfs", "d", true); // used just now
        mk("initramfs", "e", false); // partial
        mk("kubelet", "1", true); // a build: kept
        mk("kubelet", "2", false); // an interrupted build
        std::fs::create_dir_all(tmp.path().join("kernels").join("f".repeat(64))).unwrap();
        let now = std::time::SystemTime::now();
        let week = std::time::Duration::from_secs(7 * 86_400);
        let gone: Vec<String> = gc_candidates(&c, &["a".repeat(64)], week, now)
            .into_iter()
            .map(|(i, _)| format!("{}:{}", i.kind, &i.hash[..1]))
            .collect();
        assert_eq!(gone, ["initramfs:e", "rootfs:b", "rootfs:c", "kubelet:2"]);
        // A month later the unused initramfs goes too; kernels never do.
        let later = now + 4 * week;
        let gone = gc_candidates(&c, &["a".repeat(64)], week, later);
        assert!(gone
            .iter()
            .any(|(i, w)| i.hash.starts_with('d') && w.contains("unused for 28")));
        assert!(gone.iter().all(|(i, _)| i.kind != "kernel"));
        assert!(gone.iter().all(|(i, _)| !i.hash.starts_with('1')));
    }

    #[test]
    fn gc_removes_what_it_reports_and_dry_run_removes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let c = Cache::new(tmp.path().to_path_buf());
        let partial = tmp.path().join("initramfs").join("e".repeat(64));
        std::fs::create_dir_all(&partial).unwrap();
        std::fs::write(partial.join("initramfs.cpio"), vec![0u8; 3000]).unwrap();
        let kernel = tmp.path().join("kernels").join("f".repeat(64));
        std::fs::create_dir_all(&kernel).unwrap();
        let now = std::time::SystemTime::now();
        let week = std::time::Duration::from_secs(7 * 86_400);

        let dry = gc(&c, &[], week, now, true).unwrap();
        assert!(dry.dry_run);
        assert_eq!(dry.removed.len(), 1);
        assert_eq!(dry.removed[0].0.path, partial);
        assert!(dry.freed >= 3000);
        assert!(partial.is_dir(), "a dry run removes nothing");
        let text = dry.to_string();
        assert!(
            text.starts_with("would remove initramfs (incomplete) ")
                && text.contains("(incomplete build)\n")
                && text.ends_with(&format!("would free {}\n", human(dry.freed))),
            "{text}"
        );

        let done = gc(&c, &[], week, now, false).unwrap();
        assert_eq!((done.removed.clone(), done.freed), (dry.removed, dry.freed));
        assert!(!partial.exists());
        assert!(kernel.is_dir(), "kernels are kept");
        assert!(done.to_string().starts_with("removing initramfs"));
        assert_eq!(
            gc(&c, &[], week, now, false).unwrap().to_string(),
            "freed 0 B\n"
        );
    }

    #[test]
    fn the_used_mark_is_renewed_at_most_hourly() {
        let tmp = tempfile::tempdir().unwrap();
        touch_used(tmp.path());
        let mark = tmp.path().join(LAST_USED);
        let first = std::fs::metadata(&mark).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        touch_used(tmp.path());
        assert_eq!(std::fs::metadata(&mark).unwrap().modified().unwrap(), first);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(300), "300 B");
        assert_eq!(human(17 * 1024 * 1024 + 100_000), "17.1 MiB");
    }
}
