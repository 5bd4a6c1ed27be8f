//! The command line of `pyferry`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Pack a Python application into one executable that runs without Python installed and
/// without unpacking anything to disk.
#[derive(Debug, Parser)]
#[command(name = "pyferry", version, about, long_about = None)]
#[command(
    after_help = "Examples:\n  pyferry pack myapp/ -o myapp          # a tree with __main__.py at its root\n  pyferry pack build/ -e mycli.main:run -o mycli"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Print only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Print more about each step (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pack a directory into an executable.
    Pack(PackArgs),
    /// Build the runtime (launcher + standard library) that `pack` copies into every app.
    #[command(hide = true)]
    BuildRuntime(BuildRuntimeArgs),
}

#[derive(Debug, Args)]
pub struct PackArgs {
    /// The application tree: what `pip install --target DIR` made, plus your code. Packed as
    /// the root of the import path, like `python -m zipapp DIR`.
    pub dir: PathBuf,

    /// The executable to write. Replaced atomically: a failed pack leaves it untouched.
    #[arg(short, long)]
    pub output: PathBuf,

    /// The entry point, `MODULE` (run like `python -m MODULE`) or `MODULE:FUNCTION` (called, its
    /// return value is the exit status). Default: `__main__.py` at the root of DIR.
    #[arg(short = 'e', long = "entry-point", value_name = "MODULE[:FUNCTION]")]
    pub entry_point: Option<String>,
}

#[derive(Debug, Args)]
pub struct BuildRuntimeArgs {
    /// The launcher executable (`target/release/pyferry-launcher`).
    #[arg(long)]
    pub launcher: PathBuf,

    /// The standard library directory of the CPython the launcher embeds.
    #[arg(long, default_value = "/usr/lib/python3.11")]
    pub stdlib: PathBuf,

    /// Where to write the runtime.
    #[arg(short, long)]
    pub output: PathBuf,
}
