//! Malformed input, generated: the repository's own `matrix.toml` files,
//! `scenario.toml`s, kernel, rootfs and kubelet manifests, and valid
//! `result.jsonl` files, mutated by a small seeded generator (truncation
//! at every kind of boundary, deleted, duplicated and swapped lines, values
//! of the wrong type, unknown keys, tables where scalars go, out-of-range
//! and huge numbers, bad UTF-8, deep nesting, empty files), then read
//! through the same functions `repro` reads them with.
//!
//! Every input must be parsed without a panic, and every rejection must say
//! where: `FILE:LINE:COLUMN: ...` for TOML files, `result.jsonl line N: ...`
//! for result files (and only lines that were changed may be rejected).
//! Inputs that stay valid are counted; each kind must be mostly rejected,
//! so the test cannot pass by generating nothing wrong.
//!
//! Deterministic: the seed is fixed. `REPRO_FUZZ_SEED=N` and
//! `REPRO_FUZZ_CASES=N` (per kind) explore further by hand; `--nocapture`
//! shows the counts, and with `REPRO_FUZZ_MESSAGES=1` every distinct
//! message (digits blanked), to read them as a user would.

use repro::images::kernel::load_manifests;
use repro::images::rootfs;
use repro::kubelet;
use repro::model::{Driver, Outcome};
use repro::plan::load_matrix;
use repro::result_line::{ResultLine, Verdict};
use repro::run::result::{decide, parse_result_bytes, ScriptEnd, RESULT_FILE};
use repro::scenario::{self, Scenario};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

const DEFAULT_SEED: u64 = 0x5eed_1005;
const DEFAULT_CASES: usize = 250;

/// splitmix64: small, seeded, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// In `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------
// TOML mutations

/// Values of every TOML type, and numbers at and past every limit.
const WRONG_VALUES: &[&str] = &[
    "\"text\"",
    "\"\"",
    "42",
    "0",
    "-1",
    "3.5",
    "true",
    "[]",
    "[1, \"a\", true]",
    "[[1], [\"x\"]]",
    "{}",
    "{ a = 1 }",
    "{ value = { value = [1, { x = \"y\" }] } }",
    "1979-05-27T07:32:00Z",
    "07:32:00",
    "nan",
    "-inf",
    "4294967296",
    "-4294967297",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "99999999999999999999999999999999",
    "1e400",
    "0x7fffffffffffffff",
    "0o777",
    "0b101",
    "1_000_000_000_000",
    "'literal'",
    "\"\"\"multi\nline\"\"\"",
    "\"\\u0000\"",
    "\"é☃𝄞\"",
    "\"v3\"",
    "\"rpm\"",
    "\"float\"",
    "\"../../etc/passwd\"",
];

const UNKNOWN_KEYS: &[&str] = &[
    "bogus = 1",
    "\"quoted key\" = \"x\"",
    "a.b.c = 1",
    "timout_s = 3",
    "Name = \"x\"",
    "[bogus]",
    "[[bogus]]",
    "[seed.extra]",
    "[params.p]\ndescription = \"d\"\ntype = \"wat\"",
    "[params.p]\ndescription = \"d\"\ntype = \"int\"\nmin = 9\nmax = 1",
    "[params.p]\ndescription = \"d\"\ntype = \"enum\"",
    "[params.p]\ndescription = \"d\"\ntype = \"size\"\ndefault = \"1Q\"",
    "[profile.loop]\ninherits = \"loop\"",
    "[profile.orphan]\ninherits = \"nobody\"",
    "[profile.bad]\naccel = \"hvf\"",
    "[cgroup.v3]\ncmdline = [1]",
    "[[scenario]]\nname = \"no-such-scenario\"",
    "[[scenario]]\nname = \"memcg-fill\"\nparams = { limit = \"many\" }",
    "[[scenario]]\nname = \"memcg-fill\"\nparams = { nope = 1 }",
    "[[scenario]]\nname = \"memcg-fill\"\ncgroups = [\"v9\"]",
    "[[expect]]\nexpect = \"reprodued\"",
    "[[exclude]]\nkubelet = \">=x\"",
    "[[include]]\ndriver = \"podman\"",
];

const BAD_UTF8: &[&[u8]] = &[
    b"\xff",
    b"\xc3",
    b"\xc0\x80",
    b"\xed\xa0\x80",
    b"\xf8\x88\x80\x80\x80",
    b"\xe2\x82",
];

const NOISE: &[u8] = b"[]{}=\",'\\#\r\t\0.\n";

/// Positions just after a byte of `set` (every kind of boundary a
/// truncation can hit: after `=`, inside a string, after `[` ...).
fn after_any(text: &[u8], set: &[u8]) -> Vec<usize> {
    text.iter()
        .enumerate()
        .filter(|(_, b)| set.contains(b))
        .map(|(i, _)| i + 1)
        .collect()
}

fn lines_of(text: &[u8]) -> Vec<Vec<u8>> {
    text.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect()
}

fn join(lines: &[Vec<u8>]) -> Vec<u8> {
    lines.join(&b'\n')
}

/// Indexes of `key = value` lines (not comments, not headers).
fn assignments(lines: &[Vec<u8>]) -> Vec<usize> {
    (0..lines.len())
        .filter(|&i| {
            let l = String::from_utf8_lossy(&lines[i]);
            let t = l.trim_start();
            !t.starts_with('#') && !t.starts_with('[') && t.contains('=')
        })
        .collect()
}

fn headers(lines: &[Vec<u8>]) -> Vec<usize> {
    (0..lines.len())
        .filter(|&i| lines[i].first() == Some(&b'['))
        .collect()
}

/// `key = ` of an assignment line, and its value.
fn split_assignment(line: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let eq = line.iter().position(|b| *b == b'=').unwrap_or(0);
    (line[..=eq].to_vec(), line[eq + 1..].to_vec())
}

/// One mutation of a TOML text, and what it did.
fn mutate_toml(rng: &mut Rng, text: &[u8]) -> (Vec<u8>, String) {
    let mut lines = lines_of(text);
    let n = lines.len();
    let assigns = assignments(&lines);
    let op = rng.below(20);
    let mut out = match op {
        0 => {
            let at = rng.below(text.len() + 1);
            return (text[..at].to_vec(), format!("truncated at byte {at}"));
        }
        1 => {
            let sets: [&[u8]; 7] = [b"=", b"\"", b"[", b"{", b",", b"\n", b"#."];
            let set = *rng.pick(&sets);
            let at = after_any(text, set);
            if at.is_empty() {
                return (Vec::new(), "emptied".into());
            }
            let at = *rng.pick(&at);
            let cut = String::from_utf8_lossy(set);
            return (
                text[..at].to_vec(),
                format!("truncated after {cut:?} at byte {at}"),
            );
        }
        2 => {
            let i = rng.below(n);
            lines.remove(i);
            return (join(&lines), format!("deleted line {}", i + 1));
        }
        3 => {
            let i = rng.below(n);
            let l = lines[i].clone();
            lines.insert(i, l);
            return (join(&lines), format!("duplicated line {}", i + 1));
        }
        4 => {
            let (i, j) = (rng.below(n), rng.below(n));
            lines.swap(i, j);
            return (
                join(&lines),
                format!("swapped lines {} and {}", i + 1, j + 1),
            );
        }
        5 | 6 if !assigns.is_empty() => {
            let i = *rng.pick(&assigns);
            let (key, _) = split_assignment(&lines[i]);
            let v = *rng.pick(WRONG_VALUES);
            lines[i] = [&key[..], b" ", v.as_bytes()].concat();
            return (join(&lines), format!("line {}: value {v}", i + 1));
        }
        7 => {
            let i = rng.below(n + 1);
            let k = *rng.pick(UNKNOWN_KEYS);
            lines.insert(i, k.as_bytes().to_vec());
            return (
                join(&lines),
                format!("inserted {k:?} before line {}", i + 1),
            );
        }
        8 if !assigns.is_empty() => {
            // A table where a scalar goes: `key = v` becomes a `[key]` or
            // `[[key]]` section at the end.
            let i = *rng.pick(&assigns);
            let (key, _) = split_assignment(&lines[i]);
            let key = String::from_utf8_lossy(&key[..key.len() - 1])
                .trim()
                .to_string();
            lines.remove(i);
            let header = if rng.chance(50) {
                format!("[{key}]\nx = 1")
            } else {
                format!("[[{key}]]\nvalue = 1")
            };
            lines.push(header.clone().into_bytes());
            return (join(&lines), format!("line {}: became {header:?}", i + 1));
        }
        9 => {
            let at = rng.below(text.len() + 1);
            let bad = *rng.pick(BAD_UTF8);
            let mut t = text.to_vec();
            t.splice(at..at, bad.iter().copied());
            return (t, format!("{bad:x?} at byte {at}"));
        }
        10 => {
            let whole: [&[u8]; 7] = [
                b"",
                b"\n\n  \n",
                b"# only a comment\n",
                b"\xef\xbb\xbf",
                b"\0\0\0",
                b"=",
                b"[",
            ];
            let w = *rng.pick(&whole);
            return (w.to_vec(), format!("whole file {w:?}"));
        }
        11 => {
            let at = rng.below(text.len() + 1);
            let b = *rng.pick(NOISE);
            let mut t = text.to_vec();
            if rng.chance(50) && at < t.len() {
                t[at] = b;
            } else {
                t.insert(at, b);
            }
            return (t, format!("byte {b:#04x} at {at}"));
        }
        12 => {
            let depth = *rng.pick(&[10usize, 100, 1_000, 100_000]);
            let v = format!("deep = {}{}", "[".repeat(depth), "]".repeat(depth));
            let i = rng.below(n + 1);
            lines.insert(i, v.into_bytes());
            return (
                join(&lines),
                format!("array nested {depth} deep at line {}", i + 1),
            );
        }
        13 => {
            let h = headers(&lines);
            if h.is_empty() {
                lines.push(b"[x]\n[x]".to_vec());
            } else {
                let l = lines[*rng.pick(&h)].clone();
                lines.push(l);
            }
            return (join(&lines), "repeated a section header".into());
        }
        14 => {
            let h = headers(&lines);
            let Some(&i) = (!h.is_empty()).then(|| rng.pick(&h)) else {
                return (b"[]".to_vec(), "empty header".into());
            };
            let l = String::from_utf8_lossy(&lines[i]).to_string();
            let new = match rng.below(4) {
                0 if l.starts_with("[[") => l[1..l.len() - 1].to_string(),
                0 | 1 => format!("[{l}]"),
                2 => l.replace(']', ".]"),
                _ => l.replace('[', "[ \"unterminated"),
            };
            lines[i] = new.clone().into_bytes();
            return (join(&lines), format!("line {}: header {new:?}", i + 1));
        }
        15 if !assigns.is_empty() => {
            let i = *rng.pick(&assigns);
            let (key, _) = split_assignment(&lines[i]);
            let bad = *rng.pick(&[
                "\"unterminated",
                "\"bad \\q escape\"",
                "\"control \u{1} char\"",
                "\"\"\"never closed",
                "'''never closed",
                "\"\\uD800\"",
                "\"\\UFFFFFFFF\"",
            ]);
            let long;
            let v = if rng.chance(15) {
                long = format!("\"{}\"", "x".repeat(100_000));
                long.as_str()
            } else {
                bad
            };
            lines[i] = [&key[..], b" ", v.as_bytes()].concat();
            let shown: String = v.chars().take(30).collect();
            return (join(&lines), format!("line {}: string {shown:?}", i + 1));
        }
        16 => {
            let t = if rng.chance(50) {
                String::from_utf8_lossy(text).replace('\n', "\r\n")
            } else {
                String::from_utf8_lossy(text).replacen('\n', "\r", 1 + rng.below(3))
            };
            return (t.into_bytes(), "line endings changed".into());
        }
        17 if !assigns.is_empty() => {
            // A misspelt key: one character dropped.
            let i = *rng.pick(&assigns);
            let (key, value) = split_assignment(&lines[i]);
            let k = String::from_utf8_lossy(&key).trim_start().to_string();
            if k.len() > 3 {
                let at = rng.below(k.len() - 2);
                let mut k2 = k.clone();
                k2.remove(at);
                lines[i] = [k2.as_bytes(), &value[..]].concat();
                return (join(&lines), format!("line {}: key {k2:?}", i + 1));
            }
            (text.to_vec(), String::new())
        }
        18 | 19 if !assigns.is_empty() => {
            // Numbers past every limit, in place of a number (of a number
            // value when there is one).
            let numeric: Vec<usize> = assigns
                .iter()
                .copied()
                .filter(|&i| {
                    let (_, v) = split_assignment(&lines[i]);
                    v.trim_ascii_start().first().is_some_and(u8::is_ascii_digit)
                })
                .collect();
            let i = *rng.pick(if numeric.is_empty() {
                &assigns
            } else {
                &numeric
            });
            let (key, value) = split_assignment(&lines[i]);
            let value = String::from_utf8_lossy(&value).to_string();
            let big = *rng.pick(&[
                "0",
                "-1",
                "4294967296",
                "18446744073709551615",
                "9223372036854775807",
                "99999999999999999999999999",
                "1e400",
                "-0",
            ]);
            let replaced = match value.find(|c: char| c.is_ascii_digit()) {
                Some(d) => {
                    let end = value[d..]
                        .find(|c: char| !c.is_ascii_digit())
                        .map_or(value.len(), |e| d + e);
                    format!("{}{big}{}", &value[..d], &value[end..])
                }
                None => format!(" {big}"),
            };
            lines[i] = [&key[..], replaced.as_bytes()].concat();
            return (join(&lines), format!("line {}: number {big}", i + 1));
        }
        _ => (text.to_vec(), String::new()),
    };
    if out.1.is_empty() {
        // The chosen operation did not apply: fall back to a truncation.
        let at = rng.below(text.len() + 1);
        out = (text[..at].to_vec(), format!("truncated at byte {at}"));
    }
    out
}

/// One to three mutations in a row.
fn mutate_toml_n(rng: &mut Rng, text: &[u8]) -> (Vec<u8>, String) {
    let mut t = text.to_vec();
    let mut what = Vec::new();
    let times = *rng.pick(&[1, 1, 1, 2, 3]);
    for _ in 0..times {
        let (next, w) = mutate_toml(rng, &t);
        t = next;
        what.push(w);
    }
    (t, what.join("; "))
}

// ---------------------------------------------------------------------------
// Result-file mutations

fn valid_line(rng: &mut Rng) -> String {
    let name = *rng.pick(&["created", "errno", "lat"]);
    let unit = *rng.pick(&["", "cgroups", "ms"]);
    let reason = *rng.pick(&["", "mkdir: No space left on device", "a \"quote\"\nnewline"]);
    let log = *rng.pick(&["hello", "", "ünïcödé", "tab\there"]);
    let l = match rng.below(6) {
        0 => ResultLine::metric(
            name,
            serde_json::Value::from(rng.below(100_000)),
            Some(unit),
        ),
        1 => ResultLine::metric("v", serde_json::Value::from("1.9 é"), None),
        2 => ResultLine::series("lat", rng.below(1000) as f64, 0.25, "dying memcgs", "ms"),
        3 => ResultLine::outcome(*rng.pick(&Verdict::ALL), reason),
        _ => ResultLine::log(log),
    };
    l.to_json().unwrap()
}

/// A bad (or at least changed) result line.
fn bad_line(rng: &mut Rng, valid: &str) -> (Vec<u8>, String) {
    let b = valid.as_bytes();
    match rng.below(12) {
        0 => {
            let at = rng.below(b.len());
            (b[..at].to_vec(), format!("truncated at byte {at}"))
        }
        1 => {
            let v = *rng.pick(&[
                "not json",
                "Segmentation fault (core dumped)",
                "{",
                "}",
                "[1,2]",
                "null",
                "42",
                "\"text\"",
                "{}",
                "{\"\":\"\"}",
                "{\"metric\":\"m\",}",
                "{'log':'single quotes'}",
                "{\"log\":\"x\"} trailing",
            ]);
            (v.as_bytes().to_vec(), format!("{v:?}"))
        }
        2 => {
            let o = rng.pick(&Verdict::RESERVED);
            let v = format!("{{\"outcome\":\"{o}\",\"reason\":\"mine\"}}");
            (v.into_bytes(), format!("reserved outcome {o}"))
        }
        3 => {
            let v = *rng.pick(&[
                "{\"outcome\":\"passed\"}",
                "{\"outcome\":\"Reproduced\"}",
                "{\"outcome\":\"\"}",
                "{\"outcome\":1}",
                "{\"outcome\":null,\"reason\":\"x\"}",
                "{\"metric\":\"m\"}",
                "{\"metric\":[1],\"value\":1}",
                "{\"series\":\"s\",\"x\":\"1\",\"y\":2}",
                "{\"series\":\"s\",\"x\":1}",
                "{\"series\":\"s\",\"x\":{\"a\":1},\"y\":2}",
                "{\"log\":{\"nested\":{\"deeper\":[1]}}}",
                "{\"value\":1,\"unit\":\"ms\"}",
            ]);
            (v.as_bytes().to_vec(), format!("wrong types {v}"))
        }
        4 => {
            let v = *rng.pick(&[
                "{\"metric\":\"m\",\"value\":1e999}",
                "{\"series\":\"s\",\"x\":1e400,\"y\":1}",
                "{\"metric\":\"m\",\"value\":123456789012345678901234567890}",
                "{\"series\":\"s\",\"x\":-1e308,\"y\":1e308}",
                "{\"metric\":\"m\",\"value\":-0}",
                "{\"metric\":\"m\",\"value\":NaN}",
                "{\"series\":\"s\",\"x\":Infinity,\"y\":1}",
            ]);
            (v.as_bytes().to_vec(), format!("numbers {v}"))
        }
        5 => {
            let at = rng.below(b.len() + 1);
            let bad = *rng.pick(BAD_UTF8);
            let mut t = b.to_vec();
            t.splice(at..at, bad.iter().copied());
            (t, format!("{bad:x?} at byte {at}"))
        }
        6 => {
            let depth = *rng.pick(&[10usize, 200, 100_000]);
            let v = format!(
                "{{\"log\":\"x\",\"deep\":{}{}}}",
                "[".repeat(depth),
                "]".repeat(depth)
            );
            (v.into_bytes(), format!("nested {depth} deep"))
        }
        7 => {
            let v = format!("{{\"log\":\"{}\"}}", "y".repeat(1 << 20));
            let cut = v.len() - rng.below(3);
            (v.as_bytes()[..cut].to_vec(), "a 1 MiB line".into())
        }
        8 => {
            let v = b"{\"log\":\"a\0b\"}\0".to_vec();
            (v, "NUL bytes".into())
        }
        9 => {
            // Extra keys are allowed: this line stays valid.
            let v = valid.replacen('{', "{\"extra\":{\"k\":[1,2]},", 1);
            (v.into_bytes(), "extra key".into())
        }
        10 => {
            let at = rng.below(b.len() + 1);
            // Not `\n`: that would make two lines.
            let c = *rng.pick(&NOISE[..NOISE.len() - 1]);
            let mut t = b.to_vec();
            t.insert(at, c);
            (t, format!("byte {c:#04x} at {at}"))
        }
        _ => {
            let v = "{\"outcome\":\"reproduced\",\"outcome\":\"crashed\"}";
            (v.as_bytes().to_vec(), "duplicate keys".into())
        }
    }
}

/// A result file of valid lines with some changed, deleted, duplicated or
/// blank; `changed[i]` says whether line `i + 1` may be rejected.
fn result_file(rng: &mut Rng) -> (Vec<u8>, Vec<bool>, String) {
    let mut lines: Vec<(Vec<u8>, bool)> = (0..2 + rng.below(10))
        .map(|_| {
            if rng.chance(10) {
                (Vec::new(), false)
            } else {
                (valid_line(rng).into_bytes(), false)
            }
        })
        .collect();
    let mut what = Vec::new();
    if rng.chance(4) {
        let whole = *rng.pick(&[&b""[..], b"\n\n\n", b"\xff\xfe", b"\0"]);
        return (
            whole.to_vec(),
            vec![true; 4],
            format!("whole file {whole:?}"),
        );
    }
    for _ in 0..1 + rng.below(3) {
        let i = rng.below(lines.len());
        match rng.below(5) {
            0 => {
                lines.remove(i);
                what.push(format!("deleted line {}", i + 1));
                if lines.is_empty() {
                    lines.push((Vec::new(), false));
                }
            }
            1 => {
                let l = lines[i].clone();
                lines.insert(i, l);
                what.push(format!("duplicated line {}", i + 1));
            }
            _ => {
                let valid = String::from_utf8_lossy(&lines[i].0).to_string();
                let valid = if valid.is_empty() {
                    valid_line(rng)
                } else {
                    valid
                };
                let (bad, w) = bad_line(rng, &valid);
                lines[i] = (bad, true);
                what.push(format!("line {}: {w}", i + 1));
            }
        }
    }
    let sep: &[u8] = if rng.chance(20) { b"\r\n" } else { b"\n" };
    let mut text: Vec<u8> = Vec::new();
    for (l, _) in &lines {
        text.extend_from_slice(l);
        text.extend_from_slice(sep);
    }
    if rng.chance(30) {
        text.truncate(text.len() - sep.len());
    }
    let changed = lines.iter().map(|(_, c)| *c).collect();
    (text, changed, what.join("; "))
}

// ---------------------------------------------------------------------------
// The run

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    Matrix,
    Scenario,
    Kernel,
    Rootfs,
    Kubelet,
    Result,
}

#[derive(Default)]
struct Tally {
    inputs: usize,
    rejected: usize,
    /// Each problem with the input that shows it.
    failures: Vec<String>,
    /// Distinct messages (digits blanked), for reading by hand.
    messages: BTreeMap<String, usize>,
}

impl Tally {
    fn note(&mut self, msg: &str) {
        let shape: String = msg
            .chars()
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .take(160)
            .collect();
        *self.messages.entry(shape).or_default() += 1;
    }
}

fn show(input: &[u8]) -> String {
    let s = String::from_utf8_lossy(input);
    if s.len() > 1500 {
        let head: String = s.chars().take(1500).collect();
        format!("{head}... ({} bytes)", input.len())
    } else {
        s.into_owned()
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-text panic)".into())
}

/// Whether `err` starts with `path:LINE:COLUMN: ` with LINE within the
/// text (or one past its end) and a message after it.
fn located(err: &str, path: &Path, text: &[u8]) -> Result<(), String> {
    let prefix = format!("{}:", path.display());
    let rest = err
        .strip_prefix(&prefix)
        .ok_or_else(|| format!("does not start with `{prefix}`"))?;
    let mut parts = rest.splitn(3, ':');
    let line: usize = parts
        .next()
        .and_then(|l| l.parse().ok())
        .ok_or("no line number")?;
    let col: usize = parts
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or("no column")?;
    let msg = parts.next().unwrap_or("");
    let lines = text.iter().filter(|b| **b == b'\n').count() + 1;
    if line == 0 || line > lines + 1 || col == 0 {
        return Err(format!(
            "line {line}, column {col} not in a {lines}-line file"
        ));
    }
    if !msg.starts_with(' ') || msg.trim().is_empty() {
        return Err("no message after the location".into());
    }
    Ok(())
}

struct Case<'a> {
    kind: Kind,
    source: &'a str,
    what: &'a str,
    input: &'a [u8],
}

/// Runs `parse` on a case: a panic, or a rejection `check` refuses, is a
/// failure; `parse` returns `Err(message)` for a rejection.
fn run_case(
    tally: &mut Tally,
    case: Case,
    parse: impl FnOnce() -> Result<(), String>,
    check: impl FnOnce(&str) -> Result<(), String>,
) {
    tally.inputs += 1;
    let fail = |why: String| {
        format!(
            "{:?} from {} ({}): {why}\n--- input ---\n{}\n-------------",
            case.kind,
            case.source,
            case.what,
            show(case.input)
        )
    };
    match catch_unwind(AssertUnwindSafe(parse)) {
        Ok(Ok(())) => {}
        Ok(Err(msg)) => {
            tally.rejected += 1;
            tally.note(&msg);
            if let Err(why) = check(&msg) {
                tally.failures.push(fail(format!("{why}: {msg}")));
            }
        }
        Err(p) => tally
            .failures
            .push(fail(format!("PANIC: {}", panic_text(p)))),
    }
}

/// An accepted time limit must make a deadline (the runner adds it to
/// `Instant::now()`, which panics past what the clock holds).
fn deadline(secs: u64) {
    std::time::Instant::now()
        .checked_add(std::time::Duration::from_secs(secs))
        .unwrap_or_else(|| panic!("a time limit of {secs} s was accepted"));
}

/// Writes `bytes` as `path`, replacing what was there.
fn put(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn fuzz_matrix(rng: &mut Rng, cases: usize, tmp: &Path, tally: &mut Tally) {
    let scenarios: BTreeMap<String, Scenario> = scenario::list(&root().join("scenarios"))
        .unwrap()
        .into_iter()
        .map(|s| s.unwrap())
        .map(|s| (s.name().to_string(), s))
        .collect();
    let mut sources = vec![root().join("matrix.toml")];
    sources.extend(toml_files(&root().join("ci")));
    let texts: Vec<(String, Vec<u8>)> = sources
        .iter()
        .map(|p| (p.display().to_string(), std::fs::read(p).unwrap()))
        .collect();
    for (name, t) in &texts {
        let path = tmp.join("matrix.toml");
        put(&path, t);
        let m = load_matrix(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        m.cells(&scenarios)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for _ in 0..cases {
        let (source, text) = rng.pick(&texts);
        let (input, what) = mutate_toml_n(rng, text);
        let path = tmp.join("matrix.toml");
        put(&path, &input);
        run_case(
            tally,
            Case {
                kind: Kind::Matrix,
                source,
                what: &what,
                input: &input,
            },
            || {
                let m = load_matrix(&path).map_err(|e| e.to_string())?;
                for name in m.file.profile.keys().chain(["default".to_string()].iter()) {
                    let p = m.profile(name).map_err(|e| e.to_string())?;
                    deadline(p.boot_timeout_s);
                }
                for c in m.cells(&scenarios).map_err(|e| e.to_string())? {
                    deadline(c.timeout_s.unwrap_or(c.scenario.manifest.timeout_s));
                }
                Ok(())
            },
            |e| located(e, &path, &input),
        );
    }
}

fn fuzz_scenarios(rng: &mut Rng, cases: usize, tmp: &Path, tally: &mut Tally) {
    let mut sources = Vec::new();
    for s in scenario::list(&root().join("scenarios")).unwrap() {
        let s = s.unwrap();
        let text = std::fs::read(s.manifest_path()).unwrap();
        sources.push((s.name().to_string(), s.manifest.entry.clone(), text));
    }
    for _ in 0..cases {
        let (name, entry, text) = rng.pick(&sources);
        let (input, what) = mutate_toml_n(rng, text);
        let dir = tmp.join(name);
        let path = dir.join("scenario.toml");
        put(&path, &input);
        put(&dir.join(entry), b"#!/bin/sh\n");
        let source = format!("scenarios/{name}/scenario.toml");
        run_case(
            tally,
            Case {
                kind: Kind::Scenario,
                source: &source,
                what: &what,
                input: &input,
            },
            || {
                let sc = Scenario::load(&dir).map_err(|e| e.to_string())?;
                // Defaults, and each default given back as an override.
                let defaults = sc.params(&[]).map_err(|e| e.to_string())?;
                let again: Vec<(String, String)> = defaults.into_iter().collect();
                sc.params(&again)
                    .unwrap_or_else(|e| panic!("a default is refused as an override: {e}"));
                let _ = sc.cgroup(None);
                deadline(sc.manifest.timeout_s);
                Ok(())
            },
            |e| located(e, &path, &input),
        );
    }
}

/// Kernel, rootfs and kubelet manifests: one file in a folder of its own,
/// read by the function `repro` reads the folder with.
fn fuzz_images(rng: &mut Rng, kind: Kind, cases: usize, tmp: &Path, tally: &mut Tally) {
    let sub = match kind {
        Kind::Kernel => "kernels",
        Kind::Rootfs => "rootfs",
        _ => "kubelet",
    };
    let sources: Vec<(String, Vec<u8>)> = toml_files(&root().join("images").join(sub))
        .iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(p).unwrap(),
            )
        })
        .collect();
    let dir = tmp.join(sub);
    for _ in 0..cases {
        let (file, text) = rng.pick(&sources);
        let (input, what) = mutate_toml_n(rng, text);
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join(file);
        put(&path, &input);
        let stem = file.trim_end_matches(".toml");
        let source = format!("images/{sub}/{file}");
        run_case(
            tally,
            Case {
                kind,
                source: &source,
                what: &what,
                input: &input,
            },
            || {
                match kind {
                    Kind::Kernel => {
                        for m in load_manifests(&dir).map_err(|e| e.to_string())? {
                            if m.kind == repro::images::kernel::KernelKind::Debian {
                                m.query().unwrap_or_else(|e| panic!("checked, then: {e}"));
                            }
                            let _ = m.label();
                        }
                    }
                    Kind::Rootfs => {
                        let named = rootfs::find(&dir, stem).map_err(|e| e.to_string())?;
                        let _ = rootfs::input_hash(&named);
                    }
                    _ => {
                        kubelet::load_all(&dir).map_err(|e| e.to_string())?;
                        let p = kubelet::find(&dir, stem).map_err(|e| e.to_string())?;
                        let _ = p.env(Some(Driver::Systemd));
                        let _ = p.env(None);
                    }
                }
                Ok(())
            },
            |e| located(e, &path, &input),
        );
    }
}

fn fuzz_results(rng: &mut Rng, cases: usize, tally: &mut Tally) {
    for _ in 0..cases {
        let (input, changed, what) = result_file(rng);
        let mut problem = None;
        run_case(
            tally,
            Case {
                kind: Kind::Result,
                source: "generated lines",
                what: &what,
                input: &input,
            },
            || {
                let r = parse_result_bytes(&input);
                for b in &r.bad_lines {
                    if !changed.get(b.number - 1).copied().unwrap_or(false) {
                        problem = Some(format!(
                            "line {} was rejected but not changed: {}",
                            b.number, b.error
                        ));
                    }
                }
                let Some(reason) = r.bad_lines_reason() else {
                    return Ok(());
                };
                let (outcome, why, _) = decide(&ScriptEnd::Exited(0), &r, None, "", &[]);
                if outcome != Outcome::Error || why != reason {
                    problem = Some(format!("decided {outcome:?}: {why}"));
                }
                Err(reason)
            },
            |e| {
                let prefix = format!("{RESULT_FILE} line ");
                let rest = e
                    .strip_prefix(&prefix)
                    .ok_or_else(|| format!("does not start with `{prefix}`"))?;
                let (n, msg) = rest.split_once(": ").ok_or("no `: ` after the number")?;
                n.parse::<usize>().map_err(|_| "no line number")?;
                if msg.trim().is_empty() {
                    return Err("no message".into());
                }
                Ok(())
            },
        );
        if let Some(p) = problem {
            tally.failures.push(format!(
                "Result ({what}): {p}\n--- input ---\n{}\n-------------",
                show(&input)
            ));
        }
    }
}

#[test]
fn malformed_inputs_are_refused_with_their_place_and_never_panic() {
    let seed = env_num("REPRO_FUZZ_SEED", DEFAULT_SEED);
    let cases = env_num("REPRO_FUZZ_CASES", DEFAULT_CASES as u64) as usize;
    let tmp = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let mut tallies: BTreeMap<Kind, Tally> = BTreeMap::new();
    for (i, kind) in [
        Kind::Matrix,
        Kind::Scenario,
        Kind::Kernel,
        Kind::Rootfs,
        Kind::Kubelet,
        Kind::Result,
    ]
    .into_iter()
    .enumerate()
    {
        // A seed per kind: adding cases to one kind leaves the others alone.
        let mut rng = Rng(seed ^ ((i as u64 + 1) << 56));
        let tally = tallies.entry(kind).or_default();
        match kind {
            Kind::Matrix => fuzz_matrix(&mut rng, cases, tmp.path(), tally),
            Kind::Scenario => fuzz_scenarios(&mut rng, cases, tmp.path(), tally),
            Kind::Result => fuzz_results(&mut rng, cases, tally),
            _ => fuzz_images(&mut rng, kind, cases, tmp.path(), tally),
        }
    }
    let mut report = String::new();
    let mut failures = Vec::new();
    let mut total = 0;
    for (kind, t) in &tallies {
        total += t.inputs;
        let _ = writeln!(
            report,
            "{kind:?}: {} inputs, {} rejected, {} accepted, {} failures, {} distinct messages",
            t.inputs,
            t.rejected,
            t.inputs - t.rejected,
            t.failures.len(),
            t.messages.len()
        );
        if std::env::var_os("REPRO_FUZZ_MESSAGES").is_some() {
            for (m, n) in t.messages.iter() {
                let _ = writeln!(report, "    {n:4} × {m}");
            }
        }
        failures.extend(t.failures.iter().cloned());
    }
    eprintln!(
        "seed {seed:#x}, {total} inputs in {:.2?}\n{report}",
        started.elapsed()
    );
    for f in &failures {
        eprintln!("FAILED: {}", f.lines().next().unwrap_or(""));
    }
    assert!(
        failures.is_empty(),
        "{} of {total} inputs failed (seed {seed:#x}); the first ones:\n\n{}",
        failures.len(),
        failures
            .iter()
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    assert!(total >= 1000, "only {total} inputs");
    for (kind, t) in &tallies {
        assert!(
            t.rejected * 2 > t.inputs,
            "{kind:?}: only {} of {} mutated inputs were rejected: the mutations \
             no longer test the parser",
            t.rejected,
            t.inputs
        );
    }
}
