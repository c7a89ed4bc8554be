//! `kmem-workload`: a short-lived process in a cgroup that makes the kernel
//! allocate (and keep) memory charged to it: files with their inodes, dentries
//! and pages, negative dentries, sockets and pipes.

use crate::json::{self, Num};
use crate::util::{self, Fail, R};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `kmem-workload`'s answer.
#[derive(Debug, Serialize)]
pub struct KmemAnswer {
    pub cgroup: String,
    pub dir: String,
    pub files: u64,
    pub file_bytes: u64,
    pub dentries: u64,
    pub sockets: u64,
    pub elapsed_s: Num,
}

fn work(dir: &Path, files: u64, file_bytes: usize, dentries: u64, sockets: u64) -> i32 {
    let res = (|| -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let data = vec![0xa5u8; file_bytes];
        for i in 0..files {
            let mut f = std::fs::File::create(dir.join(format!("f-{i}")))?;
            f.write_all(&data)?;
        }
        // Lookups of names that do not exist leave negative dentries behind.
        for i in 0..dentries {
            let _ = std::fs::symlink_metadata(dir.join(format!("neg-{i}")));
        }
        for _ in 0..sockets {
            let mut sv = [0i32; 2];
            // SAFETY: sv is a valid out-array of two fds.
            if unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, sv.as_mut_ptr()) }
                != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            util::write_fd(sv[0], b"kmem");
            util::close(sv[0]);
            util::close(sv[1]);
            let (r, w) = util::pipe(true).map_err(|_| std::io::Error::last_os_error())?;
            util::write_fd(w, b"kmem");
            util::close(r);
            util::close(w);
        }
        Ok(())
    })();
    match res {
        Ok(()) => 0,
        Err(e) => e.raw_os_error().unwrap_or(255),
    }
}

pub fn cmd_kmem_workload(args: &[String]) -> R<()> {
    let p = crate::args::parse(
        args,
        &[
            ("cgroup", true),
            ("dir", true),
            ("files", true),
            ("file-kib", true),
            ("dentries", true),
            ("sockets", true),
        ],
    )?;
    p.no_positional()?;
    let cgroup = PathBuf::from(p.required("cgroup")?);
    let dir = PathBuf::from(p.required("dir")?);
    let files = p.u64_or("files", 100)?;
    let file_bytes = (p.u64_or("file-kib", 4)? * 1024) as usize;
    let dentries = p.u64_or("dentries", 1000)?;
    let sockets = p.u64_or("sockets", 16)?;
    if !cgroup.join("cgroup.procs").exists() {
        return Err(Fail::failed(format!(
            "--cgroup {}: not a cgroup directory",
            cgroup.display()
        )));
    }
    let t0 = Instant::now();
    let st = util::run_in_cgroup(&cgroup, || work(&dir, files, file_bytes, dentries, sockets))?;
    util::check_child(st, &format!("kmem workload in {}", cgroup.display()))?;
    json::print(&KmemAnswer {
        cgroup: cgroup.display().to_string(),
        dir: dir.display().to_string(),
        files,
        file_bytes: file_bytes as u64,
        dentries,
        sockets,
        elapsed_s: Num(t0.elapsed().as_secs_f64()),
    })
}
