#![cfg(feature = "e2e")]
//! End-to-end: each kernel-axis scenario with small parameters on a real
//! kernel (the full-size runs are for `repro run` and the nightly matrix).

mod common;

use common::*;

fn run_cell(args: &[&str]) -> serde_json::Value {
    run_cell_md(args).0
}

/// The summary and the Markdown report of a one-cell run.
fn run_cell_md(args: &[&str]) -> (serde_json::Value, String) {
    let (s, dir, _keep) = run_ok(args);
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap_or_default();
    (s, md)
}

#[test]
fn kmem_leak_with_the_1_9_profile_records_that_6_1_ignores_kmem_limits() {
    let s = run_cell(&[
        "kmem-leak",
        "--kernel",
        "6.1",
        "--kubelet",
        "1.9",
        "--param",
        "pods=2",
    ]);
    let a = attempt(&s, 0);
    assert_eq!(a["outcome"], "not-reproduced", "{a}");
    assert_eq!(s["cells"][0]["kubelet"], "1.9");
    assert_eq!(metric(&s, 0, "kubelet_version"), "1.9");
    assert_eq!(metric(&s, 0, "kubelet_kmem_accounting"), 1);
    assert_eq!(metric(&s, 0, "leaked"), 0);
    assert_eq!(metric(&s, 0, "pods_done"), 2);
    // FACTS.md: on 6.1 the kmem limit write is accepted and changes nothing.
    assert_eq!(metric(&s, 0, "kmem_took_effect"), 0);
    assert!(metric(&s, 0, "kmem_writes").as_u64().unwrap() > 0);
    assert!(s["cells"][0]["id"]
        .as_str()
        .unwrap()
        .contains("/kubelet=1.9/"));
}

#[test]
fn supercronic_zombies_fill_the_pids_limit_and_tini_reaps_them() {
    let s = run_cell(&[
        "supercronic-zombies",
        "--kernel",
        "6.1",
        "--param",
        "pids_max=40",
        "--param",
        "interval_ms=20",
    ]);
    let a = attempt(&s, 0);
    assert_eq!(a["outcome"], "reproduced", "{a}");
    assert!(
        metric(&s, 0, "zombies_at_end").as_u64().unwrap() > 30,
        "{a}"
    );
    assert_eq!(metric(&s, 0, "fork_errno_name"), "EAGAIN");

    let s = run_cell(&[
        "supercronic-zombies",
        "--kernel",
        "6.1",
        "--param",
        "pids_max=40",
        "--param",
        "interval_ms=20",
        "--param",
        "init=tini",
        "--param",
        "max_seconds=5",
    ]);
    let a = attempt(&s, 0);
    assert_eq!(a["outcome"], "not-reproduced", "{a}");
    assert_eq!(metric(&s, 0, "zombies_max"), 0, "{a}");
}

#[test]
fn memcg_stat_latency_proves_its_dying_memcgs_and_reports_a_curve() {
    let s = run_cell(&[
        "memcg-stat-latency",
        "--kernel",
        "6.1",
        "--cgroup",
        "v2",
        "--param",
        "count=600",
        "--param",
        "checkpoint=200",
    ]);
    let a = attempt(&s, 0);
    assert!(
        a["outcome"] == "not-reproduced" || a["outcome"] == "reproduced",
        "{a}"
    );
    assert!(metric(&s, 0, "dying_end").as_u64().unwrap() > 0, "{a}");
    // The seeds' workaround was applied and timed.
    assert!(
        metric(&s, 0, "after_drop_caches_median_ms")
            .as_f64()
            .is_some(),
        "{a}"
    );
    let series = a["series"].as_object().unwrap();
    assert!(!series.is_empty(), "{a}");
    let points = series.values().next().unwrap()["points"]
        .as_array()
        .unwrap();
    assert!(points.len() >= 2, "{a}");
}

#[test]
fn inotify_exhaust_hits_the_default_limit_and_the_fix_lifts_it() {
    let s = run_cell(&[
        "inotify-exhaust",
        "--kernel",
        "6.12",
        "--param",
        "fixed_limit=512",
    ]);
    let a = attempt(&s, 0);
    assert_eq!(a["outcome"], "reproduced", "{a}");
    assert_eq!(metric(&s, 0, "created_default"), 128);
    assert_eq!(metric(&s, 0, "errno_default"), "EMFILE");
    assert_eq!(metric(&s, 0, "created_fixed"), 512);
}
