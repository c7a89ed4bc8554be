//! Developer chores that plain cargo can't do (rust-analyzer style xtask).
//!
//! - `cargo xtask setup`: install the host packages repro needs (QEMU,
//!   OpenSSL headers for ssh2, pkg-config) and `rpm` (the RPM kernel test
//!   builds a package with rpmbuild) through apt when missing.
//! - `cargo xtask demo`: setup, then `repro run memcg-fill --kernel 6.1`.
//! - `cargo xtask test`: setup (plus chromium for the HTML report test),
//!   then the whole test suite: `cargo test --workspace` with the `e2e`
//!   feature of `repro`, which turns on the end-to-end tests that boot real
//!   kernels, download from a Debian mirror and drive a browser.
//! - `cargo xtask test --fast`: only the unit and no-boot tests (what plain
//!   `cargo test` runs), after installing just what the build needs.

use anyhow::{bail, Result};
use xshell::{cmd, Shell};

/// Debian packages the harness needs on the host.
/// qemu-utils (qemu-img) makes the per-run disk overlays; mmdebstrap builds the
/// root-filesystem guests (and needs Debian's keyring on Ubuntu hosts); gcc
/// and libc6-dev compile the real kubelet's static pause binary
/// (`repro images build-kubelet`).
const HOST_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "qemu-utils",
    "mmdebstrap",
    "debian-archive-keyring",
    "libssl-dev",
    "pkg-config",
    "gcc",
    "libc6-dev",
];

/// The part of [`HOST_PACKAGES`] that building needs (ssh2 links OpenSSL):
/// enough for `cargo xtask test --fast`, which boots nothing.
const BUILD_PACKAGES: &[&str] = &["libssl-dev", "pkg-config"];

/// Extra packages for the test suite: the HTML report is checked in a real
/// headless browser.
const TEST_PACKAGES: &[&str] = &["chromium"];

/// Tools the end-to-end tests use to make kernels in other distributions'
/// formats: `rpm` (rpmbuild) wraps a Debian kernel in a real RPM
/// (tests/e2e_rpm.rs). Installed by `setup` too, so a developer can run
/// that test after `cargo xtask setup`.
const PACKAGING_PACKAGES: &[&str] = &["rpm"];

fn main() -> Result<()> {
    let sh = Shell::new()?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    sh.change_dir(&root);
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("setup") => {
            setup(&sh, HOST_PACKAGES)?;
            setup(&sh, PACKAGING_PACKAGES)
        }
        Some("demo") => {
            setup(&sh, HOST_PACKAGES)?;
            let rest = &args[1..];
            cmd!(
                sh,
                "cargo run --release -p repro -- run memcg-fill --kernel 6.1 {rest...}"
            )
            .run()?;
            Ok(())
        }
        Some("test") if args.get(1).map(String::as_str) == Some("--fast") => {
            setup(&sh, BUILD_PACKAGES)?;
            let rest = &args[2..];
            cmd!(sh, "cargo test --workspace {rest...}").run()?;
            Ok(())
        }
        Some("test") => {
            setup(&sh, HOST_PACKAGES)?;
            setup(&sh, PACKAGING_PACKAGES)?;
            setup(&sh, TEST_PACKAGES)?;
            let rest = &args[1..];
            cmd!(sh, "cargo test --workspace --features repro/e2e {rest...}").run()?;
            Ok(())
        }
        _ => {
            eprintln!("usage: cargo xtask <setup|demo|test [--fast]> [extra args]");
            bail!("unknown or missing xtask command")
        }
    }
}

fn installed(sh: &Shell, package: &str) -> bool {
    let format = "${Status}";
    cmd!(sh, "dpkg-query -W -f={format} {package}")
        .quiet()
        .ignore_stderr()
        .read()
        .map(|s| s.contains("install ok installed"))
        .unwrap_or(false)
}

fn setup(sh: &Shell, packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|pkg| !installed(sh, pkg))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    // `env` runs apt-get directly as root, else through sudo.
    let runner = if is_root() { "env" } else { "sudo" };
    cmd!(sh, "{runner} apt-get update -qq").run()?;
    cmd!(sh, "{runner} DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends {missing...}")
        .run()?;
    Ok(())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}
