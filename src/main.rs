//! The `trailwatch` command: parses the command line and hands over to the library.

use std::process::ExitCode;

/// mimalloc instead of the system allocator: the correlator and baselines hold many small,
/// long-lived allocations freed in no particular order, where glibc's malloc spends a tenth of
/// the stateful stage merging free lists (BENCHMARKS.md, "Correlation state at scale"). The
/// benches use it too, so their figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    trailwatch::cli::main()
}
