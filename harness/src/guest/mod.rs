//! The SSH session to a guest (ssh2): connect until ready, upload a folder
//! as a tar stream, run commands with streaming output and deadlines.
//!
//! Invariant: this is the only module that speaks SSH. Every blocking call
//! is bounded: before each one the session's timeout is set to the time
//! left until the command's deadline (at most 30 s), output is read
//! non-blocking, and a `watch` callback can abort a command (guest
//! crashed, QEMU gone, run cancelled, guest silent too long). A command
//! given up is abandoned, never waited on: a starved guest may not answer
//! a channel close for ever.

pub use crate::keys::KeyPair;

use crate::model::StopReason;
use ssh2::Session;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("guest SSH not ready after {waited:.0} s (last error: {last})")]
    NotReady { waited: f64, last: String },
    #[error("guest host key does not match the image's key")]
    HostKeyMismatch,
    #[error("SSH {what} failed: {source}")]
    Ssh {
        what: &'static str,
        source: ssh2::Error,
    },
    #[error("SSH {what} failed: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("guest command timed out after {0:.0} s")]
    Timeout(f64),
    #[error("stopped waiting for the guest: {0}")]
    Stopped(StopReason),
    #[error("{0}")]
    Remote(String),
    #[error("cannot use the run's SSH key: {0}")]
    Key(String),
    #[error("the SSH connection dropped: {0}")]
    Dropped(String),
}

/// When a running command last showed signs of life: a stdout or stderr
/// byte, or growth of its watched file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    pub last: Instant,
}

/// Why a watched command should stop early, given its activity.
pub type Watch<'a> = &'a mut dyn FnMut(Activity) -> Option<StopReason>;

/// A command to run in the guest.
#[derive(Debug, Clone, Copy)]
pub struct Cmd<'a> {
    pub cmd: &'a str,
    /// Fed to the command, then EOF.
    pub stdin: Option<&'a [u8]>,
    /// When the command is given up (`GuestError::Timeout`), whatever the
    /// guest does: no SSH call waits past it.
    pub deadline: Instant,
    /// A file in the guest whose growth counts as activity; a second
    /// channel polls its size every second.
    pub watch_file: Option<&'a str>,
}

impl<'a> Cmd<'a> {
    /// `cmd` with `timeout` from now, no input, no watched file.
    pub fn new(cmd: &'a str, timeout: Duration) -> Cmd<'a> {
        Cmd {
            cmd,
            stdin: None,
            deadline: Instant::now() + timeout,
            watch_file: None,
        }
    }
}

/// Exit status and captured output of a short command.
#[derive(Debug)]
pub struct Output {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// One authenticated SSH session to a guest.
pub struct GuestSession {
    sess: Session,
    _tcp: TcpStream,
}

/// The bound of one blocking SSH call when no deadline is closer.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a finished command may take to report its exit status.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long dropping a session may wait on its guest.
const DROP_TIMEOUT_MS: u32 = 2_000;
/// How often the read loop asks `watch` while output keeps coming.
const WATCH_EVERY: Duration = Duration::from_millis(100);

impl GuestSession {
    /// Connects and authenticates once (no retry).
    pub fn connect_once(
        addr: SocketAddr,
        key: &KeyPair,
        host_key: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<GuestSession, GuestError> {
        let tcp = TcpStream::connect_timeout(&addr, timeout).map_err(|source| GuestError::Io {
            what: "connect",
            source,
        })?;
        let _ = tcp.set_nodelay(true);
        let mut sess = Session::new().map_err(|source| GuestError::Ssh {
            what: "session",
            source,
        })?;
        sess.set_tcp_stream(tcp.try_clone().map_err(|source| GuestError::Io {
            what: "socket",
            source,
        })?);
        sess.set_timeout(timeout.as_millis().max(1) as u32);
        sess.handshake().map_err(|source| GuestError::Ssh {
            what: "handshake",
            source,
        })?;
        if let Some(expected) = host_key {
            match sess.host_key() {
                Some((blob, _)) if blob == expected => {}
                _ => return Err(GuestError::HostKeyMismatch),
            }
        }
        let private = key
            .private_openssh()
            .map_err(|e| GuestError::Key(e.to_string()))?;
        sess.userauth_pubkey_memory("root", None, &private, None)
            .map_err(|source| GuestError::Ssh {
                what: "authentication",
                source,
            })?;
        sess.set_timeout(IO_TIMEOUT.as_millis() as u32);
        Ok(GuestSession { sess, _tcp: tcp })
    }

    /// Retries [`connect_once`] and a trivial command until it succeeds,
    /// `deadline` passes, or `watch` says to stop (e.g. QEMU exited).
    pub fn connect(
        addr: SocketAddr,
        key: &KeyPair,
        host_key: Option<&[u8]>,
        deadline: Instant,
        watch: Watch,
    ) -> Result<GuestSession, GuestError> {
        let start = Instant::now();
        let mut last = String::from("no attempt");
        loop {
            if let Some(why) = watch(Activity { last: start }) {
                return Err(GuestError::Stopped(why));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(GuestError::NotReady {
                    waited: start.elapsed().as_secs_f64(),
                    last,
                });
            }
            match Self::connect_once(addr, key, host_key, left.min(Duration::from_secs(5))) {
                Ok(s) => match s.exec("true", left.min(Duration::from_secs(10))) {
                    Ok(o) if o.status == 0 => return Ok(s),
                    Ok(o) => last = format!("`true` exited {}", o.status),
                    Err(e) => last = e.to_string(),
                },
                Err(GuestError::HostKeyMismatch) => return Err(GuestError::HostKeyMismatch),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Bounds the next blocking SSH calls by `deadline` (and by
    /// [`IO_TIMEOUT`]); `Err(Timeout)` when it has passed. libssh2 reads a
    /// timeout of 0 as "wait forever": never set.
    fn bound(&self, deadline: Instant, timeout: f64) -> Result<(), GuestError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(GuestError::Timeout(timeout));
        }
        self.sess
            .set_timeout(left.min(IO_TIMEOUT).as_millis().max(1) as u32);
        Ok(())
    }

    /// Runs a short command and captures its output.
    pub fn exec(&self, cmd: &str, timeout: Duration) -> Result<Output, GuestError> {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let status = self.run(&Cmd::new(cmd, timeout), &mut out, &mut err, &mut |_| None)?;
        Ok(Output {
            status,
            stdout: out,
            stderr: err,
        })
    }

    /// Runs `c`, streaming stdout and stderr into the writers, until it
    /// exits, its deadline passes or `watch` asks to stop. Returns the exit
    /// status (128 + N when a signal N killed it).
    ///
    /// Every blocking call is bounded by the deadline; output is read
    /// without blocking, and the deadline and `watch` are checked however
    /// fast output comes. A command given up (timeout, stop) is left
    /// without waiting for the guest to close it: a starved guest may
    /// never answer.
    pub fn run(
        &self,
        c: &Cmd,
        stdout: &mut dyn Write,
        stderr: &mut dyn Write,
        watch: Watch,
    ) -> Result<i32, GuestError> {
        let start = Instant::now();
        let limit = c.deadline.saturating_duration_since(start).as_secs_f64();
        let ssh = |what| move |source| GuestError::Ssh { what, source };
        // A blocking call that failed once the deadline passed timed out.
        let late = |e: GuestError| {
            if Instant::now() >= c.deadline {
                GuestError::Timeout(limit)
            } else {
                e
            }
        };
        self.sess.set_blocking(true);
        self.bound(c.deadline, limit)?;
        let mut ch = self
            .sess
            .channel_session()
            .map_err(|e| late(ssh("channel")(e)))?;
        let started = (|| {
            ch.exec(c.cmd).map_err(ssh("exec"))?;
            for chunk in c.stdin.unwrap_or_default().chunks(64 * 1024) {
                self.bound(c.deadline, limit)?;
                ch.write_all(chunk).map_err(|source| GuestError::Io {
                    what: "upload",
                    source,
                })?;
            }
            self.bound(c.deadline, limit)?;
            ch.send_eof().map_err(ssh("eof"))
        })();
        if let Err(e) = started {
            self.abandon(ch);
            return Err(late(e));
        }
        let mut watcher = c
            .watch_file
            .and_then(|f| self.watch_size(f, c.deadline, limit));
        self.sess.set_blocking(false);
        let mut buf = vec![0u8; 32 * 1024];
        let mut activity = Activity { last: start };
        let mut watched = Instant::now();
        let result = loop {
            let mut progressed = false;
            for stream_id in [0, 1] {
                let mut s = ch.stream(stream_id);
                match s.read(&mut buf) {
                    Ok(0) => {}
                    Ok(n) => {
                        progressed = true;
                        activity.last = Instant::now();
                        let w: &mut dyn Write = if stream_id == 0 {
                            &mut *stdout
                        } else {
                            &mut *stderr
                        };
                        let _ = w.write_all(&buf[..n]);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => break_dropped(e)?,
                }
            }
            if let Some(w) = watcher.as_mut() {
                if w.poll(&mut buf) {
                    activity.last = Instant::now();
                }
            }
            if ch.eof() && !progressed {
                break Ok(());
            }
            if Instant::now() >= c.deadline {
                break Err(GuestError::Timeout(limit));
            }
            if !progressed || watched.elapsed() >= WATCH_EVERY {
                watched = Instant::now();
                if let Some(why) = watch(activity) {
                    break Err(GuestError::Stopped(why));
                }
            }
            if !progressed {
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        if let Some(mut w) = watcher {
            let _ = w.ch.close();
            self.abandon(w.ch);
        }
        if let Err(e) = result {
            self.abandon(ch);
            return Err(e);
        }
        let _ = stdout.flush();
        let _ = stderr.flush();
        self.sess.set_blocking(true);
        self.bound(Instant::now() + CLOSE_TIMEOUT, limit)?;
        if let Err(e) = ch.wait_close() {
            self.abandon(ch);
            return Err(ssh("close")(e));
        }
        // A command killed by a signal has no exit status (libssh2 says 0)
        // but an `exit-signal`: report it as a shell would, 128 + N.
        let signal = ch
            .exit_signal()
            .ok()
            .and_then(|s| s.exit_signal)
            .and_then(|name| crate::model::signal_number(&name));
        if let Some(n) = signal {
            return Ok(128 + n);
        }
        ch.exit_status().map_err(ssh("exit status"))
    }

    /// Drops `ch` without waiting for the guest to close it (libssh2 then
    /// frees it with the session).
    fn abandon(&self, ch: ssh2::Channel) {
        self.sess.set_blocking(false);
        drop(ch);
        self.sess.set_blocking(true);
    }

    /// A second channel printing the size of `file` every second; `None`
    /// when it cannot be opened in time (the command then runs unwatched).
    fn watch_size(&self, file: &str, deadline: Instant, limit: f64) -> Option<SizeWatch> {
        self.bound(deadline.min(Instant::now() + Duration::from_secs(5)), limit)
            .ok()?;
        let mut ch = self.sess.channel_session().ok()?;
        let cmd = format!(
            "while :; do {{ wc -c < {f}; }} 2>/dev/null || echo 0; sleep 1; done",
            f = shell_quote(file)
        );
        if ch.exec(&cmd).and_then(|()| ch.send_eof()).is_err() {
            self.abandon(ch);
            return None;
        }
        Some(SizeWatch {
            ch,
            line: Vec::new(),
            size: None,
        })
    }

    /// Unpacks a tar archive into `dest` in the guest, by `deadline`.
    pub fn upload_tar(&self, dest: &str, tar: &[u8], deadline: Instant) -> Result<(), GuestError> {
        let cmd = format!("mkdir -p {d} && tar -x -f - -C {d}", d = shell_quote(dest));
        let mut out = Vec::new();
        let mut err = Vec::new();
        let c = Cmd {
            cmd: &cmd,
            stdin: Some(tar),
            deadline,
            watch_file: None,
        };
        let st = self.run(&c, &mut out, &mut err, &mut |_| None)?;
        if st != 0 {
            return Err(GuestError::Remote(format!(
                "unpacking the upload failed ({st}): {}",
                String::from_utf8_lossy(&err)
            )));
        }
        Ok(())
    }

    /// Runs `cmd` by `deadline`, streaming its stdout into `out` (not held
    /// in memory); a non-zero status is an error with its stderr.
    pub fn fetch(
        &self,
        cmd: &str,
        out: &mut dyn Write,
        deadline: Instant,
    ) -> Result<(), GuestError> {
        let mut err = Vec::new();
        let c = Cmd {
            cmd,
            stdin: None,
            deadline,
            watch_file: None,
        };
        let st = self.run(&c, out, &mut LimitedVec(&mut err), &mut |_| None)?;
        if st != 0 {
            return Err(GuestError::Remote(format!(
                "`{cmd}` failed ({st}): {}",
                String::from_utf8_lossy(&err).trim()
            )));
        }
        Ok(())
    }
}

impl Drop for GuestSession {
    /// Freeing a session closes its channels; bound how long that may wait
    /// on a guest that stopped answering (the runner kills QEMU first, and
    /// then nothing waits at all).
    fn drop(&mut self) {
        self.sess.set_blocking(true);
        self.sess.set_timeout(DROP_TIMEOUT_MS);
    }
}

/// The second channel of a watched command: the size of its file, one
/// line per second.
struct SizeWatch {
    ch: ssh2::Channel,
    line: Vec<u8>,
    size: Option<u64>,
}

impl SizeWatch {
    /// Reads what arrived; true when the size changed.
    fn poll(&mut self, buf: &mut [u8]) -> bool {
        let mut changed = false;
        loop {
            let n = match self.ch.stream(0).read(buf) {
                Ok(n) if n > 0 => n,
                _ => break,
            };
            for b in &buf[..n] {
                if *b != b'\n' {
                    if self.line.len() < 64 {
                        self.line.push(*b);
                    }
                    continue;
                }
                let size = String::from_utf8_lossy(&self.line).trim().parse().ok();
                self.line.clear();
                if size.is_some() && size != self.size {
                    // The first report is a baseline, not progress.
                    changed |= self.size.is_some();
                    self.size = size;
                }
            }
        }
        // Its stderr is never wanted; reading it keeps the window open.
        while matches!(self.ch.stream(1).read(buf), Ok(n) if n > 0) {}
        changed
    }
}

/// A `Vec` that keeps at most 64 KiB (a failed command's stderr).
struct LimitedVec<'a>(&'a mut Vec<u8>);

impl Write for LimitedVec<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = (64 * 1024usize).saturating_sub(self.0.len());
        self.0.extend_from_slice(&buf[..buf.len().min(room)]);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn break_dropped(e: std::io::Error) -> Result<(), GuestError> {
    Err(GuestError::Dropped(e.to_string()))
}

/// Quotes `s` for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// `env K=V ... ` prefix for a command (dropbear ignores SSH env requests).
pub fn env_prefix(vars: &[(String, String)]) -> String {
    let mut s = String::from("env");
    for (k, v) in vars {
        s.push(' ');
        s.push_str(&shell_quote(&format!("{k}={v}")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("plain", "plain")]
    #[case("", "''")]
    #[case("a b", "'a b'")]
    #[case("it's", "'it'\\''s'")]
    #[case("/repro/out", "/repro/out")]
    #[case("6.1@6.1.115-1", "6.1@6.1.115-1")]
    #[case("$(reboot)", "'$(reboot)'")]
    fn quoting(#[case] s: &str, #[case] want: &str) {
        assert_eq!(shell_quote(s), want);
    }

    #[test]
    fn env_prefix_quotes_values() {
        let p = env_prefix(&[
            ("REPRO_PARAM_LIMIT".into(), "".into()),
            ("X".into(), "a b".into()),
        ]);
        assert_eq!(p, "env REPRO_PARAM_LIMIT= 'X=a b'");
    }
}
