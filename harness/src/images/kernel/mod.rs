//! Kernels: manifests (`images/kernels/*.toml`), `--kernel` specs, resolution to a cached
//! `vmlinuz` + `vmlinux` + modules tree, and module load order. This file holds the error
//! type and the public names; each job lives in its own submodule:
//!
//! - [`manifest`]: parsing and checking the manifests;
//! - [`spec`]: `--kernel` arguments and aliases;
//! - [`fetch`]: resolution to an unpacked kernel in the cache (Debian packages, RPMs, local
//!   kernels);
//! - [`bzimage`]: the ELF `vmlinux` inside a bzImage, and its PVH note;
//! - [`modules`]: module files, `.modinfo` dependencies and load order, and whether a
//!   module without a file is built in ([`Builtins`]);
//! - [`config`]: the kernel's build configuration: parsing, finding it (a package's
//!   `boot/config-*`, a build tree's `.config`, the `IKCONFIG` blob), tristate lookups.
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

use std::io;
use std::path::{Path, PathBuf};

use super::cache::CacheError;
use super::deb::DebError;
use super::debian::DebianError;
use crate::tomlfile::TomlFileError;

pub mod bzimage;
pub mod config;
pub mod fetch;
pub mod manifest;
pub mod modules;
pub mod spec;

pub use bzimage::{
    bzimage_release, elf_pvh, extract_vmlinux, is_bzimage, XEN_ELFNOTE_PHYS32_ENTRY,
};
pub use config::{find_config, ikconfig, ConfigPlaces, ConfigSource, KernelConfig, Tristate};
pub use fetch::{kernel_files_filter, resolve, ResolvedKernel};
pub use manifest::{check_unique, load_manifests, parse_manifest, KernelKind, KernelManifest};
pub use modules::{
    decompress_module, deps_from_modinfo, index_modules, modinfo, module_load_order,
    normalize_module_name, order_modules, parse_builtin, parse_builtin_modinfo, parse_modinfo,
    plan_modules, read_builtin, Builtins, ModuleDeps, ModuleFile, ModulePlan, Presence,
    SymbolTable, Symbols,
};
pub use spec::{resolve_alias, AliasMatch, KernelSpec};

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
    #[error("kernel package {what}: {why}")]
    Layout { what: String, why: String },
    #[error("kernel package {package}: {why}")]
    Dependency { package: String, why: String },
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

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> KernelError + '_ {
    move |source| KernelError::Io {
        path: path.to_path_buf(),
        source,
    }
}
