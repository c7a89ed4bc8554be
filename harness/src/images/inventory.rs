//! What the cache holds, for `repro images list`: unpacked kernels, guest
//! images and downloaded packages, with sizes and content hashes.

use super::cache::Cache;
use std::path::{Path, PathBuf};

/// One cached item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// `kernel`, `initramfs` or `downloads`.
    pub kind: &'static str,
    /// Kernel release, or a short description.
    pub name: String,
    /// The content hash naming it (package sha256 or image input hash).
    pub hash: String,
    pub bytes: u64,
    pub path: PathBuf,
}

fn du(p: &Path) -> u64 {
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
        let items = inventory(&c);
        assert_eq!(items.len(), 2, "{items:?}");
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
    fn human_sizes() {
        assert_eq!(human(300), "300 B");
        assert_eq!(human(17 * 1024 * 1024 + 100_000), "17.1 MiB");
    }
}
