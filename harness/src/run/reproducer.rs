//! `reproduce.sh` in every attempt folder: the exact `repro run` command
//! that runs this cell alone (scenario, kernel pinned to its package
//! version or a local path checked against its sha256, root filesystem,
//! kubelet profile, driver, cgroup version, every parameter, memory,
//! vCPUs, accelerator and the attempt's caps), with the guest image and
//! root-filesystem hashes, the QEMU command line and the kernel command
//! line as comments. The text is pure ([`script`]); [`write`] puts it on
//! disk.

use super::cell::RunContext;
use crate::guest::shell_quote;
use crate::images::kernel::KernelSpec;
use crate::model::{Accel, Attempt, KernelInfo, Limits, RootfsInfo};
use crate::plan::PlannedCell;
use crate::vm::{qemu, VmSpec};
use std::path::{Path, PathBuf};

/// What the script is made of.
pub struct Reproducer<'a> {
    pub cell: &'a PlannedCell,
    pub kernel: &'a KernelInfo,
    /// sha256 of the guest's initramfs image.
    pub image_sha256: &'a str,
    pub rootfs: Option<&'a RootfsInfo>,
    pub accel: Accel,
    pub limits: Option<&'a Limits>,
    /// The `repro` binary and the repository root the run used.
    pub repro: &'a Path,
    pub root: &'a Path,
    /// QEMU's program and arguments and the kernel command line, once
    /// the guest was started.
    pub qemu: Option<(Vec<String>, String)>,
}

/// The `--kernel` value that names exactly this kernel: a local path as
/// given, a package's alias with its version (`6.1@6.1.115-1`).
fn kernel_arg(k: &KernelInfo) -> String {
    match (&k.version, k.alias.contains('@')) {
        (Some(v), false) if !is_path(&k.alias) => format!("{}@{v}", k.alias),
        _ => k.alias.clone(),
    }
}

fn is_path(alias: &str) -> bool {
    matches!(
        KernelSpec::parse_with(alias, &|_| false),
        KernelSpec::Path { .. }
    )
}

/// The script's text.
pub fn script(r: &Reproducer) -> String {
    let c = r.cell;
    let m = &c.scenario.manifest;
    let mut args: Vec<String> = vec![
        "run".into(),
        c.key.scenario.clone(),
        "--kernel".into(),
        kernel_arg(r.kernel),
    ];
    let mut flag = |name: &str, value: String| {
        args.push(format!("--{name}"));
        args.push(value);
    };
    if let Some(fs) = &c.key.rootfs {
        flag("rootfs", fs.clone());
    }
    if let Some(k) = &c.key.kubelet {
        flag("kubelet", k.clone());
    }
    if let Some(d) = c.key.driver {
        flag("driver", d.as_str().into());
    }
    flag("cgroup", c.key.cgroup.as_str().into());
    for (k, v) in &c.params {
        flag("param", format!("{k}={v}"));
    }
    flag(
        "memory",
        c.memory_mib.unwrap_or(m.memory_mib).max(256).to_string(),
    );
    flag("vcpus", c.vcpus.unwrap_or(m.vcpus).max(1).to_string());
    flag("accel", r.accel.as_str().into());
    if let Some(l) = r.limits {
        flag("log-cap", l.log_cap_bytes.to_string());
        flag("out-cap", l.out_cap_bytes.to_string());
        flag("stall-s", l.stall_s.unwrap_or(0).to_string());
    }
    let k = r.kernel;
    let mut s = String::from("#!/bin/sh\n");
    s.push_str(&format!(
        "# Runs the repro cell {} alone, as this attempt ran it.\n# Extra flags are passed on (e.g. --results DIR, --repeat 10).\n#\n",
        c.id()
    ));
    let pkgs = if k.packages.is_empty() {
        k.package.iter().cloned().collect::<Vec<_>>()
    } else {
        k.packages.clone()
    };
    s.push_str(&format!(
        "# kernel: {} (release {}{}), sha256 {}\n",
        k.alias,
        k.release,
        if pkgs.is_empty() {
            String::new()
        } else {
            format!(", package {}", pkgs.join(" "))
        },
        k.sha256
    ));
    s.push_str(&format!(
        "# guest image (initramfs) sha256: {}\n",
        r.image_sha256
    ));
    if let Some(fs) = r.rootfs {
        s.push_str(&format!(
            "# root filesystem: {} ({}), image sha256 {}\n",
            fs.name, fs.suite, fs.sha256
        ));
    }
    if let Some(t) = c.timeout_s {
        s.push_str(&format!(
            "# time limit: {t} s from the matrix (repro run uses the scenario's {} s)\n",
            m.timeout_s
        ));
    }
    if let Some((qemu, cmdline)) = &r.qemu {
        let line: Vec<String> = qemu.iter().map(|a| shell_quote(a)).collect();
        s.push_str(&format!("# QEMU command line:\n#   {}\n", line.join(" ")));
        s.push_str(&format!("# kernel command line:\n#   {cmdline}\n"));
    }
    s.push_str("set -eu\n");
    s.push_str(&format!(
        "export REPRO_ROOT=\"${{REPRO_ROOT:-{}}}\"\n",
        r.root.display()
    ));
    if let Some(dir) = c.scenario.dir.parent() {
        s.push_str(&format!(
            "export REPRO_SCENARIOS_DIR=\"${{REPRO_SCENARIOS_DIR:-{}}}\"\n",
            dir.display()
        ));
    }
    if is_path(&k.alias) {
        let file = k.alias.split(':').next().unwrap_or_default();
        s.push_str(&format!(
            "if [ -f {f} ]; then\n  echo {sum} | sha256sum -c --status - || {{ echo {msg} >&2; exit 2; }}\nfi\n",
            f = shell_quote(file),
            sum = shell_quote(&format!("{}  {file}", k.sha256)),
            msg = shell_quote(&format!(
                "{file} is not the kernel this attempt ran (sha256 {})",
                k.sha256
            )),
        ));
    }
    let line: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
    s.push_str(&format!(
        "exec \"${{REPRO:-{}}}\" {} \"$@\"\n",
        r.repro.display(),
        line.join(" ")
    ));
    s
}

/// Writes the `reproduce.sh` of `attempt` (made in `dir` for `cell`
/// under `ctx`), with the QEMU and kernel command lines of `spec` once the
/// guest was started.
pub fn write_for(
    ctx: &RunContext,
    cell: &PlannedCell,
    attempt: &Attempt,
    dir: &Path,
    spec: Option<&VmSpec>,
) {
    let m = &cell.scenario.manifest;
    let limits = Limits {
        timeout_s: cell.timeout_s.unwrap_or(m.timeout_s).max(1),
        stall_s: ctx.limits.stall_s(m.stall_s),
        log_cap_bytes: ctx.limits.log_cap,
        out_cap_bytes: ctx.limits.out_cap,
    };
    let repro = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("repro"));
    write(
        dir,
        &Reproducer {
            cell,
            kernel: &attempt.kernel,
            image_sha256: &attempt.image_sha256,
            rootfs: attempt.rootfs.as_ref(),
            accel: ctx.accel,
            limits: Some(&limits),
            repro: &repro,
            root: ctx.root,
            qemu: spec.map(|s| {
                let mut line = vec![s.qemu.display().to_string()];
                line.extend(qemu::args(s));
                (line, qemu::cmdline(s))
            }),
        },
    );
}

/// Writes `dir/reproduce.sh` (executable); a failure is said on stderr
/// and does not stop the attempt.
pub fn write(dir: &Path, r: &Reproducer) {
    let path: PathBuf = dir.join("reproduce.sh");
    let res = crate::fsutil::atomic_write(&path, script(r).as_bytes()).and_then(|()| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
    });
    if let Err(e) = res {
        eprintln!("warning: cannot write {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CellKey, Driver, Expect};

    fn cell(rootfs: bool) -> PlannedCell {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/memcg-fill");
        PlannedCell {
            key: CellKey {
                scenario: "memcg-fill".into(),
                label: "memcg-fill".into(),
                kernel: "6.1".into(),
                rootfs: rootfs.then(|| "bookworm".into()),
                kubelet: rootfs.then(|| "1.27".into()),
                driver: rootfs.then_some(Driver::Systemd),
                cgroup: "v2".parse().unwrap(),
            },
            scenario: crate::scenario::Scenario::load(&dir).unwrap(),
            params: [("count".to_string(), "it's 5".to_string())].into(),
            expect: Expect::Any,
            rule: None,
            stale_rules: vec![],
            repeat: 3,
            timeout_s: Some(90),
            memory_mib: Some(512),
            vcpus: None,
        }
    }

    fn kernel(alias: &str) -> KernelInfo {
        KernelInfo {
            alias: alias.into(),
            package: Some("linux-image-6.1.0-27-amd64".into()),
            packages: vec![],
            version: Some("6.1.115-1".into()),
            release: "6.1.0-27-amd64".into(),
            sha256: "ab".repeat(32),
        }
    }

    fn text(c: &PlannedCell, k: &KernelInfo, fs: Option<&RootfsInfo>, booted: bool) -> String {
        let limits = Limits {
            timeout_s: 90,
            stall_s: Some(600),
            log_cap_bytes: 1 << 24,
            out_cap_bytes: 1 << 26,
        };
        script(&Reproducer {
            cell: c,
            kernel: k,
            image_sha256: "cd",
            rootfs: fs,
            accel: Accel::Tcg,
            limits: Some(&limits),
            repro: Path::new("/opt/repro"),
            root: Path::new("/src/repro"),
            qemu: booted.then(|| {
                (
                    vec!["qemu-system-x86_64".into(), "-append".into(), "a b".into()],
                    "console=ttyS0 repro.key=x".into(),
                )
            }),
        })
    }

    #[test]
    fn a_debian_kernel_is_pinned_to_its_package_version() {
        let c = cell(false);
        let t = text(&c, &kernel("6.1"), None, true);
        let exec = t.lines().last().unwrap();
        assert_eq!(
            exec,
            "exec \"${REPRO:-/opt/repro}\" run memcg-fill --kernel 6.1@6.1.115-1 --cgroup v2 \
             --param 'count=it'\\''s 5' --memory 512 --vcpus 1 --accel tcg --log-cap 16777216 \
             --out-cap 67108864 --stall-s 600 \"$@\""
        );
        assert!(
            t.starts_with("#!/bin/sh\n# Runs the repro cell memcg-fill/kernel=6.1/cgroup=v2 alone")
        );
        assert!(t.contains("# kernel: 6.1 (release 6.1.0-27-amd64, package linux-image-6.1.0-27-amd64), sha256 abab"));
        assert!(t.contains("# guest image (initramfs) sha256: cd\n"));
        assert!(t.contains("# time limit: 90 s from the matrix"));
        assert!(t.contains("# QEMU command line:\n#   qemu-system-x86_64 -append 'a b'\n"));
        assert!(t.contains("# kernel command line:\n#   console=ttyS0 repro.key=x\n"));
        assert!(t.contains("export REPRO_ROOT=\"${REPRO_ROOT:-/src/repro}\"\n"));
        assert!(
            !t.contains("sha256sum"),
            "a package kernel needs no file check"
        );
    }

    #[test]
    fn a_rootfs_cell_names_every_axis_and_its_image() {
        let c = cell(true);
        let fs = RootfsInfo {
            name: "bookworm".into(),
            suite: "bookworm".into(),
            sha256: "ef".into(),
            versions: Default::default(),
        };
        let t = text(&c, &kernel("6.1@6.1.115-1"), Some(&fs), false);
        assert!(t.contains(
            "--kernel 6.1@6.1.115-1 --rootfs bookworm --kubelet 1.27 --driver systemd --cgroup v2 "
        ), "{t}");
        assert!(t.contains("# root filesystem: bookworm (bookworm), image sha256 ef\n"));
        assert!(!t.contains("QEMU command line"), "not booted: no QEMU line");
    }

    #[test]
    fn a_local_kernel_is_checked_against_its_sha256() {
        let c = cell(false);
        let mut k = kernel("/k/vmlinuz:/k/modules");
        k.version = None;
        let t = text(&c, &k, None, false);
        assert!(t.contains("--kernel /k/vmlinuz:/k/modules "), "{t}");
        assert!(
            t.contains(&format!(
                "if [ -f /k/vmlinuz ]; then\n  echo '{}  /k/vmlinuz' | sha256sum -c --status -",
                "ab".repeat(32)
            )),
            "{t}"
        );
    }

    #[test]
    fn the_script_runs_in_a_shell_and_passes_its_arguments_on() {
        let tmp = tempfile::tempdir().unwrap();
        let c = cell(false);
        let t = text(&c, &kernel("6.1"), None, true);
        // A stand-in for repro that prints its arguments, one a line.
        let fake = tmp.path().join("fake-repro");
        std::fs::write(&fake, "#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = tmp.path().join("attempt-1");
        std::fs::create_dir_all(&dir).unwrap();
        write(
            &dir,
            &Reproducer {
                cell: &c,
                kernel: &kernel("6.1"),
                image_sha256: "cd",
                rootfs: None,
                accel: Accel::Kvm,
                limits: None,
                repro: &fake,
                root: tmp.path(),
                qemu: None,
            },
        );
        let out = std::process::Command::new(dir.join("reproduce.sh"))
            .arg("--results")
            .arg("x y")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}\n{t}");
        let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(
            lines,
            [
                "run",
                "memcg-fill",
                "--kernel",
                "6.1@6.1.115-1",
                "--cgroup",
                "v2",
                "--param",
                "count=it's 5",
                "--memory",
                "512",
                "--vcpus",
                "1",
                "--accel",
                "kvm",
                "--results",
                "x y"
            ]
        );
    }
}
