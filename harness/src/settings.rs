//! Run settings from every source, in one order of precedence: command-line
//! flag, then environment, then the matrix profile, then the matrix file,
//! then the defaults. The binary hands over what it parsed; this module
//! decides, and is the only place that does.

use crate::images::Cache;
use crate::model::AccelChoice;
use crate::plan::{FileSettings, Profile};
use crate::run::{ExecOptions, RunLimits};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Environment variable naming the Debian mirror.
pub const MIRROR_ENV: &str = "REPRO_DEBIAN_MIRROR";

/// Seconds to wait for a guest's SSH when nothing says otherwise.
pub const DEFAULT_BOOT_TIMEOUT_S: u64 = 180;

/// Seconds without any output from the guest (console, stdout, stderr,
/// result file) that end a scenario, when nothing says otherwise: generous,
/// since a quiet scenario is not a stuck one.
pub const DEFAULT_STALL_S: u64 = 600;

/// What the command line said (absent: not given).
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub cache_dir: Option<PathBuf>,
    pub mirror: Option<String>,
    pub accel: Option<AccelChoice>,
    pub boot_timeout_s: Option<u64>,
    pub results: Option<PathBuf>,
    pub jobs: Option<usize>,
    pub log_cap: Option<u64>,
    pub out_cap: Option<u64>,
    /// Beats every scenario's own `stall_s` too.
    pub stall_s: Option<u64>,
}

/// What the environment said.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    pub mirror: Option<String>,
}

impl Environment {
    /// Reads the process environment.
    pub fn read() -> Environment {
        Environment {
            mirror: std::env::var(MIRROR_ENV).ok().filter(|m| !m.is_empty()),
        }
    }
}

/// The mirror: flag, environment, the matrix file in use, else `None`
/// (the images module then reads the host's apt sources).
pub fn mirror(flags: &Flags, env: &Environment, matrix_mirror: Option<&str>) -> Option<String> {
    flags
        .mirror
        .clone()
        .or_else(|| env.mirror.clone())
        .or_else(|| matrix_mirror.map(str::to_string))
}

/// What the repository's `matrix.toml` sets for the whole run (mirror,
/// caps, stall limit), for commands that do not run a matrix (`run`,
/// `fixed-in`, `images`). A file that does not parse sets nothing here;
/// `repro matrix` reports its errors.
pub fn repository_settings(root: &Path) -> FileSettings {
    let path = root.join("matrix.toml");
    crate::plan::load_matrix(&path)
        .map(|m| m.settings())
        .unwrap_or_default()
}

/// The bounds of every attempt: flag, else profile, else matrix file, else
/// the default. A stall limit from a flag beats each scenario's own; the
/// others are the default for scenarios that set none. 0 turns it off.
pub fn limits(flags: &Flags, profile: Option<&Profile>, file: &FileSettings) -> RunLimits {
    let pick = |flag: Option<u64>, prof: Option<u64>, file: Option<u64>, default: u64| {
        flag.or(prof).or(file).unwrap_or(default)
    };
    RunLimits {
        log_cap: pick(
            flags.log_cap,
            profile.and_then(|p| p.log_cap),
            file.log_cap,
            crate::caplog::DEFAULT_LOG_CAP,
        ),
        out_cap: pick(
            flags.out_cap,
            profile.and_then(|p| p.out_cap),
            file.out_cap,
            crate::caplog::DEFAULT_OUT_CAP,
        ),
        stall_override: flags.stall_s,
        stall_default: pick(
            None,
            profile.and_then(|p| p.stall_s),
            file.stall_s,
            DEFAULT_STALL_S,
        ),
    }
}

/// The cache: flag (or `REPRO_CACHE_DIR`, which the command line reads),
/// else the default location.
pub fn cache(flags: &Flags) -> Cache {
    Cache::new(flags.cache_dir.clone().unwrap_or_else(Cache::default_root))
}

/// How to execute: each value from the flag, else the profile, else the
/// default. `default_jobs` is the command's own default (`run`: 1,
/// `matrix`: 0 = what the machine holds).
pub fn exec_options(
    root: &Path,
    flags: &Flags,
    env: &Environment,
    profile: Option<&Profile>,
    file: &FileSettings,
    default_jobs: usize,
    command: String,
) -> ExecOptions {
    let results = flags
        .results
        .clone()
        .or_else(|| {
            profile
                .and_then(|p| p.results.as_ref())
                .map(|r| root.join(r))
        })
        .unwrap_or_else(|| root.join("results"));
    ExecOptions {
        root: root.to_path_buf(),
        results_root: results,
        cache: cache(flags),
        mirror: mirror(flags, env, file.debian_mirror.as_deref()),
        accel: flags
            .accel
            .or(profile.map(|p| p.accel))
            .unwrap_or(AccelChoice::Auto),
        boot_timeout: Duration::from_secs(
            flags
                .boot_timeout_s
                .or(profile.map(|p| p.boot_timeout_s))
                .unwrap_or(DEFAULT_BOOT_TIMEOUT_S),
        ),
        jobs: flags
            .jobs
            .or(profile.and_then(|p| p.jobs))
            .unwrap_or(default_jobs),
        retries: profile.map_or(1, |p| p.retries),
        limits: limits(flags, profile, file),
        command,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn opts(
        flags: &Flags,
        env: &Environment,
        profile: Option<&Profile>,
        m: Option<&str>,
    ) -> ExecOptions {
        let file = FileSettings {
            debian_mirror: m.map(str::to_string),
            ..FileSettings::default()
        };
        exec_options(
            Path::new("/repo"),
            flags,
            env,
            profile,
            &file,
            1,
            String::new(),
        )
    }

    #[test]
    fn defaults_apply_when_nothing_is_said() {
        let o = opts(&Flags::default(), &Environment::default(), None, None);
        assert_eq!(o.accel, AccelChoice::Auto);
        assert_eq!(o.boot_timeout, Duration::from_secs(180));
        assert_eq!(o.jobs, 1);
        assert_eq!(o.retries, 1);
        assert_eq!(o.results_root, Path::new("/repo/results"));
        assert_eq!(o.mirror, None);
        assert_eq!(
            o.limits,
            RunLimits {
                log_cap: 16 << 20,
                out_cap: 64 << 20,
                stall_override: None,
                stall_default: 600,
            }
        );
    }

    #[test]
    fn limits_come_from_flag_then_profile_then_file() {
        let file = FileSettings {
            log_cap: Some(1 << 20),
            out_cap: Some(2 << 20),
            stall_s: Some(900),
            ..FileSettings::default()
        };
        let none = Flags::default();
        let l = limits(&none, None, &file);
        assert_eq!(
            (l.log_cap, l.out_cap, l.stall_default),
            (1 << 20, 2 << 20, 900)
        );
        let p = Profile {
            log_cap: Some(4096),
            stall_s: Some(0),
            ..Profile::default()
        };
        let l = limits(&none, Some(&p), &file);
        assert_eq!((l.log_cap, l.out_cap, l.stall_default), (4096, 2 << 20, 0));
        assert_eq!(l.stall_override, None);
        let f = Flags {
            log_cap: Some(8192),
            stall_s: Some(30),
            ..Flags::default()
        };
        let l = limits(&f, Some(&p), &file);
        assert_eq!(
            (l.log_cap, l.stall_override, l.stall_default),
            (8192, Some(30), 0)
        );
    }

    #[test]
    fn the_repository_matrix_sets_the_limits_of_run() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join("matrix.toml"),
            "log_cap = \"1M\"\nstall_s = 120\n[axes]\nkernels = [\"6.1\"]\n",
        )
        .unwrap();
        let s = repository_settings(tmp.path());
        assert_eq!(
            (s.log_cap, s.out_cap, s.stall_s),
            (Some(1 << 20), None, Some(120))
        );
    }

    #[test]
    fn the_profile_beats_defaults_and_flags_beat_the_profile() {
        let p = Profile {
            accel: AccelChoice::Tcg,
            boot_timeout_s: 300,
            jobs: Some(4),
            retries: 3,
            results: Some("nightly".into()),
            ..Profile::default()
        };
        let o = opts(&Flags::default(), &Environment::default(), Some(&p), None);
        assert_eq!(o.accel, AccelChoice::Tcg);
        assert_eq!(o.boot_timeout, Duration::from_secs(300));
        assert_eq!((o.jobs, o.retries), (4, 3));
        assert_eq!(o.results_root, Path::new("/repo/nightly"));
        let f = Flags {
            accel: Some(AccelChoice::Kvm),
            boot_timeout_s: Some(20),
            jobs: Some(2),
            results: Some("/tmp/r".into()),
            ..Flags::default()
        };
        let o = opts(&f, &Environment::default(), Some(&p), None);
        assert_eq!(o.accel, AccelChoice::Kvm);
        assert_eq!(o.boot_timeout, Duration::from_secs(20));
        assert_eq!(o.jobs, 2);
        assert_eq!(o.results_root, Path::new("/tmp/r"));
    }

    #[test]
    fn mirror_precedence_is_flag_env_matrix() {
        let env = Environment {
            mirror: Some("http://env/".into()),
        };
        let flag = Flags {
            mirror: Some("http://flag/".into()),
            ..Flags::default()
        };
        let none = Flags::default();
        let m = Some("http://matrix/");
        assert_eq!(mirror(&flag, &env, m).as_deref(), Some("http://flag/"));
        assert_eq!(mirror(&none, &env, m).as_deref(), Some("http://env/"));
        assert_eq!(
            mirror(&none, &Environment::default(), m).as_deref(),
            Some("http://matrix/")
        );
        assert_eq!(mirror(&none, &Environment::default(), None), None);
    }

    #[test]
    fn the_matrix_file_in_use_sets_the_mirror_not_the_repository_one() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join("matrix.toml"),
            "debian_mirror = \"http://root/\"\n[axes]\nkernels = [\"6.1\"]\n",
        )
        .unwrap();
        let other = tmp.path().join("other.toml");
        std::fs::write(
            &other,
            "debian_mirror = \"http://other/\"\n[axes]\nkernels = [\"6.1\"]\n",
        )
        .unwrap();
        assert_eq!(
            repository_settings(tmp.path()).debian_mirror.as_deref(),
            Some("http://root/")
        );
        let m = crate::plan::load_matrix(&other).unwrap();
        let o = exec_options(
            Path::new("/repo"),
            &Flags::default(),
            &Environment::default(),
            None,
            &m.settings(),
            1,
            String::new(),
        );
        assert_eq!(o.mirror.as_deref(), Some("http://other/"));
    }
}
