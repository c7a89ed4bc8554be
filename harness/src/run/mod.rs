//! The runner: checks planned cells against what exists (kernels, root
//! filesystems, kubelet profiles), prepares kernels and images, runs each
//! cell's attempts and records them. It emits [`Event`]s and writes
//! `summary.json` after every cell; it never prints.

pub mod cell;
pub mod execute;
pub mod fixed_in;
pub mod kubelet;
pub mod prepare;
pub mod reproducer;
pub mod result;

pub use execute::{execute, RunDone};
pub use fixed_in::{fixed_in, FixedInReport};

use crate::images::Cache;
use crate::model::{AccelChoice, Event, EventSink, ExitStatus};
use crate::plan::{Filter, Matrix, PlannedCell, Profile, Request, Shard};
use crate::scenario::{self, Scenario};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How to execute cells (shared by `repro run`, `repro matrix` and
/// `repro fixed-in`); `settings` builds it from flags, environment,
/// profile and matrix file.
#[derive(Debug, Clone)]
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
    pub limits: RunLimits,
    pub command: String,
}

/// The bounds every attempt of a run works under (`settings` decides
/// them; each scenario's time limit and `stall_s` are its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// Bytes kept of each log: console, stdout, stderr, the result file.
    pub log_cap: u64,
    /// Bytes kept of all other artefacts fetched from `$REPRO_OUT`.
    pub out_cap: u64,
    /// A stall limit that beats each scenario's own (`--stall-s`).
    pub stall_override: Option<u64>,
    /// The stall limit of scenarios that set none; 0: off.
    pub stall_default: u64,
}

impl RunLimits {
    /// The stall limit of a scenario that says `own`; `None`: off.
    pub fn stall_s(&self, own: Option<u64>) -> Option<u64> {
        Some(self.stall_override.or(own).unwrap_or(self.stall_default)).filter(|s| *s > 0)
    }
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
    #[error("no cells to run")]
    Empty,
    #[error("fixed-in needs at least two kernels, oldest first (got {0})")]
    TooFewKernels(usize),
}

impl RunError {
    /// The exit status this error means. Bad input (2): what planning and
    /// `repro list` read and check before anything runs: scenarios,
    /// kernel and root-filesystem manifests and names (`Prepare` comes only
    /// from those checks: `execute` records a failed kernel or image
    /// preparation as the cell's `error` instead), kubelet profiles, the
    /// matrix, no cells, too few kernels for `fixed-in`. Infrastructure
    /// (3): what fails once a run has started: the results folder, writing
    /// `summary.json`, the run's SSH key.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            RunError::Scenario(_)
            | RunError::Prepare(_)
            | RunError::Profile(_)
            | RunError::Matrix(_)
            | RunError::Empty
            | RunError::TooFewKernels(_) => ExitStatus::BadInput,
            RunError::Results { .. } | RunError::Summary(_) | RunError::Key(_) => {
                ExitStatus::Infrastructure
            }
        }
    }
}

/// Current UTC time as RFC 3339 (what summaries and attempts record).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A sortable run id: `20261122-201500-3fa2` (UTC time, then random hex).
pub fn new_run_id() -> String {
    let mut rnd = [0u8; 2];
    let _ = getrandom(&mut rnd);
    format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%d-%H%M%S"),
        hex::encode(rnd)
    )
}

/// Creates a new run folder under `root` with a fresh id; an id that is
/// taken (two runs in one second with the same random part) is drawn
/// again, so two runs never share a folder.
pub fn new_run_dir(root: &Path) -> Result<(String, PathBuf), RunError> {
    let results = |source| RunError::Results {
        path: root.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(root).map_err(results)?;
    loop {
        let id = new_run_id();
        let dir = root.join(&id);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok((id, dir)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(RunError::Results { path: dir, source }),
        }
    }
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
                sc.cgroups_text()
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
    for p in crate::kubelet::load_all(&kubelet_dir(root))? {
        s.push_str(&format!("  {:<6} {}\n", p.version, p.summary));
    }
    Ok(s)
}

fn kubelet_dir(root: &Path) -> PathBuf {
    root.join("images/kubelet")
}

/// The cells of a `repro run` request, checked.
pub fn plan_request(root: &Path, req: &Request) -> Result<Vec<PlannedCell>, RunError> {
    let scen_root = crate::paths::scenarios_dir(root);
    let scenarios: Vec<Scenario> = req
        .scenarios
        .iter()
        .map(|n| scenario::find(&scen_root, n))
        .collect::<Result<_, _>>()?;
    let cells = req.cells(&scenarios)?;
    check(root, &cells)?;
    Ok(cells)
}

/// The cells of a matrix under `profile`, filtered, sharded and checked.
pub fn plan_matrix(
    root: &Path,
    matrix: &Matrix,
    profile: &Profile,
    filter: Option<&Filter>,
    shard: Option<Shard>,
    repeat: Option<u32>,
) -> Result<Vec<PlannedCell>, RunError> {
    let mut scenarios = BTreeMap::new();
    for sc in scenario::list(&crate::paths::scenarios_dir(root))? {
        let sc = sc?;
        scenarios.insert(sc.name().to_string(), sc);
    }
    let mut cells = matrix.cells(&scenarios)?;
    cells.retain(|c| {
        filter.is_none_or(|f| f.matches(&c.key)) && shard.is_none_or(|s| s.contains(&c.id()))
    });
    for c in &mut cells {
        c.repeat = repeat.unwrap_or(c.repeat.max(profile.repeat));
        c.memory_mib = c.memory_mib.or(profile.memory_mib);
        c.vcpus = c.vcpus.or(profile.vcpus);
    }
    check(root, &cells)?;
    Ok(cells)
}

/// Checks every kernel, root filesystem and kubelet profile the cells
/// name, without touching the network.
fn check(root: &Path, cells: &[PlannedCell]) -> Result<(), RunError> {
    let mut seen = std::collections::BTreeSet::new();
    for c in cells {
        let k = &c.key;
        if seen.insert(("kernel", k.kernel.clone())) {
            prepare::check_kernel_arg(root, &k.kernel)?;
        }
        if let Some(r) = k
            .rootfs
            .as_ref()
            .filter(|r| seen.insert(("rootfs", (*r).clone())))
        {
            prepare::check_rootfs_arg(root, r)?;
        }
        if let Some(v) = k
            .kubelet
            .as_ref()
            .filter(|v| seen.insert(("kubelet", (*v).clone())))
        {
            crate::kubelet::find(&kubelet_dir(root), v)?;
        }
    }
    Ok(())
}

/// The extra `REPRO_*` variables of a cell: its kubelet profile's values,
/// or only the driver when it has no profile.
pub fn cell_env(root: &Path, cell: &PlannedCell) -> Result<Vec<(String, String)>, RunError> {
    let k = &cell.key;
    Ok(match (&k.kubelet, k.driver) {
        (Some(v), d) => crate::kubelet::find(&kubelet_dir(root), v)?.env(d),
        (None, Some(d)) => vec![("REPRO_DRIVER".into(), d.to_string())],
        (None, None) => vec![],
    })
}

/// Emits a notice.
fn notice(sink: &dyn EventSink, n: crate::model::Notice) {
    sink.event(&Event::Notice(n));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_sortable() {
        let a = new_run_id();
        assert_eq!(a.len(), "20261122-201500-3fa2".len(), "{a}");
        assert!(a.as_bytes()[8] == b'-' && a.as_bytes()[15] == b'-', "{a}");
        assert!(a[..8].chars().all(|c| c.is_ascii_digit()), "{a}");
    }

    #[test]
    fn run_dirs_never_collide() {
        let tmp = tempfile::tempdir().unwrap();
        // Far more runs in one second than the random part can keep
        // apart by chance (65,536 values): every one gets its own folder.
        let mut ids = std::collections::BTreeSet::new();
        for _ in 0..600 {
            let (id, dir) = new_run_dir(tmp.path()).unwrap();
            assert!(dir.is_dir());
            assert!(ids.insert(id));
        }
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 600);
    }

    #[test]
    fn a_cell_without_a_profile_still_gets_its_driver() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let req = Request {
            scenarios: vec!["memcg-fill".into()],
            kernels: vec!["6.1".into()],
            drivers: vec![crate::model::Driver::Systemd],
            ..Request::default()
        };
        let cells = plan_request(&root, &req).unwrap();
        assert_eq!(
            cell_env(&root, &cells[0]).unwrap(),
            vec![("REPRO_DRIVER".to_string(), "systemd".to_string())]
        );
        let req = Request {
            kubelets: vec!["1.9".into()],
            ..req
        };
        let cells = plan_request(&root, &req).unwrap();
        let env = cell_env(&root, &cells[0]).unwrap();
        assert!(env.contains(&("REPRO_KUBELET_VERSION".to_string(), "1.9".to_string())));
    }

    #[test]
    fn planning_errors_are_bad_input_and_run_errors_infrastructure() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let req = |scenario: &str, kernel: &str, rootfs: &[&str]| Request {
            scenarios: vec![scenario.into()],
            kernels: vec![kernel.into()],
            rootfs: rootfs.iter().map(|r| r.to_string()).collect(),
            ..Request::default()
        };
        for bad in [
            req("no-such-scenario", "6.1", &[]),
            req("memcg-fill", "9.99", &[]),
            req("memcg-fill", "6.1", &["sid"]),
        ] {
            let e = plan_request(&root, &bad).unwrap_err();
            assert_eq!(e.exit_status(), ExitStatus::BadInput, "{e}");
        }
        assert_eq!(RunError::Empty.exit_status(), ExitStatus::BadInput);
        assert_eq!(
            RunError::TooFewKernels(1).exit_status(),
            ExitStatus::BadInput
        );
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("a-file");
        std::fs::write(&file, "").unwrap();
        let e = new_run_dir(&file.join("results")).unwrap_err();
        assert_eq!(e.exit_status(), ExitStatus::Infrastructure, "{e}");
    }

    #[test]
    fn unknown_kubelet_profiles_are_caught_before_running() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let req = Request {
            scenarios: vec!["memcg-fill".into()],
            kernels: vec!["6.1".into()],
            kubelets: vec!["0.1".into()],
            ..Request::default()
        };
        let e = plan_request(&root, &req).unwrap_err().to_string();
        assert!(e.contains("0.1"), "{e}");
    }
}
