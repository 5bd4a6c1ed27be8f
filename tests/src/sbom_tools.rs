//! The reference tools that check pyferry's SBOMs: `cyclonedx-python-lib` (strict CycloneDX
//! 1.6 JSON schema validation) and `spdx-tools` (SPDX 2.3), at the versions pinned in
//! `tests/sbom/requirements.txt`, installed with pip into `target/sbom-tools` the first time
//! (from the package index) and whenever the pins change.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::{run, workspace_root, Finished};

/// Where the tools are installed (`pip install --target`), with a copy of the requirements
/// they were installed from.
fn tools_dir() -> PathBuf {
    workspace_root().join("target/sbom-tools")
}

fn requirements() -> PathBuf {
    workspace_root().join("tests/sbom/requirements.txt")
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Installs the pinned tools unless the installed ones are the pinned ones.
fn ensure_installed() -> PathBuf {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _guard = INSTALL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = tools_dir();
    let stamp = dir.join(".requirements.txt");
    let wanted = std::fs::read_to_string(requirements()).expect("read tests/sbom/requirements.txt");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let installed = run(Command::new(python())
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args([
            "--root-user-action=ignore",
            "--only-binary=:all:",
            "--target",
        ])
        .arg(&dir)
        .arg("-r")
        .arg(requirements()));
    assert_eq!(
        installed.code,
        Some(0),
        "installing the SBOM validators (tests/sbom/requirements.txt) failed:\n{installed:#?}"
    );
    std::fs::write(&stamp, wanted).expect("write the stamp");
    dir
}

/// Runs `tests/sbom/validate.py FORMAT FILE` (`cyclonedx` or `spdx`) with the pinned tools.
pub fn validate(format: &str, file: &Path) -> Finished {
    let dir = ensure_installed();
    run(Command::new(python())
        .env("PYTHONPATH", &dir)
        .env_remove("PYTHONHOME")
        .arg(workspace_root().join("tests/sbom/validate.py"))
        .arg(format)
        .arg(file))
}
