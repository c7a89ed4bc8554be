//! Kernels: manifests (`images/kernels/*.toml`), `--kernel` specs, resolution to a cached
//! `vmlinuz` + `vmlinux` + modules tree, and module load order.
//!
//! Cache layout (under the cache root):
//!
//! ```text
//! kernels/<sha256 of the package>/kernel.json     marker, written last: the tree is complete
//! kernels/<sha256 of the package>/root/boot/vmlinuz-<release>, config-<release>
//! kernels/<sha256 of the package>/root/{usr/,}lib/modules/<release>/...
//! kernels/<sha256 of the package>/vmlinux         ELF unpacked from the bzImage
//! kernels/local/<sha256 of the vmlinuz>/          the same for a local kernel (`--kernel PATH`)
//! kernels/resolved/<manifest>[@<version>].json    last package chosen for a manifest (offline runs)
//! kernels/pins/<manifest>.json                    sha256 pinned on first download (kind rpm-url)
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::cache::{self, Cache, CacheError};
use super::deb::{self, DebError};
use super::debian::{Archive, DebianError, PackageEntry, PackageQuery};
use crate::tomlfile::{self, TomlFileError};

/// Bump when the layout of an unpacked kernel changes, to unpack again.
const LAYOUT_VERSION: u32 = 1;
/// ELF note type of the PVH 32-bit entry point (`XEN_ELFNOTE_PHYS32_ENTRY`), name "Xen".
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// What went wrong with a kernel.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error(transparent)]
    Toml(#[from] TomlFileError),
    #[error("{path}:{line}:{column}: {message}")]
    Manifest {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("cannot list kernel manifests in {path}: {source}; run from the repository (or set REPRO_ROOT) so that images/kernels/ is found")]
    ManifestDir { path: PathBuf, source: io::Error },
    #[error("kernel name or alias `{alias}` is claimed by both {first} and {second}; make aliases unique across images/kernels/*.toml")]
    DuplicateAlias {
        alias: String,
        first: String,
        second: String,
    },
    #[error("unknown kernel `{wanted}`; known kernels: {known}. Give a name, an alias, a package version (e.g. 6.1.158-1 or bookworm@6.1.158-1), or a path: PATH/TO/vmlinuz[:MODULES_DIR]")]
    UnknownKernel { wanted: String, known: String },
    #[error("kernel version `{wanted}` fits several manifests ({candidates}); say which with NAME@{wanted}")]
    AmbiguousVersion { wanted: String, candidates: String },
    #[error("kernel {manifest}: version {version} is not in its suites; available: {available}")]
    NoSuchVersion {
        manifest: String,
        version: String,
        available: String,
    },
    #[error("kernel {kernel} is not in the cache and {what} could not be fetched ({cause}); run `repro images fetch {kernel}` on a connected machine using the same cache folder, then retry")]
    NotCached {
        kernel: String,
        what: String,
        cause: String,
    },
    #[error("local kernel {path}: {why}")]
    Local { path: PathBuf, why: String },
    #[error("kernel tree {dir}: {why}; delete that folder to unpack the package again")]
    Layout { dir: PathBuf, why: String },
    #[error("{path}: {why}")]
    Image { path: PathBuf, why: String },
    #[error("kernel modules not found in {root} and not built in: {names}; check the module names (see modules.builtin there) or use a kernel that has them")]
    ModulesMissing { root: PathBuf, names: String },
    #[error("module {module} depends on {dependency}, which is neither in {root} nor built in; the modules tree is incomplete")]
    ModuleDependency {
        module: String,
        dependency: String,
        root: PathBuf,
    },
    #[error("module dependency cycle: {cycle}")]
    ModuleCycle { cycle: String },
    #[error("module {path}: {why}")]
    Module { path: PathBuf, why: String },
    #[error("cannot read or write {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Debian(#[from] DebianError),
    #[error(transparent)]
    Deb(#[from] DebError),
    #[error(transparent)]
    Cache(#[from] CacheError),
}

pub type Result<T, E = KernelError> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> KernelError + '_ {
    move |source| KernelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------------------------------------
// Manifests
// ---------------------------------------------------------------------------------------------

/// How a manifest's kernel is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KernelKind {
    /// A `linux-image-*` package from the Debian archive (mirror from configuration).
    Debian,
    /// An RPM at a fixed URL (CentOS kernels).
    RpmUrl,
}

/// `images/kernels/<name>.toml`. The fields are documented at the top of each manifest file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelManifest {
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub distro: String,
    pub kind: KernelKind,
    /// kind debian: suites searched (all of them; the newest matching package wins).
    #[serde(default)]
    pub suites: Vec<String>,
    /// kind debian: archive component (default `main`).
    pub component: Option<String>,
    /// kind debian: regular expression for whole package names.
    pub package: Option<String>,
    /// kind debian: only package versions starting with this.
    pub version_prefix: Option<String>,
    /// kind debian: this exact package version instead of the newest.
    pub pin: Option<String>,
    /// kind rpm-url: where the package is.
    pub url: Option<String>,
    /// kind rpm-url: its sha256 (absent: pinned on first download, see kernels/pins/).
    pub sha256: Option<String>,
    /// kind rpm-url: the package version (so `--kernel <version>` finds it).
    pub version: Option<String>,
    /// Free text for people.
    pub note: Option<String>,
}

impl KernelManifest {
    pub fn component(&self) -> &str {
        self.component.as_deref().unwrap_or("main")
    }

    /// The package query of a `debian` manifest.
    pub fn query(&self) -> Result<PackageQuery> {
        let pattern = self.package.as_deref().unwrap_or("");
        let name = Regex::new(pattern).map_err(|e| KernelError::Manifest {
            path: PathBuf::from(format!("images/kernels/{}.toml", self.name)),
            line: 0,
            column: 0,
            message: format!("`package` is not a valid regular expression: {e}"),
        })?;
        Ok(PackageQuery {
            suites: self.suites.clone(),
            component: self.component().to_string(),
            name,
            version_prefix: self.version_prefix.clone(),
        })
    }

    /// Name and aliases, for messages: `bookworm (6.1, bookworm)`.
    pub fn label(&self) -> String {
        if self.aliases.is_empty() {
            self.name.clone()
        } else {
            format!("{} ({})", self.name, self.aliases.join(", "))
        }
    }

    fn digest(&self) -> String {
        cache::sha256_bytes(&serde_json::to_vec(self).expect("serializable"))
    }
}

/// Parses and checks one manifest; `path` names it in errors (with line and column).
pub fn parse_manifest(path: &Path, text: &str) -> Result<KernelManifest> {
    let m: KernelManifest = tomlfile::parse(path, text)?;
    let err = |key: &str, message: String| {
        let (line, column) = key_position(text, key);
        KernelError::Manifest {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    };
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
    };
    if !name_ok(&m.name) {
        return Err(err(
            "name",
            format!(
                "name `{}` must be non-empty and use only letters, digits and . _ - +",
                m.name
            ),
        ));
    }
    if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
        if stem != m.name {
            return Err(err(
                "name",
                format!("name `{}` must match the file name `{stem}.toml`", m.name),
            ));
        }
    }
    for a in &m.aliases {
        if !name_ok(a) || a.contains('@') || a.contains('/') {
            return Err(err(
                "aliases",
                format!("alias `{a}` must be non-empty and use only letters, digits and . _ - +"),
            ));
        }
    }
    let forbid = |keys: &[(&str, bool)], kind: &str| -> Result<()> {
        for (k, present) in keys {
            if *present {
                return Err(err(k, format!("`{k}` does not apply to kind = \"{kind}\"")));
            }
        }
        Ok(())
    };
    match m.kind {
        KernelKind::Debian => {
            forbid(
                &[
                    ("url", m.url.is_some()),
                    ("sha256", m.sha256.is_some()),
                    ("version", m.version.is_some()),
                ],
                "debian",
            )?;
            if m.suites.is_empty() {
                return Err(err(
                    "kind",
                    "kind = \"debian\" needs `suites` (e.g. [\"bookworm\", \"bookworm-security\"])"
                        .into(),
                ));
            }
            let Some(p) = &m.package else {
                return Err(err(
                    "kind",
                    "kind = \"debian\" needs `package`, a regular expression for package names"
                        .into(),
                ));
            };
            if let Err(e) = Regex::new(p) {
                return Err(err(
                    "package",
                    format!("`package` is not a valid regular expression: {e}"),
                ));
            }
            if let (Some(pin), Some(prefix)) = (&m.pin, &m.version_prefix) {
                if !pin.starts_with(prefix.as_str()) {
                    return Err(err(
                        "pin",
                        format!("pin `{pin}` does not start with version_prefix `{prefix}`"),
                    ));
                }
            }
        }
        KernelKind::RpmUrl => {
            forbid(
                &[
                    ("suites", !m.suites.is_empty()),
                    ("component", m.component.is_some()),
                    ("package", m.package.is_some()),
                    ("version_prefix", m.version_prefix.is_some()),
                    ("pin", m.pin.is_some()),
                ],
                "rpm-url",
            )?;
            match &m.url {
                Some(u)
                    if u.starts_with("https://")
                        || u.starts_with("http://")
                        || u.starts_with("file:///") => {}
                Some(u) => {
                    return Err(err(
                        "url",
                        format!("url `{u}` must be an http(s):// or file:/// URL"),
                    ))
                }
                None => return Err(err("kind", "kind = \"rpm-url\" needs `url`".into())),
            }
            if let Some(s) = &m.sha256 {
                if !cache::is_sha256_hex(s) {
                    return Err(err("sha256", format!("sha256 `{s}` is not 64 hex digits")));
                }
            }
        }
    }
    Ok(m)
}

/// 1-based line and column of `key = ...` in a TOML text (1:1 when absent).
fn key_position(text: &str, key: &str) -> (usize, usize) {
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix(key) {
            if rest.trim_start().starts_with('=') {
                return (i + 1, line.len() - t.len() + 1);
            }
        }
    }
    (1, 1)
}

/// Loads every `*.toml` of a folder (sorted by file name) and checks that names and
/// aliases are unique.
pub fn load_manifests(dir: &Path) -> Result<Vec<KernelManifest>> {
    let rd = fs::read_dir(dir).map_err(|source| KernelError::ManifestDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = fs::read_to_string(&f).map_err(io_err(&f))?;
        out.push(parse_manifest(&f, &text)?);
    }
    check_unique(&out)?;
    Ok(out)
}

/// Names and aliases must be unique across manifests (a manifest may list its own name as
/// an alias).
pub fn check_unique(manifests: &[KernelManifest]) -> Result<()> {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for m in manifests {
        let own: BTreeSet<&str> = std::iter::once(m.name.as_str())
            .chain(m.aliases.iter().map(String::as_str))
            .collect();
        for a in own {
            if let Some(prev) = seen.insert(a, &m.name) {
                return Err(KernelError::DuplicateAlias {
                    alias: a.to_string(),
                    first: prev.to_string(),
                    second: m.name.clone(),
                });
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// --kernel specs and aliases
// ---------------------------------------------------------------------------------------------

/// A `--kernel` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSpec {
    /// A manifest name, an alias, a package version, or `NAME@VERSION`.
    Alias(String),
    /// A local kernel: a bzImage (or an ELF vmlinux) and optionally its modules folder.
    Path {
        vmlinuz: PathBuf,
        modules: Option<PathBuf>,
    },
}

impl KernelSpec {
    /// `PATH/TO/vmlinuz[:MODULES_DIR]` when the argument contains `/` or names an existing
    /// file; otherwise an alias.
    pub fn parse(s: &str) -> KernelSpec {
        Self::parse_with(s, &|p| p.exists())
    }

    /// `parse` with the existence check given (pure, for tests).
    pub fn parse_with(s: &str, exists: &dyn Fn(&Path) -> bool) -> KernelSpec {
        if !s.contains('/') && !exists(Path::new(s)) {
            return KernelSpec::Alias(s.to_string());
        }
        if exists(Path::new(s)) {
            return KernelSpec::Path {
                vmlinuz: PathBuf::from(s),
                modules: None,
            };
        }
        match s.rsplit_once(':') {
            Some((k, m)) if !k.is_empty() && !m.is_empty() => KernelSpec::Path {
                vmlinuz: PathBuf::from(k),
                modules: Some(PathBuf::from(m)),
            },
            _ => KernelSpec::Path {
                vmlinuz: PathBuf::from(s),
                modules: None,
            },
        }
    }
}

impl std::str::FromStr for KernelSpec {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(KernelSpec::parse(s))
    }
}

impl fmt::Display for KernelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelSpec::Alias(a) => f.write_str(a),
            KernelSpec::Path {
                vmlinuz,
                modules: None,
            } => write!(f, "{}", vmlinuz.display()),
            KernelSpec::Path {
                vmlinuz,
                modules: Some(m),
            } => write!(f, "{}:{}", vmlinuz.display(), m.display()),
        }
    }
}

/// A manifest chosen by `resolve_alias`, with the exact version asked for, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasMatch<'a> {
    pub manifest: &'a KernelManifest,
    pub version: Option<String>,
}

/// Finds the manifest for a name, an alias, a package version, or `NAME@VERSION`.
pub fn resolve_alias<'a>(manifests: &'a [KernelManifest], wanted: &str) -> Result<AliasMatch<'a>> {
    let by_name = |n: &str| {
        manifests
            .iter()
            .find(|m| m.name == n)
            .or_else(|| manifests.iter().find(|m| m.aliases.iter().any(|a| a == n)))
    };
    let unknown = || KernelError::UnknownKernel {
        wanted: wanted.to_string(),
        known: if manifests.is_empty() {
            "none (images/kernels/ is empty)".to_string()
        } else {
            manifests
                .iter()
                .map(KernelManifest::label)
                .collect::<Vec<_>>()
                .join("; ")
        },
    };
    if let Some((n, v)) = wanted.split_once('@') {
        let m = by_name(n).ok_or_else(unknown)?;
        return Ok(AliasMatch {
            manifest: m,
            version: Some(v.to_string()),
        });
    }
    if let Some(m) = by_name(wanted) {
        return Ok(AliasMatch {
            manifest: m,
            version: m.pin.clone(),
        });
    }
    let fits: Vec<&KernelManifest> = manifests
        .iter()
        .filter(|m| match m.kind {
            KernelKind::Debian => m
                .version_prefix
                .as_deref()
                .is_some_and(|p| wanted.starts_with(p) && wanted.len() > p.len()),
            KernelKind::RpmUrl => m.version.as_deref() == Some(wanted),
        })
        .collect();
    match fits.as_slice() {
        [] => Err(unknown()),
        [m] => Ok(AliasMatch {
            manifest: m,
            version: Some(wanted.to_string()),
        }),
        many => Err(KernelError::AmbiguousVersion {
            wanted: wanted.to_string(),
            candidates: many
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Resolution
// ---------------------------------------------------------------------------------------------

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
    let digest = m.digest();
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
                cache::atomic_write(
                    &res_path,
                    &serde_json::to_vec_pretty(&r).expect("serializable"),
                )?;
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
    let tree = match read_marker(&dir) {
        Some(t) => t,
        None => {
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
            unpack_tree(cache, &dir, &digest, &|m| archive.warn(m), |root| {
                deb::extract(&deb, root, &kernel_files_filter)?;
                Ok(())
            })?
        }
    };
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
    let url = m.url.clone().expect("validated: rpm-url has url");
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
        cache::atomic_write(
            &pin_path,
            &serde_json::to_vec_pretty(&Pin {
                url: url.clone(),
                sha256: digest.clone(),
            })
            .expect("serializable"),
        )?;
        archive.warn(&format!(
            "kernel {}: pinned sha256 {digest} for {url} on first download; add `sha256 = \"{digest}\"` to images/kernels/{}.toml",
            m.name, m.name
        ));
    }
    let dir = cache.root().join("kernels").join(&digest);
    let tree = match read_marker(&dir) {
        Some(t) => t,
        None => unpack_tree(cache, &dir, &digest, &|m| archive.warn(m), |root| {
            deb::extract_rpm(&rpm, root, &kernel_files_filter)?;
            Ok(())
        })?,
    };
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

/// Unpacks a package into `dir/root` under the cache lock, finds the release, vmlinuz and
/// modules, unpacks `vmlinux`, and writes the marker last.
fn unpack_tree(
    cache: &Cache,
    dir: &Path,
    digest: &str,
    warn: &dyn Fn(&str),
    unpack: impl FnOnce(&Path) -> Result<()>,
) -> Result<TreeMarker> {
    let _lock = cache.lock(&format!("kernel-{digest}"))?;
    if let Some(t) = read_marker(dir) {
        return Ok(t); // another process finished it while we waited
    }
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
    cache::atomic_write(
        &dir.join("kernel.json"),
        &serde_json::to_vec_pretty(&t).expect("serializable"),
    )?;
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
        let known: Option<(bool, bool)> = fs::read(&marker)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let (made, pvh) = match known {
            Some(k) if !k.0 || out.is_file() => k,
            _ => {
                let _lock = cache.lock(&format!("kernel-local-{hash}"))?;
                let k = make_vmlinux(vmlinuz, &out, &|m| archive.warn(m))?;
                cache::atomic_write(&marker, &serde_json::to_vec(&k).expect("serializable"))?;
                k
            }
        };
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

// ---------------------------------------------------------------------------------------------
// bzImage → vmlinux
// ---------------------------------------------------------------------------------------------

fn le32(b: &[u8], off: usize) -> Option<u32> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes(s.try_into().unwrap()))
}

fn le16(b: &[u8], off: usize) -> Option<u16> {
    b.get(off..off + 2)
        .map(|s| u16::from_le_bytes(s.try_into().unwrap()))
}

/// Whether the bytes carry the x86 boot protocol header (`HdrS` at 0x202).
pub fn is_bzimage(b: &[u8]) -> bool {
    b.get(0x202..0x206) == Some(b"HdrS")
}

/// The kernel version string of a bzImage header (first word: the release).
pub fn bzimage_release(b: &[u8]) -> Option<String> {
    if !is_bzimage(b) {
        return None;
    }
    let ptr = le16(b, 0x20e)? as usize;
    if ptr == 0 {
        return None;
    }
    let s = b.get(ptr + 0x200..)?;
    let end = s.iter().position(|&c| c == 0)?;
    let text = std::str::from_utf8(&s[..end]).ok()?;
    text.split_whitespace().next().map(str::to_string)
}

const XZ_MAGIC: &[u8] = &[0xFD, b'7', b'z', b'X', b'Z', 0x00];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xB5, 0x2F, 0xFD];
const GZIP_MAGIC: &[u8] = &[0x1F, 0x8B, 0x08];

/// The uncompressed ELF kernel inside a bzImage. The payload is found through the boot
/// protocol header (`payload_offset`, protocol 2.08+), else by scanning for an XZ, zstd or
/// gzip magic; it is decompressed up to the end of its first stream (the bzImage appends
/// the uncompressed size after it).
pub fn extract_vmlinux(bz: &[u8]) -> std::result::Result<Vec<u8>, String> {
    if !is_bzimage(bz) {
        return Err("not a bzImage (no HdrS header)".into());
    }
    let mut candidates = Vec::new();
    let setup_sects = match bz.get(0x1f1).copied() {
        Some(0) | None => 4,
        Some(n) => n as usize,
    };
    let protocol = le16(bz, 0x206).unwrap_or(0);
    if protocol >= 0x208 {
        if let (Some(off), Some(len)) = (le32(bz, 0x248), le32(bz, 0x24c)) {
            let start = (setup_sects + 1) * 512 + off as usize;
            let end = start.saturating_add(len as usize).min(bz.len());
            if start < end {
                candidates.push((start, end));
            }
        }
    }
    for magic in [XZ_MAGIC, ZSTD_MAGIC, GZIP_MAGIC] {
        let mut from = 0;
        while let Some(p) = find(&bz[from..], magic) {
            candidates.push((from + p, bz.len()));
            from += p + 1;
            if candidates.len() > 16 {
                break;
            }
        }
    }
    let mut last = String::from("no compressed payload found");
    for (start, end) in candidates {
        let data = &bz[start..end];
        let r = if data.starts_with(XZ_MAGIC) {
            decompress_xz_first_stream(data)
        } else if data.starts_with(ZSTD_MAGIC) {
            zstd::stream::read::Decoder::with_buffer(data).and_then(|d| {
                let mut v = Vec::new();
                d.single_frame().read_to_end(&mut v)?;
                Ok(v)
            })
        } else if data.starts_with(GZIP_MAGIC) {
            let mut v = Vec::new();
            flate2::read::GzDecoder::new(data)
                .read_to_end(&mut v)
                .map(|_| v)
        } else {
            last = format!(
                "payload at {start:#x} uses a compression repro does not read (magic {:02x?}); build the kernel with XZ, zstd or gzip",
                &data[..data.len().min(4)]
            );
            continue;
        };
        match r {
            Ok(v) if v.starts_with(b"\x7fELF") => return Ok(v),
            Ok(_) => last = format!("payload at {start:#x} does not decompress to an ELF file"),
            Err(e) => last = format!("payload at {start:#x}: {e}"),
        }
    }
    Err(last)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Decompresses the first XZ stream of `data`, ignoring what follows it.
pub fn decompress_xz_first_stream(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut s = xz2::stream::Stream::new_stream_decoder(u64::MAX, 0).map_err(io::Error::other)?;
    let mut out: Vec<u8> = Vec::with_capacity(data.len() * 4);
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(1 << 20));
        }
        let before_in = s.total_in();
        let before_out = s.total_out();
        let status = s
            .process_vec(
                &data[s.total_in() as usize..],
                &mut out,
                xz2::stream::Action::Run,
            )
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if status == xz2::stream::Status::StreamEnd {
            return Ok(out);
        }
        if s.total_in() == before_in && s.total_out() == before_out && out.len() < out.capacity() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "XZ stream is truncated",
            ));
        }
    }
}

/// Checks that `elf` is an x86-64 ELF and tells whether it has the PVH entry note
/// (`Xen` / `XEN_ELFNOTE_PHYS32_ENTRY`).
pub fn elf_pvh(elf: &[u8]) -> std::result::Result<bool, String> {
    let e = goblin::elf::Elf::parse(elf).map_err(|e| e.to_string())?;
    if !e.is_64 || e.header.e_machine != goblin::elf::header::EM_X86_64 {
        return Err(format!(
            "not an x86-64 ELF (machine {})",
            e.header.e_machine
        ));
    }
    let is_pvh =
        |n: &goblin::elf::note::Note| n.name == "Xen" && n.n_type == XEN_ELFNOTE_PHYS32_ENTRY;
    if let Some(it) = e.iter_note_headers(elf) {
        for n in it.flatten() {
            if is_pvh(&n) {
                return Ok(true);
            }
        }
    }
    if let Some(it) = e.iter_note_sections(elf, None) {
        for n in it.flatten() {
            if is_pvh(&n) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

// ---------------------------------------------------------------------------------------------
// Modules
// ---------------------------------------------------------------------------------------------

/// A module to load, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleFile {
    /// Normalised name (`-` → `_`).
    pub name: String,
    /// The `.ko`, `.ko.xz`, `.ko.zst` or `.ko.gz` file.
    pub path: PathBuf,
}

/// What a module needs loaded first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleDeps {
    /// `depends=`: required.
    pub depends: Vec<String>,
    /// `softdep=pre:`: loaded first when available, skipped otherwise.
    pub soft_pre: Vec<String>,
}

/// `virtio-net` → `virtio_net`; `kernel/fs/ext4/ext4.ko.xz` → `ext4`.
pub fn normalize_module_name(s: &str) -> String {
    let base = s.rsplit('/').next().unwrap_or(s);
    let base = [".ko.xz", ".ko.zst", ".ko.gz", ".ko"]
        .iter()
        .find_map(|suf| base.strip_suffix(suf))
        .unwrap_or(base);
    base.replace('-', "_")
}

fn is_module_file(name: &str) -> bool {
    [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .any(|s| name.ends_with(s))
}

/// Every module file under `root`, by normalised name (the first by sorted path wins when a
/// name appears twice).
pub fn index_modules(root: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    let mut files = Vec::new();
    while let Some(d) = stack.pop() {
        let rd = fs::read_dir(&d).map_err(io_err(&d))?;
        for e in rd {
            let e = e.map_err(io_err(&d))?;
            let ft = e.file_type().map_err(io_err(&d))?;
            let p = e.path();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() && is_module_file(&e.file_name().to_string_lossy()) {
                files.push(p);
            }
        }
    }
    files.sort();
    for p in files {
        let n = normalize_module_name(&p.to_string_lossy());
        out.entry(n).or_insert(p);
    }
    Ok(out)
}

/// Names listed in `modules.builtin` (empty if the file is absent).
pub fn read_builtin(root: &Path) -> BTreeSet<String> {
    fs::read_to_string(root.join("modules.builtin"))
        .map(|t| parse_builtin(&t))
        .unwrap_or_default()
}

pub fn parse_builtin(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(normalize_module_name)
        .collect()
}

/// A module file's bytes, decompressed if it is `.ko.xz`, `.ko.zst` or `.ko.gz`.
pub fn decompress_module(path: &Path) -> Result<Vec<u8>> {
    let raw = fs::read(path).map_err(io_err(path))?;
    let name = path.to_string_lossy();
    let err = |e: io::Error| KernelError::Module {
        path: path.to_path_buf(),
        why: format!("cannot decompress: {e}"),
    };
    let mut v = Vec::new();
    if name.ends_with(".xz") {
        xz2::read::XzDecoder::new_multi_decoder(raw.as_slice())
            .read_to_end(&mut v)
            .map_err(err)?;
    } else if name.ends_with(".zst") {
        zstd::stream::read::Decoder::new(raw.as_slice())
            .and_then(|mut d| d.read_to_end(&mut v))
            .map_err(err)?;
    } else if name.ends_with(".gz") {
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut v)
            .map_err(err)?;
    } else {
        return Ok(raw);
    }
    Ok(v)
}

/// The `key=value` strings of a module's `.modinfo` section.
pub fn modinfo(elf: &[u8]) -> std::result::Result<Vec<(String, String)>, String> {
    let e = goblin::elf::Elf::parse(elf).map_err(|e| e.to_string())?;
    let sh = e
        .section_headers
        .iter()
        .find(|s| e.shdr_strtab.get_at(s.sh_name) == Some(".modinfo"))
        .ok_or("no .modinfo section")?;
    let start = sh.sh_offset as usize;
    let data = elf
        .get(start..start + sh.sh_size as usize)
        .ok_or(".modinfo section lies outside the file")?;
    Ok(parse_modinfo(data))
}

pub fn parse_modinfo(data: &[u8]) -> Vec<(String, String)> {
    data.split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .filter_map(|s| {
            let t = String::from_utf8_lossy(s);
            t.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// Dependencies from `.modinfo` fields.
pub fn deps_from_modinfo(fields: &[(String, String)]) -> ModuleDeps {
    let mut d = ModuleDeps::default();
    for (k, v) in fields {
        match k.as_str() {
            "depends" => d.depends.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(normalize_module_name),
            ),
            "softdep" => {
                // "pre: a b post: c"
                let mut in_pre = false;
                for w in v.split_whitespace() {
                    match w {
                        "pre:" => in_pre = true,
                        "post:" => in_pre = false,
                        w if in_pre => d.soft_pre.push(normalize_module_name(w)),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    d
}

/// The load order of `wanted` and everything they depend on (dependencies first, each once).
/// `lookup(name)` gives a module's dependencies, or `None` when there is no such module file.
/// Built-in modules are skipped silently; wanted modules that are neither found nor built in
/// are reported together; a missing hard dependency is an error, a missing soft one is not.
pub fn order_modules(
    wanted: &[&str],
    builtin: &BTreeSet<String>,
    root: &Path,
    lookup: &mut dyn FnMut(&str) -> Result<Option<ModuleDeps>>,
) -> Result<Vec<String>> {
    #[derive(PartialEq)]
    enum State {
        Visiting,
        Done,
    }
    struct Walk<'a> {
        builtin: &'a BTreeSet<String>,
        root: &'a Path,
        lookup: &'a mut dyn FnMut(&str) -> Result<Option<ModuleDeps>>,
        state: BTreeMap<String, State>,
        stack: Vec<String>,
        order: Vec<String>,
    }
    impl Walk<'_> {
        /// Ok(false) when the module does not exist (and is not built in).
        fn visit(&mut self, name: &str) -> Result<bool> {
            if self.builtin.contains(name) {
                return Ok(true);
            }
            match self.state.get(name) {
                Some(State::Done) => return Ok(true),
                Some(State::Visiting) => {
                    let mut cycle = self.stack.clone();
                    cycle.push(name.to_string());
                    return Err(KernelError::ModuleCycle {
                        cycle: cycle.join(" -> "),
                    });
                }
                None => {}
            }
            let Some(deps) = (self.lookup)(name)? else {
                return Ok(false);
            };
            self.state.insert(name.to_string(), State::Visiting);
            self.stack.push(name.to_string());
            for s in &deps.soft_pre {
                // Optional: a soft dependency that is absent is fine.
                if s != name && !self.stack.contains(s) {
                    self.visit(s)?;
                }
            }
            for d in &deps.depends {
                if !self.visit(d)? {
                    return Err(KernelError::ModuleDependency {
                        module: name.to_string(),
                        dependency: d.clone(),
                        root: self.root.to_path_buf(),
                    });
                }
            }
            self.stack.pop();
            self.state.insert(name.to_string(), State::Done);
            self.order.push(name.to_string());
            Ok(true)
        }
    }
    let mut w = Walk {
        builtin,
        root,
        lookup,
        state: BTreeMap::new(),
        stack: Vec::new(),
        order: Vec::new(),
    };
    let mut missing = Vec::new();
    for name in wanted {
        let n = normalize_module_name(name);
        if !w.visit(&n)? {
            missing.push(n);
        }
    }
    if !missing.is_empty() {
        return Err(KernelError::ModulesMissing {
            root: root.to_path_buf(),
            names: missing.join(", "),
        });
    }
    Ok(w.order)
}

/// The modules to load (in order) for `wanted`, from a `lib/modules/<release>` folder,
/// using each module's `.modinfo` (`depends=`, `softdep=pre:`): Debian ships no
/// `modules.dep`.
pub fn module_load_order(modules_root: &Path, wanted: &[&str]) -> Result<Vec<ModuleFile>> {
    let files = index_modules(modules_root)?;
    let builtin = read_builtin(modules_root);
    let mut lookup = |name: &str| -> Result<Option<ModuleDeps>> {
        let Some(p) = files.get(name) else {
            return Ok(None);
        };
        let bytes = decompress_module(p)?;
        let info = modinfo(&bytes).map_err(|why| KernelError::Module {
            path: p.clone(),
            why,
        })?;
        Ok(Some(deps_from_modinfo(&info)))
    };
    let order = order_modules(wanted, &builtin, modules_root, &mut lookup)?;
    Ok(order
        .into_iter()
        .map(|n| ModuleFile {
            path: files[&n].clone(),
            name: n,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::debian;
    use rstest::rstest;

    fn manifests() -> Vec<KernelManifest> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/kernels");
        load_manifests(&dir).unwrap()
    }

    #[test]
    fn shipped_manifests_load() {
        let ms = manifests();
        let names: Vec<_> = ms.iter().map(|m| m.name.as_str()).collect();
        for n in ["bookworm", "bullseye", "centos7-3.10", "trixie"] {
            assert!(names.contains(&n), "{names:?}");
        }
        for m in ms.iter().filter(|m| m.kind == KernelKind::Debian) {
            m.query().unwrap();
        }
    }

    #[rstest]
    #[case("6.1", "bookworm", None)]
    #[case("bookworm", "bookworm", None)]
    #[case("5.10", "bullseye", None)]
    #[case("6.12", "trixie", None)]
    #[case("trixie", "trixie", None)]
    #[case("3.10", "centos7-3.10", None)]
    #[case("centos7", "centos7-3.10", None)]
    #[case("6.1.158-1", "bookworm", Some("6.1.158-1"))]
    #[case("6.12.57-1", "trixie", Some("6.12.57-1"))]
    #[case("5.10.237-1", "bullseye", Some("5.10.237-1"))]
    #[case("bookworm@6.1.99-1", "bookworm", Some("6.1.99-1"))]
    #[case("3.10.0-957.21.3.el7", "centos7-3.10", Some("3.10.0-957.21.3.el7"))]
    fn aliases(#[case] wanted: &str, #[case] manifest: &str, #[case] version: Option<&str>) {
        let ms = manifests();
        let m = resolve_alias(&ms, wanted).unwrap();
        assert_eq!(m.manifest.name, manifest);
        assert_eq!(m.version.as_deref(), version);
    }

    #[test]
    fn unknown_alias_lists_known() {
        let ms = manifests();
        let e = resolve_alias(&ms, "4.19").unwrap_err().to_string();
        assert!(e.contains("bookworm (6.1, bookworm)"), "{e}");
        assert!(e.contains("trixie (6.12, trixie)"), "{e}");
        assert!(e.contains("centos7-3.10"), "{e}");
        assert!(resolve_alias(&ms, "nope@1").is_err());
    }

    #[test]
    fn ambiguous_version() {
        let mut ms = manifests();
        let mut twin = ms.iter().find(|m| m.name == "bookworm").unwrap().clone();
        twin.name = "bookworm-twin".into();
        twin.aliases.clear();
        ms.push(twin);
        let e = resolve_alias(&ms, "6.1.158-1").unwrap_err();
        assert!(matches!(e, KernelError::AmbiguousVersion { .. }), "{e}");
        assert_eq!(
            resolve_alias(&ms, "bookworm-twin@6.1.158-1")
                .unwrap()
                .manifest
                .name,
            "bookworm-twin"
        );
    }

    #[rstest]
    #[case("6.1", KernelSpec::Alias("6.1".into()))]
    #[case("./vmlinuz", KernelSpec::Path { vmlinuz: "./vmlinuz".into(), modules: None })]
    #[case("/k/vmlinuz:/k/modules", KernelSpec::Path { vmlinuz: "/k/vmlinuz".into(), modules: Some("/k/modules".into()) })]
    #[case("exists", KernelSpec::Path { vmlinuz: "exists".into(), modules: None })]
    #[case("/odd:name", KernelSpec::Path { vmlinuz: "/odd:name".into(), modules: None })]
    fn specs(#[case] s: &str, #[case] want: KernelSpec) {
        let exists = |p: &Path| p == Path::new("exists") || p == Path::new("/odd:name");
        assert_eq!(KernelSpec::parse_with(s, &exists), want);
    }

    const GOOD: &str = r#"
name = "k"
aliases = ["1.0"]
distro = "debian-12"
kind = "debian"
suites = ["bookworm"]
package = '^linux-image-.*$'
version_prefix = "1.0."
"#;

    #[test]
    fn manifest_validation_points_at_lines() {
        parse_manifest(Path::new("k.toml"), GOOD).unwrap();
        let e = parse_manifest(Path::new("k.toml"), &format!("{GOOD}bogus = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("k.toml:9:1:"), "{e}");
        let e = parse_manifest(
            Path::new("k.toml"),
            &GOOD.replace("'^linux-image-.*$'", "'('"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("k.toml:7:1:") && e.contains("regular expression"),
            "{e}"
        );
        let e = parse_manifest(Path::new("other.toml"), GOOD)
            .unwrap_err()
            .to_string();
        assert!(e.contains("must match the file name"), "{e}");
        let e = parse_manifest(
            Path::new("k.toml"),
            &format!("{GOOD}url = \"https://x.example/a.rpm\"\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("k.toml:9:1:") && e.contains("does not apply"),
            "{e}"
        );
        let e = parse_manifest(Path::new("k.toml"), &GOOD.replace("\"debian\"", "\"rpm\""))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("k.toml:5:"), "{e}");
        let e = parse_manifest(Path::new("k.toml"), &format!("{GOOD}pin = \"2.0-1\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("version_prefix"), "{e}");
    }

    #[test]
    fn duplicate_aliases_rejected() {
        let a = parse_manifest(Path::new("k.toml"), GOOD).unwrap();
        let mut b = a.clone();
        b.name = "j".into();
        let e = check_unique(&[a, b]).unwrap_err().to_string();
        assert!(e.contains("`1.0`") || e.contains("`k`"), "{e}");
    }

    fn graph(edges: &[(&str, &[&str], &[&str])]) -> BTreeMap<String, ModuleDeps> {
        edges
            .iter()
            .map(|(n, d, s)| {
                (
                    n.to_string(),
                    ModuleDeps {
                        depends: d.iter().map(|x| x.to_string()).collect(),
                        soft_pre: s.iter().map(|x| x.to_string()).collect(),
                    },
                )
            })
            .collect()
    }

    fn order(
        g: &BTreeMap<String, ModuleDeps>,
        builtin: &[&str],
        wanted: &[&str],
    ) -> Result<Vec<String>> {
        let b: BTreeSet<String> = builtin.iter().map(|s| s.to_string()).collect();
        order_modules(wanted, &b, Path::new("/m"), &mut |n| Ok(g.get(n).cloned()))
    }

    #[test]
    fn module_order_dependencies_first_once() {
        let g = graph(&[
            (
                "virtio_net",
                &["net_failover", "virtio", "virtio_ring"],
                &[],
            ),
            ("net_failover", &["failover"], &[]),
            ("failover", &[], &[]),
            ("virtio", &["virtio_ring"], &[]),
            ("virtio_ring", &[], &[]),
            ("virtio_blk", &["virtio", "virtio_ring"], &[]),
            ("ext4", &["jbd2", "mbcache", "crc16"], &["crc32c"]),
            ("jbd2", &[], &[]),
            ("mbcache", &[], &[]),
            ("crc16", &[], &[]),
        ]);
        let o = order(
            &g,
            &["virtio_pci"],
            &["virtio-net", "virtio_pci", "virtio_blk", "ext4"],
        )
        .unwrap();
        assert_eq!(
            o,
            [
                "failover",
                "net_failover",
                "virtio_ring",
                "virtio",
                "virtio_net",
                "virtio_blk",
                "jbd2",
                "mbcache",
                "crc16",
                "ext4"
            ]
        );
        let pos = |n: &str| o.iter().position(|x| x == n).unwrap();
        assert!(pos("virtio_ring") < pos("virtio"));
    }

    #[test]
    fn module_order_soft_deps_load_first_when_present() {
        let g = graph(&[("ext4", &[], &["crc32c"]), ("crc32c", &[], &[])]);
        assert_eq!(order(&g, &[], &["ext4"]).unwrap(), ["crc32c", "ext4"]);
    }

    #[test]
    fn module_order_errors() {
        let g = graph(&[
            ("a", &["b"], &[]),
            ("b", &["a"], &[]),
            ("c", &["gone"], &[]),
        ]);
        assert!(matches!(
            order(&g, &[], &["a"]),
            Err(KernelError::ModuleCycle { .. })
        ));
        let e = order(&g, &[], &["c"]).unwrap_err();
        assert!(
            matches!(&e, KernelError::ModuleDependency { dependency, .. } if dependency == "gone"),
            "{e}"
        );
        let e = order(&g, &["x"], &["x", "y", "z"]).unwrap_err().to_string();
        assert!(e.contains("y, z"), "{e}");
    }

    #[rstest]
    #[case("virtio-net", "virtio_net")]
    #[case("kernel/fs/ext4/ext4.ko.xz", "ext4")]
    #[case("kernel/drivers/virtio/virtio_pci.ko", "virtio_pci")]
    #[case("x/nf_conntrack.ko.zst", "nf_conntrack")]
    fn module_names(#[case] s: &str, #[case] want: &str) {
        assert_eq!(normalize_module_name(s), want);
    }

    #[test]
    fn modinfo_fields() {
        let f = parse_modinfo(b"license=GPL\0depends=virtio,virtio_ring,net-failover\0softdep=pre: crc32c post: x\0\0vermagic=6.1\0");
        let d = deps_from_modinfo(&f);
        assert_eq!(d.depends, ["virtio", "virtio_ring", "net_failover"]);
        assert_eq!(d.soft_pre, ["crc32c"]);
        assert!(deps_from_modinfo(&parse_modinfo(b"depends=\0"))
            .depends
            .is_empty());
    }

    #[test]
    fn xz_first_stream_ignores_trailer() {
        use std::io::Write;
        let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
        e.write_all(&b"hello kernel ".repeat(1000)).unwrap();
        let mut data = e.finish().unwrap();
        data.extend_from_slice(&[0x12, 0x34, 0x56, 0x78]);
        assert_eq!(
            decompress_xz_first_stream(&data).unwrap(),
            b"hello kernel ".repeat(1000)
        );
        assert!(decompress_xz_first_stream(&data[..data.len() / 2]).is_err());
    }

    /// A fake bzImage: header fields, a payload that is an ELF-looking blob compressed with
    /// `compression`, and a 4-byte trailer.
    fn fake_bzimage(compression: &str, elf: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let payload = match compression {
            "xz" => {
                let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
                e.write_all(elf).unwrap();
                e.finish().unwrap()
            }
            "zst" => zstd::encode_all(elf, 3).unwrap(),
            "gz" => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(elf).unwrap();
                e.finish().unwrap()
            }
            _ => unreachable!(),
        };
        let mut b = vec![0u8; 5 * 512];
        b[0x1f1] = 4;
        b[0x202..0x206].copy_from_slice(b"HdrS");
        b[0x206..0x208].copy_from_slice(&0x20fu16.to_le_bytes());
        b[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        b[0x300..0x300 + 14].copy_from_slice(b"9.9.9-test #1\0");
        let pm = vec![0x90u8; 0x80]; // code before the payload
        b[0x248..0x24c].copy_from_slice(&(pm.len() as u32).to_le_bytes());
        b[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        b.extend_from_slice(&pm);
        b.extend_from_slice(&payload);
        b.extend_from_slice(&(elf.len() as u32).to_le_bytes());
        b
    }

    #[rstest]
    #[case("xz")]
    #[case("zst")]
    #[case("gz")]
    fn bzimage_payload(#[case] c: &str) {
        let elf = [b"\x7fELF".as_slice(), &[2u8; 200]].concat();
        let bz = fake_bzimage(c, &elf);
        assert_eq!(bzimage_release(&bz).as_deref(), Some("9.9.9-test"));
        assert_eq!(extract_vmlinux(&bz).unwrap(), elf);
        // Without the header's payload fields, the magic scan finds it.
        let mut old = bz.clone();
        old[0x206..0x208].copy_from_slice(&0x206u16.to_le_bytes());
        assert_eq!(extract_vmlinux(&old).unwrap(), elf);
        assert!(extract_vmlinux(b"nope").is_err());
    }

    /// An x86-64 ELF executable with one PT_NOTE segment holding `notes`.
    pub(crate) fn tiny_elf(notes: &[(&str, u32, &[u8])]) -> Vec<u8> {
        let mut note = Vec::new();
        for (name, ty, desc) in notes {
            let namez = [name.as_bytes(), b"\0"].concat();
            note.extend_from_slice(&(namez.len() as u32).to_le_bytes());
            note.extend_from_slice(&(desc.len() as u32).to_le_bytes());
            note.extend_from_slice(&ty.to_le_bytes());
            note.extend_from_slice(&namez);
            while note.len() % 4 != 0 {
                note.push(0);
            }
            note.extend_from_slice(desc);
            while note.len() % 4 != 0 {
                note.push(0);
            }
        }
        let mut b = vec![0u8; 64 + 56];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2; // 64-bit
        b[5] = 1; // little endian
        b[6] = 1;
        b[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        b[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        b[20..24].copy_from_slice(&1u32.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        b[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        b[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        b[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        let ph = 64;
        b[ph..ph + 4].copy_from_slice(&4u32.to_le_bytes()); // PT_NOTE
        b[ph + 8..ph + 16].copy_from_slice(&120u64.to_le_bytes()); // p_offset
        b[ph + 32..ph + 40].copy_from_slice(&(note.len() as u64).to_le_bytes()); // p_filesz
        b[ph + 40..ph + 48].copy_from_slice(&(note.len() as u64).to_le_bytes());
        b[ph + 48..ph + 56].copy_from_slice(&4u64.to_le_bytes()); // p_align
        b.extend_from_slice(&note);
        b
    }

    #[test]
    fn pvh_note_detection() {
        let with = tiny_elf(&[
            ("GNU", 3, &[1, 2, 3, 4]),
            ("Xen", XEN_ELFNOTE_PHYS32_ENTRY, &[0, 0, 0, 1]),
        ]);
        assert_eq!(elf_pvh(&with), Ok(true));
        let without = tiny_elf(&[("Xen", 17, &[0, 0, 0, 1])]);
        assert_eq!(elf_pvh(&without), Ok(false));
        let mut arm = with.clone();
        arm[18..20].copy_from_slice(&183u16.to_le_bytes());
        assert!(elf_pvh(&arm).is_err());
    }

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
    /// `cargo test -p repro --lib images::kernel::tests::real_kernels -- --ignored --nocapture`
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
