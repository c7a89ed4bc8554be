//! repro-kit: the static helper that runs inside repro guests. One binary,
//! subcommands; hot loops and measurements live here so scenario scripts
//! never fork per iteration. See scenarios/README.md for the contract.

mod args;
mod cgroup;
mod dying;
mod fill;
mod init;
mod inotify;
mod json;
mod kmem;
mod memstat;
mod procscan;
/// The result-line contract, shared with the harness (which parses what the
/// kit writes); the kit uses its writing half.
#[allow(dead_code)]
#[path = "../../../harness/src/result_line.rs"]
mod result_line;
mod slices;
mod stats;
mod util;
mod zombie;

use util::{Fail, R};

const USAGE: &str = "usage: repro-kit SUBCOMMAND [ARGS]

result lines (appended to $REPRO_RESULT, or stdout when unset):
  emit metric NAME VALUE [UNIT] [--string]
  emit series NAME X Y X_UNIT Y_UNIT
  emit outcome reproduced|not-reproduced|skipped REASON
  emit log TEXT
  json-get KEY [KEY...] [--default V]   < one JSON object (dotted keys)

cgroups:
  cgroup-mount v1|v2 CONTROLLER...      (exit 3: controller unavailable)
  memcg-fill --root DIR [--limit N] [--prefix fill] [--start 1]
  memcg-rmdir --root DIR [--prefix fill] [--count N]
  try-mkdir PATH...                     (stops at the first failure; exit 0)
  dying-memcgs --parent DIR --count N --file-dir DIR [--file-kib 4]
               [--checkpoint M] [--stat-file F] [--reads R] [--prefix dying] [--no-emit]
  kmem-workload --cgroup DIR --dir DIR [--files 100] [--file-kib 4]
                [--dentries 1000] [--sockets 16]

systemd (root-filesystem guests):
  slice-churn [--rate 50] [--duration 30] [--prefix libcontainer]
              [--watch DIR]... [--bus /run/dbus/system_bus_socket]
              [--sample-ms 1000] [--series]

guest init (PID 1 of the initramfs guest; runs until the guest stops):
  init [--name NAME] [--log FILE] [--ready LINE --ready-port PORT] -- COMMAND [ARGS...]

measurements:
  memstat-time --file PATH [--reads N]
  inotify-exhaust [--uid 65534] [--max N]
  zombie-cron [--cgroup DIR] [--interval-ms 50] [--max-seconds 120]
              [--init none|tini] [--tini PATH] [--sample-ms 500]
              [--grandchild-ms 20] [--no-emit]

Every subcommand prints one JSON object on stdout; errors print
`repro-kit: <what failed>: <errno text>` and exit 1 (2: usage, 3: unavailable).";

fn run(argv: &[String]) -> R<()> {
    let Some(cmd) = argv.first() else {
        return Err(Fail::usage(USAGE));
    };
    let rest = &argv[1..];
    match cmd.as_str() {
        "emit" => json::cmd_emit(rest),
        "json-get" => json::cmd_json_get(rest),
        "cgroup-mount" => cgroup::cmd_cgroup_mount(rest),
        "memcg-fill" => fill::cmd_memcg_fill(rest),
        "memcg-rmdir" => fill::cmd_memcg_rmdir(rest),
        "try-mkdir" => fill::cmd_try_mkdir(rest),
        "dying-memcgs" => dying::cmd_dying_memcgs(rest),
        "kmem-workload" => kmem::cmd_kmem_workload(rest),
        "memstat-time" => memstat::cmd_memstat_time(rest),
        "inotify-exhaust" => inotify::cmd_inotify_exhaust(rest),
        "zombie-cron" => zombie::cmd_zombie_cron(rest),
        "zombie-cron-runner" => zombie::cmd_runner(rest),
        "slice-churn" => slices::cmd_slice_churn(rest),
        "init" => init::cmd_init(rest),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        "version" | "--version" => {
            println!("repro-kit {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        other => Err(Fail::usage(format!(
            "unknown subcommand {other:?} (try `repro-kit help`)"
        ))),
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if let Err(f) = run(&argv) {
        eprintln!("repro-kit: {f}");
        std::process::exit(f.code);
    }
}
