#![cfg(feature = "e2e")]
//! End-to-end fault handling with fixture scenarios (tests/scenarios):
//! a kernel panic, a kernel warning, a hung task, a hang, a broken script,
//! malformed result lines, an OOM-killed script, a dropped SSH connection,
//! a script that kills every process (`kill -9 -1`, on the initramfs and
//! a root-filesystem guest), a stdout flood, a starved guest, a silent
//! scenario, and interrupting or killing the harness while
//! a guest runs.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios")
}

/// Runs fixture `scenario` on 6.1 and checks repro's exit code: `repro run`
/// records verdicts (0 whatever the outcome) and exits 3 when the cell
/// ended in infrastructure `error` (README.md, "Exit codes").
fn run_fixture(scenario: &str, code: i32) -> (serde_json::Value, tempfile::TempDir) {
    run_fixture_with(scenario, &[], code)
}

/// [`run_fixture`] with more `repro run` arguments (`--rootfs bullseye`).
fn run_fixture_with(
    scenario: &str,
    extra: &[&str],
    code: i32,
) -> (serde_json::Value, tempfile::TempDir) {
    let results = tempfile::tempdir().unwrap();
    let out = repro()
        .env("REPRO_SCENARIOS_DIR", fixtures())
        .args(["--cache-dir", cache_dir().to_str().unwrap()])
        .args(["run", scenario, "--kernel", "6.1"])
        .args(extra)
        .arg("--results")
        .arg(results.path())
        .output()
        .unwrap();
    eprintln!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(code), "{scenario}");
    (summary(results.path()), results)
}

#[test]
fn a_guest_that_panics_ends_crashed_with_the_panic_title() {
    let (s, _t) = run_fixture("panic", 0);
    let a = attempt(&s, 0);
    assert_eq!(a["outcome"], "crashed", "{a}");
    let title = a["crash"]["title"].as_str().unwrap();
    assert!(title.contains("sysrq triggered crash"), "{title}");
    assert!(
        a["crash"]["excerpt"]
            .as_str()
            .unwrap()
            .contains("Kernel panic"),
        "{a}"
    );
}

#[test]
fn a_scenario_that_hangs_ends_timeout() {
    let (s, _t) = run_fixture("hang", 0);
    let a = attempt(&s, 0);
    assert_eq!(a["outcome"], "timeout", "{a}");
    assert_eq!(a["phase"], "scenario");
}

#[test]
fn a_script_that_breaks_its_contract_is_an_error_not_a_verdict() {
    let (s, _t) = run_fixture("broken", 3);
    let a = attempt(&s, 0);
    assert_eq!(a["outcome"], "error", "{a}");
    let reason = a["reason"].as_str().unwrap();
    assert!(
        reason.contains("status 3") && reason.contains("something went wrong"),
        "{reason}"
    );
}

#[test]
fn malformed_result_lines_are_an_error_naming_the_first_and_valid_lines_stay() {
    let (s, _t) = run_fixture("badlines", 3);
    let a = attempt(&s, 0);
    assert_eq!(a["outcome"], "error", "{a}");
    assert_eq!(a["phase"], "scenario", "{a}");
    assert_eq!(
        a["reason"],
        "result.jsonl line 1: truncated JSON (the line ends inside a record) \
         (and 2 more bad lines)",
        "{a}"
    );
    assert_eq!(a["metrics"]["after"]["value"], 42, "{a}");
    assert_eq!(a["metrics"]["after"]["unit"], "things", "{a}");
}

#[test]
fn an_oom_killed_script_says_the_oom_killer_killed_it() {
    let (s, _t) = run_fixture("oomkill", 3);
    let a = attempt(&s, 0);
    assert_eq!(a["outcome"], "error", "{a}");
    let reason = a["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the entry script was killed by the OOM killer: ")
            && reason.contains("Killed process"),
        "{reason}"
    );
    assert_eq!(a["exit_status"], 137, "{a}");
}

#[test]
fn a_dropped_ssh_connection_is_not_a_scenario_failure() {
    let (s, _t) = run_fixture("dropssh", 3);
    let a = attempt(&s, 0);
    assert_eq!(a["outcome"], "error", "{a}");
    let reason = a["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the SSH session running the entry script was dropped: the guest's SSH server ended during the scenario and its init restarted it (sshd (dropbear, pid ")
            && reason.contains("exited with status 1; restarting it)"),
        "{reason}"
    );
}

/// The folder of the first attempt of the run's only cell.
fn attempt_dir(results: &Path, a: &serde_json::Value) -> PathBuf {
    run_dir(results).join(a["artifacts"]["dir"].as_str().unwrap())
}

#[test]
fn a_stdout_flood_is_capped_with_its_head_tail_and_dropped_count() {
    let cap: u64 = 1 << 20;
    let (s, t) = run_fixture_with("flood", &["--log-cap", "1M", "--out-cap", "2M"], 0);
    let a = attempt(&s, 0);
    // The script's own verdict stands: the cap is not a failure.
    assert_eq!(a["outcome"], "not-reproduced", "{a}");
    assert_eq!(a["reason"], "flooded stdout with 256 MiB", "{a}");
    let printed = "flood start\n".len() as u64 + (256 << 20) + "flood end\n".len() as u64;
    assert_eq!(a["dropped"]["stdout"], printed - cap, "{a}");
    assert!(a["dropped"].get("stderr").is_none(), "{a}");
    assert_eq!(a["limits"]["log_cap_bytes"], cap, "{a}");
    let log = std::fs::read(attempt_dir(t.path(), a).join("stdout.log")).unwrap();
    let text = String::from_utf8_lossy(&log);
    let marker = format!(
        "[repro: {} bytes dropped here: stdout.log is capped at {cap} bytes, keeping the first {} and the last {}]\n",
        printed - cap,
        cap / 2,
        cap / 2
    );
    assert!(
        log.len() as u64 <= cap + 1 + marker.len() as u64,
        "{} bytes",
        log.len()
    );
    assert!(
        text.starts_with("flood start\n0123456789abc"),
        "{}",
        &text[..100]
    );
    assert!(text.contains(&marker), "no marker");
    assert!(
        text.ends_with("flood end\n"),
        "{}",
        &text[text.len() - 100..]
    );
    // The result.json beside the logs says the same as the summary.
    let rec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(attempt_dir(t.path(), a).join("result.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(rec["dropped"]["stdout"], printed - cap);

    // The result file kept its head and its tail (the verdict), whole
    // lines only, with a log line where the middle was.
    let out = attempt_dir(t.path(), a).join("out");
    let result = std::fs::read_to_string(out.join("result.jsonl")).unwrap();
    assert!(result.len() as u64 <= cap + 200, "{} bytes", result.len());
    let dropped = a["dropped"]["result"].as_u64().unwrap();
    let written = 100_000 * "{\"log\":\"result flood\"}\n".len() as u64
        + "{\"outcome\":\"not-reproduced\",\"reason\":\"flooded stdout with 256 MiB\"}\n".len()
            as u64;
    let kept: u64 = result
        .lines()
        .filter(|l| !l.contains("repro: "))
        .map(|l| l.len() as u64 + 1)
        .sum();
    assert_eq!(dropped, written - kept, "{a}");
    assert!(result.contains(&format!(
        "{{\"log\":\"repro: {dropped} bytes of result.jsonl dropped here (capped at {cap} bytes)\"}}\n"
    )));
    // The other artefacts: 3 MiB + 6 bytes through a 2 MiB cap.
    assert_eq!(a["dropped"]["out"], (3u64 << 20) + 6 - (2 << 20), "{a}");
    assert_eq!(a["limits"]["out_cap_bytes"], 2u64 << 20, "{a}");
    let note = std::fs::read_to_string(out.join("REPRO-TRUNCATED.txt")).unwrap();
    assert!(note.contains("big.bin: cut to its first"), "{note}");
    let big = std::fs::metadata(out.join("big.bin")).unwrap().len();
    let small = std::fs::metadata(out.join("small.txt")).map_or(0, |m| m.len());
    assert_eq!(big + small, 2 << 20);
}

#[test]
fn a_starved_guest_times_out_on_time_and_is_torn_down_quickly() {
    let (s, _t) = run_fixture("starve", 0);
    let a = attempt(&s, 0);
    assert_eq!(a["outcome"], "timeout", "{a}");
    assert_eq!(a["phase"], "scenario", "{a}");
    let limit = a["limits"]["timeout_s"].as_u64().unwrap();
    assert_eq!(limit, 20, "the fixture's timeout_s applied: {a}");
    assert_eq!(
        a["reason"],
        format!("the scenario did not finish within its {limit} s time limit")
    );
    // Recorded numbers against the configured limit, with generous slack:
    // declared within a few seconds of timeout_s, torn down in seconds
    // (the fetches after a timeout get 10 s, then QEMU is killed).
    let scenario = a["timings"]["scenario"].as_f64().unwrap();
    let teardown = a["timings"]["teardown"].as_f64().unwrap();
    assert!(
        scenario >= limit as f64 && scenario <= limit as f64 + 5.0,
        "scenario took {scenario} s for a {limit} s limit"
    );
    assert!(teardown <= 20.0, "teardown took {teardown} s");
}

#[test]
fn a_silent_scenario_is_ended_by_the_stall_watchdog() {
    let (s, _t) = run_fixture("stall", 0);
    let a = attempt(&s, 0);
    assert_eq!(a["outcome"], "timeout", "{a}");
    assert_eq!(
        a["reason"],
        "no output from the guest for 10 s: console, stdout, stderr and result.jsonl all silent",
        "{a}"
    );
    assert_eq!(a["limits"]["stall_s"], 10, "{a}");
    assert_eq!(a["limits"]["timeout_s"], 600, "{a}");
    let scenario = a["timings"]["scenario"].as_f64().unwrap();
    assert!(
        (10.0..=20.0).contains(&scenario),
        "stalled after {scenario} s for stall_s = 10"
    );
}

/// The findings of kind `kind` among an attempt's warnings.
fn findings<'a>(a: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    a["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["kind"] == kind)
        .collect()
}

/// The attempt's artefact `key` (a path relative to the run folder), read.
fn artefact(results: &Path, a: &serde_json::Value, key: &str) -> String {
    let rel = a["artifacts"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key}: {a}"));
    std::fs::read_to_string(run_dir(results).join(rel)).unwrap()
}

#[test]
fn a_kernel_warning_is_recorded_with_its_title_and_the_verdict_stands() {
    let (s, t) = run_fixture("warning", 0);
    let a = attempt(&s, 0);
    assert_eq!(a["outcome"], "not-reproduced", "{a}");
    let pid = &a["metrics"]["pid"]["value"];
    let title =
        format!("WARNING: CPU: 0 PID: {pid} at mm/repro_fixture.c:42 repro_fixture_warn+0x1a/0x30");
    let w = findings(a, "warning");
    assert_eq!(w.len(), 1, "once, console and dmesg merged: {a}");
    assert_eq!(w[0]["title"], title.as_str(), "{a}");
    let excerpt = w[0]["excerpt"].as_str().unwrap();
    assert!(
        excerpt.contains("[ cut here ]") && excerpt.contains("RIP: 0010:"),
        "{excerpt}"
    );
    // The console printed it (level 4 is below `quiet`'s threshold), and
    // dmesg was saved beside it.
    assert!(
        artefact(t.path(), a, "console").contains(&title),
        "not on the console"
    );
    assert!(artefact(t.path(), a, "dmesg").contains(&title));
}

#[test]
fn a_hung_task_is_recorded_as_a_warning_with_its_stack_from_dmesg() {
    let (s, _t) = run_fixture("hungtask", 0);
    let a = attempt(&s, 0);
    assert_eq!(a["outcome"], "reproduced", "{a}");
    let w = findings(a, "hung-task");
    assert!(!w.is_empty(), "{a}");
    let title = w[0]["title"].as_str().unwrap();
    assert!(
        title.starts_with("INFO: task mkdir:")
            && title.ends_with("blocked for more than 5 seconds."),
        "{title}"
    );
    // The stack is printed at KERN_INFO: only dmesg has it.
    assert_eq!(w[0]["source"], "dmesg", "{a}");
    let excerpt = w[0]["excerpt"].as_str().unwrap();
    assert!(excerpt.contains("filename_create"), "{excerpt}");
}

#[test]
fn a_script_that_kills_every_process_leaves_a_reachable_guest_not_a_crash() {
    let (s, t) = run_fixture("killall", 3);
    let a = attempt(&s, 0);
    assert_eq!(a["outcome"], "error", "{a}");
    assert!(a["crash"].is_null(), "{a}");
    let reason = a["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the SSH session running the entry script was dropped: the guest's SSH server ended during the scenario and its init restarted it (sshd (dropbear, pid ")
            && reason.contains("was killed by signal 9 (SIGKILL); restarting it)"),
        "{reason}"
    );
    assert_eq!(findings(a, "sshd-restart").len(), 1, "{a}");
    assert!(findings(a, "init-exit").is_empty(), "{a}");
    // The guest still answered: what the script wrote before the kill was
    // fetched over a new session, and so was dmesg.
    assert_eq!(a["metrics"]["before_kill"]["value"], 1, "{a}");
    assert!(!artefact(t.path(), a, "dmesg").is_empty());
    assert!(!artefact(t.path(), a, "console").contains("Attempted to kill init"));
}

#[test]
fn a_rootfs_guest_survives_kill_all_too_and_systemd_restarts_sshd() {
    let (s, t) = run_fixture_with("killall", &["--rootfs", "bullseye"], 3);
    let a = attempt(&s, 0);
    assert_eq!(a["outcome"], "error", "{a}");
    assert!(a["crash"].is_null(), "{a}");
    let reason = a["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(
            "the SSH session running the entry script was dropped: the guest's SSH server \
             ended during the scenario and its init restarted it (ssh.service: Main process \
             exited, code=killed, status=9/KILL): "
        ),
        "{reason}"
    );
    assert_eq!(a["metrics"]["before_kill"]["value"], 1, "{a}");
    assert!(artefact(t.path(), a, "journal").contains("ssh.service"));
    assert!(!artefact(t.path(), a, "dmesg").is_empty());
}

/// PIDs of QEMU processes whose command line contains `needle`.
fn qemu_pids(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains("qemu-system") && cmd.contains(needle) {
            out.push(pid);
        }
    }
    out
}

/// Starts `repro run slow` and waits until its guest runs the scenario.
/// The caller waits for the child.
#[allow(clippy::zombie_processes)]
fn start_slow(results: &Path) -> (std::process::Child, String) {
    let child = repro()
        .env("REPRO_SCENARIOS_DIR", fixtures())
        .args(["--cache-dir", cache_dir().to_str().unwrap()])
        .args(["run", "slow", "--kernel", "6.1", "--results"])
        .arg(results)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Liveness bound, not a performance limit: the image may need building.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        assert!(Instant::now() < deadline, "the slow scenario never started");
        if let Ok(rd) = std::fs::read_dir(results) {
            if let Some(run) = rd.flatten().map(|e| e.path()).find(|p| p.is_dir()) {
                let log = run.join("slow__kernel=6.1__cgroup=v1/attempt-1/stdout.log");
                if std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .contains("slow start")
                {
                    let id = run.file_name().unwrap().to_string_lossy().into_owned();
                    return (child, id);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_gone(needle: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if qemu_pids(needle).is_empty() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn sigterm_stops_every_guest_and_writes_partial_results() {
    let results = tempfile::tempdir().unwrap();
    let (mut child, run_id) = start_slow(results.path());
    let needle = format!("-name repro-{run_id}-");
    assert_eq!(qemu_pids(&needle).len(), 1, "one guest runs");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(wait_gone(&needle), "QEMU left behind after SIGTERM");
    let s = summary(results.path());
    assert_eq!(s["complete"], false);
    assert_eq!(attempt(&s, 0)["outcome"], "cancelled", "{s}");
}

#[test]
fn killing_the_harness_takes_its_guests_with_it() {
    let results = tempfile::tempdir().unwrap();
    let (mut child, run_id) = start_slow(results.path());
    let needle = format!("-name repro-{run_id}-");
    assert_eq!(qemu_pids(&needle).len(), 1);
    child.kill().unwrap(); // SIGKILL: no handler runs
    child.wait().unwrap();
    assert!(wait_gone(&needle), "QEMU outlived a SIGKILLed harness");
    // The summary written at the start is still readable.
    assert_eq!(summary(results.path())["complete"], false);
}
