//! `zombie-cron`: a cron runner like supercronic before v0.2.31, as PID 1 of a
//! new PID namespace inside a pids cgroup. Each tick it forks a job; the job
//! forks a grandchild that outlives it, then exits. The runner waits only for
//! the job pid (never -1), so orphaned grandchildren, re-parented to PID 1 of
//! the namespace, stay zombies until fork fails. With `--init tini`,
//! tini-static is PID 1 and reaps them.
//!
//! `zombie-cron-runner` is the runner alone (what tini executes).

use crate::json::{self, Errno, Num};
use crate::procscan;
use crate::util::{self, Fail, R};
use serde::Serialize;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `zombie-cron`'s answer.
#[derive(Debug, Serialize)]
pub struct ZombieAnswer<'a> {
    pub init: &'a str,
    pub interval_ms: u64,
    pub pids_max: Option<String>,
    pub jobs: u64,
    /// `fork-failure`, `init-exited` or `time-limit`.
    pub stopped_by: &'static str,
    pub fork_failed: bool,
    pub failed_in: Option<String>,
    #[serde(flatten)]
    pub errno: Errno,
    pub zombies_at_end: u64,
    pub zombies_max: u64,
    pub procs_at_end: u64,
    pub pids_current_at_end: Option<u64>,
    pub samples: u64,
    pub elapsed_s: Num,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// number of jobs completed so far
    Job(u64),
    /// a fork (or exec) failed: who, errno, jobs completed before it
    Fail { who: String, errno: i32, jobs: u64 },
}

pub fn parse_report(line: &str) -> Option<Report> {
    let f: Vec<&str> = line.split_whitespace().collect();
    match f.as_slice() {
        ["job", n] => Some(Report::Job(n.parse().ok()?)),
        ["fail", who, e, n] => Some(Report::Fail {
            who: who.to_string(),
            errno: e.parse().ok()?,
            jobs: n.parse().ok()?,
        }),
        _ => None,
    }
}

fn report(fd: i32, line: &str) {
    util::write_fd(fd, line.as_bytes());
}

fn park() -> ! {
    loop {
        // SAFETY: pause() just sleeps until a signal.
        unsafe {
            libc::pause();
        }
    }
}

/// The cron loop. Never returns: after a failure it parks until killed.
pub fn run_cron(fd: i32, interval: Duration, grandchild: Duration) -> ! {
    let mut jobs: u64 = 0;
    let mut next = Instant::now();
    loop {
        next += interval;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
        let job = match util::fork() {
            Ok(p) => p,
            Err(e) => {
                report(
                    fd,
                    &format!("fail cron {} {jobs}\n", e.raw_os_error().unwrap_or(0)),
                );
                park();
            }
        };
        if job == 0 {
            // The job: start a grandchild that outlives us, then exit at once.
            match util::fork() {
                Ok(0) => {
                    std::thread::sleep(grandchild);
                    util::exit_now(0);
                }
                Ok(_) => util::exit_now(0),
                Err(e) => util::exit_now(e.raw_os_error().unwrap_or(255).clamp(1, 255)),
            }
        }
        // supercronic (< v0.2.31) waits for the job it started, nothing else.
        match util::wait_pid(job) {
            Ok(st) => {
                if libc::WIFEXITED(st) && libc::WEXITSTATUS(st) != 0 {
                    report(fd, &format!("fail job {} {jobs}\n", libc::WEXITSTATUS(st)));
                    park();
                }
            }
            Err(e) => {
                report(
                    fd,
                    &format!("fail wait {} {jobs}\n", e.raw_os_error().unwrap_or(0)),
                );
                park();
            }
        }
        jobs += 1;
        report(fd, &format!("job {jobs}\n"));
    }
}

pub fn cmd_runner(args: &[String]) -> R<()> {
    let p = crate::args::parse(
        args,
        &[
            ("report-fd", true),
            ("interval-ms", true),
            ("grandchild-ms", true),
        ],
    )?;
    p.no_positional()?;
    let fd = p
        .u64_opt("report-fd")?
        .ok_or_else(|| Fail::usage("missing --report-fd"))? as i32;
    let interval = Duration::from_millis(p.u64_or("interval-ms", 50)?);
    let gc = Duration::from_millis(p.u64_or("grandchild-ms", 20)?);
    run_cron(fd, interval, gc)
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

pub fn cmd_zombie_cron(args: &[String]) -> R<()> {
    let p = crate::args::parse(
        args,
        &[
            ("cgroup", true),
            ("interval-ms", true),
            ("max-seconds", true),
            ("init", true),
            ("tini", true),
            ("sample-ms", true),
            ("grandchild-ms", true),
            ("no-emit", false),
        ],
    )?;
    p.no_positional()?;
    let cgroup = p.get_nonempty("cgroup").map(PathBuf::from);
    let interval_ms = p.u64_or("interval-ms", 50)?;
    let max_seconds = p.f64_or("max-seconds", 120.0)?;
    let init = p.choice("init", &["none", "tini"], "none")?;
    let tini = p.get_nonempty("tini").unwrap_or("/usr/bin/tini-static");
    let sample_ms = p.u64_or("sample-ms", 500)?.max(10);
    let gc_ms = p.u64_or("grandchild-ms", 20)?;
    let emit = !p.has("no-emit") && std::env::var_os("REPRO_RESULT").is_some_and(|v| !v.is_empty());

    if let Some(cg) = &cgroup {
        if !cg.join("cgroup.procs").exists() {
            return Err(Fail::failed(format!(
                "--cgroup {}: no cgroup.procs there",
                cg.display()
            )));
        }
    }
    if init == "tini" && !Path::new(tini).exists() {
        return Err(Fail::unavailable(format!(
            "{tini} not found (needed for --init tini)"
        )));
    }
    let exe = std::env::current_exe().map_err(|e| Fail::os("readlink /proc/self/exe", &e))?;

    // Everything the child needs is prepared before fork.
    let (rep_r, rep_w) = util::pipe(false)?;
    util::set_cloexec(rep_r);
    let (go_r, go_w) = util::pipe(true)?;
    let exec_argv: Vec<CString> = [
        tini.as_bytes(),
        b"--",
        exe.as_os_str().as_bytes(),
        b"zombie-cron-runner",
        b"--report-fd",
        rep_w.to_string().as_bytes(),
        b"--interval-ms",
        interval_ms.to_string().as_bytes(),
        b"--grandchild-ms",
        gc_ms.to_string().as_bytes(),
    ]
    .iter()
    .map(|s| CString::new(*s).expect("no NUL"))
    .collect();
    let mut exec_ptrs: Vec<*const libc::c_char> = exec_argv.iter().map(|c| c.as_ptr()).collect();
    exec_ptrs.push(std::ptr::null());

    // SAFETY: unshare with a constant flag.
    if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(Fail::unavailable(format!(
            "unshare(CLONE_NEWPID): {}",
            util::err_text(&e)
        )));
    }
    let child = util::fork().map_err(|e| Fail::os("fork", &e))?;
    if child == 0 {
        // PID 1 of the new namespace.
        util::close(rep_r);
        util::close(go_w);
        if !util::wait_byte(go_r) {
            util::exit_now(1);
        }
        util::close(go_r);
        if init == "none" {
            run_cron(
                rep_w,
                Duration::from_millis(interval_ms),
                Duration::from_millis(gc_ms),
            );
        }
        // SAFETY: argv is a NULL-terminated array of valid C strings.
        unsafe {
            libc::execv(exec_ptrs[0], exec_ptrs.as_ptr());
        }
        report(rep_w, &format!("fail exec {} 0\n", util::last_errno()));
        util::exit_now(127);
    }
    util::close(rep_w);
    util::close(go_r);
    let kill_child = || {
        // SAFETY: signalling and reaping our own child.
        unsafe {
            libc::kill(child, libc::SIGKILL);
        }
        let _ = util::wait_pid(child);
    };
    if let Some(cg) = &cgroup {
        if let Err(f) = util::join_cgroup(cg, child) {
            kill_child();
            return Err(f);
        }
    }
    let pids_max = cgroup.as_ref().and_then(|c| read_trim(&c.join("pids.max")));
    let t0 = Instant::now();
    util::write_fd(go_w, b"g");
    util::close(go_w);

    let deadline = t0 + Duration::from_secs_f64(max_seconds);
    let sample_every = Duration::from_millis(sample_ms);
    let mut next_sample = t0;
    let mut jobs: u64 = 0;
    let mut fail: Option<(String, i32)> = None;
    let mut eof = false;
    let mut pending = String::new();
    let mut zombies_max: u64 = 0;
    let mut samples: u64 = 0;
    let mut last = procscan::TreeCount::default();
    let mut last_pids: Option<u64> = None;

    let sample =
        |now: Instant, zmax: &mut u64, samples: &mut u64| -> (procscan::TreeCount, Option<u64>) {
            let c = procscan::count_tree(&procscan::scan(), child);
            let pc = cgroup
                .as_ref()
                .and_then(|cg| read_trim(&cg.join("pids.current")))
                .and_then(|s| s.parse().ok());
            *zmax = (*zmax).max(c.zombies);
            *samples += 1;
            if emit {
                let t = ((now - t0).as_secs_f64() * 1e3).round() / 1e3;
                let _ = json::emit_series("zombies", t, c.zombies as f64, "s", "zombies");
                if let Some(pc) = pc {
                    let _ = json::emit_series("pids_current", t, pc as f64, "s", "pids");
                }
            }
            (c, pc)
        };

    let stopped_by = loop {
        let now = Instant::now();
        if now >= next_sample {
            (last, last_pids) = sample(now, &mut zombies_max, &mut samples);
            while next_sample <= now {
                next_sample += sample_every;
            }
        }
        if fail.is_some() {
            break "fork-failure";
        }
        if eof {
            break "init-exited";
        }
        if now >= deadline {
            break "time-limit";
        }
        let wait = next_sample.min(deadline).saturating_duration_since(now);
        let mut pfd = libc::pollfd {
            fd: rep_r,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, wait.as_millis().min(i32::MAX as u128) as i32) };
        if r > 0 {
            let mut buf = [0u8; 4096];
            // SAFETY: buf is a live buffer.
            let n = unsafe { libc::read(rep_r, buf.as_mut_ptr().cast(), buf.len()) };
            if n == 0 {
                eof = true;
            } else if n > 0 {
                pending.push_str(&String::from_utf8_lossy(&buf[..n as usize]));
                while let Some(i) = pending.find('\n') {
                    let line: String = pending.drain(..=i).collect();
                    match parse_report(&line) {
                        Some(Report::Job(n)) => jobs = n,
                        Some(Report::Fail {
                            who,
                            errno,
                            jobs: n,
                        }) => {
                            jobs = n;
                            if fail.is_none() {
                                fail = Some((who, errno));
                                // Sample right at the failure, before anything is killed.
                                next_sample = Instant::now();
                            }
                        }
                        None => {}
                    }
                }
            }
        }
    };
    let elapsed = t0.elapsed().as_secs_f64();
    kill_child();
    util::close(rep_r);

    if let Some((who, e)) = &fail {
        if who == "exec" {
            return Err(Fail::failed(format!(
                "exec {tini} in the new PID namespace: {}",
                util::strerror(*e)
            )));
        }
    }
    let errno = Errno::of(fail.as_ref().map(|(_, e)| *e));
    json::print(&ZombieAnswer {
        init,
        interval_ms,
        pids_max,
        jobs,
        stopped_by,
        fork_failed: fail.is_some(),
        failed_in: fail.map(|(who, _)| who),
        errno,
        zombies_at_end: last.zombies,
        zombies_max,
        procs_at_end: last.procs,
        pids_current_at_end: last_pids,
        samples,
        elapsed_s: Num(elapsed),
    })?;
    if stopped_by == "init-exited" {
        return Err(Fail::failed(
            "the namespace's init exited before any fork failed",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports() {
        assert_eq!(parse_report("job 12\n"), Some(Report::Job(12)));
        assert_eq!(
            parse_report("fail job 11 250"),
            Some(Report::Fail {
                who: "job".into(),
                errno: 11,
                jobs: 250
            })
        );
        assert_eq!(parse_report("fail job x 1"), None);
        assert_eq!(parse_report("hello"), None);
    }
}
