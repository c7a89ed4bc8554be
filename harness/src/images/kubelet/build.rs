//! Compiling one command of a Go tree offline with the cached toolchain: `go list -deps`
//! for the number of packages, then `go build -v` (vendored modules, no proxy, no cgo,
//! stripped, the version set by `-ldflags -X`), whose package lines become progress
//! events. Everything both print goes to the build log; a failure quotes the first
//! compiler error and names the log.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use super::go::Toolchain;
use super::{io_err, BuildEvent, KubeletError};

/// The environment of every `go` run: only what the build needs, nothing from the host's
/// Go setup (no proxy, no module downloads, no cgo).
fn go_command(go: &Toolchain, tree: &Path, gocache: &Path) -> Command {
    let go_bin = go.go();
    let mut cmd = Command::new(&go_bin);
    let scratch = tree.parent().unwrap_or(tree);
    cmd.current_dir(tree)
        .env_clear()
        .env(
            "PATH",
            format!(
                "{}:/usr/local/bin:/usr/bin:/bin",
                go.goroot.join("bin").display()
            ),
        )
        .env("HOME", scratch)
        .env("GOROOT", &go.goroot)
        .env("GOPATH", scratch.join("gopath"))
        .env("GOCACHE", gocache)
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-mod=vendor")
        .env("GO111MODULE", "on")
        .env("CGO_ENABLED", "0");
    if let Some(tmp) = std::env::var_os("TMPDIR") {
        cmd.env("TMPDIR", tmp);
    }
    cmd
}

fn spawn_err(program: &Path) -> impl FnOnce(std::io::Error) -> KubeletError + '_ {
    move |source| KubeletError::Spawn {
        program: program.display().to_string(),
        source,
        hint: "",
    }
}

fn open_log(log: &Path) -> Result<File, KubeletError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io_err(log))
}

/// Builds `./cmd/<command>` of `tree` into `out`, appending to `log`.
#[allow(clippy::too_many_arguments)]
pub fn go_build(
    go: &Toolchain,
    tree: &Path,
    gocache: &Path,
    command: &str,
    ldflags: &str,
    out: &Path,
    log: &Path,
    event: &dyn Fn(BuildEvent),
) -> Result<(), KubeletError> {
    let pkg = format!("./cmd/{command}");
    let mut log_file = open_log(log)?;
    let note = |f: &mut File, s: &str| f.write_all(s.as_bytes()).map_err(io_err(log));

    event(BuildEvent::Step(format!(
        "listing the packages of {command}"
    )));
    note(&mut log_file, &format!("$ go list -deps {pkg}\n"))?;
    let listed = go_command(go, tree, gocache)
        .args(["list", "-deps", &pkg])
        .stderr(Stdio::from(log_file.try_clone().map_err(io_err(log))?))
        .output()
        .map_err(spawn_err(&go.go()))?;
    if !listed.status.success() {
        return Err(KubeletError::GoList {
            command: command.to_string(),
            status: exit_text(&listed.status),
            first_error: first_error(&read_lines(log)),
            log: log.to_path_buf(),
        });
    }
    let total = String::from_utf8_lossy(&listed.stdout).lines().count();

    event(BuildEvent::Step(format!(
        "compiling {command} ({total} packages)"
    )));
    note(
        &mut log_file,
        &format!(
            "$ go build -v -ldflags \"{ldflags}\" -o {} {pkg}\n",
            out.display()
        ),
    )?;
    let mut child = go_command(go, tree, gocache)
        .args(["build", "-v", "-ldflags", ldflags, "-o"])
        .arg(out)
        .arg(&pkg)
        .stdout(Stdio::from(log_file.try_clone().map_err(io_err(log))?))
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err(&go.go()))?;
    let mut done = 0usize;
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines() {
            let line = line.map_err(io_err(log))?;
            note(&mut log_file, &format!("{line}\n"))?;
            if is_package_line(&line) {
                done += 1;
                event(BuildEvent::Compile {
                    command: command.to_string(),
                    done: done.min(total),
                    total,
                    package: line,
                });
            }
        }
    }
    let status = child.wait().map_err(spawn_err(&go.go()))?;
    if !status.success() {
        return Err(KubeletError::GoBuild {
            command: command.to_string(),
            status: exit_text(&status),
            first_error: first_error(&read_lines(log)),
            log: log.to_path_buf(),
        });
    }
    note(
        &mut log_file,
        &format!("built {} ({done} packages compiled)\n", out.display()),
    )
}

/// What a built kubelet prints for `--version` (`Kubernetes v1.20.2`).
pub fn binary_version(kubelet: &Path) -> Result<String, KubeletError> {
    let out = Command::new(kubelet)
        .arg("--version")
        .output()
        .map_err(spawn_err(kubelet))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn exit_text(status: &std::process::ExitStatus) -> String {
    status
        .code()
        .map_or_else(|| status.to_string(), |c| c.to_string())
}

fn read_lines(log: &Path) -> Vec<String> {
    std::fs::read(log)
        .map(|b| {
            String::from_utf8_lossy(&b)
                .lines()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a line of `go build -v` names a package it compiled: one import path, no
/// blanks, not a `#` header, a `$` command or a `file.go:line:` message.
pub fn is_package_line(line: &str) -> bool {
    let l = line.trim();
    !l.is_empty()
        && !l.contains(char::is_whitespace)
        && !l.starts_with(['#', '$'])
        && !l.contains(".go:")
        && !l.ends_with(':')
        && l.bytes().all(|b| b.is_ascii_graphic())
}

/// The line to quote from a failed build's log: the first compiler message
/// (`file.go:12:3: ...`), else the first `go:`/`can't load package` line, else the last
/// line that is not a command echo.
pub fn first_error(lines: &[String]) -> String {
    let compiler = regex::Regex::new(r"\.go:\d+(:\d+)?: ").ok();
    lines
        .iter()
        .find(|l| compiler.as_ref().is_some_and(|re| re.is_match(l)))
        .or_else(|| {
            lines
                .iter()
                .find(|l| l.starts_with("go: ") || l.starts_with("can't load package"))
        })
        .or_else(|| {
            lines
                .iter()
                .rev()
                .find(|l| !l.starts_with('$') && !l.trim().is_empty())
        })
        .map(|l| l.trim().to_string())
        .unwrap_or_else(|| "no output".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(
        "k8s.io/kubernetes/vendor/github.com/opencontainers/runc/libcontainer",
        true
    )]
    #[case("runtime/internal/sys", true)]
    #[case("k8s.io/kubernetes/cmd/kubelet", true)]
    #[case("# k8s.io/kubernetes/pkg/kubelet", false)]
    #[case("pkg/kubelet/kubelet.go:12:3: undefined: foo", false)]
    #[case("$ go build -v ./cmd/kubelet", false)]
    #[case("go: inconsistent vendoring in /x:", false)]
    #[case("", false)]
    fn package_lines(#[case] line: &str, #[case] want: bool) {
        assert_eq!(is_package_line(line), want, "{line}");
    }

    #[test]
    fn the_first_compiler_error_is_quoted() {
        let log = |s: &str| s.lines().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(
            first_error(&log("$ go build\nruntime\n# k8s.io/kubernetes/pkg/kubelet\npkg/kubelet/kubelet.go:12:3: undefined: foo\npkg/kubelet/kubelet.go:13:1: other\n")),
            "pkg/kubelet/kubelet.go:12:3: undefined: foo"
        );
        assert_eq!(
            first_error(&log(
                "$ go list -deps ./cmd/kubelet\ngo: inconsistent vendoring in /src:\n\tfoo\n"
            )),
            "go: inconsistent vendoring in /src:"
        );
        assert_eq!(
            first_error(&log("$ go build\nsignal: killed\n")),
            "signal: killed"
        );
        assert_eq!(first_error(&[]), "no output");
    }

    /// A stand-in `go` (a shell script) that lists three packages, compiles two, then
    /// fails like the compiler: the events, the log and the quoted error are the real
    /// plumbing's.
    #[test]
    fn go_build_reports_progress_keeps_the_log_and_quotes_the_first_error() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let goroot = d.path().join("goroot");
        std::fs::create_dir_all(goroot.join("bin")).unwrap();
        let go = goroot.join("bin/go");
        std::fs::write(
            &go,
            "#!/bin/sh\ncase \"$1\" in\nlist) printf 'a\\nb\\nk8s.io/kubernetes/cmd/kubelet\\n';;\nbuild) [ \"$GOFLAGS\" = -mod=vendor ] || exit 9\n echo a >&2; echo b >&2; echo '# k8s.io/kubernetes/cmd/kubelet' >&2\n echo 'cmd/kubelet/app/server.go:3:1: undefined: x' >&2; exit 2;;\nesac\n",
        )
        .unwrap();
        std::fs::set_permissions(&go, std::fs::Permissions::from_mode(0o755)).unwrap();
        let tree = d.path().join("src/kubernetes-1.20.2");
        std::fs::create_dir_all(&tree).unwrap();
        let log = d.path().join("build.log");
        let events = std::sync::Mutex::new(Vec::new());
        let e = go_build(
            &Toolchain { goroot },
            &tree,
            &d.path().join("gocache"),
            "kubelet",
            "-s -w",
            &d.path().join("out"),
            &log,
            &|ev| events.lock().unwrap().push(ev),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            format!(
                "`go build` of kubelet failed (exit 2): cmd/kubelet/app/server.go:3:1: undefined: x; the full log is {}",
                log.display()
            )
        );
        let compiled: Vec<(usize, usize)> = events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|ev| match ev {
                BuildEvent::Compile { done, total, .. } => Some((*done, *total)),
                _ => None,
            })
            .collect();
        assert_eq!(compiled, [(1, 3), (2, 3)]);
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.starts_with("$ go list -deps ./cmd/kubelet\n$ go build -v -ldflags \"-s -w\""),
            "{text}"
        );
        assert!(text.ends_with("undefined: x\n"), "{text}");
    }
}
