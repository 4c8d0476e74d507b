//! The `archbuild` binary: parse, run, print the error chain once, map to the exit status
//! of `cli-contract.md` (0 pass, 1 findings, 2 error).

use std::process::ExitCode;

fn main() -> ExitCode {
    match archbuild::cli::main() {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(err) => {
            if archbuild::cli::is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("archbuild: {}", archbuild::cli::message(&err));
            ExitCode::from(2)
        }
    }
}
