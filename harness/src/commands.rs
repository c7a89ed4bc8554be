//! One function per command: call the library, print what it returns,
//! choose the exit code. Settings come from `repro::settings`; nothing
//! here decides precedence or runs anything itself.

use crate::cli::{FixedInArgs, GuestArgs, ImagesCmd, MatrixArgs, RunArgs};
use anyhow::{Context, Result};
use repro::images::{inventory, Cache};
use repro::report::{render, terminal, RunSummary};
use repro::run::{self, prepare, ExecOptions};
use repro::settings::{self, Environment, Flags};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What every command knows: the repository, the environment and the
/// global flags.
pub struct Ctx {
    pub root: PathBuf,
    pub env: Environment,
    pub cache_dir: Option<PathBuf>,
    pub mirror: Option<String>,
    pub command_line: String,
}

impl Ctx {
    fn flags(&self, g: &GuestArgs, jobs: Option<usize>) -> Flags {
        Flags {
            cache_dir: self.cache_dir.clone(),
            mirror: self.mirror.clone(),
            accel: g.accel,
            boot_timeout_s: g.boot_timeout,
            results: g.results.clone(),
            jobs,
        }
    }

    fn cache(&self) -> Cache {
        settings::cache(&self.flags(&GuestArgs::default(), None))
    }

    /// The mirror for commands that run no matrix file.
    fn mirror(&self) -> Option<String> {
        let repo = settings::repository_mirror(&self.root);
        settings::mirror(
            &self.flags(&GuestArgs::default(), None),
            &self.env,
            repo.as_deref(),
        )
    }

    fn exec(&self, g: &GuestArgs, jobs: Option<usize>, default_jobs: usize) -> ExecOptions {
        let repo = settings::repository_mirror(&self.root);
        settings::exec_options(
            &self.root,
            &self.flags(g, jobs),
            &self.env,
            None,
            repo.as_deref(),
            default_jobs,
            self.command_line.clone(),
        )
    }

    pub fn list(&self) -> Result<ExitCode> {
        print!("{}", run::list_text(&self.root)?);
        Ok(ExitCode::SUCCESS)
    }

    pub fn images(&self, cmd: ImagesCmd) -> Result<ExitCode> {
        let cache = self.cache();
        let reporter = terminal::TerminalReporter::new();
        match cmd {
            ImagesCmd::List => {
                println!("cache {}", cache.root().display());
                print!("{}", inventory::table(&inventory::inventory(&cache)));
            }
            ImagesCmd::Build { names, rebuild } => {
                let mirror = self.mirror();
                for n in prepare::rootfs_names(&self.root, names)? {
                    let r = prepare::prepare_rootfs(
                        &self.root,
                        &cache,
                        mirror.as_deref(),
                        &n,
                        rebuild,
                        &reporter,
                    )
                    .with_context(|| format!("building root filesystem {n}"))?;
                    println!("{}", r.describe());
                }
            }
            ImagesCmd::Gc {
                older_than_days,
                dry_run,
            } => {
                let current = prepare::current_rootfs_hashes(&self.root)?;
                let older = std::time::Duration::from_secs(older_than_days * 86_400);
                let now = std::time::SystemTime::now();
                let report = inventory::gc(&cache, &current, older, now, dry_run)?;
                print!("{report}");
            }
            ImagesCmd::Fetch { kernels } => {
                let mirror = self.mirror();
                for k in &kernels {
                    let p =
                        prepare::fetch_kernel(&self.root, &cache, mirror.as_deref(), k, &reporter)
                            .with_context(|| format!("fetching kernel {k}"))?;
                    println!("{k}: {}", prepare::describe_kernel(&p));
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    pub fn run(&self, a: RunArgs) -> Result<ExitCode> {
        let req = repro::plan::Request {
            scenarios: a.scenarios,
            kernels: a.kernels,
            rootfs: a.rootfs,
            kubelets: a.kubelets,
            drivers: a.drivers,
            params: a.params,
            cgroup: a.cgroup,
            memory_mib: a.memory,
            vcpus: a.vcpus,
            repeat: a.repeat,
        };
        let cells = run::plan_request(&self.root, &req)?;
        execute(&self.exec(&a.guest, Some(a.jobs), 1), cells)
    }

    pub fn matrix(&self, a: MatrixArgs) -> Result<ExitCode> {
        let path = a.matrix.unwrap_or_else(|| self.root.join("matrix.toml"));
        let m = repro::plan::load_matrix(&path)?;
        let prof = m.profile(&a.profile)?;
        let cells = run::plan_matrix(&self.root, &m, &prof, a.filter.as_ref(), a.shard, a.repeat)?;
        if a.list {
            for c in &cells {
                println!(
                    "{}  expect={} repeat={}",
                    c.id(),
                    c.expect.as_str(),
                    c.repeat
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        anyhow::ensure!(
            !cells.is_empty(),
            "no cells in {} match the filter/shard",
            path.display()
        );
        let opts = settings::exec_options(
            &self.root,
            &self.flags(&a.guest, a.jobs),
            &self.env,
            Some(&prof),
            m.debian_mirror(),
            0,
            self.command_line.clone(),
        );
        execute(&opts, cells)
    }

    pub fn fixed_in(&self, a: FixedInArgs) -> Result<ExitCode> {
        let template = repro::plan::Request {
            scenarios: vec![a.scenario],
            rootfs: a.rootfs.into_iter().collect(),
            kubelets: a.kubelet.into_iter().collect(),
            drivers: a.driver.into_iter().collect(),
            params: a.params,
            cgroup: a.cgroup,
            repeat: a.repeat,
            ..Default::default()
        };
        let opts = self.exec(&a.guest, None, 1);
        let cancel = install_signal_handlers()?;
        let reporter = terminal::TerminalReporter::new();
        let on_probe = |k: &str, p, o| println!("{k}: {p:?} ({o})");
        let report = run::fixed_in(&opts, &template, &a.kernels, &reporter, cancel, &on_probe)?;
        print!("{}", report.text());
        Ok(if report.interrupted {
            ExitCode::from(130)
        } else {
            ExitCode::SUCCESS
        })
    }

    pub fn report(&self, dir: PathBuf) -> Result<ExitCode> {
        let s = RunSummary::read(&dir)?;
        let dir = if dir.is_dir() {
            dir
        } else {
            dir.parent().map(Path::to_path_buf).unwrap_or_default()
        };
        let files = render::render_all(&s, &dir)
            .with_context(|| format!("writing reports into {}", dir.display()))?;
        for f in files {
            println!("{}", f.display());
        }
        Ok(ExitCode::SUCCESS)
    }

    pub fn compare(&self, old: &Path, new: &Path, markdown: bool) -> Result<ExitCode> {
        let c = repro::report::compare::compare(&RunSummary::read(old)?, &RunSummary::read(new)?);
        print!("{}", if markdown { c.markdown() } else { c.text() });
        Ok(if c.has_regressions() {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    }

    pub fn merge(&self, dirs: &[PathBuf], out: Option<PathBuf>) -> Result<ExitCode> {
        let out = out.unwrap_or_else(|| {
            self.root
                .join("results")
                .join(format!("merged-{}", run::new_run_id()))
        });
        let merged = repro::report::merge::merge_dirs(dirs, &out)?;
        render::render_all(&merged, &out)?;
        println!(
            "merged {} cell(s) from {} run(s) into {}",
            merged.cells.len(),
            dirs.len(),
            out.display()
        );
        Ok(ExitCode::SUCCESS)
    }
}

/// Runs cells with signal handling and the terminal reporter; maps the
/// result to an exit status.
fn execute(opts: &ExecOptions, cells: Vec<repro::plan::PlannedCell>) -> Result<ExitCode> {
    let cancel = install_signal_handlers()?;
    let reporter = terminal::TerminalReporter::new();
    let done = run::execute(opts, cells, &reporter, cancel.clone())?;
    print!("{}", terminal::summary_table(&done.summary));
    match render::render_all(&done.summary, &done.dir) {
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

/// Ctrl-C / SIGTERM / SIGHUP: set the cancel flag and kill every guest at
/// once; a second signal exits immediately.
fn install_signal_handlers() -> Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .context("installing signal handlers")?;
    std::thread::spawn(move || {
        for sig in signals.forever() {
            if flag.swap(true, Ordering::SeqCst) {
                repro::vm::kill_all();
                std::process::exit(128 + sig);
            }
            let n = repro::vm::kill_all();
            eprintln!("interrupted: stopped {n} guest(s); writing partial results (signal again to quit now)");
        }
    });
    Ok(cancel)
}
