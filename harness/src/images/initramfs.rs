//! The initramfs guest: busybox, dropbear with exactly the shared libraries
//! it needs (ELF `DT_NEEDED`), tini, `repro-kit`, the kernel modules in load
//! order, what the harness knew of the drivers each guest shape requires
//! (`/etc/repro/required`, which `/init` names when it fails), a host key made
//! at build time, and `/init`. Written as a newc cpio, cached by the hash of
//! its inputs.
//!
//! `assemble` is pure apart from reading the extracted package trees;
//! fetching the packages and the kernel is the caller's job (see
//! `run::prepare`). `unpack_package` and `ensure` keep the unpacked
//! packages and the built image in the cache.

use super::cache::{self, Cache, CacheError};
use super::deb::DebError;
use super::kernel::{Presence, SymbolTable};
use crate::keys::{KeyError, KeyPair};
use crate::tomlfile::{self, TomlFileError};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

/// Bump when the image layout changes, to invalidate cached images.
pub const BUILDER_VERSION: &str = "initramfs-v1";

/// The `/init` script.
pub const INIT_SCRIPT: &str = include_str!("../../../images/initramfs/init.sh");

/// `images/userland.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Userland {
    pub suite: String,
    pub component: String,
    pub packages: Vec<String>,
    #[serde(default)]
    pub modules: Vec<String>,
    #[serde(default)]
    pub required_modules: Vec<String>,
    /// Loaded by `/init` only for a root-filesystem guest.
    #[serde(default)]
    pub rootfs_modules: Vec<String>,
    #[serde(default)]
    pub required_rootfs_modules: Vec<String>,
    /// Module → the Kconfig symbol(s) that build it, to read a kernel's config when it
    /// ships no `modules.builtin`.
    #[serde(default)]
    pub kconfig: SymbolTable,
    pub files: BTreeMap<String, String>,
}

impl Userland {
    pub fn load(path: &Path) -> Result<Userland, TomlFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TomlFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Userland::parse(path, &text)
    }

    /// Parses `text` (the content of `path`) and checks that every module has its Kconfig
    /// symbol in `[kconfig]`.
    pub fn parse(path: &Path, text: &str) -> Result<Userland, TomlFileError> {
        let u: Userland = tomlfile::parse(path, text)?;
        for m in u
            .modules
            .iter()
            .chain(&u.required_modules)
            .chain(&u.rootfs_modules)
            .chain(&u.required_rootfs_modules)
        {
            if !u.kconfig.contains_key(m) {
                let (line, column) = text
                    .find(&format!("\"{m}\""))
                    .map_or((1, 1), |at| tomlfile::line_col(text, at));
                return Err(TomlFileError::Parse {
                    path: path.to_path_buf(),
                    line,
                    column,
                    message: format!(
                        "module {m} has no Kconfig symbol in [kconfig]; add `{m} = \"CONFIG_...\"` (the obj-$(CONFIG_...) line that builds it in its Makefile)"
                    ),
                });
            }
        }
        Ok(u)
    }
}

/// What a required driver is for: `/init`'s failure line names the purpose's drivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The guest network (every guest).
    Net,
    /// The root disk and its filesystem (root-filesystem guests).
    Root,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Net => "net",
            Purpose::Root => "root",
        }
    }
}

/// A driver a guest shape cannot do without, and what the harness knew of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredModule {
    pub purpose: Purpose,
    pub name: String,
    pub presence: Presence,
}

impl RequiredModule {
    /// Its line in `/etc/repro/required`: `PURPOSE MODULE STATE DETAIL`.
    pub fn line(&self) -> String {
        let detail = self.presence.detail().replace(['\n', '\r'], " ");
        format!(
            "{} {} {} {}",
            self.purpose.as_str(),
            self.name,
            self.presence.state(),
            if detail.is_empty() { "-" } else { &detail }
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    #[error("userland file `{guest}` names `{spec}`; expected `package:path`")]
    BadFileSpec { guest: String, spec: String },
    #[error(
        "userland file `{guest}`: package `{package}` is not in images/userland.toml `packages`"
    )]
    UnknownPackage { guest: String, package: String },
    #[error("`{path}` not found in package {package} ({tree})")]
    MissingFile {
        package: String,
        path: String,
        tree: PathBuf,
    },
    #[error("{binary} needs shared library {soname}, which none of the userland packages ships; add its package to images/userland.toml")]
    MissingLibrary { binary: String, soname: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a readable ELF file: {message}")]
    Elf { path: PathBuf, message: String },
    #[error("writing the cpio archive failed: {0}")]
    Write(std::io::Error),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Deb(#[from] DebError),
}

/// One extracted userland package.
#[derive(Debug, Clone)]
pub struct PackageTree {
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub root: PathBuf,
}

/// A kernel module ready for the image (already decompressed).
#[derive(Debug, Clone)]
pub struct ModuleBlob {
    pub name: String,
    pub data: Vec<u8>,
}

/// Everything an image is made of.
pub struct Inputs<'a> {
    pub userland: &'a Userland,
    pub packages: &'a [PackageTree],
    pub kernel_sha256: &'a str,
    pub modules: &'a [ModuleBlob],
    /// Extra modules for root-filesystem guests, in load order, without
    /// those already in `modules`.
    pub rootfs_modules: &'a [ModuleBlob],
    /// The drivers each guest shape requires (`/etc/repro/required`).
    pub required: &'a [RequiredModule],
    pub kit: &'a [u8],
}

/// A userland package's tree: the .deb `deb`, whose sha256 is `sha256`, unpacked once
/// into `userland/<sha256>/` of the cache (complete when `.repro-complete` is there).
pub fn unpack_package(cache: &Cache, deb: &Path, sha256: &str) -> Result<PathBuf, InitramfsError> {
    let sha256 = cache::check_digest(sha256)?;
    let root = cache.dir("userland")?.join(&sha256);
    let lock = format!("userland-{sha256}");
    cache.build_dir_once(&lock, &root, ".repro-complete", |root| {
        super::deb::extract(deb, root, &|_| true)?;
        Ok::<_, InitramfsError>(())
    })?;
    Ok(root)
}

/// A built initramfs in the cache: `initramfs/<input hash>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedImage {
    /// The input hash naming it (`input_hash`).
    pub hash: String,
    pub dir: PathBuf,
    /// The newc cpio archive.
    pub image: PathBuf,
    /// `ssh-ed25519 AAAA...` of the host key made for this image.
    pub host_key_pub: PathBuf,
}

/// The image for `inputs`: from the cache, or built first (once, under the cache lock,
/// with a fresh host key; `.complete` written last). Marks it used for `repro images gc`.
pub fn ensure(cache: &Cache, inputs: &Inputs) -> Result<CachedImage, InitramfsError> {
    let hash = input_hash(inputs);
    let dir = cache.dir("initramfs")?.join(&hash);
    let image = dir.join("initramfs.cpio");
    let host_key_pub = dir.join("hostkey.pub");
    cache.build_dir_once(&format!("initramfs-{hash}"), &dir, ".complete", |_| {
        let host_key = KeyPair::generate()?;
        let tree = assemble(inputs, &host_key)?;
        let mut buf = Vec::new();
        write_cpio(&tree, &mut buf)?;
        cache::atomic_write(&image, &buf)?;
        cache::atomic_write(&host_key_pub, host_key.public_line().as_bytes())?;
        Ok::<_, InitramfsError>(())
    })?;
    super::inventory::touch_used(&dir);
    Ok(CachedImage {
        hash,
        dir,
        image,
        host_key_pub,
    })
}

/// The content hash that names a cached image.
pub fn input_hash(inputs: &Inputs) -> String {
    let mut h = Sha256::new();
    h.update(BUILDER_VERSION);
    h.update(INIT_SCRIPT);
    h.update(format!("{:?}", inputs.userland));
    for p in inputs.packages {
        h.update(format!("{} {} {}\n", p.name, p.version, p.sha256));
    }
    h.update(inputs.kernel_sha256);
    for m in inputs.modules {
        h.update(&m.name);
        h.update(Sha256::digest(&m.data));
    }
    h.update("rootfs-modules");
    for m in inputs.rootfs_modules {
        h.update(&m.name);
        h.update(Sha256::digest(&m.data));
    }
    h.update("required");
    h.update(required_text(inputs.required));
    h.update(Sha256::digest(inputs.kit));
    hex::encode(h.finalize())
}

/// An entry of the archive.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Dir(u32),
    File(Vec<u8>, u32),
    Symlink(String),
    CharDev(u32, u32, u32),
}

/// The archive's contents, by absolute guest path.
pub type Tree = BTreeMap<String, Node>;

/// Builds the file tree of the image. `host_key` becomes dropbear's key.
pub fn assemble(inputs: &Inputs, host_key: &KeyPair) -> Result<Tree, InitramfsError> {
    let mut t: Tree = BTreeMap::new();
    for d in [
        "/bin",
        "/sbin",
        "/usr",
        "/usr/bin",
        "/usr/sbin",
        "/usr/local",
        "/usr/local/bin",
        "/lib",
        "/lib64",
        "/lib/x86_64-linux-gnu",
        "/lib/modules",
        "/etc",
        "/etc/dropbear",
        "/etc/repro",
        "/proc",
        "/sys",
        "/dev",
        "/tmp",
        "/run",
        "/var",
        "/var/log",
        "/mnt",
        "/repro",
    ] {
        t.insert(d.into(), Node::Dir(0o755));
    }
    t.insert("/root".into(), Node::Dir(0o700));
    t.insert("/tmp".into(), Node::Dir(0o1777));
    t.insert("/dev/console".into(), Node::CharDev(0o600, 5, 1));
    t.insert("/dev/null".into(), Node::CharDev(0o666, 1, 3));
    t.insert("/bin/sh".into(), Node::Symlink("busybox".into()));
    t.insert(
        "/init".into(),
        Node::File(INIT_SCRIPT.as_bytes().to_vec(), 0o755),
    );
    t.insert(
        "/etc/passwd".into(),
        Node::File(
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
                .to_vec(),
            0o644,
        ),
    );
    t.insert(
        "/etc/group".into(),
        Node::File(b"root:x:0:\nnogroup:x:65534:\n".to_vec(), 0o644),
    );
    t.insert(
        "/etc/shells".into(),
        Node::File(b"/bin/sh\n".to_vec(), 0o644),
    );
    t.insert(
        "/etc/dropbear/dropbear_ed25519_host_key".into(),
        Node::File(host_key.dropbear_private()?, 0o600),
    );
    t.insert(
        "/usr/bin/repro-kit".into(),
        Node::File(inputs.kit.to_vec(), 0o755),
    );

    // Userland files and, transitively, their shared libraries.
    let by_name: BTreeMap<&str, &PackageTree> = inputs
        .packages
        .iter()
        .map(|p| (p.name.as_str(), p))
        .collect();
    let roots: Vec<&Path> = inputs.packages.iter().map(|p| p.root.as_path()).collect();
    let mut elf_queue: Vec<(String, Vec<u8>)> = Vec::new();
    for (guest, spec) in &inputs.userland.files {
        let (pkg, path) = spec
            .split_once(':')
            .ok_or_else(|| InitramfsError::BadFileSpec {
                guest: guest.clone(),
                spec: spec.clone(),
            })?;
        let tree = by_name
            .get(pkg)
            .ok_or_else(|| InitramfsError::UnknownPackage {
                guest: guest.clone(),
                package: pkg.into(),
            })?;
        let real =
            resolve_in_tree(&tree.root, path).ok_or_else(|| InitramfsError::MissingFile {
                package: pkg.into(),
                path: path.into(),
                tree: tree.root.clone(),
            })?;
        let data = std::fs::read(&real).map_err(|source| InitramfsError::Read {
            path: real.clone(),
            source,
        })?;
        elf_queue.push((guest.clone(), data.clone()));
        t.insert(guest.clone(), Node::File(data, 0o755));
    }
    let mut seen: BTreeSet<String> = BTreeSet::new();
    while let Some((name, data)) = elf_queue.pop() {
        let Some((interp, needed)) = elf_deps(&data).map_err(|message| InitramfsError::Elf {
            path: PathBuf::from(&name),
            message,
        })?
        else {
            continue;
        };
        let mut wanted: Vec<(String, String)> = needed
            .into_iter()
            .map(|so| (format!("/lib/x86_64-linux-gnu/{so}"), so))
            .collect();
        if let Some(interp) = interp {
            let base = interp.rsplit('/').next().unwrap_or(&interp).to_string();
            wanted.push((interp.clone(), base));
        }
        for (guest_path, soname) in wanted {
            if !seen.insert(guest_path.clone()) {
                continue;
            }
            let real =
                find_library(&roots, &soname).ok_or_else(|| InitramfsError::MissingLibrary {
                    binary: name.clone(),
                    soname: soname.clone(),
                })?;
            let data = std::fs::read(&real).map_err(|source| InitramfsError::Read {
                path: real.clone(),
                source,
            })?;
            elf_queue.push((guest_path.clone(), data.clone()));
            t.insert(guest_path, Node::File(data, 0o755));
        }
    }

    // Kernel modules, in load order: one list for every guest, one more
    // for root-filesystem guests.
    for (list, mods) in [
        ("/etc/repro/modules", inputs.modules),
        ("/etc/repro/rootfs-modules", inputs.rootfs_modules),
    ] {
        let mut order = String::new();
        for m in mods {
            t.insert(
                format!("/lib/modules/{}.ko", m.name),
                Node::File(m.data.clone(), 0o644),
            );
            order.push_str(&m.name);
            order.push('\n');
        }
        t.insert(list.into(), Node::File(order.into_bytes(), 0o644));
    }
    t.insert(
        "/etc/repro/required".into(),
        Node::File(required_text(inputs.required).into_bytes(), 0o644),
    );
    Ok(t)
}

fn required_text(required: &[RequiredModule]) -> String {
    required.iter().map(|r| r.line() + "\n").collect()
}

/// An ELF file's interpreter and `DT_NEEDED` entries.
pub type ElfDeps = (Option<String>, Vec<String>);

/// `(interpreter, DT_NEEDED)` of an ELF file, `None` if not ELF or static.
pub fn elf_deps(data: &[u8]) -> Result<Option<ElfDeps>, String> {
    if data.len() < 4 || &data[..4] != b"\x7fELF" {
        return Ok(None);
    }
    let elf = goblin::elf::Elf::parse(data).map_err(|e| e.to_string())?;
    if elf.interpreter.is_none() && elf.libraries.is_empty() {
        return Ok(None);
    }
    Ok(Some((
        elf.interpreter.map(str::to_string),
        elf.libraries.iter().map(|s| s.to_string()).collect(),
    )))
}

/// Finds `soname` in the usual library folders of the package trees.
pub fn find_library(roots: &[&Path], soname: &str) -> Option<PathBuf> {
    for root in roots {
        for dir in [
            "lib/x86_64-linux-gnu",
            "usr/lib/x86_64-linux-gnu",
            "lib64",
            "lib",
            "usr/lib",
        ] {
            if let Some(p) = resolve_in_tree(root, &format!("{dir}/{soname}")) {
                return Some(p);
            }
        }
    }
    None
}

/// Resolves `path` inside `root`, following symlinks (absolute ones are
/// re-rooted at `root`); never leaves `root`. `None` if it does not exist.
pub fn resolve_in_tree(root: &Path, path: &str) -> Option<PathBuf> {
    let mut parts: Vec<String> = Vec::new();
    let mut pending: Vec<String> = split(path).into_iter().rev().collect();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        match part.as_str() {
            "." => continue,
            ".." => {
                parts.pop();
                continue;
            }
            _ => {}
        }
        let candidate = parts
            .iter()
            .fold(root.to_path_buf(), |p, s| p.join(s))
            .join(&part);
        let meta = std::fs::symlink_metadata(&candidate).ok()?;
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return None;
            }
            let target = std::fs::read_link(&candidate).ok()?;
            let target = target.to_string_lossy().into_owned();
            if target.starts_with('/') {
                parts.clear();
            }
            for p in split(&target).into_iter().rev() {
                pending.push(p);
            }
        } else {
            parts.push(part);
        }
    }
    let p = parts.iter().fold(root.to_path_buf(), |p, s| p.join(s));
    p.is_file().then_some(p)
}

fn split(path: &str) -> Vec<String> {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

/// Writes `tree` as a newc cpio archive (parents before children).
pub fn write_cpio(tree: &Tree, mut out: impl std::io::Write) -> Result<(), InitramfsError> {
    use cpio::newc::{Builder, ModeFileType};
    for (ino, (path, node)) in tree.iter().enumerate() {
        let name = path.trim_start_matches('/');
        let b = Builder::new(name)
            .ino(ino as u32 + 1)
            .uid(0)
            .gid(0)
            .mtime(0);
        let (b, data): (Builder, &[u8]) = match node {
            Node::Dir(mode) => (b.mode(0o040000 | mode).nlink(2), &[]),
            Node::File(data, mode) => (b.mode(0o100000 | mode).nlink(1), data),
            Node::Symlink(target) => (
                b.set_mode_file_type(ModeFileType::Symlink)
                    .mode(0o120777)
                    .nlink(1),
                target.as_bytes(),
            ),
            Node::CharDev(mode, major, minor) => (
                b.mode(0o020000 | mode)
                    .nlink(1)
                    .rdev_major(*major)
                    .rdev_minor(*minor),
                &[],
            ),
        };
        let mut w = b.write(&mut out, data.len() as u32);
        w.write_all(data).map_err(InitramfsError::Write)?;
        w.finish().map_err(InitramfsError::Write)?;
    }
    cpio::newc::trailer(&mut out).map_err(InitramfsError::Write)?;
    Ok(())
}

use std::io::Write as _;

#[cfg(test)]
mod tests {
    use super::*;

    fn userland() -> Userland {
        tomlfile::parse(
            Path::new("userland.toml"),
            r#"
suite = "bookworm"
component = "main"
packages = ["tool"]
modules = ["virtio_net"]
[files]
"/usr/bin/tool" = "tool:usr/bin/tool"
"#,
        )
        .unwrap()
    }

    #[test]
    fn resolves_symlinks_inside_the_tree_only() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        std::fs::create_dir_all(r.join("lib/x86_64-linux-gnu")).unwrap();
        std::fs::create_dir_all(r.join("lib64")).unwrap();
        std::fs::write(r.join("lib/x86_64-linux-gnu/libz.so.1.2.13"), b"z").unwrap();
        std::os::unix::fs::symlink("libz.so.1.2.13", r.join("lib/x86_64-linux-gnu/libz.so.1"))
            .unwrap();
        std::os::unix::fs::symlink("/lib/x86_64-linux-gnu/libz.so.1", r.join("lib64/abs-link"))
            .unwrap();
        std::os::unix::fs::symlink("../../../../etc/passwd", r.join("lib64/escape")).unwrap();
        let want = r.join("lib/x86_64-linux-gnu/libz.so.1.2.13");
        assert_eq!(find_library(&[r], "libz.so.1"), Some(want.clone()));
        assert_eq!(resolve_in_tree(r, "lib64/abs-link"), Some(want));
        assert_eq!(resolve_in_tree(r, "lib64/escape"), None);
        assert_eq!(find_library(&[r], "libmissing.so.1"), None);
    }

    #[test]
    fn assembles_a_bootable_tree_and_writes_newc() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("tool");
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        // A shell script is not ELF: no libraries are chased.
        std::fs::write(root.join("usr/bin/tool"), b"#!/bin/sh\necho hi\n").unwrap();
        let packages = vec![PackageTree {
            name: "tool".into(),
            version: "1".into(),
            sha256: "00".into(),
            root,
        }];
        let ul = userland();
        let required = [
            RequiredModule {
                purpose: Purpose::Net,
                name: "virtio_net".into(),
                presence: Presence::Unknown("no modules.builtin and\nno config".into()),
            },
            RequiredModule {
                purpose: Purpose::Root,
                name: "ext4".into(),
                presence: Presence::File,
            },
        ];
        let modules = vec![
            ModuleBlob {
                name: "failover".into(),
                data: b"a".to_vec(),
            },
            ModuleBlob {
                name: "virtio_net".into(),
                data: b"b".to_vec(),
            },
        ];
        let inputs = Inputs {
            userland: &ul,
            packages: &packages,
            kernel_sha256: "k",
            modules: &modules,
            rootfs_modules: &[ModuleBlob {
                name: "ext4".into(),
                data: b"c".to_vec(),
            }],
            required: &required,
            kit: b"kit",
        };
        let key = KeyPair::generate().unwrap();
        let tree = assemble(&inputs, &key).unwrap();
        assert_eq!(
            tree["/etc/repro/required"],
            Node::File(
                b"net virtio_net unknown no modules.builtin and no config\nroot ext4 module -\n"
                    .to_vec(),
                0o644
            )
        );
        assert_eq!(
            tree["/etc/repro/modules"],
            Node::File(b"failover\nvirtio_net\n".to_vec(), 0o644)
        );
        assert_eq!(
            tree["/etc/repro/rootfs-modules"],
            Node::File(b"ext4\n".to_vec(), 0o644)
        );
        assert!(matches!(tree["/lib/modules/ext4.ko"], Node::File(_, _)));
        assert!(matches!(tree["/init"], Node::File(_, 0o755)));
        assert!(matches!(tree["/usr/bin/tool"], Node::File(_, _)));
        assert_eq!(tree["/bin/sh"], Node::Symlink("busybox".into()));

        let mut buf = Vec::new();
        write_cpio(&tree, &mut buf).unwrap();
        // Read it back with the same crate's reader.
        let mut names = Vec::new();
        let mut rest: &[u8] = &buf;
        loop {
            let r = cpio::newc::Reader::new(rest).unwrap();
            if r.entry().is_trailer() {
                break;
            }
            names.push((r.entry().name().to_string(), r.entry().mode()));
            rest = r.finish().unwrap();
        }
        assert!(names.contains(&("init".to_string(), 0o100755)));
        assert!(names.contains(&("dev/console".to_string(), 0o020600)));
        assert!(names.contains(&("bin/sh".to_string(), 0o120777)));
        let dir_pos = names.iter().position(|n| n.0 == "lib/modules").unwrap();
        let file_pos = names
            .iter()
            .position(|n| n.0 == "lib/modules/virtio_net.ko")
            .unwrap();
        assert!(dir_pos < file_pos, "parents come first");

        // The hash changes with any input.
        let h1 = input_hash(&inputs);
        let inputs2 = Inputs {
            kit: b"kit2",
            ..inputs
        };
        assert_ne!(h1, input_hash(&inputs2));
        let inputs3 = Inputs {
            required: &required[..1],
            ..inputs
        };
        assert_ne!(h1, input_hash(&inputs3));
    }

    #[test]
    fn every_module_needs_its_kconfig_symbol() {
        let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/userland.toml");
        let u = Userland::load(&real).unwrap();
        assert_eq!(
            u.kconfig["virtio_net"].names(),
            ["CONFIG_VIRTIO_NET".to_string()]
        );
        assert_eq!(u.kconfig["autofs4"].names().len(), 2);
        let text = r#"suite = "bookworm"
component = "main"
packages = []
modules = ["virtio_net",
  "veth"]
[kconfig]
virtio_net = "CONFIG_VIRTIO_NET"
[files]
"#;
        let e = Userland::parse(Path::new("u.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("u.toml:5:3: module veth has no Kconfig symbol"),
            "{e}"
        );
    }

    #[test]
    fn ensure_builds_once_with_a_host_key_and_marks_use() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::new(tmp.path().join("cache"));
        let ul = userland();
        let root = tmp.path().join("tool");
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::write(root.join("usr/bin/tool"), b"#!/bin/sh\n").unwrap();
        let packages = vec![PackageTree {
            name: "tool".into(),
            version: "1".into(),
            sha256: "00".into(),
            root,
        }];
        let inputs = Inputs {
            userland: &ul,
            packages: &packages,
            kernel_sha256: "k",
            modules: &[],
            rootfs_modules: &[],
            required: &[],
            kit: b"kit",
        };
        let first = ensure(&cache, &inputs).unwrap();
        assert_eq!(first.hash, input_hash(&inputs));
        assert!(first.dir.join(".complete").is_file());
        assert!(first
            .dir
            .join(crate::images::inventory::LAST_USED)
            .is_file());
        let key = std::fs::read_to_string(&first.host_key_pub).unwrap();
        assert!(crate::keys::blob_from_public_line(&key).is_some(), "{key}");
        let image = std::fs::read(&first.image).unwrap();
        // Cached: the same image and host key, not a new build.
        let again = ensure(&cache, &inputs).unwrap();
        assert_eq!(again, first);
        assert_eq!(std::fs::read_to_string(&again.host_key_pub).unwrap(), key);
        assert_eq!(std::fs::read(&again.image).unwrap(), image);
    }

    #[test]
    fn packages_are_unpacked_once() {
        use crate::images::deb::tests::{make_deb, sample_tar};
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::new(tmp.path().join("cache"));
        let deb = tmp.path().join("t.deb");
        let tar = sample_tar(&[("usr/bin/tool", b"x", 0o755)], &[]);
        std::fs::write(&deb, make_deb(&tar, "xz")).unwrap();
        let sha = cache::sha256_file(&deb).unwrap();
        let root = unpack_package(&cache, &deb, &sha).unwrap();
        assert!(root.join("usr/bin/tool").is_file());
        assert!(root.join(".repro-complete").is_file());
        std::fs::remove_file(root.join("usr/bin/tool")).unwrap();
        assert_eq!(unpack_package(&cache, &deb, &sha).unwrap(), root);
        assert!(!root.join("usr/bin/tool").exists(), "unpacked again");
        assert!(unpack_package(&cache, &deb, "../x").is_err());
    }

    #[test]
    fn missing_package_in_files_is_reported() {
        let mut ul = userland();
        ul.files.clear();
        ul.files.insert("/x".into(), "nothere:x".into());
        let inputs = Inputs {
            userland: &ul,
            packages: &[],
            kernel_sha256: "k",
            modules: &[],
            rootfs_modules: &[],
            required: &[],
            kit: b"",
        };
        let e = assemble(&inputs, &KeyPair::generate().unwrap()).unwrap_err();
        assert!(e.to_string().contains("nothere"), "{e}");
    }
}
