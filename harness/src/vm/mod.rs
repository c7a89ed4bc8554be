//! QEMU guests: command line, accelerator choice, process lifetime and the
//! serial console.
//!
//! Invariant: this is the only module that starts QEMU and `qemu-img`
//! (the only other host processes are the rootfs builder's, in
//! `images::rootfs`). Every QEMU it starts is registered until it is reaped, is put
//! in its own process group, gets `PR_SET_PDEATHSIG(SIGKILL)` so it dies
//! with the harness, and is killed when its [`Vm`] is dropped.

pub mod accel;
pub mod console;
pub mod qemu;

pub use accel::{Accel, AccelChoice};
pub use console::{Console, ConsoleEvent};
pub use qemu::{DataDisk, Machine, VmSpec};

use crate::caplog::{CappedFile, Marker};
use crate::model::StopReason;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("cannot start {qemu}: {source}; install QEMU (`apt-get install qemu-system-x86`) or set REPRO_QEMU")]
    Spawn {
        qemu: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot find a free TCP port on 127.0.0.1: {0}")]
    Port(std::io::Error),
    #[error("cannot create the guest's disk overlay: {0}")]
    Overlay(String),
    #[error("cannot create console log {path}: {source}")]
    ConsoleLog {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// PIDs of the QEMU processes alive right now (for signal handlers).
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Kills every QEMU this process started and has not reaped yet.
/// Safe to call from a signal-handling thread.
pub fn kill_all() -> usize {
    let pids = LIVE.lock().map(|l| l.clone()).unwrap_or_default();
    for pid in &pids {
        // SAFETY: plain syscall; a stale pid is at worst a no-op (we reap
        // our children ourselves, so the pid cannot have been reused).
        unsafe {
            libc::kill(*pid as i32, libc::SIGKILL);
        }
    }
    pids.len()
}

fn unregister(pid: u32) {
    if let Ok(mut l) = LIVE.lock() {
        l.retain(|p| *p != pid);
    }
}

/// A running guest. Dropping it kills QEMU.
pub struct Vm {
    child: Child,
    pub spec: VmSpec,
    pub console: Arc<Console>,
    stderr: Arc<Mutex<String>>,
    pub started: Instant,
    exit: Option<std::process::ExitStatus>,
}

impl Vm {
    /// Starts QEMU for `spec`; the console goes to `spec.console_log` and to
    /// the classifier in [`Console`].
    ///
    /// Note: `PR_SET_PDEATHSIG` fires when the *thread* that spawned QEMU
    /// exits, so keep the `Vm` on the thread that created it.
    pub fn start(spec: VmSpec) -> Result<Vm, VmError> {
        let args = qemu::args(&spec);
        let mut cmd = Command::new(&spec.qemu);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                libc::setpgid(0, 0);
                Ok(())
            });
        }
        let log = CappedFile::create(&spec.console_log, spec.console_cap, Marker::Text).map_err(
            |source| VmError::ConsoleLog {
                path: spec.console_log.clone(),
                source,
            },
        )?;
        let mut child = cmd.spawn().map_err(|source| VmError::Spawn {
            qemu: spec.qemu.clone(),
            source,
        })?;
        if let Ok(mut l) = LIVE.lock() {
            l.push(child.id());
        }
        let console = Arc::new(Console::new());
        let stdout = child.stdout.take().expect("piped stdout");
        console.clone().spawn_reader(stdout, log);
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("piped stderr");
        let err_buf = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut s) = err_buf.lock() {
                    if s.len() < 64 * 1024 {
                        s.push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                }
            }
        });
        Ok(Vm {
            child,
            spec,
            console,
            stderr,
            started: Instant::now(),
            exit: None,
        })
    }

    /// `Some(status)` once QEMU has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        if self.exit.is_none() {
            if let Ok(Some(st)) = self.child.try_wait() {
                unregister(self.child.id());
                self.exit = Some(st);
            }
        }
        self.exit
    }

    /// What QEMU wrote on stderr (errors such as a busy port).
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits up to `timeout` for QEMU to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.exited() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the console shows `needle`, the guest's `/init` reports
    /// a failure (`REPRO-FAILED`), QEMU exits, the kernel crashes, `stop`
    /// says so, or `deadline` passes. `Err` says why not.
    pub fn wait_console(
        &mut self,
        needle: &str,
        deadline: Instant,
        stop: &dyn Fn() -> bool,
    ) -> Result<(), StopReason> {
        loop {
            if self.console.contains(needle) {
                return Ok(());
            }
            if let Some(why) = self.console.guest_failure() {
                return Err(StopReason::GuestFailed(why));
            }
            if stop() {
                return Err(StopReason::Cancelled);
            }
            if let Some(c) = self.console.crash() {
                return Err(StopReason::KernelCrash(c.title));
            }
            if let Some(st) = self.exited() {
                // The reader may still hold the guest's last lines (its reason).
                self.console.wait_closed(Duration::from_millis(500));
                if let Some(why) = self.console.guest_failure() {
                    return Err(StopReason::GuestFailed(why));
                }
                return Err(StopReason::QemuExited(st.to_string()));
            }
            if Instant::now() >= deadline {
                return Err(StopReason::Deadline(format!("the console line `{needle}`")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills QEMU (SIGKILL: nothing in the guest is waited on) and reaps
    /// it; the console reader then sees EOF and finishes the log.
    pub fn kill(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            if let Ok(st) = self.child.wait() {
                self.exit = Some(st);
            }
            unregister(self.child.id());
        }
        // Give the console reader a moment to read the last lines and
        // finish the capped log (its tail is written at the end).
        self.console.wait_closed(Duration::from_secs(2));
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free TCP port on 127.0.0.1 (there is a small race until QEMU binds
/// it; the caller retries when QEMU reports the port busy).
pub fn free_port() -> Result<u16, VmError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(VmError::Port)?;
    Ok(l.local_addr().map_err(VmError::Port)?.port())
}

/// `qemu-system-x86_64 --version`'s first line, or an error text.
pub fn qemu_version(qemu: &std::path::Path) -> String {
    match Command::new(qemu).arg("--version").output() {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
        Err(e) => format!("unavailable: {e}"),
    }
}

/// The QEMU binary: `REPRO_QEMU`, else `qemu-system-x86_64` on PATH.
pub fn qemu_binary() -> PathBuf {
    std::env::var_os("REPRO_QEMU")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("qemu-system-x86_64"))
}

/// `qemu-img` (`REPRO_QEMU_IMG`, else from `PATH`).
pub fn qemu_img_binary() -> PathBuf {
    std::env::var_os("REPRO_QEMU_IMG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("qemu-img"))
}

/// Creates a throw-away qcow2 overlay at `overlay` on top of `base`: the
/// guest writes there and `base` is never touched.
pub fn create_overlay(base: &std::path::Path, overlay: &std::path::Path) -> Result<(), VmError> {
    let out = std::process::Command::new(qemu_img_binary())
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(base)
        .arg(overlay)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| VmError::Overlay(format!("cannot run qemu-img ({e}); install qemu-utils")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(VmError::Overlay(format!(
            "qemu-img create on {} failed ({}): {}",
            base.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Host kernel release (`uname -r`), for run metadata.
pub fn host_kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
