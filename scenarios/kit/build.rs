//! With `-C target-feature=+crt-static` (how the harness builds the guest
//! binary) rustc links a static-PIE, which `file` reports as "static-pie
//! linked". Link a classic non-PIE static executable instead: no
//! self-relocation at start-up, and `file` says "statically linked".
//! Ordinary (dynamic) dev builds and tests are left alone.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" && features.split(',').any(|f| f == "crt-static") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
        println!("cargo:rustc-link-arg-bins=-static");
    }
}
