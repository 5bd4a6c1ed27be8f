//! Finding and reading the pyferry runtime: the launcher executable with the standard library
//! appended, which `pack` copies into every application.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use pyferry_payload::{Archive, PayloadKind};

use crate::sbom::runtime_description::{self, RuntimeDescription};

/// Overrides where the runtime is looked for.
pub const RUNTIME_VARIABLE: &str = "PYFERRY_RUNTIME";

/// The runtime's file name next to the `pyferry` executable.
pub const RUNTIME_FILE_NAME: &str = "pyferry-runtime";

/// Where the runtime is looked for, in order: `$PYFERRY_RUNTIME`, then next to `pyferry`
/// itself, then in `../lib/pyferry/` from it (an installed layout).
pub fn candidates() -> Vec<PathBuf> {
    if let Some(path) = std::env::var_os(RUNTIME_VARIABLE).filter(|path| !path.is_empty()) {
        return vec![PathBuf::from(path)];
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            candidates.push(dir.join(RUNTIME_FILE_NAME));
            candidates.push(dir.join("../lib/pyferry").join(RUNTIME_FILE_NAME));
        }
    }
    candidates
}

/// CPython's version as the runtime's interpreter reports it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct PythonBuild {
    /// `platform.python_version()`: `3.11.2`.
    pub version: String,
    /// `sys.version`.
    pub sys_version: String,
}

/// The runtime, read into memory.
pub struct Runtime {
    pub path: PathBuf,
    bytes: Vec<u8>,
}

impl Runtime {
    pub fn locate() -> Result<Runtime> {
        let candidates = candidates();
        let Some(path) = candidates.iter().find(|path| path.is_file()) else {
            let looked = candidates
                .iter()
                .map(|path| format!("`{}`", path.display()))
                .collect::<Vec<_>>()
                .join(", ");
            bail!("cannot find the pyferry runtime (looked at {looked}); hint: run `make build`, or set {RUNTIME_VARIABLE} to its path");
        };
        Runtime::open(path)
    }

    pub fn open(path: &Path) -> Result<Runtime> {
        let bytes = fs_err::read(path).context("cannot read the pyferry runtime")?;
        let runtime = Runtime {
            path: path.to_path_buf(),
            bytes,
        };
        let archive = runtime.archive()?;
        if archive.manifest().kind != PayloadKind::Runtime {
            bail!(
                "`{}` is a packed application, not the pyferry runtime",
                path.display()
            );
        }
        Ok(runtime)
    }

    pub fn archive(&self) -> Result<Archive<'_>> {
        Archive::parse(&self.bytes)
            .with_context(|| format!("`{}` is not a usable pyferry runtime", self.path.display()))
    }

    /// The runtime's zip for copying entries raw (still compressed) into an application.
    pub fn zip_archive(&self) -> Result<zip::ZipArchive<std::io::Cursor<&[u8]>>> {
        zip::ZipArchive::new(std::io::Cursor::new(self.bytes.as_slice()))
            .with_context(|| format!("`{}` is not a usable pyferry runtime", self.path.display()))
    }

    /// CPython's exact version, asked of the runtime itself (its build helper's `version`).
    pub fn python_build(&self) -> Result<PythonBuild> {
        let output = std::process::Command::new(&self.path)
            .arg("version")
            .env_remove("PYFERRY_LOG")
            .stdin(std::process::Stdio::null())
            .output()
            .with_context(|| format!("cannot run the pyferry runtime `{}`", self.path.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        match serde_json::from_str::<PythonBuild>(stdout.trim()) {
            Ok(build) if output.status.success() => Ok(build),
            _ => bail!(
                "the pyferry runtime `{}` did not report its Python version ({}): {}",
                self.path.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
                    .trim()
                    .lines()
                    .last()
                    .unwrap_or("no message")
            ),
        }
    }

    /// What the runtime's recipe says about it (`runtime.json`): an entry
    /// `.pyferry/runtime.json` of the runtime, else the file beside it; `None` when neither
    /// exists (a runtime built on Debian's libpython has none).
    pub fn description(&self) -> Result<Option<(String, RuntimeDescription)>> {
        let inside = runtime_description::ARCHIVE_PATH;
        if let Some(bytes) = self.archive()?.read(inside).ok().flatten() {
            let origin = format!("`{}` in `{}`", inside, self.path.display());
            let description = runtime_description::parse(&String::from_utf8_lossy(&bytes))
                .with_context(|| format!("{origin} is not a runtime description"))?;
            return Ok(Some((origin, description)));
        }
        let beside = self.path.with_file_name(runtime_description::FILE_NAME);
        if !beside.is_file() {
            return Ok(None);
        }
        let description = runtime_description::read(&beside)?;
        Ok(Some((format!("`{}`", beside.display()), description)))
    }

    /// The launcher executable in front of the runtime's zip.
    pub fn launcher_bytes(&self) -> Result<&[u8]> {
        let start = self.archive()?.payload_start() as usize;
        Ok(&self.bytes[..start])
    }
}
