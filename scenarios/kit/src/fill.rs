//! `memcg-fill` and `memcg-rmdir`: create / remove numbered cgroup directories
//! in one process (never a fork per cgroup).

use crate::json::{self, Errno, Num};
use crate::util::{self, Fail, R};
use serde::Serialize;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Instant;

/// Errnos meaning "the kernel refuses more memory cgroups": ENOMEM before
/// Linux commit 11d6761218d1 (5.4-stable), ENOSPC after it (idr_alloc), and
/// EBUSY once memcg IDs moved to an xarray (xa_alloc; seen on Debian 6.12).
pub fn is_refusal(errno: i32) -> bool {
    errno == libc::ENOSPC || errno == libc::ENOMEM || errno == libc::EBUSY
}

/// Name `<prefix>-<index>`; returns the index when `name` has that form.
pub fn parse_numbered(name: &str, prefix: &str) -> Option<u64> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
    if rest.is_empty()
        || !rest.bytes().all(|b| b.is_ascii_digit())
        || (rest.len() > 1 && rest.starts_with('0'))
    {
        return None;
    }
    rest.parse().ok()
}

/// `memcg-fill`'s answer.
#[derive(Debug, Serialize)]
pub struct FillAnswer<'a> {
    pub root: &'a str,
    pub prefix: &'a str,
    pub start: u64,
    pub created: u64,
    pub limit: Option<u64>,
    /// `limit`, `refused` (see [`is_refusal`]) or `error`.
    pub stopped_by: &'a str,
    #[serde(flatten)]
    pub errno: Errno,
    pub failed_path: Option<&'a str>,
    pub elapsed_s: Num,
    pub ns_per_mkdir: Option<Num>,
}

/// `memcg-rmdir`'s answer.
#[derive(Debug, Serialize)]
pub struct RmdirAnswer<'a> {
    pub root: String,
    pub prefix: &'a str,
    pub found: u64,
    pub removed: u64,
    pub failed: u64,
    pub remaining: u64,
    pub first_error_path: Option<&'a str>,
    #[serde(flatten)]
    pub errno: Errno,
    pub elapsed_s: Num,
}

/// `try-mkdir`'s answer: a failure is data here.
#[derive(Debug, Serialize)]
pub struct TryMkdirAnswer<'a> {
    pub created: u64,
    pub ok: bool,
    pub failed_path: Option<&'a str>,
    #[serde(flatten)]
    pub errno: Errno,
    pub refused: bool,
    pub message: Option<String>,
}

fn check_prefix(prefix: &str) -> R<()> {
    if prefix.is_empty() || prefix.contains('/') || prefix.contains('\0') {
        return Err(Fail::usage(format!("bad --prefix {prefix:?}")));
    }
    Ok(())
}

pub fn cmd_memcg_fill(args: &[String]) -> R<()> {
    let p = crate::args::parse(
        args,
        &[
            ("root", true),
            ("limit", true),
            ("prefix", true),
            ("start", true),
        ],
    )?;
    p.no_positional()?;
    let root = p.required("root")?;
    let limit = p.u64_opt("limit")?.filter(|&l| l > 0);
    let prefix = p.get_nonempty("prefix").unwrap_or("fill");
    check_prefix(prefix)?;
    let start = p.u64_or("start", 1)?;
    if !Path::new(root).is_dir() {
        return Err(Fail::failed(format!("--root {root}: not a directory")));
    }

    let mut path: Vec<u8> = format!("{}/{}-", root.trim_end_matches('/'), prefix).into_bytes();
    let base_len = path.len();
    let mut created: u64 = 0;
    let mut fail_errno: Option<i32> = None;
    let mut failed_path = String::new();
    let t0 = Instant::now();
    loop {
        if limit.is_some_and(|l| created >= l) {
            break;
        }
        path.truncate(base_len);
        path.extend_from_slice((start + created).to_string().as_bytes());
        let c = CString::new(path.clone()).expect("no NUL in path");
        // SAFETY: c is a valid NUL-terminated path.
        if unsafe { libc::mkdir(c.as_ptr(), 0o755) } != 0 {
            fail_errno = Some(util::last_errno());
            failed_path = String::from_utf8_lossy(&path).into_owned();
            break;
        }
        created += 1;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let stopped_by = match fail_errno {
        None => "limit",
        Some(e) if is_refusal(e) => "refused",
        Some(_) => "error",
    };
    json::print(&FillAnswer {
        root,
        prefix,
        start,
        created,
        limit,
        stopped_by,
        errno: Errno::of(fail_errno),
        failed_path: fail_errno.map(|_| failed_path.as_str()),
        elapsed_s: Num(elapsed),
        ns_per_mkdir: (created > 0).then(|| Num(elapsed * 1e9 / created as f64)),
    })?;
    if stopped_by == "error" {
        let e = fail_errno.unwrap_or(0);
        return Err(Fail::failed(format!(
            "mkdir {failed_path}: {}",
            util::strerror(e)
        )));
    }
    Ok(())
}

/// Indices of `<prefix>-<n>` entries in `root`, ascending.
pub fn list_numbered(root: &Path, prefix: &str) -> R<Vec<u64>> {
    let rd = std::fs::read_dir(root)
        .map_err(|e| Fail::os(format!("read directory {}", root.display()), &e))?;
    let mut v = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| Fail::os(format!("read directory {}", root.display()), &e))?;
        if let Some(n) = ent
            .file_name()
            .to_str()
            .and_then(|s| parse_numbered(s, prefix))
        {
            v.push(n);
        }
    }
    v.sort_unstable();
    Ok(v)
}

pub fn cmd_memcg_rmdir(args: &[String]) -> R<()> {
    let p = crate::args::parse(args, &[("root", true), ("prefix", true), ("count", true)])?;
    p.no_positional()?;
    let root = Path::new(p.required("root")?);
    let prefix = p.get_nonempty("prefix").unwrap_or("fill");
    check_prefix(prefix)?;
    let count = p.u64_opt("count")?;
    let t0 = Instant::now();
    let found = list_numbered(root, prefix)?;
    let want = count
        .map(|c| c.min(found.len() as u64) as usize)
        .unwrap_or(found.len());
    let mut removed: u64 = 0;
    let mut failed: u64 = 0;
    let mut first_err: Option<(String, i32)> = None;
    let mut i = 0;
    // Remove from the lowest index up; with --count keep going past failures
    // until exactly `count` are gone or the list is exhausted.
    while (removed as usize) < want && i < found.len() {
        let path = root.join(format!("{prefix}-{}", found[i]));
        i += 1;
        let c = CString::new(path.as_os_str().as_bytes()).expect("no NUL");
        // SAFETY: valid NUL-terminated path.
        if unsafe { libc::rmdir(c.as_ptr()) } == 0 {
            removed += 1;
        } else {
            failed += 1;
            if first_err.is_none() {
                first_err = Some((path.display().to_string(), util::last_errno()));
            }
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    json::print(&RmdirAnswer {
        root: root.display().to_string(),
        prefix,
        found: found.len() as u64,
        removed,
        failed,
        remaining: found.len() as u64 - removed,
        first_error_path: first_err.as_ref().map(|(p, _)| p.as_str()),
        errno: Errno::of(first_err.as_ref().map(|(_, e)| *e)),
        elapsed_s: Num(elapsed),
    })?;
    if let Some(c) = count {
        if removed < c {
            return Err(Fail::failed(format!(
                "memcg-rmdir: removed {removed} of the {c} requested ({} found, {failed} failed{})",
                found.len(),
                first_err
                    .map(|(p, e)| format!("; rmdir {p}: {}", util::strerror(e)))
                    .unwrap_or_default()
            )));
        }
    } else if let Some((p, e)) = first_err {
        return Err(Fail::failed(format!(
            "rmdir {p}: {} ({failed} failed)",
            util::strerror(e)
        )));
    }
    Ok(())
}

/// `try-mkdir PATH...`: mkdir each path in order, stop at the first failure.
/// A failure is data, not an error: exit 0 with the errno in the JSON.
pub fn cmd_try_mkdir(args: &[String]) -> R<()> {
    let p = crate::args::parse(args, &[])?;
    if p.positional.is_empty() {
        return Err(Fail::usage("usage: try-mkdir PATH..."));
    }
    let mut created = 0u64;
    let mut fail: Option<(&str, i32)> = None;
    for path in &p.positional {
        let c =
            CString::new(path.as_bytes()).map_err(|_| Fail::usage("path contains a NUL byte"))?;
        // SAFETY: valid NUL-terminated path.
        if unsafe { libc::mkdir(c.as_ptr(), 0o755) } != 0 {
            fail = Some((path, util::last_errno()));
            break;
        }
        created += 1;
    }
    json::print(&TryMkdirAnswer {
        created,
        ok: fail.is_none(),
        failed_path: fail.map(|(p, _)| p),
        errno: Errno::of(fail.map(|(_, e)| e)),
        refused: fail.is_some_and(|(_, e)| is_refusal(e)),
        message: fail.map(|(p, e)| format!("mkdir {p}: {}", util::strerror(e))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_names() {
        assert_eq!(parse_numbered("fill-1", "fill"), Some(1));
        assert_eq!(parse_numbered("fill-65533", "fill"), Some(65533));
        assert_eq!(parse_numbered("fill-", "fill"), None);
        assert_eq!(parse_numbered("fill-01", "fill"), None);
        assert_eq!(parse_numbered("fill-1a", "fill"), None);
        assert_eq!(parse_numbered("fillx-1", "fill"), None);
        assert_eq!(parse_numbered("probe-3", "fill"), None);
        assert_eq!(parse_numbered("memory.stat", "fill"), None);
    }

    #[test]
    fn refusal_errnos() {
        assert!(is_refusal(libc::ENOSPC));
        assert!(is_refusal(libc::ENOMEM));
        assert!(is_refusal(libc::EBUSY));
        assert!(!is_refusal(libc::EEXIST));
    }

    #[test]
    fn fill_and_rmdir_plain_directories() {
        // Exercises the loops on an ordinary temp directory (no cgroups touched).
        let dir = std::env::temp_dir().join(format!("repro-kit-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir(dir.join("fill-2")).unwrap(); // collides with the 2nd mkdir
        std::fs::create_dir(dir.join("other")).unwrap();
        let v = list_numbered(&dir, "fill").unwrap();
        assert_eq!(v, vec![2]);
        std::fs::create_dir(dir.join("fill-10")).unwrap();
        std::fs::create_dir(dir.join("fill-1")).unwrap();
        assert_eq!(list_numbered(&dir, "fill").unwrap(), vec![1, 2, 10]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
