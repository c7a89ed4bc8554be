//! `cgroup-mount v1|v2 CONTROLLER...` and the /proc parsers it needs.

use crate::args::Parsed;
use crate::json;
use crate::util::{self, Fail, R};
use serde::{Serialize, Serializer};
use std::ffi::CString;
use std::io;
use std::path::Path;

pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

#[derive(Debug, Clone, PartialEq)]
pub struct ProcCgroup {
    pub name: String,
    pub hierarchy: u32,
    pub num_cgroups: u64,
    pub enabled: bool,
}

/// Parse /proc/cgroups (`#subsys_name hierarchy num_cgroups enabled`).
pub fn parse_proc_cgroups(text: &str) -> Vec<ProcCgroup> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 4 {
                return None;
            }
            Some(ProcCgroup {
                name: f[0].to_string(),
                hierarchy: f[1].parse().ok()?,
                num_cgroups: f[2].parse().ok()?,
                enabled: f[3] == "1",
            })
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    pub mount_point: String,
    pub fstype: String,
    pub super_opts: Vec<String>,
}

/// `cgroup-mount`'s answer.
#[derive(Debug, Serialize)]
pub struct MountAnswer<'a> {
    pub version: &'a str,
    pub root: &'a str,
    /// Controller → the directory to make cgroups in, in command-line order.
    #[serde(serialize_with = "ordered_map")]
    pub paths: Vec<(String, String)>,
    /// What this call mounted (`tmpfs`, `cgroup2` or controller names).
    pub mounted_now: Vec<String>,
}

/// Pairs as a JSON object, keeping their order.
fn ordered_map<S: Serializer>(pairs: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

fn unescape_mount(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse /proc/self/mountinfo.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            if sep < 5 || f.len() < sep + 4 {
                return None;
            }
            Some(Mount {
                mount_point: unescape_mount(f[4]),
                fstype: f[sep + 1].to_string(),
                super_opts: f[sep + 3].split(',').map(str::to_string).collect(),
            })
        })
        .collect()
}

/// The mount visible at `path` (the last one mounted there).
pub fn mount_at<'a>(mounts: &'a [Mount], path: &str) -> Option<&'a Mount> {
    mounts.iter().rev().find(|m| m.mount_point == path)
}

fn read_mounts() -> R<Vec<Mount>> {
    Ok(parse_mountinfo(&util::read_string(Path::new(
        "/proc/self/mountinfo",
    ))?))
}

fn do_mount(source: &str, target: &str, fstype: &str, data: &str) -> io::Result<()> {
    let s = CString::new(source).expect("no NUL");
    let t = CString::new(target).expect("no NUL");
    let f = CString::new(fstype).expect("no NUL");
    let d = CString::new(data).expect("no NUL");
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    // SAFETY: all pointers are valid NUL-terminated strings for the call's duration.
    let r = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), flags, d.as_ptr().cast()) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Check cgroup v1 controllers against /proc/cgroups; Err(unavailable) names the first
/// missing one. Only for v1: recent kernels list there only the controllers a v1 hierarchy
/// can take (a kernel without `CONFIG_MEMCG_V1` leaves `memory` out although cgroup2 has
/// it), so a v2 check reads the root's `cgroup.controllers` instead (`check_v2_available`).
pub fn check_available(proc_cgroups: &[ProcCgroup], ctrls: &[String]) -> R<()> {
    for c in ctrls {
        match proc_cgroups.iter().find(|p| &p.name == c) {
            None => {
                return Err(Fail::unavailable(format!(
                    "cgroup controller {c} is not available on cgroup v1: not listed in /proc/cgroups (not built into this kernel, or built for cgroup v2 only)"
                )))
            }
            Some(p) if !p.enabled => {
                return Err(Fail::unavailable(format!(
                    "cgroup controller {c} is disabled (enabled=0 in /proc/cgroups; see cgroup_disable= on the kernel command line)"
                )))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Check cgroup v2 controllers against the root's `cgroup.controllers` (its text: names
/// separated by spaces); Err(unavailable) names the first missing one and what is there.
pub fn check_v2_available(controllers: &str, ctrls: &[String]) -> R<()> {
    let available: Vec<&str> = controllers.split_whitespace().collect();
    for c in ctrls {
        if !available.contains(&c.as_str()) {
            let listed = if available.is_empty() {
                "it lists none".to_string()
            } else {
                format!("it lists {}", available.join(" "))
            };
            return Err(Fail::unavailable(format!(
                "cgroup controller {c} is not in {CGROUP_ROOT}/cgroup.controllers ({listed}): not built into this kernel, disabled with cgroup_disable=, or bound to a v1 hierarchy"
            )));
        }
    }
    Ok(())
}

pub fn cmd_cgroup_mount(args: &[String]) -> R<()> {
    let p: Parsed = crate::args::parse(args, &[])?;
    let Some(version) = p.positional.first() else {
        return Err(Fail::usage("usage: cgroup-mount v1|v2 CONTROLLER..."));
    };
    if version != "v1" && version != "v2" {
        return Err(Fail::usage(format!(
            "cgroup version must be v1 or v2, got {version:?}"
        )));
    }
    let ctrls: Vec<String> = p.positional[1..].to_vec();
    for c in &ctrls {
        if c.is_empty() || c.contains('/') || c.contains(',') || c.starts_with('.') {
            return Err(Fail::usage(format!("bad controller name {c:?}")));
        }
    }
    if version == "v1" {
        let pc = parse_proc_cgroups(&util::read_string(Path::new("/proc/cgroups"))?);
        check_available(&pc, &ctrls)?;
    }
    std::fs::create_dir_all(CGROUP_ROOT)
        .map_err(|e| Fail::os(format!("mkdir {CGROUP_ROOT}"), &e))?;
    let mut mounted_now: Vec<String> = Vec::new();
    let mut paths: Vec<(String, String)> = Vec::new();
    match version.as_str() {
        "v1" => {
            let mounts = read_mounts()?;
            match mount_at(&mounts, CGROUP_ROOT) {
                None => {
                    do_mount("cgroup_root", CGROUP_ROOT, "tmpfs", "mode=755")
                        .map_err(|e| Fail::os(format!("mount tmpfs on {CGROUP_ROOT}"), &e))?;
                    mounted_now.push("tmpfs".into());
                }
                Some(m) if m.fstype == "tmpfs" => {}
                Some(m) => {
                    return Err(Fail::unavailable(format!(
                        "{CGROUP_ROOT} already holds a {} mount: this guest is not set up for cgroup v1",
                        m.fstype
                    )))
                }
            }
            let mounts = read_mounts()?;
            for c in &ctrls {
                let target = format!("{CGROUP_ROOT}/{c}");
                let already = mount_at(&mounts, &target)
                    .is_some_and(|m| m.fstype == "cgroup" && m.super_opts.iter().any(|o| o == c));
                if !already {
                    std::fs::create_dir_all(&target)
                        .map_err(|e| Fail::os(format!("mkdir {target}"), &e))?;
                    if let Err(e) = do_mount("cgroup", &target, "cgroup", c) {
                        let what = format!("mount -t cgroup -o {c} cgroup {target}");
                        return Err(match e.raw_os_error() {
                            Some(libc::EBUSY) => Fail::unavailable(format!(
                                "{what}: {} (controller {c} is bound to another hierarchy, e.g. cgroup2)",
                                util::err_text(&e)
                            )),
                            // The kernel logs "cgroup: Unknown subsys name": the controller
                            // exists for cgroup2 only (e.g. CONFIG_MEMCG_V1=n since 6.11).
                            Some(libc::EINVAL) | Some(libc::ENOENT) => Fail::unavailable(format!(
                                "{what}: {} (this kernel has no cgroup v1 support for {c})",
                                util::err_text(&e)
                            )),
                            _ => Fail::os(what, &e),
                        });
                    }
                    mounted_now.push(c.clone());
                }
                paths.push((c.clone(), target));
            }
        }
        "v2" => {
            let mounts = read_mounts()?;
            match mount_at(&mounts, CGROUP_ROOT) {
                None => {
                    do_mount("cgroup2", CGROUP_ROOT, "cgroup2", "").map_err(|e| {
                        Fail::os(format!("mount -t cgroup2 cgroup2 {CGROUP_ROOT}"), &e)
                    })?;
                    mounted_now.push("cgroup2".into());
                }
                Some(m) if m.fstype == "cgroup2" => {}
                Some(m) => {
                    return Err(Fail::unavailable(format!(
                    "{CGROUP_ROOT} already holds a {} mount: this guest is set up for cgroup v1",
                    m.fstype
                )))
                }
            }
            let root = Path::new(CGROUP_ROOT);
            check_v2_available(
                &util::read_string(&root.join("cgroup.controllers"))?,
                &ctrls,
            )?;
            let sc_path = root.join("cgroup.subtree_control");
            for c in &ctrls {
                let enabled = util::read_string(&sc_path)?;
                if !enabled.split_whitespace().any(|x| x == c) {
                    util::write_ctl(&sc_path, &format!("+{c}")).map_err(|e| {
                        Fail::os(format!("write +{c} to {}", sc_path.display()), &e)
                    })?;
                }
                paths.push((c.clone(), CGROUP_ROOT.to_string()));
            }
        }
        other => {
            return Err(Fail::usage(format!(
                "cgroup version must be v1 or v2, got {other:?}"
            )))
        }
    }
    json::print(&MountAnswer {
        version,
        root: CGROUP_ROOT,
        paths,
        mounted_now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROC_CGROUPS: &str = "#subsys_name\thierarchy\tnum_cgroups\tenabled\n\
cpuset\t0\t1\t1\nmemory\t7\t65535\t1\npids\t0\t1\t0\n";

    #[test]
    fn proc_cgroups() {
        let v = parse_proc_cgroups(PROC_CGROUPS);
        assert_eq!(v.len(), 3);
        assert_eq!(
            v[1],
            ProcCgroup {
                name: "memory".into(),
                hierarchy: 7,
                num_cgroups: 65535,
                enabled: true
            }
        );
        assert!(check_available(&v, &["memory".into(), "cpuset".into()]).is_ok());
        let e = check_available(&v, &["pids".into()]).unwrap_err();
        assert_eq!(e.code, 3);
        assert!(e.msg.contains("disabled"));
        assert_eq!(
            check_available(&v, &["hugetlb".into()]).unwrap_err().code,
            3
        );
    }

    /// A v2-only memory controller, as Debian's 7.2.13+deb14-amd64 (sid) shows it: its
    /// /proc/cgroups lists only what a v1 hierarchy can take (no memory: CONFIG_MEMCG_V1
    /// is off; no cpuset either), while the cgroup2 root offers both. The v2 check must not
    /// consult /proc/cgroups.
    #[test]
    fn v2_controllers_come_from_cgroup_controllers_not_proc_cgroups() {
        let proc_cgroups = "#subsys_name\thierarchy\tnum_cgroups\tenabled\n\
cpu\t0\t1\t1\ncpuacct\t0\t1\t1\nblkio\t0\t1\t1\ndevices\t0\t1\t1\nfreezer\t0\t1\t1\n\
net_cls\t0\t1\t1\nperf_event\t0\t1\t1\nnet_prio\t0\t1\t1\nhugetlb\t0\t1\t1\n\
pids\t0\t1\t1\nrdma\t0\t1\t1\nmisc\t0\t1\t1\n";
        let root = "cpuset cpu io memory hugetlb pids rdma misc\n";
        let mem = ["memory".to_string()];
        // On v1 /proc/cgroups is right: this kernel has no v1 memory controller (this is what
        // a v2 cell was told before, falsely).
        let v1 = check_available(&parse_proc_cgroups(proc_cgroups), &mem).unwrap_err();
        assert_eq!(v1.code, 3);
        assert!(v1.msg.contains("not listed in /proc/cgroups"), "{}", v1.msg);
        // The v2 answer: available.
        assert!(check_v2_available(root, &mem).is_ok());
        assert!(check_v2_available(root, &["memory".into(), "pids".into()]).is_ok());
        assert!(check_v2_available(root, &["cpuset".into()]).is_ok());
        // Missing on v2: says so and lists what is there.
        let e = check_v2_available(root, &["blkio".into()]).unwrap_err();
        assert_eq!(e.code, 3);
        assert!(
            e.msg.contains("cgroup.controllers") && e.msg.contains("it lists cpuset cpu io memory"),
            "{}",
            e.msg
        );
        let e = check_v2_available("\n", &mem).unwrap_err();
        assert!(e.msg.contains("it lists none"), "{}", e.msg);
        // A name that is a prefix of a listed one is not that one.
        assert!(check_v2_available("cpuset", &["cpu".into()]).is_err());
    }

    #[test]
    fn answer_keeps_controller_order() {
        let a = MountAnswer {
            version: "v1",
            root: CGROUP_ROOT,
            paths: vec![
                ("pids".into(), "/sys/fs/cgroup/pids".into()),
                ("memory".into(), "/sys/fs/cgroup/memory".into()),
            ],
            mounted_now: vec!["tmpfs".into(), "pids".into()],
        };
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"version":"v1","root":"/sys/fs/cgroup","paths":{"pids":"/sys/fs/cgroup/pids","memory":"/sys/fs/cgroup/memory"},"mounted_now":["tmpfs","pids"]}"#
        );
    }

    #[test]
    fn mountinfo() {
        let t = "22 1 0:20 / /sys rw,nosuid - sysfs sysfs rw\n\
30 22 0:26 / /sys/fs/cgroup rw shared:9 - tmpfs cgroup_root rw,mode=755\n\
31 30 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
40 22 0:30 / /mnt/with\\040space rw - ext4 /dev/vda rw\n";
        let m = parse_mountinfo(t);
        assert_eq!(m.len(), 4);
        assert_eq!(mount_at(&m, "/sys/fs/cgroup").unwrap().fstype, "tmpfs");
        let mem = mount_at(&m, "/sys/fs/cgroup/memory").unwrap();
        assert_eq!(mem.fstype, "cgroup");
        assert!(mem.super_opts.contains(&"memory".to_string()));
        assert_eq!(m[3].mount_point, "/mnt/with space");
        assert!(mount_at(&m, "/nope").is_none());
    }
}
