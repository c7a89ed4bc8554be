//! The command line's shape (clap): commands, flags and their help. The
//! binary parses with it; `main.rs` maps it onto library calls.

use clap::{Parser, Subcommand};
use repro::model::{limits, AccelChoice, CgroupVersion, Driver};
use repro::plan::{Filter, Shard};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "repro",
    version,
    about = "Reproduce known Kubernetes-node and Linux-kernel failures inside QEMU guests",
    after_help = repro::model::exit::HELP
)]
pub struct Cli {
    /// Cache for downloads, kernels and guest images
    /// [default: $XDG_CACHE_HOME/repro or ~/.cache/repro].
    #[arg(long, global = true, env = "REPRO_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Debian mirror URL (else REPRO_DEBIAN_MIRROR, `debian_mirror` in
    /// matrix.toml, then the host's apt sources).
    #[arg(long, global = true)]
    pub mirror: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args, Clone, Default)]
pub struct GuestArgs {
    /// Accelerator: auto probes KVM with a real boot and falls back to TCG.
    #[arg(long, value_enum)]
    pub accel: Option<AccelChoice>,
    /// Seconds to wait for the guest's SSH after QEMU starts.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=limits::MAX_TIMEOUT_S))]
    pub boot_timeout: Option<u64>,
    /// Folder the run's folder is created in [default: results/].
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Cap of each log (console, stdout, stderr, result file): the head and
    /// the tail are kept, with a line saying how much was dropped
    /// [default: matrix.toml's log_cap, else 16M].
    #[arg(long, value_name = "SIZE", value_parser = parse_cap)]
    pub log_cap: Option<u64>,
    /// Cap of all artefacts fetched from $REPRO_OUT together
    /// [default: matrix.toml's out_cap, else 64M].
    #[arg(long, value_name = "SIZE", value_parser = parse_cap)]
    pub out_cap: Option<u64>,
    /// End a scenario after this many seconds without any output from the
    /// guest (console, stdout, stderr, result file); 0: off. Beats each
    /// scenario's own stall_s [default: the scenario's, else matrix.toml's,
    /// else 600].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(0..=limits::MAX_TIMEOUT_S))]
    pub stall_s: Option<u64>,
}

/// A cap such as `16M`: bytes with an optional binary unit, at least 1k.
fn parse_cap(s: &str) -> Result<u64, String> {
    match repro::scenario::parse_size(s) {
        Some(n) if n >= 1024 => Ok(n),
        _ => Err(format!(
            "`{s}` is not a cap: use a size of at least 1k, such as 16M (k, M, G: binary units)"
        )),
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Run scenarios on kernels: one cell per scenario × kernel (× rootfs × kubelet × driver).
    Run(RunArgs),
    /// Run a matrix file (default: matrix.toml); exit 1 when a cell fails its expectation.
    Matrix(MatrixArgs),
    /// Find the first kernel (in the order given) from which a scenario no longer reproduces:
    /// both ends checked first, the boundary pair re-run; the answer also in fixed-in.json.
    FixedIn(FixedInArgs),
    /// Join the results of shards into one run.
    Merge {
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Folder for the merged run [default: results/merged-<time>].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Re-render summary.json, junit.xml, summary.md and report.html of a run.
    Report { dir: PathBuf },
    /// Cells whose outcome changed between two runs; exit 1 on a regression.
    Compare {
        old: PathBuf,
        new: PathBuf,
        /// Markdown (for a CI job summary) instead of text.
        #[arg(long)]
        markdown: bool,
    },
    /// List the scenarios, kernels and kubelet profiles.
    List,
    /// Manage cached kernels and images.
    #[command(subcommand)]
    Images(ImagesCmd),
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// Scenario names (folders under scenarios/).
    #[arg(required = true)]
    pub scenarios: Vec<String>,
    /// Kernel: alias (6.1, bookworm), package version, or PATH/vmlinuz[:MODULES_DIR].
    #[arg(long = "kernel", short = 'k', required = true)]
    pub kernels: Vec<String>,
    /// Boot a Debian root filesystem (images/rootfs/<name>.toml: bullseye,
    /// bookworm, trixie) with systemd, runc and containerd instead of the
    /// initramfs guest; repeatable.
    #[arg(long = "rootfs")]
    pub rootfs: Vec<String>,
    /// Kubelet profile (images/kubelet/<version>.toml), repeatable.
    #[arg(long = "kubelet")]
    pub kubelets: Vec<String>,
    /// cgroup driver the kubelet profile lays cgroups out for.
    #[arg(long = "driver", value_enum)]
    pub drivers: Vec<Driver>,
    /// Scenario parameter KEY=VALUE (repeatable).
    #[arg(long = "param", short = 'p', value_parser = parse_kv)]
    pub params: Vec<(String, String)>,
    /// cgroup version (default: the scenario's first supported one).
    #[arg(long, value_enum)]
    pub cgroup: Option<CgroupVersion>,
    /// Guest memory in MiB (default: what the scenario declares).
    #[arg(long, value_parser = clap::value_parser!(u32)
        .range(limits::MIN_MEMORY_MIB as i64..=limits::MAX_MEMORY_MIB as i64))]
    pub memory: Option<u32>,
    /// Guest vCPUs (default: what the scenario declares).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=limits::MAX_VCPUS as i64))]
    pub vcpus: Option<u32>,
    /// Attempts per cell.
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
    /// Cells in parallel (0: what cores and memory allow).
    #[arg(long, short = 'j', default_value_t = 1)]
    pub jobs: usize,
    /// Exit 1 when a cell is flaky: its attempts (--repeat) disagree. The
    /// cells of `run` expect `any`, so this is the one way they fail;
    /// without it, `run` exits 0 whatever the verdicts (3 on an `error`).
    #[arg(long)]
    pub fail_on_flaky: bool,
    #[command(flatten)]
    pub guest: GuestArgs,
}

#[derive(clap::Args)]
pub struct MatrixArgs {
    #[arg(long)]
    pub matrix: Option<PathBuf>,
    /// Profile in the matrix file ([profile.NAME]).
    #[arg(long, default_value = "default")]
    pub profile: String,
    /// Only cells matching: `kernel=6.1 scenario=kmem-*` or a part of the id.
    #[arg(long)]
    pub filter: Option<Filter>,
    /// Cells in parallel (0: what cores and memory allow).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Attempts per cell (overrides the matrix).
    #[arg(long)]
    pub repeat: Option<u32>,
    /// Run only shard I of N (stable hash of the cell id).
    #[arg(long)]
    pub shard: Option<Shard>,
    /// Print the cells and exit.
    #[arg(long)]
    pub list: bool,
    /// Exit 1 on an unexpected pass (a rule expected a failure, none came)
    /// or a stale rule (a cell's kernel is in the rule's `until` range).
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub guest: GuestArgs,
}

#[derive(clap::Args)]
pub struct FixedInArgs {
    pub scenario: String,
    /// Kernels, oldest first (at least two).
    #[arg(long = "kernel", short = 'k', required = true, num_args = 1)]
    pub kernels: Vec<String>,
    #[arg(long = "param", short = 'p', value_parser = parse_kv)]
    pub params: Vec<(String, String)>,
    #[arg(long)]
    pub kubelet: Option<String>,
    #[arg(long)]
    pub rootfs: Option<String>,
    #[arg(long, value_enum)]
    pub driver: Option<Driver>,
    #[arg(long, value_enum)]
    pub cgroup: Option<CgroupVersion>,
    /// Attempts per kernel: a kernel reproduces when at least 2 do (1 with
    /// --repeat 1), is fixed when none do, else is flaky and stepped over.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    #[command(flatten)]
    pub guest: GuestArgs,
}

#[derive(Subcommand)]
pub enum ImagesCmd {
    /// Download and unpack kernels into the cache (for offline use later).
    Fetch {
        #[arg(required = true)]
        kernels: Vec<String>,
    },
    /// List cached kernels, guest images and downloads with sizes and hashes.
    List,
    /// Build root filesystems (images/rootfs/<name>.toml) into the cache.
    Build {
        /// Names (bullseye, bookworm, trixie); none: all of them.
        names: Vec<String>,
        /// Build again even if a cached image exists (new package versions).
        #[arg(long)]
        rebuild: bool,
    },
    /// Build a real kubelet from its Debian source package (the profile's
    /// [build] table, e.g. images/kubelet/1.20.toml) with Debian's Go, or fetch
    /// the official binary its [binary] table pins, into the cache; also
    /// writes the pause and busybox OCI archives the guest imports.
    BuildKubelet {
        /// Kubelet profile version (1.20).
        version: String,
        /// Name of the pause image (containerd's sandbox_image must match).
        #[arg(long, default_value = repro::images::kubelet::container_images::DEFAULT_PAUSE_IMAGE)]
        pause_image: String,
        /// Name of the busybox image.
        #[arg(long, default_value = repro::images::kubelet::container_images::DEFAULT_BUSYBOX_IMAGE)]
        busybox_image: String,
    },
    /// Remove cached images nobody needs: stale root filesystems, initramfs
    /// images unused for a while, unfinished builds. Kernels and downloads stay.
    Gc {
        /// Remove initramfs images unused for this many days.
        #[arg(long, default_value_t = 14)]
        older_than_days: u64,
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got `{s}`"))
}
