//! One function per command: call the library, print what it returns,
//! choose the exit status (`repro::model::ExitStatus`: every error is
//! tagged bad input or infrastructure where it arises). Settings come from
//! `repro::settings`; nothing here decides precedence or runs anything
//! itself.

use crate::cli::{FixedInArgs, GuestArgs, ImagesCmd, MatrixArgs, RunArgs};
use anyhow::Context;
use repro::images::{inventory, Cache};
use repro::model::{ExitStatus, Expectations};
use repro::report::merge::MergeError;
use repro::report::summary::SummaryError;
use repro::report::{render, terminal, RunSummary};
use repro::run::{self, prepare, ExecOptions, RunError};
use repro::settings::{self, Environment, Flags};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A command that failed: what to print and the exit status it means.
#[derive(Debug)]
pub struct Failure {
    pub status: ExitStatus,
    pub error: anyhow::Error,
}

/// What a command returns.
pub type CommandResult = Result<ExitStatus, Failure>;

/// Errors that know their exit status (said beside each error type).
macro_rules! failure_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Failure {
            fn from(e: $t) -> Self {
                Failure {
                    status: e.exit_status(),
                    error: e.into(),
                }
            }
        }
    )*};
}
failure_from!(RunError, SummaryError, MergeError);

/// Tags an error with the exit status it means: every fallible call in a
/// command says whether its failure is bad input or infrastructure.
trait ExitOnError<T>: Sized {
    fn or_exit(self, status: ExitStatus) -> Result<T, Failure>;

    /// Bad input (2): refused before anything ran.
    fn bad_input(self) -> Result<T, Failure> {
        self.or_exit(ExitStatus::BadInput)
    }

    /// Infrastructure (3): failed after the work started.
    fn infrastructure(self) -> Result<T, Failure> {
        self.or_exit(ExitStatus::Infrastructure)
    }
}

impl<T, E: Into<anyhow::Error>> ExitOnError<T> for Result<T, E> {
    fn or_exit(self, status: ExitStatus) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            status,
            error: e.into(),
        })
    }
}

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
            log_cap: g.log_cap,
            out_cap: g.out_cap,
            stall_s: g.stall_s,
        }
    }

    fn cache(&self) -> Cache {
        settings::cache(&self.flags(&GuestArgs::default(), None))
    }

    /// The mirror for commands that run no matrix file.
    fn mirror(&self) -> Option<String> {
        let repo = settings::repository_settings(&self.root);
        settings::mirror(
            &self.flags(&GuestArgs::default(), None),
            &self.env,
            repo.debian_mirror.as_deref(),
        )
    }

    fn exec(&self, g: &GuestArgs, jobs: Option<usize>, default_jobs: usize) -> ExecOptions {
        let repo = settings::repository_settings(&self.root);
        settings::exec_options(
            &self.root,
            &self.flags(g, jobs),
            &self.env,
            None,
            &repo,
            default_jobs,
            self.command_line.clone(),
        )
    }

    pub fn list(&self) -> CommandResult {
        print!("{}", run::list_text(&self.root)?);
        Ok(ExitStatus::Success)
    }

    pub fn images(&self, cmd: ImagesCmd) -> CommandResult {
        let cache = self.cache();
        let reporter = terminal::TerminalReporter::new();
        match cmd {
            ImagesCmd::List => {
                println!("cache {}", cache.root().display());
                print!("{}", inventory::table(&inventory::inventory(&cache)));
            }
            ImagesCmd::Build { names, rebuild } => {
                let mirror = self.mirror();
                let names = prepare::rootfs_names(&self.root, names).bad_input()?;
                for n in &names {
                    prepare::check_rootfs_arg(&self.root, n).bad_input()?;
                }
                for n in names {
                    let r = prepare::prepare_rootfs(
                        &self.root,
                        &cache,
                        mirror.as_deref(),
                        &n,
                        rebuild,
                        &reporter,
                    )
                    .with_context(|| format!("building root filesystem {n}"))
                    .infrastructure()?;
                    println!("{}", r.describe());
                }
            }
            ImagesCmd::Gc {
                older_than_days,
                dry_run,
            } => {
                let current = prepare::current_rootfs_hashes(&self.root).bad_input()?;
                let older = std::time::Duration::from_secs(older_than_days * 86_400);
                let now = std::time::SystemTime::now();
                let report =
                    inventory::gc(&cache, &current, older, now, dry_run).infrastructure()?;
                print!("{report}");
            }
            ImagesCmd::BuildKubelet {
                version,
                pause_image,
                busybox_image,
            } => self.build_kubelet(&cache, &version, &pause_image, &busybox_image)?,
            ImagesCmd::Fetch { kernels } => {
                let mirror = self.mirror();
                for k in &kernels {
                    prepare::check_kernel_arg(&self.root, k).bad_input()?;
                }
                for k in &kernels {
                    let p =
                        prepare::fetch_kernel(&self.root, &cache, mirror.as_deref(), k, &reporter)
                            .with_context(|| format!("fetching kernel {k}"))
                            .infrastructure()?;
                    println!("{k}: {}", prepare::describe_kernel(&p));
                }
            }
        }
        Ok(ExitStatus::Success)
    }

    /// `repro images build-kubelet`: the real kubelet and its images, with an
    /// indicatif bar for downloads and the compile.
    fn build_kubelet(
        &self,
        cache: &Cache,
        version: &str,
        pause_image: &str,
        busybox_image: &str,
    ) -> Result<(), Failure> {
        use repro::images::kubelet as kb;
        let profile =
            repro::kubelet::find(&self.root.join("images/kubelet"), version).bad_input()?;
        let userland_path = self.root.join("images/userland.toml");
        let userland = repro::images::initramfs::Userland::load(&userland_path).bad_input()?;
        let archive = repro::images::Archive::from_discovery(
            repro::images::discover_mirror(self.mirror().as_deref()),
            cache.clone(),
        );
        let started = std::time::Instant::now();
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {prefix} [{bar:30}] {pos}/{len} {wide_msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let on_event = |e: kb::BuildEvent| match e {
            kb::BuildEvent::Step(s) => {
                bar.set_prefix(s);
                bar.set_length(0);
                bar.set_position(0);
                bar.set_message("");
            }
            kb::BuildEvent::Download { done, total, .. } => {
                bar.set_length(total);
                bar.set_position(done);
            }
            kb::BuildEvent::Compile {
                done,
                total,
                package,
                ..
            } => {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
                bar.set_message(package);
            }
        };
        let build = kb::ensure_kubelet(&archive, &profile, &on_event)
            .with_context(|| format!("getting the real kubelet {version}"))
            .infrastructure()?;
        let mut images = Vec::new();
        if build.pause.is_some() {
            images.push(kb::ensure_pause_image(&build, pause_image).infrastructure()?);
            images.push(
                kb::ensure_busybox_image(
                    &archive,
                    &userland,
                    &userland_path,
                    busybox_image,
                    &on_event,
                )
                .infrastructure()?,
            );
        }
        bar.finish_and_clear();
        let how = if build.built { "built" } else { "cached" };
        println!(
            "kubelet {version}: {} ({how}, {:.1} s)",
            build.version,
            started.elapsed().as_secs_f64()
        );
        println!(
            "  binary  {} ({} bytes, sha256 {})",
            build.binary.display(),
            build.size,
            build.sha256
        );
        if !build.go_version.is_empty() {
            println!(
                "  source  {} (orig sha256 {})",
                build.source_version, build.orig_sha256
            );
            println!("  go      {}", build.go_version);
            println!(
                "  key     {} (build took {:.0} s)",
                build.key, build.build_seconds
            );
        }
        for i in &images {
            println!(
                "  image   {} → {} ({} bytes)",
                i.name,
                i.path.display(),
                i.bytes
            );
        }
        Ok(())
    }

    pub fn run(&self, a: RunArgs) -> CommandResult {
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
        let cells = run::plan_request(&self.root, &req).bad_input()?;
        let expectations = if a.fail_on_flaky {
            Expectations::Enforced
        } else {
            Expectations::Recorded
        };
        execute(&self.exec(&a.guest, Some(a.jobs), 1), cells, expectations)
    }

    pub fn matrix(&self, a: MatrixArgs) -> CommandResult {
        let path = a.matrix.unwrap_or_else(|| self.root.join("matrix.toml"));
        let m = repro::plan::load_matrix(&path).bad_input()?;
        let prof = m.profile(&a.profile).bad_input()?;
        let cells = run::plan_matrix(&self.root, &m, &prof, a.filter.as_ref(), a.shard, a.repeat)
            .bad_input()?;
        if a.list {
            for c in &cells {
                println!("{}  expect={} repeat={}", c.id(), c.expect, c.repeat);
            }
            return Ok(ExitStatus::Success);
        }
        if cells.is_empty() {
            return Err(Failure {
                status: ExitStatus::BadInput,
                error: anyhow::anyhow!("no cells in {} match the filter/shard", path.display()),
            });
        }
        let opts = settings::exec_options(
            &self.root,
            &self.flags(&a.guest, a.jobs),
            &self.env,
            Some(&prof),
            &m.settings(),
            0,
            self.command_line.clone(),
        );
        let strict = a.strict.then_some(Strict);
        execute_strict(&opts, cells, Expectations::Enforced, strict)
    }

    pub fn fixed_in(&self, a: FixedInArgs) -> CommandResult {
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
        let cancel = install_signal_handlers().infrastructure()?;
        let reporter = terminal::TerminalReporter::new();
        let on_probe = |k: &str, p, r| println!("{k}: {p:?} (reproduced {r})");
        let report = run::fixed_in(&opts, &template, &a.kernels, &reporter, cancel, &on_probe)?;
        print!("{}", report.text());
        let dir = opts
            .results_root
            .join(format!("fixed-in-{}", run::new_run_id()));
        match report.write(&dir) {
            Ok(p) => println!("{}", p.display()),
            Err(e) => eprintln!("warning: cannot write {}/fixed-in.json: {e}", dir.display()),
        }
        Ok(if report.interrupted {
            ExitStatus::Interrupted
        } else {
            ExitStatus::Success
        })
    }

    pub fn report(&self, dir: PathBuf) -> CommandResult {
        let s = RunSummary::read(&dir)?;
        let dir = if dir.is_dir() {
            dir
        } else {
            dir.parent().map(Path::to_path_buf).unwrap_or_default()
        };
        let files = render::render_all(&s, &dir)
            .with_context(|| format!("writing reports into {}", dir.display()))
            .infrastructure()?;
        for f in files {
            println!("{}", f.display());
        }
        Ok(ExitStatus::Success)
    }

    pub fn compare(&self, old: &Path, new: &Path, markdown: bool) -> CommandResult {
        let old = RunSummary::read(old)?;
        let new = RunSummary::read(new)?;
        let c = repro::report::compare::compare(&old, &new);
        print!("{}", if markdown { c.markdown() } else { c.text() });
        let m = repro::report::metrics::compare_metrics(&old, &new, &self.metric_specs());
        print!("{}", if markdown { m.markdown() } else { m.text() });
        Ok(if c.has_regressions() || m.has_regressions() {
            ExitStatus::Failed
        } else {
            ExitStatus::Success
        })
    }

    /// Each scenario's `[metrics.*]` (scenarios that do not load have none).
    fn metric_specs(
        &self,
    ) -> std::collections::BTreeMap<
        String,
        std::collections::BTreeMap<String, repro::scenario::MetricSpec>,
    > {
        repro::scenario::list(&self.root)
            .map(|all| {
                all.into_iter()
                    .flatten()
                    .map(|s| (s.name().to_string(), s.manifest.metrics.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn merge(&self, dirs: &[PathBuf], out: Option<PathBuf>) -> CommandResult {
        let out = out.unwrap_or_else(|| {
            self.root
                .join("results")
                .join(format!("merged-{}", run::new_run_id()))
        });
        let merged = repro::report::merge::merge_dirs(dirs, &out)?;
        render::render_all(&merged, &out)
            .with_context(|| format!("writing reports into {}", out.display()))
            .infrastructure()?;
        println!(
            "merged {} cell(s) from {} run(s) into {}",
            merged.cells.len(),
            dirs.len(),
            out.display()
        );
        Ok(ExitStatus::Success)
    }
}

/// `repro matrix --strict`: unexpected passes and stale rules fail the run.
struct Strict;

/// Runs cells with signal handling and the terminal reporter; the exit
/// status comes from the run's record (`ExitStatus::of_run`). Everything
/// that fails here happens after planning: infrastructure.
fn execute(
    opts: &ExecOptions,
    cells: Vec<repro::plan::PlannedCell>,
    expectations: Expectations,
) -> CommandResult {
    execute_strict(opts, cells, expectations, None)
}

/// [`execute`], and with `Strict`, exit 1 (at least) when a rule no
/// longer holds up.
fn execute_strict(
    opts: &ExecOptions,
    cells: Vec<repro::plan::PlannedCell>,
    expectations: Expectations,
    strict: Option<Strict>,
) -> CommandResult {
    let cancel = install_signal_handlers().infrastructure()?;
    let reporter = terminal::TerminalReporter::new();
    let done = run::execute(opts, cells, &reporter, cancel.clone()).infrastructure()?;
    print!("{}", terminal::summary_table(&done.summary));
    match render::render_all(&done.summary, &done.dir) {
        Ok(_) => eprintln!("reports: {}", done.dir.join("report.html").display()),
        Err(e) => eprintln!(
            "warning: writing the reports into {} failed: {e}",
            done.dir.display()
        ),
    }
    let status = ExitStatus::of_run(&done.summary, expectations);
    if cancel.load(Ordering::SeqCst) {
        return Ok(status.max(ExitStatus::Interrupted));
    }
    let failed = done
        .summary
        .cells
        .iter()
        .filter(|c| ExitStatus::of_cell(c.status(), expectations) == ExitStatus::Failed)
        .count();
    if failed > 0 {
        eprintln!("{failed} cell(s) did not meet their expectation (status failed or flaky)");
    }
    if done.infrastructure_errors > 0 {
        eprintln!(
            "{} cell(s) ended in `error`: the harness could not run them (see the reasons above)",
            done.infrastructure_errors
        );
    }
    let stale = repro::report::stale::stale_rules(&done.summary).len();
    if stale > 0 && strict.is_some() {
        eprintln!("{stale} rule(s) no longer hold up (unexpected pass or stale rule; --strict): edit the matrix as suggested above");
        return Ok(status.max(ExitStatus::Failed));
    }
    Ok(status)
}

/// Ctrl-C / SIGTERM / SIGHUP: set the cancel flag and kill every guest at
/// once; a second signal exits immediately.
fn install_signal_handlers() -> anyhow::Result<Arc<AtomicBool>> {
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
