//! Real kubelets: built on the host from a Debian source package (a profile's `[build]`
//! table, `images/kubelet/1.20.toml`) or downloaded as the official binary (`[binary]`,
//! pinned by sha256), plus the container images a kubelet needs in the guest.
//!
//! - [`source`]: the source package's orig tarball (from the `Sources` index, verified),
//!   unpacked into a temporary folder;
//! - [`go`]: Debian's Go packages unpacked side by side into a cached GOROOT;
//! - [`build`]: `go build -v` of each command, with progress counted against
//!   `go list -deps`, the log kept, and the first compiler error quoted on failure;
//! - [`pause`]: the pause container's binary, `cc -static -Os`;
//! - [`oci`]: OCI image-layout archives (one gzip layer) written in Rust;
//! - [`container_images`]: the `pause` and `busybox` archives, cached;
//! - [`official`]: the official binary of a `[binary]` table.
//!
//! A build lives in `<cache>/kubelet/<key>/` (`bin/<command>`, `pause`, `build.log`,
//! `build.json`, `.complete` last), the key being the hash of the orig tarball's sha256,
//! the Go packages' versions, the linker flags and the commands. The Go build cache is
//! shared by all builds (`<cache>/kubelet/gocache`). A second call with the same inputs is
//! a cache hit: no download, no build.

pub mod build;
pub mod container_images;
pub mod go;
pub mod oci;
pub mod official;
pub mod pause;
pub mod source;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::cache::{self, Cache, CacheError};
use super::deb::DebError;
use super::debian::{Archive, DebianError};
use crate::kubelet::{Build, Profile};

pub use container_images::{ensure_busybox_image, ensure_pause_image, ImageArchive};
pub use oci::{write_oci_archive, ImageSpec, LayerFile};

/// Bump when the build's layout or method changes, to invalidate cached builds.
pub const BUILDER_VERSION: &str = "kubelet-build-v1";

/// What went wrong getting a real kubelet.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error(transparent)]
    Debian(#[from] DebianError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Deb(#[from] DebError),
    #[error(transparent)]
    Initramfs(#[from] super::initramfs::InitramfsError),
    #[error("source package {package} {version} has no orig tarball ({files}); a [build] table needs a package built from an upstream tarball")]
    NoOrigTarball {
        package: String,
        version: String,
        files: String,
    },
    #[error("the Go toolchain unpacked from {packages} has no {missing}; check go_packages in the kubelet profile (the compiler and its standard library sources, e.g. golang-1.15-go and golang-1.15-src)")]
    NoGoroot { packages: String, missing: String },
    #[error("cannot start `{program}`: {source}{hint}")]
    Spawn {
        program: String,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error(
        "`go build` of {command} failed (exit {status}): {first_error}; the full log is {log}"
    )]
    GoBuild {
        command: String,
        status: String,
        first_error: String,
        log: PathBuf,
    },
    #[error(
        "`go list -deps` of {command} failed (exit {status}): {first_error}; the full log is {log}"
    )]
    GoList {
        command: String,
        status: String,
        first_error: String,
        log: PathBuf,
    },
    #[error("no C compiler: `cc` is not on PATH; install `build-essential` (gcc and libc6-dev) to build the pause container's binary")]
    NoCc,
    #[error("`cc -static -Os {source_file}` failed: {output}; a static link needs libc6-dev (install `build-essential`)")]
    Cc { source_file: String, output: String },
    #[error("the built {binary} prints `{found}` for --version, expected `{expected}`; the tree is not the version the profile says (git_version)")]
    WrongVersion {
        binary: PathBuf,
        found: String,
        expected: String,
    },
    #[error("kubelet {version} has no [build] or [binary] table in its profile, so there is no real kubelet for it; use a version whose profile has one (1.20 is built from Debian's source)")]
    NoRealKubelet { version: String },
    #[error("the official kubelet {version} cannot be downloaded here ({cause}); `--kubelet 1.20` is a real kubelet built from Debian's source and works with only the Debian mirror: `repro images build-kubelet 1.20`")]
    OfficialUnreachable { version: String, cause: String },
    #[error("the official kubelet {version} ({url}) has no pinned sha256 in its profile, so it is not downloaded; add `sha256 = \"...\"` to [binary] (the .sha256 file published beside the binary), or use `--kubelet 1.20`, built from Debian's source")]
    NotPinned { version: String, url: String },
    #[error("the userland ({path}) lists no `{package}`, whose static busybox the busybox image is made of")]
    NoBusybox { path: PathBuf, package: String },
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KubeletError + '_ {
    move |source| KubeletError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a build is doing, for a progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildEvent {
    /// A new step (downloading, unpacking, compiling ...), said in words.
    Step(String),
    /// Bytes of a download.
    Download { what: String, done: u64, total: u64 },
    /// `go build -v` printed another package: `done` of about `total`.
    Compile {
        command: String,
        done: usize,
        total: usize,
        package: String,
    },
}

/// One binary of a build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuiltBinary {
    pub name: String,
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
}

/// A real kubelet in the cache (`build.json` of its folder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KubeletBuild {
    /// The profile it belongs to (`1.20`).
    pub profile: String,
    /// `debian-source` or `official`.
    pub origin: String,
    /// The cache key naming its folder.
    pub key: String,
    pub dir: PathBuf,
    /// The `kubelet` binary.
    pub binary: PathBuf,
    /// What `kubelet --version` prints (`Kubernetes v1.20.2`).
    pub version: String,
    pub sha256: String,
    pub size: u64,
    /// The Go packages' versions (`golang-1.15-go 1.15.15-1~deb11u4`); empty for an official binary.
    pub go_version: String,
    /// The source package and version (`kubernetes 1.20.5+really1.20.2-1`).
    pub source_version: String,
    pub orig_sha256: String,
    pub ldflags: String,
    /// Every command built (`kubelet` first).
    pub binaries: Vec<BuiltBinary>,
    /// The pause container's static binary.
    pub pause: Option<BuiltBinary>,
    /// Seconds the build took (download, unpack, compile).
    pub build_seconds: f64,
    /// Whether this call built it (false: a cache hit). Not stored.
    #[serde(skip)]
    pub built: bool,
}

/// Everything the cache key of a source build is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInputs {
    pub orig_sha256: String,
    /// `name version` of each Go package, in the profile's order.
    pub go_packages: Vec<String>,
    pub ldflags: String,
    pub commands: Vec<String>,
    pub pause_source: String,
}

impl BuildInputs {
    /// The cache key: sha256 over the builder version and every input, each field framed
    /// so that no two different inputs hash alike.
    pub fn key(&self) -> String {
        let mut h = Sha256::new();
        let mut field = |name: &str, value: &str| {
            h.update(format!("{name}\n{}\n{value}\n", value.len()));
        };
        field("builder", BUILDER_VERSION);
        field("orig", &self.orig_sha256);
        field("go", &self.go_packages.join("\n"));
        field("ldflags", &self.ldflags);
        field("commands", &self.commands.join("\n"));
        field("pause", &self.pause_source);
        hex::encode(h.finalize())
    }
}

/// The folder of all kubelet builds.
pub fn builds_dir(cache: &Cache) -> Result<PathBuf, CacheError> {
    cache.dir("kubelet")
}

/// Reads the record of a complete build folder.
pub fn read_build(dir: &Path) -> Option<KubeletBuild> {
    if !dir.join(".complete").is_file() {
        return None;
    }
    std::fs::read(dir.join("build.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// The real kubelet of `profile`: built from source (`[build]`) or the official binary
/// (`[binary]`), from the cache when it is there. `event` hears about progress.
pub fn ensure_kubelet(
    archive: &Archive,
    profile: &Profile,
    event: &dyn Fn(BuildEvent),
) -> Result<KubeletBuild, KubeletError> {
    match (&profile.build, &profile.binary) {
        (Some(b), _) => ensure_source_build(archive, &profile.version, b, event),
        (None, Some(bin)) => official::ensure_official(archive, &profile.version, bin, event),
        (None, None) => Err(KubeletError::NoRealKubelet {
            version: profile.version.clone(),
        }),
    }
}

/// [`ensure_kubelet`] for a `[build]` table.
pub fn ensure_source_build(
    archive: &Archive,
    profile: &str,
    spec: &Build,
    event: &dyn Fn(BuildEvent),
) -> Result<KubeletBuild, KubeletError> {
    let cache = archive.cache();
    let src = source::find(archive, spec)?;
    let go_entries = go::find(archive, spec)?;
    let inputs = BuildInputs {
        orig_sha256: src.orig.sha256.clone(),
        go_packages: go_entries
            .iter()
            .map(|e| format!("{} {}", e.name, e.version))
            .collect(),
        ldflags: spec.ldflags(),
        commands: spec.commands.clone(),
        pause_source: spec.pause_source.clone(),
    };
    let key = inputs.key();
    let dir = builds_dir(cache)?.join(&key);
    let started = Instant::now();
    let built = cache.build_dir_once(&format!("kubelet-{key}"), &dir, ".complete", |dir| {
        let toolchain = go::ensure_goroot(archive, &go_entries, event)?;
        let tree = source::unpack(archive, &src, event)?;
        let log = dir.join("build.log");
        let gocache = cache.dir("kubelet/gocache")?;
        let bin_dir = dir.join("bin");
        cache::create_dir_all(&bin_dir)?;
        let mut binaries = Vec::new();
        for c in &spec.commands {
            let out = bin_dir.join(c);
            build::go_build(
                &toolchain,
                tree.root(),
                &gocache,
                c,
                &inputs.ldflags,
                &out,
                &log,
                event,
            )?;
            binaries.push(built_binary(c, &out)?);
        }
        event(BuildEvent::Step("compiling the pause binary".into()));
        let pause_out = dir.join("pause");
        pause::compile(&tree.root().join(&spec.pause_source), &pause_out)?;
        let pause = built_binary("pause", &pause_out)?;
        let version = build::binary_version(&binaries[0].path)?;
        let expected = format!("Kubernetes {}", spec.git_version);
        if version != expected {
            return Err(KubeletError::WrongVersion {
                binary: binaries[0].path.clone(),
                found: version,
                expected,
            });
        }
        let record = KubeletBuild {
            profile: profile.to_string(),
            origin: "debian-source".into(),
            key: key.clone(),
            dir: dir.to_path_buf(),
            binary: binaries[0].path.clone(),
            version,
            sha256: binaries[0].sha256.clone(),
            size: binaries[0].size,
            go_version: inputs.go_packages.join(", "),
            source_version: format!("{} {}", src.entry.name, src.entry.version),
            orig_sha256: src.orig.sha256.clone(),
            ldflags: inputs.ldflags.clone(),
            binaries,
            pause: Some(pause),
            build_seconds: started.elapsed().as_secs_f64(),
            built: true,
        };
        cache::write_json(&dir.join("build.json"), &record)?;
        Ok::<_, KubeletError>(())
    })?;
    finished(&dir, built)
}

/// The record of the build folder `dir` that `build_dir_once` just finished or found
/// (`built`), marked used for `repro images gc`.
pub(crate) fn finished(dir: &Path, built: bool) -> Result<KubeletBuild, KubeletError> {
    super::inventory::touch_used(dir);
    let mut record = read_build(dir).ok_or_else(|| KubeletError::Io {
        path: dir.join("build.json"),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "build record missing or unreadable; delete the folder to build again",
        ),
    })?;
    record.built = built;
    Ok(record)
}

/// A download progress callback that reports `what` as [`BuildEvent::Download`].
pub(crate) fn download_progress<'a>(
    event: &'a dyn Fn(BuildEvent),
    what: &'a str,
) -> impl Fn(u64, u64) + 'a {
    move |done, total| {
        event(BuildEvent::Download {
            what: what.to_string(),
            done,
            total,
        })
    }
}

/// Size and sha256 of a file just built.
pub(crate) fn built_binary(name: &str, path: &Path) -> Result<BuiltBinary, KubeletError> {
    let size = std::fs::metadata(path).map_err(io_err(path))?.len();
    Ok(BuiltBinary {
        name: name.to_string(),
        path: path.to_path_buf(),
        sha256: cache::sha256_file(path)?,
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> BuildInputs {
        BuildInputs {
            orig_sha256: "b83c0780efb182d928dc63d46488a847f161f04e40a94b96bf5247dd671ecdfc".into(),
            go_packages: vec![
                "golang-1.15-go 1.15.15-1~deb11u4".into(),
                "golang-1.15-src 1.15.15-1~deb11u4".into(),
            ],
            ldflags: "-s -w".into(),
            commands: vec!["kubelet".into()],
            pause_source: "build/pause/linux/pause.c".into(),
        }
    }

    #[test]
    fn the_key_changes_with_every_input_and_only_with_them() {
        let base = inputs();
        assert_eq!(base.key(), inputs().key());
        assert!(cache::is_sha256_hex(&base.key()));
        let variants = [
            BuildInputs {
                orig_sha256: "0".repeat(64),
                ..inputs()
            },
            BuildInputs {
                go_packages: vec!["golang-1.15-go 1.15.15-1~deb11u5".into()],
                ..inputs()
            },
            BuildInputs {
                ldflags: "-s -w -X a=b".into(),
                ..inputs()
            },
            BuildInputs {
                commands: vec!["kubelet".into(), "kube-apiserver".into()],
                ..inputs()
            },
            BuildInputs {
                pause_source: "other.c".into(),
                ..inputs()
            },
            // Framing: moving text between fields is a different input.
            BuildInputs {
                go_packages: vec![],
                ldflags:
                    "golang-1.15-go 1.15.15-1~deb11u4\ngolang-1.15-src 1.15.15-1~deb11u4\n-s -w"
                        .into(),
                ..inputs()
            },
        ];
        let mut keys: Vec<String> = variants.iter().map(BuildInputs::key).collect();
        keys.push(base.key());
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n, "two inputs share a key");
    }
}
