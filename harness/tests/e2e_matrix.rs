#![cfg(feature = "e2e")]
//! End-to-end: `repro matrix` on the small real matrix in ci/smoke.toml
//! (2 kernels × 2 quick scenarios) with two cells in parallel, its reports,
//! and shard listing.

mod common;

use common::*;
use std::collections::BTreeSet;

fn smoke() -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ci/smoke.toml")
        .display()
        .to_string()
}

#[test]
fn the_smoke_matrix_runs_two_cells_at_a_time_and_writes_every_report() {
    let results = tempfile::tempdir().unwrap();
    let r = results.path().to_str().unwrap();
    let m = smoke();
    let out = run(&["matrix", "--matrix", &m, "--jobs", "2", "--results", r]);
    assert_eq!(out.status.code(), Some(0));
    let s = summary(results.path());
    let cells = s["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 4);
    for c in cells {
        let a = &c["attempts"][0];
        let want = c["expect"].as_str().unwrap();
        assert_eq!(a["outcome"].as_str().unwrap(), want, "{c}");
    }
    let dir = run_dir(results.path());
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(
        junit.contains("<testsuite") && junit.contains("memcg-fill[kernel=5.10,cgroup=v1]"),
        "{junit}"
    );
    assert!(!junit.contains("<failure"), "{junit}");
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(
        md.contains("### inotify-exhaust") && md.contains("4 passed"),
        "{md}"
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        html.contains("<svg") && html.contains("console.log"),
        "report.html"
    );
    // Comparing a run with itself finds nothing.
    let d = dir.to_str().unwrap();
    let out = run(&["compare", d, d]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 regressions"));
}

fn listed(args: &[&str]) -> BTreeSet<String> {
    let out = run(args);
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn shards_cover_the_default_matrix_exactly_once() {
    let all = listed(&["matrix", "--list"]);
    assert!(all.len() > 4, "{all:?}");
    let mut union = BTreeSet::new();
    let mut total = 0;
    for i in 1..=3 {
        let part = listed(&["matrix", "--list", "--shard", &format!("{i}/3")]);
        total += part.len();
        union.extend(part);
    }
    assert_eq!(total, all.len(), "a cell landed in two shards");
    assert_eq!(union, all);
}

#[test]
fn a_malformed_matrix_points_at_file_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("m.toml");
    std::fs::write(
        &f,
        "[axes]\nkernels = [\"6.1\"]\n\n[[scenario]]\nname = \"memcg-fill\"\ntimout_s = 3\n",
    )
    .unwrap();
    let out = run(&["matrix", "--matrix", f.to_str().unwrap(), "--list"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("m.toml:6:1") && err.contains("timout_s"),
        "{err}"
    );
}

#[test]
fn fixed_in_probes_each_kernel_and_reports_a_verdict() {
    let results = tempfile::tempdir().unwrap();
    let r = results.path().to_str().unwrap();
    let out = run(&[
        "fixed-in",
        "inotify-exhaust",
        "--kernel",
        "5.10",
        "--kernel",
        "6.1",
        "--results",
        r,
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    // The default inotify limit is still 128 on both: nothing fixed it.
    assert!(
        text.contains("5.10: Reproduces") && text.contains("6.1: Reproduces"),
        "{text}"
    );
    assert!(text.contains("still reproduces on 6.1"), "{text}");
}
