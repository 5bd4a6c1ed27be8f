//! Packages that read their own files by path, found by a scan of their sources: what a pyz
//! warns about. (Executables serve such paths from the archive, `launcher/src/archive_fs/`; a
//! pyz is run by the host's python, whose `open()` finds nothing below a `__file__` inside the
//! zip.)
//!
//! A package is reported when:
//! - it holds a shared library that is neither an extension module (no `PyInit_*`) nor a
//!   dependency of one: code loads it by path (`ctypes.CDLL`, `cffi`);
//! - it is pure Python, ships data files, and its code builds paths from `__file__`
//!   (`os.path.dirname(__file__)`, `Path(__file__).parent`...).

use std::collections::{BTreeMap, BTreeSet};

use crate::elf::SharedObject;
use crate::tree::TreeFile;

/// Patterns of code that derives file paths from `__file__`.
const FILE_RELATIVE_PATTERNS: &[&str] = &[
    "dirname(__file__)",
    "dirname(os.path.abspath(__file__))",
    "dirname(os.path.realpath(__file__))",
    "Path(__file__).parent",
    "Path(__file__).resolve().parent",
];

/// Files that are not data for this purpose.
fn is_code_or_metadata(name: &str) -> bool {
    name.ends_with(".py")
        || name.ends_with(".pyc")
        || name.ends_with(".pyi")
        || name.ends_with("py.typed")
        || pyferry_payload::is_shared_object(name)
}

/// The top-level package of an archive path, if it is inside one (not `*.dist-info`,
/// `*.libs` or a top-level module).
fn top_level_package(name: &str) -> Option<&str> {
    let (top, _) = name.split_once('/')?;
    (!top.contains('.')).then_some(top)
}

/// Packages that read files by path, each with the reason.
pub fn packages_reading_files(
    files: &[TreeFile],
    objects: &BTreeMap<String, SharedObject>,
    needed_by_others: &BTreeSet<String>,
) -> BTreeMap<String, String> {
    let mut chosen: BTreeMap<String, String> = BTreeMap::new();
    for (name, object) in objects {
        let Some(package) = top_level_package(name) else {
            continue;
        };
        if !object.extension_module && !needed_by_others.contains(name) && !name.contains(".libs/")
        {
            chosen
                .entry(package.to_string())
                .or_insert_with(|| format!("`{name}` is a library loaded by path"));
        }
    }
    let mut with_data: BTreeSet<&str> = BTreeSet::new();
    let mut native: BTreeSet<&str> = BTreeSet::new();
    for file in files {
        if let Some(package) = top_level_package(&file.name) {
            if pyferry_payload::is_shared_object(&file.name) {
                native.insert(package);
            } else if !is_code_or_metadata(&file.name) {
                with_data.insert(package);
            }
        }
    }
    with_data.retain(|package| !native.contains(package));
    for file in files {
        let Some(package) = top_level_package(&file.name) else {
            continue;
        };
        if !file.name.ends_with(".py")
            || !with_data.contains(package)
            || chosen.contains_key(package)
        {
            continue;
        }
        let Ok(source) = std::fs::read_to_string(&file.path) else {
            continue;
        };
        if let Some(pattern) = FILE_RELATIVE_PATTERNS
            .iter()
            .find(|pattern| source.contains(**pattern))
        {
            chosen.insert(
                package.to_string(),
                format!("`{}` opens files next to itself (`{pattern}`)", file.name),
            );
        }
    }
    chosen
}
