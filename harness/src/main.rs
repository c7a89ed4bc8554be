//! The `repro` command line: parse arguments, call the library, map
//! errors to exit codes. Nothing else lives here.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use repro::images::Cache;
use repro::report::terminal::TerminalReporter;
use repro::run::{self, RunOptions};
use repro::vm::AccelChoice;
use std::path::PathBuf;
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

#[derive(Subcommand)]
enum Command {
    /// Run scenarios on kernels, one cell per scenario × kernel.
    Run(RunArgs),
    /// List the scenarios and the known kernels.
    List,
    /// Manage cached kernels and images.
    #[command(subcommand)]
    Images(ImagesCmd),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Scenario names (folders under scenarios/).
    #[arg(required = true)]
    scenarios: Vec<String>,
    /// Kernel: alias (6.1, bookworm), package version, or PATH/vmlinuz[:MODULES_DIR].
    #[arg(long = "kernel", short = 'k', required = true)]
    kernels: Vec<String>,
    /// Scenario parameter KEY=VALUE (repeatable).
    #[arg(long = "param", short = 'p', value_parser = parse_kv)]
    params: Vec<(String, String)>,
    /// cgroup version (default: the scenario's first supported one).
    #[arg(long, value_parser = ["v1", "v2"])]
    cgroup: Option<String>,
    /// Folder the run's folder is created in [default: results/].
    #[arg(long)]
    results: Option<PathBuf>,
    /// Accelerator: auto probes KVM with a real boot and falls back to TCG.
    #[arg(long, value_enum, default_value = "auto")]
    accel: AccelChoice,
    /// Guest memory in MiB (default: what the scenario declares).
    #[arg(long)]
    memory: Option<u32>,
    /// Seconds to wait for the guest's SSH after QEMU starts.
    #[arg(long, default_value_t = 180)]
    boot_timeout: u64,
}

#[derive(Subcommand)]
enum ImagesCmd {
    /// Download and unpack kernels into the cache (for offline use later).
    Fetch {
        #[arg(required = true)]
        kernels: Vec<String>,
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

fn real_main(cli: Cli) -> Result<ExitCode> {
    let root = repro::paths::repo_root();
    let cache = Cache::new(cli.cache_dir.clone().unwrap_or_else(Cache::default_root));
    let mirror = cli.mirror.clone().or_else(|| matrix_mirror(&root));
    match cli.command {
        Command::List => {
            print!("{}", run::list_text(&root)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Images(ImagesCmd::Fetch { kernels }) => {
            let reporter = TerminalReporter::new();
            for k in &kernels {
                let p = run::prepare::fetch_kernel(&root, &cache, mirror.as_deref(), k, &reporter)
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
        Command::Run(args) => {
            let cancel = Arc::new(AtomicBool::new(false));
            install_signal_handlers(cancel.clone())?;
            let reporter = TerminalReporter::new();
            let opts = RunOptions {
                root: root.clone(),
                scenarios: args.scenarios,
                kernels: args.kernels,
                params: args.params,
                cgroup: args.cgroup,
                results_root: args.results.unwrap_or_else(|| root.join("results")),
                cache,
                mirror,
                accel: args.accel,
                memory_mib: args.memory,
                boot_timeout: std::time::Duration::from_secs(args.boot_timeout),
                command: std::env::args().collect::<Vec<_>>().join(" "),
            };
            let done = run::run(&opts, &reporter, cancel.clone())?;
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
    }
}

/// `debian_mirror` from the repository's matrix.toml, if set.
fn matrix_mirror(root: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(root.join("matrix.toml")).ok()?;
    let v: toml::Value = toml::from_str(&text).ok()?;
    v.get("debian_mirror")?.as_str().map(str::to_string)
}

/// Ctrl-C / SIGTERM: set the cancel flag and kill every guest at once; a
/// second signal exits immediately.
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
