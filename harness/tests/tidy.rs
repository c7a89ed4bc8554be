//! Tidy: ARCHITECTURE.md's invariants, checked on the source text
//! (rust-analyzer style). Boots nothing and downloads nothing, so it runs in
//! plain `cargo test`.
//!
//! Each check lists every offending `file:line` with what to do, then fails.
//! The rules are data at the top of this file: change a rule here and in
//! ARCHITECTURE.md in the same commit.
//!
//! The checks read Rust with comments blanked (and, where they look for
//! code, string contents blanked too), and leave out `#[cfg(test)]` items:
//! the invariants are about the harness, and its tests are tools around it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

// ---------------------------------------------------------------------------
// The rules
// ---------------------------------------------------------------------------

/// The module layering of `harness/src`, bottom layer first: a top-level
/// module may use (`crate::X`) only modules of lower layers, so arrows only
/// go down and the graph has no cycle. `main.rs` (the binary, which sees
/// the library as `repro::`) and `lib.rs` (the module list) are above all.
/// A module listed here need not exist yet; a module that exists must be
/// listed.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "leaves: shared vocabulary and small helpers",
        &[
            "model",
            "tomlfile",
            "paths",
            "fsutil",
            "caplog",
            "keys",
            "result_line",
            "kit",
        ],
    ),
    ("pure parsing of the data folders", &["scenario", "kubelet"]),
    ("pure planning", &["plan"]),
    (
        "downloads and images, QEMU, SSH, reporters",
        &["images", "vm", "guest", "report"],
    ),
    ("the runner", &["run"]),
    (
        "configuration precedence, into the runner's options",
        &["settings"],
    ),
];

/// Edges inside one layer that are allowed anyway, as (user, used). Keep it
/// empty if you can; the cycle check still applies to these.
const SAME_LAYER_EDGES: &[(&str, &str)] = &[];

/// Who may start host processes (`Command::new`), by path under
/// `harness/src` (a folder ends in `/`), and which programs: only `vm`
/// starts QEMU and `qemu-img`; the only other host processes are the rootfs
/// builder's (mmdebstrap, mkfs.ext4, `qemu-img convert`) and the kubelet
/// builder's (the cached toolchain's `go`, `cc`, and the built binary asked
/// for its version: named here by the expressions that hold them). `*`: any
/// program.
const SPAWNERS: &[(&str, &[&str])] = &[
    ("vm/", &["*"]),
    ("images/rootfs.rs", &["mmdebstrap", "mkfs.ext4", "qemu-img"]),
    ("images/kubelet/build.rs", &["go_bin", "kubelet"]),
    ("images/kubelet/pause.rs", &["cc"]),
];

/// The QEMU programs, as they are named on the command line (`qemu-system`
/// stands for every `qemu-system-*`).
const QEMU_PROGRAMS: &[&str] = &["qemu-system", "qemu-img"];

/// Crates only one module may use: (crate, folder under `harness/src`, rule).
const CRATE_OWNERS: &[(&str, &str, &str)] = &[
    ("ssh2", "guest/", "only `guest` speaks SSH"),
    ("ureq", "images/", "only `images` downloads"),
];

/// Package-registry and distribution-mirror host names, each spelled in
/// pieces so that this file does not name them. A rule matches the host and
/// its subdomains. Upstream download URLs that are data in manifests (the
/// CentOS vault, the official kubelet binaries) are not registries.
const REGISTRY_HOSTS: &[&[&str]] = &[
    // Debian
    &["deb", "debian", "org"],
    &["security", "debian", "org"],
    &["ftp", "debian", "org"],
    &["snapshot", "debian", "org"],
    &["archive", "debian", "org"],
    &["httpredir", "debian", "org"],
    &["http", "debian", "net"],
    // Ubuntu
    &["archive", "ubuntu", "com"],
    &["security", "ubuntu", "com"],
    &["ports", "ubuntu", "com"],
    // language registries
    &["crates", "io"],
    &["pypi", "org"],
    &["files", "pythonhosted", "org"],
    &["registry", "npmjs", "org"],
    &["registry", "yarnpkg", "com"],
    &["proxy", "golang", "org"],
    &["rubygems", "org"],
    &["repo1", "maven", "org"],
    &["repo", "maven", "apache", "org"],
    // other distributions' mirrors
    &["dl-cdn", "alpinelinux", "org"],
    &["mirror", "centos", "org"],
    &["mirrorlist", "centos", "org"],
    &["download", "fedoraproject", "org"],
    &["mirrors", "fedoraproject", "org"],
];

/// Debian's per-country mirrors: `ftp.<country>.` followed by this domain.
const DEBIAN_COUNTRY_MIRROR_DOMAIN: &[&str] = &["debian", "org"];

// ---------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------

/// Only `vm` starts QEMU and `qemu-img`; the rootfs builder starts its own
/// tools; nothing else in the harness starts a process.
#[test]
fn only_vm_starts_qemu_and_only_the_rootfs_builder_starts_its_tools() {
    let files = harness_sources();
    let mut bad = Vec::new();
    let mut qemu_starts_in_vm = 0;
    for f in files.iter().filter(|f| !f.test_only) {
        let allowed = spawn_allowance(&f.rel);
        for (offset, program) in spawned_programs(f) {
            let ok = allowed.is_some_and(|a| a.contains(&"*") || a.contains(&program.as_str()));
            if f.rel.starts_with("vm/") && QEMU_PROGRAMS.contains(&program.as_str()) {
                qemu_starts_in_vm += 1;
            }
            if !ok {
                bad.push(format!("{}:{}: starts `{program}`", f.path, f.line(offset)));
            }
        }
        for (offset, literal) in &f.strings {
            let Some(program) = qemu_program_name(literal) else {
                continue;
            };
            if !allowed.is_some_and(|a| a.contains(&"*") || a.contains(&program)) {
                bad.push(format!(
                    "{}:{}: names the program `{literal}` (ask `vm` for the binary: \
                     REPRO_QEMU, REPRO_QEMU_IMG)",
                    f.path,
                    f.line(*offset)
                ));
            }
        }
    }
    assert!(
        qemu_starts_in_vm > 0,
        "the scanner found no QEMU start in harness/src/vm/: it is blind; fix \
         spawned_programs() in harness/tests/tidy.rs"
    );
    fail_on(
        "processes",
        bad,
        "Only `vm` starts QEMU and qemu-img, and only images/rootfs.rs starts mmdebstrap, \
         mkfs.ext4 and `qemu-img convert`: call a function of `vm` instead, or change \
         SPAWNERS in harness/tests/tidy.rs together with ARCHITECTURE.md.",
    );
}

/// Only `guest` uses ssh2; only `images` uses the HTTP client.
#[test]
fn ssh_and_http_crates_stay_in_their_module() {
    let files = harness_sources();
    let mut bad = Vec::new();
    for (krate, owner, rule) in CRATE_OWNERS {
        let mut seen_in_owner = false;
        for f in files.iter().filter(|f| !f.test_only) {
            for offset in find_ident(&f.code, krate) {
                if f.rel.starts_with(owner) {
                    seen_in_owner = true;
                } else {
                    bad.push(format!(
                        "{}:{}: uses `{krate}`, but {rule}: move this into \
                         harness/src/{owner} and call that from here",
                        f.path,
                        f.line(offset)
                    ));
                }
            }
        }
        assert!(
            seen_in_owner,
            "the scanner found no use of `{krate}` in harness/src/{owner}: it is blind, \
             or the crate is gone (then drop it from CRATE_OWNERS in harness/tests/tidy.rs)"
        );
    }
    fail_on(
        "crate ownership",
        bad,
        "Change CRATE_OWNERS in harness/tests/tidy.rs only together with ARCHITECTURE.md.",
    );
}

/// No Debian mirror or other package-registry host name in any tracked
/// text file: mirrors come from configuration or the host's apt sources.
#[test]
fn no_package_registry_host_names_in_the_repository() {
    let root = workspace_root();
    let mut bad = Vec::new();
    let mut scanned = 0;
    for rel in tracked_files(&root) {
        // Binary and non-UTF-8 files are not text; deleted files are gone.
        let Ok(text) = std::fs::read_to_string(root.join(&rel)) else {
            continue;
        };
        scanned += 1;
        for (i, line) in text.lines().enumerate() {
            for host in registry_hosts_in(line) {
                bad.push(format!("{rel}:{}: names `{host}`", i + 1));
            }
        }
    }
    assert!(
        scanned > 50,
        "only {scanned} tracked text files: is this the repository?"
    );
    fail_on(
        "registry host names",
        bad,
        "No package-registry host name in the repository: mirrors come from configuration \
         (--mirror, REPRO_DEBIAN_MIRROR, matrix.toml) or the host's apt sources. In examples \
         and tests write a placeholder such as http://mirror.example.",
    );
}

/// Every file of the harness starts with a `//!` doc comment.
#[test]
fn every_module_has_a_doc_comment() {
    let mut bad = Vec::new();
    for f in harness_sources() {
        let first = f
            .raw
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("#!["));
        if !first.is_some_and(|l| l.starts_with("//!")) {
            bad.push(format!("{}:1: no `//!` doc comment at the top", f.path));
        }
    }
    fail_on(
        "module doc comments",
        bad,
        "Start the file with `//!` lines that say what the module is for.",
    );
}

/// No `.unwrap()` in the harness outside tests (`unwrap_or*` is fine).
#[test]
fn no_unwrap_outside_tests() {
    let mut bad = Vec::new();
    for f in harness_sources().iter().filter(|f| !f.test_only) {
        for offset in find_unwrap_calls(&f.code) {
            bad.push(format!(
                "{}:{}: `.unwrap()` outside tests",
                f.path,
                f.line(offset)
            ));
        }
    }
    fail_on(
        "unwrap",
        bad,
        "Return an error with `?` that says what to do, or, where it cannot fail, say why: \
         `.expect(\"why it cannot fail\")`; a poisoned lock: \
         `.unwrap_or_else(PoisonError::into_inner)`.",
    );
}

/// ARCHITECTURE.md's code map names every file of the harness.
///
/// A file counts as mentioned when its path relative to `harness/src`
/// appears anywhere (`images/cache.rs`, `src/kit.rs`), or when, inside the
/// part of ARCHITECTURE.md about its top-level module (from a mention of
/// `src/<module>/` to the next mention of another module's `src/...`), its
/// path relative to that module appears (`cache.rs`; `kernel/` and then
/// `manifest.rs` for `images/kernel/manifest.rs`). A `mod.rs` is its
/// folder: `src/images/` mentions `images/mod.rs`.
#[test]
fn architecture_md_mentions_every_module() {
    let root = workspace_root();
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("read ARCHITECTURE.md");
    let files = harness_sources();
    let tops = top_level_modules(&files);
    let mut bad = Vec::new();
    for f in files.iter().filter(|f| !f.test_only) {
        if !architecture_mentions(&doc, &tops, &f.rel) {
            let top = f.rel.split('/').next().unwrap_or_default();
            let place = if f.rel.contains('/') {
                format!("the `src/{top}/` entry of the code map")
            } else {
                "the code map".to_string()
            };
            bad.push(format!("{}: not mentioned; add it to {place}", f.path));
        }
    }
    fail_on(
        "ARCHITECTURE.md code map",
        bad,
        "ARCHITECTURE.md's code map names every file of harness/src and says what it holds.",
    );
}

/// The library's top-level modules form the layers of [`LAYERS`]: every
/// module is in a layer, every `crate::X` goes to a lower layer (or is in
/// [`SAME_LAYER_EDGES`]), and the module graph has no cycle. The binary's
/// own modules (`mod X;` in main.rs) see the library as `repro::` and stand
/// above it, like main.rs.
#[test]
fn module_graph_follows_the_layers_and_has_no_cycle() {
    let files = harness_sources();
    let binary = declared_modules(&files, "main.rs");
    let tops: BTreeSet<String> = top_level_modules(&files)
        .difference(&binary)
        .cloned()
        .collect();
    let layer_of: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, (_, mods))| mods.iter().map(move |m| (*m, i)))
        .collect();
    let mut bad = Vec::new();
    for top in &tops {
        if !layer_of.contains_key(top.as_str()) {
            let file = files.iter().find(|f| f.module_path().first() == Some(top));
            let path = file.map_or("harness/src", |f| f.path.as_str());
            bad.push(format!("{path}: module `{top}` is in no layer of LAYERS"));
        }
    }
    let edges = module_edges(&files, &tops);
    assert!(
        edges.len() > 5,
        "the scanner found only {} module edges: it is blind; fix module_edges() in \
         harness/tests/tidy.rs",
        edges.len()
    );
    for ((from, to), places) in &edges {
        let (Some(&lf), Some(&lt)) = (layer_of.get(from.as_str()), layer_of.get(to.as_str()))
        else {
            continue; // reported above
        };
        let allowed = lt < lf || SAME_LAYER_EDGES.contains(&(from.as_str(), to.as_str()));
        if !allowed {
            let what = if lt == lf {
                "the same layer"
            } else {
                "a higher layer"
            };
            for place in places {
                bad.push(format!(
                    "{place}: `{from}` (layer {lf}: {}) uses `crate::{to}`, {what} \
                     (layer {lt}: {})",
                    LAYERS[lf].0, LAYERS[lt].0
                ));
            }
        }
    }
    let graph: BTreeMap<String, BTreeSet<String>> =
        edges.keys().fold(BTreeMap::new(), |mut g, (from, to)| {
            g.entry(from.clone()).or_default().insert(to.clone());
            g
        });
    for (modules, cycle) in cycles(&graph) {
        let modules: Vec<String> = modules.into_iter().collect();
        let mut msg = format!(
            "modules {} are in a cycle, for one {}:",
            modules.join(", "),
            cycle.join(" → ")
        );
        for pair in cycle.windows(2) {
            let places = &edges[&(pair[0].clone(), pair[1].clone())];
            msg.push_str(&format!(
                "\n    {}: `{}` uses `crate::{}`",
                places[0], pair[0], pair[1]
            ));
        }
        bad.push(msg);
    }
    fail_on(
        "module layering",
        bad,
        "Arrows only go down (layer numbers in LAYERS, harness/tests/tidy.rs): move what the \
         lower module needs from the higher one into a lower module (the shared vocabulary \
         goes into `model`). Change LAYERS only together with ARCHITECTURE.md.",
    );
}

// ---------------------------------------------------------------------------
// Reading the sources
// ---------------------------------------------------------------------------

/// One `.rs` file under `harness/src`.
struct Source {
    /// Path from the workspace root, for messages.
    path: String,
    /// Path relative to `harness/src`, with `/`.
    rel: String,
    /// The file as it is.
    raw: String,
    /// Comments and `#[cfg(test)]` items blanked; every byte offset and line kept.
    text: String,
    /// `text` with the contents of string and char literals blanked too.
    code: String,
    /// String literals outside tests: (byte offset, contents as written).
    strings: Vec<(usize, String)>,
    /// A whole file of tests (`#[cfg(test)] mod NAME;` elsewhere).
    test_only: bool,
    /// The names of the out-of-line test modules this file declares.
    test_modules: Vec<String>,
    /// Byte offsets where lines start.
    line_starts: Vec<usize>,
}

impl Source {
    fn parse(path: String, rel: String, raw: String) -> Source {
        let lexed = lex(&raw);
        let mut text = lexed.text.into_bytes();
        let mut code = lexed.code.into_bytes();
        let test_items = cfg_test_items(std::str::from_utf8(&code).expect("lexer keeps UTF-8"));
        for (start, end, _) in &test_items {
            blank(&mut text, *start..*end);
            blank(&mut code, *start..*end);
        }
        let strings = lexed
            .strings
            .into_iter()
            .filter(|(o, _)| !test_items.iter().any(|(s, e, _)| (*s..*e).contains(o)))
            .collect();
        let line_starts = std::iter::once(0)
            .chain(raw.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Source {
            path,
            rel,
            raw,
            text: String::from_utf8(text).expect("blanking keeps UTF-8"),
            code: String::from_utf8(code).expect("blanking keeps UTF-8"),
            strings,
            test_only: false,
            test_modules: test_items.into_iter().filter_map(|(_, _, m)| m).collect(),
            line_starts,
        }
    }

    /// The 1-based line of a byte offset.
    fn line(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset)
    }

    /// The module path of this file: `plan/matrix.rs` is `[plan, matrix]`,
    /// `plan/mod.rs` is `[plan]`, `lib.rs` is `[]`.
    fn module_path(&self) -> Vec<String> {
        module_path_of(&self.rel)
    }

    /// Out-of-line test modules this file declares, as paths under harness/src.
    fn test_module_files(&self) -> Vec<String> {
        let dir = module_dir_of(&self.rel);
        self.test_modules
            .iter()
            .flat_map(|name| [format!("{dir}{name}.rs"), format!("{dir}{name}/mod.rs")])
            .collect()
    }
}

fn module_path_of(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    let root_file = parts.len() == 1 && matches!(parts[0].as_str(), "lib" | "main");
    if root_file || parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The folder (under harness/src, ending in `/` unless empty) that holds the
/// files of the submodules declared in `rel`.
fn module_dir_of(rel: &str) -> String {
    let path = module_path_of(rel);
    if path.is_empty() {
        String::new()
    } else {
        format!("{}/", path.join("/"))
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("harness/ is inside the workspace")
        .to_path_buf()
}

/// Every `.rs` file under `harness/src`, sorted.
fn harness_sources() -> Vec<Source> {
    let root = workspace_root();
    let src = root.join("harness/src");
    let mut paths = Vec::new();
    walk(&src, &mut paths);
    paths.sort();
    let mut files: Vec<Source> = paths
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| {
            let rel = p
                .strip_prefix(&src)
                .expect("under src")
                .to_string_lossy()
                .into_owned();
            let raw = std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
            Source::parse(format!("harness/src/{rel}"), rel, raw)
        })
        .collect();
    assert!(
        files.len() > 10,
        "found only {} files under {}",
        files.len(),
        src.display()
    );
    let test_files: BTreeSet<String> = files.iter().flat_map(Source::test_module_files).collect();
    for f in &mut files {
        f.test_only = test_files.contains(&f.rel);
    }
    files
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The repository's tracked files (`git ls-files`), relative to the root.
fn tracked_files(root: &Path) -> Vec<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["ls-files", "-z"])
        .output()
        .expect("tidy needs git to list the tracked files (`git ls-files`)");
    assert!(
        out.status.success(),
        "`git ls-files` failed in {}: {}; tidy needs a git checkout",
        root.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split('\0')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// The top-level modules: `X.rs` and `X/` under harness/src, but not the
/// crate roots.
fn top_level_modules(files: &[Source]) -> BTreeSet<String> {
    files
        .iter()
        .filter(|f| !f.test_only)
        .filter_map(|f| f.module_path().first().cloned())
        .collect()
}

/// The modules a crate root (`lib.rs`, `main.rs`) declares: `mod NAME;`.
fn declared_modules(files: &[Source], root: &str) -> BTreeSet<String> {
    let Some(f) = files.iter().find(|f| f.rel == root) else {
        return BTreeSet::new();
    };
    find_ident(&f.code, "mod")
        .into_iter()
        .filter_map(|i| {
            let rest = f.code[i + "mod".len()..].trim_start();
            let name = leading_ident(rest);
            let after = rest[name.len()..].trim_start();
            (!name.is_empty() && after.starts_with(';')).then(|| name.to_string())
        })
        .collect()
}

// ---------------------------------------------------------------------------
// A small Rust lexer: enough to tell code from comments and literals
// ---------------------------------------------------------------------------

struct Lexed {
    /// The source with comments blanked.
    text: String,
    /// The source with comments and literal contents blanked.
    code: String,
    /// String literals: (byte offset of the opening quote, contents).
    strings: Vec<(usize, String)>,
}

/// Replaces bytes with spaces, keeping newlines (so lines stay where they are).
fn blank(bytes: &mut [u8], range: std::ops::Range<usize>) {
    for b in &mut bytes[range] {
        if *b != b'\n' {
            *b = b' ';
        }
    }
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn lex(src: &str) -> Lexed {
    let b = src.as_bytes();
    let n = b.len();
    let mut text = b.to_vec();
    let mut code = b.to_vec();
    let mut strings = Vec::new();
    let ident_before = |i: usize| i > 0 && is_ident_byte(b[i - 1]);
    let mut i = 0;
    while i < n {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == b'/' && next == Some(b'/') {
            let end = src[i..].find('\n').map_or(n, |e| i + e);
            blank(&mut text, i..end);
            blank(&mut code, i..end);
            i = end;
        } else if c == b'/' && next == Some(b'*') {
            let (mut j, mut depth) = (i + 2, 1);
            while j < n && depth > 0 {
                if b[j] == b'/' && b.get(j + 1) == Some(&b'*') {
                    depth += 1;
                    j += 2;
                } else if b[j] == b'*' && b.get(j + 1) == Some(&b'/') {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            blank(&mut text, i..j);
            blank(&mut code, i..j);
            i = j;
        } else if c == b'"' {
            let mut j = i + 1;
            while j < n && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            let j = j.min(n);
            strings.push((i, src[i + 1..j].to_string()));
            blank(&mut code, i + 1..j);
            i = j + 1;
        } else if c == b'r'
            && (!ident_before(i) || (i > 0 && b[i - 1] == b'b' && !ident_before(i - 1)))
            && raw_string_hashes(&b[i + 1..]).is_some()
        {
            let hashes = raw_string_hashes(&b[i + 1..]).unwrap_or(0);
            let open = i + 1 + hashes; // the opening quote
            let closing = format!("\"{}", "#".repeat(hashes));
            let end = src[open + 1..].find(&closing).map_or(n, |e| open + 1 + e);
            strings.push((open, src[open + 1..end].to_string()));
            blank(&mut code, open + 1..end);
            i = (end + closing.len()).min(n);
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\u{..}', '"') or a lifetime ('a).
            if next == Some(b'\\') {
                let mut j = i + 3;
                while j < n && b[j] != b'\'' {
                    j += 1;
                }
                blank(&mut code, i + 1..j.min(n));
                i = j + 1;
            } else if let Some(len) = src[i + 1..].chars().next().map(char::len_utf8) {
                if b.get(i + 1 + len) == Some(&b'\'') {
                    blank(&mut code, i + 1..i + 1 + len);
                    i += 2 + len;
                } else {
                    i += 1;
                }
            } else {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    Lexed {
        text: String::from_utf8(text).expect("blanking whole characters keeps UTF-8"),
        code: String::from_utf8(code).expect("blanking whole characters keeps UTF-8"),
        strings,
    }
}

/// After an `r`: `#`s and a quote open a raw string; the number of `#`s.
fn raw_string_hashes(rest: &[u8]) -> Option<usize> {
    let hashes = rest.iter().take_while(|&&b| b == b'#').count();
    (rest.get(hashes) == Some(&b'"')).then_some(hashes)
}

/// The items under `#[cfg(test)]` in `code` (comments and literals blanked):
/// (start, end) byte ranges, and the name of a module declared out of line
/// (`#[cfg(test)] mod tests;`).
fn cfg_test_items(code: &str) -> Vec<(usize, usize, Option<String>)> {
    let b = code.as_bytes();
    let mut items = Vec::new();
    let mut from = 0;
    while let Some(found) = code[from..].find("#[cfg(test)]") {
        let start = from + found;
        let mut i = start + "#[cfg(test)]".len();
        // Further attributes on the same item.
        loop {
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if code[i..].starts_with("#[") {
                i = matching(b, i + 1).map_or(b.len(), |e| e + 1);
            } else {
                break;
            }
        }
        let item_start = i;
        // The item ends at a `;` outside brackets, or at its body's `}`.
        let mut depth = 0i32;
        let mut end = b.len();
        while i < b.len() {
            match b[i] {
                b'(' | b'[' => depth += 1,
                b')' | b']' => depth -= 1,
                b';' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                b'{' if depth == 0 => {
                    end = matching(b, i).map_or(b.len(), |e| e + 1);
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        let item = &code[item_start..end];
        let out_of_line = item
            .strip_prefix("pub ")
            .unwrap_or(item)
            .strip_prefix("mod ")
            .filter(|rest| rest.trim_end().ends_with(';'))
            .map(|rest| rest.trim_end().trim_end_matches(';').trim().to_string());
        items.push((start, end, out_of_line));
        from = end.max(start + 1);
    }
    items
}

/// The index of the bracket closing the one at `open` (`(`, `[` or `{`).
fn matching(b: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (i, &c) in b.iter().enumerate().skip(open) {
        match c {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Offsets where the identifier `ident` stands alone in `code`.
fn find_ident(code: &str, ident: &str) -> Vec<usize> {
    let b = code.as_bytes();
    code.match_indices(ident)
        .map(|(i, _)| i)
        .filter(|&i| i == 0 || !is_ident_byte(b[i - 1]))
        .filter(|&i| !matches!(b.get(i + ident.len()), Some(&c) if is_ident_byte(c)))
        .collect()
}

/// Offsets of `.unwrap()` calls (not `unwrap_or`, `unwrap_err`, ...).
fn find_unwrap_calls(code: &str) -> Vec<usize> {
    code.match_indices(".unwrap")
        .map(|(i, _)| i)
        .filter(|&i| {
            let rest = code[i + ".unwrap".len()..].trim_start();
            rest.strip_prefix('(')
                .is_some_and(|r| r.trim_start().starts_with(')'))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// The SPAWNERS entry for a file under harness/src, if any.
fn spawn_allowance(rel: &str) -> Option<&'static [&'static str]> {
    SPAWNERS
        .iter()
        .find(|(place, _)| {
            if place.ends_with('/') {
                rel.starts_with(place)
            } else {
                rel == *place
            }
        })
        .map(|(_, programs)| *programs)
}

/// The programs a file starts with `Command::new(...)`: a literal's
/// contents, `qemu-img`/`qemu-system` for an expression naming QEMU
/// (`qemu_img`, `&spec.qemu`), else the expression.
fn spawned_programs(f: &Source) -> Vec<(usize, String)> {
    let b = f.code.as_bytes();
    f.code
        .match_indices("Command::new(")
        .map(|(i, m)| {
            let open = i + m.len() - 1;
            let close = matching(b, open).unwrap_or(b.len());
            (i, program_of(&f.text[open + 1..close]))
        })
        .collect()
}

fn program_of(arg: &str) -> String {
    let arg = arg.trim().trim_start_matches('&');
    if let Some(literal) = arg.strip_prefix('"').and_then(|a| a.strip_suffix('"')) {
        return qemu_program_name(literal).map_or_else(|| literal.to_string(), String::from);
    }
    let lower = arg.to_lowercase();
    if lower.contains("qemu") {
        if lower.contains("img") {
            "qemu-img"
        } else {
            "qemu-system"
        }
        .to_string()
    } else {
        arg.to_string() // computed at run time: named by the expression
    }
}

/// `qemu-img` or `qemu-system` when a string literal is a QEMU program name
/// (one word: `qemu-img`, `qemu-system-x86_64`), not a message about it.
fn qemu_program_name(literal: &str) -> Option<&'static str> {
    if literal.contains(char::is_whitespace) {
        return None;
    }
    if literal == "qemu-img" {
        Some("qemu-img")
    } else if literal.starts_with("qemu-system") {
        Some("qemu-system")
    } else {
        None
    }
}

// ---------------------------------------------------------------------------
// Host names
// ---------------------------------------------------------------------------

/// The registry host names in a line of text (lowercased).
fn registry_hosts_in(line: &str) -> Vec<String> {
    let registries: Vec<Vec<&str>> = REGISTRY_HOSTS.iter().map(|h| h.to_vec()).collect();
    line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
        .map(|t| {
            t.trim_matches(|c| c == '.' || c == '-')
                .to_ascii_lowercase()
        })
        .filter(|t| t.contains('.'))
        .filter(|host| {
            let labels: Vec<&str> = host.split('.').collect();
            let country_mirror = labels.len() == 2 + DEBIAN_COUNTRY_MIRROR_DOMAIN.len()
                && labels[0] == "ftp"
                && labels[2..] == *DEBIAN_COUNTRY_MIRROR_DOMAIN;
            country_mirror || registries.iter().any(|r| labels.ends_with(r))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// ARCHITECTURE.md
// ---------------------------------------------------------------------------

/// Offsets of `needle` in `hay` that do not continue a longer path or name:
/// before it a character that cannot be in a path (or `src/`), after a name
/// ending in `.rs` no identifier character.
fn mentions(hay: &str, needle: &str) -> Vec<usize> {
    let b = hay.as_bytes();
    hay.match_indices(needle)
        .map(|(i, _)| i)
        .filter(|&i| {
            i == 0
                || hay[..i].ends_with("src/")
                || !(is_ident_byte(b[i - 1]) || matches!(b[i - 1], b'/' | b'.' | b'-'))
        })
        .filter(|&i| {
            !needle.ends_with(".rs")
                || !matches!(b.get(i + needle.len()), Some(&c) if is_ident_byte(c))
        })
        .collect()
}

fn architecture_mentions(doc: &str, tops: &BTreeSet<String>, rel: &str) -> bool {
    // A mod.rs is its folder.
    let rel = if rel.ends_with("/mod.rs") {
        &rel[..rel.len() - "mod.rs".len()]
    } else {
        rel
    };
    let Some((top, inner)) = rel.split_once('/') else {
        return !mentions(doc, rel).is_empty(); // a top-level file: kit.rs, lib.rs
    };
    if inner.is_empty() {
        return !mentions(doc, &format!("src/{top}/")).is_empty();
    }
    if !mentions(doc, rel).is_empty() {
        return true;
    }
    // Inside the module's part of the document: the path below the module,
    // as one string or piece by piece (`kernel/`, then `manifest.rs`).
    let section_starts = |m: &str| {
        let mut s = mentions(doc, &format!("src/{m}/"));
        s.extend(mentions(doc, &format!("src/{m}.rs")));
        s
    };
    let others: Vec<usize> = tops
        .iter()
        .filter(|m| m.as_str() != top)
        .flat_map(|m| section_starts(m))
        .collect();
    let pieces: Vec<String> = {
        let parts: Vec<&str> = inner.split('/').collect();
        let last = parts.len() - 1;
        parts
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.is_empty())
            .map(|(i, p)| {
                if i < last {
                    format!("{p}/")
                } else {
                    p.to_string()
                }
            })
            .collect()
    };
    section_starts(top).into_iter().any(|start| {
        let end = others
            .iter()
            .copied()
            .filter(|&o| o > start)
            .min()
            .unwrap_or(doc.len());
        let section = &doc[start..end];
        !mentions(section, inner).is_empty() || in_order(section, &pieces)
    })
}

/// Whether `pieces` are mentioned in this order in `text`.
fn in_order(text: &str, pieces: &[String]) -> bool {
    let mut from = 0;
    for piece in pieces {
        match mentions(&text[from..], piece).first() {
            Some(i) => from += i + piece.len(),
            None => return false,
        }
    }
    true
}

// ---------------------------------------------------------------------------
// The module graph
// ---------------------------------------------------------------------------

/// (user, used) → where: every `crate::X` (also `crate::{X, Y}` and
/// `super::` paths that reach the crate root) from a file of one top-level
/// module to another, outside tests and the crate roots.
fn module_edges(
    files: &[Source],
    tops: &BTreeSet<String>,
) -> BTreeMap<(String, String), Vec<String>> {
    let mut edges: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for f in files.iter().filter(|f| !f.test_only) {
        let module = f.module_path();
        let Some(from) = module.first().filter(|m| tops.contains(*m)) else {
            continue; // lib.rs, main.rs and the binary's own modules
        };
        for (offset, to) in used_modules(&f.code, &module) {
            if &to != from && tops.contains(&to) {
                let place = format!("{}:{}", f.path, f.line(offset));
                edges.entry((from.clone(), to)).or_default().push(place);
            }
        }
    }
    edges
}

/// The top-level modules that `crate::`/`super::` paths in `code` name,
/// from a file whose module path is `module`.
fn used_modules(code: &str, module: &[String]) -> Vec<(usize, String)> {
    let b = code.as_bytes();
    let mut used = Vec::new();
    for start in find_ident(code, "crate")
        .into_iter()
        .chain(find_ident(code, "super"))
    {
        // Only the first word of a path: not `x::super` or `crate::super`.
        if code[..start].ends_with("::") {
            continue;
        }
        let mut base: Vec<String> = module.to_vec();
        let mut i = start;
        if code[i..].starts_with("crate") {
            base.clear();
            i += "crate".len();
        } else {
            base.pop();
            i += "super".len();
        }
        if !code[i..].starts_with("::") {
            continue; // `pub(crate)`, `pub(super)`
        }
        i += 2;
        while code[i..].starts_with("super::") {
            base.pop();
            i += "super::".len();
        }
        if let Some(top) = base.first() {
            used.push((start, top.clone()));
        } else if b.get(i) == Some(&b'{') {
            let close = matching(b, i).unwrap_or(b.len());
            for item in split_top_level(&code[i + 1..close]) {
                let name = leading_ident(item.trim());
                if !name.is_empty() && name != "self" {
                    used.push((start, name.to_string()));
                }
            }
        } else {
            let name = leading_ident(&code[i..]);
            if !name.is_empty() {
                used.push((start, name.to_string()));
            }
        }
    }
    used
}

/// Splits at the commas outside brackets.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut from) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' | '(' | '[' => depth += 1,
            '}' | ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[from..]);
    parts
}

fn leading_ident(s: &str) -> &str {
    let end = s.bytes().position(|c| !is_ident_byte(c)).unwrap_or(s.len());
    &s[..end]
}

/// The cycles of a graph: for each strongly connected component with more
/// than one module (or a module using itself), its modules and one closed
/// path through them, `a → b → a`.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<(BTreeSet<String>, Vec<String>)> {
    let nodes: BTreeSet<&String> = graph.keys().chain(graph.values().flatten()).collect();
    let reach = |from: &String| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(n) = stack.pop() {
            for next in graph.get(&n).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&String, BTreeSet<String>> =
        nodes.iter().map(|n| (*n, reach(n))).collect();
    let mut done = BTreeSet::new();
    let mut found = Vec::new();
    for n in &nodes {
        if done.contains(*n) || !reachable[n].contains(*n) {
            continue;
        }
        // The component: modules that reach n and that n reaches.
        let component: BTreeSet<String> = reachable[n]
            .iter()
            .filter(|m| reachable[m].contains(*n))
            .cloned()
            .collect();
        // A shortest closed path through n, inside the component.
        let mut prev: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([(*n).clone()]);
        'search: while let Some(m) = queue.pop_front() {
            for next in graph.get(&m).into_iter().flatten() {
                if !component.contains(next) {
                    continue;
                }
                if next == *n {
                    prev.insert(format!("{n}\u{0}end"), m.clone());
                    break 'search;
                }
                if !prev.contains_key(next) {
                    prev.insert(next.clone(), m.clone());
                    queue.push_back(next.clone());
                }
            }
        }
        let mut path = vec![(*n).clone()];
        let mut at = prev[&format!("{n}\u{0}end")].clone();
        while &at != *n {
            path.push(at.clone());
            at = prev[&at].clone();
        }
        path.push((*n).clone());
        path.reverse();
        done.extend(component.iter().cloned());
        found.push((component, path));
    }
    found
}

// ---------------------------------------------------------------------------
// Reporting
// ---------------------------------------------------------------------------

/// Fails with every violation, one a line, and what to do about them.
fn fail_on(check: &str, violations: Vec<String>, what_to_do: &str) {
    if violations.is_empty() {
        return;
    }
    panic!(
        "tidy: {} violation(s) of the {check} rule (ARCHITECTURE.md):\n{}\n{what_to_do}\n",
        violations.len(),
        violations.join("\n")
    );
}

// ---------------------------------------------------------------------------
// The checks' own machinery, on small inputs
// ---------------------------------------------------------------------------

mod machinery {
    use super::*;

    fn source(rel: &str, raw: &str) -> Source {
        Source::parse(
            format!("harness/src/{rel}"),
            rel.to_string(),
            raw.to_string(),
        )
    }

    #[test]
    fn lexer_blanks_comments_and_literals_but_keeps_lines() {
        let raw = "let a = \"x // y\"; // ssh2\n/* ureq\n */ let c = '\"'; let r = r#\"a \"b\" c\"#;\nfn f<'a>(x: &'a str) {}\n";
        let l = lex(raw);
        assert_eq!(l.code.len(), raw.len());
        assert_eq!(l.code.lines().count(), raw.lines().count());
        assert!(
            !l.code.contains("ssh2") && !l.code.contains("ureq"),
            "{}",
            l.code
        );
        assert!(!l.code.contains("x //"), "{}", l.code);
        assert!(l.text.contains("\"x // y\""), "{}", l.text);
        assert!(l.code.contains("let c = ' ';"), "{}", l.code);
        assert!(l.code.contains("fn f<'a>(x: &'a str)"), "{}", l.code);
        let contents: Vec<&str> = l.strings.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(contents, ["x // y", "a \"b\" c"]);
    }

    #[test]
    fn every_harness_file_lexes_to_balanced_brackets() {
        // A lexer that lost track of a literal or comment would unbalance them.
        for f in harness_sources() {
            let lexed = lex(&f.raw);
            let mut stack = Vec::new();
            for (i, c) in lexed.code.char_indices() {
                match c {
                    '(' | '[' | '{' => stack.push((c, i)),
                    ')' | ']' | '}' => {
                        let open = stack.pop().map(|(o, _)| o);
                        let want = match c {
                            ')' => '(',
                            ']' => '[',
                            _ => '{',
                        };
                        assert_eq!(open, Some(want), "{}:{}: `{c}`", f.path, f.line(i));
                    }
                    _ => {}
                }
            }
            assert!(stack.is_empty(), "{}: unclosed {stack:?}", f.path);
        }
        assert_eq!(module_path_of("lib.rs"), Vec::<String>::new());
        assert_eq!(module_path_of("plan/mod.rs"), ["plan"]);
        assert_eq!(module_path_of("images/main.rs"), ["images", "main"]);
    }

    #[test]
    fn test_items_are_left_out_and_out_of_line_test_modules_found() {
        let f = source(
            "images/cache.rs",
            "//! Doc.\nfn a() { x.unwrap_or(1); }\n#[cfg(test)]\nmod tests {\n    fn b() { y.unwrap(); }\n}\n#[cfg(test)]\nmod more;\nfn c() { z.unwrap() }\n",
        );
        assert_eq!(
            find_unwrap_calls(&f.code)
                .iter()
                .map(|&o| f.line(o))
                .collect::<Vec<_>>(),
            [9]
        );
        assert_eq!(
            f.test_module_files(),
            ["images/cache/more.rs", "images/cache/more/mod.rs"]
        );
        let g = source("images/mod.rs", "#[cfg(test)]\nmod tests;\n");
        assert_eq!(
            g.test_module_files(),
            ["images/tests.rs", "images/tests/mod.rs"]
        );
    }

    #[test]
    fn spawned_programs_are_named() {
        let f = source(
            "images/rootfs.rs",
            "//! D.\nfn f() { Command::new(\"mmdebstrap\"); Command::new(qemu_img); \
             std::process::Command::new(&spec.qemu).arg(\"x\"); Command::new(tool); }\n",
        );
        let programs: Vec<String> = spawned_programs(&f).into_iter().map(|(_, p)| p).collect();
        assert_eq!(programs, ["mmdebstrap", "qemu-img", "qemu-system", "tool"]);
        assert_eq!(spawn_allowance("vm/mod.rs"), Some(&["*"][..]));
        assert_eq!(spawn_allowance("images/kernel.rs"), None);
        assert_eq!(qemu_program_name("qemu-system-x86_64"), Some("qemu-system"));
        assert_eq!(qemu_program_name("qemu-img convert"), None);
    }

    #[test]
    fn crate_paths_resolve_to_top_level_modules() {
        let code = "use crate::{model::Outcome, tomlfile, self};\nuse super::pattern;\n\
                    use super::super::vm::Vm;\npub(crate) fn f() { crate::report::x(); }\n";
        let used: Vec<String> = used_modules(&lex(code).code, &["plan".into(), "matrix".into()])
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        assert_eq!(used, ["model", "tomlfile", "report", "plan", "vm"]);
        let from_mod_rs: Vec<String> = used_modules("use super::kit;", &["plan".into()])
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        assert_eq!(from_mod_rs, ["kit"]);
        let main = source(
            "main.rs",
            "//! Bin.\nmod cli;\npub mod commands;\nmod inline {}\n",
        );
        assert_eq!(
            declared_modules(&[main], "main.rs"),
            BTreeSet::from(["cli".to_string(), "commands".to_string()])
        );
    }

    #[test]
    fn cycles_are_found_once_per_component() {
        let graph: BTreeMap<String, BTreeSet<String>> = [
            ("a", &["b"][..]),
            ("b", &["c", "d"]),
            ("c", &["a"]),
            ("d", &[]),
            ("e", &["e"]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
        .collect();
        let found: Vec<String> = cycles(&graph)
            .into_iter()
            .map(|(modules, path)| format!("{modules:?}: {}", path.join(" → ")))
            .collect();
        assert_eq!(
            found,
            [r#"{"a", "b", "c"}: a → b → c → a"#, r#"{"e"}: e → e"#]
        );
        let acyclic: BTreeMap<String, BTreeSet<String>> =
            [("a".to_string(), BTreeSet::from(["b".to_string()]))].into();
        assert!(cycles(&acyclic).is_empty());
    }

    #[test]
    fn registry_hosts_are_recognised_and_placeholders_are_not() {
        let debian = ["deb", "debian", "org"].join(".");
        let country = ["ftp", "de", "debian", "org"].join(".");
        let crates = ["static", "crates", "io"].join(".");
        let line = format!("http://{debian}/debian, {country} and https://{crates}/x.");
        assert_eq!(registry_hosts_in(&line), [debian, country, crates]);
        for fine in [
            "http://mirror.example/debian",
            "https://github.com/rust-lang/crates.io-index",
            "https://vault.centos.org/7.6.1810/",
            "https://dl.k8s.io/v1.31.0/bin/linux/amd64/kubelet",
            "images/kernels/bookworm.toml",
        ] {
            assert!(registry_hosts_in(fine).is_empty(), "{fine}");
        }
    }

    #[test]
    fn architecture_mentions_follow_the_sections() {
        let doc = "- `src/kit.rs`: x\n- `src/images/`: y\n  - `cache.rs`: z\n  - `kernel/`: \
                   manifests\n    - `manifest.rs`\n- `src/vm/`: q\n  - `qemu.rs`\n";
        let tops: BTreeSet<String> = ["kit", "images", "vm"].map(String::from).into();
        for rel in [
            "kit.rs",
            "images/mod.rs",
            "images/cache.rs",
            "images/kernel/mod.rs",
            "images/kernel/manifest.rs",
            "vm/qemu.rs",
        ] {
            assert!(architecture_mentions(doc, &tops, rel), "{rel}");
        }
        for rel in [
            "lib.rs",
            "vm/cache.rs",
            "images/qemu.rs",
            "vm/mod2.rs",
            "guest/mod.rs",
        ] {
            assert!(!architecture_mentions(doc, &tops, rel), "{rel}");
        }
    }
}
