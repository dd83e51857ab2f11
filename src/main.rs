//! The `trailwatch` command: turns the command line into library objects, runs them, and maps
//! the outcome to an exit code. Everything else is in the library.

mod cli;

use std::process::ExitCode;

/// mimalloc instead of the system allocator: the correlator and baselines hold many small,
/// long-lived allocations freed in no particular order, where glibc's malloc spends a tenth of
/// the stateful stage merging free lists (BENCHMARKS.md, "Correlation state at scale"). The
/// benches use it too, so their figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cli::main()
}
