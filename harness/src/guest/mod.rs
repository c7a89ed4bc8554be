//! The SSH session to a guest (ssh2): connect until ready, upload a folder
//! as a tar stream, run commands with streaming output and deadlines.
//!
//! Invariant: this is the only module that speaks SSH. Every blocking call
//! is bounded: the session has a timeout, and long commands run
//! non-blocking under a deadline and a `watch` callback that can abort
//! them (guest crashed, QEMU gone, run cancelled).

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

/// Why a watched command should stop early.
pub type Watch<'a> = &'a mut dyn FnMut() -> Option<StopReason>;

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

const IO_TIMEOUT_MS: u32 = 30_000;

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
        sess.set_timeout(timeout.as_millis() as u32);
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
        sess.set_timeout(IO_TIMEOUT_MS);
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
            if let Some(why) = watch() {
                return Err(GuestError::Stopped(why));
            }
            if Instant::now() >= deadline {
                return Err(GuestError::NotReady {
                    waited: start.elapsed().as_secs_f64(),
                    last,
                });
            }
            match Self::connect_once(addr, key, host_key, Duration::from_secs(5)) {
                Ok(s) => match s.exec("true", Duration::from_secs(10)) {
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

    /// Runs a short command and captures its output.
    pub fn exec(&self, cmd: &str, timeout: Duration) -> Result<Output, GuestError> {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let status = self.run(cmd, None, &mut out, &mut err, timeout, &mut || None)?;
        Ok(Output {
            status,
            stdout: out,
            stderr: err,
        })
    }

    /// Runs `cmd`, feeding `stdin` (then EOF), streaming stdout and stderr
    /// into the writers, until it exits, `timeout` passes or `watch` asks to
    /// stop. Returns the exit status (128 + N when a signal N killed it).
    pub fn run(
        &self,
        cmd: &str,
        stdin: Option<&[u8]>,
        stdout: &mut dyn Write,
        stderr: &mut dyn Write,
        timeout: Duration,
        watch: Watch,
    ) -> Result<i32, GuestError> {
        let deadline = Instant::now() + timeout;
        self.sess.set_blocking(true);
        let ssh = |what| move |source| GuestError::Ssh { what, source };
        let mut ch = self.sess.channel_session().map_err(ssh("channel"))?;
        ch.exec(cmd).map_err(ssh("exec"))?;
        if let Some(data) = stdin {
            ch.write_all(data).map_err(|source| GuestError::Io {
                what: "upload",
                source,
            })?;
        }
        ch.send_eof().map_err(ssh("eof"))?;
        self.sess.set_blocking(false);
        let mut buf = vec![0u8; 32 * 1024];
        let result = loop {
            let mut progressed = false;
            for stream_id in [0, 1] {
                let mut s = ch.stream(stream_id);
                match s.read(&mut buf) {
                    Ok(0) => {}
                    Ok(n) => {
                        progressed = true;
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
            if ch.eof() && !progressed {
                break Ok(());
            }
            if !progressed {
                if let Some(why) = watch() {
                    break Err(GuestError::Stopped(why));
                }
                if Instant::now() >= deadline {
                    break Err(GuestError::Timeout(timeout.as_secs_f64()));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        self.sess.set_blocking(true);
        result?;
        let _ = stdout.flush();
        let _ = stderr.flush();
        ch.wait_close().map_err(ssh("close"))?;
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

    /// Unpacks a tar archive into `dest` in the guest.
    pub fn upload_tar(&self, dest: &str, tar: &[u8]) -> Result<(), GuestError> {
        let cmd = format!("mkdir -p {d} && tar -x -f - -C {d}", d = shell_quote(dest));
        let mut out = Vec::new();
        let mut err = Vec::new();
        let st = self.run(
            &cmd,
            Some(tar),
            &mut out,
            &mut err,
            Duration::from_secs(120),
            &mut || None,
        )?;
        if st != 0 {
            return Err(GuestError::Remote(format!(
                "unpacking the upload failed ({st}): {}",
                String::from_utf8_lossy(&err)
            )));
        }
        Ok(())
    }

    /// A tar archive of folder `dir` in the guest.
    pub fn download_tar(&self, dir: &str) -> Result<Vec<u8>, GuestError> {
        let o = self.exec(
            &format!("tar -c -f - -C {} .", shell_quote(dir)),
            Duration::from_secs(120),
        )?;
        if o.status != 0 {
            return Err(GuestError::Remote(format!(
                "packing {dir} failed: {}",
                String::from_utf8_lossy(&o.stderr)
            )));
        }
        Ok(o.stdout)
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
