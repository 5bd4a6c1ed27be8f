//! Choosing the files of CPython's standard library that go into the runtime.
//!
//! Everything importable ships, except what cannot work or is never used by applications: the
//! test suites, IDLE and tkinter (no Tk in the runtime), the static `libpython` build directory,
//! byte-code caches, and the host's `site-packages`. The extension modules of `lib-dynload` go
//! to the archive root (the one `sys.path` entry), test modules excepted.

use std::path::Path;

use anyhow::Result;

use crate::tree::{self, TreeFile};

/// Top-level entries of the standard library directory that are left out.
const EXCLUDED_TOP_LEVEL: &[&str] = &[
    "test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "__phello__",
    "site-packages",
    "dist-packages",
    "lib-dynload",
    "sitecustomize.py",
    "EXTERNALLY-MANAGED",
];

/// Directory names left out wherever they are (the packages' own test suites).
const EXCLUDED_ANYWHERE: &[&str] = &["test", "tests", "idle_test"];

/// Extension modules of `lib-dynload` that only CPython's test suite uses.
fn is_test_extension(file_name: &str) -> bool {
    file_name.starts_with("_test")
        || file_name.starts_with("_ctypes_test")
        || file_name.starts_with("_xxtestfuzz")
        || file_name.starts_with("xxlimited")
}

/// The standard library's files (Python and data) under their archive names.
pub fn library_files(stdlib: &Path) -> Result<Vec<TreeFile>> {
    let files = tree::collect(stdlib, &[])?;
    Ok(files
        .into_iter()
        .filter(|file| {
            let mut parts = file.name.split('/');
            let top = parts.next().unwrap_or_default();
            if EXCLUDED_TOP_LEVEL.contains(&top) || top.starts_with("config-") {
                return false;
            }
            let dirs: Vec<&str> = file.name.split('/').collect();
            !dirs[..dirs.len() - 1]
                .iter()
                .any(|dir| EXCLUDED_ANYWHERE.contains(dir))
        })
        .collect())
}

/// The extension modules of `lib-dynload`, named for the archive root.
pub fn extension_modules(stdlib: &Path) -> Result<Vec<TreeFile>> {
    let dynload = stdlib.join("lib-dynload");
    Ok(tree::collect(&dynload, &[])?
        .into_iter()
        .filter(|file| {
            file.name.ends_with(".so") && !file.name.contains('/') && !is_test_extension(&file.name)
        })
        .collect())
}
