//! Resolving a `--kernel` spec to an unpacked kernel in the cache: choosing the Debian
//! package (or the pinned RPM, or a local file), downloading it, unpacking the kernel tree
//! once under the cache lock, and remembering choices for offline runs.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::bzimage::{bzimage_release, elf_pvh, extract_vmlinux, is_bzimage};
use super::manifest::{KernelKind, KernelManifest};
use super::spec::{resolve_alias, KernelSpec};
use super::{io_err, KernelError, Result};
use crate::images::cache::{self, Cache};
use crate::images::deb;
use crate::images::debian::{Archive, DebianError, PackageEntry};

/// Bump when the layout of an unpacked kernel changes, to unpack again.
const LAYOUT_VERSION: u32 = 1;

/// A kernel ready to boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedKernel {
    /// The `--kernel` argument as given.
    pub alias: String,
    /// Manifest name (None for a local kernel).
    pub manifest: Option<String>,
    /// Package name (None for a local kernel).
    pub package: Option<String>,
    /// Package version.
    pub version: Option<String>,
    /// `uname -r`: the `lib/modules/<release>` folder name (or the bzImage's version string).
    pub release: String,
    /// The bootable bzImage (or, for a local ELF kernel, that ELF).
    pub vmlinuz: PathBuf,
    /// The uncompressed ELF kernel unpacked from the bzImage, if its payload could be read.
    pub vmlinux: Option<PathBuf>,
    /// `lib/modules/<release>` (contains `kernel/`, `modules.builtin`).
    pub modules_dir: Option<PathBuf>,
    /// The kernel's build configuration (`boot/config-<release>`), if shipped.
    pub config: Option<PathBuf>,
    /// `vmlinux` has the PVH entry note, so it can be booted directly (`-kernel vmlinux`).
    pub pvh: bool,
    /// sha256 of the package, or of `vmlinuz` for a local kernel.
    pub hash: String,
}

/// Written last into an unpacked kernel's folder: paths relative to that folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TreeMarker {
    layout: u32,
    release: String,
    vmlinuz: String,
    vmlinux: Option<String>,
    modules_dir: Option<String>,
    config: Option<String>,
    pvh: bool,
}

/// The last package chosen for a manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Resolution {
    manifest: String,
    manifest_digest: String,
    version: Option<String>,
    package: PackageEntry,
    resolved_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pin {
    url: String,
    sha256: String,
}

/// Resolves a `--kernel` spec to an unpacked kernel in the cache, downloading what is
/// missing. `progress(done, total)` reports download bytes.
pub fn resolve(
    spec: &KernelSpec,
    manifests: &[KernelManifest],
    archive: &Archive,
    progress: &dyn Fn(u64, u64),
) -> Result<ResolvedKernel> {
    match spec {
        KernelSpec::Path { vmlinuz, modules } => {
            resolve_local(spec, vmlinuz, modules.as_deref(), archive)
        }
        KernelSpec::Alias(a) => {
            let m = resolve_alias(manifests, a)?;
            match m.manifest.kind {
                KernelKind::Debian => {
                    resolve_debian(a, m.manifest, m.version.as_deref(), archive, progress)
                }
                KernelKind::RpmUrl => resolve_rpm(a, m.manifest, archive, progress),
            }
        }
    }
}

fn resolution_path(cache: &Cache, manifest: &str, version: Option<&str>) -> Result<PathBuf> {
    let dir = cache.dir("kernels/resolved")?;
    let name = match version {
        Some(v) => format!("{manifest}@{v}"),
        None => manifest.to_string(),
    };
    Ok(dir.join(format!("{}.json", cache::sanitize_name(&name))))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Chooses the package for a Debian manifest: from the indexes when they can be read, else
/// from the last resolution (with a warning).
fn choose_package(
    alias: &str,
    m: &KernelManifest,
    version: Option<&str>,
    archive: &Archive,
) -> Result<PackageEntry> {
    let cache = archive.cache();
    let res_path = resolution_path(cache, &m.name, version)?;
    let digest = m.digest()?;
    let from_index = (|| -> Result<PackageEntry> {
        let q = m.query()?;
        let all = archive.matching(&q)?;
        match version {
            None => all.into_iter().next().ok_or_else(|| {
                DebianError::NotFound {
                    query: q.to_string(),
                    available: String::new(),
                }
                .into()
            }),
            Some(v) => all.iter().find(|e| e.version == v).cloned().ok_or_else(|| {
                KernelError::NoSuchVersion {
                    manifest: m.name.clone(),
                    version: v.to_string(),
                    available: if all.is_empty() {
                        "none".to_string()
                    } else {
                        let mut vs: Vec<&str> = all.iter().map(|e| e.version.as_str()).collect();
                        vs.dedup();
                        vs.join(", ")
                    },
                }
            }),
        }
    })();
    match from_index {
        Ok(e) => {
            // Rewrite the record only when the choice changed, so that a
            // cached run leaves the cache untouched.
            let previous: Option<Resolution> = fs::read(&res_path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let unchanged = previous.as_ref().is_some_and(|p| {
                p.manifest_digest == digest && p.package == e && p.version.as_deref() == version
            });
            if !unchanged {
                let r = Resolution {
                    manifest: m.name.clone(),
                    manifest_digest: digest,
                    version: version.map(str::to_string),
                    package: e.clone(),
                    resolved_at: now_secs(),
                };
                cache::write_json(&res_path, &r)?;
            }
            Ok(e)
        }
        // A wrong version or pattern is not cured by an old resolution.
        Err(e @ (KernelError::NoSuchVersion { .. } | KernelError::Manifest { .. })) => Err(e),
        Err(e @ KernelError::Debian(DebianError::NotFound { .. })) => Err(e),
        Err(e) => {
            let cached: Option<Resolution> = fs::read(&res_path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .filter(|r: &Resolution| r.manifest_digest == digest);
            match cached {
                Some(r) => {
                    archive.warn(&format!(
                        "kernel {alias}: could not read the package index ({e}); using {} {} chosen {:.1} h ago",
                        r.package.name,
                        r.package.version,
                        now_secs().saturating_sub(r.resolved_at) as f64 / 3600.0
                    ));
                    Ok(r.package)
                }
                None => Err(KernelError::NotCached {
                    kernel: alias.to_string(),
                    what: format!("the package index for {} ({})", m.name, m.suites.join(", ")),
                    cause: e.to_string(),
                }),
            }
        }
    }
}

fn resolve_debian(
    alias: &str,
    m: &KernelManifest,
    version: Option<&str>,
    archive: &Archive,
    progress: &dyn Fn(u64, u64),
) -> Result<ResolvedKernel> {
    let entry = choose_package(alias, m, version, archive)?;
    let cache = archive.cache();
    let digest = cache::check_digest(&entry.sha256)?;
    let dir = cache.root().join("kernels").join(&digest);
    let tree = cache.build_once(
        &format!("kernel-{digest}"),
        || read_marker(&dir),
        || {
            let deb = archive.download(&entry, progress).map_err(|e| match e {
                DebianError::Transport { .. }
                | DebianError::Offline { .. }
                | DebianError::Http { .. }
                | DebianError::NoMirror { .. } => KernelError::NotCached {
                    kernel: alias.to_string(),
                    what: format!(
                        "package {} {} ({})",
                        entry.name,
                        entry.version,
                        archive
                            .url_for(&entry.suite, &entry.filename)
                            .unwrap_or_else(|_| entry.filename.clone())
                    ),
                    cause: e.to_string(),
                },
                e => e.into(),
            })?;
            unpack_tree(&dir, &|m| archive.warn(m), |root| {
                deb::extract(&deb, root, &kernel_files_filter)?;
                Ok(())
            })
        },
    )?;
    Ok(tree_to_resolved(
        alias,
        Some(m),
        Some(&entry.name),
        Some(&entry.version),
        &dir,
        &tree,
        digest,
    ))
}

fn resolve_rpm(
    alias: &str,
    m: &KernelManifest,
    archive: &Archive,
    progress: &dyn Fn(u64, u64),
) -> Result<ResolvedKernel> {
    let cache = archive.cache();
    let Some(url) = m.url.clone() else {
        return Err(KernelError::Manifest {
            path: PathBuf::from(format!("images/kernels/{}.toml", m.name)),
            line: 0,
            column: 0,
            message: "kind = \"rpm-url\" needs `url`".into(),
        });
    };
    let pin_path = cache
        .dir("kernels/pins")?
        .join(format!("{}.json", cache::sanitize_name(&m.name)));
    let file_name = url.rsplit('/').next().unwrap_or(&url).to_string();
    let pinned: Option<String> = m
        .sha256
        .as_deref()
        .map(str::to_ascii_lowercase)
        .or_else(|| {
            fs::read(&pin_path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Pin>(&b).ok())
                .filter(|p| p.url == url)
                .map(|p| p.sha256)
        });
    if let Some(d) = &pinned {
        let dir = cache.root().join("kernels").join(d);
        if let Some(t) = read_marker(&dir) {
            return Ok(tree_to_resolved(
                alias,
                Some(m),
                Some(&file_name),
                m.version.as_deref(),
                &dir,
                &t,
                d.clone(),
            ));
        }
    }
    let (rpm, digest) = archive
        .fetch_blob(&url, pinned.as_deref(), None, &format!("RPM {file_name}"), progress)
        .map_err(|e| match e {
            DebianError::Transport { .. } | DebianError::Offline { .. } | DebianError::Http { .. } => KernelError::NotCached {
                kernel: alias.to_string(),
                what: format!(
                    "the CentOS kernel RPM {url} (CentOS kernels come from the CentOS vault as RPMs, which only a machine that reaches it can fetch)"
                ),
                cause: e.to_string(),
            },
            e => e.into(),
        })?;
    if pinned.is_none() {
        cache::write_json(
            &pin_path,
            &Pin {
                url: url.clone(),
                sha256: digest.clone(),
            },
        )?;
        archive.warn(&format!(
            "kernel {}: pinned sha256 {digest} for {url} on first download; add `sha256 = \"{digest}\"` to images/kernels/{}.toml",
            m.name, m.name
        ));
    }
    let dir = cache.root().join("kernels").join(&digest);
    let tree = cache.build_once(
        &format!("kernel-{digest}"),
        || read_marker(&dir),
        || {
            unpack_tree(&dir, &|m| archive.warn(m), |root| {
                deb::extract_rpm(&rpm, root, &kernel_files_filter)?;
                Ok(())
            })
        },
    )?;
    Ok(tree_to_resolved(
        alias,
        Some(m),
        Some(&file_name),
        m.version.as_deref(),
        &dir,
        &tree,
        digest,
    ))
}

/// Which package files a kernel tree needs.
pub fn kernel_files_filter(p: &Path) -> bool {
    let s = p.to_string_lossy();
    s == "boot"
        || s.starts_with("boot/vmlinuz-")
        || s.starts_with("boot/config-")
        || s == "lib"
        || s == "usr"
        || s == "usr/lib"
        || s.starts_with("lib/modules")
        || s.starts_with("usr/lib/modules")
}

fn read_marker(dir: &Path) -> Option<TreeMarker> {
    let b = fs::read(dir.join("kernel.json")).ok()?;
    let t: TreeMarker = serde_json::from_slice(&b).ok()?;
    (t.layout == LAYOUT_VERSION && dir.join(&t.vmlinuz).is_file()).then_some(t)
}

fn tree_to_resolved(
    alias: &str,
    m: Option<&KernelManifest>,
    package: Option<&str>,
    version: Option<&str>,
    dir: &Path,
    t: &TreeMarker,
    hash: String,
) -> ResolvedKernel {
    ResolvedKernel {
        alias: alias.to_string(),
        manifest: m.map(|m| m.name.clone()),
        package: package.map(str::to_string),
        version: version.map(str::to_string),
        release: t.release.clone(),
        vmlinuz: dir.join(&t.vmlinuz),
        vmlinux: t.vmlinux.as_ref().map(|v| dir.join(v)),
        modules_dir: t.modules_dir.as_ref().map(|v| dir.join(v)),
        config: t.config.as_ref().map(|v| dir.join(v)),
        pvh: t.pvh,
        hash,
    }
}

/// Unpacks a package into `dir/root` (the caller holds the cache lock: see
/// `Cache::build_once`), finds the release, vmlinuz and modules, unpacks `vmlinux`, and
/// writes the marker last.
fn unpack_tree(
    dir: &Path,
    warn: &dyn Fn(&str),
    unpack: impl FnOnce(&Path) -> Result<()>,
) -> Result<TreeMarker> {
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(io_err(dir))?; // a half-done earlier attempt
    }
    let root = dir.join("root");
    cache::create_dir_all(&root)?;
    unpack(&root)?;
    let (release, modules_rel) = find_release(&root)?;
    let vmlinuz_rel = format!("root/boot/vmlinuz-{release}");
    let vmlinuz = dir.join(&vmlinuz_rel);
    if !vmlinuz.is_file() {
        return Err(KernelError::Layout {
            dir: dir.to_path_buf(),
            why: format!("the package has modules for {release} but no boot/vmlinuz-{release}"),
        });
    }
    let config_rel = format!("root/boot/config-{release}");
    let config = dir.join(&config_rel).is_file().then_some(config_rel);
    let (vmlinux, pvh) = make_vmlinux(&vmlinuz, &dir.join("vmlinux"), warn)?;
    let t = TreeMarker {
        layout: LAYOUT_VERSION,
        release,
        vmlinuz: vmlinuz_rel,
        vmlinux: vmlinux.then(|| "vmlinux".to_string()),
        modules_dir: Some(format!("root/{modules_rel}")),
        config,
        pvh,
    };
    cache::write_json(&dir.join("kernel.json"), &t)?;
    Ok(t)
}

/// The single `lib/modules/<release>` (or `usr/lib/modules/<release>`) of an unpacked tree.
fn find_release(root: &Path) -> Result<(String, String)> {
    let mut found = Vec::new();
    for base in ["lib/modules", "usr/lib/modules"] {
        let Ok(rd) = fs::read_dir(root.join(base)) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                found.push((
                    e.file_name().to_string_lossy().into_owned(),
                    format!("{base}/{}", e.file_name().to_string_lossy()),
                ));
            }
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(KernelError::Layout {
            dir: root.to_path_buf(),
            why: "no lib/modules/<release> or usr/lib/modules/<release> folder: not a kernel image package".into(),
        }),
        _ => Err(KernelError::Layout {
            dir: root.to_path_buf(),
            why: format!(
                "several module folders ({}): cannot tell the release",
                found.iter().map(|f| f.1.as_str()).collect::<Vec<_>>().join(", ")
            ),
        }),
    }
}

/// Writes the ELF kernel of a bzImage to `out` (unless already there). Returns
/// (vmlinux written, PVH note present). A bzImage whose payload cannot be read (an unknown
/// compression) gives (false, false): the bzImage still boots.
fn make_vmlinux(vmlinuz: &Path, out: &Path, warn: &dyn Fn(&str)) -> Result<(bool, bool)> {
    let bz = fs::read(vmlinuz).map_err(io_err(vmlinuz))?;
    let elf = match extract_vmlinux(&bz) {
        Ok(e) => e,
        Err(why) => {
            warn(&format!(
                "{}: no vmlinux: {why}; boot the bzImage instead",
                vmlinuz.display()
            ));
            return Ok((false, false));
        }
    };
    let pvh = elf_pvh(&elf).map_err(|why| KernelError::Image {
        path: vmlinuz.to_path_buf(),
        why: format!("payload is not a usable kernel ELF: {why}"),
    })?;
    cache::atomic_write(out, &elf)?;
    Ok((true, pvh))
}

fn resolve_local(
    spec: &KernelSpec,
    vmlinuz: &Path,
    modules: Option<&Path>,
    archive: &Archive,
) -> Result<ResolvedKernel> {
    let cache = archive.cache();
    let local = |why: String| KernelError::Local {
        path: vmlinuz.to_path_buf(),
        why,
    };
    if !vmlinuz.is_file() {
        return Err(local(
            "no such file; give PATH/TO/vmlinuz[:MODULES_DIR]".into(),
        ));
    }
    let bytes = fs::read(vmlinuz).map_err(io_err(vmlinuz))?;
    let hash = cache::sha256_bytes(&bytes);
    let modules_dir = match modules {
        None => None,
        Some(m) => Some(find_modules_dir(m).map_err(|why| KernelError::Local {
            path: m.to_path_buf(),
            why,
        })?),
    };
    let header_release = bzimage_release(&bytes);
    let release = modules_dir
        .as_ref()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .or(header_release)
        .unwrap_or_else(|| "unknown".to_string());
    let (vmlinux, pvh) = if bytes.starts_with(b"\x7fELF") {
        let pvh =
            elf_pvh(&bytes).map_err(|why| local(format!("not a usable kernel ELF: {why}")))?;
        (Some(vmlinuz.to_path_buf()), pvh)
    } else {
        if !is_bzimage(&bytes) {
            return Err(local(
                "neither a bzImage (no HdrS header) nor an ELF kernel".into(),
            ));
        }
        let dir = cache.dir(&format!("kernels/local/{hash}"))?;
        let out = dir.join("vmlinux");
        let marker = dir.join("vmlinux.json");
        // (vmlinux written, PVH note present), as `make_vmlinux` answered.
        let known = || {
            fs::read(&marker)
                .ok()
                .and_then(|b| serde_json::from_slice::<(bool, bool)>(&b).ok())
                .filter(|k| !k.0 || out.is_file())
        };
        let (made, pvh) =
            cache.build_once(&format!("kernel-local-{hash}"), known, || -> Result<_> {
                let k = make_vmlinux(vmlinuz, &out, &|m| archive.warn(m))?;
                cache::write_json(&marker, &k)?;
                Ok(k)
            })?;
        (made.then_some(out), pvh)
    };
    let config = modules_dir.as_ref().and_then(|d| {
        let c = d.join("config");
        c.is_file().then_some(c)
    });
    Ok(ResolvedKernel {
        alias: spec.to_string(),
        manifest: None,
        package: None,
        version: None,
        release,
        vmlinuz: vmlinuz.to_path_buf(),
        vmlinux,
        modules_dir,
        config,
        pvh,
        hash,
    })
}

/// Accepts `lib/modules/<release>` itself, or a root holding one `lib/modules/<release>`.
fn find_modules_dir(m: &Path) -> std::result::Result<PathBuf, String> {
    if !m.is_dir() {
        return Err("modules folder does not exist".into());
    }
    if m.join("kernel").is_dir()
        || m.join("modules.builtin").is_file()
        || m.join("modules.dep").is_file()
    {
        return Ok(m.to_path_buf());
    }
    find_release(m)
        .map(|(_, rel)| m.join(rel))
        .map_err(|_| "neither a lib/modules/<release> folder (with kernel/ or modules.builtin) nor a root holding one".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::debian;
    use crate::images::kernel::bzimage::tests::{fake_bzimage, tiny_elf};
    use crate::images::kernel::bzimage::XEN_ELFNOTE_PHYS32_ENTRY;
    use crate::images::kernel::manifest::parse_manifest;
    use crate::images::kernel::manifest::tests::manifests;
    use crate::images::kernel::modules::module_load_order;

    #[test]
    fn local_kernel_resolves_and_caches_vmlinux() {
        let tmp = tempfile::tempdir().unwrap();
        let elf = tiny_elf(&[("Xen", XEN_ELFNOTE_PHYS32_ENTRY, &[0, 0, 0, 1])]);
        let bz = tmp.path().join("vmlinuz");
        fs::write(&bz, fake_bzimage("xz", &elf)).unwrap();
        let mods = tmp.path().join("lib/modules/9.9.9-test");
        fs::create_dir_all(mods.join("kernel")).unwrap();
        let cache = Cache::new(tmp.path().join("cache"));
        let archive = Archive::without_mirror(cache, "test");
        let spec = KernelSpec::parse(&format!("{}:{}", bz.display(), tmp.path().display()));
        let r = resolve(&spec, &[], &archive, &|_, _| {}).unwrap();
        assert_eq!(r.release, "9.9.9-test");
        assert_eq!(r.modules_dir.as_deref(), Some(mods.as_path()));
        assert!(r.pvh);
        assert_eq!(fs::read(r.vmlinux.as_ref().unwrap()).unwrap(), elf);
        let again = resolve(&spec, &[], &archive, &|_, _| {}).unwrap();
        assert_eq!(again, r);
        let e = resolve(
            &KernelSpec::parse("/no/such/vmlinuz"),
            &[],
            &archive,
            &|_, _| {},
        )
        .unwrap_err();
        assert!(matches!(e, KernelError::Local { .. }), "{e}");
    }

    /// kind rpm-url from a file:// URL: pinned on first download, then served from the cache.
    #[test]
    fn rpm_kernel_pins_on_first_download() {
        use crate::images::deb::tests::make_rpm;
        let tmp = tempfile::tempdir().unwrap();
        let elf = tiny_elf(&[]);
        let bz = fake_bzimage("gz", &elf);
        let rel = "3.10.0-1.el7.x86_64";
        let rpm = make_rpm(
            &[
                (&format!("boot/vmlinuz-{rel}"), &bz, 0o755),
                (&format!("lib/modules/{rel}/kernel/fs/x.ko.xz"), b"x", 0o644),
            ],
            &[],
        );
        let rpm_path = tmp.path().join("kernel.rpm");
        fs::write(&rpm_path, &rpm).unwrap();
        let text = format!(
            "name = \"c7\"\naliases = [\"3.10\"]\ndistro = \"centos-7\"\nkind = \"rpm-url\"\nurl = \"file://{}\"\nversion = \"3.10.0-1.el7\"\n",
            rpm_path.display()
        );
        let m = parse_manifest(Path::new("c7.toml"), &text).unwrap();
        let cache = Cache::new(tmp.path().join("cache"));
        let warnings = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let w = warnings.clone();
        let archive = Archive::without_mirror(cache.clone(), "no mirror needed")
            .with_warnings(move |s| w.lock().unwrap().push(s.to_string()));
        let ms = std::slice::from_ref(&m);
        let r = resolve(&KernelSpec::parse("3.10.0-1.el7"), ms, &archive, &|_, _| {}).unwrap();
        assert_eq!(r.release, rel);
        assert_eq!(r.hash, cache::sha256_bytes(&rpm));
        assert!(!r.pvh);
        assert_eq!(fs::read(r.vmlinux.as_ref().unwrap()).unwrap(), elf);
        let warned = warnings.lock().unwrap().join("\n");
        assert!(
            warned.contains(&format!("sha256 = \"{}\"", r.hash)),
            "{warned}"
        );
        // The source changes: the pin keeps the cached kernel (no download at all) ...
        fs::write(&rpm_path, b"tampered").unwrap();
        let again = resolve(&KernelSpec::parse("3.10"), ms, &archive, &|_, _| {}).unwrap();
        assert_eq!(again.alias, "3.10");
        assert_eq!(
            ResolvedKernel {
                alias: r.alias.clone(),
                ..again
            },
            r
        );
        // ... and a fresh cache holding only the pin refuses the changed file.
        fs::remove_dir_all(cache.root().join(format!("kernels/{}", r.hash))).unwrap();
        fs::remove_dir_all(cache.root().join("blobs")).unwrap();
        let e = resolve(&KernelSpec::parse("3.10"), ms, &archive, &|_, _| {}).unwrap_err();
        assert!(
            matches!(e, KernelError::Debian(DebianError::ChecksumMismatch { .. })),
            "{e}"
        );
        // Offline and not cached: says where CentOS kernels come from.
        let off = Archive::without_mirror(cache, "x").with_offline(true);
        let e = resolve(&KernelSpec::parse("3.10"), ms, &off, &|_, _| {})
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("CentOS vault") && e.contains("repro images fetch 3.10"),
            "{e}"
        );
    }

    /// The whole Debian path on a local (file://) mirror: index, pick, download, unpack,
    /// vmlinux, marker; then offline from the cache.
    #[test]
    fn debian_kernel_end_to_end_on_local_mirror() {
        use crate::images::deb::tests::{make_deb, sample_tar};
        use std::io::Write;
        let tmp = tempfile::tempdir().unwrap();
        let elf = tiny_elf(&[("Xen", XEN_ELFNOTE_PHYS32_ENTRY, &[0, 0, 0, 1])]);
        let bz = fake_bzimage("xz", &elf);
        let rel = "9.9.9-1-amd64";
        let data = sample_tar(
            &[
                (&format!("boot/vmlinuz-{rel}"), &bz, 0o644),
                (&format!("boot/config-{rel}"), b"CONFIG_X=y\n", 0o644),
                (
                    &format!("usr/lib/modules/{rel}/modules.builtin"),
                    b"kernel/drivers/virtio/virtio_pci.ko\n",
                    0o644,
                ),
                ("usr/share/doc/linux/changelog", b"x", 0o644),
            ],
            &[],
        );
        let deb = make_deb(&data, "xz");
        let sha = cache::sha256_bytes(&deb);
        let root = tmp.path().join("mirror/debian");
        fs::create_dir_all(root.join("pool/main/l")).unwrap();
        fs::write(root.join("pool/main/l/k.deb"), &deb).unwrap();
        let mut packages = String::new();
        for (name, ver) in [
            ("linux-image-9.9.9-1-amd64-unsigned", "9.9.9-1"),
            ("linux-image-9.9.9-1-cloud-amd64-unsigned", "9.9.9-2"),
        ] {
            packages += &format!(
                "Package: {name}\nVersion: {ver}\nArchitecture: amd64\nFilename: pool/main/l/k.deb\nSize: {}\nSHA256: {sha}\n\n",
                deb.len()
            );
        }
        let idx = root.join("dists/testing/main/binary-amd64");
        fs::create_dir_all(&idx).unwrap();
        let mut enc = xz2::write::XzEncoder::new(Vec::new(), 1);
        enc.write_all(packages.as_bytes()).unwrap();
        fs::write(idx.join("Packages.xz"), enc.finish().unwrap()).unwrap();
        let m = parse_manifest(
            Path::new("test.toml"),
            r#"
name = "test"
aliases = ["9.9"]
distro = "test"
kind = "debian"
suites = ["testing"]
package = '^linux-image-[0-9.]+-[0-9]+-amd64-unsigned$'
version_prefix = "9.9."
"#,
        )
        .unwrap();
        let mirror =
            debian::mirror_from_value(&format!("file://{}", root.display()), "test").unwrap();
        let cache = Cache::new(tmp.path().join("cache"));
        let archive = Archive::new(mirror, cache.clone());
        let r = resolve(
            &KernelSpec::parse("9.9"),
            std::slice::from_ref(&m),
            &archive,
            &|_, _| {},
        )
        .unwrap();
        assert_eq!(
            r.package.as_deref(),
            Some("linux-image-9.9.9-1-amd64-unsigned")
        );
        assert_eq!(r.version.as_deref(), Some("9.9.9-1"));
        assert_eq!(r.release, rel);
        assert_eq!(r.hash, sha);
        assert!(r.pvh);
        assert!(r
            .modules_dir
            .as_ref()
            .unwrap()
            .ends_with(format!("usr/lib/modules/{rel}")));
        assert!(r.config.as_ref().unwrap().is_file());
        assert!(!cache
            .root()
            .join(format!("kernels/{sha}/root/usr/share"))
            .exists());
        // Mirror gone and offline: the cached resolution and tree answer.
        fs::remove_dir_all(tmp.path().join("mirror")).unwrap();
        let off = Archive::new(archive.mirror().unwrap().clone(), cache.clone()).with_offline(true);
        assert_eq!(
            resolve(
                &KernelSpec::parse("9.9"),
                std::slice::from_ref(&m),
                &off,
                &|_, _| {}
            )
            .unwrap(),
            r
        );
        // The index cache gone too: the last resolution is used, with a warning.
        fs::remove_dir_all(cache.root().join("debian")).unwrap();
        let warned = std::sync::Arc::new(std::sync::Mutex::new(0));
        let w2 = warned.clone();
        let off = off.with_warnings(move |_| *w2.lock().unwrap() += 1);
        assert_eq!(
            resolve(
                &KernelSpec::parse("9.9"),
                std::slice::from_ref(&m),
                &off,
                &|_, _| {}
            )
            .unwrap(),
            r
        );
        assert_eq!(*warned.lock().unwrap(), 1);
        // A pinned version never resolved before: a clear error naming the fetch command.
        let e = resolve(
            &KernelSpec::parse("test@9.9.8-1"),
            std::slice::from_ref(&m),
            &off,
            &|_, _| {},
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("repro images fetch test@9.9.8-1"), "{e}");
    }

    /// Downloads and unpacks real kernels (about 70-110 MB each, kept in the user cache):
    /// `cargo test -p repro --lib images::kernel::fetch::tests::real_kernels -- --ignored --nocapture`
    #[test]
    #[ignore = "needs a Debian mirror and downloads kernel packages"]
    fn real_kernels() {
        let ms = manifests();
        let mirror = debian::discover_mirror(None).unwrap();
        println!("mirror: {mirror}");
        let archive = Archive::new(mirror, Cache::new(Cache::default_root()));
        let wanted = [
            "virtio_mmio",
            "virtio_pci",
            "virtio_net",
            "virtio_rng",
            "virtio_blk",
            "ext4",
            "loop",
        ];
        let kernels = std::env::var("REPRO_TEST_KERNELS").unwrap_or_else(|_| "6.1,6.12".into());
        for k in kernels.split(',') {
            let t = std::time::Instant::now();
            let last = std::cell::Cell::new(0u64);
            let r = resolve(&KernelSpec::parse(k), &ms, &archive, &|d, t| {
                if d >= last.get() + (16 << 20) || d == t {
                    last.set(d);
                    println!("  {k}: {d}/{t} bytes");
                }
            })
            .unwrap();
            println!("{k} resolved in {:.1} s: {r:#?}", t.elapsed().as_secs_f64());
            let t = std::time::Instant::now();
            let order = module_load_order(r.modules_dir.as_ref().unwrap(), &wanted).unwrap();
            println!("module order ({:.2} s):", t.elapsed().as_secs_f64());
            for m in &order {
                println!("  {} {}", m.name, m.path.display());
            }
        }
    }
}
