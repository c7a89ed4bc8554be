//! The QEMU command line for a guest (pure; unit-tested).

use super::accel::Accel;
use std::path::PathBuf;

/// Machine type. `Microvm` boots the uncompressed ELF `vmlinux` through its
/// PVH entry with virtio-mmio devices (about 3x faster under TCG);
/// `Q35` boots a bzImage through SeaBIOS with virtio-pci devices, for
/// kernels without a PVH entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    Microvm,
    Q35,
}

impl Machine {
    pub fn as_str(self) -> &'static str {
        match self {
            Machine::Microvm => "microvm",
            Machine::Q35 => "q35",
        }
    }
}

/// Everything needed to start one guest.
#[derive(Debug, Clone)]
pub struct VmSpec {
    pub qemu: PathBuf,
    pub accel: Accel,
    pub machine: Machine,
    /// `vmlinux` for microvm, bzImage for q35.
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// Extra kernel arguments (after the fixed ones).
    pub append: Vec<String>,
    pub memory_mib: u32,
    pub vcpus: u32,
    /// Host port forwarded to the guest's SSH port 22 (on 127.0.0.1).
    pub ssh_port: u16,
    pub console_log: PathBuf,
    /// The console log's cap in bytes (head and tail kept, see `caplog`).
    pub console_cap: u64,
    /// Host TSC frequency handed to the guest (`tsc_early_khz=`) under
    /// TCG: PIT calibration under emulation fails when the host is busy,
    /// and a microvm guest without a TSC frequency hangs at boot.
    pub tsc_khz: Option<u64>,
    /// QEMU's `-name`: lets people (and tests) find a run's guests in `ps`.
    pub name: String,
    /// A qcow2 disk attached as the first virtio block device (`/dev/vda`),
    /// for root-filesystem guests.
    pub disk: Option<PathBuf>,
    /// Read-only raw disks attached after it, each found in the guest by
    /// its serial (`/sys/block/vd*/serial`), never by its device name.
    pub data_disks: Vec<DataDisk>,
}

/// A read-only disk image handed to the guest (e.g. the real kubelet's
/// bundle): an ext4 image the guest mounts after finding it by `serial`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDisk {
    pub path: PathBuf,
    /// At most 20 bytes (virtio-blk's serial field).
    pub serial: String,
}

/// Kernel arguments every guest gets: serial console, reboot (and so QEMU
/// exit with `-no-reboot`) on panic, the boot-time savings measured in
/// FACTS.md, and the console's log level. `quiet` keeps systemd's status
/// lines off a root-filesystem guest's console but sets the kernel's
/// console level to 4, which hides `KERN_WARNING` (WARN splats, the
/// `cut here` line); `loglevel=5`, after it, prints warnings again (the
/// later argument wins). What the console still leaves out (info-level
/// stacks of hung tasks, OOM reports) is in the `dmesg` fetched at the end.
pub const BASE_CMDLINE: &[&str] = &[
    "console=ttyS0",
    "reboot=t",
    "panic=-1",
    "mitigations=off",
    "tsc=reliable",
    "no_timer_check",
    "audit=0",
    "cryptomgr.notests",
    "rcupdate.rcu_expedited=1",
    "random.trust_cpu=on",
    "8250.nr_uarts=1",
    "quiet",
    "loglevel=5",
];

/// The host's TSC frequency in kHz (from `/proc/cpuinfo`), if known.
pub fn host_tsc_khz() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    parse_cpu_mhz(&text)
}

/// The first `cpu MHz` of a `/proc/cpuinfo` text, in kHz.
pub fn parse_cpu_mhz(cpuinfo: &str) -> Option<u64> {
    let line = cpuinfo.lines().find(|l| l.starts_with("cpu MHz"))?;
    let mhz: f64 = line.split(':').nth(1)?.trim().parse().ok()?;
    (mhz > 0.0).then(|| (mhz * 1000.0).round() as u64)
}

/// `-name` takes QEMU option syntax: keep only characters that cannot be
/// read as `key=value` or option separators.
pub fn qemu_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The full kernel command line.
pub fn cmdline(spec: &VmSpec) -> String {
    let mut parts: Vec<String> = BASE_CMDLINE.iter().map(|s| s.to_string()).collect();
    if let (Accel::Tcg, Some(khz)) = (spec.accel, spec.tsc_khz) {
        parts.push(format!("tsc_early_khz={khz}"));
    }
    parts.extend(spec.append.iter().cloned());
    parts.join(" ")
}

/// QEMU's arguments for `spec`.
pub fn args(spec: &VmSpec) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
    match spec.accel {
        Accel::Kvm => push(&["-accel", "kvm", "-cpu", "host"]),
        Accel::Tcg => push(&["-accel", "tcg", "-cpu", "max"]),
    }
    match spec.machine {
        // Under TCG the kernel needs the legacy timers on microvm (FACTS.md:
        // it hangs at TSC calibration otherwise); ACPI stays on because it
        // is how the kernel finds the virtio-mmio devices.
        Machine::Microvm => push(&["-M", "microvm,pit=on,pic=on,rtc=on"]),
        Machine::Q35 => push(&["-M", "q35"]),
    }
    let (net, rng, blk) = match spec.machine {
        Machine::Microvm => (
            "virtio-net-device",
            "virtio-rng-device",
            "virtio-blk-device",
        ),
        Machine::Q35 => ("virtio-net-pci", "virtio-rng-pci", "virtio-blk-pci"),
    };
    a.extend([
        "-name".into(),
        qemu_name(&spec.name),
        "-m".into(),
        spec.memory_mib.to_string(),
        "-smp".into(),
        spec.vcpus.to_string(),
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-display".into(),
        "none".into(),
        "-serial".into(),
        "stdio".into(),
        "-no-reboot".into(),
        "-kernel".into(),
        spec.kernel.display().to_string(),
        "-initrd".into(),
        spec.initrd.display().to_string(),
        "-append".into(),
        cmdline(spec),
        "-netdev".into(),
        format!("user,id=n0,hostfwd=tcp:127.0.0.1:{}-:22", spec.ssh_port),
        "-device".into(),
        format!("{net},netdev=n0"),
        "-device".into(),
        rng.into(),
    ]);
    if let Some(disk) = &spec.disk {
        // `cache=unsafe`: the overlay is thrown away after the run, so
        // flushes to the host's disk would only cost time.
        a.extend([
            "-drive".into(),
            format!(
                "id=d0,if=none,format=qcow2,cache=unsafe,file={}",
                disk.display().to_string().replace(',', ",,")
            ),
            "-device".into(),
            format!("{blk},drive=d0"),
        ]);
    }
    for (i, d) in spec.data_disks.iter().enumerate() {
        a.extend([
            "-drive".into(),
            format!(
                "id=x{i},if=none,format=raw,readonly=on,file={}",
                d.path.display().to_string().replace(',', ",,")
            ),
            "-device".into(),
            format!("{blk},drive=x{i},serial={}", d.serial),
        ]);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn spec(machine: Machine, accel: Accel) -> VmSpec {
        VmSpec {
            qemu: "qemu-system-x86_64".into(),
            accel,
            machine,
            kernel: "/k/vmlinux".into(),
            initrd: "/i/initramfs.cpio".into(),
            append: vec!["repro.key=abc".into()],
            memory_mib: 1024,
            vcpus: 2,
            ssh_port: 40022,
            console_log: "/tmp/console.log".into(),
            console_cap: 1 << 20,
            tsc_khz: Some(2_299_998),
            name: "repro-test".into(),
            disk: None,
            data_disks: Vec::new(),
        }
    }

    fn after<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[rstest]
    #[case(
        Machine::Microvm,
        "microvm,pit=on,pic=on,rtc=on",
        "virtio-net-device,netdev=n0"
    )]
    #[case(Machine::Q35, "q35", "virtio-net-pci,netdev=n0")]
    fn machine_picks_its_devices(#[case] m: Machine, #[case] machine: &str, #[case] net: &str) {
        let a = args(&spec(m, Accel::Tcg));
        assert_eq!(after(&a, "-M"), vec![machine]);
        assert!(after(&a, "-device").contains(&net));
    }

    #[rstest]
    #[case(Accel::Tcg, "tcg", "max")]
    #[case(Accel::Kvm, "kvm", "host")]
    fn accel_and_cpu(#[case] accel: Accel, #[case] name: &str, #[case] cpu: &str) {
        let a = args(&spec(Machine::Microvm, accel));
        assert_eq!(after(&a, "-accel"), vec![name]);
        assert_eq!(after(&a, "-cpu"), vec![cpu]);
    }

    #[rstest]
    #[case(Machine::Microvm, "virtio-blk-device,drive=d0")]
    #[case(Machine::Q35, "virtio-blk-pci,drive=d0")]
    fn a_disk_is_a_virtio_block_device(#[case] m: Machine, #[case] dev: &str) {
        let mut s = spec(m, Accel::Tcg);
        assert!(after(&args(&s), "-drive").is_empty());
        s.disk = Some("/r/a,b/disk.qcow2".into());
        let a = args(&s);
        assert_eq!(
            after(&a, "-drive"),
            vec!["id=d0,if=none,format=qcow2,cache=unsafe,file=/r/a,,b/disk.qcow2"]
        );
        assert!(after(&a, "-device").contains(&dev));
    }

    #[test]
    fn data_disks_come_after_the_root_disk_read_only_with_their_serial() {
        let mut s = spec(Machine::Microvm, Accel::Tcg);
        s.disk = Some("/r/disk.qcow2".into());
        s.data_disks = vec![DataDisk {
            path: "/c/kubelet,1.img".into(),
            serial: "repro-kubelet".into(),
        }];
        let a = args(&s);
        assert_eq!(
            after(&a, "-drive"),
            vec![
                "id=d0,if=none,format=qcow2,cache=unsafe,file=/r/disk.qcow2",
                "id=x0,if=none,format=raw,readonly=on,file=/c/kubelet,,1.img"
            ]
        );
        let devs = after(&a, "-device");
        let root = devs.iter().position(|d| d.ends_with("drive=d0")).unwrap();
        let data = devs
            .iter()
            .position(|d| *d == "virtio-blk-device,drive=x0,serial=repro-kubelet")
            .unwrap();
        assert!(root < data, "{devs:?}");
    }

    #[test]
    fn names_cannot_inject_options() {
        assert_eq!(
            qemu_name("repro-r1-hang__kernel=6.1,x"),
            "repro-r1-hang__kernel_6.1_x"
        );
    }

    #[test]
    fn cpu_mhz_parsing() {
        assert_eq!(
            parse_cpu_mhz("processor\t: 0\ncpu MHz\t\t: 2299.998\n"),
            Some(2_299_998)
        );
        assert_eq!(parse_cpu_mhz("processor\t: 0\n"), None);
    }

    #[test]
    fn ssh_forward_binds_loopback_only_and_cmdline_has_extras() {
        let a = args(&spec(Machine::Microvm, Accel::Tcg));
        assert_eq!(
            after(&a, "-netdev"),
            vec!["user,id=n0,hostfwd=tcp:127.0.0.1:40022-:22"]
        );
        let append = after(&a, "-append")[0];
        assert!(append.starts_with("console=ttyS0 "));
        assert!(append.ends_with(" repro.key=abc"));
        assert!(append.contains("panic=-1"));
        assert!(
            append.contains(" quiet loglevel=5 "),
            "warnings reach the console: {append}"
        );
        assert!(append.contains(" tsc_early_khz=2299998 "));
        let kvm = args(&spec(Machine::Microvm, Accel::Kvm));
        assert!(!after(&kvm, "-append")[0].contains("tsc_early_khz"));
        assert!(a.contains(&"-no-reboot".to_string()));
        assert_eq!(after(&a, "-m"), vec!["1024"]);
        assert_eq!(after(&a, "-smp"), vec!["2"]);
    }
}
