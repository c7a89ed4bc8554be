//! Test fixtures shared by the reporters' unit tests: cells with given
//! outcomes and a run that has every status.
#![cfg(test)]

use crate::model::*;
use crate::report::summary::tests::{attempt, summary};
use crate::report::{CellRecord, Expect, RunSummary};

/// A cell of `scenario` on `kernel` with `cgroup`, one attempt per
/// outcome, the key metric `created` set to `metric` on each.
pub fn cell(
    scenario: &str,
    kernel: &str,
    cgroup: &str,
    expect: Expect,
    outcomes: &[Outcome],
    metric: i64,
) -> CellRecord {
    let mut c = summary().cells.remove(0);
    c.key = format!("{scenario}/kernel={kernel}/cgroup={cgroup}")
        .parse()
        .unwrap();
    c.expect = expect;
    let dir = c.id().replace('/', "__");
    c.attempts = outcomes
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let mut a = attempt(*o);
            a.number = i as u32 + 1;
            a.kernel.alias = kernel.into();
            a.reason = format!("{o} because of attempt {}", i + 1);
            a.metrics.get_mut("created").unwrap().value = serde_json::json!(metric);
            let d = format!("{dir}/attempt-{}", i + 1);
            a.artifacts = Artifacts {
                journal: None,
                dmesg: None,
                console: format!("{d}/console.log"),
                stdout: format!("{d}/stdout.log"),
                stderr: format!("{d}/stderr.log"),
                result: format!("{d}/out/result.jsonl"),
                dir: d,
            };
            a
        })
        .collect();
    c
}

/// A run with every status: two scenarios, two kernels, v1 and v2.
pub fn mixed() -> RunSummary {
    use Outcome::*;
    let mut s = summary();
    s.run_id = "20261122-201500-3fa2".into();
    s.meta = crate::report::RunMeta {
        repro_version: "0.1.0".into(),
        qemu_version: "QEMU emulator version 7.2.15".into(),
        host_kernel: "6.1.0-40-amd64".into(),
        accel: "tcg".into(),
        accel_reason: "/dev/kvm is missing".into(),
        images: [("6.1".to_string(), "cd".repeat(32))].into(),
        command: "repro run memcg-fill --kernel 6.1,6.12".into(),
    };
    let mut crashed = cell(
        "memcg-fill",
        "6.12",
        "v2",
        Expect::NotReproduced,
        &[Crashed],
        7,
    );
    crashed.attempts[0].crash = Some(ConsoleFinding {
        kind: FindingKind::Panic,
        title: "Kernel panic - not syncing: Out of memory".into(),
        excerpt: "Kernel panic - not syncing: Out of memory\nCPU: 0 PID: 1".into(),
        source: FindingSource::Console,
    });
    let mut errored = cell("pid-leak", "6.12", "v2", Expect::Reproduced, &[Error], 0);
    errored.attempts[0].phase = Some(Phase::Boot);
    errored.attempts[0].reason = "qemu exited with status 1\nmore detail".into();
    errored.key_metric = None;
    s.cells = vec![
        cell(
            "memcg-fill",
            "6.1",
            "v1",
            Expect::Reproduced,
            &[Reproduced],
            65533,
        ),
        cell(
            "memcg-fill",
            "6.1",
            "v2",
            Expect::NotReproduced,
            &[NotReproduced],
            12,
        ),
        cell(
            "memcg-fill",
            "6.12",
            "v1",
            Expect::Reproduced,
            &[Reproduced, NotReproduced, Reproduced],
            65533,
        ),
        crashed,
        cell("pid-leak", "6.1", "v2", Expect::Any, &[Skipped], 0),
        errored,
    ];
    s.cells[4].key_metric = None;
    let passed = &mut s.cells[0].attempts[0];
    passed.artifacts.dmesg = Some(format!("{}/dmesg.log", passed.artifacts.dir));
    passed.warnings = vec![warning()];
    s
}

/// A kernel warning whose excerpt came from `dmesg`.
pub fn warning() -> ConsoleFinding {
    ConsoleFinding {
        kind: FindingKind::Warning,
        title: "WARNING: CPU: 0 PID: 151 at mm/memcontrol.c:7129 <mem_cgroup>+0x1/0x2".into(),
        excerpt: "------------[ cut here ]------------\n\
                  WARNING: CPU: 0 PID: 151 at mm/memcontrol.c:7129 <mem_cgroup>+0x1/0x2\n\
                  Modules linked in: fuse\nCall Trace:\n <TASK>"
            .into(),
        source: FindingSource::Dmesg,
    }
}
