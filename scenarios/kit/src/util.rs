//! Errors, errno names, small libc wrappers shared by the subcommands.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A failure that ends the process: `repro-kit: <msg>` on stderr, exit `code`.
#[derive(Debug)]
pub struct Fail {
    pub code: i32,
    pub msg: String,
}

/// Exit codes: 1 = operation failed, 2 = usage error, 3 = requirement unavailable.
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_UNAVAILABLE: i32 = 3;

impl Fail {
    pub fn usage(msg: impl Into<String>) -> Fail {
        Fail {
            code: EXIT_USAGE,
            msg: msg.into(),
        }
    }
    pub fn failed(msg: impl Into<String>) -> Fail {
        Fail {
            code: EXIT_FAILED,
            msg: msg.into(),
        }
    }
    pub fn unavailable(msg: impl Into<String>) -> Fail {
        Fail {
            code: EXIT_UNAVAILABLE,
            msg: msg.into(),
        }
    }
    /// `<what>: <errno text>`
    pub fn os(what: impl fmt::Display, err: &io::Error) -> Fail {
        Fail::failed(format!("{what}: {}", err_text(err)))
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

pub type R<T> = Result<T, Fail>;

/// strerror() text without Rust's " (os error N)" suffix.
pub fn strerror(errno: i32) -> String {
    let s = io::Error::from_raw_os_error(errno).to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

pub fn err_text(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(e) => strerror(e),
        None => err.to_string(),
    }
}

pub fn last_errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Symbolic name of an errno value (x86-64 Linux), or `E<number>` when unknown.
pub fn errno_name(e: i32) -> String {
    let n = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::ECHILD => "ECHILD",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ENOTTY => "ENOTTY",
        libc::ETXTBSY => "ETXTBSY",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::ESPIPE => "ESPIPE",
        libc::EROFS => "EROFS",
        libc::EMLINK => "EMLINK",
        libc::EPIPE => "EPIPE",
        libc::ERANGE => "ERANGE",
        libc::EDEADLK => "EDEADLK",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ELOOP => "ELOOP",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EDQUOT => "EDQUOT",
        libc::ETIMEDOUT => "ETIMEDOUT",
        _ => return format!("E{e}"),
    };
    n.to_string()
}

/// Write `data` to an existing file (cgroup control files, sysctls) in one write().
pub fn write_ctl(path: &Path, data: &str) -> io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(data.as_bytes())
}

pub fn read_string(path: &Path) -> R<String> {
    std::fs::read_to_string(path).map_err(|e| Fail::os(format!("read {}", path.display()), &e))
}

/// Raw pipe; `cloexec` applies to both ends.
pub fn pipe(cloexec: bool) -> R<(i32, i32)> {
    let mut fds = [0i32; 2];
    let flags = if cloexec { libc::O_CLOEXEC } else { 0 };
    // SAFETY: fds is a valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), flags) } != 0 {
        return Err(Fail::os("pipe2", &io::Error::last_os_error()));
    }
    Ok((fds[0], fds[1]))
}

pub fn set_cloexec(fd: i32) {
    // SAFETY: plain fcntl on an fd we own.
    unsafe {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
    }
}

pub fn close(fd: i32) {
    // SAFETY: closing an fd we own.
    unsafe {
        libc::close(fd);
    }
}

/// fork(); the caller must be single-threaded (repro-kit never starts threads).
pub fn fork() -> io::Result<i32> {
    // SAFETY: repro-kit is single-threaded, so the child may run arbitrary code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(pid)
    }
}

/// waitpid on one pid, retrying EINTR; returns the raw status.
pub fn wait_pid(pid: i32) -> io::Result<i32> {
    let mut st = 0;
    loop {
        // SAFETY: st is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut st, 0) };
        if r == pid {
            return Ok(st);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Write all bytes to a raw fd, ignoring EINTR. Used in forked children.
pub fn write_fd(fd: i32, data: &[u8]) -> bool {
    let mut off = 0;
    while off < data.len() {
        // SAFETY: pointer/len come from a live slice.
        let r = unsafe { libc::write(fd, data[off..].as_ptr().cast(), data.len() - off) };
        if r < 0 {
            if last_errno() == libc::EINTR {
                continue;
            }
            return false;
        }
        off += r as usize;
    }
    true
}

/// Read from a raw fd until EOF (used by parents collecting a child's report).
pub fn read_fd_to_end(fd: i32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: buf is a live stack buffer.
        let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if r < 0 {
            if last_errno() == libc::EINTR {
                continue;
            }
            break;
        }
        if r == 0 {
            break;
        }
        out.extend_from_slice(&buf[..r as usize]);
    }
    out
}

/// Block until one byte arrives on `fd` (start signal from a parent). False on EOF.
pub fn wait_byte(fd: i32) -> bool {
    let mut b = [0u8; 1];
    loop {
        // SAFETY: b is a live one-byte buffer.
        let r = unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) };
        if r == 1 {
            return true;
        }
        if r < 0 && last_errno() == libc::EINTR {
            continue;
        }
        return false;
    }
}

pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns; used in forked children to skip atexit/stdio.
    unsafe { libc::_exit(code) }
}

pub fn sleep_ms(ms: u64) {
    std::thread::sleep(std::time::Duration::from_millis(ms));
}

/// Move process `pid` into the cgroup directory `dir` (writes `cgroup.procs`).
pub fn join_cgroup(dir: &Path, pid: i32) -> R<()> {
    let f = dir.join("cgroup.procs");
    write_ctl(&f, &format!("{pid}\n"))
        .map_err(|e| Fail::os(format!("write {pid} to {}", f.display()), &e))
}

/// Fork a child, move it into the cgroup `dir`, then let it run `work`; the
/// child exits with `work`'s return value (an errno, 0 on success). Returns
/// the child's wait status.
pub fn run_in_cgroup(dir: &Path, work: impl FnOnce() -> i32) -> R<i32> {
    let (r, w) = pipe(true)?;
    let pid = match fork() {
        Ok(p) => p,
        Err(e) => {
            close(r);
            close(w);
            return Err(Fail::os("fork", &e));
        }
    };
    if pid == 0 {
        close(w);
        if !wait_byte(r) {
            exit_now(125);
        }
        let code = work();
        exit_now(code.clamp(0, 255));
    }
    close(r);
    if let Err(f) = join_cgroup(dir, pid) {
        close(w);
        let _ = wait_pid(pid);
        return Err(f);
    }
    write_fd(w, b"g");
    close(w);
    wait_pid(pid).map_err(|e| Fail::os("waitpid", &e))
}

/// Turn a child's wait status from `run_in_cgroup` into an error message.
pub fn check_child(st: i32, what: &str) -> R<()> {
    if libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0 {
        return Ok(());
    }
    if libc::WIFEXITED(st) {
        let code = libc::WEXITSTATUS(st);
        return Err(Fail::failed(format!("{what}: {}", strerror(code))));
    }
    Err(Fail::failed(format!(
        "{what}: child ended with wait status {st:#x}"
    )))
}

/// rmdir, retrying EBUSY briefly (a cgroup can look populated for a moment
/// after its last task was reaped).
pub fn rmdir_retry(path: &Path) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes()).expect("no NUL");
    let mut tries = 0;
    loop {
        // SAFETY: valid NUL-terminated path.
        if unsafe { libc::rmdir(c.as_ptr()) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EBUSY) && tries < 200 {
            tries += 1;
            sleep_ms(5);
            continue;
        }
        return Err(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names_and_text() {
        assert_eq!(errno_name(libc::ENOSPC), "ENOSPC");
        assert_eq!(errno_name(libc::EMFILE), "EMFILE");
        assert_eq!(errno_name(9999), "E9999");
        assert_eq!(strerror(libc::ENOSPC), "No space left on device");
        assert_eq!(strerror(libc::EMFILE), "Too many open files");
    }
}
