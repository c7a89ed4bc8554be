#![cfg(feature = "e2e")]
//! End-to-end: an attempt's `reproduce.sh`, executed, runs the same cell
//! again (same scenario, cgroup, parameters, kernel package, guest image,
//! accelerator, outcome and key metric; the kernel pinned to its version).

mod common;

use common::*;

#[test]
fn reproduce_sh_runs_its_cell_again() {
    let (first, dir, _guard) = run_ok(&[
        "memcg-fill",
        "--kernel",
        "6.1",
        "--cgroup",
        "v1",
        "--param",
        "limit=200",
    ]);
    let cell = &first["cells"][0];
    let a = &cell["attempts"][0];
    let script = dir
        .join(a["artifacts"]["dir"].as_str().unwrap())
        .join("reproduce.sh");
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(text.contains("# QEMU command line:"), "{text}");
    assert!(
        text.contains("# kernel command line:\n#   console=ttyS0"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "--kernel 6.1@{} ",
            a["kernel"]["version"].as_str().unwrap()
        )),
        "{text}"
    );

    let again = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(&script)
        .arg("--results")
        .arg(again.path())
        .arg("--cache-dir")
        .arg(cache_dir())
        .output()
        .unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let second = summary(again.path());
    let c2 = &second["cells"][0];
    let b = &c2["attempts"][0];
    assert_eq!(second["cells"].as_array().unwrap().len(), 1);
    // The same cell, its kernel pinned to the package version that ran.
    let v = a["kernel"]["version"].as_str().unwrap();
    assert_eq!(c2["id"], format!("memcg-fill/kernel=6.1@{v}/cgroup=v1"));
    assert_eq!(cell["id"], "memcg-fill/kernel=6.1/cgroup=v1");
    assert_eq!(c2["params"], cell["params"]);
    for k in ["package", "version", "release", "sha256"] {
        assert_eq!(b["kernel"][k], a["kernel"][k], "kernel {k}");
    }
    assert_eq!(b["image_sha256"], a["image_sha256"]);
    assert_eq!(b["accel"], a["accel"]);
    assert_eq!(b["outcome"], a["outcome"]);
    assert_eq!(b["metrics"]["created"], a["metrics"]["created"]);
}
