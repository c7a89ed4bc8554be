#![cfg(feature = "e2e")]
//! End-to-end: a real RPM kernel. Debian's 6.1 kernel (from the shared
//! cache) is laid out the way Red Hat's distributions ship theirs and
//! wrapped in a real RPM by `rpmbuild` (Debian's `rpm` package): CentOS 7
//! (`/boot/vmlinuz-<release>`, `/boot/config-<release>`, modules `.ko.xz`,
//! an xz payload) and Fedora / RHEL 8+ (`/lib/modules/<release>/vmlinuz`
//! and `config` beside the modules, modules `.ko.zst`, a zstd payload).
//! `repro run memcg-fill --kernel PATH.rpm` unpacks it, boots it and ends
//! `not-reproduced` with the RPM recorded as the attempt's kernel package.

mod common;

use common::*;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// How one distribution family lays out its kernel package.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// CentOS 7: image and config in `/boot`, `.ko.xz` modules, xz payload.
    CentOs7,
    /// Fedora, Alma/Rocky/CentOS Stream 8-9: image and config in the modules
    /// folder, `.ko.zst` modules (Fedora's; RHEL 8-9 use `.ko.xz`, which
    /// the CentOS 7 layout covers), zstd payload.
    Fedora,
}

/// The module folders the guest's drivers come from (`images/userland.toml`:
/// virtio, the network and disk drivers, the filesystems, and what those
/// depend on), and whether to take their subfolders too. Only these go into
/// the package, to keep the test fast: `drivers/net` contributes its own
/// files (`virtio_net`, `net_failover`, `veth`...) without the ~75 MB of
/// hardware network drivers below it.
const MODULE_FOLDERS: &[(&str, bool)] = &[
    ("drivers/virtio", true),
    ("drivers/net", false),
    ("drivers/block", true),
    ("drivers/char/hw_random", true),
    ("fs", true),
    ("lib", true),
    ("crypto", true),
    ("net", true),
];

/// A fixed build time, so the same kernel gives the same RPM (and the same
/// cache entry) on every run.
const SOURCE_DATE_EPOCH: &str = "1700000000";

/// Compresses the `.ko` files of `from` (subfolders when `deep`) into `to`
/// as the layout's distribution does. Returns how many.
fn compress_modules(from: &Path, to: &Path, deep: bool, layout: Layout) -> usize {
    fs::create_dir_all(to).unwrap();
    let mut n = 0;
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let ft = e.file_type().unwrap();
        if ft.is_dir() && deep {
            n += compress_modules(&e.path(), &to.join(&name), deep, layout);
        } else if ft.is_file() && name.ends_with(".ko") {
            let raw = fs::read(e.path()).unwrap();
            let (packed, suffix) = match layout {
                // CentOS 7's modules: xz with a CRC32 check, as the kernel's
                // own module decompressor wants.
                Layout::CentOs7 => {
                    let stream =
                        xz2::stream::Stream::new_easy_encoder(1, xz2::stream::Check::Crc32)
                            .unwrap();
                    let mut w = xz2::write::XzEncoder::new_stream(Vec::new(), stream);
                    w.write_all(&raw).unwrap();
                    (w.finish().unwrap(), "xz")
                }
                Layout::Fedora => (zstd::encode_all(&raw[..], 3).unwrap(), "zst"),
            };
            fs::write(to.join(format!("{name}.{suffix}")), packed).unwrap();
            n += 1;
        }
    }
    n
}

/// Debian 6.1 from the shared cache, laid out as `layout` under `stage`.
/// Returns the release.
fn stage_kernel(stage: &Path, layout: Layout) -> String {
    let (vmlinuz, modules) = fetched_kernel("6.1");
    let release = modules.file_name().unwrap().to_string_lossy().into_owned();
    let config = vmlinuz.parent().unwrap().join(format!("config-{release}"));
    assert!(config.is_file(), "no {}", config.display());
    let mdir = stage.join("lib/modules").join(&release);
    fs::create_dir_all(&mdir).unwrap();
    let (image_at, config_at) = match layout {
        Layout::CentOs7 => {
            let boot = stage.join("boot");
            fs::create_dir_all(&boot).unwrap();
            (
                boot.join(format!("vmlinuz-{release}")),
                boot.join(format!("config-{release}")),
            )
        }
        Layout::Fedora => (mdir.join("vmlinuz"), mdir.join("config")),
    };
    fs::copy(&vmlinuz, image_at).unwrap();
    fs::copy(&config, config_at).unwrap();
    for f in ["modules.builtin", "modules.order"] {
        fs::copy(modules.join(f), mdir.join(f)).unwrap();
    }
    let mut n = 0;
    for (folder, deep) in MODULE_FOLDERS {
        n += compress_modules(
            &modules.join("kernel").join(folder),
            &mdir.join("kernel").join(folder),
            *deep,
            layout,
        );
    }
    assert!(n > 100, "only {n} modules staged");
    release
}

/// Wraps the tree `stage` in a binary RPM with `rpmbuild` (no build step:
/// `%install` copies the tree). Returns the package file.
fn build_rpm(work: &Path, stage: &Path, release: &str, layout: Layout) -> PathBuf {
    let rpmbuild = Command::new("rpmbuild").arg("--version").output();
    assert!(
        rpmbuild.is_ok_and(|o| o.status.success()),
        "rpmbuild not found: install Debian's `rpm` package (`cargo xtask setup` does)"
    );
    let (version, rel) = release.split_once('-').unwrap();
    let rel = rel.replace('-', ".");
    let (name, payload, files) = match layout {
        Layout::CentOs7 => (
            "kernel",
            "w2.xzdio",
            format!("/boot\n/lib/modules/{release}"),
        ),
        Layout::Fedora => (
            "kernel-core",
            "w3.zstdio",
            format!("/lib/modules/{release}"),
        ),
    };
    let spec = format!(
        "Name: {name}
Version: {version}
Release: {rel}
Summary: Debian's {release} kernel laid out as {layout:?} ships its kernels
License: GPL-2.0-only
BuildArch: x86_64
AutoReqProv: no
%define _binary_payload {payload}
%define __os_install_post %{{nil}}
%define __arch_install_post %{{nil}}
%define debug_package %{{nil}}
%define _build_id_links none
%define _buildhost repro-test
%define use_source_date_epoch_as_buildtime 1
%define clamp_mtime_to_source_date_epoch 1

%description
A test kernel package for repro's RPM path.

%install
mkdir -p %{{buildroot}}
cp -a {stage}/. %{{buildroot}}/

%files
%defattr(-,root,root,-)
{files}
",
        stage = stage.display()
    );
    let top = work.join("rpmbuild");
    for d in ["BUILD", "RPMS", "SOURCES", "SPECS", "SRPMS"] {
        fs::create_dir_all(top.join(d)).unwrap();
    }
    let spec_path = top.join("SPECS/kernel.spec");
    fs::write(&spec_path, spec).unwrap();
    let out = Command::new("rpmbuild")
        .arg("-bb")
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .arg("--buildroot")
        .arg(work.join("buildroot"))
        .arg(&spec_path)
        .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
        .output()
        .expect("run rpmbuild");
    assert!(
        out.status.success(),
        "rpmbuild failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rpm = top
        .join("RPMS/x86_64")
        .join(format!("{name}-{version}-{rel}.x86_64.rpm"));
    assert!(rpm.is_file(), "rpmbuild wrote no {}", rpm.display());
    rpm
}

/// Builds the RPM for `layout`, boots it through `--kernel PATH.rpm` and
/// checks the outcome and the kernel record.
fn boot_rpm(layout: Layout) {
    let work = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let stage = work.path().join("stage");
    let release = stage_kernel(&stage, layout);
    let rpm = build_rpm(work.path(), &stage, &release, layout);
    let bytes = fs::read(&rpm).unwrap();
    eprintln!(
        "{layout:?}: {} ({} bytes) built in {:.1?}",
        rpm.display(),
        bytes.len(),
        started.elapsed()
    );
    // The RPM reader on the real package, every run (the run below may find
    // this RPM's tree already unpacked in the shared cache: the build is
    // reproducible, so its digest repeats).
    let unpacked = work.path().join("unpacked");
    repro::images::extract_rpm(&rpm, &unpacked, &|_| true).unwrap();
    let mdir = unpacked.join("lib/modules").join(&release);
    let (image, suffix) = match layout {
        Layout::CentOs7 => (unpacked.join(format!("boot/vmlinuz-{release}")), "xz"),
        Layout::Fedora => (mdir.join("vmlinuz"), "zst"),
    };
    assert!(image.is_file(), "no {} in the RPM", image.display());
    let driver = mdir.join(format!("kernel/drivers/net/virtio_net.ko.{suffix}"));
    assert!(driver.is_file(), "no {} in the RPM", driver.display());
    let booted = Instant::now();
    let (s, _dir, _guard) = run_ok(&[
        "memcg-fill",
        "--kernel",
        rpm.to_str().unwrap(),
        "--cgroup",
        "v1",
        "--param",
        "limit=100",
    ]);
    eprintln!("{layout:?}: repro run took {:.1?}", booted.elapsed());
    let a = attempt(&s, 0);
    assert_eq!(a["outcome"], "not-reproduced", "{a}");
    assert_eq!(metric(&s, 0, "created"), 100, "{a}");
    let k = &a["kernel"];
    assert_eq!(
        k["package"].as_str(),
        rpm.file_name().unwrap().to_str(),
        "{k}"
    );
    assert_eq!(
        k["sha256"],
        repro::images::cache::sha256_bytes(&bytes),
        "{k}"
    );
    assert_eq!(k["release"], release.as_str(), "{k}");
}

/// CentOS 7's layout: `/boot/vmlinuz-<release>`, `.ko.xz` modules, xz payload.
#[test]
fn a_centos7_style_rpm_boots() {
    boot_rpm(Layout::CentOs7);
}

/// Fedora's (and RHEL 8+'s) layout: the image in the modules folder,
/// `.ko.zst` modules, zstd payload.
#[test]
fn a_fedora_style_rpm_boots() {
    boot_rpm(Layout::Fedora);
}
