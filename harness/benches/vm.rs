//! Benchmarks that boot real guests (run by hand, never in CI; results go
//! into the issue notes). Medians of several runs, as ratios to baselines
//! measured in the same run:
//!
//!   cargo bench -p repro --bench vm -- boot [RUNS]   boot to SSH-ready vs bare QEMU boots
//!   cargo bench -p repro --bench vm -- fill [RUNS]   memcg-fill vs a static C mkdir() loop
//!   cargo bench -p repro --bench vm -- jobs [RUNS]   a 4-cell matrix with --jobs 1 vs --jobs 2
//!   cargo bench -p repro --bench vm -- sigterm       SIGTERM to all guests gone
//!   cargo bench -p repro --bench vm -- rootfs [RUNS] boot to SSH-ready of each root
//!                                                    filesystem vs the initramfs guest (6.1)
//!   cargo bench -p repro --bench vm -- loglevel [RUNS] boot to REPRO-READY (6.1, initramfs)
//!                                                    with console log levels 4 (`quiet`),
//!                                                    5 (warnings too) and 8 (everything)

use repro::guest::{GuestSession, KeyPair};
use repro::images::initramfs::{self, Node, Tree};
use repro::images::Cache;
use repro::model::NullSink;
use repro::run::prepare::{self, PreparedKernel};
use repro::vm::{self, Accel, Machine, Vm, VmSpec};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn prepared(kernel: &str) -> PreparedKernel {
    let cache = Cache::new(Cache::default_root());
    prepare::prepare_kernel(&root(), &cache, None, kernel, &NullSink).expect("prepare kernel")
}

/// An initramfs whose /init prints a marker and reboots at once.
fn bare_initrd(dir: &Path) -> PathBuf {
    let cache = Cache::new(Cache::default_root());
    let userland = initramfs::Userland::load(&root().join("images/userland.toml")).unwrap();
    let archive = repro::images::debian::Archive::from_discovery(
        repro::images::debian::discover_mirror(None),
        cache.clone(),
    );
    let trees = prepare::fetch_userland(&archive, &cache, &userland, &NullSink).unwrap();
    let bb = trees.iter().find(|t| t.name == "busybox-static").unwrap();
    let mut t: Tree = Tree::new();
    for d in ["/bin", "/dev", "/proc"] {
        t.insert(d.into(), Node::Dir(0o755));
    }
    t.insert("/dev/console".into(), Node::CharDev(0o600, 5, 1));
    t.insert(
        "/bin/busybox".into(),
        Node::File(std::fs::read(bb.root.join("bin/busybox")).unwrap(), 0o755),
    );
    t.insert(
        "/init".into(),
        Node::File(
            b"#!/bin/busybox sh\n/bin/busybox echo BARE-INIT-REACHED\n/bin/busybox reboot -f\n"
                .to_vec(),
            0o755,
        ),
    );
    let path = dir.join("bare.cpio");
    let mut buf = Vec::new();
    initramfs::write_cpio(&t, &mut buf).unwrap();
    std::fs::write(&path, buf).unwrap();
    path
}

fn spec(
    machine: Machine,
    kernel: &Path,
    initrd: &Path,
    dir: &Path,
    mem: u32,
    append: Vec<String>,
) -> VmSpec {
    VmSpec {
        qemu: vm::qemu_binary(),
        accel: Accel::Tcg,
        machine,
        kernel: kernel.to_path_buf(),
        initrd: initrd.to_path_buf(),
        append,
        memory_mib: mem,
        vcpus: 1,
        ssh_port: vm::free_port().unwrap(),
        console_log: dir.join("console.log"),
        console_cap: repro::caplog::DEFAULT_LOG_CAP,
        tsc_khz: vm::qemu::host_tsc_khz(),
        name: "repro-bench".into(),
        disk: None,
        data_disks: Vec::new(),
    }
}

/// Seconds from QEMU start to its exit (the bare init reboots).
fn bare_boot(s: VmSpec) -> f64 {
    let t = Instant::now();
    let mut v = Vm::start(s).unwrap();
    v.wait_exit(Duration::from_secs(120))
        .expect("bare boot ended");
    assert!(
        v.console.contains("BARE-INIT-REACHED"),
        "{}",
        v.console.tail(20)
    );
    t.elapsed().as_secs_f64()
}

/// Boots `s` and connects over SSH once `/init` says sshd listens.
fn boot_to_ssh(s: VmSpec, p: &PreparedKernel, key: &KeyPair) -> (Vm, GuestSession) {
    boot_to_ssh_with(s, &p.host_key_blob, key)
}

fn boot_to_ssh_with(s: VmSpec, host_key: &[u8], key: &KeyPair) -> (Vm, GuestSession) {
    let port = s.ssh_port;
    let mut v = Vm::start(s).unwrap();
    v.wait_console(
        repro::run::cell::READY_MARKER,
        Instant::now() + Duration::from_secs(180),
        &|| false,
    )
    .unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let sess = GuestSession::connect(
        addr,
        key,
        Some(host_key),
        Instant::now() + Duration::from_secs(180),
        &mut |_| {
            v.exited()
                .map(|st| repro::model::StopReason::QemuExited(st.to_string()))
        },
    )
    .expect("ssh ready");
    (v, sess)
}

/// Seconds from QEMU start to the first successful SSH command.
fn ssh_boot(p: &PreparedKernel, machine: Machine, kernel: &Path, dir: &Path, key: &KeyPair) -> f64 {
    let s = spec(
        machine,
        kernel,
        &p.image,
        dir,
        1024,
        vec![format!("repro.key={}", key.public_base64())],
    );
    let t = Instant::now();
    let _guest = boot_to_ssh(s, p, key);
    t.elapsed().as_secs_f64()
}

fn boot(runs: usize) {
    let p = prepared("6.1");
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_initrd(tmp.path());
    let key = KeyPair::generate().unwrap();
    let k = repro::images::kernel::resolve(
        &repro::images::kernel::KernelSpec::parse("6.1"),
        &repro::images::kernel::load_manifests(&root().join("images/kernels")).unwrap(),
        &repro::images::debian::Archive::from_discovery(
            repro::images::debian::discover_mirror(None),
            Cache::new(Cache::default_root()),
        ),
        &|_, _| {},
    )
    .unwrap();
    let (mut q35, mut micro, mut repro_micro, mut repro_q35) = (vec![], vec![], vec![], vec![]);
    for i in 0..runs {
        q35.push(bare_boot(spec(
            Machine::Q35,
            &k.vmlinuz,
            &bare,
            tmp.path(),
            1024,
            vec![],
        )));
        micro.push(bare_boot(spec(
            Machine::Microvm,
            k.vmlinux.as_ref().unwrap(),
            &bare,
            tmp.path(),
            1024,
            vec![],
        )));
        repro_micro.push(ssh_boot(
            &p,
            Machine::Microvm,
            &p.boot_kernel,
            tmp.path(),
            &key,
        ));
        repro_q35.push(ssh_boot(&p, Machine::Q35, &k.vmlinuz, tmp.path(), &key));
        eprintln!(
            "run {}: bare q35 {:.2} s, bare microvm {:.2} s, repro microvm {:.2} s, repro q35 {:.2} s",
            i + 1,
            q35[i],
            micro[i],
            repro_micro[i],
            repro_q35[i]
        );
    }
    let (q, m, r, rq) = (
        median(q35),
        median(micro),
        median(repro_micro),
        median(repro_q35),
    );
    println!(
        "kernel {} ({}), TCG, {runs} runs, medians:",
        p.info.release,
        k.version.clone().unwrap_or_default()
    );
    println!("  bare boot, q35 + SeaBIOS + bzImage:      {q:.2} s");
    println!("  bare boot, microvm + vmlinux (PVH):      {m:.2} s");
    println!("  repro boot to SSH-ready, microvm (used): {r:.2} s  = {:.2}x q35 bare, {:.2}x fastest bare", r / q, r / m);
    println!(
        "  repro boot to SSH-ready, q35 fallback:   {rq:.2} s  = {:.2}x q35 bare",
        rq / q
    );
}

const C_FILL: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char path[4096]; struct timespec a, b; long n = 0; int err = 0;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (;;) {
        snprintf(path, sizeof path, "%s/c-%ld", argv[1], n + 1);
        if (mkdir(path, 0755) != 0) { err = errno; break; }
        n++;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    for (long i = 1; i <= n; i++) { snprintf(path, sizeof path, "%s/c-%ld", argv[1], i); rmdir(path); }
    struct timespec c; clock_gettime(CLOCK_MONOTONIC, &c);
    printf("%ld %.3f %s %.3f\n", n, (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9, strerror(err),
           (c.tv_sec - b.tv_sec) + (c.tv_nsec - b.tv_nsec) / 1e9);
    return 0;
}
"#;

fn fill(runs: usize) {
    let p = prepared("6.1");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("cfill.c"), C_FILL).unwrap();
    let st = std::process::Command::new("gcc")
        .args(["-O2", "-static", "-o"])
        .arg(tmp.path().join("cfill"))
        .arg(tmp.path().join("cfill.c"))
        .status()
        .unwrap();
    assert!(st.success());
    let key = KeyPair::generate().unwrap();
    let scen = root().join("scenarios/memcg-fill");
    let (mut c_times, mut kit_times, mut scen_times) = (vec![], vec![], vec![]);
    let mut c_full: Vec<f64> = vec![];
    for i in 0..runs {
        let s = spec(
            Machine::Microvm,
            &p.boot_kernel,
            &p.image,
            tmp.path(),
            2560,
            vec![format!("repro.key={}", key.public_base64())],
        );
        let (mut v, sess) = boot_to_ssh(s, &p, &key);
        let mut tar = tar::Builder::new(Vec::new());
        tar.append_path_with_name(tmp.path().join("cfill"), "cfill")
            .unwrap();
        tar.append_dir_all("scenario", &scen).unwrap();
        tar.append_dir_all("lib", root().join("scenarios/lib"))
            .unwrap();
        sess.upload_tar(
            "/repro",
            &tar.into_inner().unwrap(),
            Instant::now() + Duration::from_secs(120),
        )
        .unwrap();
        let run = |cmd: &str| {
            let t = Instant::now();
            let o = sess.exec(cmd, Duration::from_secs(1800)).unwrap();
            assert_eq!(o.status, 0, "{cmd}: {}", String::from_utf8_lossy(&o.stderr));
            (
                t.elapsed().as_secs_f64(),
                String::from_utf8_lossy(&o.stdout).into_owned(),
            )
        };
        let mount = "mkdir -p /sys/fs/cgroup && (mountpoint -q /sys/fs/cgroup || mount -t tmpfs cg /sys/fs/cgroup) && mkdir -p /sys/fs/cgroup/memory && (mountpoint -q /sys/fs/cgroup/memory || mount -t cgroup -o memory cgroup /sys/fs/cgroup/memory)";
        let (_, out) = run(&format!("{mount} && mkdir -p /sys/fs/cgroup/memory/c && /repro/cfill /sys/fs/cgroup/memory/c && rmdir /sys/fs/cgroup/memory/c"));
        let f: Vec<&str> = out.split_whitespace().collect();
        let c: f64 = f[1].parse().unwrap();
        // strerror text may have spaces: the rmdir time is the last field.
        let c_rm: f64 = f.last().unwrap().parse().unwrap();
        let (_, out) = run(&format!("{mount} && mkdir -p /sys/fs/cgroup/memory/k && repro-kit memcg-fill --root /sys/fs/cgroup/memory/k && repro-kit memcg-rmdir --root /sys/fs/cgroup/memory/k >/dev/null && rmdir /sys/fs/cgroup/memory/k"));
        let kit: f64 =
            serde_json::from_str::<serde_json::Value>(out.lines().next().unwrap_or("{}"))
                .ok()
                .and_then(|v| v["elapsed_s"].as_f64())
                .unwrap_or(f64::NAN);
        let (scen_s, _) = run("mkdir -p /repro/out && cd /repro/scenario && env REPRO_RESULT=/repro/out/r.jsonl REPRO_OUT=/repro/out REPRO_LIB=/repro/lib REPRO_SCENARIO_DIR=/repro/scenario REPRO_CGROUP=v1 REPRO_KERNEL=6.1 REPRO_PARAM_LIMIT= sh ./run.sh >/dev/null && tail -1 /repro/out/r.jsonl");
        v.kill();
        eprintln!(
            "run {}: C mkdir loop {c:.1} s (+ rmdir {c_rm:.1} s), repro-kit loop {kit:.1} s, whole scenario {scen_s:.1} s",
            i + 1
        );
        c_times.push(c);
        c_full.push(c + c_rm);
        kit_times.push(kit);
        scen_times.push(scen_s);
    }
    let (c, k, s) = (median(c_times), median(kit_times), median(scen_times));
    let cf = median(c_full);
    println!(
        "memcg-fill to exhaustion on {} under TCG, {runs} runs, medians:",
        p.info.release
    );
    println!("  static C mkdir() loop:     {c:.1} s (with its rmdir cleanup: {cf:.1} s)");
    println!("  repro-kit memcg-fill loop: {k:.1} s = {:.2}x C", k / c);
    println!(
        "  whole scenario (fill, pod check, cleanup): {s:.1} s = {:.2}x the C mkdir loop, {:.2}x C mkdir+rmdir",
        s / c,
        s / cf
    );
}

fn repro_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    dir.join("repro")
}

/// Runs `repro` to completion, sampling its own CPU time and peak RSS.
fn timed(args: &[&str], env: &[(&str, PathBuf)]) -> (f64, f64, u64) {
    let t = Instant::now();
    let mut cmd = std::process::Command::new(repro_bin());
    cmd.current_dir(root())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let (mut cpu, mut hwm) = (0.0, 0);
    let tick = 100.0; // USER_HZ
    loop {
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", child.id())) {
            let f: Vec<&str> = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            if f.len() > 13 {
                cpu = (f[11].parse::<f64>().unwrap_or(0.0) + f[12].parse::<f64>().unwrap_or(0.0))
                    / tick;
            }
        }
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", child.id())) {
            if let Some(l) = status.lines().find(|l| l.starts_with("VmHWM:")) {
                hwm = l
                    .split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(hwm);
            }
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (t.elapsed().as_secs_f64(), cpu, hwm)
}

fn jobs(runs: usize) {
    let results = tempfile::tempdir().unwrap();
    let r = results.path().to_str().unwrap().to_string();
    let (mut one, mut two) = (vec![], vec![]);
    let (mut cpu, mut mem) = (vec![], vec![]);
    for i in 0..runs {
        let (a, c1, m1) = timed(
            &[
                "matrix",
                "--matrix",
                "ci/smoke.toml",
                "--jobs",
                "1",
                "--results",
                &r,
            ],
            &[],
        );
        let (b, c2, m2) = timed(
            &[
                "matrix",
                "--matrix",
                "ci/smoke.toml",
                "--jobs",
                "2",
                "--results",
                &r,
            ],
            &[],
        );
        eprintln!("run {}: --jobs 1 {a:.1} s, --jobs 2 {b:.1} s (harness CPU {c1:.2}/{c2:.2} s, peak RSS {m1}/{m2} KiB)", i + 1);
        one.push(a);
        two.push(b);
        cpu.push(c1 / 4.0);
        cpu.push(c2 / 4.0);
        mem.push(m1 as f64);
        mem.push(m2 as f64);
    }
    let (a, b) = (median(one), median(two));
    println!("4-cell matrix (ci/smoke.toml), TCG, {runs} runs, medians:");
    println!(
        "  --jobs 1: {a:.1} s; --jobs 2: {b:.1} s; speed-up {:.2}x",
        a / b
    );
    println!(
        "  harness CPU per guest: {:.2} s; harness peak RSS: {:.0} MiB",
        median(cpu),
        median(mem) / 1024.0
    );
}

fn sigterm() {
    let results = tempfile::tempdir().unwrap();
    let fixtures = root().join("harness/tests/scenarios");
    let mut child = std::process::Command::new(repro_bin())
        .current_dir(root())
        .env("REPRO_SCENARIOS_DIR", &fixtures)
        .args([
            "run",
            "slow",
            "--kernel",
            "6.1",
            "--kernel",
            "5.10",
            "--jobs",
            "2",
            "--results",
        ])
        .arg(results.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let count = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read(e.path().join("cmdline"))
                    .map(|c| String::from_utf8_lossy(&c).contains("slow__kernel_"))
                    .unwrap_or(false)
            })
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    while count() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(8));
    let t = Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    while count() > 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let gone = t.elapsed().as_secs_f64();
    child.wait().unwrap();
    println!(
        "SIGTERM with 2 guests running: all QEMU gone after {:.3} s; repro exited after {:.3} s",
        gone,
        t.elapsed().as_secs_f64()
    );
}

/// Boot to SSH-ready of each root filesystem on 6.1 (microvm, cgroup v2),
/// interleaved with the initramfs guest on the same kernel.
fn rootfs(runs: usize) {
    let p = prepared("6.1");
    let cache = Cache::new(Cache::default_root());
    let names = ["bullseye", "bookworm", "trixie"];
    let images: Vec<_> = names
        .iter()
        .map(|n| prepare::prepare_rootfs(&root(), &cache, None, n, false, &NullSink).unwrap())
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let key = KeyPair::generate().unwrap();
    let kernel = p.boot_kernel.clone();
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); names.len() + 1];
    for run in 0..runs {
        times[0].push(ssh_boot(&p, p.machine, &kernel, tmp.path(), &key));
        for (i, img) in images.iter().enumerate() {
            let overlay = tmp.path().join("disk.qcow2");
            let _ = std::fs::remove_file(&overlay);
            vm::create_overlay(&img.image, &overlay).unwrap();
            let mut append = vec![
                format!("repro.key={}", key.public_base64()),
                "repro.root=/dev/vda".into(),
            ];
            append.extend(img.manifest.cgroup["v2"].cmdline.iter().cloned());
            let mut s = spec(p.machine, &kernel, &p.image, tmp.path(), 1024, append);
            s.disk = Some(overlay);
            let t = Instant::now();
            let _guest = boot_to_ssh_with(s, &img.host_key_blob, &key);
            times[i + 1].push(t.elapsed().as_secs_f64());
        }
        eprintln!(
            "run {}: {:?}",
            run + 1,
            times.iter().map(|t| t[run]).collect::<Vec<_>>()
        );
    }
    let base = median(times[0].clone());
    println!("initramfs guest (6.1): median {base:.2} s over {runs} runs");
    for (i, n) in names.iter().enumerate() {
        let m = median(times[i + 1].clone());
        println!(
            "rootfs {n:<9} (6.1): median {m:.2} s = {:.2}x the initramfs guest",
            m / base
        );
    }
}

/// Seconds from QEMU start to `/init`'s REPRO-READY line, and the
/// console's line count then, with `loglevel=N` appended (it overrides
/// the base command line's level).
fn ready_with_loglevel(p: &PreparedKernel, dir: &Path, key: &KeyPair, level: u32) -> (f64, usize) {
    let s = spec(
        Machine::Microvm,
        &p.boot_kernel,
        &p.image,
        dir,
        1024,
        vec![
            format!("repro.key={}", key.public_base64()),
            format!("loglevel={level}"),
        ],
    );
    let t = Instant::now();
    let mut v = Vm::start(s).unwrap();
    if let Err(why) = v.wait_console(
        repro::run::cell::READY_MARKER,
        Instant::now() + Duration::from_secs(180),
        &|| false,
    ) {
        panic!(
            "loglevel={level}: no REPRO-READY: {why}\n{}",
            v.console.tail(30)
        );
    }
    let secs = t.elapsed().as_secs_f64();
    (secs, v.console.tail(usize::MAX).lines().count())
}

/// The boot-time cost of a louder console: levels interleaved per run so
/// a busy host slows all of them alike.
fn loglevel(runs: usize) {
    let p = prepared("6.1");
    let tmp = tempfile::tempdir().unwrap();
    let key = KeyPair::generate().unwrap();
    let levels = [4u32, 5, 8];
    let mut times: Vec<Vec<f64>> = vec![vec![]; levels.len()];
    let mut lines = vec![0usize; levels.len()];
    for i in 0..runs {
        for (j, level) in levels.iter().enumerate() {
            let (t, n) = ready_with_loglevel(&p, tmp.path(), &key, *level);
            times[j].push(t);
            lines[j] = n;
            eprintln!(
                "run {}: loglevel={level}: {t:.2} s, {n} console lines",
                i + 1
            );
        }
    }
    println!(
        "kernel {}, microvm, TCG, {runs} runs, boot to REPRO-READY, medians:",
        p.info.release
    );
    for (j, level) in levels.iter().enumerate() {
        println!(
            "  loglevel={level}: {:.2} s ({} console lines)",
            median(times[j].clone()),
            lines[j]
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let runs = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(5);
    match args.first().map(String::as_str) {
        Some("boot") => boot(runs),
        Some("fill") => fill(runs),
        Some("jobs") => jobs(runs),
        Some("sigterm") => sigterm(),
        Some("rootfs") => rootfs(runs),
        Some("loglevel") => loglevel(runs),
        _ => eprintln!(
            "usage: cargo bench -p repro --bench vm -- boot|fill|jobs|sigterm|rootfs|loglevel [RUNS]"
        ),
    }
}
