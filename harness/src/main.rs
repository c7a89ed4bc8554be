//! The `repro` command line: parse arguments, call the library, map
//! errors to exit codes. Nothing else lives here.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use repro::images::Cache;
use repro::plan::{Filter, Shard};
use repro::report::terminal::TerminalReporter;
use repro::run::{self, ExecOptions, RunRequest};
use repro::vm::AccelChoice;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "repro",
    version,
    about = "Reproduce known Kubernetes-node and Linux-kernel failures inside QEMU guests"
)]
struct Cli {
    /// Cache for downloads, kernels and guest images
    /// [default: $XDG_CACHE_HOME/repro or ~/.cache/repro].
    #[arg(long, global = true, env = "REPRO_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Debian mirror URL (else REPRO_DEBIAN_MIRROR, `debian_mirror` in
    /// matrix.toml, then the host's apt sources).
    #[arg(long, global = true)]
    mirror: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct GuestArgs {
    /// Accelerator: auto probes KVM with a real boot and falls back to TCG.
    #[arg(long, value_enum)]
    accel: Option<AccelChoice>,
    /// Seconds to wait for the guest's SSH after QEMU starts.
    #[arg(long)]
    boot_timeout: Option<u64>,
    /// Folder the run's folder is created in [default: results/].
    #[arg(long)]
    results: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenarios on kernels: one cell per scenario × kernel (× rootfs × kubelet × driver).
    Run {
        /// Scenario names (folders under scenarios/).
        #[arg(required = true)]
        scenarios: Vec<String>,
        /// Kernel: alias (6.1, bookworm), package version, or PATH/vmlinuz[:MODULES_DIR].
        #[arg(long = "kernel", short = 'k', required = true)]
        kernels: Vec<String>,
        /// Boot a Debian root filesystem (images/rootfs/<name>.toml: bullseye,
        /// bookworm, trixie) with systemd, runc and containerd instead of the
        /// initramfs guest; repeatable.
        #[arg(long = "rootfs")]
        rootfs: Vec<String>,
        /// Kubelet profile (images/kubelet/<version>.toml), repeatable.
        #[arg(long = "kubelet")]
        kubelets: Vec<String>,
        /// cgroup driver the kubelet profile lays cgroups out for.
        #[arg(long = "driver", value_parser = ["cgroupfs", "systemd"])]
        drivers: Vec<String>,
        /// Scenario parameter KEY=VALUE (repeatable).
        #[arg(long = "param", short = 'p', value_parser = parse_kv)]
        params: Vec<(String, String)>,
        /// cgroup version (default: the scenario's first supported one).
        #[arg(long, value_parser = ["v1", "v2"])]
        cgroup: Option<String>,
        /// Guest memory in MiB (default: what the scenario declares).
        #[arg(long)]
        memory: Option<u32>,
        /// Guest vCPUs (default: what the scenario declares).
        #[arg(long)]
        vcpus: Option<u32>,
        /// Attempts per cell.
        #[arg(long, default_value_t = 1)]
        repeat: u32,
        /// Cells in parallel (0: what cores and memory allow).
        #[arg(long, short = 'j', default_value_t = 1)]
        jobs: usize,
        #[command(flatten)]
        guest: GuestArgs,
    },
    /// Run a matrix file (default: matrix.toml).
    Matrix {
        #[arg(long)]
        matrix: Option<PathBuf>,
        /// Profile in the matrix file ([profile.NAME]).
        #[arg(long, default_value = "default")]
        profile: String,
        /// Only cells matching: `kernel=6.1 scenario=kmem-*` or a part of the id.
        #[arg(long)]
        filter: Option<Filter>,
        /// Cells in parallel (0: what cores and memory allow).
        #[arg(long, short = 'j')]
        jobs: Option<usize>,
        /// Attempts per cell (overrides the matrix).
        #[arg(long)]
        repeat: Option<u32>,
        /// Run only shard I of N (stable hash of the cell id).
        #[arg(long)]
        shard: Option<Shard>,
        /// Print the cells and exit.
        #[arg(long)]
        list: bool,
        #[command(flatten)]
        guest: GuestArgs,
    },
    /// Find the first kernel (in the order given) from which a scenario no longer reproduces.
    FixedIn {
        scenario: String,
        /// Kernels, oldest first (at least two).
        #[arg(long = "kernel", short = 'k', required = true, num_args = 1)]
        kernels: Vec<String>,
        #[arg(long = "param", short = 'p', value_parser = parse_kv)]
        params: Vec<(String, String)>,
        #[arg(long)]
        kubelet: Option<String>,
        #[arg(long)]
        rootfs: Option<String>,
        #[arg(long, value_parser = ["cgroupfs", "systemd"])]
        driver: Option<String>,
        #[arg(long, value_parser = ["v1", "v2"])]
        cgroup: Option<String>,
        /// Attempts per kernel; a kernel reproduces when any attempt does.
        #[arg(long, default_value_t = 1)]
        repeat: u32,
        #[command(flatten)]
        guest: GuestArgs,
    },
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

#[derive(Subcommand)]
enum ImagesCmd {
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

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got `{s}`"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

struct Env {
    root: PathBuf,
    cache: Cache,
    mirror: Option<String>,
}

impl Env {
    fn exec(
        &self,
        guest: &GuestArgs,
        jobs: usize,
        retries: u32,
        profile: Option<&repro::plan::Profile>,
    ) -> Result<ExecOptions> {
        let accel = match (guest.accel, profile.map(|p| p.accel.as_str())) {
            (Some(a), _) => a,
            (None, Some("kvm")) => AccelChoice::Kvm,
            (None, Some("tcg")) => AccelChoice::Tcg,
            (None, Some("auto") | None) => AccelChoice::Auto,
            (None, Some(other)) => bail!("profile accel `{other}`: use auto, kvm or tcg"),
        };
        let results = guest
            .results
            .clone()
            .or_else(|| {
                profile
                    .and_then(|p| p.results.as_ref())
                    .map(|r| self.root.join(r))
            })
            .unwrap_or_else(|| self.root.join("results"));
        Ok(ExecOptions {
            root: self.root.clone(),
            results_root: results,
            cache: self.cache.clone(),
            mirror: self.mirror.clone(),
            accel,
            boot_timeout: std::time::Duration::from_secs(
                guest
                    .boot_timeout
                    .or(profile.map(|p| p.boot_timeout_s))
                    .unwrap_or(180),
            ),
            jobs,
            retries,
            command: std::env::args().collect::<Vec<_>>().join(" "),
        })
    }
}

fn real_main(cli: Cli) -> Result<ExitCode> {
    let root = repro::paths::repo_root();
    let cache = Cache::new(cli.cache_dir.clone().unwrap_or_else(Cache::default_root));
    // --mirror, then REPRO_DEBIAN_MIRROR (read by the images module), then
    // matrix.toml's debian_mirror, then the host's apt sources.
    let env_mirror = std::env::var_os("REPRO_DEBIAN_MIRROR").is_some();
    let mirror = cli
        .mirror
        .clone()
        .or_else(|| (!env_mirror).then(|| matrix_mirror(&root)).flatten());
    let env = Env {
        root: root.clone(),
        cache,
        mirror,
    };
    match cli.command {
        Command::List => {
            print!("{}", run::list_text(&root)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Images(ImagesCmd::List) => {
            let items = repro::images::inventory::inventory(&env.cache);
            println!("cache {}", env.cache.root().display());
            print!("{}", repro::images::inventory::table(&items));
            Ok(ExitCode::SUCCESS)
        }
        Command::Images(ImagesCmd::Build { names, rebuild }) => {
            let dir = run::prepare::rootfs_dir(&root);
            let names = if names.is_empty() {
                repro::images::rootfs::load_all(&dir)?
                    .into_iter()
                    .map(|n| n.name)
                    .collect()
            } else {
                names
            };
            let reporter = TerminalReporter::new();
            for n in &names {
                let r = run::prepare::prepare_rootfs(
                    &root,
                    &env.cache,
                    env.mirror.as_deref(),
                    n,
                    rebuild,
                    &reporter,
                )
                .with_context(|| format!("building root filesystem {n}"))?;
                let versions: Vec<String> = r
                    .meta
                    .versions
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect();
                println!(
                    "{n}: {} ({}, built in {:.0} s), sha256 {}\n  {}",
                    r.image.display(),
                    repro::images::inventory::human(r.meta.bytes),
                    r.meta.build_secs,
                    r.meta.sha256,
                    versions.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Images(ImagesCmd::Gc {
            older_than_days,
            dry_run,
        }) => {
            let current: Vec<String> =
                repro::images::rootfs::load_all(&run::prepare::rootfs_dir(&root))?
                    .iter()
                    .map(repro::images::rootfs::input_hash)
                    .collect();
            let gone = repro::images::inventory::gc_candidates(
                &env.cache,
                &current,
                std::time::Duration::from_secs(older_than_days * 86_400),
                std::time::SystemTime::now(),
            );
            let mut freed = 0;
            for (item, why) in &gone {
                println!(
                    "{} {} {} {} ({why})",
                    if dry_run { "would remove" } else { "removing" },
                    item.kind,
                    item.name,
                    repro::images::inventory::human(item.bytes)
                );
                if !dry_run {
                    std::fs::remove_dir_all(&item.path)
                        .with_context(|| format!("removing {}", item.path.display()))?;
                }
                freed += item.bytes;
            }
            println!(
                "{} {}",
                if dry_run { "would free" } else { "freed" },
                repro::images::inventory::human(freed)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Images(ImagesCmd::Fetch { kernels }) => {
            let reporter = TerminalReporter::new();
            for k in &kernels {
                let p = run::prepare::fetch_kernel(
                    &root,
                    &env.cache,
                    env.mirror.as_deref(),
                    k,
                    &reporter,
                )
                .with_context(|| format!("fetching kernel {k}"))?;
                println!(
                    "{k}: {} {} ({}), vmlinuz {}",
                    p.package.as_deref().unwrap_or("-"),
                    p.version.as_deref().unwrap_or("-"),
                    p.release,
                    p.vmlinuz.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            scenarios,
            kernels,
            rootfs,
            kubelets,
            drivers,
            params,
            cgroup,
            memory,
            vcpus,
            repeat,
            jobs,
            guest,
        } => {
            let req = RunRequest {
                scenarios,
                kernels,
                rootfs,
                kubelets,
                drivers,
                params,
                cgroup,
                memory_mib: memory,
                vcpus,
                repeat,
            };
            let plans = run::plans_from_request(&root, &req)?;
            let opts = env.exec(&guest, jobs, 1, None)?;
            execute(&opts, plans)
        }
        Command::Matrix {
            matrix,
            profile,
            filter,
            jobs,
            repeat,
            shard,
            list,
            guest,
        } => {
            let path = matrix.unwrap_or_else(|| root.join("matrix.toml"));
            let m = repro::plan::load_matrix(&path)?;
            let prof = m.profile(&profile)?;
            let plans = run::plans_from_matrix(&root, &m, &prof, filter.as_ref(), shard, repeat)?;
            if list {
                for p in &plans {
                    println!("{}  expect={} repeat={}", p.id, p.expect.as_str(), p.repeat);
                }
                return Ok(ExitCode::SUCCESS);
            }
            if plans.is_empty() {
                bail!("no cells in {} match the filter/shard", path.display());
            }
            let mut env2 = Env {
                root: env.root.clone(),
                cache: env.cache.clone(),
                mirror: env.mirror.clone(),
            };
            if env2.mirror.is_none() && std::env::var_os("REPRO_DEBIAN_MIRROR").is_none() {
                env2.mirror = m.file.debian_mirror.clone();
            }
            let opts = env2.exec(
                &guest,
                jobs.or(prof.jobs).unwrap_or(0),
                prof.retries,
                Some(&prof),
            )?;
            let code = execute(&opts, plans)?;
            Ok(code)
        }
        Command::FixedIn {
            scenario,
            kernels,
            params,
            kubelet,
            rootfs,
            driver,
            cgroup,
            repeat,
            guest,
        } => {
            let template = RunRequest {
                scenarios: vec![scenario],
                kernels: vec![],
                rootfs: rootfs.into_iter().collect(),
                kubelets: kubelet.into_iter().collect(),
                drivers: driver.into_iter().collect(),
                params,
                cgroup,
                memory_mib: None,
                vcpus: None,
                repeat,
            };
            fixed_in(&env, &guest, &kernels, template)
        }
        Command::Report { dir } => {
            let s = repro::report::RunSummary::read(&dir)?;
            let dir = if dir.is_dir() {
                dir
            } else {
                dir.parent().map(Path::to_path_buf).unwrap_or_default()
            };
            let files = repro::report::render::render_all(&s, &dir)
                .with_context(|| format!("writing reports into {}", dir.display()))?;
            for f in files {
                println!("{}", f.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Compare { old, new, markdown } => {
            let old = repro::report::RunSummary::read(&old)?;
            let new = repro::report::RunSummary::read(&new)?;
            let c = repro::report::compare::compare(&old, &new);
            print!("{}", if markdown { c.markdown() } else { c.text() });
            Ok(if c.has_regressions() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Merge { dirs, out } => {
            let out = out.unwrap_or_else(|| {
                root.join("results")
                    .join(format!("merged-{}", run::new_run_id()))
            });
            let merged = repro::report::merge::merge_dirs(&dirs, &out)?;
            repro::report::render::render_all(&merged, &out)?;
            println!(
                "merged {} cell(s) from {} run(s) into {}",
                merged.cells.len(),
                dirs.len(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs plans with signal handling and the terminal reporter; maps the
/// result to an exit status.
fn execute(opts: &ExecOptions, plans: Vec<run::CellPlan>) -> Result<ExitCode> {
    let cancel = Arc::new(AtomicBool::new(false));
    install_signal_handlers(cancel.clone())?;
    let reporter = TerminalReporter::new();
    let done = run::execute(opts, plans, &reporter, cancel.clone())?;
    print!("{}", repro::report::terminal::summary_table(&done.summary));
    match repro::report::render::render_all(&done.summary, &done.dir) {
        Ok(_) => eprintln!("reports: {}", done.dir.join("report.html").display()),
        Err(e) => eprintln!(
            "warning: writing the reports into {} failed: {e}",
            done.dir.display()
        ),
    }
    if cancel.load(Ordering::SeqCst) {
        return Ok(ExitCode::from(130));
    }
    if done.infrastructure_errors > 0 {
        eprintln!(
            "{} cell(s) ended in `error`: the harness could not run them (see the reasons above)",
            done.infrastructure_errors
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::too_many_arguments)]
fn fixed_in(
    env: &Env,
    guest: &GuestArgs,
    kernels: &[String],
    template: RunRequest,
) -> Result<ExitCode> {
    use repro::plan::bisect::{next_probe, verdict, Probe};
    let scenario = template.scenarios.first().cloned().unwrap_or_default();
    if kernels.len() < 2 {
        bail!("fixed-in needs at least two kernels, oldest first");
    }
    let opts = env.exec(guest, 1, 1, None)?;
    let mut results: Vec<Option<Probe>> = vec![None; kernels.len()];
    let cancel = Arc::new(AtomicBool::new(false));
    install_signal_handlers(cancel.clone())?;
    while let Some(i) = next_probe(&results) {
        let req = RunRequest {
            kernels: vec![kernels[i].clone()],
            ..template.clone()
        };
        let plans = run::plans_from_request(&env.root, &req)?;
        let done = run::execute(&opts, plans, &TerminalReporter::new(), cancel.clone())?;
        if cancel.load(Ordering::SeqCst) {
            return Ok(ExitCode::from(130));
        }
        let cell = &done.summary.cells[0];
        let probe = if cell
            .attempts
            .iter()
            .any(|a| a.outcome == repro::model::Outcome::Reproduced)
        {
            Probe::Reproduces
        } else if cell
            .attempts
            .iter()
            .any(|a| a.outcome == repro::model::Outcome::NotReproduced)
        {
            Probe::Fixed
        } else {
            Probe::Unknown
        };
        println!("{}: {:?} ({})", kernels[i], probe, cell.outcome());
        results[i] = Some(probe);
    }
    let v = verdict(&results);
    if !v.reproduced_at_start {
        println!(
            "{scenario} does not reproduce on the oldest kernel probed ({}): nothing to bisect",
            kernels[0]
        );
    }
    match v.fixed_in {
        Some(i) => println!(
            "{scenario}: fixed in {} (first kernel from which it no longer reproduces)",
            kernels[i]
        ),
        None => println!(
            "{scenario}: still reproduces on {}",
            kernels[kernels.len() - 1]
        ),
    }
    for i in &v.comes_back {
        println!(
            "{scenario}: reproduces again on {} (regression)",
            kernels[*i]
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `debian_mirror` from the repository's matrix.toml, if set.
fn matrix_mirror(root: &Path) -> Option<String> {
    let text = std::fs::read_to_string(root.join("matrix.toml")).ok()?;
    let v: toml::Value = toml::from_str(&text).ok()?;
    v.get("debian_mirror")?.as_str().map(str::to_string)
}

/// Ctrl-C / SIGTERM / SIGHUP: set the cancel flag and kill every guest at
/// once; a second signal exits immediately.
fn install_signal_handlers(cancel: Arc<AtomicBool>) -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .context("installing signal handlers")?;
    std::thread::spawn(move || {
        for sig in signals.forever() {
            if cancel.swap(true, Ordering::SeqCst) {
                repro::vm::kill_all();
                std::process::exit(128 + sig);
            }
            let n = repro::vm::kill_all();
            eprintln!("interrupted: stopped {n} guest(s); writing partial results (signal again to quit now)");
        }
    });
    Ok(())
}
