//! Bounds on the numbers a user sets for a guest, in `scenario.toml`,
//! `matrix.toml` or flags: each file or flag refuses a value outside them
//! where it is written, instead of a guest that cannot start or a deadline
//! past what a clock can hold.

/// Longest time limit (boot or scenario), in seconds: a week.
pub const MAX_TIMEOUT_S: u64 = 7 * 24 * 3600;

/// Guest memory, in MiB.
pub const MIN_MEMORY_MIB: u64 = 64;
pub const MAX_MEMORY_MIB: u64 = 1024 * 1024;

/// Guest vCPUs.
pub const MAX_VCPUS: u64 = 256;
