//! Reading /proc from the host side: process states and parent links.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    pub state: u8,
    pub ppid: i32,
}

/// Parse the content of /proc/<pid>/stat. The command name sits in parentheses
/// and may itself contain spaces or ')', so split at the last ')'.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let mut rest = text.get(close + 1..)?.split_whitespace();
    let state = rest.next()?.bytes().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some(ProcStat { pid, state, ppid })
}

/// All processes currently visible in /proc (threads are not listed).
pub fn scan() -> Vec<ProcStat> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for ent in rd.flatten() {
        let name = ent.file_name();
        let Some(s) = name.to_str() else { continue };
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        // A process may vanish between readdir and read: skip it.
        if let Ok(t) = std::fs::read_to_string(format!("/proc/{s}/stat")) {
            if let Some(ps) = parse_stat(&t) {
                out.push(ps);
            }
        }
    }
    out
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TreeCount {
    /// processes in the subtree, `root` included
    pub procs: u64,
    /// of those, in state Z
    pub zombies: u64,
}

/// Count the processes below (and including) `root` by following PPid links.
pub fn count_tree(procs: &[ProcStat], root: i32) -> TreeCount {
    let mut in_tree = std::collections::HashSet::new();
    in_tree.insert(root);
    // Iterate to a fixed point; trees here are shallow (init -> job -> grandchild).
    loop {
        let before = in_tree.len();
        for p in procs {
            if in_tree.contains(&p.ppid) {
                in_tree.insert(p.pid);
            }
        }
        if in_tree.len() == before {
            break;
        }
    }
    let mut c = TreeCount::default();
    for p in procs {
        if in_tree.contains(&p.pid) {
            c.procs += 1;
            if p.state == b'Z' {
                c.zombies += 1;
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing() {
        let s = "1234 (repro-kit) S 1 1234 1234 0 -1 4194560 120 0 0 0 0 0 0 0 20 0 1 0";
        assert_eq!(
            parse_stat(s),
            Some(ProcStat {
                pid: 1234,
                state: b'S',
                ppid: 1
            })
        );
        let z = "77 (we ird) (x)) Z 70 77 77 0";
        assert_eq!(
            parse_stat(z),
            Some(ProcStat {
                pid: 77,
                state: b'Z',
                ppid: 70
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn tree_counting() {
        let p = |pid, state: u8, ppid| ProcStat { pid, state, ppid };
        let procs = vec![
            p(1, b'S', 0),
            p(100, b'S', 1),   // monitor
            p(101, b'S', 100), // ns init
            p(102, b'Z', 101),
            p(103, b'Z', 101),
            p(104, b'S', 101), // job
            p(105, b'S', 104), // grandchild
            p(200, b'Z', 1),   // unrelated zombie
        ];
        assert_eq!(
            count_tree(&procs, 101),
            TreeCount {
                procs: 5,
                zombies: 2
            }
        );
        assert_eq!(
            count_tree(&procs, 999),
            TreeCount {
                procs: 0,
                zombies: 0
            }
        );
    }

    #[test]
    fn scan_sees_self() {
        let me = std::process::id() as i32;
        let all = scan();
        let s = all.iter().find(|p| p.pid == me).expect("own pid in /proc");
        assert_eq!(s.ppid, std::os::unix::process::parent_id() as i32);
    }
}
