//! Damaged and foreign files, generated from a seed: the payload reader in process (many
//! cases, fast) and the launcher's start-up path on real executables run as subprocesses
//! (fewer cases). Every case must end in a clean run or a one-line error with a non-zero exit
//! status; never a panic, a hang, a crash or an exhausted memory limit.
//!
//! `make test` runs a few thousand cases; `make fuzz` runs more than 100,000 with a new seed.
//! Settings (environment):
//! - `PYFERRY_FUZZ_SEED`: the seed (default fixed); every failure prints seed and case number;
//! - `PYFERRY_FUZZ_CASES`: random in-process cases (default 2,000);
//! - `PYFERRY_FUZZ_RUNS`: random subprocess cases (default 120);
//! - `PYFERRY_FUZZ_BOUNDARIES=all`: truncate the real app at every region boundary (±2 bytes
//!   in process, exactly as runs); by default the small payloads get every boundary ±1 and
//!   the real app a sample;
//! - `PYFERRY_FUZZ_ONLY=N`: run only random case N (to reproduce a failure).

mod fixtures;
mod launcher;
mod reader;

/// A setting from the environment, or its default.
pub fn setting(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
        Err(_) => default,
    }
}

pub fn seed() -> u64 {
    setting("PYFERRY_FUZZ_SEED", 20_261_125)
}

/// The random cases to run: all of `0..count`, or only `PYFERRY_FUZZ_ONLY`.
pub fn case_numbers(count: u64) -> Vec<u64> {
    match std::env::var("PYFERRY_FUZZ_ONLY") {
        Ok(only) => vec![only.trim().parse().expect("PYFERRY_FUZZ_ONLY is a number")],
        Err(_) => (0..count).collect(),
    }
}

pub fn all_boundaries() -> bool {
    std::env::var("PYFERRY_FUZZ_BOUNDARIES").is_ok_and(|value| value == "all")
}
