//! One attempt of one cell: boot, connect, upload, run, fetch, judge,
//! tear down. Every failure becomes a recorded outcome, never a panic.
//!
//! Time: the scenario's deadline (`timeout_s`) starts with its upload and
//! holds whatever the guest does, and a stall watchdog ends it early when
//! nothing comes from the guest for `stall_s`. Teardown is bounded: after
//! a timeout, a stall or a lost guest the fetches get a few seconds, then
//! QEMU is killed (SIGKILL) before the SSH session is dropped, so nothing
//! waits on a guest that does not answer. Size: every log the guest
//! writes to is capped (`caplog`), and so are the fetched artefacts.

use super::kubelet::PreparedKubelet;
use super::prepare::{PreparedKernel, PreparedRootfs};
use super::result::{self, ScriptEnd};
use super::RunLimits;
use crate::caplog::{CappedFile, Capture, Marker};
use crate::guest::{self, Activity, Cmd, GuestError, GuestSession, KeyPair};
use crate::model::{
    Artifacts, Attempt, Captured, Event, EventSink, FindingKind, FindingSource, Limits, Outcome,
    Phase, RootfsInfo, StopReason, Timings,
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

/// How long the fetches after a scenario that ended by itself may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(120);
/// How long they may take after a timeout, a stall or a lost guest: such
/// a guest may never answer, and QEMU is killed right after.
const FETCH_AFTER_TIMEOUT: Duration = Duration::from_secs(10);
/// Where the scenario's artefacts are in the guest.
const OUT_DIR: &str = "/repro/out";
/// The note written into `out/` when artefacts passed their cap.
const TRUNCATED_NOTE: &str = "REPRO-TRUNCATED.txt";
/// How long a guest that dropped the scenario's SSH session gets to answer
/// a new one (its init or systemd restarts the SSH server at once).
const RECONNECT_WAIT: Duration = Duration::from_secs(20);

/// Settings shared by all cells of a run.
pub struct RunContext<'a> {
    /// The repository root the run uses (for `reproduce.sh`).
    pub root: &'a Path,
    pub qemu: PathBuf,
    pub accel: Accel,
    pub key: &'a KeyPair,
    pub run_dir: &'a Path,
    pub boot_timeout: Duration,
    pub limits: RunLimits,
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
    kubelet: Option<&PreparedKubelet>,
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
        kubelet: kubelet.map(|k| k.info.clone()),
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
        limits: None,
        dropped: BTreeMap::new(),
    };
    super::reproducer::write_for(ctx, cell, &attempt, &dir, None);

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

    let timeout_s = cell
        .timeout_s
        .unwrap_or(cell.scenario.manifest.timeout_s)
        .max(1);
    let stall_s = ctx.limits.stall_s(cell.scenario.manifest.stall_s);
    attempt.limits = Some(Limits {
        timeout_s,
        stall_s,
        log_cap_bytes: ctx.limits.log_cap,
        out_cap_bytes: ctx.limits.out_cap,
    });
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
    let mut vm = match boot(ctx, cell, kernel, rootfs, kubelet, &dir) {
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
    super::reproducer::write_for(ctx, cell, &attempt, &dir, Some(&vm.spec));
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
        let mut watch = |_: Activity| guest_gone(&mut vm, &cancel);
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
            record_capture(&mut attempt, Captured::Console, vm.console.log_capture());
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
    let bounds = Bounds {
        deadline: scen_start + Duration::from_secs(timeout_s),
        timeout_s,
        stall_s,
        log_cap: ctx.limits.log_cap,
    };
    // Findings come in console order: those after this many are the
    // scenario's (an OOM kill among them explains a script that died).
    let warnings_before = vm.console.findings().len();
    let mut env = env.to_vec();
    if let Some(k) = kubelet {
        env.extend(k.env());
    }
    let (end, logs) = run_scenario(ctx, cell, &env, &session, &mut vm, &dir, &bounds);
    attempt.timings.scenario = scen_start.elapsed().as_secs_f64();
    record_capture(&mut attempt, Captured::Stdout, logs.stdout);
    record_capture(&mut attempt, Captured::Stderr, logs.stderr);

    // Fetch whatever the scenario left, even after a failure, if the guest
    // still answers: over the scenario's session, or over a new one when
    // the scenario dropped it (e.g. `kill -9 -1` took the SSH server, which
    // the guest's init restarts); briefly when it may not answer.
    let teardown_start = Instant::now();
    let out_dir = dir.join("out");
    let _ = std::fs::create_dir_all(&out_dir);
    let again = match end {
        ScriptEnd::Lost(_) if vm.exited().is_none() && vm.console.crash().is_none() => {
            let cancel = ctx.cancel.clone();
            let mut watch = |_: Activity| guest_gone(&mut vm, &cancel);
            let deadline = Instant::now() + RECONNECT_WAIT;
            GuestSession::connect(addr, ctx.key, Some(host_key), deadline, &mut watch).ok()
        }
        _ => None,
    };
    // A guest that ended the scenario itself, or answered again, gets time
    // for the fetches; one that timed out, stalled or went away does not.
    let fetch_deadline = Instant::now()
        + match (&end, &again) {
            (ScriptEnd::Exited(_), _) | (_, Some(_)) => FETCH_TIMEOUT,
            _ => FETCH_AFTER_TIMEOUT,
        };
    let evidence = match end {
        ScriptEnd::Lost(_) => again.as_ref(),
        _ => Some(&session),
    };
    let mut dmesg = None;
    if let Some(s) = evidence.filter(|_| vm.exited().is_none()) {
        let fetched = fetch_out(s, &out_dir, &ctx.limits, fetch_deadline);
        record_capture(&mut attempt, Captured::Result, fetched.result);
        record_capture(&mut attempt, Captured::Out, Some(fetched.out));
        if rootfs.is_some() {
            let kept = save_journal(
                s,
                &dir.join("journal.log"),
                ctx.limits.log_cap,
                fetch_deadline,
            );
            record_capture(&mut attempt, Captured::Journal, kept);
        }
        dmesg = save_dmesg(s, &dir.join("dmesg.log"), fetch_deadline);
        if dmesg.is_some() {
            attempt.artifacts.dmesg = Some(format!("{rel_dir}/dmesg.log"));
        }
    }
    // A guest that answered again outlived the session it dropped.
    let end = match end {
        ScriptEnd::Lost(why) if again.is_some() => ScriptEnd::Dropped(why),
        end => end,
    };
    // Bytes: a line that is not UTF-8 is rejected on its own, the rest kept.
    let script = result::parse_result_bytes(
        &std::fs::read(out_dir.join("result.jsonl")).unwrap_or_default(),
    );
    // QEMU first: the sessions' sockets then close at once instead of
    // waiting on a guest that may not answer.
    vm.kill();
    drop(again);
    drop(session);
    record_capture(&mut attempt, Captured::Console, vm.console.log_capture());
    let crash = vm.console.crash();
    let stderr_tail = read_tail(&dir.join("stderr.log"), 64 * 1024);
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

/// Saves the guest's journal of this boot, capped, by `deadline` (best
/// effort: a guest that cannot give it still has its console log).
fn save_journal(
    session: &GuestSession,
    path: &Path,
    cap: u64,
    deadline: Instant,
) -> Option<Capture> {
    let mut log = CappedFile::create(path, cap, Marker::Text).ok()?;
    if let Err(e) = session.fetch(
        "journalctl -b --no-pager -o short-monotonic",
        &mut log,
        deadline.min(Instant::now() + Duration::from_secs(60)),
    ) {
        let _ = log.put(format!("\njournalctl failed: {e}\n").as_bytes());
    }
    log.finish().ok()
}

/// Saves the guest's `dmesg` (every level; the kernel's log buffer bounds
/// its size) and returns it, best effort.
fn save_dmesg(session: &GuestSession, path: &Path, deadline: Instant) -> Option<String> {
    let left = deadline.saturating_duration_since(Instant::now());
    let o = session
        .exec("dmesg", left.min(Duration::from_secs(30)))
        .ok()?;
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

/// Whether the guest went silent: nothing on the console and nothing from
/// the command (stdout, stderr, result file growth) for `stall_s`.
fn stalled(
    stall_s: Option<u64>,
    command: Activity,
    console: Option<Instant>,
    now: Instant,
) -> Option<StopReason> {
    let s = stall_s?;
    let last = console.map_or(command.last, |c| c.max(command.last));
    (now.saturating_duration_since(last) >= Duration::from_secs(s))
        .then_some(StopReason::Stalled(s))
}

/// Notes what a capped log or the artefacts dropped.
fn record_capture(attempt: &mut Attempt, what: Captured, kept: Option<Capture>) {
    if let Some(c) = kept.filter(|c| c.dropped > 0) {
        attempt.dropped.insert(what, c.dropped);
    }
}

/// The last `n` bytes of a file (the end of a capped log), as text.
fn read_tail(path: &Path, n: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(n)));
    let mut buf = Vec::new();
    let _ = f.take(n).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// What `fetch_out` kept.
struct Fetched {
    /// The result file's log, when there was one.
    result: Option<Capture>,
    /// Every other artefact, together.
    out: Capture,
}

/// Fetches `/repro/out` into `out_dir` by `deadline`, within the caps:
/// the result file as a capped log (the guest sends only its head and
/// tail, cut at line boundaries here), then the other files as a tar
/// stream spooled to disk (never held in memory), unpacked while the
/// artefact budget lasts. An over-cap set gets a note in `out/`.
fn fetch_out(
    session: &GuestSession,
    out_dir: &Path,
    limits: &RunLimits,
    deadline: Instant,
) -> Fetched {
    let (result, out, note) = match fetch_result(session, out_dir, limits.log_cap, deadline) {
        // A guest that does not answer the first fetch is not asked again.
        Err(e) => (
            None,
            Capture::default(),
            Some(format!("repro: the artefacts were not fetched: {e}\n")),
        ),
        Ok(result) => match fetch_artifacts(session, out_dir, limits.out_cap, deadline) {
            Ok((out, note)) => (result, out, note),
            Err(e) => (
                result,
                Capture::default(),
                Some(format!("repro: the artefacts were not fetched: {e}\n")),
            ),
        },
    };
    if let Some(note) = note {
        let _ = std::fs::write(out_dir.join(TRUNCATED_NOTE), note);
    }
    Fetched { result, out }
}

/// The result file through a capped log. The guest prints the file's size
/// on the first line, then the file, or only its first `head` and last
/// `tail` bytes when it is over the cap (the log counts the middle as
/// dropped and cuts both pieces at line boundaries).
fn fetch_result(
    session: &GuestSession,
    out_dir: &Path,
    cap: u64,
    deadline: Instant,
) -> Result<Option<Capture>, GuestError> {
    let path = out_dir.join(result::RESULT_FILE);
    let Ok(file) = std::fs::File::create(&path) else {
        return Ok(None);
    };
    let (head, tail) = (cap - cap / 2, cap / 2);
    let mut log = CappedFile::with_split(file, result::RESULT_FILE, head, tail, Marker::JsonLines);
    let cmd = format!(
        "f={OUT_DIR}/{name}; [ -f $f ] || exit 0; n=$(wc -c < $f); echo $n; \
         if [ $n -le {cap} ]; then cat $f; else head -c {head} $f; tail -c {tail} $f; fi",
        name = result::RESULT_FILE
    );
    let mut sink = ResultSink {
        log: &mut log,
        size: None,
        line: Vec::new(),
        head,
        tail,
    };
    let fetched = session.fetch(&cmd, &mut sink, deadline);
    let seen = sink.size.is_some();
    let kept = log.finish().ok();
    if !seen && kept.is_none_or(|k| k.bytes == 0) {
        // No result file (or no answer): leave none rather than an empty one.
        let _ = std::fs::remove_file(&path);
        return fetched.map(|()| None);
    }
    Ok(kept)
}

/// Splits the guest's answer for the result file: the size line, then the
/// bytes, with the skipped middle counted once the head has passed.
struct ResultSink<'a> {
    log: &'a mut CappedFile,
    size: Option<u64>,
    line: Vec<u8>,
    head: u64,
    tail: u64,
}

impl std::io::Write for ResultSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut data = buf;
        if self.size.is_none() {
            match data.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    self.line.extend_from_slice(&data[..i]);
                    let n = String::from_utf8_lossy(&self.line)
                        .trim()
                        .parse()
                        .unwrap_or(0);
                    self.size = Some(n);
                    data = &data[i + 1..];
                }
                None => {
                    self.line.extend_from_slice(data);
                    return Ok(buf.len());
                }
            }
        }
        let size = self.size.unwrap_or(0);
        let cut = size > self.head + self.tail;
        let offered = self.log.offered();
        if cut && offered < self.head && offered + data.len() as u64 >= self.head {
            let (h, rest) = data.split_at((self.head - offered) as usize);
            self.log.put(h)?;
            self.log.skip(size - self.head - self.tail)?;
            self.log.put(rest)?;
        } else {
            self.log.put(data)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.log.flush()
    }
}

/// The artefacts other than the result file: a tar stream, cut by the
/// guest a little past the cap, spooled to a capped file beside `out/`,
/// then unpacked entry by entry while `cap` bytes of file content last.
/// Returns what was kept and, when something was dropped, the note.
fn fetch_artifacts(
    session: &GuestSession,
    out_dir: &Path,
    cap: u64,
    deadline: Instant,
) -> Result<(Capture, Option<String>), String> {
    // Tar headers and padding: room for a few thousand small files.
    let limit = cap + (4 << 20);
    let spool_path = out_dir.with_extension("tar.part");
    let spool = std::fs::File::create(&spool_path).map_err(|e| e.to_string())?;
    let mut spool_log = CappedFile::new(spool, "out.tar", limit, Marker::Bare);
    // Every top-level entry but the result file, as arguments (busybox
    // tar has no --exclude); the pipe fails when tar does.
    let cmd = format!(
        "set -o pipefail 2>/dev/null; cd {OUT_DIR} || exit 1; set --; \
         for f in * .[!.]* ..?*; do \
           {{ [ -e \"$f\" ] || [ -L \"$f\" ]; }} && [ \"$f\" != {name} ] && set -- \"$@\" \"./$f\"; \
         done; \
         [ $# -eq 0 ] || tar -c -f - \"$@\" | head -c {limit}",
        name = result::RESULT_FILE
    );
    let fetched = session.fetch(&cmd, &mut spool_log, deadline);
    let streamed = spool_log.finish().map_err(|e| e.to_string())?;
    if let (Err(e), 0) = (&fetched, streamed.bytes) {
        let _ = std::fs::remove_file(&spool_path);
        return Err(e.to_string());
    }
    let unpacked = std::fs::File::open(&spool_path)
        .map_err(|e| e.to_string())
        .map(|f| unpack_capped(f, out_dir, cap));
    let _ = std::fs::remove_file(&spool_path);
    let u = unpacked?;
    let cut = streamed.bytes >= limit || u.broken || fetched.is_err();
    let mut kept = Capture {
        bytes: u.bytes,
        dropped: u.dropped,
    };
    if cut {
        // The listing was cut short: count what the files held.
        if let Some(total) = out_size(session, deadline) {
            kept.bytes = kept.bytes.max(total);
            kept.dropped = kept.bytes - u.kept;
        }
    }
    if kept.dropped == 0 && !cut {
        return Ok((kept, None));
    }
    let mut note = format!(
        "repro: the artefacts in $REPRO_OUT are capped at {cap} bytes in all (out_cap); \
         {} bytes of file content were not kept.\n",
        kept.dropped
    );
    match fetched {
        // Cut at the limit, tar dies of SIGPIPE: that is not news.
        Err(e) if streamed.bytes < limit => {
            note.push_str(&format!("The fetch ended early: {e}\n"));
        }
        _ => {}
    }
    for f in &u.notes {
        note.push_str(f);
        note.push('\n');
    }
    Ok((kept, Some(note)))
}

/// The bytes of every file in `/repro/out` but the result file (`None`
/// when the guest does not answer in time).
fn out_size(session: &GuestSession, deadline: Instant) -> Option<u64> {
    let cmd = format!(
        "cd {OUT_DIR} && find . -type f ! -name {name} -exec ls -ln {{}} +",
        name = result::RESULT_FILE
    );
    let left = deadline.saturating_duration_since(Instant::now());
    let o = session.exec(&cmd, left.min(Duration::from_secs(30))).ok()?;
    Some(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4)?.parse::<u64>().ok())
            .sum(),
    )
}

/// What [`unpack_capped`] did.
#[derive(Debug, Default, PartialEq)]
struct Unpacked {
    /// File content bytes listed in the archive.
    bytes: u64,
    /// File content bytes written.
    kept: u64,
    dropped: u64,
    /// The archive ended inside an entry (the stream was cut).
    broken: bool,
    /// One line per file cut or left out.
    notes: Vec<String>,
}

/// Unpacks the tar in `archive` into `dest`, keeping at most `cap` bytes
/// of file content: files that fit are unpacked whole, the first that
/// does not keeps its head, the rest are left out. Only plain relative
/// paths are unpacked.
fn unpack_capped(archive: impl std::io::Read, dest: &Path, cap: u64) -> Unpacked {
    use std::io::Read as _;
    let mut u = Unpacked::default();
    let mut budget = cap;
    let mut ar = tar::Archive::new(archive);
    let Ok(entries) = ar.entries() else {
        u.broken = true;
        return u;
    };
    for entry in entries {
        let Ok(mut entry) = entry else {
            u.broken = true;
            break;
        };
        let kind = entry.header().entry_type();
        let Ok(raw) = entry.path().map(|p| p.into_owned()) else {
            continue;
        };
        let plain = raw.components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        });
        if !plain {
            continue;
        }
        // `./big.bin` as `big.bin`.
        let rel: PathBuf = raw.components().collect();
        if !kind.is_file() {
            let _ = entry.unpack_in(dest);
            continue;
        }
        let size = entry.header().size().unwrap_or(0);
        u.bytes += size;
        let target = dest.join(&rel);
        if size <= budget {
            match entry.unpack_in(dest) {
                Ok(_) => {
                    budget -= size;
                    u.kept += size;
                }
                Err(_) => {
                    // A short read: the stream ended inside this file.
                    u.broken = true;
                    break;
                }
            }
            continue;
        }
        if let Some(parent) = target.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let part = std::fs::File::create(&target).ok().map(|f| {
            let name = rel.display().to_string();
            CappedFile::new(f, &name, budget.max(1), Marker::Bare)
        });
        let kept = match part {
            Some(mut f) if budget > 0 => {
                let copied = std::io::copy(&mut (&mut entry).take(budget), &mut f);
                let _ = f.finish();
                if copied.is_err() {
                    u.broken = true;
                }
                budget
            }
            _ => {
                let _ = std::fs::remove_file(&target);
                0
            }
        };
        u.kept += kept;
        u.dropped += size - kept;
        u.notes.push(if kept > 0 {
            format!("{}: cut to its first {kept} of {size} bytes", rel.display())
        } else {
            format!("{}: left out ({size} bytes)", rel.display())
        });
        budget = 0;
        if u.broken {
            break;
        }
    }
    u
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
    kubelet: Option<&PreparedKubelet>,
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
            console_cap: ctx.limits.log_cap,
            tsc_khz: crate::vm::qemu::host_tsc_khz(),
            disk: disk.clone(),
            data_disks: kubelet.map(|k| vec![k.disk.clone()]).unwrap_or_default(),
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

/// The scenario's bounds in time and size.
struct Bounds {
    /// `timeout_s` after the scenario phase began (its upload included).
    deadline: Instant,
    timeout_s: u64,
    stall_s: Option<u64>,
    log_cap: u64,
}

/// What the stdout and stderr logs kept.
#[derive(Default)]
struct ScenarioLogs {
    stdout: Option<Capture>,
    stderr: Option<Capture>,
}

fn run_scenario(
    ctx: &RunContext,
    cell: &PlannedCell,
    extra_env: &[(String, String)],
    session: &GuestSession,
    vm: &mut Vm,
    dir: &Path,
    bounds: &Bounds,
) -> (ScriptEnd, ScenarioLogs) {
    let mut logs = ScenarioLogs::default();
    let timed_out = ScriptEnd::TimedOut(bounds.timeout_s as f64);
    let lib = cell
        .scenario
        .dir
        .parent()
        .map(|p| p.join("lib"))
        .unwrap_or_default();
    let tar = match pack_upload(&cell.scenario.dir, &lib) {
        Ok(t) => t,
        Err(e) => {
            let why = format!("cannot pack the scenario folder: {e}");
            return (ScriptEnd::Lost(why), logs);
        }
    };
    match session.upload_tar("/repro", &tar, bounds.deadline) {
        Ok(()) => {}
        Err(GuestError::Timeout(_)) => return (timed_out, logs),
        Err(e) => {
            let why = format!("uploading the scenario failed: {e}");
            return (ScriptEnd::Lost(why), logs);
        }
    }
    let result_path = format!("{OUT_DIR}/{}", result::RESULT_FILE);
    let mut env: Vec<(String, String)> = vec![
        ("REPRO_RESULT".into(), result_path.clone()),
        ("REPRO_OUT".into(), OUT_DIR.into()),
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
        "mkdir -p {OUT_DIR} && cd /repro/scenario && {} sh ./{}",
        guest::env_prefix(&env),
        guest::shell_quote(&cell.scenario.manifest.entry)
    );
    let open = |name: &str| CappedFile::create(&dir.join(name), bounds.log_cap, Marker::Text);
    let (Ok(mut out), Ok(mut err)) = (open("stdout.log"), open("stderr.log")) else {
        return (ScriptEnd::Lost("cannot create the log files".into()), logs);
    };
    let cancel = ctx.cancel.clone();
    let mut watch = |activity: Activity| {
        guest_gone(vm, &cancel).or_else(|| {
            stalled(
                bounds.stall_s,
                activity,
                vm.console.last_output(),
                Instant::now(),
            )
        })
    };
    let c = Cmd {
        cmd: &cmd,
        stdin: None,
        deadline: bounds.deadline,
        watch_file: bounds.stall_s.map(|_| result_path.as_str()),
    };
    let r = session.run(&c, &mut out, &mut err, &mut watch);
    logs.stdout = out.finish().ok();
    logs.stderr = err.finish().ok();
    // An interrupt kills the guests at once: whatever error that caused
    // is the interrupt's doing, not the scenario's or the guest's.
    if cancel.load(Ordering::SeqCst) {
        return (ScriptEnd::Cancelled, logs);
    }
    let end = match r {
        Ok(code) => ScriptEnd::Exited(code),
        Err(GuestError::Timeout(_)) => timed_out,
        Err(GuestError::Stopped(StopReason::Cancelled)) => ScriptEnd::Cancelled,
        Err(GuestError::Stopped(StopReason::Stalled(s))) => ScriptEnd::Stalled(s),
        Err(e) => ScriptEnd::Lost(e.to_string()),
    };
    (end, logs)
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

    fn tar_of(files: &[(&str, usize)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, size) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(*size as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, &vec![b'a'; *size][..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn artefacts_past_the_cap_are_cut_then_left_out() {
        let tmp = tempfile::tempdir().unwrap();
        let tar = tar_of(&[("a.txt", 10), ("sub/b.bin", 20), ("c.txt", 5)]);
        let u = unpack_capped(&tar[..], tmp.path(), 25);
        assert_eq!((u.bytes, u.kept, u.dropped, u.broken), (35, 25, 10, false));
        assert_eq!(std::fs::read(tmp.path().join("a.txt")).unwrap().len(), 10);
        assert_eq!(
            std::fs::read(tmp.path().join("sub/b.bin")).unwrap().len(),
            15
        );
        assert!(!tmp.path().join("c.txt").exists());
        assert_eq!(
            u.notes,
            vec![
                "sub/b.bin: cut to its first 15 of 20 bytes".to_string(),
                "c.txt: left out (5 bytes)".to_string()
            ]
        );
    }

    #[test]
    fn artefacts_under_the_cap_are_all_kept_and_a_cut_stream_is_noticed() {
        let tmp = tempfile::tempdir().unwrap();
        let tar = tar_of(&[("a.txt", 10), ("b.txt", 2000)]);
        let u = unpack_capped(&tar[..], tmp.path(), 1 << 20);
        assert_eq!(
            (u.bytes, u.kept, u.dropped, u.broken),
            (2010, 2010, 0, false)
        );
        let cut = unpack_capped(
            &tar[..1024 + 512 + 100],
            tempfile::tempdir().unwrap().path(),
            1 << 20,
        );
        assert!(cut.broken, "{cut:?}");
        assert_eq!(cut.kept, 10);
    }

    /// What the guest answers for a result file (see `fetch_result`).
    fn answer(file: &[u8], head: u64, tail: u64) -> Vec<u8> {
        let mut a = format!("{}\n", file.len()).into_bytes();
        if file.len() as u64 <= head + tail {
            a.extend_from_slice(file);
        } else {
            a.extend_from_slice(&file[..head as usize]);
            a.extend_from_slice(&file[file.len() - tail as usize..]);
        }
        a
    }

    fn receive(answer: &[u8], head: u64, tail: u64, chunk: usize) -> (String, Capture) {
        use std::io::Write;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("result.jsonl");
        let f = std::fs::File::create(&path).unwrap();
        let mut log = CappedFile::with_split(f, "result.jsonl", head, tail, Marker::JsonLines);
        let mut sink = ResultSink {
            log: &mut log,
            size: None,
            line: Vec::new(),
            head,
            tail,
        };
        for c in answer.chunks(chunk) {
            sink.write_all(c).unwrap();
        }
        let kept = log.finish().unwrap();
        (std::fs::read_to_string(&path).unwrap(), kept)
    }

    #[rstest::rstest]
    #[case::whole(1)]
    #[case::bytes(7)]
    #[case::big(4096)]
    fn a_result_file_over_the_cap_keeps_whole_lines_at_both_ends(#[case] chunk: usize) {
        let mut file = Vec::new();
        for i in 0..100 {
            file.extend_from_slice(format!("{{\"metric\":\"m{i}\",\"value\":{i}}}\n").as_bytes());
        }
        file.extend_from_slice(b"{\"outcome\":\"reproduced\",\"reason\":\"end\"}\n");
        let (text, kept) = receive(&answer(&file, 100, 100), 100, 100, chunk);
        let r = result::parse_result(&text);
        assert!(r.bad_lines.is_empty(), "{:?}\n{text}", r.bad_lines);
        assert_eq!(r.outcome.unwrap().1, "end");
        assert!(r.metrics.contains_key("m0") && !r.metrics.contains_key("m50"));
        assert_eq!(kept.bytes, file.len() as u64);
        let kept_lines: usize = text
            .lines()
            .filter(|l| !l.contains("\"log\""))
            .map(|l| l.len() + 1)
            .sum();
        assert_eq!(kept.dropped, file.len() as u64 - kept_lines as u64);
        assert!(r.logs[0].starts_with(&format!(
            "repro: {} bytes of result.jsonl dropped here",
            kept.dropped
        )));
        let small = b"{\"outcome\":\"not-reproduced\",\"reason\":\"x\"}\n";
        let (text, kept) = receive(&answer(small, 100, 100), 100, 100, chunk);
        assert_eq!(text.as_bytes(), small);
        assert_eq!(kept.dropped, 0);
    }

    #[test]
    fn the_stall_watchdog_needs_every_source_silent() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let cmd = Activity { last: t0 };
        assert_eq!(stalled(None, cmd, None, at(10_000)), None, "off");
        assert_eq!(stalled(Some(30), cmd, None, at(29)), None);
        assert_eq!(
            stalled(Some(30), cmd, None, at(30)),
            Some(StopReason::Stalled(30))
        );
        assert_eq!(
            stalled(Some(30), cmd, Some(at(10)), at(30)),
            None,
            "console spoke"
        );
        let recent = Activity { last: at(20) };
        assert_eq!(
            stalled(Some(30), recent, Some(at(1)), at(45)),
            None,
            "stdout spoke"
        );
        assert_eq!(
            stalled(Some(30), recent, Some(at(1)), at(50)),
            Some(StopReason::Stalled(30))
        );
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
            rule: None,
            stale_rules: vec![],
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
