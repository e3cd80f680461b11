//! The `sfx` binary: parse, run, report the one error, exit with its code.
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match sfx::cli::Cli::parse_args() {
        Ok(cli) => cli,
        Err(err) => return sfx::app::clap_exit(err),
    };
    match sfx::app::run(cli) {
        Ok(exit) => exit.into(),
        Err(err) => sfx::app::report_error(&err).into(),
    }
}
