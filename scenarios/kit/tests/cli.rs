//! End-to-end tests of the repro-kit binary for everything that is safe on a
//! developer machine: nothing here mounts or creates cgroups.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kit() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_repro-kit"));
    c.env_remove("REPRO_RESULT");
    c
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("repro-kit-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn json_out(o: &Output) -> Value {
    let s = String::from_utf8_lossy(&o.stdout);
    let last = s
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_else(|| panic!("no stdout; stderr: {}", String::from_utf8_lossy(&o.stderr)));
    serde_json::from_str(last).unwrap_or_else(|e| panic!("bad JSON {last:?}: {e}"))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn emit_appends_escaped_lines() {
    let d = tmpdir("emit");
    let res = d.join("result.jsonl");
    let run = |args: &[&str]| kit().env("REPRO_RESULT", &res).args(args).output().unwrap();
    assert!(run(&["emit", "metric", "created", "65533", "cgroups"])
        .status
        .success());
    assert!(run(&[
        "emit",
        "metric",
        "signature",
        "mkdir \"/sys/fs/cgroup/memory/kubepods\": No space left on device"
    ])
    .status
    .success());
    assert!(run(&["emit", "metric", "kubelet", "1.9", "--string"])
        .status
        .success());
    assert!(run(&[
        "emit",
        "series",
        "memory_stat_median_ms",
        "1000",
        "0.31",
        "dying memcgs",
        "ms"
    ])
    .status
    .success());
    assert!(run(&["emit", "log", "two", "words\nand a newline"])
        .status
        .success());
    assert!(run(&[
        "emit",
        "outcome",
        "reproduced",
        "pod cgroup could not be created"
    ])
    .status
    .success());
    let bad = run(&["emit", "outcome", "error", "not ours"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).starts_with("repro-kit: "));
    assert_eq!(
        run(&["emit", "series", "s", "x", "1", "a", "b"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(run(&["emit", "metric", "only-name"]).status.code(), Some(2));

    let text = std::fs::read_to_string(&res).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert_eq!(
        lines[0],
        serde_json::json!({"metric":"created","value":65533,"unit":"cgroups"})
    );
    assert_eq!(
        lines[1]["value"],
        "mkdir \"/sys/fs/cgroup/memory/kubepods\": No space left on device"
    );
    assert_eq!(lines[2]["value"], "1.9");
    assert_eq!(
        lines[3],
        serde_json::json!({"series":"memory_stat_median_ms","x":1000,"y":0.31,"x_unit":"dying memcgs","y_unit":"ms"})
    );
    assert_eq!(lines[4]["log"], "two words\nand a newline");
    assert_eq!(lines[5]["outcome"], "reproduced");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn json_get_reads_stdin() {
    use std::io::Write;
    let mut c = kit()
        .args([
            "json-get",
            "created",
            "errno_name",
            "paths.memory",
            "missing",
            "--default",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(br#"{"created":5,"errno_name":null,"paths":{"memory":"/sys/fs/cgroup/memory"}}"#)
        .unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "5\n\n/sys/fs/cgroup/memory\n-\n"
    );

    let mut c = kit()
        .args(["json-get", "nope"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(b"{}").unwrap();
    assert_eq!(c.wait_with_output().unwrap().status.code(), Some(1));
}

#[test]
fn fill_and_rmdir_on_plain_directories() {
    let d = tmpdir("fill");
    let root = d.to_str().unwrap();
    let o = kit()
        .args(["memcg-fill", "--root", root, "--limit", "5"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let v = json_out(&o);
    assert_eq!(v["created"], 5);
    assert_eq!(v["stopped_by"], "limit");
    assert_eq!(v["errno"], Value::Null);
    assert!(v["ns_per_mkdir"].as_f64().unwrap() > 0.0);
    assert!(Path::new(root).join("fill-5").is_dir());

    // Filling again collides with fill-1: EEXIST is an error, not a refusal.
    let o = kit().args(["memcg-fill", "--root", root]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let v = json_out(&o);
    assert_eq!(v["created"], 0);
    assert_eq!(v["stopped_by"], "error");
    assert_eq!(v["errno_name"], "EEXIST");
    assert!(String::from_utf8_lossy(&o.stderr).contains("File exists"));

    // --start continues after the existing ones; an empty --limit means unset.
    let o = kit()
        .args([
            "memcg-fill",
            "--root",
            root,
            "--start",
            "6",
            "--limit",
            "2",
            "--prefix",
            "fill",
        ])
        .output()
        .unwrap();
    assert_eq!(json_out(&o)["created"], 2);

    let o = kit()
        .args(["memcg-rmdir", "--root", root, "--count", "2"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let v = json_out(&o);
    assert_eq!(
        (
            v["found"].as_u64(),
            v["removed"].as_u64(),
            v["remaining"].as_u64()
        ),
        (Some(7), Some(2), Some(5))
    );
    assert!(!Path::new(root).join("fill-1").exists() && !Path::new(root).join("fill-2").exists());
    assert!(Path::new(root).join("fill-3").exists());

    let o = kit()
        .args(["memcg-rmdir", "--root", root])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(json_out(&o)["removed"], 5);
    let o = kit()
        .args(["memcg-rmdir", "--root", root, "--count", "1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn try_mkdir_reports_failure_as_data() {
    let d = tmpdir("trymkdir");
    let a = d.join("a");
    let b = d.join("a/b");
    let c = d.join("missing/c");
    let o = kit()
        .args([
            "try-mkdir",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            c.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success());
    let v = json_out(&o);
    assert_eq!(v["created"], 2);
    assert_eq!(v["ok"], false);
    assert_eq!(v["errno_name"], "ENOENT");
    assert_eq!(v["refused"], false);
    assert_eq!(
        v["message"],
        format!("mkdir {}: No such file or directory", c.display())
    );
    let o = kit()
        .args(["try-mkdir", d.join("x").to_str().unwrap()])
        .output()
        .unwrap();
    let v = json_out(&o);
    assert_eq!(
        (v["ok"].as_bool(), v["message"].is_null()),
        (Some(true), true)
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn memstat_time_summarizes() {
    let d = tmpdir("memstat");
    let f = d.join("memory.stat");
    std::fs::write(&f, "cache 4096\nrss 0\n").unwrap();
    let o = kit()
        .args([
            "memstat-time",
            "--file",
            f.to_str().unwrap(),
            "--reads",
            "7",
        ])
        .output()
        .unwrap();
    assert!(o.status.success());
    let v = json_out(&o);
    assert_eq!(v["reads"], 7);
    assert_eq!(v["bytes"], 17);
    let (mn, md, p99, mx) = (
        v["min_ms"].as_f64().unwrap(),
        v["median_ms"].as_f64().unwrap(),
        v["p99_ms"].as_f64().unwrap(),
        v["max_ms"].as_f64().unwrap(),
    );
    assert!(mn <= md && md <= p99 && p99 <= mx);
    let o = kit()
        .args(["memstat-time", "--file", d.join("none").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("No such file or directory"));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn inotify_exhaust_with_cap() {
    let uid = if is_root() { "65534" } else { "0" };
    let o = kit()
        .args(["inotify-exhaust", "--uid", uid, "--max", "5"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json_out(&o);
    assert_eq!(v["created"], 5);
    assert_eq!(v["stopped_by"], "max");
    assert!(v["max_user_instances"].as_u64().unwrap() > 0);
}

#[test]
fn cgroup_mount_refuses_unknown_controller_without_mounting() {
    let o = kit()
        .args(["cgroup-mount", "v1", "no-such-controller"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not listed in /proc/cgroups"));
    assert_eq!(
        kit()
            .args(["cgroup-mount", "v3", "memory"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn usage_errors() {
    assert_eq!(kit().arg("nope").output().unwrap().status.code(), Some(2));
    assert_eq!(kit().output().unwrap().status.code(), Some(2));
    assert_eq!(
        kit()
            .args(["memcg-fill", "--root"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        kit()
            .args(["zombie-cron", "--init", "systemd"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );
}

/// Runs in a private PID namespace for about a second; no cgroup is touched.
#[test]
fn zombie_cron_with_and_without_init() {
    if !is_root() {
        eprintln!("skipped: unshare(CLONE_NEWPID) needs root");
        return;
    }
    let o = kit()
        .args([
            "zombie-cron",
            "--interval-ms",
            "10",
            "--max-seconds",
            "1",
            "--sample-ms",
            "100",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json_out(&o);
    assert_eq!(v["stopped_by"], "time-limit");
    let jobs = v["jobs"].as_u64().unwrap();
    assert!(jobs >= 10, "{v}");
    // Every finished job left one grandchild behind, minus those still sleeping.
    assert!(v["zombies_at_end"].as_u64().unwrap() >= jobs / 2, "{v}");

    if Path::new("/usr/bin/tini-static").exists() {
        let o = kit()
            .args([
                "zombie-cron",
                "--interval-ms",
                "10",
                "--max-seconds",
                "1",
                "--sample-ms",
                "100",
                "--init",
                "tini",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v = json_out(&o);
        assert!(v["jobs"].as_u64().unwrap() >= 10, "{v}");
        assert!(v["zombies_max"].as_u64().unwrap() <= 2, "{v}");
    }
    let o = kit()
        .args([
            "zombie-cron",
            "--init",
            "tini",
            "--tini",
            "/nonexistent/tini",
            "--max-seconds",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
}

/// `(pid, state)` of every process whose parent is `parent`.
fn children_of(parent: u32) -> Vec<(u32, char)> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next().and_then(|s| s.chars().next()).unwrap_or('?');
        if f.next().and_then(|p| p.parse::<u32>().ok()) == Some(parent) {
            out.push((pid, state));
        }
    }
    out
}

/// Waits (bounded, for liveness only) until `f` holds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn init_restarts_its_service_and_reaps_orphans() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt;
    // The service leaves an orphan behind (the subshell's `sleep` outlives
    // it), then stays.
    let mut child = kit()
        .args(["init", "--name", "svc", "--ready", "SVC-READY", "--"])
        .args(["/bin/sh", "-c", "(sleep 0.2 &); exec sleep 1000"])
        .stdout(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let init = child.id();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || out.next().unwrap().unwrap();
    assert!(
        next().starts_with("SVC-READY "),
        "the ready line comes first"
    );
    let service = || children_of(init).into_iter().find(|(_, st)| *st != 'Z');
    eventually("the service runs", || service().is_some());
    // The orphan came to init and was reaped: no zombie stays.
    std::thread::sleep(std::time::Duration::from_millis(600));
    eventually("no zombie", || {
        children_of(init).iter().all(|(_, st)| *st != 'Z')
    });
    let (first, _) = service().unwrap();
    // SAFETY: plain syscall on a process this test started.
    unsafe { libc::kill(first as i32, libc::SIGKILL) };
    assert_eq!(
        next(),
        format!(
            "repro-init: svc (sh, pid {first}) was killed by signal 9 (SIGKILL); restarting it"
        )
    );
    eventually("a new service runs", || {
        service().is_some_and(|(pid, _)| pid != first)
    });
    // SAFETY: the group this test created (init and its service).
    unsafe { libc::kill(-(init as i32), libc::SIGKILL) };
    let _ = child.wait();
}
