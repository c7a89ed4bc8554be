//! Builds the static guest helper `repro-kit` (scenarios/kit) and embeds it
//! into the `repro` binary, so one `cargo build` yields a self-contained tool.
//!
//! The kit is built by a nested cargo with its own target directory (no lock
//! contention with the outer build) for `x86_64-unknown-linux-gnu` with
//! `crt-static`: passing `--target` keeps the flag away from build scripts.
//! `REPRO_KIT_BIN=/path/to/repro-kit` skips the nested build.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-env-changed=REPRO_KIT_BIN");
    let kit_dir = workspace.join("scenarios/kit");
    println!("cargo:rerun-if-changed={}", kit_dir.join("src").display());
    println!(
        "cargo:rerun-if-changed={}",
        kit_dir.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("Cargo.lock").display()
    );
    // The kit compiles the harness's result-line contract with #[path].
    println!(
        "cargo:rerun-if-changed={}",
        manifest_dir.join("src/result_line.rs").display()
    );

    let dest = out_dir.join("repro-kit");
    if let Ok(prebuilt) = env::var("REPRO_KIT_BIN") {
        std::fs::copy(&prebuilt, &dest).expect("copy REPRO_KIT_BIN");
        return;
    }
    let target_dir = out_dir.join("kit-target");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&workspace)
        .args(["build", "--release", "--locked", "-p", "repro-kit"])
        .args(["--target", "x86_64-unknown-linux-gnu"])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        // Small in the initramfs: no debug info, stripped.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "true")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR");
    let status = cmd.status().expect("run cargo to build repro-kit");
    if !status.success() {
        panic!("building the guest helper repro-kit failed (see the cargo output above)");
    }
    let built: &Path = &target_dir.join("x86_64-unknown-linux-gnu/release/repro-kit");
    std::fs::copy(built, &dest).expect("copy repro-kit");
}
