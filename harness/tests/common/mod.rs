//! Helpers for the end-to-end tests: run the real `repro` binary and read
//! what it wrote.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The cache the tests share (REPRO_CACHE_DIR, else the user's default),
/// so kernels are downloaded once per machine, not once per test.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("REPRO_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(repro::images::Cache::default_root)
}

/// `repro` in the package folder (so it finds scenarios/ and images/).
pub fn repro() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_repro"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// Runs `repro` with `args` (and the shared cache unless `args` name one),
/// printing its output for the test log.
pub fn run(args: &[&str]) -> Output {
    let mut c = repro();
    if !args.contains(&"--cache-dir") {
        c.arg("--cache-dir").arg(cache_dir());
    }
    let out = c.args(args).output().expect("run repro");
    eprintln!(
        "$ repro {}\n--- status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The single run folder under `results`.
pub fn run_dir(results: &Path) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(results)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.pop().expect("a run folder")
}

pub fn summary(results: &Path) -> serde_json::Value {
    let dir = run_dir(results);
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap()
}

/// Metric `name` of the first attempt of cell `i`.
pub fn metric<'a>(s: &'a serde_json::Value, i: usize, name: &str) -> &'a serde_json::Value {
    &s["cells"][i]["attempts"][0]["metrics"][name]["value"]
}

pub fn attempt(s: &serde_json::Value, i: usize) -> &serde_json::Value {
    &s["cells"][i]["attempts"][0]
}

/// `repro run ARGS --results <a new temporary folder>`, which must exit 0:
/// the summary, the run folder, and the folder's guard (keep it alive
/// while reading files).
pub fn run_ok(args: &[&str]) -> (serde_json::Value, PathBuf, tempfile::TempDir) {
    let results = tempfile::tempdir().unwrap();
    let mut all: Vec<&str> = vec!["run"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--results", results.path().to_str().unwrap()]);
    let out = run(&all);
    assert_eq!(out.status.code(), Some(0));
    let dir = run_dir(results.path());
    (summary(results.path()), dir, results)
}

/// A Debian kernel of `images/kernels` (an alias such as `6.1`), fetched
/// into the shared cache once: its bzImage and `lib/modules/<release>`
/// folder, as `repro images fetch` reports them.
pub fn fetched_kernel(alias: &str) -> (PathBuf, PathBuf) {
    let out = run(&["images", "fetch", alias]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let vmlinuz = text
        .lines()
        .find_map(|l| {
            l.split_once(", vmlinuz ")
                .map(|(_, p)| PathBuf::from(p.trim()))
        })
        .unwrap_or_else(|| panic!("no vmlinuz in {text}"));
    let name = vmlinuz.file_name().unwrap().to_string_lossy().into_owned();
    let release = name.strip_prefix("vmlinuz-").unwrap().to_string();
    let root = vmlinuz.parent().unwrap().parent().unwrap();
    let modules = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|b| root.join(b).join(&release))
        .find(|d| d.is_dir())
        .unwrap_or_else(|| panic!("no modules folder for {release} under {}", root.display()));
    (vmlinuz, modules)
}

/// Hard-links (or copies, across file systems) the regular files of `from`
/// into `to`, leaving out those whose name `skip` names.
pub fn link_tree(from: &Path, to: &Path, skip: &dyn Fn(&str) -> bool) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let ft = e.file_type().unwrap();
        let dest = to.join(&name);
        if ft.is_dir() {
            link_tree(&e.path(), &dest, skip);
        } else if ft.is_file() && !skip(&name) && std::fs::hard_link(e.path(), &dest).is_err() {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}
