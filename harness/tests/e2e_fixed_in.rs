#![cfg(feature = "e2e")]
//! End-to-end: `repro fixed-in` checks both ends before searching and
//! writes `fixed-in.json`.

mod common;

use common::*;

/// memcg-fill stopped at 200 cgroups does not reproduce: a range whose
/// oldest kernel does not reproduce has nothing to search, and the search
/// stops after that one probe.
#[test]
fn a_range_whose_oldest_kernel_does_not_reproduce_stops_with_a_clear_message() {
    let results = tempfile::tempdir().unwrap();
    let r = results.path().to_str().unwrap();
    let out = run(&[
        "fixed-in",
        "memcg-fill",
        "--kernel",
        "6.1",
        "--kernel",
        "6.12",
        "--cgroup",
        "v1",
        "--param",
        "limit=200",
        "--repeat",
        "2",
        "--results",
        r,
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "memcg-fill does not reproduce on the oldest kernel (6.1: 0/2 (0%, 95% CI 0–66%)): nothing to search"
        ),
        "{text}"
    );
    assert!(
        !text.contains("6.12: "),
        "the newest kernel is not probed: {text}"
    );
    assert!(!text.contains("fixed in"), "{text}");
    let json_path = text
        .lines()
        .find(|l| l.ends_with("fixed-in.json"))
        .unwrap_or_else(|| panic!("no fixed-in.json in {text}"));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(json_path).unwrap()).unwrap();
    assert_eq!(json["endpoints"]["oldest-does-not-reproduce"], "fixed");
    assert_eq!(json["probes"][0]["rate"]["trials"], 2);
    assert_eq!(json["probes"][0]["rate"]["hits"], 0);
    assert!(json["probes"][0]["version"].is_string(), "{json}");
    assert!(json["probes"][1].is_null(), "{json}");
    assert_eq!(json["rule"]["min_hits"], 2);
    assert_eq!(json["confirmation"].as_array().unwrap().len(), 0);
}
