//! The command line of `pyferry`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Pack a Python application into one executable that runs without Python installed and
/// without unpacking anything to disk (or, with `--format pyz`, into a zipapp that the host's
/// own Python runs, native extensions included).
#[derive(Debug, Parser)]
#[command(name = "pyferry", version, about, long_about = None)]
#[command(
    after_help = "Examples:\n  pyferry pack myapp/ -o myapp                    # a tree with __main__.py at its root\n  pyferry pack httpie==3.2.4 -c http -o http      # a console script from the package index\n  pyferry pack -r requirements.txt app/ -o app    # requirements plus your code\n  pyferry pack app/ --format pyz                  # app-cp311-manylinux_2_17_x86_64.pyz for python3.11\n  pyferry inspect myapp                           # what is inside\n  pyferry inspect --sbom myapp > myapp.cdx.json   # its software bill of materials"
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
    /// Pack an application into an executable (or a pyz, with `--format pyz`).
    Pack(Box<PackArgs>),
    /// Show what a packed application holds: versions, entry points, distributions.
    Inspect(InspectArgs),
    /// Check a packed application against the hashes recorded when it was packed.
    Verify(VerifyArgs),
    /// Build the runtime (launcher + standard library) that `pack` copies into every app.
    #[command(hide = true)]
    BuildRuntime(BuildRuntimeArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Inputs, mixed freely:\n  DIR              an application tree (with __main__.py, or name the entry point)\n  PROJECT_DIR      a directory with pyproject.toml: built into a wheel by its PEP 517 backend\n  FILE.whl         a wheel\n  SPECIFIER        a requirement, e.g. `httpie==3.2.4`\n\nExamples:\n  pyferry pack myapp/ -o myapp\n  pyferry pack black==24.10.0 -c black -o black\n  pyferry pack -r requirements.txt app/ -o app\n  pyferry pack flake8 --all-scripts -o tools && ln -s tools flake8 && ./flake8 --version\n  pyferry pack app/ --format pyz --python 3.12 -o dist/   # dist/app-cp312-<platform>.pyz"
)]
pub struct PackArgs {
    /// What to pack: application directories, project directories, wheel files, requirement
    /// specifiers.
    #[arg(value_name = "INPUT", required_unless_present = "requirements")]
    pub inputs: Vec<String>,

    /// The file to write, replaced atomically: a failed pack leaves it untouched. With
    /// `--format pyz` it may be a directory, or left out (the current directory): the file is
    /// then named after the application and its tags, `NAME-cp311-manylinux_2_17_x86_64.pyz`.
    #[arg(short, long)]
    pub output: Option<PathBuf>,

    /// What to write: `exe`, an executable with its own Python inside; `pyz`, a zipapp run by
    /// the host's `python3.X`, whose native extensions load from memory (docs/pyz.md).
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,

    /// `--format pyz`: the Python that will run it, a version (`3.12`) or an interpreter's path.
    /// Wheels are chosen for it and the bytecode is compiled by it (by pyferry's own 3.11, or a
    /// `python3.X` found on PATH). Default: 3.11.
    #[arg(long, value_name = "VERSION|PATH")]
    pub python: Option<String>,

    /// `--format pyz`: the command after `#!` on its first line. Default: `/usr/bin/env
    /// python3.X`.
    #[arg(long, value_name = "COMMAND")]
    pub shebang: Option<String>,

    /// Install the requirements listed in FILE (pins, hashes and markers as pip reads them).
    /// Repeatable.
    #[arg(short = 'r', long = "requirement", value_name = "FILE")]
    pub requirements: Vec<PathBuf>,

    /// The entry point, `MODULE` (run like `python -m MODULE`) or `MODULE:FUNCTION` (called, its
    /// return value is the exit status). Default: `__main__.py` at the root of DIR.
    #[arg(
        short = 'e',
        long = "entry-point",
        value_name = "MODULE[:FUNCTION]",
        conflicts_with = "console_script"
    )]
    pub entry_point: Option<String>,

    /// Run the script NAME of the installed distributions (as `pip install` would put on PATH):
    /// a console script, or a `#!python` script of a wheel's `*.data/scripts/`, run as
    /// `__main__`.
    #[arg(short = 'c', long = "console-script", value_name = "NAME")]
    pub console_script: Option<String>,

    /// Pack every script of the listed requirements (console scripts and `#!python` scripts);
    /// the one to run is chosen by the name the executable is started as
    /// (`ln -s myapp flake8 && ./flake8`).
    #[arg(long)]
    pub all_scripts: bool,

    /// Also look for distributions in DIR (local wheels). Repeatable.
    #[arg(long, value_name = "DIR")]
    pub find_links: Vec<PathBuf>,

    /// Do not use the package index: only `--find-links` directories and local wheels.
    #[arg(long)]
    pub no_index: bool,

    /// The package index to use instead of PyPI.
    #[arg(long, value_name = "URL")]
    pub index_url: Option<String>,

    /// Install only the listed distributions, not their dependencies.
    #[arg(long)]
    pub no_deps: bool,

    /// Serve PACKAGE from real files, extracted once into a private cache at its first import:
    /// for a program it runs with `subprocess`, or a library that makes its own system calls
    /// (files read by path, and libraries loaded by path, need nothing: they are served from
    /// the archive). The packer names the programs packages ship. Repeatable.
    #[arg(long = "extract", value_name = "PACKAGE")]
    pub extract: Vec<String>,

    /// Deflate everything, shared objects and bytecode included: about a third of the size,
    /// paid at every start by inflating what is imported (docs/benchmarks.md has figures).
    #[arg(long)]
    pub compress: bool,

    /// Let the application read Python's environment variables (`PYTHONWARNINGS`,
    /// `PYTHONUNBUFFERED`...). By default it runs isolated, as `python -I` does.
    #[arg(long)]
    pub inherit_python_env: bool,

    /// The platform wheels are chosen for, as uv names it: `x86_64-manylinux_2_28` (the
    /// default: RHEL 8+, Debian 10+, Ubuntu 20.04+, Amazon Linux 2023) or an older level such as
    /// `x86_64-manylinux_2_17` (CentOS 7, Amazon Linux 2), which may select older releases.
    /// The application runs on hosts whose glibc is at least that level (`pyferry inspect`
    /// shows the floor). An executable is x86_64 only; a pyz may be for another architecture
    /// (`aarch64-manylinux_2_28`).
    #[arg(long, value_name = "PLATFORM", default_value_t = crate::target::DEFAULT_PLATFORM, value_parser = parse_platform)]
    pub python_platform: crate::target::Platform,

    /// Which tool resolves requirements: uv when found (`auto`), or always one of them.
    #[arg(long, value_enum, default_value_t)]
    pub resolver: crate::resolve::Resolver,

    /// Also write the software bill of materials the output carries to FILE (replaced
    /// atomically): SPDX 2.3 when FILE ends in `.spdx.json`, CycloneDX 1.6 otherwise
    /// (docs/sbom.md). The same document is inside the output either way: `pyferry inspect
    /// --sbom` prints it.
    #[arg(long, value_name = "FILE")]
    pub sbom: Option<PathBuf>,
}

fn parse_platform(text: &str) -> Result<crate::target::Platform, String> {
    crate::target::Platform::parse(text).map_err(|error| error.to_string())
}

/// The kind of file `pack` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// An executable that carries its own Python (the launcher, CPython and the standard
    /// library) and needs only glibc on the host.
    #[default]
    Exe,
    /// A zipapp for the host's own `python3.X`, holding the application, its dependencies,
    /// their bytecode and pyferry's bootstrap: no Python inside.
    Pyz,
}

#[derive(Debug, Args)]
pub struct BuildRuntimeArgs {
    /// The launcher executable (`target/release/pyferry-launcher`).
    #[arg(long)]
    pub launcher: PathBuf,

    /// The standard library directory of the CPython the launcher embeds
    /// (`target/toolchain/cpython/lib/python3.11`, made by runtime/build).
    #[arg(long)]
    pub stdlib: PathBuf,

    /// The build record of that CPython (`target/toolchain/cpython/runtime.json`, written by
    /// runtime/build: versions, sources and licences of CPython and its C libraries), carried
    /// in the runtime and in every application as `.pyferry/runtime.json`.
    #[arg(long, value_name = "FILE")]
    pub runtime_info: Option<PathBuf>,

    /// Where to write the runtime.
    #[arg(short, long)]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A packed application (an executable or a pyz).
    pub file: PathBuf,

    /// Print JSON, for scripts.
    #[arg(long, conflicts_with = "sbom")]
    pub json: bool,

    /// Print the software bill of materials recorded in the file when it was packed
    /// (`pyferry inspect --sbom app > app.cdx.json` for a vulnerability scanner).
    #[arg(long)]
    pub sbom: bool,

    /// With `--sbom`: CycloneDX 1.6 JSON as recorded, or SPDX 2.3 JSON converted from it.
    #[arg(long, value_enum, default_value_t, requires = "sbom")]
    pub format: SbomFormat,
}

/// The formats `inspect --sbom` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SbomFormat {
    /// CycloneDX 1.6 JSON, the document as the file carries it.
    #[default]
    Cyclonedx,
    /// SPDX 2.3 JSON, converted from it.
    Spdx,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A packed application (an executable or a pyz).
    pub file: PathBuf,
}
