//! `dying-memcgs`: make memory cgroups that die with page cache still charged.
//! Each iteration: mkdir PARENT/<prefix>-<i>, fork a child that joins it and
//! writes then reads its own file under --file-dir (the file is kept, so its
//! pages stay charged to the removed cgroup), reap the child, rmdir. At
//! checkpoints it measures the dying count and the read time of --stat-file.

use crate::fill::is_refusal;
use crate::json::{self, Errno, Num};
use crate::memstat::{self, TimingMs};
use crate::stats;
use crate::util::{self, Fail, R};
use serde::Serialize;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `nr_dying_descendants` from a cgroup v2 `cgroup.stat`.
pub fn parse_nr_dying(cgroup_stat: &str) -> Option<u64> {
    stat_field(cgroup_stat, "nr_dying_descendants")
}

/// A `key value` field of memory.stat / cgroup.stat.
pub fn stat_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// v1 estimate: bytes charged below `parent` but not to `parent` itself, in
/// units of one iteration's file (its whole pages).
pub fn v1_dying_estimate(memory_stat: &str, file_bytes: u64) -> Option<u64> {
    let total = stat_field(memory_stat, "total_cache")?;
    let own = stat_field(memory_stat, "cache")?;
    let per = file_bytes.div_ceil(4096).max(1) * 4096;
    Some(total.saturating_sub(own) / per)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    CgroupStat,
    V1Estimate,
}

impl Method {
    pub fn describe(self) -> &'static str {
        match self {
            Method::CgroupStat => "cgroup.stat nr_dying_descendants",
            Method::V1Estimate => {
                "estimate: (total_cache - cache) of the parent's memory.stat / pages per file"
            }
        }
    }
}

/// One checkpoint of `dying-memcgs`: the dying count and the read times.
#[derive(Debug, Serialize)]
pub struct Checkpoint {
    pub iterations: u64,
    pub dying: Option<u64>,
    #[serde(flatten)]
    pub timing: TimingMs,
    pub ms_per_iteration: Option<Num>,
    pub elapsed_s: Num,
}

/// `dying-memcgs`' answer.
#[derive(Debug, Serialize)]
pub struct DyingAnswer {
    pub parent: String,
    pub iterations: u64,
    /// `count` or `refused`.
    pub stopped_by: &'static str,
    #[serde(flatten)]
    pub errno: Errno,
    pub elapsed_s: Num,
    pub ms_per_iteration: Option<Num>,
    pub dying_method: &'static str,
    pub dying_start: Option<u64>,
    pub dying_end: Option<u64>,
    pub stat_file: String,
    pub reads: u64,
    pub baseline_median_ms: Option<Num>,
    pub final_median_ms: Num,
    pub final_p99_ms: Num,
    pub checkpoints: Vec<Checkpoint>,
}

fn measure_dying(parent: &Path, method: Method, file_bytes: u64) -> R<Option<u64>> {
    Ok(match method {
        Method::CgroupStat => parse_nr_dying(&util::read_string(&parent.join("cgroup.stat"))?),
        Method::V1Estimate => {
            v1_dying_estimate(&util::read_string(&parent.join("memory.stat"))?, file_bytes)
        }
    })
}

fn write_and_read(path: &Path, bytes: usize) -> i32 {
    let data = vec![0x5au8; bytes];
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(path)?;
        f.write_all(&data)?;
        drop(f);
        let mut back = Vec::with_capacity(bytes);
        std::fs::File::open(path)?.read_to_end(&mut back)?;
        Ok(())
    })();
    match res {
        Ok(()) => 0,
        Err(e) => e.raw_os_error().unwrap_or(255),
    }
}

pub fn cmd_dying_memcgs(args: &[String]) -> R<()> {
    let p = crate::args::parse(
        args,
        &[
            ("parent", true),
            ("count", true),
            ("prefix", true),
            ("file-dir", true),
            ("file-kib", true),
            ("checkpoint", true),
            ("stat-file", true),
            ("reads", true),
            ("no-emit", false),
        ],
    )?;
    p.no_positional()?;
    let parent = PathBuf::from(p.required("parent")?);
    let count = p
        .u64_opt("count")?
        .ok_or_else(|| Fail::usage("missing --count"))?;
    let prefix = p.get_nonempty("prefix").unwrap_or("dying");
    let file_dir = PathBuf::from(p.required("file-dir")?);
    let file_bytes = p.u64_or("file-kib", 4)? * 1024;
    let checkpoint = p.u64_or("checkpoint", (count / 10).max(1))?;
    let stat_file = p
        .get_nonempty("stat-file")
        .map(PathBuf::from)
        .unwrap_or_else(|| parent.join("memory.stat"));
    let reads = p.u64_or("reads", 20)?.max(1);
    let emit = !p.has("no-emit") && std::env::var_os("REPRO_RESULT").is_some_and(|v| !v.is_empty());

    if !parent.join("cgroup.procs").exists() {
        return Err(Fail::failed(format!(
            "--parent {}: not a cgroup directory",
            parent.display()
        )));
    }
    let method = if parent.join("cgroup.stat").exists() {
        Method::CgroupStat
    } else {
        Method::V1Estimate
    };
    std::fs::create_dir_all(&file_dir)
        .map_err(|e| Fail::os(format!("mkdir {}", file_dir.display()), &e))?;

    let mut checkpoints: Vec<Checkpoint> = Vec::new();
    let t0 = Instant::now();
    let mut last_cp = (0u64, t0);
    let mut baseline: Option<f64> = None;
    let mut last_summary = None;
    let mut last_dying: Option<u64> = None;
    let mut first_dying: Option<u64> = None;
    let mut cp = |done: u64, last_cp: &mut (u64, Instant)| -> R<()> {
        let dying = measure_dying(&parent, method, file_bytes)?;
        let (ms, _) = memstat::time_reads(&stat_file, reads)?;
        let s = stats::summarize(&ms).expect("reads >= 1");
        let now = Instant::now();
        let per_iter = if done > last_cp.0 {
            Some((now - last_cp.1).as_secs_f64() * 1e3 / (done - last_cp.0) as f64)
        } else {
            None
        };
        *last_cp = (done, now);
        if emit {
            if let Some(d) = dying {
                json::emit_series(
                    "nr_dying",
                    done as f64,
                    d as f64,
                    "iterations",
                    "dying memcgs",
                )?;
            }
            let x = dying.unwrap_or(done) as f64;
            let xu = if dying.is_some() {
                "dying memcgs"
            } else {
                "iterations"
            };
            json::emit_series(
                "memory_stat_median_ms",
                x,
                memstat::round_ms(s.median),
                xu,
                "ms",
            )?;
            json::emit_series("memory_stat_p99_ms", x, memstat::round_ms(s.p99), xu, "ms")?;
            if let Some(ms) = per_iter {
                json::emit_series(
                    "iteration_ms",
                    done as f64,
                    memstat::round_ms(ms),
                    "iterations",
                    "ms",
                )?;
            }
        }
        checkpoints.push(Checkpoint {
            iterations: done,
            dying,
            timing: TimingMs::of(&s),
            ms_per_iteration: per_iter.map(|ms| Num(memstat::round_ms(ms))),
            elapsed_s: Num((now - t0).as_secs_f64()),
        });
        if baseline.is_none() {
            baseline = Some(s.median);
            first_dying = dying;
        }
        last_summary = Some(s);
        last_dying = dying;
        Ok(())
    };

    cp(0, &mut last_cp)?;
    let mut done: u64 = 0;
    let mut stop_errno: Option<i32> = None;
    while done < count {
        let i = done + 1;
        let name = format!("{prefix}-{i}");
        let dir = parent.join(&name);
        if let Err(e) = std::fs::create_dir(&dir) {
            let en = e.raw_os_error().unwrap_or(0);
            if is_refusal(en) {
                stop_errno = Some(en);
                break;
            }
            return Err(Fail::os(format!("mkdir {}", dir.display()), &e));
        }
        let file = file_dir.join(&name);
        let st = util::run_in_cgroup(&dir, || write_and_read(&file, file_bytes as usize))?;
        util::check_child(
            st,
            &format!("write {} from cgroup {}", file.display(), dir.display()),
        )?;
        util::rmdir_retry(&dir).map_err(|e| Fail::os(format!("rmdir {}", dir.display()), &e))?;
        done = i;
        #[allow(clippy::manual_is_multiple_of)] // is_multiple_of needs Rust 1.87; MSRV is 1.80
        if checkpoint > 0 && done % checkpoint == 0 && done < count {
            cp(done, &mut last_cp)?;
        }
    }
    cp(done, &mut last_cp)?;
    let elapsed = t0.elapsed().as_secs_f64();
    let s = last_summary.expect("at least one checkpoint");
    json::print(&DyingAnswer {
        parent: parent.display().to_string(),
        iterations: done,
        stopped_by: if stop_errno.is_some() {
            "refused"
        } else {
            "count"
        },
        errno: Errno::of(stop_errno),
        elapsed_s: Num(elapsed),
        ms_per_iteration: (done > 0).then(|| Num(memstat::round_ms(elapsed * 1e3 / done as f64))),
        dying_method: method.describe(),
        dying_start: first_dying,
        dying_end: last_dying,
        stat_file: stat_file.display().to_string(),
        reads,
        baseline_median_ms: baseline.map(|ms| Num(memstat::round_ms(ms))),
        final_median_ms: Num(memstat::round_ms(s.median)),
        final_p99_ms: Num(memstat::round_ms(s.p99)),
        checkpoints,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_stat() {
        assert_eq!(
            parse_nr_dying("nr_descendants 3\nnr_dying_descendants 1995\n"),
            Some(1995)
        );
        assert_eq!(parse_nr_dying("nr_descendants 3\n"), None);
    }

    #[test]
    fn v1_estimate() {
        let s = "cache 8192\nrss 0\ntotal_cache 4104192\ntotal_rss 0\n";
        // (4104192 - 8192) / 4096 = 1000
        assert_eq!(v1_dying_estimate(s, 4096), Some(1000));
        // 5 KiB files take two pages each
        assert_eq!(v1_dying_estimate(s, 5 * 1024), Some(500));
        assert_eq!(v1_dying_estimate("cache 1\n", 4096), None);
        // `cache` must not match `total_cache` or `cache_x`
        assert_eq!(stat_field("total_cache 5\ncache 2\n", "cache"), Some(2));
    }

    #[test]
    fn answer_keys_and_numbers() {
        let s = stats::summarize(&[1.0, 2.0, 4.0]).unwrap();
        let a = DyingAnswer {
            parent: "/p".into(),
            iterations: 10,
            stopped_by: "count",
            errno: Errno::of(None),
            elapsed_s: Num(2.0),
            ms_per_iteration: Some(Num(200.0)),
            dying_method: Method::CgroupStat.describe(),
            dying_start: Some(0),
            dying_end: None,
            stat_file: "/p/memory.stat".into(),
            reads: 3,
            baseline_median_ms: None,
            final_median_ms: Num(0.5),
            final_p99_ms: Num(4.0),
            checkpoints: vec![Checkpoint {
                iterations: 0,
                dying: Some(7),
                timing: TimingMs::of(&s),
                ms_per_iteration: None,
                elapsed_s: Num(0.25),
            }],
        };
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"parent":"/p","iterations":10,"stopped_by":"count","errno":null,"errno_name":null,"error":null,"elapsed_s":2,"ms_per_iteration":200,"dying_method":"cgroup.stat nr_dying_descendants","dying_start":0,"dying_end":null,"stat_file":"/p/memory.stat","reads":3,"baseline_median_ms":null,"final_median_ms":0.5,"final_p99_ms":4,"checkpoints":[{"iterations":0,"dying":7,"median_ms":2,"p99_ms":3.96,"min_ms":1,"max_ms":4,"mean_ms":2.333333,"ms_per_iteration":null,"elapsed_s":0.25}]}"#
        );
    }
}
