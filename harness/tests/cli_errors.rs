//! Bad input gets a clear message and exit status 2, before any boot;
//! what fails once the work has started (a download, an image build) is 3.
//! The exit-code table (`repro::model::exit::HELP`) is in `--help` and,
//! word for word, in README.md.

mod common;

use common::*;

fn stderr(args: &[&str]) -> (Option<i32>, String) {
    let out = run(args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unknown_kernel_lists_the_known_ones() {
    let (code, err) = stderr(&["run", "memcg-fill", "--kernel", "9.99"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("9.99"), "{err}");
    for k in ["bookworm", "6.1", "5.10", "6.12"] {
        assert!(err.contains(k), "missing {k}: {err}");
    }
}

#[test]
fn unknown_scenario_lists_the_known_ones() {
    let (code, err) = stderr(&["run", "memcg-fil", "--kernel", "6.1"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("unknown scenario `memcg-fil`") && err.contains("memcg-fill"),
        "{err}"
    );
}

#[test]
fn unknown_parameter_is_rejected() {
    let (code, err) = stderr(&["run", "memcg-fill", "--kernel", "6.1", "--param", "limt=3"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("limt") && err.contains("limit"), "{err}");
}

#[test]
fn a_parameter_of_the_wrong_type_is_refused_before_any_boot() {
    // An empty cache: the refusal comes from the scenario's declaration,
    // before any kernel is fetched or guest booted.
    let cache = tempfile::tempdir().unwrap();
    for (param, allowed) in [
        (
            "limit=abc",
            "parameter `limit` is an int >= 1 or empty; got `abc`",
        ),
        (
            "limit=0",
            "parameter `limit` is an int >= 1 or empty; got `0`",
        ),
    ] {
        let (code, err) = stderr(&[
            "--cache-dir",
            cache.path().to_str().unwrap(),
            "run",
            "memcg-fill",
            "--kernel",
            "6.1",
            "--param",
            param,
        ]);
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains("scenarios/memcg-fill/scenario.toml: ") && err.contains(allowed),
            "{err}"
        );
        assert!(!err.contains("boot") && !err.contains("download"), "{err}");
    }
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0);
}

#[test]
fn a_kernel_that_cannot_be_downloaded_says_what_to_do() {
    // An empty cache and a mirror that refuses connections: nothing can be
    // fetched, and the message names the package source and the fix.
    let cache = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_repro"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["--cache-dir", cache.path().to_str().unwrap()])
        .args(["images", "fetch", "6.1"])
        .env("REPRO_DEBIAN_MIRROR", "http://127.0.0.1:9/debian")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("{err}");
    // The kernel is known (2 would be bad input); the download failed: 3.
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("127.0.0.1:9"), "{err}");
    assert!(err.contains("repro images fetch"), "{err}");
}

#[test]
fn list_shows_scenarios_and_kernels() {
    let out = run(&["list"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("memcg-fill") && text.contains("004_"),
        "{text}"
    );
    assert!(
        text.contains("bookworm") && text.contains("trixie"),
        "{text}"
    );
}

#[test]
fn unknown_rootfs_lists_the_known_ones() {
    let (code, err) = stderr(&[
        "run",
        "systemd-slice-churn",
        "--kernel",
        "6.1",
        "--rootfs",
        "sid",
    ]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("unknown root filesystem `sid`") && err.contains("bookworm, bullseye, trixie"),
        "{err}"
    );
}

#[test]
fn a_missing_rootfs_builder_says_what_to_install() {
    // A cache without the image and a PATH without mmdebstrap: the build
    // cannot start, the message names the missing tool and the apt command
    // that installs it, and the cache holds no image a later run would trust.
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let out = repro()
        .env("PATH", "/nonexistent")
        .env("REPRO_QEMU", "/nonexistent/qemu")
        .args(["--cache-dir", cache.to_str().unwrap()])
        .args(["images", "build", "bullseye"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // The name is known; the host cannot build it: infrastructure, 3.
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("`mmdebstrap` is needed") && err.contains("apt-get install mmdebstrap"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let images = files_named(&cache, &[".complete", "rootfs.qcow2"]);
    assert!(images.is_empty(), "a failed build left {images:?}");
}

#[test]
fn unknown_names_in_images_commands_are_bad_input() {
    let cache = tempfile::tempdir().unwrap();
    let c = cache.path().to_str().unwrap();
    let (code, err) = stderr(&["--cache-dir", c, "images", "fetch", "9.99"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("unknown kernel `9.99`"), "{err}");
    let (code, err) = stderr(&["--cache-dir", c, "images", "build", "sid"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("unknown root filesystem `sid`"), "{err}");
}

#[test]
fn a_malformed_matrix_is_bad_input_with_file_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("m.toml");
    std::fs::write(
        &f,
        "[axes]\nkernels = [\"6.1\"]\n\n[[scenario]]\nname = \"memcg-fill\"\ntimout_s = 3\n",
    )
    .unwrap();
    let m = f.to_str().unwrap();
    // Listing or running: the file is refused before any cell runs.
    for args in [
        &["matrix", "--matrix", m, "--list"][..],
        &["matrix", "--matrix", m],
    ] {
        let (code, err) = stderr(args);
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains("m.toml:6:1") && err.contains("timout_s"),
            "{err}"
        );
    }
    std::fs::write(&f, "[axes\nkernels = [\"6.1\"]\n").unwrap();
    let (code, err) = stderr(&["matrix", "--matrix", m]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("m.toml:"), "{err}");
}

/// Runs `repro` with an empty cache (so nothing can have booted or been
/// fetched) and `envs`; the exit status and stderr.
fn refused(args: &[&str], envs: &[(&str, &std::path::Path)]) -> (Option<i32>, String) {
    let cache = tempfile::tempdir().unwrap();
    let mut c = repro();
    c.arg("--cache-dir").arg(cache.path()).args(args);
    for (k, v) in envs {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("$ repro {}\n{err}", args.join(" "));
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        std::fs::read_dir(cache.path()).unwrap().count(),
        0,
        "refused, yet the cache was filled: {err}"
    );
    (out.status.code(), err)
}

#[test]
fn a_matrix_parameter_of_the_wrong_type_is_refused_at_its_place() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("m.toml");
    std::fs::write(
        &f,
        "[axes]\nkernels = [\"6.1\"]\n\n[[scenario]]\nname = \"memcg-fill\"\nparams = { limit = \"lots\" }\n",
    )
    .unwrap();
    let m = f.to_str().unwrap();
    for args in [
        &["matrix", "--matrix", m, "--list"][..],
        &["matrix", "--matrix", m],
    ] {
        let (code, err) = refused(args, &[]);
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains("m.toml:6:20: parameter `limit` is an int >= 1 or empty; got `lots`")
                && err.contains("memcg-fill/scenario.toml"),
            "{err}"
        );
    }
}

#[test]
fn numbers_out_of_range_are_refused_in_files_and_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("m.toml");
    // A time limit no clock can hold used to pass here and panic once the
    // guest booted.
    std::fs::write(
        &f,
        "[profile.default]\nboot_timeout_s = 9223372036854775807\n[axes]\nkernels = [\"6.1\"]\n",
    )
    .unwrap();
    let (code, err) = refused(&["matrix", "--matrix", f.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("m.toml:2:18: 9223372036854775807 is out of range: use 1 to 604800"),
        "{err}"
    );
    for flag in [
        &["--boot-timeout", "18446744073709551615"][..],
        &["--boot-timeout", "0"],
        &["--vcpus", "0"],
        &["--memory", "0"],
    ] {
        let mut args = vec!["run", "memcg-fill", "--kernel", "6.1"];
        args.extend_from_slice(flag);
        let (code, err) = refused(&args, &[]);
        assert_eq!(code, Some(2), "{flag:?}: {err}");
        assert!(
            err.contains(flag[0]) && err.contains(&format!("{} is not in", flag[1])),
            "{err}"
        );
    }
}

#[test]
fn a_broken_scenario_toml_is_bad_input_at_its_line_and_column() {
    // A copy of memcg-fill whose manifest went wrong in three ways, one at
    // a time.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("memcg-fill");
    std::fs::create_dir(&dir).unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/memcg-fill");
    std::fs::copy(src.join("run.sh"), dir.join("run.sh")).unwrap();
    let good = std::fs::read_to_string(src.join("scenario.toml")).unwrap();
    let line_of = |key: &str| {
        1 + good
            .lines()
            .position(|l| l.starts_with(key))
            .expect("the key is in memcg-fill's manifest")
    };
    let file = dir.join("scenario.toml").display().to_string();
    for (from, to, col, says) in [
        (
            "timeout_s = 900",
            "timeout_s = 0",
            13,
            "0 is out of range: use 1 to 604800",
        ),
        (
            "timeout_s = 900",
            "timout_s = 900",
            1,
            "unknown field `timout_s`",
        ),
        (
            "entry = \"run.sh\"",
            "entry = \"/bin/sh\"",
            9,
            "entry script `/bin/sh` is not a file in",
        ),
    ] {
        std::fs::write(dir.join("scenario.toml"), good.replace(from, to)).unwrap();
        let (code, err) = refused(
            &["run", "memcg-fill", "--kernel", "6.1"],
            &[("REPRO_SCENARIOS_DIR", tmp.path())],
        );
        assert_eq!(code, Some(2), "{err}");
        let at = format!(
            "{file}:{}:{col}: {says}",
            line_of(from.split(' ').next().unwrap())
        );
        assert!(err.contains(&at), "wanted {at}\n{err}");
    }
    std::fs::write(
        dir.join("scenario.toml"),
        [good.as_bytes(), b"# caf\xe9\n"].concat(),
    )
    .unwrap();
    let (code, err) = refused(
        &["run", "memcg-fill", "--kernel", "6.1"],
        &[("REPRO_SCENARIOS_DIR", tmp.path())],
    );
    assert_eq!(code, Some(2), "{err}");
    let last = good.lines().count() + 1;
    assert!(
        err.contains(&format!("{file}:{last}:6: not UTF-8 text (byte 0xe9)")),
        "{err}"
    );
}

#[test]
fn an_unknown_profile_or_an_empty_selection_is_bad_input() {
    let (code, err) = stderr(&["matrix", "--profile", "no-such-profile"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no-such-profile"), "{err}");
    let (code, err) = stderr(&["matrix", "--filter", "scenario=no-such-scenario"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no cells"), "{err}");
}

#[test]
fn other_bad_input_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    let missing = missing.to_str().unwrap();
    for args in [
        // clap's own usage errors.
        &["run", "memcg-fill", "--kernel", "6.1", "--no-such-flag"][..],
        &["matrix", "--shard", "5/4"],
        // The flag exists; the kernel does not.
        &["run", "memcg-fill", "--kernel", "9.99", "--fail-on-flaky"],
        &["fixed-in", "memcg-fill", "--kernel", "6.1"],
        &["report", missing],
        &["compare", missing, missing],
        &["merge", missing, "--out", missing],
    ] {
        let (code, err) = stderr(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn help_and_readme_show_the_same_exit_codes() {
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    let table = repro::model::exit::HELP;
    assert!(help.contains(table), "--help lacks the exit codes:\n{help}");
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    assert!(
        readme.contains(table),
        "README.md's \"Exit codes\" section must quote repro::model::exit::HELP word for \
         word:\n{table}"
    );
}

/// Files under `dir` (recursively) whose name is one of `names`.
fn files_named(dir: &std::path::Path, names: &[&str]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_named(&path, names));
        } else if names.iter().any(|n| path.file_name() == Some(n.as_ref())) {
            found.push(path);
        }
    }
    found
}
