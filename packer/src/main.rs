//! `pyferry`: packs a Python application into one executable.
//!
//! The binary is thin: [`cli`] parses, [`commands`] does the work, and every error ends here as
//! one line on stderr with exit status 2.

mod assemble;
mod cli;
mod commands;
mod compile;
mod elf;
mod extraction;
mod glibc_floor;
mod inputs;
mod libraries;
mod load_plan;
mod path_readers;
mod progress;
mod pyz;
mod resolve;
mod runtime;
mod sbom;
mod stdlib;
mod target;
mod tree;
mod wheel;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn init_logging(cli: &Cli) {
    let level = if cli.quiet {
        tracing::Level::ERROR
    } else {
        match cli.verbose {
            0 => tracing::Level::INFO,
            1 => tracing::Level::DEBUG,
            _ => tracing::Level::TRACE,
        }
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let result = match &cli.command {
        Command::Pack(args) => commands::pack::pack(args),
        Command::Inspect(args) => commands::inspect::inspect(args),
        Command::Verify(args) => commands::verify::verify(args),
        Command::BuildRuntime(args) => commands::build_runtime::build_runtime(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("pyferry: error: {error:#}");
            // A verification that found a difference is 1; anything that stopped the command
            // (bad input, missing files) is 2.
            if error.is::<commands::verify::Mismatch>() {
                ExitCode::from(1)
            } else {
                ExitCode::from(2)
            }
        }
    }
}
