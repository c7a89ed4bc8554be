//! `memstat-time`: time N whole-file reads (open, read to EOF, close, like
//! `cat`) of a file such as memory.stat.

use crate::json::{self, Num};
use crate::stats::{self, Summary};
use crate::util::{Fail, R};
use serde::Serialize;
use std::io::Read;
use std::path::Path;
use std::time::Instant;

/// Read `path` `reads` times; returns per-read milliseconds and the last size.
pub fn time_reads(path: &Path, reads: u64) -> R<(Vec<f64>, usize)> {
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut ms = Vec::with_capacity(reads as usize);
    let mut bytes = 0;
    for _ in 0..reads {
        buf.clear();
        let t = Instant::now();
        let mut f = std::fs::File::open(path)
            .map_err(|e| Fail::os(format!("open {}", path.display()), &e))?;
        f.read_to_end(&mut buf)
            .map_err(|e| Fail::os(format!("read {}", path.display()), &e))?;
        drop(f);
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        bytes = buf.len();
    }
    Ok((ms, bytes))
}

/// Milliseconds rounded to whole nanoseconds (the clock's resolution).
pub fn round_ms(ms: f64) -> f64 {
    (ms * 1e6).round() / 1e6
}

/// A timing summary in an answer, milliseconds rounded by [`round_ms`].
/// Embed it with `#[serde(flatten)]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TimingMs {
    pub median_ms: Num,
    pub p99_ms: Num,
    pub min_ms: Num,
    pub max_ms: Num,
    pub mean_ms: Num,
}

impl TimingMs {
    pub fn of(s: &Summary) -> TimingMs {
        TimingMs {
            median_ms: Num(round_ms(s.median)),
            p99_ms: Num(round_ms(s.p99)),
            min_ms: Num(round_ms(s.min)),
            max_ms: Num(round_ms(s.max)),
            mean_ms: Num(round_ms(s.mean)),
        }
    }
}

/// `memstat-time`'s answer.
#[derive(Debug, Serialize)]
pub struct MemstatAnswer<'a> {
    pub file: &'a str,
    pub reads: u64,
    pub bytes: u64,
    #[serde(flatten)]
    pub timing: TimingMs,
}

pub fn cmd_memstat_time(args: &[String]) -> R<()> {
    let p = crate::args::parse(args, &[("file", true), ("reads", true)])?;
    p.no_positional()?;
    let file = p.required("file")?;
    let reads = p.u64_or("reads", 20)?;
    if reads == 0 {
        return Err(Fail::usage("--reads must be at least 1"));
    }
    let (ms, bytes) = time_reads(Path::new(file), reads)?;
    let s = stats::summarize(&ms).expect("reads >= 1");
    json::print(&MemstatAnswer {
        file,
        reads,
        bytes: bytes as u64,
        timing: TimingMs::of(&s),
    })
}
