//! Installing a wheel into a staging directory, following the binary distribution format
//! (PEP 427 / the wheel specification): purelib and platlib both land at the root of the import
//! path, `*.dist-info` is kept whole, and `RECORD` is rewritten to list what was installed.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::target::{self, Target};

/// A wheel file's name, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelName {
    pub distribution: String,
    pub version: String,
    pub python: String,
    pub abi: String,
    pub platform: String,
}

impl WheelName {
    /// Parses `{distribution}-{version}(-{build})?-{python}-{abi}-{platform}.whl`.
    pub fn parse(file_name: &str) -> Option<WheelName> {
        let stem = file_name.strip_suffix(".whl")?;
        let parts: Vec<&str> = stem.split('-').collect();
        let (distribution, version, tags) = match parts.len() {
            5 => (parts[0], parts[1], &parts[2..]),
            6 => (parts[0], parts[1], &parts[3..]),
            _ => return None,
        };
        Some(WheelName {
            distribution: distribution.to_string(),
            version: version.to_string(),
            python: tags[0].to_string(),
            abi: tags[1].to_string(),
            platform: tags[2].to_string(),
        })
    }

    pub fn tags(&self) -> String {
        format!("{}-{}-{}", self.python, self.abi, self.platform)
    }
}

/// What an installed distribution looks like, for the manifest and `pyferry inspect`.
#[derive(Debug, Clone)]
pub struct Installed {
    pub name: WheelName,
    /// The wheel's file name and the SHA-256 (hex) of its bytes.
    pub wheel_file: String,
    pub wheel_sha256: String,
    /// The `*.dist-info` directory it installed.
    pub dist_info: String,
    /// Files installed, relative to the staging root.
    pub files: Vec<String>,
    /// `console_scripts` entry points: name → `module:function`.
    pub console_scripts: BTreeMap<String, String>,
    /// Python scripts of `*.data/scripts/` (first line `#!python`): name → the module they were
    /// installed as ([`SCRIPTS_PACKAGE`]`.NAME`), to run as `__main__`.
    pub data_scripts: BTreeMap<String, String>,
    /// The other files of `*.data/scripts/` (programs such as ruff's, not Python): skipped,
    /// named here so that `-c NAME` can say why it is not an entry point.
    pub native_scripts: Vec<String>,
}

/// The package holding the Python scripts of `*.data/scripts/`, as modules.
pub const SCRIPTS_PACKAGE: &str = "__pyferry_scripts__";

/// The module name a script named `name` is installed as, in [`SCRIPTS_PACKAGE`]: its name with
/// every character that cannot be in a module name (`rst2html.py`, `my-tool`) made `_`.
pub fn script_module(name: &str) -> String {
    let mut module: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if module.starts_with(|c: char| c.is_ascii_digit()) || module.is_empty() {
        module.insert(0, '_');
    }
    module
}

/// Whether a script's contents make it a Python script that installers point at the
/// interpreter (`#!python`, the wheel format's marker, or `#!pythonw`).
fn is_python_script(contents: &[u8]) -> bool {
    let first_line = contents
        .split(|byte| *byte == b'\n')
        .next()
        .unwrap_or_default();
    first_line.starts_with(b"#!python")
}

/// Checks that a wheel can run on the target; the error names the wheel and both tag sets, and
/// the platform level that would take it when only the glibc level is too low.
pub fn check_tags(path: &Path, target: &Target) -> Result<WheelName> {
    let platform = &target.platform;
    let file_name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default();
    let Some(name) = WheelName::parse(file_name) else {
        bail!(
            "`{}` is not a wheel file name (NAME-VERSION-PYTHON-ABI-PLATFORM.whl)",
            path.display()
        );
    };
    if !target.is_compatible(&name.python, &name.abi, &name.platform) {
        let hint = match target::wheel_glibc(&name.platform) {
            Some(glibc) if glibc > platform.glibc => {
                let working = platform.level_for(glibc).unwrap_or(*platform);
                let at_working = Target {
                    platform: working,
                    ..*target
                };
                if working != *platform
                    && at_working.is_compatible(&name.python, &name.abi, &name.platform)
                {
                    format!(
                        "it needs glibc {}: pack with `--python-platform {}` (the application then needs that glibc), or use a wheel built for {}",
                        target::glibc_text(glibc),
                        working.uv_name(),
                        platform.wheel_tag()
                    )
                } else {
                    "use a wheel built for that target (`--find-links DIR`) or another version"
                        .to_string()
                }
            }
            _ => "use a wheel built for that target (`--find-links DIR`) or another version"
                .to_string(),
        };
        bail!(
            "`{file_name}`: {} {} is built for {}, but the application needs {}; hint: {hint}",
            name.distribution,
            name.version,
            name.tags(),
            target.describe()
        );
    }
    Ok(name)
}

/// An archive name that stays inside the staging directory.
fn safe_relative(name: &str) -> Option<PathBuf> {
    let path = Path::new(name);
    path.components()
        .all(|component| matches!(component, Component::Normal(_)))
        .then(|| path.to_path_buf())
}

fn record_hash(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let digest = Sha256::digest(bytes);
    let mut encoded = String::new();
    for chunk in digest.chunks(3) {
        let value = chunk
            .iter()
            .fold(0u32, |value, byte| (value << 8) | u32::from(*byte))
            << (8 * (3 - chunk.len()));
        for index in 0..=chunk.len() {
            encoded.push(ALPHABET[((value >> (18 - 6 * index)) & 63) as usize] as char);
        }
    }
    format!("sha256={encoded}")
}

/// Parses the `[console_scripts]` section of an `entry_points.txt`.
pub fn console_scripts(entry_points: &str) -> BTreeMap<String, String> {
    let mut scripts = BTreeMap::new();
    let mut in_section = false;
    for line in entry_points.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_section = line == "[console_scripts]";
            continue;
        }
        if !in_section || line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some((name, value)) = line.split_once('=') {
            // Drop extras (`module:function [extra]`).
            let value = value.split('[').next().unwrap_or(value).trim();
            scripts.insert(name.trim().to_string(), value.to_string());
        }
    }
    scripts
}

/// Installs the wheel at `path` into `root`, for `target`.
pub fn install(path: &Path, root: &Path, target: &Target) -> Result<Installed> {
    let name = check_tags(path, target)?;
    let mut hasher = Sha256::new();
    let mut reader = fs_err::File::open(path)?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let count = reader
            .read(&mut buffer)
            .with_context(|| format!("cannot read `{}`", path.display()))?;
        if count == 0 {
            break;
        }
        hasher.update(&buffer[..count]);
    }
    let wheel_sha256 = hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let file = fs_err::File::open(path)?;
    let mut zip = zip::ZipArchive::new(file)
        .with_context(|| format!("`{}` is not a valid wheel (zip)", path.display()))?;
    let names: Vec<String> = zip
        .file_names()
        .filter_map(Result::ok)
        .map(|name| name.into_owned())
        .collect();
    let tops: Vec<&str> = names
        .iter()
        .filter_map(|entry| entry.split('/').next())
        .filter(|top| top.ends_with(".dist-info"))
        .collect();
    let expected = format!("{}-", name.distribution.replace('-', "_").to_lowercase());
    let dist_info = tops
        .iter()
        .find(|top| top.to_lowercase().starts_with(&expected))
        .or_else(|| tops.first())
        .map(|top| top.to_string())
        .with_context(|| format!("`{}` has no .dist-info directory", path.display()))?;
    let data_dir = format!("{}.data", dist_info.trim_end_matches(".dist-info"));
    let mut installed = Installed {
        name,
        wheel_file: path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
        wheel_sha256,
        dist_info: dist_info.clone(),
        files: Vec::new(),
        console_scripts: BTreeMap::new(),
        data_scripts: BTreeMap::new(),
        native_scripts: Vec::new(),
    };
    let mut record = String::new();
    for index in 0..zip.len() {
        let mut entry = zip.by_index(index)?;
        if entry.is_dir() {
            continue;
        }
        let entry_name = entry
            .name()
            .with_context(|| format!("`{}`: an entry name is not UTF-8", path.display()))?
            .into_owned();
        let target_name = match entry_name.strip_prefix(&format!("{data_dir}/")) {
            None => entry_name.clone(),
            Some(rest) => match rest.split_once('/') {
                Some(("purelib" | "platlib", inner)) => inner.to_string(),
                Some(("scripts", script)) if !script.contains('/') => {
                    let mut contents = Vec::with_capacity(entry.size() as usize);
                    entry.read_to_end(&mut contents).with_context(|| {
                        format!("`{}`: cannot read `{entry_name}`", path.display())
                    })?;
                    if !is_python_script(&contents) {
                        tracing::debug!(
                            "{}: skipping `{entry_name}` (not a `#!python` script)",
                            path.display()
                        );
                        installed.native_scripts.push(script.to_string());
                        continue;
                    }
                    let module = script_module(script);
                    let package = root.join(SCRIPTS_PACKAGE);
                    fs_err::create_dir_all(&package)?;
                    fs_err::write(package.join("__init__.py"), "")?;
                    let target_name = format!("{SCRIPTS_PACKAGE}/{module}.py");
                    fs_err::write(root.join(&target_name), &contents)?;
                    record.push_str(&format!(
                        "{target_name},{},{}\n",
                        record_hash(&contents),
                        contents.len()
                    ));
                    installed.files.push(target_name);
                    installed
                        .data_scripts
                        .insert(script.to_string(), format!("{SCRIPTS_PACKAGE}.{module}"));
                    continue;
                }
                Some((scheme, _)) => {
                    tracing::debug!(
                        "{}: skipping `{entry_name}` ({scheme} files are not importable)",
                        path.display()
                    );
                    continue;
                }
                None => continue,
            },
        };
        if target_name == format!("{dist_info}/RECORD") {
            continue;
        }
        let Some(relative) = safe_relative(&target_name) else {
            bail!(
                "`{}`: entry `{entry_name}` would be written outside the install directory",
                path.display()
            );
        };
        let mut contents = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut contents)
            .with_context(|| format!("`{}`: cannot read `{entry_name}`", path.display()))?;
        let destination = root.join(&relative);
        if let Some(parent) = destination.parent() {
            fs_err::create_dir_all(parent)?;
        }
        fs_err::write(&destination, &contents)?;
        if target_name == format!("{dist_info}/entry_points.txt") {
            installed.console_scripts = console_scripts(&String::from_utf8_lossy(&contents));
        }
        record.push_str(&format!(
            "{target_name},{},{}\n",
            record_hash(&contents),
            contents.len()
        ));
        installed.files.push(target_name);
    }
    let installer = format!("{dist_info}/INSTALLER");
    fs_err::write(root.join(&installer), "pyferry\n")?;
    record.push_str(&format!(
        "{installer},{},{}\n",
        record_hash(b"pyferry\n"),
        8
    ));
    record.push_str(&format!("{dist_info}/RECORD,,\n"));
    fs_err::write(root.join(format!("{dist_info}/RECORD")), record)?;
    installed.files.push(installer);
    installed.files.push(format!("{dist_info}/RECORD"));
    Ok(installed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_names() {
        let name = WheelName::parse(
            "numpy-2.2.6-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        )
        .unwrap();
        assert_eq!(name.distribution, "numpy");
        assert_eq!(name.platform, "manylinux_2_17_x86_64.manylinux2014_x86_64");
        let built = WheelName::parse("pkg-1.0-1-py3-none-any.whl").unwrap();
        assert_eq!(
            (built.version.as_str(), built.python.as_str()),
            ("1.0", "py3")
        );
        assert!(WheelName::parse("not-a-wheel.zip").is_none());
    }

    #[test]
    fn scripts_become_module_names() {
        assert_eq!(script_module("rst2html.py"), "rst2html_py");
        assert_eq!(script_module("my-tool"), "my_tool");
        assert_eq!(script_module("2to3"), "_2to3");
        assert!(is_python_script(b"#!python\nprint(1)\n"));
        assert!(is_python_script(b"#!pythonw\n"));
        assert!(!is_python_script(b"#!/bin/sh\necho\n"));
    }

    #[test]
    fn record_hashes_are_urlsafe_base64_without_padding() {
        // sha256("") in the RECORD format.
        assert_eq!(
            record_hash(b""),
            "sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
        );
    }

    #[test]
    fn entry_points_console_scripts() {
        let text = "[console_scripts]\nblack = black:patched_main\nblackd = blackd:patched_main [d]\n\n[other]\nx = y:z\n";
        let scripts = console_scripts(text);
        assert_eq!(scripts["black"], "black:patched_main");
        assert_eq!(scripts["blackd"], "blackd:patched_main");
        assert_eq!(scripts.len(), 2);
    }

    #[test]
    fn traversal_names_are_refused() {
        assert!(safe_relative("../../etc/passwd").is_none());
        assert!(safe_relative("/abs").is_none());
        assert!(safe_relative("pkg/mod.py").is_some());
    }
}
