//! Resolving requirements to wheels for the target and downloading them.
//!
//! Resolution uses **uv** when it is found (`$PYFERRY_UV`, else `uv` on `PATH`): `uv pip
//! compile` pins every distribution for the application's target in well under a second; pip
//! then downloads exactly those pins (`--no-deps`). Without uv, or with `--resolver pip`, or when
//! a requirements file carries `--hash` options (pip enforces them), pip resolves and downloads
//! in one step. Both are asked for the application's [`Target`], not the host's: its Python
//! version (3.11 for an executable, `--python` for a pyz) and ABI tags, and the platform chosen
//! with `--python-platform`, binary wheels only, so nothing is built from an sdist. pip runs as `$PYFERRY_PIP_PYTHON -m pip`,
//! else the `python3` beside `pyferry` in a virtual environment, else `python3 -m pip`. Errors become one line naming the package and the target; when a
//! requirement has no wheel for the chosen platform, the resolver is asked again at higher
//! glibc levels, so that the line also says which level would work.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::target::{self, Platform, Target};

/// Overrides the Python that runs pip.
pub const PIP_PYTHON_VARIABLE: &str = "PYFERRY_PIP_PYTHON";

/// Overrides where uv is found.
pub const UV_VARIABLE: &str = "PYFERRY_UV";

/// Which tool resolves requirements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Resolver {
    /// uv when it is found, pip otherwise.
    #[default]
    Auto,
    Uv,
    Pip,
}

/// The uv executable: `$PYFERRY_UV`, else `uv` on `PATH`.
fn find_uv() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(UV_VARIABLE).filter(|value| !value.is_empty()) {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("uv"))
            .find(|candidate| candidate.is_file())
    })
}

/// The `requirements.in` lines for `arguments` (specifiers, wheel paths, `-r FILE` pairs).
fn requirement_lines(arguments: &[String]) -> String {
    let mut lines = String::new();
    let mut arguments = arguments.iter();
    while let Some(argument) = arguments.next() {
        if argument == "-r" {
            if let Some(file) = arguments.next() {
                let absolute = std::fs::canonicalize(file).unwrap_or_else(|_| PathBuf::from(file));
                lines.push_str(&format!("-r {}\n", absolute.display()));
            }
        } else if argument.ends_with(".whl") {
            let absolute =
                std::fs::canonicalize(argument).unwrap_or_else(|_| PathBuf::from(argument));
            lines.push_str(&format!("{}\n", absolute.display()));
        } else {
            lines.push_str(argument);
            lines.push('\n');
        }
    }
    lines
}

/// Runs `uv pip compile` on `input` for `options.target`.
fn uv_compile(uv: &Path, input: &Path, options: &IndexOptions) -> Result<std::process::Output> {
    let mut command = Command::new(uv);
    command
        .args([
            "pip",
            "compile",
            "--quiet",
            "--no-header",
            "--no-annotate",
            "--only-binary",
            ":all:",
        ])
        .arg("--python-version")
        .arg(options.target.python.dotted())
        .arg("--python-platform")
        .arg(options.target.platform.uv_name())
        .arg(input)
        .env("UV_NO_PROGRESS", "1");
    options.add_to(&mut command);
    tracing::debug!(?command, "resolving with uv");
    command
        .output()
        .with_context(|| format!("cannot run uv (`{}`)", uv.display()))
}

/// Pins the requirements with `uv pip compile` for the target; returns the pinned lines.
fn compile_with_uv(
    uv: &Path,
    arguments: &[String],
    options: &IndexOptions,
    work: &Path,
) -> Result<String> {
    let input = work.join("requirements.in");
    fs_err::write(&input, requirement_lines(arguments))?;
    let output = uv_compile(uv, &input, options)?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let detail = stderr
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if let Some(requirement) = detail
            .split("Because ")
            .nth(1)
            .and_then(|rest| rest.split(" has no usable wheels").next())
            .filter(|_| detail.contains(" has no usable wheels"))
        {
            let working = lowest_level_with_uv(uv, requirement, options, work);
            bail!("{}", no_wheel_message(requirement, None, options, working));
        }
        bail!(
            "uv cannot resolve the requirements for {}: {detail}",
            options.target.describe()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The lowest glibc level above the chosen one at which uv finds a wheel of `requirement`
/// (alone, without dependencies): a binary search, since a higher level accepts every wheel a
/// lower one does.
fn lowest_level_with_uv(
    uv: &Path,
    requirement: &str,
    options: &IndexOptions,
    work: &Path,
) -> Option<Platform> {
    let input = work.join("probe.in");
    fs_err::write(&input, format!("{requirement}\n")).ok()?;
    let levels: Vec<Platform> = options.target.platform.higher_levels().collect();
    let resolves = |platform: Platform| {
        let probe = IndexOptions {
            target: Target {
                platform,
                ..options.target
            },
            no_deps: true,
            ..options.clone()
        };
        uv_compile(uv, &input, &probe).is_ok_and(|output| output.status.success())
    };
    let (mut low, mut high) = (0, levels.len());
    while low < high {
        let middle = (low + high) / 2;
        if resolves(levels[middle]) {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    levels.get(low).copied()
}

/// The glibc level that the wheel pip picks for `requirement` at the highest level needs:
/// one download, no dependencies.
fn lowest_level_with_pip(requirement: &str, options: &IndexOptions) -> Option<Platform> {
    let highest = options.target.platform.higher_levels().last()?;
    let probe = IndexOptions {
        target: Target {
            platform: highest,
            ..options.target
        },
        no_deps: true,
        ..options.clone()
    };
    let work = tempfile::tempdir().ok()?;
    let wheels = pip_download(&[requirement.to_string()], &probe, work.path()).ok()?;
    let name = crate::wheel::WheelName::parse(wheels.first()?.file_name()?.to_str()?)?;
    let glibc = target::wheel_glibc(&name.platform)?;
    options
        .target
        .platform
        .level_for(glibc)
        .filter(|level| level.glibc > options.target.platform.glibc)
}

/// Where and how to look for distributions.
#[derive(Debug, Clone)]
pub struct IndexOptions {
    pub index_url: Option<String>,
    pub find_links: Vec<PathBuf>,
    pub no_index: bool,
    pub no_deps: bool,
    /// The CPython and the platform wheels are chosen for.
    pub target: Target,
}

impl IndexOptions {
    /// The options as uv and pip both spell them.
    fn add_to(&self, command: &mut Command) {
        if let Some(url) = &self.index_url {
            command.args(["--index-url", url]);
        }
        for dir in &self.find_links {
            command.arg("--find-links").arg(dir);
        }
        if self.no_index {
            command.arg("--no-index");
        }
        if self.no_deps {
            command.arg("--no-deps");
        }
    }
}

/// The Python that runs pip: `$PYFERRY_PIP_PYTHON`; else the `python3` beside `pyferry` when
/// pip is there too (pyferry installed into a virtual environment with `pip install`); else
/// `python3` from `PATH`.
pub fn pip_python() -> String {
    if let Some(python) = std::env::var(PIP_PYTHON_VARIABLE)
        .ok()
        .filter(|value| !value.is_empty())
    {
        return python;
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .filter(|dir| dir.join("pip").is_file())
        .map(|dir| dir.join("python3"))
        .filter(|python| python.is_file());
    match beside {
        Some(python) => python.to_string_lossy().into_owned(),
        None => "python3".to_string(),
    }
}

/// The arguments that make pip choose wheels for the target.
fn target_arguments(target: &Target) -> Vec<String> {
    let mut arguments: Vec<String> = vec![
        "--only-binary=:all:".into(),
        "--python-version".into(),
        target.python.dotted(),
        "--implementation".into(),
        "cp".into(),
    ];
    for abi in target.abi_tags() {
        arguments.push("--abi".into());
        arguments.push(abi);
    }
    for tag in target.platform.wheel_tags() {
        arguments.push("--platform".into());
        arguments.push(tag);
    }
    arguments
}

/// Downloads the wheels of the requirements in `arguments` (specifiers, wheel paths, and
/// `-r FILE` pairs) and of their dependencies into `destination`, returning the wheel paths.
pub fn download(
    arguments: &[String],
    options: &IndexOptions,
    resolver: Resolver,
    destination: &Path,
) -> Result<Vec<PathBuf>> {
    let hashed = arguments
        .windows(2)
        .filter(|pair| pair[0] == "-r")
        .any(|pair| std::fs::read_to_string(&pair[1]).is_ok_and(|text| text.contains("--hash")));
    let uv = match resolver {
        Resolver::Pip => None,
        Resolver::Uv => Some(find_uv().with_context(|| {
            format!(
                "`--resolver uv`: uv is not on PATH; hint: `pip install uv`, or set {UV_VARIABLE}"
            )
        })?),
        Resolver::Auto if hashed => None,
        Resolver::Auto => find_uv(),
    };
    let Some(uv) = uv else {
        return pip_download(arguments, options, destination);
    };
    tracing::debug!("resolving with uv (`{}`)", uv.display());
    let work = tempfile::tempdir().context("cannot create a temporary directory")?;
    let pinned = compile_with_uv(&uv, arguments, options, work.path())?;
    let pinned_path = work.path().join("pinned.txt");
    fs_err::write(&pinned_path, pinned)?;
    let pinned_arguments = vec!["-r".to_string(), pinned_path.to_string_lossy().into_owned()];
    let exact = IndexOptions {
        no_deps: true,
        ..options.clone()
    };
    pip_download(&pinned_arguments, &exact, destination)
}

fn pip_download(
    arguments: &[String],
    options: &IndexOptions,
    destination: &Path,
) -> Result<Vec<PathBuf>> {
    let python = pip_python();
    let mut command = Command::new(&python);
    command
        .args([
            "-m",
            "pip",
            "download",
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar",
            "off",
        ])
        .args(target_arguments(&options.target))
        .arg("--dest")
        .arg(destination);
    options.add_to(&mut command);
    command.args(arguments);
    tracing::debug!(?command, "resolving with pip");
    let output = command.output().with_context(|| {
        format!("cannot run `{python} -m pip` to resolve requirements; hint: install pip, or set {PIP_PYTHON_VARIABLE} to a Python that has it")
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let mut message = explain_pip_failure(&stderr, options);
        if let Some(requirement) = missing_requirement(&stderr) {
            if let Some(working) = lowest_level_with_pip(&requirement, options) {
                message = no_wheel_message(
                    &requirement,
                    missing_versions(&stderr).as_deref(),
                    options,
                    Some(working),
                );
            }
        }
        bail!("{message}");
    }
    let mut wheels: Vec<PathBuf> = fs_err::read_dir(destination)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|extension| extension == "whl"))
        .collect();
    wheels.sort();
    Ok(wheels)
}

/// The one line for a requirement with no wheel for the target; `versions` lists those that
/// have one, when the resolver said; `working` is a higher platform level that has one.
fn no_wheel_message(
    requirement: &str,
    versions: Option<&str>,
    options: &IndexOptions,
    working: Option<Platform>,
) -> String {
    let available = match versions {
        Some("none") => " (no version has one)".to_string(),
        Some(versions) => format!(" (versions with one: {versions})"),
        None => String::new(),
    };
    let hint = match working {
        Some(working) => format!(
            "it has wheels for glibc {}: hint: pack with `--python-platform {}` (the application then needs that glibc), or pick a version of it with a wheel for {}",
            target::glibc_text(working.glibc),
            working.uv_name(),
            options.target.platform.wheel_tag()
        ),
        None => "nothing is built from an sdist: hint: pick a version that has a wheel, or build one and pass it with `--find-links DIR`".to_string(),
    };
    format!(
        "no wheel of `{requirement}` for {}{available}; {hint}",
        options.target.describe()
    )
}

/// The requirement pip found no version of, from its error output.
fn missing_requirement(stderr: &str) -> Option<String> {
    stderr.lines().find_map(|line| {
        let rest = line
            .trim()
            .strip_prefix("ERROR: Could not find a version that satisfies the requirement ")?;
        Some(
            rest.split_once(" (from versions: ")
                .map_or(rest, |(requirement, _)| requirement)
                .to_string(),
        )
    })
}

/// The versions pip listed as available, from its error output.
fn missing_versions(stderr: &str) -> Option<String> {
    stderr.lines().find_map(|line| {
        let (_, versions) = line.split_once(" (from versions: ")?;
        Some(versions.trim().trim_end_matches(')').to_string())
    })
}

/// One line for a failed `pip download`: what pip could not find, for which target, and what
/// to do; or pip's own last error line.
pub fn explain_pip_failure(stderr: &str, options: &IndexOptions) -> String {
    let errors: Vec<&str> = stderr
        .lines()
        .filter_map(|line| line.trim().strip_prefix("ERROR: "))
        .collect();
    for error in &errors {
        if let Some(rest) =
            error.strip_prefix("Could not find a version that satisfies the requirement ")
        {
            let (requirement, versions) = match rest.split_once(" (from versions: ") {
                Some((requirement, versions)) => (requirement, versions.trim_end_matches(')')),
                None => (rest, "none"),
            };
            return no_wheel_message(requirement, Some(versions), options, None);
        }
        if error.contains("ResolutionImpossible") || error.starts_with("Cannot install") {
            let conflict = stderr
                .lines()
                .map(str::trim)
                .filter(|line| {
                    line.starts_with("The conflict is caused by")
                        || line.contains(" depends on ")
                        || line.starts_with("The user requested")
                })
                .collect::<Vec<_>>()
                .join("; ");
            return format!("the requirements conflict: {conflict}");
        }
    }
    if stderr.contains("Failed to establish a new connection")
        || stderr.contains("Could not fetch URL")
        || stderr.contains("NewConnectionError")
    {
        return "cannot reach the package index; hint: check the network or `--index-url`, or use `--no-index --find-links DIR`".to_string();
    }
    let last = errors
        .last()
        .copied()
        .or_else(|| stderr.lines().rev().find(|line| !line.trim().is_empty()))
        .unwrap_or("pip failed without a message");
    format!("pip could not download the requirements: {last}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> IndexOptions {
        IndexOptions {
            index_url: None,
            find_links: Vec::new(),
            no_index: false,
            no_deps: false,
            target: Target::executable(target::DEFAULT_PLATFORM),
        }
    }

    #[test]
    fn missing_wheel_names_the_requirement_and_the_versions() {
        let stderr = "ERROR: Could not find a version that satisfies the requirement pyyaml==5.3 (from versions: 6.0, 6.0.1)\nERROR: No matching distribution found for pyyaml==5.3\n";
        let message = explain_pip_failure(stderr, &options());
        assert!(
            message.starts_with("no wheel of `pyyaml==5.3` for CPython 3.11"),
            "{message}"
        );
        assert!(
            message.contains("versions with one: 6.0, 6.0.1"),
            "{message}"
        );
    }

    #[test]
    fn conflicts_name_both_sides() {
        let stderr = "ERROR: Cannot install a==1 and b==2 because these package versions have conflicting dependencies.\n\nThe conflict is caused by:\n    a 1 depends on c<2\n    b 2 depends on c>=2\n\nERROR: ResolutionImpossible: for help visit https://pip.pypa.io\n";
        let message = explain_pip_failure(stderr, &options());
        assert!(
            message.contains("a 1 depends on c<2") && message.contains("b 2 depends on c>=2"),
            "{message}"
        );
    }
}
