//! Executing planned cells: kernels and images first (once each), the
//! accelerator once, then cells on `--jobs` worker threads (each attempt's
//! QEMU lives on its worker's thread), repeats and infrastructure retries,
//! `summary.json` after every cell, unfinished cells marked cancelled.

use super::{cell, cell_env, new_run_dir, notice, now_rfc3339, prepare, ExecOptions, RunError};
use crate::model::{
    Attempt, CellRecord, Event, EventSink, KernelInfo, Notice, Outcome, Phase, RunMeta, RunSummary,
    Status, Timings, SCHEMA_VERSION,
};
use crate::plan::PlannedCell;
use crate::vm;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// How a run ended.
#[derive(Debug)]
pub struct RunDone {
    pub dir: PathBuf,
    pub summary: RunSummary,
    /// Cells whose status is `error` (the harness could not run them).
    pub infrastructure_errors: usize,
}

/// Locks `m`; a worker that panicked while holding it left data that is
/// still the best record there is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn into_inner<T>(m: Mutex<T>) -> T {
    m.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// Parallel cells the machine can hold: cores, and guest memory against
/// what is available (TCG guests keep one core busy each).
pub fn default_jobs(plans: &[PlannedCell]) -> usize {
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
    plans: Vec<PlannedCell>,
    sink: &dyn EventSink,
    cancel: Arc<AtomicBool>,
) -> Result<RunDone, RunError> {
    if plans.is_empty() {
        return Err(RunError::Empty);
    }
    let envs: Vec<Vec<(String, String)>> = plans
        .iter()
        .map(|c| cell_env(&opts.root, c))
        .collect::<Result<_, _>>()?;
    let (run_id, dir) = new_run_dir(&opts.results_root)?;
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
    lock(&summary).write(&dir)?;
    sink.event(&Event::RunStarted {
        run_id,
        dir: dir.clone(),
        cells: plans.len(),
    });
    if jobs > 1 {
        notice(sink, Notice::Parallel { jobs });
    }

    // Kernels and images first, once each, in the order cells need them.
    let mut prepared: BTreeMap<String, Result<prepare::PreparedKernel, String>> = BTreeMap::new();
    for plan in &plans {
        let kernel = &plan.key.kernel;
        if prepared.contains_key(kernel) || cancel.load(Ordering::SeqCst) {
            continue;
        }
        notice(
            sink,
            Notice::PreparingKernel {
                kernel: kernel.clone(),
            },
        );
        let p = prepare::prepare_kernel(
            &opts.root,
            &opts.cache,
            opts.mirror.as_deref(),
            kernel,
            sink,
        )
        .map_err(|e| e.to_string());
        if let Ok(p) = &p {
            lock(&summary)
                .meta
                .images
                .insert(kernel.clone(), p.image_sha256.clone());
        }
        prepared.insert(kernel.clone(), p);
    }
    let mut rootfses: BTreeMap<String, Result<prepare::PreparedRootfs, String>> = BTreeMap::new();
    for name in plans.iter().filter_map(|p| p.key.rootfs.as_ref()) {
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
            lock(&summary)
                .meta
                .images
                .insert(format!("rootfs={name}"), r.meta.sha256.clone());
        }
        rootfses.insert(name.clone(), r);
    }
    // Real kubelets, once each, for the root-filesystem cells that name
    // one; an initramfs guest cannot run one, and is not given the
    // profile in its place (see `initramfs_real_kubelet`).
    let mut kubelets: BTreeMap<String, Result<Option<super::kubelet::PreparedKubelet>, String>> =
        BTreeMap::new();
    for v in plans
        .iter()
        .filter(|p| p.key.rootfs.is_some())
        .filter_map(|p| p.key.kubelet.as_ref())
    {
        if kubelets.contains_key(v) || cancel.load(Ordering::SeqCst) {
            continue;
        }
        let k = super::kubelet::parts_for(&opts.root, &opts.cache, opts.mirror.as_deref(), v, sink)
            .and_then(|parts| {
                parts
                    .map(|parts| {
                        super::kubelet::prepare(&opts.cache, parts).map_err(|e| e.to_string())
                    })
                    .transpose()
            });
        kubelets.insert(v.clone(), k);
    }
    let accel = match prepared.values().find_map(|p| p.as_ref().ok()) {
        Some(p) => {
            let (a, why) = prepare::choose_accel(&opts.cache, &qemu, opts.accel, p);
            notice(
                sink,
                Notice::Accelerator {
                    accel: a,
                    why: why.clone(),
                },
            );
            let mut s = lock(&summary);
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
                let Some(i) = lock(&queue).pop_front() else {
                    break;
                };
                let plan = &plans[i];
                let id = plan.id();
                // A kernel or rootfs missing here was not prepared because
                // the run was interrupted: the cell is recorded cancelled.
                let Some(kernel) = prepared.get(&plan.key.kernel) else {
                    continue;
                };
                let rootfs = match &plan.key.rootfs {
                    Some(r) => match rootfses.get(r) {
                        Some(r) => Some(r),
                        None => continue,
                    },
                    None => None,
                };
                sink.event(&Event::CellStarted { id: id.clone() });
                let kubelet = match (&plan.key.rootfs, &plan.key.kubelet) {
                    (Some(_), Some(v)) => kubelets.get(v).cloned().unwrap_or(Ok(None)),
                    _ => Ok(None),
                };
                let ready = match (kernel, rootfs) {
                    _ if kubelet.is_err() => Err(kubelet.clone().err().unwrap_or_default()),
                    (Err(e), _) | (_, Some(Err(e))) => Err(e.clone()),
                    // A required root-disk driver the kernel lacks: only
                    // root-filesystem cells are concerned.
                    (Ok(p), Some(Ok(_))) if p.rootfs_unusable.is_some() => {
                        Err(p.rootfs_unusable.clone().unwrap_or_default())
                    }
                    (Ok(p), r) => Ok((p, r.and_then(|r| r.as_ref().ok()))),
                };
                let attempts = match ready {
                    _ if initramfs_real_kubelet(&opts.root, plan).is_some() => {
                        let why = initramfs_real_kubelet(&opts.root, plan).unwrap_or_default();
                        let a = harness_attempt(plan, Outcome::Skipped, None, why);
                        sink.event(&Event::AttemptFinished {
                            id: id.clone(),
                            attempt: Box::new(a.clone()),
                            key_metric: plan.scenario.manifest.key_metric.clone(),
                        });
                        vec![a]
                    }
                    Err(e) => {
                        let a =
                            harness_attempt(plan, Outcome::Error, Some(Phase::Image), e.clone());
                        sink.event(&Event::AttemptFinished {
                            id: id.clone(),
                            attempt: Box::new(a.clone()),
                            key_metric: plan.scenario.manifest.key_metric.clone(),
                        });
                        vec![a]
                    }
                    Ok((p, rootfs)) => {
                        let ctx = cell::RunContext {
                            root: &opts.root,
                            qemu: qemu.clone(),
                            accel,
                            key: &key,
                            run_dir: &dir,
                            boot_timeout: opts.boot_timeout,
                            limits: opts.limits,
                            cancel: cancel.clone(),
                            sink,
                        };
                        let k = kubelet.as_ref().ok().and_then(Option::as_ref);
                        run_cell(&ctx, plan, &envs[i], p, rootfs, k, opts.retries)
                    }
                };
                let rec = record(plan, attempts);
                let n = done_count.fetch_add(1, Ordering::SeqCst) + 1;
                sink.event(&Event::CellFinished {
                    id,
                    status: rec.status(),
                    done: n,
                    total: plans.len(),
                });
                let mut recs = lock(&records);
                recs[i] = Some(rec);
                let mut s = lock(&summary);
                s.cells = recs.iter().flatten().cloned().collect();
                if let Err(e) = s.write(&dir) {
                    *lock(&write_error) = Some(e.into());
                }
            });
        }
    });
    if let Some(e) = into_inner(write_error) {
        return Err(e);
    }
    let interrupted = cancel.load(Ordering::SeqCst);
    let mut summary = into_inner(summary);
    summary.cells = into_inner(records)
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
        .filter(|c| c.status() == Status::Error)
        .count();
    Ok(RunDone {
        dir,
        summary,
        infrastructure_errors,
    })
}

/// Why a cell without a root filesystem cannot have its kubelet: the
/// kubelet's manifest is a real binary (`[build]`), which needs systemd,
/// containerd and a disk. Such a cell is skipped rather than given the
/// profile's imitation under the real kubelet's name.
fn initramfs_real_kubelet(root: &std::path::Path, plan: &PlannedCell) -> Option<String> {
    if plan.key.rootfs.is_some() {
        return None;
    }
    let v = plan.key.kubelet.as_ref()?;
    let p = crate::kubelet::find(&root.join("images/kubelet"), v).ok()?;
    p.build.as_ref().map(|_| {
        format!(
            "kubelet {v} is a real kubelet binary: it runs only on a root-filesystem guest (--rootfs bullseye|bookworm|trixie)"
        )
    })
}

/// All attempts of one cell: `repeat` judged attempts, each retried up to
/// `retries` times after an infrastructure error.
fn run_cell(
    ctx: &cell::RunContext,
    plan: &PlannedCell,
    env: &[(String, String)],
    p: &prepare::PreparedKernel,
    rootfs: Option<&prepare::PreparedRootfs>,
    kubelet: Option<&super::kubelet::PreparedKubelet>,
    retries: u32,
) -> Vec<Attempt> {
    let mut attempts = Vec::new();
    let mut number = 0;
    for _ in 0..plan.repeat.max(1) {
        let mut tries = 0;
        loop {
            number += 1;
            let a = cell::run_attempt(ctx, plan, env, p, rootfs, kubelet, number);
            // Retry infrastructure failures only: a script that exited
            // non-zero broke its contract, and would again; a guest that
            // said what it lacks would say it again.
            let infra = a.worth_retrying();
            ctx.sink.event(&Event::AttemptFinished {
                id: plan.id(),
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

fn record(plan: &PlannedCell, attempts: Vec<Attempt>) -> CellRecord {
    CellRecord {
        key: plan.key.clone(),
        params: plan.params.clone(),
        key_metric: plan.scenario.manifest.key_metric.clone(),
        expect: plan.expect,
        rule: plan.rule.clone(),
        stale_rules: plan.stale_rules.clone(),
        attempts,
    }
}

/// An attempt the harness decided without booting (image failure, cancel).
fn harness_attempt(
    plan: &PlannedCell,
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
            alias: plan.key.kernel.clone(),
            ..Default::default()
        },
        rootfs: None,
        kubelet: None,
        image_sha256: String::new(),
        timings: Timings::default(),
        metrics: BTreeMap::new(),
        series: BTreeMap::new(),
        crash: None,
        warnings: vec![],
        exit_status: None,
        retry: Default::default(),
        artifacts: Default::default(),
        started_at: now_rfc3339(),
        limits: None,
        dropped: BTreeMap::new(),
    }
}
