//! One attempt of one cell: boot, connect, upload, run, fetch, judge,
//! tear down. Every failure becomes a recorded outcome, never a panic.

use super::prepare::{PreparedKernel, PreparedRootfs};
use super::result::{self, ScriptEnd};
use crate::guest::{self, GuestError, GuestSession, KeyPair};
use crate::model::{
    Artifacts, Attempt, Event, EventSink, FindingKind, FindingSource, Outcome, Phase, RootfsInfo,
    StopReason, Timings,
};
use crate::plan::PlannedCell;
use crate::scenario;
use crate::vm::{console, Accel, Vm, VmSpec};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the guest's `/init` prints when sshd is listening.
pub const READY_MARKER: &str = "REPRO-READY";

/// How long a guest that dropped the scenario's SSH session gets to answer
/// a new one (its init or systemd restarts the SSH server at once).
const RECONNECT_WAIT: Duration = Duration::from_secs(20);

/// Settings shared by all cells of a run.
pub struct RunContext<'a> {
    pub qemu: PathBuf,
    pub accel: Accel,
    pub key: &'a KeyPair,
    pub run_dir: &'a Path,
    pub boot_timeout: Duration,
    pub cancel: Arc<AtomicBool>,
    pub sink: &'a dyn EventSink,
}

/// The cell's folder name: the id with `/` replaced, shortened with a
/// stable hash when long (a kernel given as a path makes long ids).
pub fn cell_dir_name(id: &str) -> String {
    let flat = id.replace('/', "__");
    if flat.len() <= 120 {
        return flat;
    }
    let head: String = flat.chars().take(80).collect();
    format!("{head}-{:016x}", crate::plan::stable_hash(id))
}

/// Runs attempt `number` of `cell` and records everything under
/// `run_dir/<cell>/attempt-<n>/`.
pub fn run_attempt(
    ctx: &RunContext,
    cell: &PlannedCell,
    env: &[(String, String)],
    kernel: &PreparedKernel,
    rootfs: Option<&PreparedRootfs>,
    number: u32,
) -> Attempt {
    let started = Instant::now();
    let id = cell.id();
    let rel_dir = format!("{}/attempt-{number}", cell_dir_name(&id));
    let dir = ctx.run_dir.join(&rel_dir);
    let _ = std::fs::create_dir_all(&dir);
    let artifacts = Artifacts {
        dir: rel_dir.clone(),
        console: format!("{rel_dir}/console.log"),
        stdout: format!("{rel_dir}/stdout.log"),
        stderr: format!("{rel_dir}/stderr.log"),
        result: format!("{rel_dir}/out/result.jsonl"),
        journal: rootfs.map(|_| format!("{rel_dir}/journal.log")),
        dmesg: None,
    };
    let mut attempt = Attempt {
        number,
        outcome: Outcome::Error,
        reason: String::new(),
        phase: None,
        accel: ctx.accel.as_str().into(),
        machine: kernel.machine.as_str().into(),
        kernel: kernel.info.clone(),
        rootfs: rootfs.map(|r| RootfsInfo {
            name: r.name.clone(),
            suite: r.meta.suite.clone(),
            sha256: r.meta.sha256.clone(),
            versions: r.meta.versions.clone(),
        }),
        image_sha256: kernel.image_sha256.clone(),
        timings: Timings {
            image: kernel.image_secs + rootfs.map_or(0.0, |r| r.image_secs),
            ..Default::default()
        },
        metrics: BTreeMap::new(),
        series: BTreeMap::new(),
        crash: None,
        warnings: vec![],
        exit_status: None,
        retry: Default::default(),
        artifacts,
        started_at: super::now_rfc3339(),
    };

    if !cell.scenario.supports_cgroup(cell.key.cgroup) {
        attempt.outcome = Outcome::Skipped;
        attempt.reason = format!(
            "scenario {} supports cgroup {}, not {}",
            cell.scenario.name(),
            cell.scenario.cgroups_text(),
            cell.key.cgroup
        );
        finish(&mut attempt, started, &dir);
        return attempt;
    }
    if let Some(why) = guest_mismatch(cell, rootfs) {
        attempt.outcome = Outcome::Skipped;
        attempt.reason = why;
        finish(&mut attempt, started, &dir);
        return attempt;
    }

    ctx.sink.event(&Event::Phase {
        id: id.clone(),
        phase: Phase::Boot,
        detail: format!(
            "{} {} {}{}",
            kernel.machine.as_str(),
            ctx.accel.as_str(),
            kernel.info.release,
            rootfs
                .map(|r| format!(" + rootfs {}", r.name))
                .unwrap_or_default()
        ),
    });
    let boot_start = Instant::now();
    let mut vm = match boot(ctx, cell, kernel, rootfs, &dir) {
        Ok(vm) => vm,
        Err((outcome, reason)) => {
            attempt.outcome = outcome;
            attempt.reason = reason;
            attempt.phase = Some(Phase::Boot);
            attempt.timings.boot = boot_start.elapsed().as_secs_f64();
            finish(&mut attempt, started, &dir);
            return attempt;
        }
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], vm.spec.ssh_port));
    let host_key = rootfs.map_or(&kernel.host_key_blob, |r| &r.host_key_blob);
    let deadline = Instant::now() + ctx.boot_timeout;
    // /init prints REPRO-READY once sshd listens: connecting earlier only
    // leaves a handshake hanging on a guest port nobody answers yet.
    let ready = vm.wait_console(READY_MARKER, deadline, &|| {
        ctx.cancel.load(Ordering::SeqCst)
    });
    let session = {
        let cancel = ctx.cancel.clone();
        let mut watch = || guest_gone(&mut vm, &cancel);
        match ready {
            Ok(()) => GuestSession::connect(addr, ctx.key, Some(host_key), deadline, &mut watch),
            Err(why) => Err(GuestError::Stopped(why)),
        }
    };
    attempt.timings.boot = boot_start.elapsed().as_secs_f64();
    let session = match session {
        Ok(s) => s,
        Err(e) => {
            vm.kill();
            let (outcome, reason) = if let Some(c) = vm.console.crash() {
                let r = c.title.clone();
                attempt.crash = Some(c);
                (Outcome::Crashed, r)
            } else if let Some(i) = vm
                .console
                .findings()
                .iter()
                .find(|f| f.kind == FindingKind::InitExit)
            {
                (Outcome::Error, result::init_exit_reason(i))
            } else if ctx.cancel.load(Ordering::SeqCst) {
                (
                    Outcome::Cancelled,
                    "the run was interrupted during boot".into(),
                )
            } else if let GuestError::Stopped(stop @ StopReason::GuestFailed(_)) = &e {
                // /init said what it lacks: the same image would fail again.
                attempt.retry = stop.retry();
                (Outcome::Error, stop.to_string())
            } else {
                (
                    Outcome::Error,
                    format!(
                        "the guest did not become reachable over SSH: {e}; last console lines:\n{}",
                        vm.console.tail(15)
                    ),
                )
            };
            attempt.outcome = outcome;
            attempt.reason = reason;
            attempt.phase = Some(Phase::Boot);
            attempt.warnings = vm.console.findings();
            finish(&mut attempt, started, &dir);
            return attempt;
        }
    };

    ctx.sink.event(&Event::Phase {
        id,
        phase: Phase::Scenario,
        detail: cell.scenario.name().into(),
    });
    let scen_start = Instant::now();
    // Findings come in console order: those after this many are the
    // scenario's (an OOM kill among them explains a script that died).
    let warnings_before = vm.console.findings().len();
    let end = run_scenario(ctx, cell, env, &session, &mut vm, &dir);
    attempt.timings.scenario = scen_start.elapsed().as_secs_f64();

    // Fetch whatever the scenario left, even after a failure, if the guest
    // still answers: over the scenario's session, or over a new one when
    // the scenario dropped it (e.g. `kill -9 -1` took the SSH server, which
    // the guest's init restarts).
    let teardown_start = Instant::now();
    let out_dir = dir.join("out");
    let _ = std::fs::create_dir_all(&out_dir);
    let again = match end {
        ScriptEnd::Lost(_) if vm.exited().is_none() && vm.console.crash().is_none() => {
            let cancel = ctx.cancel.clone();
            let mut watch = || guest_gone(&mut vm, &cancel);
            let deadline = Instant::now() + RECONNECT_WAIT;
            GuestSession::connect(addr, ctx.key, Some(host_key), deadline, &mut watch).ok()
        }
        _ => None,
    };
    let evidence = match end {
        ScriptEnd::Lost(_) => again.as_ref(),
        _ => Some(&session),
    };
    let mut dmesg = None;
    if let Some(s) = evidence.filter(|_| vm.exited().is_none()) {
        if let Ok(tar) = s.download_tar("/repro/out") {
            let _ = tar::Archive::new(&tar[..]).unpack(&out_dir);
        }
        if rootfs.is_some() {
            save_journal(s, &dir.join("journal.log"));
        }
        dmesg = save_dmesg(s, &dir.join("dmesg.log"));
        if dmesg.is_some() {
            attempt.artifacts.dmesg = Some(format!("{rel_dir}/dmesg.log"));
        }
    }
    // A guest that answered again outlived the session it dropped.
    let end = match end {
        ScriptEnd::Lost(why) if again.is_some() => ScriptEnd::Dropped(why),
        end => end,
    };
    drop(again);
    // Bytes: a line that is not UTF-8 is rejected on its own, the rest kept.
    let script = result::parse_result_bytes(
        &std::fs::read(out_dir.join("result.jsonl")).unwrap_or_default(),
    );
    drop(session);
    vm.kill();
    let crash = vm.console.crash();
    let stderr_tail = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
    let warnings = vm.console.findings();
    let during = warnings.get(warnings_before..).unwrap_or_default();
    let (outcome, reason, phase) =
        result::decide(&end, &script, crash.as_ref(), &stderr_tail, during);
    attempt.outcome = outcome;
    attempt.reason = reason;
    attempt.phase = phase;
    attempt.crash = crash;
    attempt.exit_status = match end {
        ScriptEnd::Exited(c) => Some(c),
        _ => None,
    };
    attempt.metrics = script.metrics;
    attempt.series = script.series;
    // The console is the source; `dmesg` adds what it printed below the
    // console's level (a guest that died has only its console).
    attempt.warnings = console::merge_dmesg(
        warnings,
        dmesg
            .map(|t| console::classify_log(&t, FindingSource::Dmesg))
            .unwrap_or_default(),
    );
    attempt.timings.teardown = teardown_start.elapsed().as_secs_f64();
    finish(&mut attempt, started, &dir);
    attempt
}

/// Why this cell cannot run on this guest, if it cannot: a scenario that
/// needs systemd on the initramfs guest, or a cgroup version the release's
/// systemd refuses.
fn guest_mismatch(cell: &PlannedCell, rootfs: Option<&PreparedRootfs>) -> Option<String> {
    match rootfs {
        None if cell.scenario.manifest.needs_rootfs => Some(format!(
            "scenario {} needs a root-filesystem guest (systemd, runc, containerd): run it with --rootfs bullseye|bookworm|trixie",
            cell.scenario.name()
        )),
        Some(r) => r
            .manifest
            .cgroup
            .get(cell.key.cgroup.as_str())
            .and_then(|c| c.unsupported.clone())
            .map(|why| {
                format!(
                    "rootfs {} cannot boot cgroup {}: {why}",
                    r.name, cell.key.cgroup
                )
            }),
        None => None,
    }
}

/// Saves the guest's journal of this boot (best effort: a guest that
/// cannot give it still has its console log).
fn save_journal(session: &GuestSession, path: &Path) {
    let text = match session.exec(
        "journalctl -b --no-pager -o short-monotonic",
        Duration::from_secs(60),
    ) {
        Ok(o) => {
            let mut t = o.stdout;
            t.extend_from_slice(&o.stderr);
            t
        }
        Err(e) => format!("journalctl failed: {e}\n").into_bytes(),
    };
    let _ = std::fs::write(path, text);
}

/// Saves the guest's `dmesg` (every level; the kernel's log buffer bounds
/// its size) and returns it, best effort.
fn save_dmesg(session: &GuestSession, path: &Path) -> Option<String> {
    let o = session.exec("dmesg", Duration::from_secs(30)).ok()?;
    std::fs::write(path, &o.stdout).ok()?;
    Some(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Why a watched guest operation should stop, if it should.
fn guest_gone(vm: &mut Vm, cancel: &AtomicBool) -> Option<StopReason> {
    if cancel.load(Ordering::SeqCst) {
        return Some(StopReason::Cancelled);
    }
    if let Some(c) = vm.console.crash() {
        return Some(StopReason::KernelCrash(c.title));
    }
    if let Some(st) = vm.exited() {
        return Some(StopReason::QemuExited(st.to_string()));
    }
    None
}

/// Records the attempt. Its guest is gone by now: a root-filesystem
/// guest's overlay holds only what this attempt wrote, and nobody needs it.
fn finish(attempt: &mut Attempt, started: Instant, dir: &Path) {
    let _ = std::fs::remove_file(dir.join("disk.qcow2"));
    attempt.timings.total = started.elapsed().as_secs_f64() + attempt.timings.image;
    if let Ok(json) = serde_json::to_vec_pretty(attempt) {
        let _ = crate::fsutil::atomic_write(&dir.join("result.json"), &json);
    }
}

/// Starts QEMU, retrying when the forwarded port was taken meanwhile.
fn boot(
    ctx: &RunContext,
    cell: &PlannedCell,
    kernel: &PreparedKernel,
    rootfs: Option<&PreparedRootfs>,
    dir: &Path,
) -> Result<Vm, (Outcome, String)> {
    let mut append = vec![format!("repro.key={}", ctx.key.public_base64())];
    let mut disk = None;
    if let Some(r) = rootfs {
        let overlay = dir.join("disk.qcow2");
        let _ = std::fs::remove_file(&overlay);
        crate::vm::create_overlay(&r.image, &overlay)
            .map_err(|e| (Outcome::Error, e.to_string()))?;
        disk = Some(overlay);
        append.push("repro.root=/dev/vda".into());
        if let Some(c) = r.manifest.cgroup.get(cell.key.cgroup.as_str()) {
            append.extend(c.cmdline.iter().cloned());
        }
    }
    let memory = cell
        .memory_mib
        .unwrap_or(cell.scenario.manifest.memory_mib)
        .max(256);
    let mut last = String::new();
    for _ in 0..3 {
        let port = crate::vm::free_port().map_err(|e| (Outcome::Error, e.to_string()))?;
        let spec = VmSpec {
            qemu: ctx.qemu.clone(),
            accel: ctx.accel,
            machine: kernel.machine,
            kernel: kernel.boot_kernel.clone(),
            initrd: kernel.image.clone(),
            append: append.clone(),
            memory_mib: memory,
            vcpus: cell.vcpus.unwrap_or(cell.scenario.manifest.vcpus).max(1),
            ssh_port: port,
            console_log: dir.join("console.log"),
            tsc_khz: crate::vm::qemu::host_tsc_khz(),
            disk: disk.clone(),
            name: format!(
                "repro-{}-{}",
                ctx.run_dir
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                cell_dir_name(&cell.id())
            ),
        };
        let mut vm = Vm::start(spec).map_err(|e| (Outcome::Error, e.to_string()))?;
        // QEMU fails fast when the port is busy; otherwise it keeps running.
        if let Some(st) = vm.wait_exit(Duration::from_millis(300)) {
            let err = vm.stderr();
            if err.contains("hostfwd") || err.contains("host forwarding") {
                last = err;
                continue;
            }
            return Err((
                Outcome::Error,
                format!("QEMU exited at start ({st}): {}", err.trim()),
            ));
        }
        return Ok(vm);
    }
    Err((
        Outcome::Error,
        format!("QEMU could not forward the SSH port: {last}"),
    ))
}

fn run_scenario(
    ctx: &RunContext,
    cell: &PlannedCell,
    extra_env: &[(String, String)],
    session: &GuestSession,
    vm: &mut Vm,
    dir: &Path,
) -> ScriptEnd {
    let lib = cell
        .scenario
        .dir
        .parent()
        .map(|p| p.join("lib"))
        .unwrap_or_default();
    let tar = match pack_upload(&cell.scenario.dir, &lib) {
        Ok(t) => t,
        Err(e) => return ScriptEnd::Lost(format!("cannot pack the scenario folder: {e}")),
    };
    if let Err(e) = session.upload_tar("/repro", &tar) {
        return ScriptEnd::Lost(format!("uploading the scenario failed: {e}"));
    }
    let mut env: Vec<(String, String)> = vec![
        ("REPRO_RESULT".into(), "/repro/out/result.jsonl".into()),
        ("REPRO_OUT".into(), "/repro/out".into()),
        ("REPRO_SCENARIO_DIR".into(), "/repro/scenario".into()),
        ("REPRO_LIB".into(), "/repro/lib".into()),
        ("REPRO_CGROUP".into(), cell.key.cgroup.to_string()),
        ("REPRO_KERNEL".into(), cell.key.kernel.clone()),
        (
            "REPRO_ROOTFS".into(),
            cell.key.rootfs.clone().unwrap_or_default(),
        ),
    ];
    for (k, v) in &cell.params {
        env.push((scenario::param_env_name(k), v.clone()));
    }
    env.extend(extra_env.iter().cloned());
    let cmd = format!(
        "mkdir -p /repro/out && cd /repro/scenario && {} sh ./{}",
        guest::env_prefix(&env),
        guest::shell_quote(&cell.scenario.manifest.entry)
    );
    let open = |name: &str| std::fs::File::create(dir.join(name));
    let (Ok(mut out), Ok(mut err)) = (open("stdout.log"), open("stderr.log")) else {
        return ScriptEnd::Lost("cannot create the log files".into());
    };
    let timeout = Duration::from_secs(
        cell.timeout_s
            .unwrap_or(cell.scenario.manifest.timeout_s)
            .max(1),
    );
    let cancel = ctx.cancel.clone();
    let mut watch = || guest_gone(vm, &cancel);
    let r = session.run(&cmd, None, &mut out, &mut err, timeout, &mut watch);
    // An interrupt kills the guests at once: whatever error that caused
    // is the interrupt's doing, not the scenario's or the guest's.
    if cancel.load(Ordering::SeqCst) {
        return ScriptEnd::Cancelled;
    }
    match r {
        Ok(code) => ScriptEnd::Exited(code),
        Err(GuestError::Timeout(s)) => ScriptEnd::TimedOut(s),
        Err(GuestError::Stopped(StopReason::Cancelled)) => ScriptEnd::Cancelled,
        Err(e) => ScriptEnd::Lost(e.to_string()),
    }
}

/// A tar with `scenario/...` (the scenario folder) and `lib/...`.
pub fn pack_upload(scenario_dir: &Path, lib_dir: &Path) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(true);
    b.append_dir_all("scenario", scenario_dir)?;
    if lib_dir.is_dir() {
        b.append_dir_all("lib", lib_dir)?;
    }
    b.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_holds_scenario_and_lib() {
        let tmp = tempfile::tempdir().unwrap();
        let s = tmp.path().join("demo");
        let l = tmp.path().join("lib");
        std::fs::create_dir_all(&s).unwrap();
        std::fs::create_dir_all(&l).unwrap();
        std::fs::write(s.join("run.sh"), "echo").unwrap();
        std::fs::write(l.join("common.sh"), "x=1").unwrap();
        let tar = pack_upload(&s, &l).unwrap();
        let mut names: Vec<String> = tar::Archive::new(&tar[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        assert!(names.contains(&"scenario/run.sh".to_string()), "{names:?}");
        assert!(names.contains(&"lib/common.sh".to_string()), "{names:?}");
    }

    #[test]
    fn long_ids_get_short_stable_dirs() {
        let id = format!("memcg-fill/kernel={}/cgroup=v1", "/x".repeat(200));
        let d = cell_dir_name(&id);
        assert!(d.len() < 120, "{d}");
        assert_eq!(d, cell_dir_name(&id));
        assert_ne!(d, cell_dir_name(&id.replace("v1", "v2")));
    }

    #[test]
    fn cell_dirs_are_flat() {
        assert_eq!(
            cell_dir_name("memcg-fill/kernel=6.1/cgroup=v1"),
            "memcg-fill__kernel=6.1__cgroup=v1"
        );
    }

    fn plan(needs_rootfs: bool, cgroup: &str) -> PlannedCell {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/memcg-fill");
        let mut sc = crate::scenario::Scenario::load(&dir).unwrap();
        sc.manifest.needs_rootfs = needs_rootfs;
        PlannedCell {
            key: crate::model::CellKey {
                scenario: "memcg-fill".into(),
                label: "memcg-fill".into(),
                kernel: "6.1".into(),
                rootfs: None,
                kubelet: None,
                driver: None,
                cgroup: cgroup.parse().unwrap(),
            },
            scenario: sc,
            params: BTreeMap::new(),
            expect: crate::model::Expect::Any,
            repeat: 1,
            memory_mib: None,
            vcpus: None,
            timeout_s: None,
        }
    }

    fn rootfs(v1_unsupported: Option<&str>) -> PreparedRootfs {
        let mut manifest = crate::images::rootfs::load_all(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/rootfs"),
        )
        .unwrap()
        .remove(0)
        .manifest;
        manifest.cgroup.get_mut("v1").unwrap().unsupported = v1_unsupported.map(String::from);
        PreparedRootfs {
            name: "bookworm".into(),
            image: "/x/rootfs.qcow2".into(),
            meta: crate::images::rootfs::ImageMeta {
                name: "bookworm".into(),
                suite: "bookworm".into(),
                input_hash: String::new(),
                sha256: String::new(),
                bytes: 0,
                size_mib: 2048,
                build_secs: 0.0,
                built_at: String::new(),
                versions: BTreeMap::new(),
                host_key: String::new(),
            },
            manifest,
            host_key_blob: vec![],
            image_secs: 0.0,
        }
    }

    #[test]
    fn guests_that_do_not_fit_the_cell_are_skipped_with_the_reason() {
        let why = guest_mismatch(&plan(true, "v2"), None).unwrap();
        assert!(why.contains("needs a root-filesystem guest") && why.contains("--rootfs"));
        assert_eq!(guest_mismatch(&plan(false, "v2"), None), None);
        assert_eq!(guest_mismatch(&plan(true, "v1"), Some(&rootfs(None))), None);
        let r = rootfs(Some("systemd 258 removed cgroup v1"));
        let why = guest_mismatch(&plan(true, "v1"), Some(&r)).unwrap();
        assert_eq!(
            why,
            "rootfs bookworm cannot boot cgroup v1: systemd 258 removed cgroup v1"
        );
        assert_eq!(guest_mismatch(&plan(true, "v2"), Some(&r)), None);
    }
}
