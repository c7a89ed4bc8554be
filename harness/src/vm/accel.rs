//! Choosing the accelerator: KVM only when a bounded probe really boots a
//! guest with it, else TCG. `/dev/kvm` alone proves nothing (FACTS.md: a
//! paravirtual KVM here has the device but cannot run a stock kernel).

use serde::{Deserialize, Serialize};
use std::path::Path;

pub use crate::model::{Accel, AccelChoice};

/// The cached result of a probe, valid for one host boot and QEMU version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRecord {
    pub key: String,
    pub kvm_works: bool,
    pub detail: String,
}

/// Key under which a probe result stays valid: host boot id + QEMU version.
pub fn probe_key(qemu_version: &str) -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    format!("{}|{}", boot.trim(), qemu_version)
}

/// Whether `/dev/kvm` can be opened read-write at all (cheap pre-check).
pub fn kvm_device_usable(dev: &Path) -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dev)
        .is_ok()
}

/// Decides the accelerator. `probe` boots a real guest under KVM (bounded)
/// and says whether it reached userspace; it is only called for `Auto` when
/// the device is usable and no cached record applies.
pub fn decide(
    choice: AccelChoice,
    device_usable: bool,
    cached: Option<&ProbeRecord>,
    key: &str,
    probe: impl FnOnce() -> (bool, String),
) -> (Accel, Option<ProbeRecord>, String) {
    match choice {
        AccelChoice::Tcg => (Accel::Tcg, None, "forced with --accel tcg".into()),
        AccelChoice::Kvm => (Accel::Kvm, None, "forced with --accel kvm".into()),
        AccelChoice::Auto if !device_usable => (
            Accel::Tcg,
            None,
            "no usable /dev/kvm: using TCG emulation".into(),
        ),
        AccelChoice::Auto => {
            if let Some(rec) = cached.filter(|r| r.key == key) {
                let accel = if rec.kvm_works {
                    Accel::Kvm
                } else {
                    Accel::Tcg
                };
                return (accel, None, format!("cached probe: {}", rec.detail));
            }
            let (ok, detail) = probe();
            let rec = ProbeRecord {
                key: key.to_string(),
                kvm_works: ok,
                detail: detail.clone(),
            };
            let accel = if ok { Accel::Kvm } else { Accel::Tcg };
            (accel, Some(rec), detail)
        }
    }
}

/// Boots `spec` (with `repro.probe=1` on its command line, so `/init`
/// prints `REPRO-PROBE-OK` and reboots at once) under KVM for at most
/// `limit`. True only when the guest really reached userspace.
pub fn probe_boot(mut spec: super::VmSpec, limit: std::time::Duration) -> (bool, String) {
    spec.accel = Accel::Kvm;
    spec.append.push("repro.probe=1".into());
    let start = std::time::Instant::now();
    let mut vm = match super::Vm::start(spec) {
        Ok(vm) => vm,
        Err(e) => return (false, format!("KVM probe could not start QEMU: {e}")),
    };
    loop {
        if vm.console.contains("REPRO-PROBE-OK") {
            vm.kill();
            return (
                true,
                format!(
                    "KVM probe booted a guest in {:.1} s",
                    start.elapsed().as_secs_f64()
                ),
            );
        }
        if let Some(st) = vm.exited() {
            let err = vm.stderr();
            let first = err.lines().next().unwrap_or("").trim().to_string();
            return (
                false,
                format!("KVM probe failed: QEMU exited ({st}) {first}; using TCG emulation"),
            );
        }
        if start.elapsed() >= limit {
            vm.kill();
            return (
                false,
                format!(
                    "KVM probe: no guest userspace within {:.0} s under KVM; using TCG emulation",
                    limit.as_secs_f64()
                ),
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forced_choices_never_probe() {
        let (a, rec, _) = decide(AccelChoice::Tcg, true, None, "k", || unreachable!());
        assert_eq!((a, rec), (Accel::Tcg, None));
        let (a, _, _) = decide(AccelChoice::Kvm, false, None, "k", || unreachable!());
        assert_eq!(a, Accel::Kvm);
    }

    #[test]
    fn auto_without_device_is_tcg() {
        let (a, _, why) = decide(AccelChoice::Auto, false, None, "k", || unreachable!());
        assert_eq!(a, Accel::Tcg);
        assert!(why.contains("/dev/kvm"));
    }

    #[test]
    fn auto_probes_and_records_failure() {
        let (a, rec, _) = decide(AccelChoice::Auto, true, None, "k", || {
            (false, "guest did not boot".into())
        });
        assert_eq!(a, Accel::Tcg);
        assert!(!rec.unwrap().kvm_works);
    }

    #[test]
    fn auto_uses_matching_cache_only() {
        let good = ProbeRecord {
            key: "k".into(),
            kvm_works: true,
            detail: "ok".into(),
        };
        let (a, rec, _) = decide(AccelChoice::Auto, true, Some(&good), "k", || unreachable!());
        assert_eq!((a, rec), (Accel::Kvm, None));
        let (a, rec, _) = decide(AccelChoice::Auto, true, Some(&good), "other", || {
            (false, "no".into())
        });
        assert_eq!(a, Accel::Tcg);
        assert!(rec.is_some());
    }
}
