//! The static guest helper `repro-kit`, built by `build.rs` from
//! `scenarios/kit` and embedded here.

/// The bytes of the static x86-64 `repro-kit` executable.
pub static KIT_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/repro-kit"));
