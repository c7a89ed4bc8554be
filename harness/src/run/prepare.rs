//! Getting a cell ready to boot: resolve and fetch the kernel, fetch the
//! userland packages, build (or reuse) the initramfs, choose the
//! accelerator. Glue between `images`, `vm` and the runner's events.

use crate::images::cache::Cache;
use crate::images::debian::{self, Archive, PackageQuery};
use crate::images::initramfs::{self, ModuleBlob, PackageTree, Purpose, RequiredModule, Userland};
use crate::images::kernel::{self, Builtins, KernelSpec, Presence, ResolvedKernel};
use crate::images::rootfs;
use crate::keys;
use crate::model::KernelInfo;
use crate::model::{Event, EventSink, Notice};
use crate::vm::{self, accel, Accel, AccelChoice, Machine, VmSpec};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A kernel with its guest image, ready to boot.
#[derive(Debug, Clone)]
pub struct PreparedKernel {
    pub info: KernelInfo,
    pub machine: Machine,
    /// `vmlinux` (microvm, PVH) or the bzImage (q35).
    pub boot_kernel: PathBuf,
    pub image: PathBuf,
    pub image_sha256: String,
    pub host_key_blob: Vec<u8>,
    /// Why this kernel cannot boot a root-filesystem guest (a required rootfs driver is
    /// known missing), if it cannot; initramfs guests are not concerned.
    pub rootfs_unusable: Option<String>,
    /// Seconds spent getting here (0 when everything was cached).
    pub image_secs: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Kernel(#[from] kernel::KernelError),
    #[error(transparent)]
    Debian(#[from] debian::DebianError),
    #[error(transparent)]
    Deb(#[from] crate::images::deb::DebError),
    #[error(transparent)]
    Cache(#[from] crate::images::cache::CacheError),
    #[error(transparent)]
    Initramfs(#[from] initramfs::InitramfsError),
    #[error(transparent)]
    Toml(#[from] crate::tomlfile::TomlFileError),
    #[error(transparent)]
    Rootfs(#[from] rootfs::RootfsError),
    #[error("cannot write the guest image into {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make the guest's host key: {0}")]
    Key(#[from] crate::keys::KeyError),
    #[error(
        "{path} holds no valid public key; remove that folder's `.complete` marker to rebuild it"
    )]
    BadHostKey { path: PathBuf },
    #[error("the image of rootfs {name} records no valid host key; rebuild it with `repro images build {name} --rebuild`")]
    RootfsHostKey { name: String },
    #[error("kernel {kernel} has no {module}, which {needed_for} needs: {why} (modules folder: {dir}); use a kernel built with it")]
    MissingModule {
        kernel: String,
        module: String,
        needed_for: String,
        why: String,
        dir: String,
    },
    #[error("userland package name `{0}` is not a valid pattern: {1}")]
    PackageName(String, regex::Error),
}

fn kernels_dir(root: &Path) -> PathBuf {
    root.join("images/kernels")
}

/// Checks a `--kernel` argument without touching the network.
pub fn check_kernel_arg(root: &Path, arg: &str) -> Result<(), PrepareError> {
    let manifests = kernel::load_manifests(&kernels_dir(root))?;
    let spec = KernelSpec::parse(arg);
    if let KernelSpec::Alias(a) = &spec {
        kernel::resolve_alias(&manifests, a)?;
    }
    Ok(())
}

/// The known kernels, for `repro list` and error messages.
pub fn kernels_text(root: &Path) -> Result<String, PrepareError> {
    let manifests = kernel::load_manifests(&kernels_dir(root))?;
    let mut s = String::new();
    for m in &manifests {
        s.push_str(&format!("  {}\n", m.label()));
    }
    Ok(s)
}

fn archive(cache: &Cache, mirror: Option<&str>) -> Archive {
    Archive::from_discovery(debian::discover_mirror(mirror), cache.clone())
}

/// Forwards download progress as events and remembers whether any
/// download happened (a cached file reports nothing).
struct Progress<'a> {
    sink: &'a dyn EventSink,
    what: String,
    seen: std::cell::Cell<bool>,
}

impl<'a> Progress<'a> {
    fn new(sink: &'a dyn EventSink, what: String) -> Self {
        Progress {
            sink,
            what,
            seen: std::cell::Cell::new(false),
        }
    }

    fn report(&self, done: u64, total: u64) {
        self.seen.set(true);
        self.sink.event(&Event::Download {
            what: self.what.clone(),
            done,
            total,
        });
    }

    /// Emits `DownloadFinished` if anything was downloaded.
    fn finish(self) {
        if self.seen.get() {
            self.sink
                .event(&Event::DownloadFinished { what: self.what });
        }
    }
}

/// Resolves and caches a kernel (`repro images fetch`).
pub fn fetch_kernel(
    root: &Path,
    cache: &Cache,
    mirror: Option<&str>,
    arg: &str,
    sink: &dyn EventSink,
) -> Result<ResolvedKernel, PrepareError> {
    resolve_kernel(root, &archive(cache, mirror), arg, sink)
}

/// One line about a fetched kernel: package, version, release, vmlinuz.
pub fn describe_kernel(k: &ResolvedKernel) -> String {
    format!(
        "{} {} ({}), vmlinuz {}",
        k.package.as_deref().unwrap_or("-"),
        k.version.as_deref().unwrap_or("-"),
        k.release,
        k.vmlinuz.display()
    )
}

/// Resolves `arg` through `archive`, reporting download progress.
fn resolve_kernel(
    root: &Path,
    archive: &Archive,
    arg: &str,
    sink: &dyn EventSink,
) -> Result<ResolvedKernel, PrepareError> {
    let manifests = kernel::load_manifests(&kernels_dir(root))?;
    let p = Progress::new(sink, format!("kernel {arg}"));
    let k = kernel::resolve(&KernelSpec::parse(arg), &manifests, archive, &|d, t| {
        p.report(d, t)
    })?;
    p.finish();
    Ok(k)
}

/// Kernel + userland + image for `arg`.
pub fn prepare_kernel(
    root: &Path,
    cache: &Cache,
    mirror: Option<&str>,
    arg: &str,
    sink: &dyn EventSink,
) -> Result<PreparedKernel, PrepareError> {
    let start = Instant::now();
    let archive = archive(cache, mirror);
    let k = resolve_kernel(root, &archive, arg, sink)?;
    let userland = Userland::load(&root.join("images/userland.toml"))?;
    let packages = fetch_userland(&archive, cache, &userland, sink)?;

    let g = guest_modules(
        &kernel::ConfigPlaces {
            packaged: k.config.as_deref(),
            vmlinuz: Some(&k.vmlinuz),
            release: Some(&k.release),
            vmlinux: k.vmlinux.as_deref(),
            modules_dir: k.modules_dir.as_deref(),
        },
        &userland,
        arg,
    )?;
    if !g.unavailable.is_empty() {
        sink.event(&Event::Notice(Notice::KernelModules {
            kernel: arg.to_string(),
            text: g.unavailable.join("; "),
        }));
    }
    let kit = crate::kit::KIT_BINARY;
    let inputs = initramfs::Inputs {
        userland: &userland,
        packages: &packages,
        kernel_sha256: &k.hash,
        modules: &g.base,
        rootfs_modules: &g.rootfs,
        required: &g.required,
        kit,
    };
    let img = initramfs::ensure(cache, &inputs)?;
    let pubfile = img.host_key_pub;
    let public = std::fs::read_to_string(&pubfile).map_err(|source| PrepareError::Io {
        path: pubfile.clone(),
        source,
    })?;
    let host_key_blob =
        keys::blob_from_public_line(&public).ok_or_else(|| PrepareError::BadHostKey {
            path: pubfile.clone(),
        })?;

    let (machine, boot_kernel) = match (&k.vmlinux, k.pvh) {
        (Some(v), true) => (Machine::Microvm, v.clone()),
        _ => (Machine::Q35, k.vmlinuz.clone()),
    };
    Ok(PreparedKernel {
        info: KernelInfo {
            alias: arg.to_string(),
            package: k.package.clone(),
            packages: if k.packages.len() > 1 {
                k.packages.clone()
            } else {
                Vec::new()
            },
            version: k.version.clone(),
            release: k.release.clone(),
            sha256: k.hash.clone(),
        },
        machine,
        boot_kernel,
        image: img.image,
        image_sha256: img.hash,
        host_key_blob,
        rootfs_unusable: g.rootfs_unusable,
        image_secs: start.elapsed().as_secs_f64(),
    })
}

/// The kernel modules of a guest image.
#[derive(Debug)]
struct GuestModules {
    /// Loaded by every guest, in order.
    base: Vec<ModuleBlob>,
    /// Loaded by root-filesystem guests after `base`, in order.
    rootfs: Vec<ModuleBlob>,
    /// The required drivers and what is known of them (`/etc/repro/required`).
    required: Vec<RequiredModule>,
    /// Why root-filesystem guests cannot boot on this kernel, if they cannot.
    rootfs_unusable: Option<String>,
    /// Wanted modules that are not there or not known to be, one phrase each.
    unavailable: Vec<String>,
}

/// The modules for the guests of the kernel `places` describes (its modules folder among
/// them). Whether a wanted module without a file is built in comes from `modules.builtin`,
/// else the kernel's config (`kernel::Builtins`); a required one known missing fails here
/// for the network (every guest needs it) and marks the kernel unusable for
/// root-filesystem guests for the root disk (initramfs guests never need it); one nobody
/// can tell about is left to the guest's `/init`, which names it if it fails.
fn guest_modules(
    places: &kernel::ConfigPlaces,
    userland: &Userland,
    arg: &str,
) -> Result<GuestModules, PrepareError> {
    let dir = places.modules_dir;
    let builtins = Builtins::for_kernel(dir, || kernel::find_config(places), &userland.kconfig)?;
    let dir_text = dir.map_or_else(|| "none".to_string(), |d| d.display().to_string());
    let mut g = GuestModules {
        base: Vec::new(),
        rootfs: Vec::new(),
        required: Vec::new(),
        rootfs_unusable: None,
        unavailable: Vec::new(),
    };
    for (purpose, wanted, required) in [
        (Purpose::Net, &userland.modules, &userland.required_modules),
        (
            Purpose::Root,
            &userland.rootfs_modules,
            &userland.required_rootfs_modules,
        ),
    ] {
        let mut names: Vec<&str> = wanted.iter().map(String::as_str).collect();
        for r in required {
            if !names.contains(&r.as_str()) {
                names.push(r);
            }
        }
        let plan = kernel::plan_modules(dir, &names, &builtins)?;
        let mut blobs = Vec::new();
        for m in plan.load {
            if g.base.iter().any(|b| b.name == m.name) {
                continue; // already loaded by every guest
            }
            blobs.push(ModuleBlob {
                data: kernel::decompress_module(&m.path)?,
                name: m.name,
            });
        }
        for (name, presence) in plan.wanted {
            let is_required = required
                .iter()
                .any(|r| kernel::normalize_module_name(r) == name);
            if is_required {
                let needed_for = match purpose {
                    Purpose::Net => "every guest",
                    Purpose::Root => "root-filesystem guests",
                };
                match &presence {
                    Presence::Missing(why) => g
                        .unavailable
                        .push(format!("{name} (needed by {needed_for}): {why}")),
                    Presence::Unknown(why) => g.unavailable.push(format!(
                        "{name} (needed by {needed_for}): no module file ({why}); the guest checks at boot"
                    )),
                    Presence::File | Presence::BuiltIn(_) => {}
                }
                if let Presence::Missing(why) = &presence {
                    match purpose {
                        Purpose::Net => {
                            return Err(PrepareError::MissingModule {
                                kernel: arg.to_string(),
                                module: name,
                                needed_for: "the guest network".into(),
                                why: why.clone(),
                                dir: dir_text,
                            })
                        }
                        Purpose::Root => {
                            g.rootfs_unusable.get_or_insert_with(|| {
                                format!(
                                    "kernel {arg} cannot boot a root-filesystem guest: it has no {name} ({why}; modules folder: {dir_text})"
                                )
                            });
                        }
                    }
                }
                g.required.push(RequiredModule {
                    purpose,
                    name,
                    presence,
                });
            } else {
                match &presence {
                    Presence::Missing(why) => g.unavailable.push(format!("{name}: {why}")),
                    Presence::Unknown(why) => g
                        .unavailable
                        .push(format!("{name}: no module file ({why})")),
                    Presence::File | Presence::BuiltIn(_) => {}
                }
            }
        }
        match purpose {
            Purpose::Net => g.base = blobs,
            Purpose::Root => g.rootfs = blobs,
        }
    }
    Ok(g)
}

/// A root-filesystem image, ready to boot under any kernel.
#[derive(Debug, Clone)]
pub struct PreparedRootfs {
    pub name: String,
    pub image: PathBuf,
    pub meta: rootfs::ImageMeta,
    pub manifest: rootfs::Manifest,
    /// sshd's host key blob, pinned for every guest of this image.
    pub host_key_blob: Vec<u8>,
    /// Seconds spent getting here (about 0 when cached).
    pub image_secs: f64,
}

/// `images/rootfs`.
pub fn rootfs_dir(root: &Path) -> PathBuf {
    root.join("images/rootfs")
}

/// `names`, or every root filesystem manifest when empty.
pub fn rootfs_names(root: &Path, names: Vec<String>) -> Result<Vec<String>, PrepareError> {
    if !names.is_empty() {
        return Ok(names);
    }
    Ok(rootfs::load_all(&rootfs_dir(root))?
        .into_iter()
        .map(|n| n.name)
        .collect())
}

/// The input hashes of today's root filesystem manifests: cached images
/// with other hashes are stale.
pub fn current_rootfs_hashes(root: &Path) -> Result<Vec<String>, PrepareError> {
    Ok(rootfs::load_all(&rootfs_dir(root))?
        .iter()
        .map(rootfs::input_hash)
        .collect())
}

impl PreparedRootfs {
    /// What `repro images build` prints about an image.
    pub fn describe(&self) -> String {
        let versions: Vec<String> = self
            .meta
            .versions
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        format!(
            "{}: {} ({}, built in {:.0} s), sha256 {}\n  {}",
            self.name,
            self.image.display(),
            crate::images::inventory::human(self.meta.bytes),
            self.meta.build_secs,
            self.meta.sha256,
            versions.join(", ")
        )
    }
}

/// Checks a `--rootfs` argument without building anything.
pub fn check_rootfs_arg(root: &Path, name: &str) -> Result<(), PrepareError> {
    rootfs::find(&rootfs_dir(root), name)?;
    Ok(())
}

/// The root filesystem `name`, built first if it is not cached (or
/// always with `rebuild`).
pub fn prepare_rootfs(
    root: &Path,
    cache: &Cache,
    mirror: Option<&str>,
    name: &str,
    rebuild: bool,
    sink: &dyn EventSink,
) -> Result<PreparedRootfs, PrepareError> {
    let start = Instant::now();
    let named = rootfs::find(&rootfs_dir(root), name)?;
    let image = match rootfs::cached(cache, &named).filter(|_| !rebuild) {
        Some(img) => img,
        None => {
            let mirror = debian::discover_mirror(mirror)?;
            let notice = |n: Notice| sink.event(&Event::Notice(n));
            notice(Notice::RootfsBuilding {
                name: name.to_string(),
            });
            let say = |step: &str| {
                notice(Notice::RootfsStep {
                    name: name.to_string(),
                    step: step.to_string(),
                })
            };
            let img = rootfs::ensure(
                cache,
                &named,
                &mirror,
                &vm::qemu_img_binary(),
                rebuild,
                &say,
            )?;
            if img.built {
                notice(Notice::RootfsBuilt {
                    name: name.to_string(),
                    secs: img.meta.build_secs,
                    bytes: img.meta.bytes,
                });
            }
            img
        }
    };
    let host_key_blob = keys::blob_from_public_line(&image.meta.host_key).ok_or_else(|| {
        PrepareError::RootfsHostKey {
            name: name.to_string(),
        }
    })?;
    Ok(PreparedRootfs {
        name: name.to_string(),
        image: image.path,
        meta: image.meta,
        manifest: named.manifest,
        host_key_blob,
        image_secs: start.elapsed().as_secs_f64(),
    })
}

/// Downloads and unpacks the userland packages (once; cached by sha256).
pub fn fetch_userland(
    archive: &Archive,
    cache: &Cache,
    userland: &Userland,
    sink: &dyn EventSink,
) -> Result<Vec<PackageTree>, PrepareError> {
    let mut out = Vec::new();
    for name in &userland.packages {
        let q = PackageQuery {
            suites: vec![userland.suite.clone()],
            component: userland.component.clone(),
            name: regex::Regex::new(&format!("^{}$", regex::escape(name)))
                .map_err(|e| PrepareError::PackageName(name.clone(), e))?,
            version_prefix: None,
        };
        let entry = archive.newest(&q)?;
        let p = Progress::new(sink, format!("{} {}", entry.name, entry.version));
        let deb = archive.download(&entry, &|d, t| p.report(d, t))?;
        p.finish();
        let root = initramfs::unpack_package(cache, &deb, &entry.sha256)?;
        out.push(PackageTree {
            name: entry.name.clone(),
            version: entry.version.clone(),
            sha256: entry.sha256.clone(),
            root,
        });
    }
    Ok(out)
}

/// Decides KVM or TCG once per run; `auto` probes KVM with a real boot of
/// `p` and remembers the answer for this host boot and QEMU version.
pub fn choose_accel(
    cache: &Cache,
    qemu: &Path,
    choice: AccelChoice,
    p: &PreparedKernel,
) -> (Accel, String) {
    let record_path = cache.root().join("accel-probe.json");
    let cached: Option<accel::ProbeRecord> = std::fs::read(&record_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let key = accel::probe_key(&vm::qemu_version(qemu));
    let usable = accel::kvm_device_usable(Path::new("/dev/kvm"));
    let (a, rec, why) = accel::decide(choice, usable, cached.as_ref(), &key, || {
        let tmp = std::env::temp_dir().join(format!("repro-kvm-probe-{}.log", std::process::id()));
        let spec = VmSpec {
            qemu: qemu.to_path_buf(),
            accel: Accel::Kvm,
            machine: p.machine,
            kernel: p.boot_kernel.clone(),
            initrd: p.image.clone(),
            append: vec![],
            memory_mib: 512,
            vcpus: 1,
            ssh_port: vm::free_port().unwrap_or(0),
            console_log: tmp.clone(),
            console_cap: crate::caplog::DEFAULT_LOG_CAP,
            tsc_khz: None,
            name: "repro-kvm-probe".into(),
            disk: None,
            data_disks: Vec::new(),
        };
        let r = accel::probe_boot(spec, Duration::from_secs(20));
        let _ = std::fs::remove_file(tmp);
        r
    });
    if let Some(rec) = rec {
        if let Ok(json) = serde_json::to_vec(&rec) {
            let _ = crate::images::cache::atomic_write(&record_path, &json);
        }
    }
    (a, why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::kernel::modules::tests::module_elf;

    fn userland() -> Userland {
        Userland::parse(
            Path::new("userland.toml"),
            r#"
suite = "bookworm"
component = "main"
packages = []
modules = ["virtio_pci", "virtio_net", "sch_netem"]
required_modules = ["virtio_net"]
rootfs_modules = ["virtio_blk", "ext4"]
required_rootfs_modules = ["virtio_blk", "ext4"]
[kconfig]
virtio_pci = "CONFIG_VIRTIO_PCI"
virtio_net = "CONFIG_VIRTIO_NET"
sch_netem = "CONFIG_NET_SCH_NETEM"
virtio_blk = "CONFIG_VIRTIO_BLK"
ext4 = "CONFIG_EXT4_FS"
[files]
"#,
        )
        .unwrap()
    }

    /// A modules folder with these module files (each needing `virtio_ring`, also there).
    fn modules(root: &Path, names: &[&str]) -> PathBuf {
        let d = root.join("lib/modules/6.1.0-test");
        std::fs::create_dir_all(d.join("kernel")).unwrap();
        std::fs::write(d.join("kernel/virtio_ring.ko"), module_elf(b"depends=\0")).unwrap();
        for n in names {
            std::fs::write(
                d.join(format!("kernel/{n}.ko")),
                module_elf(b"depends=virtio_ring\0"),
            )
            .unwrap();
        }
        d
    }

    fn lines(g: &GuestModules) -> Vec<String> {
        g.required.iter().map(RequiredModule::line).collect()
    }

    #[test]
    fn each_guest_shape_requires_only_its_own_drivers() {
        let tmp = tempfile::tempdir().unwrap();
        let ul = userland();
        let d = modules(tmp.path(), &["virtio_net", "virtio_blk"]);
        std::fs::write(
            d.join("modules.builtin"),
            "kernel/drivers/virtio/virtio_pci.ko\n",
        )
        .unwrap();
        let places = kernel::ConfigPlaces {
            modules_dir: Some(&d),
            ..Default::default()
        };
        // No ext4 anywhere: initramfs guests are fine, rootfs guests cannot boot.
        let g = guest_modules(&places, &ul, "k").unwrap();
        let base: Vec<&str> = g.base.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(base, ["virtio_ring", "virtio_net"]);
        let rootfs: Vec<&str> = g.rootfs.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(rootfs, ["virtio_blk"], "virtio_ring is loaded already");
        let why = g.rootfs_unusable.as_deref().unwrap();
        assert!(
            why.starts_with("kernel k cannot boot a root-filesystem guest: it has no ext4 (no module file, and not listed in modules.builtin"),
            "{why}"
        );
        assert_eq!(
            lines(&g),
            [
                "net virtio_net module -",
                "root virtio_blk module -",
                "root ext4 missing no module file, and not listed in modules.builtin"
            ]
        );
        assert_eq!(
            g.unavailable,
            [
                "sch_netem: no module file, and not listed in modules.builtin",
                "ext4 (needed by root-filesystem guests): no module file, and not listed in modules.builtin"
            ]
        );

        // The network driver known missing: refused for every guest.
        std::fs::remove_file(d.join("kernel/virtio_net.ko")).unwrap();
        let e = guest_modules(&places, &ul, "k").unwrap_err().to_string();
        assert!(
            e.starts_with("kernel k has no virtio_net, which the guest network needs: no module file, and not listed in modules.builtin"),
            "{e}"
        );

        // Nothing tells (no modules.builtin, no config): the guest finds out.
        std::fs::remove_file(d.join("modules.builtin")).unwrap();
        let g = guest_modules(&places, &ul, "k").unwrap();
        assert!(g.rootfs_unusable.is_none());
        assert_eq!(
            lines(&g)[0],
            "net virtio_net unknown no modules.builtin and no kernel config to tell whether it is built in"
        );
        assert_eq!(g.unavailable.len(), 4, "{:?}", g.unavailable);
        assert!(
            g.unavailable.contains(&"virtio_net (needed by every guest): no module file (no modules.builtin and no kernel config to tell whether it is built in); the guest checks at boot".to_string()),
            "{:?}",
            g.unavailable
        );

        // The kernel's config beside it answers instead.
        let vmlinuz = tmp.path().join("vmlinuz-6.1.0-test");
        std::fs::write(&vmlinuz, b"bz").unwrap();
        std::fs::write(
            tmp.path().join("config-6.1.0-test"),
            crate::images::kernel::config::tests::DEBIAN_61,
        )
        .unwrap();
        let places = kernel::ConfigPlaces {
            vmlinuz: Some(&vmlinuz),
            release: Some("6.1.0-test"),
            modules_dir: Some(&d),
            ..Default::default()
        };
        let e = guest_modules(&places, &ul, "k").unwrap_err().to_string();
        assert!(
            e.contains(
                "CONFIG_VIRTIO_NET=m in config-6.1.0-test, but there is no virtio_net module file"
            ),
            "{e}"
        );
        let mut ul_builtin_net = ul.clone();
        // (as if CONFIG_UNIX, =y there, built it)
        ul_builtin_net.kconfig.insert(
            "virtio_net".into(),
            crate::images::kernel::Symbols::One("CONFIG_UNIX".into()),
        );
        let g = guest_modules(&places, &ul_builtin_net, "k").unwrap();
        assert_eq!(
            lines(&g)[0],
            "net virtio_net builtin CONFIG_UNIX=y in config-6.1.0-test"
        );
        assert!(g
            .rootfs_unusable
            .as_deref()
            .unwrap()
            .contains("CONFIG_EXT4_FS=m"));
    }
}
