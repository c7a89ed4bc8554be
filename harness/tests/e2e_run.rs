#![cfg(feature = "e2e")]
//! End-to-end: `repro run` boots real Debian kernels under QEMU (KVM if it
//! really works here, else TCG) and runs real scenarios over SSH.

mod common;

use common::*;
use rstest::rstest;

/// Debian's 6.12 is built without the cgroup v1 memory controller
/// (`# CONFIG_MEMCG_V1 is not set`), so it runs the v2 variant.
#[rstest]
#[case("5.10", "5.10.", "v1")]
#[case("6.1", "6.1.", "v1")]
#[case("6.12", "6.12.", "v2")]
fn memcg_fill_with_a_small_limit_boots_each_debian_kernel(
    #[case] kernel: &str,
    #[case] release_prefix: &str,
    #[case] cgroup: &str,
) {
    let results = tempfile::tempdir().unwrap();
    let r = results.path().to_str().unwrap();
    let out = run(&[
        "run",
        "memcg-fill",
        "--kernel",
        kernel,
        "--cgroup",
        cgroup,
        "--param",
        "limit=300",
        "--results",
        r,
    ]);
    assert_eq!(out.status.code(), Some(0));
    let s = summary(results.path());
    assert_eq!(s["schema_version"], 1);
    assert_eq!(s["complete"], true);
    let a = attempt(&s, 0);
    assert_eq!(a["outcome"], "not-reproduced", "{a}");
    assert!(
        a["kernel"]["release"]
            .as_str()
            .unwrap()
            .starts_with(release_prefix),
        "{}",
        a["kernel"]
    );
    assert_eq!(metric(&s, 0, "created"), 300);
    assert_eq!(metric(&s, 0, "pod_cgroup_created"), 1);
    for key in ["image", "boot", "scenario", "total"] {
        assert!(a["timings"][key].as_f64().unwrap() >= 0.0);
    }
    assert!(a["timings"]["boot"].as_f64().unwrap() > 0.0);
    // Artefacts exist where the record says.
    let dir = run_dir(results.path());
    let console =
        std::fs::read_to_string(dir.join(a["artifacts"]["console"].as_str().unwrap())).unwrap();
    assert!(console.contains("REPRO-READY"), "{console}");
    assert!(dir
        .join(a["artifacts"]["stdout"].as_str().unwrap())
        .is_file());
    assert!(dir
        .join(a["artifacts"]["result"].as_str().unwrap())
        .is_file());
    assert!(String::from_utf8_lossy(&out.stdout).contains("memcg-fill/kernel="));
}

/// Debian unstable's kernel is split: `linux-image-*` holds no kernel file
/// and pins `linux-binary-*` (the image at `usr/lib/modules/R/vmlinuz`),
/// `linux-modules-*` and `linux-base-*`. The harness follows the pins,
/// unpacks all of them and boots the result.
#[test]
fn a_split_kernel_from_sid_boots_from_every_package_it_pins() {
    let results = tempfile::tempdir().unwrap();
    let r = results.path().to_str().unwrap();
    let out = run(&[
        "run",
        "memcg-fill",
        "--kernel",
        "sid",
        "--cgroup",
        "v2",
        "--param",
        "limit=100",
        "--results",
        r,
    ]);
    let s = summary(results.path());
    let a = attempt(&s, 0);
    assert_eq!(out.status.code(), Some(0), "{a}");
    assert_eq!(a["outcome"], "not-reproduced", "{a}");
    let packages: Vec<&str> = a["kernel"]["packages"]
        .as_array()
        .unwrap_or_else(|| panic!("no kernel.packages: {a}"))
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    for part in ["linux-image-", "linux-binary-", "linux-modules-"] {
        assert!(
            packages.iter().any(|p| p.starts_with(part)),
            "{part} missing from {packages:?}"
        );
    }
    assert_eq!(metric(&s, 0, "created"), 100);
}

#[test]
fn memcg_fill_to_exhaustion_on_6_1_reproduces_the_seed() {
    let results = tempfile::tempdir().unwrap();
    let r = results.path().to_str().unwrap();
    let out = run(&["run", "memcg-fill", "--kernel", "6.1", "--results", r]);
    assert_eq!(out.status.code(), Some(0));
    let s = summary(results.path());
    let a = attempt(&s, 0);
    assert_eq!(a["outcome"], "reproduced", "{a}");
    let created = metric(&s, 0, "created").as_u64().unwrap();
    assert!((60_000..=65_535).contains(&created), "created {created}");
    assert_eq!(metric(&s, 0, "errno_name"), "ENOSPC");
    let pod = metric(&s, 0, "pod_cgroup_error").as_str().unwrap();
    assert!(
        pod.contains("kubepods/burstable/pod") && pod.contains("No space left on device"),
        "{pod}"
    );
}

#[test]
fn memcg_fill_on_a_kernel_without_cgroup_v1_memory_is_skipped() {
    let results = tempfile::tempdir().unwrap();
    let r = results.path().to_str().unwrap();
    let out = run(&[
        "run",
        "memcg-fill",
        "--kernel",
        "6.12",
        "--cgroup",
        "v1",
        "--param",
        "limit=10",
        "--results",
        r,
    ]);
    assert_eq!(out.status.code(), Some(0));
    let s = summary(results.path());
    let a = attempt(&s, 0);
    assert_eq!(a["outcome"], "skipped", "{a}");
    assert!(a["reason"].as_str().unwrap().contains("v1"), "{a}");
}

/// Paths, sizes and modification times of everything in a cache.
fn cache_snapshot(root: &std::path::Path) -> Vec<(String, u64, std::time::SystemTime)> {
    let root = root.to_path_buf();
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(&root).unwrap().display().to_string();
            if rel.starts_with("locks") || rel.starts_with("accel-probe") {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else {
                out.push((rel, m.len(), m.modified().unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_second_run_downloads_and_builds_nothing() {
    // A cache of its own, so that other tests filling the shared cache in
    // parallel cannot disturb the comparison.
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("second-run-cache");
    let results = tempfile::tempdir().unwrap();
    let r = results.path().to_str().unwrap();
    let c = cache.to_str().unwrap();
    let args = [
        "--cache-dir",
        c,
        "run",
        "memcg-fill",
        "--kernel",
        "6.1",
        "--param",
        "limit=10",
        "--results",
        r,
    ];
    assert_eq!(run(&args).status.code(), Some(0));
    let before = cache_snapshot(&cache);
    assert!(before.iter().any(|(p, _, _)| p.starts_with("initramfs/")));
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0));
    let after = cache_snapshot(&cache);
    assert_eq!(before, after, "the second run changed the cache");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("downloaded"));
}

#[test]
fn a_local_kernel_path_with_its_modules_boots() {
    // Fetch 6.1 into the cache and boot it from its paths, as a user with
    // a self-built kernel would.
    let (vmlinuz, modules) = fetched_kernel("6.1");
    let release = modules.file_name().unwrap().to_string_lossy().into_owned();
    let spec = format!("{}:{}", vmlinuz.display(), modules.display());
    let results = tempfile::tempdir().unwrap();
    let r = results.path().to_str().unwrap();
    let out = run(&[
        "run",
        "memcg-fill",
        "--kernel",
        &spec,
        "--param",
        "limit=10",
        "--results",
        r,
    ]);
    assert_eq!(out.status.code(), Some(0));
    let s = summary(results.path());
    let a = attempt(&s, 0);
    assert_eq!(a["outcome"], "not-reproduced", "{a}");
    assert_eq!(a["kernel"]["release"].as_str().unwrap(), release);
}

/// A kernel built by hand is a kbuild output folder: the bzImage under
/// arch/x86/boot, the release in include/config/kernel.release, `.config`,
/// and the modules where kbuild leaves them (drivers/..., fs/..., with
/// modules.order and modules.builtin at the top). Laid out from Debian's
/// 6.1 package, `--kernel FOLDER` boots it.
#[test]
fn a_kbuild_output_folder_boots_with_the_modules_in_its_tree() {
    let (vmlinuz, modules) = fetched_kernel("6.1");
    let release = modules.file_name().unwrap().to_string_lossy().into_owned();
    let root = vmlinuz.parent().unwrap().parent().unwrap();
    let build = tempfile::tempdir().unwrap();
    let t = build.path();
    std::fs::create_dir_all(t.join("arch/x86/boot")).unwrap();
    std::fs::copy(&vmlinuz, t.join("arch/x86/boot/bzImage")).unwrap();
    std::fs::create_dir_all(t.join("include/config")).unwrap();
    std::fs::write(
        t.join("include/config/kernel.release"),
        format!("{release}\n"),
    )
    .unwrap();
    std::fs::copy(
        root.join(format!("boot/config-{release}")),
        t.join(".config"),
    )
    .unwrap();
    link_tree(&modules.join("kernel"), t, &|_| false);
    for f in ["modules.order", "modules.builtin"] {
        std::fs::copy(modules.join(f), t.join(f)).unwrap();
    }
    let results = tempfile::tempdir().unwrap();
    let r = results.path().to_str().unwrap();
    let out = run(&[
        "run",
        "memcg-fill",
        "--kernel",
        t.to_str().unwrap(),
        "--param",
        "limit=10",
        "--results",
        r,
    ]);
    let s = summary(results.path());
    let a = attempt(&s, 0);
    assert_eq!(out.status.code(), Some(0), "{a}");
    assert_eq!(a["outcome"], "not-reproduced", "{a}");
    assert_eq!(a["kernel"]["release"].as_str().unwrap(), release);
    assert_eq!(a["machine"], "microvm", "{a}");
}
