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
use crate::images::debian::{Archive, DebianError, PackageEntry, PackageQuery};

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
    /// Every package unpacked for this kernel, `name=version`, the named one first: more
    /// than one when the distribution splits the kernel (image, modules, base).
    #[serde(default)]
    pub packages: Vec<String>,
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
    /// The packages `package` pins to its own version (a split kernel), in the order found.
    #[serde(default)]
    depends: Vec<PackageEntry>,
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

/// Chooses the packages for a Debian manifest (the named one first, then the parts of a
/// split kernel it pins: see `kernel_closure`): from the indexes when they can be read, else
/// from the last resolution (with a warning).
fn choose_package(
    alias: &str,
    m: &KernelManifest,
    version: Option<&str>,
    archive: &Archive,
) -> Result<Vec<PackageEntry>> {
    let cache = archive.cache();
    let res_path = resolution_path(cache, &m.name, version)?;
    let digest = m.digest()?;
    let from_index = (|| -> Result<Vec<PackageEntry>> {
        let q = m.query()?;
        let all = archive.matching(&q)?;
        let top = match version {
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
        }?;
        kernel_closure(archive, m, top)
    })();
    match from_index {
        Ok(mut closure) => {
            let depends = closure.split_off(1);
            let e = closure.remove(0);
            // Rewrite the record only when the choice changed, so that a
            // cached run leaves the cache untouched.
            let previous: Option<Resolution> = fs::read(&res_path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let unchanged = previous.as_ref().is_some_and(|p| {
                p.manifest_digest == digest
                    && p.package == e
                    && p.depends == depends
                    && p.version.as_deref() == version
            });
            if !unchanged {
                let r = Resolution {
                    manifest: m.name.clone(),
                    manifest_digest: digest,
                    version: version.map(str::to_string),
                    package: e.clone(),
                    depends: depends.clone(),
                    resolved_at: now_secs(),
                };
                cache::write_json(&res_path, &r)?;
            }
            Ok(std::iter::once(e).chain(depends).collect())
        }
        // A wrong version or pattern is not cured by an old resolution.
        Err(
            e @ (KernelError::NoSuchVersion { .. }
            | KernelError::Manifest { .. }
            | KernelError::Dependency { .. }),
        ) => Err(e),
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
                    Ok(std::iter::once(r.package).chain(r.depends).collect())
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
    let packages = choose_package(alias, m, version, archive)?;
    let digest = closure_digest(&packages)?;
    let names: Vec<String> = packages
        .iter()
        .map(|p| format!("{}={}", p.name, p.version))
        .collect();
    let (dir, tree) = unpacked_once(archive, &digest, &names.join(", "), |root| {
        let mut debs = Vec::with_capacity(packages.len());
        for entry in &packages {
            debs.push(archive.download(entry, progress).map_err(|e| match e {
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
            })?);
        }
        for deb in &debs {
            deb::extract(deb, root, &kernel_files_filter)?;
        }
        Ok(())
    })?;
    let mut r = tree_to_resolved(
        alias,
        Some(m),
        Some(&packages[0].name),
        Some(&packages[0].version),
        &dir,
        &tree,
        digest,
    );
    r.packages = names;
    Ok(r)
}

/// Most packages that can follow a kernel's pins: a guard against a malformed index.
const MAX_KERNEL_PACKAGES: usize = 16;

/// The packages that together hold a Debian kernel: `top` and, transitively, every package
/// whose name its `Depends` pins to exactly its own version (`pinned_depends`), looked up in
/// the same suite and component, from a kernel source (`linux*`). Debian from forky on ships
/// `linux-image-X` as a small package pinning `linux-binary-X` (the image),
/// `linux-modules-X` and `linux-base-X` (config, `modules.builtin`); Ubuntu pins
/// `linux-modules-X` and `linux-modules-extra-X`. A complete package pins nothing and comes
/// back alone.
fn kernel_closure(
    archive: &Archive,
    m: &KernelManifest,
    top: PackageEntry,
) -> Result<Vec<PackageEntry>> {
    let mut all = vec![top];
    let mut i = 0;
    while i < all.len() {
        let from = all[i].clone();
        i += 1;
        let wanted: Vec<String> = from
            .pinned_depends()
            .into_iter()
            .filter(|n| n.starts_with("linux-") && !all.iter().any(|e| &e.name == n))
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let pattern = format!(
            "^({})$",
            wanted
                .iter()
                .map(|n| regex::escape(n))
                .collect::<Vec<_>>()
                .join("|")
        );
        let q = PackageQuery {
            suites: vec![from.suite.clone()],
            component: m.component().to_string(),
            name: regex::Regex::new(&pattern).map_err(|e| KernelError::Dependency {
                package: from.name.clone(),
                why: format!("cannot search for its dependencies: {e}"),
            })?,
            version_prefix: None,
        };
        let found = archive.matching(&q)?;
        for name in wanted {
            let dep = found
                .iter()
                .find(|e| e.name == name && e.version == from.version)
                .ok_or_else(|| KernelError::Dependency {
                    package: format!("{} {}", from.name, from.version),
                    why: format!(
                        "it depends on {name} (= {}), which suite {} does not list; the archive may be between updates: try again later, or pick another build with --kernel {}@VERSION",
                        from.version, from.suite, m.name
                    ),
                })?;
            if !dep.source_name().starts_with("linux") {
                continue;
            }
            all.push(dep.clone());
        }
        if all.len() > MAX_KERNEL_PACKAGES {
            return Err(KernelError::Dependency {
                package: all[0].name.clone(),
                why: format!(
                    "its pinned dependencies name more than {MAX_KERNEL_PACKAGES} packages; point `package` in images/kernels/{}.toml at the linux-image package itself",
                    m.name
                ),
            });
        }
    }
    Ok(all)
}

/// The cache key of a kernel's packages: the package's own sha256 when there is one (so a
/// complete package keeps the folder it always had), else the sha256 of every package's
/// `name version sha256` line, sorted.
fn closure_digest(packages: &[PackageEntry]) -> Result<String> {
    let mut lines = Vec::with_capacity(packages.len());
    for p in packages {
        lines.push(format!(
            "{} {} {}\n",
            p.name,
            p.version,
            cache::check_digest(&p.sha256)?
        ));
    }
    match packages {
        [one] => Ok(cache::check_digest(&one.sha256)?),
        _ => {
            lines.sort();
            Ok(cache::sha256_bytes(lines.concat().as_bytes()))
        }
    }
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
                    "the kernel RPM {url} (named by images/kernels/{}.toml; only a machine that reaches {} can fetch it)",
                    m.name,
                    url_host(&url)
                ),
                // The Debian mirror settings do not apply to this URL: say
                // what failed without the mirror advice.
                cause: match e {
                    DebianError::Transport { url, message } => {
                        format!("could not fetch {url}: {message}")
                    }
                    e => e.to_string(),
                },
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
    let (dir, tree) = unpacked_once(archive, &digest, &file_name, |root| {
        deb::extract_rpm(&rpm, root, &kernel_files_filter)?;
        Ok(())
    })?;
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

/// The host part of a URL, for messages (`https://h/p` gives `h`).
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/')
        .next()
        .filter(|h| !h.is_empty())
        .unwrap_or(url)
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
        packages: package
            .map(|p| match version {
                Some(v) => vec![format!("{p}={v}")],
                None => vec![p.to_string()],
            })
            .unwrap_or_default(),
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

/// The cache's kernel tree `kernels/<digest>`, unpacked by `unpack` (then `unpack_tree`)
/// the first time, under the cache lock (`Cache::build_once`); `what` names the package(s)
/// for messages. Every packaged kernel (Debian, RPM URL, local file) goes through here.
fn unpacked_once(
    archive: &Archive,
    digest: &str,
    what: &str,
    unpack: impl FnOnce(&Path) -> Result<()>,
) -> Result<(PathBuf, TreeMarker)> {
    let dir = archive.cache().root().join("kernels").join(digest);
    let tree = archive.cache().build_once(
        &format!("kernel-{digest}"),
        || read_marker(&dir),
        || unpack_tree(&dir, what, &|m| archive.warn(m), unpack),
    )?;
    Ok((dir, tree))
}

/// Unpacks a kernel's packages (`what` names them, for messages) into `dir/root` (the
/// caller holds the cache lock: see `Cache::build_once`), finds the release, the image and
/// the modules, unpacks `vmlinux`, and writes the marker last.
///
/// Layouts: the image at `boot/vmlinuz-<release>` (Debian to trixie, CentOS 7) or at
/// `[usr/]lib/modules/<release>/vmlinuz` (Debian from forky on, Fedora, RHEL 8+); the config
/// at `boot/config-<release>` or `[usr/]lib/modules/<release>/config`.
fn unpack_tree(
    dir: &Path,
    what: &str,
    warn: &dyn Fn(&str),
    unpack: impl FnOnce(&Path) -> Result<()>,
) -> Result<TreeMarker> {
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(io_err(dir))?; // a half-done earlier attempt
    }
    let root = dir.join("root");
    cache::create_dir_all(&root)?;
    unpack(&root)?;
    merge_module_dirs(&root)?;
    let (release, modules_rel) = find_release(&root).map_err(|why| KernelError::Layout {
        what: what.to_string(),
        why: format!("{why}: not a kernel, or only part of one; point the manifest's `package` at the linux-image package whose files or pinned Depends hold vmlinuz and lib/modules"),
    })?;
    let first_file =
        |candidates: &[String]| candidates.iter().find(|c| dir.join(c).is_file()).cloned();
    let vmlinuz_candidates = [
        format!("root/boot/vmlinuz-{release}"),
        format!("root/{modules_rel}/vmlinuz"),
    ];
    let Some(vmlinuz_rel) = first_file(&vmlinuz_candidates) else {
        return Err(KernelError::Layout {
            what: what.to_string(),
            why: format!(
                "modules for {release} but no kernel image ({}); the image may be in another package: point the manifest's `package` at the one that holds it",
                vmlinuz_candidates
                    .iter()
                    .map(|c| c.trim_start_matches("root/"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        });
    };
    let vmlinuz = dir.join(&vmlinuz_rel);
    let config = first_file(&[
        format!("root/boot/config-{release}"),
        format!("root/{modules_rel}/config"),
    ]);
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

/// Packages of one kernel that disagree on `/lib` versus `/usr/lib` (one part built before a
/// distribution's usr-merge, one after) leave two folders for one release: the files of
/// `lib/modules/<release>` move into `usr/lib/modules/<release>`, so the release has one
/// modules folder, as it has in an installed, merged system.
fn merge_module_dirs(root: &Path) -> Result<()> {
    let Ok(rd) = fs::read_dir(root.join("lib/modules")) else {
        return Ok(());
    };
    for e in rd.flatten() {
        let usr = root.join("usr/lib/modules").join(e.file_name());
        if usr.is_dir() && e.path().is_dir() {
            move_tree(&e.path(), &usr)?;
        }
    }
    Ok(())
}

/// Moves every entry of `from` into `to` (merging folders, keeping what `to` has), then
/// removes `from`.
fn move_tree(from: &Path, to: &Path) -> Result<()> {
    for e in fs::read_dir(from).map_err(io_err(from))?.flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() && target.is_dir() {
            move_tree(&e.path(), &target)?;
        } else if !target.exists() {
            fs::rename(e.path(), &target).map_err(io_err(&target))?;
        }
    }
    fs::remove_dir_all(from).map_err(io_err(from))
}

/// The single `lib/modules/<release>` (or `usr/lib/modules/<release>`) of an unpacked tree,
/// or why there is none.
fn find_release(root: &Path) -> std::result::Result<(String, String), String> {
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
        0 => Err("no lib/modules/<release> or usr/lib/modules/<release> folder".into()),
        _ => Err(format!(
            "several module folders ({}): cannot tell the release",
            found
                .iter()
                .map(|f| f.1.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
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
    let local = |why: String| KernelError::Local {
        path: vmlinuz.to_path_buf(),
        why,
    };
    if vmlinuz.is_dir() {
        return resolve_build_tree(spec, vmlinuz, modules, archive);
    }
    if !vmlinuz.is_file() {
        return Err(local(
            "no such file or folder; give PATH/TO/vmlinuz[:MODULES_DIR], a kbuild output folder, or a kernel .deb or .rpm".into(),
        ));
    }
    let name = vmlinuz.to_string_lossy();
    if name.ends_with(".rpm") || name.ends_with(".deb") {
        if modules.is_some() {
            return Err(local(
                "a package brings its own modules: give the .deb or .rpm alone".into(),
            ));
        }
        return resolve_local_package(spec, vmlinuz, archive);
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
    let (vmlinux, pvh) = local_vmlinux(vmlinuz, &bytes, &hash, archive)?;
    let config = modules_dir.as_ref().and_then(|d| {
        let c = d.join("config");
        c.is_file().then_some(c)
    });
    Ok(ResolvedKernel {
        alias: spec.to_string(),
        manifest: None,
        package: None,
        packages: Vec::new(),
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

/// The ELF kernel to boot for a local image: the file itself when it is an ELF, else the
/// `vmlinux` unpacked from the bzImage into the cache (`kernels/local/<sha256>`), with
/// whether it has the PVH entry note.
fn local_vmlinux(
    path: &Path,
    bytes: &[u8],
    hash: &str,
    archive: &Archive,
) -> Result<(Option<PathBuf>, bool)> {
    let local = |why: String| KernelError::Local {
        path: path.to_path_buf(),
        why,
    };
    if bytes.starts_with(b"\x7fELF") {
        let pvh = elf_pvh(bytes).map_err(|why| local(format!("not a usable kernel ELF: {why}")))?;
        return Ok((Some(path.to_path_buf()), pvh));
    }
    if !is_bzimage(bytes) {
        return Err(local(
            "neither a bzImage (no HdrS header) nor an ELF kernel".into(),
        ));
    }
    let cache = archive.cache();
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
            let k = make_vmlinux(path, &out, &|m| archive.warn(m))?;
            cache::write_json(&marker, &k)?;
            Ok(k)
        })?;
    Ok((made.then_some(out), pvh))
}

/// A kernel package file given as `--kernel PATH.deb` or `PATH.rpm`: unpacked into the
/// cache by its sha256, as a manifest's package would be (any layout `unpack_tree` knows:
/// Debian, CentOS 7, Fedora and RHEL 8+).
fn resolve_local_package(
    spec: &KernelSpec,
    path: &Path,
    archive: &Archive,
) -> Result<ResolvedKernel> {
    let digest = cache::sha256_file(path)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let rpm = file_name.ends_with(".rpm");
    let (dir, tree) = unpacked_once(archive, &digest, &file_name, |root| {
        if rpm {
            deb::extract_rpm(path, root, &kernel_files_filter)?;
        } else {
            deb::extract(path, root, &kernel_files_filter)?;
        }
        Ok(())
    })?;
    Ok(tree_to_resolved(
        &spec.to_string(),
        None,
        Some(&file_name),
        None,
        &dir,
        &tree,
        digest,
    ))
}

/// A kbuild output folder given as `--kernel DIR[:MODULES_DIR]`: the image is
/// `arch/x86/boot/bzImage` (and `vmlinux` beside it, booted directly when it has the PVH
/// note), the release `include/config/kernel.release`, the config `.config`. Modules come
/// from MODULES_DIR when given, else from `DIR/lib/modules/<release>` (`make
/// modules_install INSTALL_MOD_PATH=DIR`), else from the tree itself when it built modules
/// (`modules.order`, with `modules.builtin` beside it); a kernel with everything built in
/// has none.
fn resolve_build_tree(
    spec: &KernelSpec,
    tree: &Path,
    modules: Option<&Path>,
    archive: &Archive,
) -> Result<ResolvedKernel> {
    let local = |why: String| KernelError::Local {
        path: tree.to_path_buf(),
        why,
    };
    let bz = tree.join("arch/x86/boot/bzImage");
    if !bz.is_file() {
        return Err(local(
            "a folder given as --kernel must be a kbuild output folder with arch/x86/boot/bzImage (run `make bzImage` there, or give the image file itself)".into(),
        ));
    }
    let bytes = fs::read(&bz).map_err(io_err(&bz))?;
    let hash = cache::sha256_bytes(&bytes);
    let release = fs::read_to_string(tree.join("include/config/kernel.release"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| bzimage_release(&bytes))
        .unwrap_or_else(|| "unknown".to_string());
    // The tree's own vmlinux is the ELF the bzImage compresses: boot it when it has the
    // PVH note, which saves unpacking the bzImage.
    let elf = tree.join("vmlinux");
    let tree_vmlinux = fs::read(&elf)
        .ok()
        .filter(|b| b.starts_with(b"\x7fELF"))
        .and_then(|b| elf_pvh(&b).ok())
        .filter(|pvh| *pvh);
    let (vmlinux, pvh) = match tree_vmlinux {
        Some(_) => (Some(elf), true),
        None => local_vmlinux(&bz, &bytes, &hash, archive)?,
    };
    let installed = tree.join("lib/modules").join(&release);
    let modules_dir = match modules {
        Some(m) => Some(find_modules_dir(m).map_err(|why| KernelError::Local {
            path: m.to_path_buf(),
            why,
        })?),
        None if installed.is_dir() => Some(installed),
        None if tree.join("modules.order").is_file() => Some(tree.to_path_buf()),
        None => None,
    };
    let config = tree.join(".config");
    Ok(ResolvedKernel {
        alias: spec.to_string(),
        manifest: None,
        package: None,
        packages: Vec::new(),
        version: None,
        release,
        vmlinuz: bz,
        vmlinux,
        modules_dir,
        config: config.is_file().then_some(config),
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

    /// A kbuild output folder: the image from arch/x86/boot, the release from
    /// include/config/kernel.release, the config from .config, modules from the tree
    /// (modules.order), from INSTALL_MOD_PATH, or none when everything is built in.
    #[test]
    fn a_kbuild_output_folder_is_a_kernel() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path().join("build");
        let elf = tiny_elf(&[("Xen", XEN_ELFNOTE_PHYS32_ENTRY, &[0, 0, 0, 1])]);
        fs::create_dir_all(t.join("arch/x86/boot")).unwrap();
        fs::create_dir_all(t.join("include/config")).unwrap();
        fs::write(t.join("arch/x86/boot/bzImage"), fake_bzimage("xz", &elf)).unwrap();
        fs::write(t.join("include/config/kernel.release"), "6.1.0-local+\n").unwrap();
        fs::write(t.join(".config"), "CONFIG_VIRTIO_NET=y\n").unwrap();
        let archive = Archive::without_mirror(Cache::new(tmp.path().join("cache")), "test");
        let spec = KernelSpec::parse(&t.display().to_string());
        // Everything built in: no modules.
        let r = resolve(&spec, &[], &archive, &|_, _| {}).unwrap();
        assert_eq!(r.release, "6.1.0-local+");
        assert!(r.pvh);
        assert_eq!(r.modules_dir, None);
        assert_eq!(r.config.as_deref(), Some(t.join(".config").as_path()));
        assert!(r.vmlinuz.ends_with("arch/x86/boot/bzImage"));
        assert_eq!(fs::read(r.vmlinux.as_ref().unwrap()).unwrap(), elf);
        // The tree's own PVH vmlinux is booted as it is.
        fs::write(t.join("vmlinux"), &elf).unwrap();
        let r = resolve(&spec, &[], &archive, &|_, _| {}).unwrap();
        assert_eq!(r.vmlinux.as_deref(), Some(t.join("vmlinux").as_path()));
        // Modules built in the tree.
        fs::create_dir_all(t.join("drivers/net")).unwrap();
        fs::write(t.join("drivers/net/virtio_net.ko"), b"ko").unwrap();
        fs::write(t.join("modules.order"), "drivers/net/virtio_net.ko\n").unwrap();
        let r = resolve(&spec, &[], &archive, &|_, _| {}).unwrap();
        assert_eq!(r.modules_dir.as_deref(), Some(t.as_path()));
        // Installed with INSTALL_MOD_PATH=tree: preferred.
        let inst = t.join("lib/modules/6.1.0-local+");
        fs::create_dir_all(inst.join("kernel")).unwrap();
        let r = resolve(&spec, &[], &archive, &|_, _| {}).unwrap();
        assert_eq!(r.modules_dir.as_deref(), Some(inst.as_path()));
        // A folder that is not a build: says what it must hold.
        let e = resolve(
            &KernelSpec::parse(&tmp.path().display().to_string()),
            &[],
            &archive,
            &|_, _| {},
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("arch/x86/boot/bzImage"), "{e}");
    }

    /// `--kernel PATH.rpm` and `PATH.deb`: unpacked like a manifest's package, any layout.
    #[test]
    fn a_local_kernel_package_file_is_unpacked_by_its_digest() {
        use crate::images::deb::tests::{make_deb, make_rpm, sample_tar};
        let tmp = tempfile::tempdir().unwrap();
        let elf = tiny_elf(&[]);
        let bz = fake_bzimage("gz", &elf);
        // Fedora / RHEL 8+: the image inside the modules folder, modules as .ko.xz.
        let rel = "5.14.0-70.el9.x86_64";
        let rpm = make_rpm(
            &[
                (&format!("lib/modules/{rel}/vmlinuz"), &bz, 0o755),
                (&format!("lib/modules/{rel}/config"), b"CONFIG_X=y\n", 0o644),
                (
                    &format!("lib/modules/{rel}/kernel/drivers/net/virtio_net.ko.xz"),
                    b"x",
                    0o644,
                ),
            ],
            &[],
        );
        let rpm_path = tmp.path().join("kernel-core.rpm");
        fs::write(&rpm_path, &rpm).unwrap();
        let archive = Archive::without_mirror(Cache::new(tmp.path().join("cache")), "test");
        let r = resolve(
            &KernelSpec::parse(&rpm_path.display().to_string()),
            &[],
            &archive,
            &|_, _| {},
        )
        .unwrap();
        assert_eq!(r.release, rel);
        assert_eq!(r.hash, cache::sha256_bytes(&rpm));
        assert!(r.vmlinuz.ends_with(format!("lib/modules/{rel}/vmlinuz")));
        assert!(r.config.is_some());
        assert_eq!(r.package.as_deref(), Some("kernel-core.rpm"));
        let deb = make_deb(
            &sample_tar(
                &[
                    ("boot/vmlinuz-6.1.0-9-amd64", &bz, 0o644),
                    ("lib/modules/6.1.0-9-amd64/modules.builtin", b"", 0o644),
                ],
                &[],
            ),
            "xz",
        );
        let deb_path = tmp.path().join("linux-image.deb");
        fs::write(&deb_path, &deb).unwrap();
        let r = resolve(
            &KernelSpec::parse(&deb_path.display().to_string()),
            &[],
            &archive,
            &|_, _| {},
        )
        .unwrap();
        assert_eq!(r.release, "6.1.0-9-amd64");
        let e = resolve(
            &KernelSpec::parse(&format!("{}:/tmp", deb_path.display())),
            &[],
            &archive,
            &|_, _| {},
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("brings its own modules"), "{e}");
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
            e.contains("only a machine that reaches") && e.contains("repro images fetch 3.10"),
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

    /// Writes `packages` (name, version, depends, source, deb) into a local mirror's
    /// `testing` suite and returns the archive that reads it.
    fn split_mirror(tmp: &Path, packages: &[(&str, &str, &str, &str, Vec<u8>)]) -> Archive {
        use std::io::Write;
        let root = tmp.join("mirror/debian");
        fs::create_dir_all(root.join("pool/main/l")).unwrap();
        let mut index = String::new();
        for (name, ver, depends, source, deb) in packages {
            let file = format!("pool/main/l/{name}_{ver}.deb");
            fs::write(root.join(&file), deb).unwrap();
            index += &format!(
                "Package: {name}\nSource: {source}\nVersion: {ver}\nArchitecture: amd64\nDepends: {depends}\nFilename: {file}\nSize: {}\nSHA256: {}\n\n",
                deb.len(),
                cache::sha256_bytes(deb)
            );
        }
        let idx = root.join("dists/testing/main/binary-amd64");
        fs::create_dir_all(&idx).unwrap();
        let mut enc = xz2::write::XzEncoder::new(Vec::new(), 1);
        enc.write_all(index.as_bytes()).unwrap();
        fs::write(idx.join("Packages.xz"), enc.finish().unwrap()).unwrap();
        let mirror =
            debian::mirror_from_value(&format!("file://{}", root.display()), "test").unwrap();
        Archive::new(mirror, Cache::new(tmp.join("cache")))
    }

    fn split_manifest() -> KernelManifest {
        parse_manifest(
            Path::new("split.toml"),
            r#"
name = "split"
distro = "test"
kind = "debian"
suites = ["testing"]
package = '^linux-image-9\.9\.9\+deb99-amd64$'
"#,
        )
        .unwrap()
    }

    /// Debian's layout from forky on, as sid ships 7.2.13-1: `linux-image-R` holds no
    /// kernel file and pins `linux-binary-R` (the image at `usr/lib/modules/R/vmlinuz`),
    /// `linux-modules-R` and `linux-base-R` (config and `modules.builtin`, here under
    /// `lib/modules`, to check that the two module folders of one release merge).
    #[test]
    fn a_split_debian_kernel_unpacks_every_pinned_package() {
        use crate::images::deb::tests::{make_deb, sample_tar};
        let tmp = tempfile::tempdir().unwrap();
        let elf = tiny_elf(&[("Xen", XEN_ELFNOTE_PHYS32_ENTRY, &[0, 0, 0, 1])]);
        let bz = fake_bzimage("xz", &elf);
        let rel = "9.9.9+deb99-amd64";
        let v = "9.9.9-1";
        let deb = |files: &[(&str, &[u8])]| {
            let files: Vec<(String, &[u8], u32)> = files
                .iter()
                .map(|(p, b)| (p.to_string(), *b, 0o644))
                .collect();
            let refs: Vec<(&str, &[u8], u32)> =
                files.iter().map(|(p, b, m)| (p.as_str(), *b, *m)).collect();
            make_deb(&sample_tar(&refs, &[]), "xz")
        };
        let image = deb(&[("usr/share/doc/linux-image/copyright", b"x")]);
        let binary = deb(&[(&format!("usr/lib/modules/{rel}/vmlinuz"), &bz)]);
        let modules = deb(&[(
            &format!("usr/lib/modules/{rel}/kernel/drivers/net/virtio_net.ko.xz"),
            b"ko",
        )]);
        let base = deb(&[
            (
                &format!("lib/modules/{rel}/config"),
                b"CONFIG_VIRTIO_NET=m\n",
            ),
            (
                &format!("lib/modules/{rel}/modules.builtin"),
                b"kernel/drivers/virtio/virtio.ko\n",
            ),
        ]);
        let pin = |n: &str| format!("linux-{n}-{rel} (= {v})");
        let archive = split_mirror(
            tmp.path(),
            &[
                (
                    &format!("linux-image-{rel}"),
                    v,
                    &format!(
                        "dracut | initramfs-tools (>= 0.120), {}, {}, {}",
                        pin("base"),
                        pin("binary"),
                        pin("modules")
                    ),
                    "linux-signed-amd64 (9.9.9+1)",
                    image,
                ),
                (
                    &format!("linux-binary-{rel}"),
                    v,
                    &pin("base"),
                    "linux-signed-amd64 (9.9.9+1)",
                    binary,
                ),
                (
                    &format!("linux-modules-{rel}"),
                    v,
                    &format!("kmod, {}", pin("base")),
                    "linux",
                    modules,
                ),
                (&format!("linux-base-{rel}"), v, "", "linux", base),
                // Same name pattern, other version: never followed.
                (
                    &format!("linux-base-{rel}"),
                    "9.9.8-1",
                    "",
                    "linux",
                    vec![1],
                ),
            ],
        );
        let m = split_manifest();
        let r = resolve(
            &KernelSpec::parse("split"),
            std::slice::from_ref(&m),
            &archive,
            &|_, _| {},
        )
        .unwrap();
        assert_eq!(
            r.package.as_deref(),
            Some(format!("linux-image-{rel}").as_str())
        );
        assert_eq!(
            r.packages,
            ["image", "base", "binary", "modules"].map(|n| format!("linux-{n}-{rel}={v}"))
        );
        assert_eq!(r.release, rel);
        assert!(r
            .vmlinuz
            .ends_with(format!("usr/lib/modules/{rel}/vmlinuz")));
        assert!(r.pvh);
        let mods = r.modules_dir.clone().unwrap();
        assert!(mods.ends_with(format!("usr/lib/modules/{rel}")));
        assert!(mods.join("modules.builtin").is_file());
        assert!(mods.join("kernel/drivers/net/virtio_net.ko.xz").is_file());
        assert_eq!(r.config.as_deref(), Some(mods.join("config").as_path()));
        // The key covers every package: not the meta package's own digest.
        assert_ne!(r.hash.len(), 0);
        assert!(r
            .vmlinuz
            .starts_with(archive.cache().root().join("kernels").join(&r.hash)));
        // Offline with the index gone: the recorded resolution still names all four.
        fs::remove_dir_all(tmp.path().join("mirror")).unwrap();
        fs::remove_dir_all(archive.cache().root().join("debian")).unwrap();
        let off = Archive::new(archive.mirror().unwrap().clone(), archive.cache().clone())
            .with_offline(true);
        assert_eq!(
            resolve(
                &KernelSpec::parse("split"),
                std::slice::from_ref(&m),
                &off,
                &|_, _| {}
            )
            .unwrap(),
            r
        );
    }

    /// A pinned part missing from the index, and a package that holds no kernel: errors
    /// that name the package and say what to change, never "delete the cache".
    #[test]
    fn a_split_kernel_with_a_missing_part_or_no_kernel_says_what_to_change() {
        use crate::images::deb::tests::{make_deb, sample_tar};
        let tmp = tempfile::tempdir().unwrap();
        let rel = "9.9.9+deb99-amd64";
        let empty = make_deb(&sample_tar(&[("usr/share/doc/x", b"x", 0o644)], &[]), "xz");
        let archive = split_mirror(
            tmp.path(),
            &[(
                &format!("linux-image-{rel}"),
                "9.9.9-1",
                &format!("linux-modules-{rel} (= 9.9.9-1)"),
                "linux-signed-amd64",
                empty.clone(),
            )],
        );
        let m = split_manifest();
        let e = resolve(
            &KernelSpec::parse("split"),
            std::slice::from_ref(&m),
            &archive,
            &|_, _| {},
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, KernelError::Dependency { .. }), "{text}");
        assert!(
            text.contains(&format!("linux-modules-{rel} (= 9.9.9-1)"))
                && text.contains("--kernel split@VERSION"),
            "{text}"
        );
        let tmp2 = tempfile::tempdir().unwrap();
        let archive = split_mirror(
            tmp2.path(),
            &[(
                &format!("linux-image-{rel}"),
                "9.9.9-1",
                "kmod",
                "linux",
                empty,
            )],
        );
        let e = resolve(
            &KernelSpec::parse("split"),
            std::slice::from_ref(&m),
            &archive,
            &|_, _| {},
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(&format!("linux-image-{rel}=9.9.9-1"))
                && e.contains("no lib/modules/<release>")
                && e.contains("`package`")
                && !e.contains("delete"),
            "{e}"
        );
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
