//! Resolving requirements to wheels for the target and downloading them, with pip.
//!
//! pip is asked for the runtime's target, not the host's: `--python-version 3.11`, the ABI and
//! platform tags of [`crate::target`], binary wheels only (`--only-binary :all:`), so nothing is
//! built from an sdist. pip is found as `$PYFERRY_PIP_PYTHON -m pip`, else `python3 -m pip`.
//! Its errors are turned into one line naming the package and the target.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::target;

/// Overrides the Python that runs pip.
pub const PIP_PYTHON_VARIABLE: &str = "PYFERRY_PIP_PYTHON";

/// Where and how to look for distributions.
#[derive(Debug, Clone, Default)]
pub struct IndexOptions {
    pub index_url: Option<String>,
    pub find_links: Vec<PathBuf>,
    pub no_index: bool,
    pub no_deps: bool,
}

fn pip_python() -> String {
    std::env::var(PIP_PYTHON_VARIABLE)
        .ok()
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| "python3".to_string())
}

/// The arguments that make pip choose wheels for the target.
fn target_arguments() -> Vec<String> {
    let mut arguments: Vec<String> = vec![
        "--only-binary=:all:".into(),
        "--python-version".into(),
        target::PYTHON_VERSION.into(),
        "--implementation".into(),
        "cp".into(),
    ];
    for abi in target::ABI_TAGS {
        arguments.push("--abi".into());
        arguments.push((*abi).into());
    }
    for platform in target::platform_tags() {
        arguments.push("--platform".into());
        arguments.push(platform);
    }
    arguments
}

/// Downloads the wheels of `requirements` (specifiers, and `-r FILE`s as `("-r", path)` pairs
/// already flattened into `arguments`) and of their dependencies into `destination`, returning
/// the wheel paths.
pub fn download(
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
        .args(target_arguments())
        .arg("--dest")
        .arg(destination);
    if let Some(url) = &options.index_url {
        command.args(["--index-url", url]);
    }
    for dir in &options.find_links {
        command.arg("--find-links").arg(dir);
    }
    if options.no_index {
        command.arg("--no-index");
    }
    if options.no_deps {
        command.arg("--no-deps");
    }
    command.args(arguments);
    tracing::debug!(?command, "resolving with pip");
    let output = command.output().with_context(|| {
        format!("cannot run `{python} -m pip` to resolve requirements; hint: install pip, or set {PIP_PYTHON_VARIABLE} to a Python that has it")
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!("{}", explain_pip_failure(&stderr));
    }
    let mut wheels: Vec<PathBuf> = fs_err::read_dir(destination)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|extension| extension == "whl"))
        .collect();
    wheels.sort();
    Ok(wheels)
}

/// One line for a failed `pip download`: what pip could not find, for which target, and what
/// to do; or pip's own last error line.
pub fn explain_pip_failure(stderr: &str) -> String {
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
            let available = if versions == "none" {
                "no version has one".to_string()
            } else {
                format!("versions with one: {versions}")
            };
            return format!(
                "no wheel of `{requirement}` for {} ({available}); nothing is built from an sdist: hint: pick a version that has a wheel, or build one and pass it with `--find-links DIR`",
                target::describe()
            );
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

    #[test]
    fn missing_wheel_names_the_requirement_and_the_versions() {
        let stderr = "ERROR: Could not find a version that satisfies the requirement pyyaml==5.3 (from versions: 6.0, 6.0.1)\nERROR: No matching distribution found for pyyaml==5.3\n";
        let message = explain_pip_failure(stderr);
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
        let message = explain_pip_failure(stderr);
        assert!(
            message.contains("a 1 depends on c<2") && message.contains("b 2 depends on c>=2"),
            "{message}"
        );
    }
}
