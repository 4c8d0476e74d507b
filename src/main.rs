//! The `archbuild` binary: parse, run, print the error chain once, map to the exit status
//! of `cli-contract.md` (0 pass, 1 findings, 2 error).

use std::process::ExitCode;

fn main() -> ExitCode {
    limit_malloc_arenas();
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

/// glibc's malloc gives threads their own arenas (up to eight a core) and keeps what they free
/// for their next allocations: the release's compression threads each left megabytes of chunks
/// behind in theirs. Two arenas, set before any thread starts, took the peak of a cold
/// two-platform release (`/usr/bin/time -f %M`, the bench-release.sh fixture) from 90-97 MB
/// to 74-77 MB at the same system time; a fixed mmap threshold instead took it to 66 MB but
/// doubled the system time (every chunk faulted in anew).
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a malloc parameter; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
