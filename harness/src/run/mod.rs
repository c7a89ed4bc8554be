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
use crate::report::{CellRecord, RunMeta, RunSummary, SCHEMA_VERSION};
use crate::scenario::{self, Scenario};
use crate::vm::{self, AccelChoice};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What `repro run` asked for.
pub struct RunOptions {
    pub root: PathBuf,
    pub scenarios: Vec<String>,
    pub kernels: Vec<String>,
    pub params: Vec<(String, String)>,
    pub cgroup: Option<String>,
    pub results_root: PathBuf,
    pub cache: Cache,
    pub mirror: Option<String>,
    pub accel: AccelChoice,
    pub memory_mib: Option<u32>,
    pub boot_timeout: Duration,
    pub command: String,
}

/// How a run ended.
pub struct RunDone {
    pub dir: PathBuf,
    pub summary: RunSummary,
    /// Cells whose last attempt is `error` (the harness could not run them).
    pub infrastructure_errors: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Scenario(#[from] scenario::ScenarioError),
    #[error(transparent)]
    Prepare(#[from] prepare::PrepareError),
    #[error("cannot create the results folder {path}: {source}")]
    Results {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Summary(#[from] crate::report::summary::SummaryError),
    #[error("cannot make the run's SSH key: {0}")]
    Key(#[from] crate::guest::keys::KeyError),
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

/// A cell's stable id.
pub fn cell_id(scenario: &str, kernel: &str, cgroup: &str) -> String {
    format!("{scenario}/kernel={kernel}/cgroup={cgroup}")
}

/// Text for `repro list`.
pub fn list_text(root: &Path) -> Result<String, RunError> {
    let mut s = String::from("Scenarios:\n");
    for sc in scenario::list(&root.join("scenarios"))? {
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
    Ok(s)
}

/// Runs every scenario × kernel cell once, in order.
pub fn run(
    opts: &RunOptions,
    sink: &dyn EventSink,
    cancel: Arc<AtomicBool>,
) -> Result<RunDone, RunError> {
    // Validate everything cheap before any download or boot.
    let scen_root = opts.root.join("scenarios");
    let scenarios: Vec<Scenario> = opts
        .scenarios
        .iter()
        .map(|n| scenario::find(&scen_root, n))
        .collect::<Result<_, _>>()?;
    let mut plans: Vec<CellPlan> = Vec::new();
    for k in &opts.kernels {
        prepare::check_kernel_arg(&opts.root, k)?;
        for sc in &scenarios {
            let params = sc.params(&opts.params)?;
            let cgroup = sc.cgroup(opts.cgroup.as_deref());
            plans.push(CellPlan {
                id: cell_id(sc.name(), k, &cgroup),
                scenario: sc.clone(),
                kernel: k.clone(),
                cgroup,
                params,
                extra_env: vec![],
                memory_mib: opts.memory_mib,
            });
        }
    }

    let run_id = new_run_id();
    let dir = opts.results_root.join(&run_id);
    std::fs::create_dir_all(&dir).map_err(|source| RunError::Results {
        path: dir.clone(),
        source,
    })?;
    let key = crate::guest::KeyPair::generate()?;
    let qemu = vm::qemu_binary();
    let mut summary = RunSummary {
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
    };
    summary.write(&dir)?;
    sink.event(&Event::RunStarted {
        run_id,
        dir: dir.clone(),
        cells: plans.len(),
    });

    let mut prepared: BTreeMap<String, Result<prepare::PreparedKernel, String>> = BTreeMap::new();
    let mut accel = None;
    for plan in &plans {
        let key_metric = plan.scenario.manifest.key_metric.clone();
        let record = |attempts: Vec<Attempt>| CellRecord {
            id: plan.id.clone(),
            scenario: plan.scenario.name().into(),
            kernel: plan.kernel.clone(),
            cgroup: plan.cgroup.clone(),
            kubelet: None,
            driver: None,
            params: plan.params.clone(),
            key_metric: key_metric.clone(),
            attempts,
        };
        if cancel.load(Ordering::SeqCst) {
            let a = harness_attempt(
                plan,
                Outcome::Cancelled,
                None,
                "the run was interrupted before this cell started".into(),
            );
            summary.cells.push(record(vec![a]));
            continue;
        }
        sink.event(&Event::CellStarted {
            id: plan.id.clone(),
        });
        sink.event(&Event::Phase {
            id: plan.id.clone(),
            phase: Phase::Image,
            detail: format!("kernel {}", plan.kernel),
        });
        let prep = prepared.entry(plan.kernel.clone()).or_insert_with(|| {
            prepare::prepare_kernel(
                &opts.root,
                &opts.cache,
                opts.mirror.as_deref(),
                &plan.kernel,
                sink,
            )
            .map_err(|e| e.to_string())
        });
        let attempt = match prep {
            Err(e) => harness_attempt(plan, Outcome::Error, Some(Phase::Image), e.clone()),
            Ok(p) => {
                summary
                    .meta
                    .images
                    .insert(plan.kernel.clone(), p.image_sha256.clone());
                let a = *accel.get_or_insert_with(|| {
                    let (a, why) =
                        prepare::choose_accel(&opts.cache, &qemu, opts.accel, p, &plan.id);
                    sink.event(&Event::Info(format!("accelerator: {} ({why})", a.as_str())));
                    summary.meta.accel = a.as_str().into();
                    summary.meta.accel_reason = why;
                    a
                });
                let ctx = cell::RunContext {
                    qemu: qemu.clone(),
                    accel: a,
                    key: &key,
                    run_dir: &dir,
                    boot_timeout: opts.boot_timeout,
                    cancel: cancel.clone(),
                    sink,
                };
                cell::run_attempt(&ctx, plan, p, 1)
            }
        };
        sink.event(&Event::AttemptFinished {
            id: plan.id.clone(),
            attempt: Box::new(attempt.clone()),
            key_metric: key_metric.clone(),
        });
        summary.cells.push(record(vec![attempt]));
        summary.write(&dir)?;
    }
    let interrupted = cancel.load(Ordering::SeqCst);
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
        .filter(|c| c.outcome() == Outcome::Error)
        .count();
    Ok(RunDone {
        dir,
        summary,
        infrastructure_errors,
    })
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
    fn ids_and_run_ids() {
        assert_eq!(
            cell_id("memcg-fill", "6.1", "v1"),
            "memcg-fill/kernel=6.1/cgroup=v1"
        );
        let a = new_run_id();
        assert_eq!(a.len(), "20261122-201500-3fa2".len(), "{a}");
        assert_ne!(a, new_run_id());
    }
}
