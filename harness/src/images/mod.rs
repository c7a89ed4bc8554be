//! Images: everything the harness downloads and unpacks before a guest boots. Only this
//! module touches the network.
//!
//! - [`cache`]: the per-user cache (`$XDG_CACHE_HOME/repro`, else `~/.cache/repro`): a
//!   content-addressed blob store (`blobs/sha256/..`), file locks (`locks/`) so concurrent
//!   `repro` processes building the same thing serialize, atomic writes, and
//!   [`Cache::build_once`], the check-lock-recheck-build step every cached build goes through.
//! - [`compress`]: xz, zstd and gzip, told apart by their magic bytes; the one place that
//!   picks a decoder.
//! - [`debian`]: the Debian archive. [`discover_mirror`] takes the mirror from the caller
//!   (`--mirror` / `debian_mirror` in matrix.toml), then `REPRO_DEBIAN_MIRROR`, then the host's
//!   apt sources; an [`Archive`] reads `Packages` indexes (cached, refreshed after 24 h, stale
//!   copies used with a warning when the mirror cannot be reached) and downloads packages into
//!   the blob store, verified against the index's SHA256. A cached package needs no network.
//! - [`deb`]: unpacks a .deb (ar + tar, xz/zstd/gzip in Rust) or an RPM (cpio) with a path
//!   filter, refusing entries that would land outside the destination.
//! - [`kernel`]: kernel manifests (`images/kernels/*.toml`), `--kernel` specs ([`KernelSpec`]:
//!   an alias, a manifest name, a package version, `NAME@VERSION`, or
//!   `PATH/TO/vmlinuz[:MODULES_DIR]`), [`resolve`] to a [`ResolvedKernel`] (bzImage, the ELF
//!   `vmlinux` unpacked from it once, with its PVH flag, and the modules folder), and
//!   [`module_load_order`] from each module's `.modinfo`.
//! - [`initramfs`]: the guest image built from those pieces (with a host key from
//!   [`crate::keys`]), cached by the hash of its inputs.
//! - [`rootfs`]: root-filesystem guests (a Debian release with systemd, runc and
//!   containerd) built with mmdebstrap into a cached qcow2 disk; booted through the
//!   kernel's initramfs, which switches root to it.
//! - [`kubelet`]: real kubelets: built from a Debian source package with Debian's Go
//!   ([`kubelet::ensure_kubelet`], cached by the hash of the orig tarball, the Go version,
//!   the flags and the commands) or the official binary, and the `pause` and `busybox`
//!   OCI archives a kubelet needs in the guest.
//! - [`inventory`]: what the cache holds (`repro images list`) and [`inventory::gc`]
//!   (`repro images gc`).
//!
//! Typical use:
//!
//! ```no_run
//! use repro::images::{self, Archive, Cache, KernelSpec};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cache = Cache::new(Cache::default_root());
//! let archive = Archive::from_discovery(images::discover_mirror(None), cache);
//! let manifests = images::load_manifests(std::path::Path::new("images/kernels"))?;
//! let kernel = images::resolve(&KernelSpec::parse("6.1"), &manifests, &archive, &|done, total| {
//!     eprintln!("{done}/{total}");
//! })?;
//! let modules = images::module_load_order(
//!     kernel.modules_dir.as_deref().ok_or("a Debian kernel has modules")?,
//!     &["virtio_net", "virtio_blk"],
//! )?;
//! # let _ = modules;
//! # Ok(())
//! # }
//! ```
//!
//! Offline: with `Archive::with_offline(true)` (or when the mirror cannot be reached) a kernel
//! resolved before comes entirely from the cache (`kernels/resolved/<manifest>.json` records
//! the package last chosen); one never fetched fails with a message naming the package and
//! `repro images fetch <kernel>`.

pub mod cache;
pub mod compress;
pub mod datadisk;
pub mod deb;
pub mod debian;
pub mod initramfs;
pub mod inventory;
pub mod kernel;
pub mod kubelet;
pub mod rootfs;

pub use cache::{atomic_write, sha256_file, Cache, CacheError, CacheLock};
pub use deb::{extract, extract_rpm, DebError};
pub use debian::{
    compare_versions, discover_mirror, parse_packages, Archive, DebianError, Mirror, PackageEntry,
    PackageQuery,
};
pub use kernel::{
    decompress_module, load_manifests, module_load_order, resolve, resolve_alias, KernelError,
    KernelManifest, KernelSpec, ModuleFile, ResolvedKernel,
};
