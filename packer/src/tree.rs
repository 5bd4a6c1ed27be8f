//! Collecting the files of an application directory, in a stable order.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// A file of the tree: where it is on disk and its name in the archive.
#[derive(Debug, Clone)]
pub struct TreeFile {
    pub path: PathBuf,
    pub name: String,
}

/// Lists the files below `root` (following symbolic links), sorted by archive name, leaving out
/// byte-code caches (they are compiled afresh) and the files in `exclude` (the output itself,
/// when it is written inside the tree).
pub fn collect(root: &Path, exclude: &[PathBuf]) -> Result<Vec<TreeFile>> {
    let mut files = Vec::new();
    let walker = walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|entry| entry.file_name() != "__pycache__");
    for entry in walker {
        let entry = entry.map_err(|error| {
            let path = error.path().unwrap_or(root).display().to_string();
            let cause = error
                .io_error()
                .map(ToString::to_string)
                .unwrap_or_else(|| error.to_string());
            anyhow::anyhow!("cannot read `{path}`: {cause}")
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let path = entry.path();
        if exclude.iter().any(|excluded| same_file(excluded, path)) {
            continue;
        }
        let extension = path.extension().and_then(|extension| extension.to_str());
        if matches!(extension, Some("pyc" | "pyo")) {
            continue;
        }
        let relative = path.strip_prefix(root).context("walked outside the tree")?;
        let Some(name) = relative.to_str() else {
            bail!(
                "`{}`: file names must be UTF-8 to be imported",
                path.display()
            );
        };
        if name.starts_with(".pyferry/") {
            bail!(
                "`{}`: `.pyferry/` is reserved for pyferry's own files",
                path.display()
            );
        }
        files.push(TreeFile {
            path: path.to_path_buf(),
            name: name.to_string(),
        });
    }
    files.sort_by(|left, right| left.name.cmp(&right.name));
    Ok(files)
}

fn same_file(left: &Path, right: &Path) -> bool {
    match (left.canonicalize(), right.canonicalize()) {
        (Ok(left), Ok(right)) => left == right,
        _ => false,
    }
}
