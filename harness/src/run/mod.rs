//! The runner: turns a request into cells, prepares kernels and images,
//! runs each cell's attempts and records them. It emits [`Event`]s and
//! writes `summary.json` after every cell; it never prints.

pub mod cell;
pub mod events;
pub mod prepare;
pub mod result;

pub use cell::CellPlan;
pub use events::{Event, EventSink};

use crate::images::Cache;
use crate::model::{Attempt, KernelInfo, Outcome, Phase, Timings};
use crate::report::Expect;
use crate::report::{CellRecord, RunMeta, RunSummary, SCHEMA_VERSION};
use crate::scenario::{self, Scenario};
use crate::vm::{self, AccelChoice};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What `repro run` asked for: scenarios × kernels from the CLI.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub scenarios: Vec<String>,
    pub kernels: Vec<String>,
    /// Root filesystems (empty: the initramfs guest).
    pub rootfs: Vec<String>,
    pub kubelets: Vec<String>,
    pub drivers: Vec<String>,
    pub params: Vec<(String, String)>,
    pub cgroup: Option<String>,
    pub memory_mib: Option<u32>,
    pub vcpus: Option<u32>,
    pub repeat: u32,
}

/// How to execute cells (shared by `repro run` and `repro matrix`).
pub struct ExecOptions {
    pub root: PathBuf,
    pub results_root: PathBuf,
    pub cache: Cache,
    pub mirror: Option<String>,
    pub accel: AccelChoice,
    pub boot_timeout: Duration,
    /// Cells in parallel (0: what cores and memory allow).
    pub jobs: usize,
    /// Extra attempts after an infrastructure `error`.
    pub retries: u32,
    pub command: String,
}

/// How a run ended.
pub struct RunDone {
    pub dir: PathBuf,
    pub summary: RunSummary,
    /// Cells whose status is `error` (the harness could not run them).
    pub infrastructure_errors: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Scenario(#[from] scenario::ScenarioError),
    #[error(transparent)]
    Prepare(#[from] prepare::PrepareError),
    #[error(transparent)]
    Profile(#[from] crate::kubelet::ProfileError),
    #[error(transparent)]
    Matrix(#[from] crate::plan::MatrixError),
    #[error("cannot create the results folder {path}: {source}")]
    Results {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Summary(#[from] crate::report::summary::SummaryError),
    #[error("cannot make the run's SSH key: {0}")]
    Key(#[from] crate::keys::KeyError),
    #[error("no cells to run{0}")]
    Empty(String),
}

/// Current UTC time as RFC 3339.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A sortable, unique run id: `20261122-201500-3fa2`.
pub fn new_run_id() -> String {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!("[year][month][day]-[hour][minute][second]");
    let mut rnd = [0u8; 2];
    let _ = getrandom(&mut rnd);
    format!(
        "{}-{}",
        now.format(&fmt).unwrap_or_default(),
        hex::encode(rnd)
    )
}

fn getrandom(buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

/// Text for `repro list`.
pub fn list_text(root: &Path) -> Result<String, RunError> {
    let mut s = String::from("Scenarios:\n");
    for sc in scenario::list(&crate::paths::scenarios_dir(root))? {
        match sc {
            Ok(sc) => s.push_str(&format!(
                "  {:<22} {} (seed {} §{}; cgroup {})\n",
                sc.name(),
                sc.manifest.summary,
                sc.manifest.seed.file,
                sc.manifest.seed.section,
                sc.manifest.cgroup.join("/")
            )),
            Err(e) => s.push_str(&format!("  (broken) {e}\n")),
        }
    }
    s.push_str("\nKernels:\n");
    s.push_str(&prepare::kernels_text(root)?);
    s.push_str("\nRoot filesystems (--rootfs; without it, the initramfs guest):\n");
    for r in crate::images::rootfs::load_all(&prepare::rootfs_dir(root))
        .map_err(prepare::PrepareError::from)?
    {
        s.push_str(&format!(
            "  {:<9} Debian {} ({} packages)\n",
            r.name,
            r.manifest.suite,
            r.manifest.packages.len()
        ));
    }
    s.push_str(
        "\nKubelet profiles (node-level actions of each kubelet version, not the binary):\n",
    );
    for p in crate::kubelet::load_all(&root.join("images/kubelet"))? {
        s.push_str(&format!("  {:<6} {}\n", p.version, p.summary));
    }
    Ok(s)
}

/// Builds the scenario × kernel × kubelet × driver cells of `repro run`.
pub fn plans_from_request(root: &Path, req: &RunRequest) -> Result<Vec<CellPlan>, RunError> {
    let scen_root = crate::paths::scenarios_dir(root);
    let scenarios: Vec<Scenario> = req
        .scenarios
        .iter()
        .map(|n| scenario::find(&scen_root, n))
        .collect::<Result<_, _>>()?;
    let opt = |v: &[String]| -> Vec<Option<String>> {
        if v.is_empty() {
            vec![None]
        } else {
            v.iter().cloned().map(Some).collect()
        }
    };
    let mut plans: Vec<CellPlan> = Vec::new();
    for r in &req.rootfs {
        prepare::check_rootfs_arg(root, r)?;
    }
    for k in &req.kernels {
        prepare::check_kernel_arg(root, k)?;
        for (rootfs, kubelet) in opt(&req.rootfs)
            .into_iter()
            .flat_map(|r| opt(&req.kubelets).into_iter().map(move |k| (r.clone(), k)))
        {
            for driver in opt(&req.drivers) {
                for sc in &scenarios {
                    let params = sc.params(&req.params)?;
                    let cgroup = sc.cgroup(req.cgroup.as_deref());
                    plans.push(make_plan(
                        root,
                        sc,
                        sc.name(),
                        k,
                        rootfs.clone(),
                        kubelet.clone(),
                        driver.clone(),
                        cgroup,
                        params,
                        Expect::Any,
                        req.repeat.max(1),
                    )?);
                    let last = plans.last_mut().unwrap();
                    last.memory_mib = req.memory_mib;
                    last.vcpus = req.vcpus;
                }
            }
        }
    }
    Ok(plans)
}

/// A plan with its id and the kubelet profile's environment.
#[allow(clippy::too_many_arguments)]
pub fn make_plan(
    root: &Path,
    sc: &Scenario,
    label: &str,
    kernel: &str,
    rootfs: Option<String>,
    kubelet: Option<String>,
    driver: Option<String>,
    cgroup: String,
    params: BTreeMap<String, String>,
    expect: Expect,
    repeat: u32,
) -> Result<CellPlan, RunError> {
    let mut extra_env = Vec::new();
    if let Some(v) = &kubelet {
        let profile = crate::kubelet::find(&root.join("images/kubelet"), v)?;
        extra_env = profile.env(driver.as_deref());
    } else if let Some(d) = &driver {
        extra_env.push(("REPRO_DRIVER".into(), d.clone()));
    }
    Ok(CellPlan {
        id: crate::plan::cell_id(
            label,
            kernel,
            rootfs.as_deref(),
            kubelet.as_deref(),
            driver.as_deref(),
            &cgroup,
        ),
        scenario: sc.clone(),
        kernel: kernel.to_string(),
        rootfs,
        kubelet,
        driver,
        cgroup,
        params,
        extra_env,
        expect,
        repeat,
        memory_mib: None,
        vcpus: None,
        timeout_s: None,
    })
}

/// Turns a matrix's cells into plans (filtered and sharded).
pub fn plans_from_matrix(
    root: &Path,
    matrix: &crate::plan::Matrix,
    profile: &crate::plan::Profile,
    filter: Option<&crate::plan::Filter>,
    shard: Option<crate::plan::Shard>,
    repeat: Option<u32>,
) -> Result<Vec<CellPlan>, RunError> {
    let mut scenarios = BTreeMap::new();
    for sc in scenario::list(&crate::paths::scenarios_dir(root))? {
        let sc = sc?;
        scenarios.insert(sc.name().to_string(), sc);
    }
    let mut plans = Vec::new();
    for c in matrix.cells(&scenarios)? {
        if filter.is_some_and(|f| !f.matches(&c)) || shard.is_some_and(|s| !s.contains(&c.id)) {
            continue;
        }
        prepare::check_kernel_arg(root, &c.kernel)?;
        if let Some(r) = &c.rootfs {
            prepare::check_rootfs_arg(root, r)?;
        }
        let sc = &scenarios[&c.scenario];
        let label = c.id.split('/').next().unwrap_or(&c.scenario).to_string();
        let mut p = make_plan(
            root,
            sc,
            &label,
            &c.kernel,
            c.rootfs.clone(),
            c.kubelet.clone(),
            c.driver.clone(),
            c.cgroup.clone(),
            c.params.clone(),
            c.expect,
            repeat.unwrap_or(c.repeat.max(profile.repeat)),
        )?;
        p.id = c.id.clone();
        p.timeout_s = c.timeout_s;
        p.memory_mib = c.memory_mib.or(profile.memory_mib);
        p.vcpus = c.vcpus.or(profile.vcpus);
        plans.push(p);
    }
    Ok(plans)
}

/// Parallel cells the machine can hold: cores, and guest memory against
/// what is available (TCG guests keep one core busy each).
pub fn default_jobs(plans: &[CellPlan]) -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let avail_mib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(4096);
    let guest = plans
        .iter()
        .map(|p| u64::from(p.memory_mib.unwrap_or(p.scenario.manifest.memory_mib)) + 256)
        .max()
        .unwrap_or(1024);
    let by_mem = (avail_mib.saturating_sub(1024) / guest).max(1) as usize;
    cores.min(by_mem).max(1)
}

/// Runs `plans` (in parallel up to `opts.jobs`) and records everything
/// under a new run folder.
pub fn execute(
    opts: &ExecOptions,
    plans: Vec<CellPlan>,
    sink: &dyn EventSink,
    cancel: Arc<AtomicBool>,
) -> Result<RunDone, RunError> {
    if plans.is_empty() {
        return Err(RunError::Empty(String::new()));
    }
    let run_id = new_run_id();
    let dir = opts.results_root.join(&run_id);
    std::fs::create_dir_all(&dir).map_err(|source| RunError::Results {
        path: dir.clone(),
        source,
    })?;
    let key = crate::guest::KeyPair::generate()?;
    let qemu = vm::qemu_binary();
    let jobs = if opts.jobs == 0 {
        default_jobs(&plans)
    } else {
        opts.jobs
    };
    let summary = Mutex::new(RunSummary {
        schema_version: SCHEMA_VERSION,
        run_id: run_id.clone(),
        started_at: now_rfc3339(),
        finished_at: None,
        complete: false,
        meta: RunMeta {
            repro_version: env!("CARGO_PKG_VERSION").into(),
            qemu_version: vm::qemu_version(&qemu),
            host_kernel: vm::host_kernel(),
            accel: String::new(),
            accel_reason: String::new(),
            images: BTreeMap::new(),
            command: opts.command.clone(),
        },
        cells: Vec::new(),
    });
    summary.lock().unwrap().write(&dir)?;
    sink.event(&Event::RunStarted {
        run_id,
        dir: dir.clone(),
        cells: plans.len(),
    });
    if jobs > 1 {
        sink.event(&Event::Info(format!(
            "running up to {jobs} cells in parallel"
        )));
    }

    // Kernels and images first, once each, in the order cells need them.
    let mut prepared: BTreeMap<String, Result<prepare::PreparedKernel, String>> = BTreeMap::new();
    for plan in &plans {
        if prepared.contains_key(&plan.kernel) || cancel.load(Ordering::SeqCst) {
            continue;
        }
        sink.event(&Event::Info(format!(
            "preparing kernel {} and its guest image",
            plan.kernel
        )));
        let p = prepare::prepare_kernel(
            &opts.root,
            &opts.cache,
            opts.mirror.as_deref(),
            &plan.kernel,
            sink,
        )
        .map_err(|e| e.to_string());
        if let Ok(p) = &p {
            summary
                .lock()
                .unwrap()
                .meta
                .images
                .insert(plan.kernel.clone(), p.image_sha256.clone());
        }
        prepared.insert(plan.kernel.clone(), p);
    }
    let mut rootfses: BTreeMap<String, Result<prepare::PreparedRootfs, String>> = BTreeMap::new();
    for name in plans.iter().filter_map(|p| p.rootfs.as_ref()) {
        if rootfses.contains_key(name) || cancel.load(Ordering::SeqCst) {
            continue;
        }
        let r = prepare::prepare_rootfs(
            &opts.root,
            &opts.cache,
            opts.mirror.as_deref(),
            name,
            false,
            sink,
        )
        .map_err(|e| e.to_string());
        if let Ok(r) = &r {
            summary
                .lock()
                .unwrap()
                .meta
                .images
                .insert(format!("rootfs={name}"), r.meta.sha256.clone());
        }
        rootfses.insert(name.clone(), r);
    }
    let accel = match prepared.values().find_map(|p| p.as_ref().ok()) {
        Some(p) => {
            let (a, why) = prepare::choose_accel(&opts.cache, &qemu, opts.accel, p);
            sink.event(&Event::Info(format!("accelerator: {} ({why})", a.as_str())));
            let mut s = summary.lock().unwrap();
            s.meta.accel = a.as_str().into();
            s.meta.accel_reason = why;
            a
        }
        None => crate::vm::Accel::Tcg,
    };

    let queue: Mutex<std::collections::VecDeque<usize>> = Mutex::new((0..plans.len()).collect());
    let records: Mutex<Vec<Option<CellRecord>>> = Mutex::new(vec![None; plans.len()]);
    let done_count = std::sync::atomic::AtomicUsize::new(0);
    let write_error: Mutex<Option<RunError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(plans.len()) {
            scope.spawn(|| loop {
                if cancel.load(Ordering::SeqCst) {
                    break;
                }
                let Some(i) = queue.lock().unwrap().pop_front() else {
                    break;
                };
                let plan = &plans[i];
                sink.event(&Event::CellStarted {
                    id: plan.id.clone(),
                });
                let rootfs = plan.rootfs.as_ref().map(|r| &rootfses[r]);
                let ready = match (&prepared[&plan.kernel], rootfs) {
                    (Err(e), _) | (_, Some(Err(e))) => Err(e.clone()),
                    (Ok(p), r) => Ok((p, r.and_then(|r| r.as_ref().ok()))),
                };
                let attempts = match ready {
                    Err(e) => {
                        let a =
                            harness_attempt(plan, Outcome::Error, Some(Phase::Image), e.clone());
                        sink.event(&Event::AttemptFinished {
                            id: plan.id.clone(),
                            attempt: Box::new(a.clone()),
                            key_metric: plan.scenario.manifest.key_metric.clone(),
                        });
                        vec![a]
                    }
                    Ok((p, rootfs)) => {
                        let ctx = cell::RunContext {
                            qemu: qemu.clone(),
                            accel,
                            key: &key,
                            run_dir: &dir,
                            boot_timeout: opts.boot_timeout,
                            cancel: cancel.clone(),
                            sink,
                        };
                        run_cell(&ctx, plan, p, rootfs, opts.retries)
                    }
                };
                let rec = record(plan, attempts);
                let n = done_count.fetch_add(1, Ordering::SeqCst) + 1;
                sink.event(&Event::CellFinished {
                    id: plan.id.clone(),
                    status: rec.status(),
                    done: n,
                    total: plans.len(),
                });
                let mut recs = records.lock().unwrap();
                recs[i] = Some(rec);
                let mut s = summary.lock().unwrap();
                s.cells = recs.iter().flatten().cloned().collect();
                if let Err(e) = s.write(&dir) {
                    *write_error.lock().unwrap() = Some(e.into());
                }
            });
        }
    });
    if let Some(e) = write_error.into_inner().unwrap() {
        return Err(e);
    }
    let interrupted = cancel.load(Ordering::SeqCst);
    let mut summary = summary.into_inner().unwrap();
    summary.cells = records
        .into_inner()
        .unwrap()
        .into_iter()
        .zip(&plans)
        .map(|(r, plan)| {
            r.unwrap_or_else(|| {
                record(
                    plan,
                    vec![harness_attempt(
                        plan,
                        Outcome::Cancelled,
                        None,
                        "the run was interrupted before this cell finished".into(),
                    )],
                )
            })
        })
        .collect();
    summary.finished_at = Some(now_rfc3339());
    summary.complete = !interrupted;
    summary.write(&dir)?;
    sink.event(&Event::RunFinished {
        dir: dir.clone(),
        interrupted,
    });
    let infrastructure_errors = summary
        .cells
        .iter()
        .filter(|c| c.status() == crate::report::Status::Error)
        .count();
    Ok(RunDone {
        dir,
        summary,
        infrastructure_errors,
    })
}

/// All attempts of one cell: `repeat` judged attempts, each retried up to
/// `retries` times after an infrastructure error.
fn run_cell(
    ctx: &cell::RunContext,
    plan: &CellPlan,
    p: &prepare::PreparedKernel,
    rootfs: Option<&prepare::PreparedRootfs>,
    retries: u32,
) -> Vec<Attempt> {
    let mut attempts = Vec::new();
    let mut number = 0;
    for _ in 0..plan.repeat.max(1) {
        let mut tries = 0;
        loop {
            number += 1;
            let a = cell::run_attempt(ctx, plan, p, rootfs, number);
            // Retry infrastructure failures only: a script that exited
            // non-zero broke its contract, and would again.
            let infra = a.outcome == Outcome::Error && a.exit_status.is_none();
            ctx.sink.event(&Event::AttemptFinished {
                id: plan.id.clone(),
                attempt: Box::new(a.clone()),
                key_metric: plan.scenario.manifest.key_metric.clone(),
            });
            attempts.push(a);
            if infra && tries < retries && !ctx.cancel.load(Ordering::SeqCst) {
                tries += 1;
                continue;
            }
            break;
        }
        if ctx.cancel.load(Ordering::SeqCst) {
            break;
        }
    }
    attempts
}

fn record(plan: &CellPlan, attempts: Vec<Attempt>) -> CellRecord {
    CellRecord {
        id: plan.id.clone(),
        scenario: plan.scenario.name().into(),
        kernel: plan.kernel.clone(),
        cgroup: plan.cgroup.clone(),
        rootfs: plan.rootfs.clone(),
        kubelet: plan.kubelet.clone(),
        driver: plan.driver.clone(),
        params: plan.params.clone(),
        key_metric: plan.scenario.manifest.key_metric.clone(),
        expect: plan.expect,
        attempts,
    }
}

/// An attempt the harness decided without booting (image failure, cancel).
fn harness_attempt(
    plan: &CellPlan,
    outcome: Outcome,
    phase: Option<Phase>,
    reason: String,
) -> Attempt {
    Attempt {
        number: 1,
        outcome,
        reason,
        phase,
        accel: String::new(),
        machine: String::new(),
        kernel: KernelInfo {
            alias: plan.kernel.clone(),
            ..Default::default()
        },
        rootfs: None,
        image_sha256: String::new(),
        timings: Timings::default(),
        metrics: BTreeMap::new(),
        series: BTreeMap::new(),
        crash: None,
        warnings: vec![],
        exit_status: None,
        artifacts: Default::default(),
        started_at: now_rfc3339(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_sortable_and_unique() {
        let a = new_run_id();
        assert_eq!(a.len(), "20261122-201500-3fa2".len(), "{a}");
        assert_ne!(a, new_run_id());
    }
}
