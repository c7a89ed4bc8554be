//! `repro`: reproduce known Kubernetes-node and Linux-kernel failures inside
//! QEMU guests and record the verdicts.
//!
//! Data flows `plan → images → vm → guest → outcome → events → report`; see
//! ARCHITECTURE.md for the map and the invariants.

pub mod caplog;
pub mod fsutil;
pub mod guest;
pub mod images;
pub mod keys;
pub mod kit;
pub mod kubelet;
pub mod model;
pub mod paths;
pub mod plan;
pub mod report;
pub mod result_line;
pub mod run;
pub mod scenario;
pub mod settings;
pub mod tomlfile;
pub mod vm;
