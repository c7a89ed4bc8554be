//! Root-filesystem guests: a Debian release's own userland (systemd as
//! PID 1, runc, containerd, a registry, sshd) built with Debian's
//! `mmdebstrap` through the configured mirror, customized by
//! `images/rootfs/customize.sh`, and turned into an ext4 disk in a qcow2
//! file. Cached under `rootfs/<input hash>/`; every run boots a throw-away
//! qcow2 overlay on it (see `vm::create_overlay`).
//!
//! The image holds nothing kernel- or harness-specific: the initramfs of
//! the chosen kernel loads the block and filesystem modules, installs the
//! run's key, `repro-kit` and the network, and switches root to it. So any
//! kernel boots any release, and rebuilding the harness does not rebuild
//! images.
//!
//! This module starts the builder's processes (mmdebstrap, mkfs.ext4,
//! qemu-img convert); manifest parsing, hashing and the dpkg status
//! reading are pure.

use super::cache::{self, Cache};
use super::debian::Mirror;
use crate::model::CgroupVersion;
use crate::tomlfile::{self, TomlFileError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Bump when the build steps change, to invalidate cached images.
pub const BUILDER_VERSION: &str = "rootfs-v1";

/// The customize hook (part of every image's input hash).
pub const CUSTOMIZE_SCRIPT: &str = include_str!("../../../images/rootfs/customize.sh");

/// `images/rootfs/<name>.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub suite: String,
    #[serde(default = "default_components")]
    pub components: Vec<String>,
    #[serde(default = "default_variant")]
    pub variant: String,
    /// Size of the ext4 filesystem (the qcow2 file only holds what is used).
    pub size_mib: u64,
    pub packages: Vec<String>,
    /// Packages whose installed versions every result records.
    #[serde(default)]
    pub record: Vec<String>,
    /// Per cgroup version (`v1`, `v2`): kernel arguments, or why the
    /// release cannot boot it. Other keys are refused.
    #[serde(default, deserialize_with = "cgroup_keys")]
    pub cgroup: BTreeMap<String, CgroupSettings>,
}

/// `[cgroup.vN]` tables, keyed by a real cgroup version (a typo would
/// otherwise drop its kernel arguments without a word).
fn cgroup_keys<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, CgroupSettings>, D::Error> {
    let typed = BTreeMap::<CgroupVersion, CgroupSettings>::deserialize(d)?;
    Ok(typed
        .into_iter()
        .map(|(k, v)| (k.as_str().to_string(), v))
        .collect())
}

fn default_components() -> Vec<String> {
    vec!["main".into()]
}

fn default_variant() -> String {
    "minbase".into()
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct CgroupSettings {
    #[serde(default)]
    pub cmdline: Vec<String>,
    /// Set when the release's systemd refuses this cgroup version: cells
    /// are `skipped` with this reason.
    #[serde(default)]
    pub unsupported: Option<String>,
}

/// A manifest with its name (file stem) and text.
#[derive(Debug, Clone)]
pub struct Named {
    pub name: String,
    pub path: PathBuf,
    pub text: String,
    pub manifest: Manifest,
}

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error(transparent)]
    Toml(#[from] TomlFileError),
    #[error("unknown root filesystem `{name}`; known: {known} (manifests in {dir})")]
    Unknown {
        name: String,
        known: String,
        dir: PathBuf,
    },
    #[error("`{tool}` is needed to build root filesystems but was not found; install it with `apt-get install {package}`")]
    ToolMissing { tool: String, package: String },
    #[error("{step} failed ({status}); last lines of {log}:\n{tail}")]
    Step {
        step: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error(transparent)]
    Cache(#[from] cache::CacheError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RootfsError + '_ {
    move |e| RootfsError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Every manifest in `dir`, sorted by name.
pub fn load_all(dir: &Path) -> Result<Vec<Named>, RootfsError> {
    let mut out = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(io(dir))?;
    for e in rd.flatten() {
        let path = e.path();
        if path.extension().and_then(|x| x.to_str()) != Some("toml") {
            continue;
        }
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = tomlfile::read(&path)?;
        let manifest: Manifest = tomlfile::parse(&path, &text)?;
        out.push(Named {
            name,
            path,
            text,
            manifest,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The manifest called `name`.
pub fn find(dir: &Path, name: &str) -> Result<Named, RootfsError> {
    let all = load_all(dir)?;
    let known = all
        .iter()
        .map(|n| n.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    all.into_iter()
        .find(|n| n.name == name)
        .ok_or_else(|| RootfsError::Unknown {
            name: name.into(),
            known,
            dir: dir.to_path_buf(),
        })
}

/// The hash naming the cached image: builder version, manifest text and
/// customize hook. The mirror is not an input (every mirror serves the
/// same archive); `repro images build --rebuild` picks up new package
/// versions.
pub fn input_hash(named: &Named) -> String {
    let mut h = Sha256::new();
    h.update(BUILDER_VERSION);
    h.update(named.name.as_bytes());
    h.update([0]);
    h.update(named.text.as_bytes());
    h.update([0]);
    h.update(CUSTOMIZE_SCRIPT);
    hex::encode(h.finalize())
}

/// What `image.json` next to a built image says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageMeta {
    pub name: String,
    pub suite: String,
    pub input_hash: String,
    /// SHA256 of the qcow2 file.
    pub sha256: String,
    pub bytes: u64,
    pub size_mib: u64,
    pub build_secs: f64,
    pub built_at: String,
    /// Installed versions of the manifest's `record` packages.
    pub versions: BTreeMap<String, String>,
    /// sshd's ed25519 host key (`ssh-ed25519 AAAA...`).
    pub host_key: String,
}

/// A built (or cached) image.
#[derive(Debug, Clone)]
pub struct Image {
    pub path: PathBuf,
    pub meta: ImageMeta,
    /// False when it came from the cache.
    pub built: bool,
}

/// Installed versions of `names` from a dpkg `status` file.
pub fn installed_versions(status: &str, names: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let _ = super::debian::deb822::for_each_paragraph::<()>(status, false, |_, fields| {
        let get = |k: &str| fields.iter().find(|f| f.key == k).map(|f| f.value.trim());
        if let (Some(p), Some(v), Some(st)) = (get("Package"), get("Version"), get("Status")) {
            if st.ends_with(" installed") && names.iter().any(|n| n == p) {
                out.insert(p.to_string(), v.to_string());
            }
        }
        Ok(())
    });
    out
}

/// mmdebstrap's arguments for `m` into `target` from `mirror`.
pub fn mmdebstrap_args(m: &Manifest, target: &Path, mirror: &str, hook: &Path) -> Vec<String> {
    vec![
        format!("--variant={}", m.variant),
        format!("--components={}", m.components.join(",")),
        format!("--include={}", m.packages.join(",")),
        format!("--customize-hook=sh {} \"$1\"", hook.display()),
        "--quiet".into(),
        m.suite.clone(),
        target.display().to_string(),
        mirror.to_string(),
    ]
}

fn need_tool(tool: &str, package: &str) -> Result<(), RootfsError> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
        || ["/usr/sbin", "/sbin"]
            .iter()
            .any(|d| Path::new(d).join(tool).is_file());
    if found {
        Ok(())
    } else {
        Err(RootfsError::ToolMissing {
            tool: tool.into(),
            package: package.into(),
        })
    }
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs one build step with its output appended to `log`.
fn step(name: &str, cmd: &mut Command, log: &Path) -> Result<(), RootfsError> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io(log))?;
    let _ = writeln!(f, "### {name}: {cmd:?}");
    let out = f.try_clone().map_err(io(log))?;
    let err = f.try_clone().map_err(io(log))?;
    // The builder dies with the harness (an interrupted build leaves only
    // a temporary folder, removed by the next build).
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong);
            Ok(())
        });
    }
    let status = cmd
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|e| RootfsError::Step {
            step: name.into(),
            status: e.to_string(),
            log: log.to_path_buf(),
            tail: String::new(),
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(RootfsError::Step {
            step: name.into(),
            status: status.to_string(),
            log: log.to_path_buf(),
            tail: tail(log, 20),
        })
    }
}

/// `mkfs.ext4 -d SRC`: an ext4 image of `size_mib` labelled `label` at
/// `out` holding `src`'s files (root filesystems, and the data disks of
/// `datadisk`), the step's output appended to `log`.
pub fn mkfs_ext4(
    src: &Path,
    out: &Path,
    size_mib: u64,
    label: &str,
    log: &Path,
) -> Result<(), RootfsError> {
    need_tool("mkfs.ext4", "e2fsprogs")?;
    step(
        "mkfs.ext4",
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", label, "-d"])
            .arg(src)
            .arg(out)
            .arg(format!("{size_mib}M")),
        log,
    )
}

/// The cached image for `named`, if complete.
pub fn cached(cache: &Cache, named: &Named) -> Option<Image> {
    let dir = cache.root().join("rootfs").join(input_hash(named));
    read_image(&dir)
}

/// A complete image folder's image.
pub fn read_image(dir: &Path) -> Option<Image> {
    if !dir.join(".complete").is_file() {
        return None;
    }
    let meta: ImageMeta =
        serde_json::from_slice(&std::fs::read(dir.join("image.json")).ok()?).ok()?;
    Some(Image {
        path: dir.join("rootfs.qcow2"),
        meta,
        built: false,
    })
}

/// Returns the cached image for `named`, building it first when needed
/// (or always with `rebuild`). `say` gets one line per build step.
pub fn ensure(
    cache: &Cache,
    named: &Named,
    mirror: &Mirror,
    qemu_img: &Path,
    rebuild: bool,
    say: &dyn Fn(&str),
) -> Result<Image, RootfsError> {
    let hash = input_hash(named);
    let dir = cache.dir("rootfs")?.join(&hash);
    cache.build_once(
        &format!("rootfs-{hash}"),
        || read_image(&dir).filter(|_| !rebuild),
        || build(named, mirror, qemu_img, &dir, hash.clone(), say),
    )
}

/// Builds the image of `named` into `dir` (the caller holds its cache lock) and marks it
/// complete.
fn build(
    named: &Named,
    mirror: &Mirror,
    qemu_img: &Path,
    dir: &Path,
    hash: String,
    say: &dyn Fn(&str),
) -> Result<Image, RootfsError> {
    need_tool("mmdebstrap", "mmdebstrap")?;
    need_tool("mkfs.ext4", "e2fsprogs")?;
    let start = Instant::now();
    let _ = std::fs::remove_file(dir.join(".complete"));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let log = dir.join("build.log");
    let _ = std::fs::remove_file(&log);
    // Leftovers of a build that was killed (we hold the lock: nobody else
    // is building here).
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with("build-") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let work = tempfile::Builder::new()
        .prefix("build-")
        .tempdir_in(dir)
        .map_err(io(dir))?;
    let target = work.path().join("root");
    let hook = work.path().join("customize.sh");
    std::fs::write(&hook, CUSTOMIZE_SCRIPT).map_err(io(&hook))?;
    let m = &named.manifest;

    say(&format!(
        "mmdebstrap {} ({} packages) from {}",
        m.suite,
        m.packages.len(),
        mirror.archive
    ));
    step(
        "mmdebstrap",
        Command::new("mmdebstrap").args(mmdebstrap_args(m, &target, &mirror.archive, &hook)),
        &log,
    )?;
    let status_path = target.join("var/lib/dpkg/status");
    let status = std::fs::read_to_string(&status_path).map_err(io(&status_path))?;
    let versions = installed_versions(&status, &m.record);
    let key_path = target.join("etc/ssh/ssh_host_ed25519_key.pub");
    let host_key = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;

    say(&format!("mkfs.ext4 ({} MiB)", m.size_mib));
    let raw = work.path().join("root.ext4");
    mkfs_ext4(&target, &raw, m.size_mib, "repro-root", &log)?;
    say("qemu-img convert to qcow2");
    let tmp_qcow = work.path().join("rootfs.qcow2");
    step(
        "qemu-img convert",
        Command::new(qemu_img)
            .args(["convert", "-f", "raw", "-O", "qcow2"])
            .arg(&raw)
            .arg(&tmp_qcow),
        &log,
    )?;
    let final_path = dir.join("rootfs.qcow2");
    std::fs::rename(&tmp_qcow, &final_path).map_err(io(&final_path))?;
    drop(work);
    let meta = ImageMeta {
        name: named.name.clone(),
        suite: m.suite.clone(),
        input_hash: hash,
        sha256: cache::sha256_file(&final_path)?,
        bytes: std::fs::metadata(&final_path).map(|m| m.len()).unwrap_or(0),
        size_mib: m.size_mib,
        build_secs: start.elapsed().as_secs_f64(),
        built_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        versions,
        host_key: host_key.trim().to_string(),
    };
    cache::write_json(&dir.join("image.json"), &meta)?;
    cache::atomic_write(&dir.join(".complete"), b"")?;
    Ok(Image {
        path: final_path,
        meta,
        built: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/rootfs")
    }

    #[test]
    fn the_shipped_manifests_parse_and_name_the_runtime() {
        let all = load_all(&repo_dir()).unwrap();
        let names: Vec<&str> = all.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["bookworm", "bullseye", "trixie"]);
        for n in &all {
            let m = &n.manifest;
            assert_eq!(m.suite, n.name);
            for p in [
                "systemd",
                "runc",
                "containerd",
                "openssh-server",
                "docker-registry",
            ] {
                assert!(m.packages.iter().any(|x| x == p), "{} lacks {p}", n.name);
            }
            assert!(m.record.iter().any(|x| x == "runc"));
            assert!(m.cgroup.contains_key("v1") && m.cgroup.contains_key("v2"));
        }
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let e = find(&repo_dir(), "sid").unwrap_err().to_string();
        assert!(e.contains("unknown root filesystem `sid`"), "{e}");
        assert!(e.contains("bookworm, bullseye, trixie"), "{e}");
    }

    #[test]
    fn bad_manifests_point_at_the_line() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join("x.toml"),
            "suite = \"x\"\nsize_mib = 10\npackages = []\nbogus = 1\n",
        )
        .unwrap();
        let e = load_all(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("x.toml:4:1"), "{e}");
        assert!(e.contains("bogus"), "{e}");
        std::fs::write(
            tmp.path().join("x.toml"),
            "suite = \"x\"\nsize_mib = 10\npackages = []\n[cgroup.v1]\ncmdline = []\n[cgroup.V2]\ncmdline = [\"a\"]\n",
        )
        .unwrap();
        let e = load_all(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("x.toml:6:"), "{e}");
        assert!(
            e.contains("unknown variant `V2`, expected `v1` or `v2`"),
            "{e}"
        );
    }

    #[test]
    fn the_hash_follows_the_manifest_text() {
        let all = load_all(&repo_dir()).unwrap();
        let a = input_hash(&all[0]);
        assert_eq!(a, input_hash(&all[0]));
        let mut changed = all[0].clone();
        changed.text.push_str("\n# a comment\n");
        assert_ne!(a, input_hash(&changed));
        assert_ne!(a, input_hash(&all[1]));
    }

    #[test]
    fn dpkg_status_versions_of_installed_packages_only() {
        let status = "Package: runc\nStatus: install ok installed\nVersion: 1.0.0~rc93+ds1-5\n\n\
                      Package: containerd\nStatus: deinstall ok config-files\nVersion: 1.4\n\n\
                      Package: systemd\nStatus: install ok installed\nVersion: 247.3-7\n";
        let names = vec!["runc".to_string(), "containerd".into(), "systemd".into()];
        let v = installed_versions(status, &names);
        assert_eq!(v.len(), 2);
        assert_eq!(v["runc"], "1.0.0~rc93+ds1-5");
        assert_eq!(v["systemd"], "247.3-7");
    }

    #[test]
    fn mmdebstrap_gets_the_package_set_and_the_hook() {
        let m = load_all(&repo_dir()).unwrap().remove(1).manifest;
        let a = mmdebstrap_args(
            &m,
            Path::new("/t/root"),
            "http://mirror/debian",
            Path::new("/t/c.sh"),
        );
        assert!(a.contains(&"--variant=minbase".to_string()));
        assert!(a
            .iter()
            .any(|x| x.starts_with("--include=") && x.contains("runc,containerd")));
        assert!(a.contains(&"--customize-hook=sh /t/c.sh \"$1\"".to_string()));
        assert_eq!(
            &a[a.len() - 3..],
            ["bullseye", "/t/root", "http://mirror/debian"]
        );
    }
}
