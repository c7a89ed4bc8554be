#![cfg(feature = "e2e")]
//! The HTML report in a real browser: Debian's headless chromium renders
//! it to a non-trivial screenshot, its DOM has the cell links, and a cell's
//! log link opens the console log written beside it.
//!
//! Needs chromium (`apt-get install -y chromium`); without it this test
//! fails and says so. `REPRO_CHROMIUM` names another binary;
//! `REPRO_BROWSER_OUT=DIR` keeps the rendered run and its screenshot.
//!
//! It boots nothing, but it needs a host package that plain `cargo test`
//! must not depend on, so it sits behind the `e2e` feature with the booting
//! tests: `cargo xtask test` installs chromium and turns the feature on.

use repro::model::{
    Artifacts, Attempt, ConsoleFinding, FindingKind, FindingSource, KernelInfo, Metric, Outcome,
    Series, Timings,
};
use repro::report::render::render_all;
use repro::report::{CellRecord, Expect, RunMeta, RunSummary, SCHEMA_VERSION};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const LOG_TEXT: &str = "repro-browser-test: the console log of memcg-fill on 6.1";

fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("REPRO_CHROMIUM") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "REPRO_CHROMIUM={} is not a file; unset it to use chromium from PATH \
             (install it with `apt-get install -y chromium`)",
            p.display()
        );
        return p;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "chromium is not installed: the HTML report's browser test needs it. \
         Install it with `apt-get install -y chromium` (or set REPRO_CHROMIUM to a \
         Chromium/Chrome binary)."
    );
}

/// Runs headless chromium with `args`, bounded in time; kills its process
/// group if it hangs.
fn run_chromium(profile: &Path, args: &[String]) -> Output {
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0);
    let mut child = cmd.spawn().expect("start chromium");
    let pid = child.id() as i32;
    // Drain the pipes in threads so a chatty chromium cannot block.
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = vec![];
        let _ = std::io::Read::read_to_end(&mut so, &mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = vec![];
        let _ = std::io::Read::read_to_end(&mut se, &mut v);
        v
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for chromium") {
            break st;
        }
        if Instant::now() > deadline {
            // SAFETY: signalling the process group we created above.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = child.wait();
            panic!("chromium {args:?} did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Renderer helpers may outlive the browser process briefly.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

/// A `file://` URL for an absolute path.
fn file_url(p: &Path) -> String {
    let mut s = String::from("file://");
    for b in p.to_str().expect("UTF-8 temp path").bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                s.push(b as char)
            }
            _ => s.push_str(&format!("%{b:02X}")),
        }
    }
    s
}

fn attempt(n: u32, outcome: Outcome, kernel: &str, dir: &str, scale: f64) -> Attempt {
    let d = format!("{dir}/attempt-{n}");
    Attempt {
        number: n,
        outcome,
        reason: format!(
            "{outcome}: <script>alert('x')</script> after {} cgroups",
            65533
        ),
        phase: None,
        accel: "tcg".into(),
        machine: "microvm".into(),
        rootfs: None,
        kernel: KernelInfo {
            alias: kernel.into(),
            package: Some(format!("linux-image-{kernel}-amd64-unsigned")),
            packages: Vec::new(),
            version: Some(format!("{kernel}.1-1")),
            release: format!("{kernel}.0-1-amd64"),
            sha256: "ab".repeat(32),
        },
        kubelet: None,
        image_sha256: "cd".repeat(32),
        timings: Timings {
            image: 0.4 * scale,
            boot: 3.1 * scale,
            scenario: 8.0 * scale,
            teardown: 0.5 * scale,
            total: 12.0 * scale,
        },
        metrics: [(
            "created".to_string(),
            Metric {
                value: serde_json::json!((65533.0 / scale) as i64),
                unit: "cgroups".into(),
            },
        )]
        .into(),
        series: [(
            "rmdir latency".to_string(),
            Series {
                x_unit: "dying memcgs".into(),
                y_unit: "ms".into(),
                points: (0..20)
                    .map(|i| (i as f64 * 500.0, (i as f64 * 0.4 * scale).powf(1.3)))
                    .collect(),
            },
        )]
        .into(),
        crash: (outcome == Outcome::Crashed).then(|| ConsoleFinding {
            kind: FindingKind::Panic,
            title: "Kernel panic - not syncing: Out of memory".into(),
            excerpt: "Kernel panic - not syncing: Out of memory\nCPU: 0 PID: 1 Comm: init".into(),
            source: FindingSource::Console,
        }),
        warnings: vec![],
        exit_status: Some(0),
        retry: Default::default(),
        artifacts: Artifacts {
            console: format!("{d}/console.log"),
            stdout: format!("{d}/stdout.log"),
            stderr: format!("{d}/stderr.log"),
            result: format!("{d}/out/result.jsonl"),
            journal: None,
            dmesg: None,
            dir: d,
        },
        started_at: "2026-11-22T20:00:00Z".into(),
        limits: None,
        dropped: Default::default(),
    }
}

fn cell(
    kernel: &str,
    cgroup: &str,
    expect: Expect,
    outcomes: &[Outcome],
    scale: f64,
) -> CellRecord {
    let id = format!("memcg-fill/kernel={kernel}/cgroup={cgroup}");
    let dir = id.replace('/', "__");
    CellRecord {
        key: id.parse().expect("a valid cell id"),
        params: [("limit".to_string(), "65536".to_string())].into(),
        key_metric: Some("created".into()),
        expect,
        rule: None,
        stale_rules: vec![],
        attempts: outcomes
            .iter()
            .enumerate()
            .map(|(i, o)| attempt(i as u32 + 1, *o, kernel, &dir, scale))
            .collect(),
    }
}

fn summary() -> RunSummary {
    use Outcome::*;
    RunSummary {
        schema_version: SCHEMA_VERSION,
        run_id: "20261122-201500-3fa2".into(),
        started_at: "2026-11-22T20:00:00Z".into(),
        finished_at: Some("2026-11-22T20:04:10Z".into()),
        complete: true,
        meta: RunMeta {
            repro_version: "0.1.0".into(),
            qemu_version: "QEMU emulator version 7.2.15 (Debian 1:7.2+dfsg-7+deb12u7)".into(),
            host_kernel: "6.1.0-40-amd64".into(),
            accel: "tcg".into(),
            accel_reason: "/dev/kvm is missing".into(),
            images: [
                ("6.1".to_string(), "cd".repeat(32)),
                ("6.12".to_string(), "ef".repeat(32)),
            ]
            .into(),
            command: "repro run memcg-fill --kernel 6.1,6.12 --cgroup v1,v2".into(),
        },
        cells: vec![
            cell("6.1", "v1", Expect::Reproduced, &[Reproduced], 1.0),
            cell("6.1", "v2", Expect::NotReproduced, &[NotReproduced], 1.4),
            cell(
                "6.12",
                "v1",
                Expect::Reproduced,
                &[Reproduced, NotReproduced],
                0.8,
            ),
            cell("6.12", "v2", Expect::NotReproduced, &[Crashed], 2.0),
        ],
    }
}

fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[test]
fn report_renders_in_chromium_and_links_open_logs() {
    // Fail loudly (not skip) when there is no browser.
    let _ = chromium();
    let tmp = tempfile::tempdir().unwrap();
    // REPRO_BROWSER_OUT keeps the run folder and the screenshot for a look.
    let keep = std::env::var_os("REPRO_BROWSER_OUT").map(PathBuf::from);
    let run = keep.clone().unwrap_or_else(|| tmp.path().join("run"));
    let s = summary();
    for c in &s.cells {
        for a in &c.attempts {
            let log = run.join(&a.artifacts.console);
            std::fs::create_dir_all(log.parent().unwrap()).unwrap();
            std::fs::write(&log, format!("{LOG_TEXT}\n[{}] {}\n", c.id(), a.outcome)).unwrap();
        }
    }
    render_all(&s, &run).unwrap();
    let report = run.join("report.html");
    let report_url = file_url(&report);
    let profile = tmp.path().join("profile");

    // 1. A screenshot that is neither empty nor one flat colour.
    let png_path = match &keep {
        Some(dir) => dir.join("screenshot.png"),
        None => tmp.path().join("report.png"),
    };
    let out = run_chromium(
        &profile,
        &[
            format!("--screenshot={}", png_path.display()),
            "--window-size=1200,900".into(),
            report_url.clone(),
        ],
    );
    let bytes = std::fs::read(&png_path).unwrap_or_else(|e| {
        panic!(
            "no screenshot at {} ({e}); chromium said:\n{}",
            png_path.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        bytes.len() > 20_000,
        "screenshot is only {} bytes",
        bytes.len()
    );
    let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("PNG size")];
    let info = reader.next_frame(&mut buf).expect("PNG frame");
    assert_eq!((info.width, info.height), (1200, 900));
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{:?}", info.color_type);
    let pixels: Vec<[u8; 3]> = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    let distinct: std::collections::HashSet<[u8; 3]> = pixels.iter().copied().collect();
    assert!(
        distinct.len() > 50,
        "screenshot has only {} colours",
        distinct.len()
    );
    // The status colours of the table are on screen (passed green, failed red).
    for (name, rgb) in [
        ("passed", [0xe6, 0xf4, 0xea]),
        ("failed", [0xfc, 0xe8, 0xe6]),
    ] {
        let n = pixels.iter().filter(|p| **p == rgb).count();
        assert!(
            n > 500,
            "only {n} pixels of the {name} colour in the screenshot"
        );
    }

    // 2. The rendered DOM has the cell links, the charts and no injected script.
    let dom = run_chromium(&profile, &["--dump-dom".into(), report_url.clone()]);
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    assert!(dom.contains("<svg class=\"timings\""), "{dom}");
    assert!(dom.contains("<svg class=\"plot\""), "{dom}");
    assert!(!dom.contains("<script>alert"), "a reason became a script");
    let re = regex::Regex::new(r#"<a class="log" href="([^"]+)">"#).unwrap();
    let mut hrefs: Vec<String> = vec![];
    for c in re.captures_iter(&dom) {
        let h = html_unescape(&c[1]);
        if !hrefs.contains(&h) {
            hrefs.push(h);
        }
    }
    // Five attempts over four cells, each with a log link (the failures
    // list links some of them again).
    assert_eq!(hrefs.len(), 5, "{hrefs:?}");
    let first = &hrefs[0];
    assert_eq!(
        first,
        "memcg-fill__kernel=6.1__cgroup=v1/attempt-1/console.log"
    );

    // 3. Following the link (resolved against the report's URL) opens the log.
    let base = &report_url[..report_url.rfind('/').unwrap() + 1];
    let log_url = format!("{base}{first}");
    let log = run_chromium(&profile, &["--dump-dom".into(), log_url.clone()]);
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(
        log.contains(LOG_TEXT) && log.contains("[memcg-fill/kernel=6.1/cgroup=v1] reproduced"),
        "{log_url} did not show the log:\n{log}"
    );
}
