//! The `repro` binary: parse arguments (`cli`; clap's own usage errors
//! exit 2), hand them to one command function (`commands`), print a failed
//! command's error and exit with the status it carries
//! (`repro::model::ExitStatus`: 2 bad input, 3 infrastructure). Nothing
//! else lives here.

mod cli;
mod commands;

use clap::Parser;
use cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ctx = commands::Ctx {
        root: repro::paths::repo_root(),
        env: repro::settings::Environment::read(),
        cache_dir: cli.cache_dir,
        mirror: cli.mirror,
        command_line: std::env::args().collect::<Vec<_>>().join(" "),
    };
    let result = match cli.command {
        Command::List => ctx.list(),
        Command::Images(cmd) => ctx.images(cmd),
        Command::Run(a) => ctx.run(a),
        Command::Matrix(a) => ctx.matrix(a),
        Command::FixedIn(a) => ctx.fixed_in(a),
        Command::Report { dir } => ctx.report(dir),
        Command::Compare { old, new, markdown } => ctx.compare(&old, &new, markdown),
        Command::Merge { dirs, out } => ctx.merge(&dirs, out),
    };
    let status = match result {
        Ok(status) => status,
        Err(f) => {
            eprintln!("error: {:#}", f.error);
            f.status
        }
    };
    ExitCode::from(status)
}
