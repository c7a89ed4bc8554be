#![cfg(feature = "e2e")]
//! End-to-end: a kernel whose guest driver is withheld. Debian's 6.1 is
//! given as `--kernel vmlinuz:MODULES_DIR` with a modules folder copied
//! without `virtio_net` (or `ext4`): with its `modules.builtin` the harness
//! knows the driver is missing and refuses before booting; without it (and
//! without a config) nobody can tell, so the guest boots, its `/init` finds
//! no network interface (or cannot mount its root disk), says why in one
//! `REPRO-FAILED` line and powers off, and the cell ends `error` with that
//! reason at once, not retried. An initramfs guest never needs ext4. And
//! the module → Kconfig symbol table agrees with real kernels.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Debian 6.1 from the shared cache (fetched once): its bzImage and
/// `lib/modules/<release>` folder.
fn debian_kernel() -> (PathBuf, PathBuf) {
    fetched_kernel("6.1")
}

/// A local kernel: Debian's bzImage alone in a folder (no config beside
/// it) and its modules without `module`, and without `modules.builtin*`
/// unless `keep_builtin`. Returns the `--kernel` argument.
fn kernel_without(tmp: &Path, module: &str, keep_builtin: bool) -> String {
    let (vmlinuz, modules) = debian_kernel();
    let release = modules.file_name().unwrap().to_string_lossy().into_owned();
    let kdir = tmp.join("boot");
    std::fs::create_dir_all(&kdir).unwrap();
    let local = kdir.join(format!("vmlinuz-{release}"));
    std::fs::copy(&vmlinuz, &local).unwrap();
    let mdir = tmp.join("lib/modules").join(&release);
    link_tree(&modules, &mdir, &|name| {
        name.starts_with(&format!("{module}.ko"))
            || (!keep_builtin && name.starts_with("modules.builtin"))
            || name == "config"
    });
    format!("{}:{}", local.display(), mdir.display())
}

#[test]
fn a_kernel_known_to_lack_its_network_driver_is_refused_before_booting() {
    let tmp = tempfile::tempdir().unwrap();
    let kernel = kernel_without(tmp.path(), "virtio_net", true);
    let results = tempfile::tempdir().unwrap();
    let out = run(&[
        "run",
        "memcg-fill",
        "--kernel",
        &kernel,
        "--results",
        results.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3));
    let s = summary(results.path());
    let a = attempt(&s, 0);
    assert_eq!(a["outcome"], "error", "{a}");
    assert_eq!(a["phase"], "image", "{a}");
    let reason = a["reason"].as_str().unwrap();
    assert!(
        reason.contains("has no virtio_net, which the guest network needs")
            && reason.contains("not listed in modules.builtin"),
        "{reason}"
    );
    assert_eq!(a["timings"]["boot"], 0.0, "nothing booted: {a}");
}

#[test]
fn a_guest_without_its_network_driver_fails_fast_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let kernel = kernel_without(tmp.path(), "virtio_net", false);
    let results = tempfile::tempdir().unwrap();
    let started = Instant::now();
    // `run` retries an infrastructure error once: the guest's failure must
    // not use that retry.
    let out = run(&[
        "run",
        "memcg-fill",
        "--kernel",
        &kernel,
        "--results",
        results.path().to_str().unwrap(),
    ]);
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(out.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        format!("{stdout}{stderr}")
            .contains("virtio_net (needed by every guest): no module file (no modules.builtin"),
        "the run says up front that nothing tells whether virtio_net is built in"
    );
    let s = summary(results.path());
    let attempts = s["cells"][0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "not retried: {attempts:?}");
    let a = &attempts[0];
    assert_eq!(a["outcome"], "error", "{a}");
    assert_eq!(a["phase"], "boot", "{a}");
    assert_eq!(a["retry"], "futile", "{a}");
    let reason = a["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(
            "the guest's /init failed: no network interface: virtio_net not loaded: no module file for it"
        ),
        "{reason}"
    );
    // The line is on the console, once, as the guest wrote it.
    let dir = run_dir(results.path());
    let console =
        std::fs::read_to_string(dir.join(a["artifacts"]["console"].as_str().unwrap())).unwrap();
    let lines: Vec<&str> = console
        .lines()
        .filter(|l| l.contains("REPRO-FAILED"))
        .collect();
    assert_eq!(lines.len(), 1, "{console}");
    assert!(
        lines[0].contains("no network interface: virtio_net"),
        "{console}"
    );
    // Recorded, not asserted (the issue wants under 30 s).
    eprintln!(
        "QEMU start to error: {:.1} s (boot phase); whole run {wall:.1} s: {reason}",
        a["timings"]["boot"].as_f64().unwrap()
    );
}

/// A network driver that is there but does not load (5.10's virtio_net in
/// 6.1's tree: the kernel refuses its version magic): the guest's line
/// quotes insmod.
#[test]
fn a_network_driver_that_does_not_load_is_named_with_insmods_words() {
    let tmp = tempfile::tempdir().unwrap();
    let kernel = kernel_without(tmp.path(), "virtio_net", true);
    let (_, old_modules) = fetched_kernel("5.10");
    let old = repro::images::kernel::index_modules(&old_modules).unwrap()["virtio_net"].clone();
    let modules = PathBuf::from(kernel.rsplit_once(':').unwrap().1);
    let name = old.file_name().unwrap();
    std::fs::copy(&old, modules.join("kernel").join(name)).unwrap();
    let (s, _r) = run_expecting(&["memcg-fill", "--kernel", &kernel], 3);
    let attempts = s["cells"][0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "not retried: {attempts:?}");
    let reason = attempts[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(
            "the guest's /init failed: no network interface: virtio_net not loaded (insmod: "
        ),
        "{reason}"
    );
    eprintln!(
        "QEMU start to error: {:.1} s: {reason}",
        attempts[0]["timings"]["boot"].as_f64().unwrap()
    );
}

/// `repro run ARGS --results <new folder>` with exit status `code`: the
/// summary and the folder's guard.
fn run_expecting(args: &[&str], code: i32) -> (serde_json::Value, tempfile::TempDir) {
    let results = tempfile::tempdir().unwrap();
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--results", results.path().to_str().unwrap()]);
    let out = run(&all);
    assert_eq!(out.status.code(), Some(code));
    (summary(results.path()), results)
}

/// ext4 withheld: an initramfs guest never needs it and runs; a
/// root-filesystem guest is refused before booting when `modules.builtin`
/// says ext4 is missing, and otherwise boots, fails to mount its disk and
/// says so in its `REPRO-FAILED` line, not retried.
#[test]
fn only_root_filesystem_guests_need_the_root_disk_drivers() {
    let tmp = tempfile::tempdir().unwrap();
    let known = kernel_without(&tmp.path().join("known"), "ext4", true);
    let (s, _r) = run_expecting(
        &["memcg-fill", "--kernel", &known, "--param", "limit=10"],
        0,
    );
    let a = attempt(&s, 0);
    assert_eq!(a["outcome"], "not-reproduced", "{a}");

    let (s, _r) = run_expecting(
        &["memcg-fill", "--kernel", &known, "--rootfs", "bullseye"],
        3,
    );
    let a = attempt(&s, 0);
    assert_eq!(a["phase"], "image", "{a}");
    let reason = a["reason"].as_str().unwrap();
    assert!(
        reason.contains("cannot boot a root-filesystem guest: it has no ext4 (no module file, and not listed in modules.builtin"),
        "{reason}"
    );

    let unknown = kernel_without(&tmp.path().join("unknown"), "ext4", false);
    let (s, _r) = run_expecting(
        &["memcg-fill", "--kernel", &unknown, "--rootfs", "bullseye"],
        3,
    );
    let attempts = s["cells"][0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "not retried: {attempts:?}");
    let a = &attempts[0];
    assert_eq!(
        (&a["phase"], &a["retry"]),
        (&"boot".into(), &"futile".into()),
        "{a}"
    );
    let reason = a["reason"].as_str().unwrap();
    assert!(
        reason
            .starts_with("the guest's /init failed: cannot mount the root disk /dev/vda as ext4 (")
            && reason.contains("virtio_blk loaded; ext4 not loaded: no module file for it"),
        "{reason}"
    );
    eprintln!(
        "rootfs guest without ext4: QEMU start to error {:.1} s: {reason}",
        a["timings"]["boot"].as_f64().unwrap()
    );
}

/// The `[kconfig]` table of images/userland.toml read against real
/// kernels (Debian's 5.10, 6.1 and 6.12): every module a kernel builds in
/// (its `modules.builtin`) has a symbol `=y` in its config, every module it
/// ships as a file one `=m`, so reading the config gives the answer
/// `modules.builtin` gives. And Debian builds no IKCONFIG blob into its
/// kernels (`# CONFIG_IKCONFIG is not set`): none is found in its vmlinux,
/// while the same vmlinux with the blob laid out as `kernel/configs.c` does
/// gives its config back.
#[test]
fn the_kconfig_table_agrees_with_real_kernels_modules_builtin() {
    for alias in ["5.10", "6.1", "6.12"] {
        kconfig_table_agrees(alias);
    }
}

fn kconfig_table_agrees(alias: &str) {
    use repro::images::initramfs::Userland;
    use repro::images::kernel::{
        ikconfig, index_modules, Builtins, ConfigSource, KernelConfig, Presence, Tristate,
    };
    let (vmlinuz, modules) = fetched_kernel(alias);
    let release = modules.file_name().unwrap().to_string_lossy().into_owned();
    let tree = vmlinuz.parent().unwrap().parent().unwrap();
    let config_path = tree.join(format!("boot/config-{release}"));
    let text = std::fs::read_to_string(&config_path).unwrap();
    let config = KernelConfig::parse(&text, ConfigSource::File(config_path)).unwrap();
    let userland =
        Userland::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/userland.toml"))
            .unwrap();
    let list = Builtins::read_list(&modules)
        .unwrap()
        .expect("modules.builtin");
    let by_config = Builtins::Config {
        config: config.clone(),
        symbols: userland.kconfig.clone(),
    };
    let files = index_modules(&modules).unwrap();
    for (module, symbols) in &userland.kconfig {
        let values: Vec<Tristate> = symbols.names().iter().map(|s| config.tristate(s)).collect();
        if files.contains_key(module) {
            assert!(
                values.contains(&Tristate::Module),
                "{module} is a module file but {symbols:?} are {values:?}"
            );
        } else {
            let listed = matches!(list.presence(module), Presence::BuiltIn(_));
            let configured = matches!(by_config.presence(module), Presence::BuiltIn(_));
            assert_eq!(listed, configured, "{module}: {symbols:?} are {values:?}");
        }
        eprintln!("{alias} {module}: {symbols:?} = {values:?}");
    }
    assert_eq!(config.tristate("CONFIG_IKCONFIG"), Tristate::No);
    let vmlinux = std::fs::read(tree.parent().unwrap().join("vmlinux")).unwrap();
    assert_eq!(ikconfig(&vmlinux), None);
    let mut with_blob = vmlinux;
    with_blob.extend_from_slice(b"IKCFG_ST");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
    with_blob.extend_from_slice(&gz.finish().unwrap());
    with_blob.extend_from_slice(b"IKCFG_ED");
    assert_eq!(ikconfig(&with_blob).as_deref(), Some(text.as_str()));
}
