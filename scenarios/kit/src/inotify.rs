//! `inotify-exhaust`: create inotify instances as one (non-root) user until the
//! kernel refuses; the limit `fs.inotify.max_user_instances` is per user.

use crate::json::{self, Errno};
use crate::util::{self, Fail, R};
use serde::Serialize;
use std::path::Path;

pub const MAX_USER_INSTANCES: &str = "/proc/sys/fs/inotify/max_user_instances";

/// `inotify-exhaust`'s answer.
#[derive(Debug, Serialize)]
pub struct InotifyAnswer {
    pub uid: u32,
    pub max_user_instances: u64,
    pub created: u64,
    /// `refused` or `max`.
    pub stopped_by: &'static str,
    #[serde(flatten)]
    pub errno: Errno,
    pub rlimit_nofile: u64,
}

/// Parsed child report: "done CREATED ERRNO RLIMIT" or "err STEP ERRNO".
#[derive(Debug, PartialEq, Eq)]
pub enum ChildReport {
    Done {
        created: u64,
        errno: i32,
        rlimit: u64,
    },
    Err {
        step: String,
        errno: i32,
    },
}

pub fn parse_child(s: &str) -> Option<ChildReport> {
    let f: Vec<&str> = s.split_whitespace().collect();
    match f.as_slice() {
        ["done", c, e, r] => Some(ChildReport::Done {
            created: c.parse().ok()?,
            errno: e.parse().ok()?,
            rlimit: r.parse().ok()?,
        }),
        ["err", step, e] => Some(ChildReport::Err {
            step: step.to_string(),
            errno: e.parse().ok()?,
        }),
        _ => None,
    }
}

fn child(fd: i32, uid: u32, want_fds: u64, max: Option<u64>) -> ! {
    // Lift RLIMIT_NOFILE (as root, before dropping privileges) so that the
    // inotify instance limit, not the fd limit, is what stops the loop.
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: rl is a valid out-pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) };
    if rl.rlim_cur < want_fds {
        let new = libc::rlimit {
            rlim_cur: want_fds,
            rlim_max: want_fds.max(rl.rlim_max),
        };
        // SAFETY: valid rlimit struct.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
            rl = new;
        }
    }
    if uid != 0 {
        // SAFETY: plain credential syscalls in a single-threaded child.
        unsafe {
            if libc::setgroups(0, std::ptr::null()) != 0 {
                util::write_fd(
                    fd,
                    format!("err setgroups {}\n", util::last_errno()).as_bytes(),
                );
                util::exit_now(1);
            }
            if libc::setgid(uid) != 0 {
                util::write_fd(
                    fd,
                    format!("err setgid {}\n", util::last_errno()).as_bytes(),
                );
                util::exit_now(1);
            }
            if libc::setuid(uid) != 0 {
                util::write_fd(
                    fd,
                    format!("err setuid {}\n", util::last_errno()).as_bytes(),
                );
                util::exit_now(1);
            }
        }
    }
    let mut created: u64 = 0;
    let mut errno = 0;
    loop {
        if max.is_some_and(|m| created >= m) {
            break;
        }
        // SAFETY: plain syscall; the fds are deliberately kept open until exit.
        let r = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
        if r < 0 {
            errno = util::last_errno();
            break;
        }
        created += 1;
    }
    util::write_fd(
        fd,
        format!("done {created} {errno} {}\n", rl.rlim_cur).as_bytes(),
    );
    util::exit_now(0)
}

pub fn cmd_inotify_exhaust(args: &[String]) -> R<()> {
    let p = crate::args::parse(args, &[("uid", true), ("max", true)])?;
    p.no_positional()?;
    let uid = p.u64_or("uid", 65534)? as u32;
    let max = p.u64_opt("max")?.filter(|&m| m > 0);
    let limit_text = util::read_string(Path::new(MAX_USER_INSTANCES))?;
    let limit: u64 = limit_text.trim().parse().map_err(|_| {
        Fail::failed(format!(
            "{MAX_USER_INSTANCES}: unexpected content {limit_text:?}"
        ))
    })?;
    let want_fds = max.unwrap_or(limit).saturating_add(64);
    let (r, w) = util::pipe(true)?;
    let pid = util::fork().map_err(|e| Fail::os("fork", &e))?;
    if pid == 0 {
        util::close(r);
        child(w, uid, want_fds, max);
    }
    util::close(w);
    let out = String::from_utf8_lossy(&util::read_fd_to_end(r)).into_owned();
    util::close(r);
    let st = util::wait_pid(pid).map_err(|e| Fail::os("waitpid", &e))?;
    match parse_child(&out) {
        Some(ChildReport::Done {
            created,
            errno,
            rlimit,
        }) => {
            let errno = (errno != 0).then_some(errno);
            json::print(&InotifyAnswer {
                uid,
                max_user_instances: limit,
                created,
                stopped_by: if errno.is_some() { "refused" } else { "max" },
                errno: Errno::of(errno),
                rlimit_nofile: rlimit,
            })
        }
        Some(ChildReport::Err { step, errno }) => Err(Fail::failed(format!(
            "{step}({uid}): {}",
            util::strerror(errno)
        ))),
        None => Err(Fail::failed(format!(
            "inotify child gave no report (wait status {st:#x})"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_reports() {
        assert_eq!(
            parse_child("done 128 24 8256\n"),
            Some(ChildReport::Done {
                created: 128,
                errno: 24,
                rlimit: 8256
            })
        );
        assert_eq!(
            parse_child("err setuid 1"),
            Some(ChildReport::Err {
                step: "setuid".into(),
                errno: 1
            })
        );
        assert_eq!(parse_child(""), None);
    }
}
