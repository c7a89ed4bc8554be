//! `slice-churn`: create and remove transient systemd slices through PID 1's
//! D-Bus API at a fixed rate, as runc rc3-rc8's systemd driver did with its
//! `libcontainer_<pid>_systemd_test_default.slice` probe (seed 000), while
//! measuring PID 1's CPU time and, optionally, watching the cgroup tree with
//! inotify the way cAdvisor does (a watch added on each new cgroup folder;
//! folders that vanish before the watch lands are the seed's errors).
//!
//! The D-Bus client is deliberately minimal: SASL EXTERNAL on the system
//! bus socket, `Hello`, then `StartTransientUnit(ssa(sv)a(sa(sv)))` and
//! `StopUnit(ss)` with empty property arrays (what the probe sent), each
//! waiting for its reply. Forking `busctl` per call reaches about 3 calls/s
//! under TCG; this reaches the kubelet's 50/s.

use crate::args::{self, Spec};
use crate::json::{self, Num};
use crate::util::{Fail, R};
use serde::Serialize;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const SYSTEM_BUS: &str = "/run/dbus/system_bus_socket";

// ---- wire format (little-endian) -------------------------------------------

fn pad(buf: &mut Vec<u8>, align: usize) {
    while buf.len() % align != 0 {
        buf.push(0);
    }
}

fn put_u32(buf: &mut Vec<u8>, v: u32) {
    pad(buf, 4);
    buf.extend_from_slice(&v.to_le_bytes());
}

/// A `s` or `o` value.
fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_u32(buf, s.len() as u32);
    buf.extend_from_slice(s.as_bytes());
    buf.push(0);
}

/// A `g` value.
fn put_sig(buf: &mut Vec<u8>, s: &str) {
    buf.push(s.len() as u8);
    buf.extend_from_slice(s.as_bytes());
    buf.push(0);
}

/// An empty array whose elements are 8-aligned structs: the length, then
/// the padding to the (absent) first element.
fn put_empty_struct_array(buf: &mut Vec<u8>) {
    put_u32(buf, 0);
    pad(buf, 8);
}

/// Body argument of a method call.
pub enum Arg<'a> {
    Str(&'a str),
    EmptyStructArray,
}

/// A METHOD_CALL message.
pub fn method_call(
    serial: u32,
    dest: &str,
    path: &str,
    iface: &str,
    member: &str,
    sig: &str,
    args: &[Arg],
) -> Vec<u8> {
    let mut body = Vec::new();
    for a in args {
        match a {
            Arg::Str(s) => put_str(&mut body, s),
            Arg::EmptyStructArray => put_empty_struct_array(&mut body),
        }
    }
    let mut m = vec![b'l', 1, 0, 1];
    m.extend_from_slice(&(body.len() as u32).to_le_bytes());
    m.extend_from_slice(&serial.to_le_bytes());
    let len_at = m.len();
    m.extend_from_slice(&0u32.to_le_bytes());
    let start = m.len(); // 16: already 8-aligned
    let field = |m: &mut Vec<u8>, code: u8, ty: &str, val: &str| {
        pad(m, 8);
        m.push(code);
        put_sig(m, ty);
        if ty == "g" {
            put_sig(m, val);
        } else {
            put_str(m, val);
        }
    };
    field(&mut m, 1, "o", path);
    field(&mut m, 2, "s", iface);
    field(&mut m, 3, "s", member);
    field(&mut m, 6, "s", dest);
    if !sig.is_empty() {
        field(&mut m, 8, "g", sig);
    }
    let fields_len = (m.len() - start) as u32;
    m[len_at..len_at + 4].copy_from_slice(&fields_len.to_le_bytes());
    pad(&mut m, 8);
    m.extend_from_slice(&body);
    m
}

/// What matters of a received message.
#[derive(Debug, Default, PartialEq)]
pub struct Received {
    pub kind: u8,
    pub reply_serial: Option<u32>,
    pub error_name: Option<String>,
    /// First string of the body when the signature starts with `s`.
    pub first_string: Option<String>,
}

fn rd_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn align(at: usize, n: usize) -> usize {
    at.div_ceil(n) * n
}

/// Length of the whole message starting `head` (at least 16 bytes).
pub fn message_len(head: &[u8]) -> Option<usize> {
    if head.len() < 16 || head[0] != b'l' {
        return None;
    }
    let body = rd_u32(head, 4)? as usize;
    let fields = rd_u32(head, 12)? as usize;
    Some(align(16 + fields, 8) + body)
}

/// Parses one complete message.
pub fn parse(msg: &[u8]) -> Option<Received> {
    let fields_len = rd_u32(msg, 12)? as usize;
    let end = 16 + fields_len;
    let mut r = Received {
        kind: msg[1],
        ..Default::default()
    };
    let mut sig = String::new();
    let mut at = 16;
    while at < end {
        at = align(at, 8);
        let code = *msg.get(at)?;
        let slen = *msg.get(at + 1)? as usize;
        let ty = std::str::from_utf8(msg.get(at + 2..at + 2 + slen)?).ok()?;
        at += 3 + slen;
        match ty {
            "u" => {
                at = align(at, 4);
                let v = rd_u32(msg, at)?;
                at += 4;
                if code == 5 {
                    r.reply_serial = Some(v);
                }
            }
            "s" | "o" => {
                at = align(at, 4);
                let n = rd_u32(msg, at)? as usize;
                let s = String::from_utf8_lossy(msg.get(at + 4..at + 4 + n)?).into_owned();
                at += 5 + n;
                if code == 4 {
                    r.error_name = Some(s);
                }
            }
            "g" => {
                let n = *msg.get(at)? as usize;
                let s = String::from_utf8_lossy(msg.get(at + 1..at + 1 + n)?).into_owned();
                at += 2 + n;
                if code == 8 {
                    sig = s;
                }
            }
            _ => return None,
        }
    }
    if sig.starts_with('s') {
        let b = align(end, 8);
        let n = rd_u32(msg, b)? as usize;
        r.first_string = Some(String::from_utf8_lossy(msg.get(b + 4..b + 4 + n)?).into_owned());
    }
    Some(r)
}

// ---- connection --------------------------------------------------------------

pub struct Bus {
    s: UnixStream,
    serial: u32,
}

impl Bus {
    pub fn connect(path: &str) -> R<Bus> {
        let mut s =
            UnixStream::connect(path).map_err(|e| Fail::os(format!("connect {path}"), &e))?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok();
        // SAFETY: getuid never fails.
        let uid = unsafe { libc::getuid() }.to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        s.write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())
            .map_err(|e| Fail::os("D-Bus auth", &e))?;
        let line = read_line(&mut s)?;
        if !line.starts_with("OK ") {
            return Err(Fail::failed(format!("D-Bus auth refused: {line}")));
        }
        s.write_all(b"BEGIN\r\n")
            .map_err(|e| Fail::os("D-Bus begin", &e))?;
        let mut bus = Bus { s, serial: 0 };
        bus.call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "Hello",
            "",
            &[],
        )?
        .map_err(|e| Fail::failed(format!("D-Bus Hello: {e}")))?;
        Ok(bus)
    }

    /// Sends a call and waits for its reply: `Ok(Ok(()))` for a method
    /// return, `Ok(Err(text))` for a D-Bus error reply.
    pub fn call(
        &mut self,
        dest: &str,
        path: &str,
        iface: &str,
        member: &str,
        sig: &str,
        args: &[Arg],
    ) -> R<Result<(), String>> {
        self.serial += 1;
        let serial = self.serial;
        let m = method_call(serial, dest, path, iface, member, sig, args);
        self.s
            .write_all(&m)
            .map_err(|e| Fail::os(format!("D-Bus {member}"), &e))?;
        loop {
            let msg = self.read_message()?;
            let r = parse(&msg).ok_or_else(|| Fail::failed("unparsable D-Bus message"))?;
            if r.reply_serial != Some(serial) {
                continue; // a signal (NameAcquired...) or someone else's
            }
            return Ok(match r.kind {
                2 => Ok(()),
                _ => Err(format!(
                    "{}: {}",
                    r.error_name.unwrap_or_default(),
                    r.first_string.unwrap_or_default()
                )),
            });
        }
    }

    fn read_message(&mut self) -> R<Vec<u8>> {
        let mut head = vec![0u8; 16];
        self.s
            .read_exact(&mut head)
            .map_err(|e| Fail::os("D-Bus read", &e))?;
        let total = message_len(&head).ok_or_else(|| Fail::failed("bad D-Bus message header"))?;
        head.resize(total, 0);
        self.s
            .read_exact(&mut head[16..])
            .map_err(|e| Fail::os("D-Bus read", &e))?;
        Ok(head)
    }
}

fn read_line(s: &mut UnixStream) -> R<String> {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while !out.ends_with(b"\r\n") {
        let n = s.read(&mut b).map_err(|e| Fail::os("D-Bus auth", &e))?;
        if n == 0 {
            return Err(Fail::failed("D-Bus closed the connection during auth"));
        }
        out.push(b[0]);
    }
    Ok(String::from_utf8_lossy(&out).trim().to_string())
}

const SD: &str = "org.freedesktop.systemd1";
const SD_PATH: &str = "/org/freedesktop/systemd1";
const SD_MGR: &str = "org.freedesktop.systemd1.Manager";

// ---- PID 1 CPU ------------------------------------------------------------------

/// utime + stime of `pid`, in clock ticks.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    // The command may contain spaces: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn pid_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| cpu_ticks(&s))
        .unwrap_or(0)
}

// ---- the cAdvisor-like watcher --------------------------------------------------

#[derive(Default)]
struct WatchStats {
    watched: u64,
    created_seen: u64,
    vanished: u64,
    other_errors: u64,
    first_error: Option<String>,
}

fn add_watch(fd: i32, p: &Path) -> Result<i32, i32> {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| libc::EINVAL)?;
    let mask = libc::IN_CREATE | libc::IN_DELETE | libc::IN_ONLYDIR;
    // SAFETY: valid fd and NUL-terminated path.
    let wd = unsafe { libc::inotify_add_watch(fd, c.as_ptr(), mask) };
    if wd < 0 {
        Err(crate::util::last_errno())
    } else {
        Ok(wd)
    }
}

fn watch_tree(
    roots: Vec<PathBuf>,
    stop: Arc<AtomicBool>,
    ready: std::sync::mpsc::Sender<()>,
) -> WatchStats {
    let mut st = WatchStats::default();
    // SAFETY: plain syscall.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
    if fd < 0 {
        st.first_error = Some(format!(
            "inotify_init1: {}",
            crate::util::strerror(crate::util::last_errno())
        ));
        let _ = ready.send(());
        return st;
    }
    let mut paths: std::collections::HashMap<i32, PathBuf> = Default::default();
    let mut stack = roots;
    while let Some(d) = stack.pop() {
        if let Ok(wd) = add_watch(fd, &d) {
            st.watched += 1;
            paths.insert(wd, d.clone());
        }
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    stack.push(e.path());
                }
            }
        }
    }
    let _ = ready.send(());
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::SeqCst) {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 100) } <= 0 {
            continue;
        }
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            continue;
        }
        let mut at = 0usize;
        let n = n as usize;
        while at + 16 <= n {
            let wd = i32::from_le_bytes(buf[at..at + 4].try_into().unwrap());
            let mask = u32::from_le_bytes(buf[at + 4..at + 8].try_into().unwrap());
            let len = u32::from_le_bytes(buf[at + 12..at + 16].try_into().unwrap()) as usize;
            let name = &buf[at + 16..(at + 16 + len).min(n)];
            let name =
                String::from_utf8_lossy(name.split(|b| *b == 0).next().unwrap_or(&[])).into_owned();
            at += 16 + len;
            if mask & libc::IN_CREATE != 0 && mask & libc::IN_ISDIR != 0 {
                st.created_seen += 1;
                let Some(parent) = paths.get(&wd) else {
                    continue;
                };
                let p = parent.join(&name);
                match add_watch(fd, &p) {
                    Ok(w) => {
                        st.watched += 1;
                        paths.insert(w, p);
                    }
                    Err(e) => {
                        if e == libc::ENOENT {
                            st.vanished += 1;
                        } else {
                            st.other_errors += 1;
                        }
                        st.first_error.get_or_insert_with(|| {
                            format!(
                                "inotify_add_watch {}: {}",
                                p.display(),
                                crate::util::strerror(e)
                            )
                        });
                    }
                }
            }
        }
    }
    crate::util::close(fd);
    st
}

// ---- the subcommand ----------------------------------------------------------------

/// `slice-churn`'s answer.
#[derive(Debug, Serialize)]
pub struct ChurnAnswer {
    pub pairs: u64,
    pub elapsed_s: Num,
    pub rate: Num,
    pub target_rate: Num,
    pub start_errors: u64,
    pub stop_errors: u64,
    pub first_error: Option<String>,
    pub pid1_cpu_s: Num,
    pub pid1_cpu_percent: Num,
    /// Present with `--watch` only.
    #[serde(flatten)]
    pub watcher: Option<WatcherAnswer>,
}

/// The cAdvisor-like watcher's part of `slice-churn`'s answer.
#[derive(Debug, Serialize)]
pub struct WatcherAnswer {
    pub watched_dirs: u64,
    pub created_seen: u64,
    pub vanished_before_watch: u64,
    pub watch_errors: u64,
    pub first_watch_error: Option<String>,
}

pub fn cmd_slice_churn(argv: &[String]) -> R<()> {
    const SPEC: &Spec = &[
        ("rate", true),
        ("duration", true),
        ("prefix", true),
        ("bus", true),
        ("watch", true),
        ("sample-ms", true),
        ("series", false),
    ];
    let a = args::parse(argv, SPEC)?;
    a.no_positional()?;
    let rate = a.f64_or("rate", 50.0)?;
    let duration = a.f64_or("duration", 30.0)?;
    if rate <= 0.0 || duration <= 0.0 {
        return Err(Fail::usage("--rate and --duration must be positive"));
    }
    let prefix = a.get("prefix").unwrap_or("libcontainer").to_string();
    let bus_path = a.get("bus").unwrap_or(SYSTEM_BUS).to_string();
    let sample_ms = a.u64_or("sample-ms", 1000)?.max(100);
    let series = a.has("series");
    let watch_roots: Vec<PathBuf> = a.all("watch").iter().map(PathBuf::from).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = if watch_roots.is_empty() {
        None
    } else {
        let (tx, rx) = std::sync::mpsc::channel();
        let s = stop.clone();
        let h = std::thread::spawn(move || watch_tree(watch_roots, s, tx));
        let _ = rx.recv();
        Some(h)
    };

    let mut bus = Bus::connect(&bus_path)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let my_pid = std::process::id();
    let t0 = Instant::now();
    let cpu0 = pid_ticks(1);
    let (mut last_t, mut last_cpu) = (0.0f64, cpu0);
    let mut next_sample = sample_ms as f64 / 1000.0;
    let (mut pairs, mut start_err, mut stop_err) = (0u64, 0u64, 0u64);
    let mut first_error: Option<String> = None;
    let interval = 1.0 / rate;
    loop {
        let now = t0.elapsed().as_secs_f64();
        if now >= duration {
            break;
        }
        if now >= next_sample {
            let c = pid_ticks(1);
            if series {
                let pct = (c - last_cpu) as f64 / hz / (now - last_t) * 100.0;
                json::emit_series("pid1_cpu_percent", now, pct, "s", "%")?;
            }
            last_t = now;
            last_cpu = c;
            next_sample += sample_ms as f64 / 1000.0;
        }
        let due = pairs as f64 * interval;
        if due > now {
            std::thread::sleep(Duration::from_secs_f64((due - now).min(0.1)));
            continue;
        }
        // runc named the probe after its own PID; each kubelet call was a
        // new runc process, so every name is new.
        let unit = format!("{prefix}_{}_{pairs}_systemd_test_default.slice", my_pid);
        let r = bus.call(
            SD,
            SD_PATH,
            SD_MGR,
            "StartTransientUnit",
            "ssa(sv)a(sa(sv))",
            &[
                Arg::Str(&unit),
                Arg::Str("replace"),
                Arg::EmptyStructArray,
                Arg::EmptyStructArray,
            ],
        )?;
        if let Err(e) = r {
            start_err += 1;
            first_error.get_or_insert(format!("StartTransientUnit {unit}: {e}"));
        }
        let r = bus.call(
            SD,
            SD_PATH,
            SD_MGR,
            "StopUnit",
            "ss",
            &[Arg::Str(&unit), Arg::Str("replace")],
        )?;
        if let Err(e) = r {
            stop_err += 1;
            first_error.get_or_insert(format!("StopUnit {unit}: {e}"));
        }
        pairs += 1;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = pid_ticks(1) - cpu0;
    stop.store(true, Ordering::SeqCst);
    let w = watcher.map(|h| h.join().unwrap_or_default());
    json::print(&ChurnAnswer {
        pairs,
        elapsed_s: Num(elapsed),
        rate: Num(pairs as f64 / elapsed),
        target_rate: Num(rate),
        start_errors: start_err,
        stop_errors: stop_err,
        first_error,
        pid1_cpu_s: Num(cpu as f64 / hz),
        pid1_cpu_percent: Num(cpu as f64 / hz / elapsed * 100.0),
        watcher: w.map(|w| WatcherAnswer {
            watched_dirs: w.watched,
            created_seen: w.created_seen,
            vanished_before_watch: w.vanished,
            watch_errors: w.vanished + w.other_errors,
            first_watch_error: w.first_error,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_call_round_trips_through_the_parser() {
        let m = method_call(
            7,
            SD,
            SD_PATH,
            SD_MGR,
            "StartTransientUnit",
            "ssa(sv)a(sa(sv))",
            &[
                Arg::Str("x.slice"),
                Arg::Str("replace"),
                Arg::EmptyStructArray,
                Arg::EmptyStructArray,
            ],
        );
        assert_eq!(&m[..4], &[b'l', 1, 0, 1]);
        assert_eq!(message_len(&m[..16]), Some(m.len()));
        // Body: "x.slice" (4+7+1=12), "replace" (4+7+1=12, at 12), an empty
        // array (4, at 24) padded to 32, another (4, at 32) padded to 40.
        let body_len = u32::from_le_bytes(m[4..8].try_into().unwrap());
        assert_eq!(body_len, 40);
        assert_eq!(m.len() % 8, 0);
        let r = parse(&m).unwrap();
        assert_eq!(r.kind, 1);
        assert_eq!(r.first_string.as_deref(), Some("x.slice"));
    }

    #[test]
    fn error_replies_give_name_serial_and_message() {
        // An ERROR reply built by hand: fields ERROR_NAME, REPLY_SERIAL, SIGNATURE.
        let mut m = vec![b'l', 3, 1, 1];
        let mut body = Vec::new();
        put_str(&mut body, "Unit x.slice not loaded.");
        m.extend_from_slice(&(body.len() as u32).to_le_bytes());
        m.extend_from_slice(&9u32.to_le_bytes());
        m.extend_from_slice(&0u32.to_le_bytes());
        let start = m.len();
        pad(&mut m, 8);
        m.push(4);
        put_sig(&mut m, "s");
        put_str(&mut m, "org.freedesktop.systemd1.NoSuchUnit");
        pad(&mut m, 8);
        m.push(5);
        put_sig(&mut m, "u");
        put_u32(&mut m, 3);
        pad(&mut m, 8);
        m.push(8);
        put_sig(&mut m, "g");
        put_sig(&mut m, "s");
        let fl = (m.len() - start) as u32;
        m[12..16].copy_from_slice(&fl.to_le_bytes());
        pad(&mut m, 8);
        m.extend_from_slice(&body);
        assert_eq!(message_len(&m[..16]), Some(m.len()));
        let r = parse(&m).unwrap();
        assert_eq!(r.kind, 3);
        assert_eq!(r.reply_serial, Some(3));
        assert_eq!(
            r.error_name.as_deref(),
            Some("org.freedesktop.systemd1.NoSuchUnit")
        );
        assert_eq!(r.first_string.as_deref(), Some("Unit x.slice not loaded."));
    }

    #[test]
    fn answer_has_watcher_keys_only_with_a_watcher() {
        let mut a = ChurnAnswer {
            pairs: 3,
            elapsed_s: Num(1.5),
            rate: Num(2.0),
            target_rate: Num(50.0),
            start_errors: 0,
            stop_errors: 1,
            first_error: None,
            pid1_cpu_s: Num(0.01),
            pid1_cpu_percent: Num(0.5),
            watcher: None,
        };
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"pairs":3,"elapsed_s":1.5,"rate":2,"target_rate":50,"start_errors":0,"stop_errors":1,"first_error":null,"pid1_cpu_s":0.01,"pid1_cpu_percent":0.5}"#
        );
        a.watcher = Some(WatcherAnswer {
            watched_dirs: 4,
            created_seen: 2,
            vanished_before_watch: 1,
            watch_errors: 1,
            first_watch_error: Some("gone".into()),
        });
        let s = serde_json::to_string(&a).unwrap();
        assert!(
            s.ends_with(r#""pid1_cpu_percent":0.5,"watched_dirs":4,"created_seen":2,"vanished_before_watch":1,"watch_errors":1,"first_watch_error":"gone"}"#),
            "{s}"
        );
    }

    #[test]
    fn cpu_ticks_skip_commands_with_spaces() {
        let stat = "1 (systemd (x)) S 0 1 1 0 -1 4194560 100 200 0 0 155 221 0 0 20 0 1 0 5";
        assert_eq!(cpu_ticks(stat), Some(376));
    }
}
