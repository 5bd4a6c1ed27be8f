//! Prefetching: putting a package's native libraries in memory on a background thread as soon
//! as the package is first found, and, at start-up, those of the packages the entry point's
//! module imports. Only copies: the importing thread loads each object when its import needs
//! it (`shared_objects.rs`).

use std::sync::Mutex;

use crate::environment;
use crate::executable::context::ArchiveContext;
use crate::native::memfd::CopyThreads;
use crate::native::shared_objects::{libraries_in_load_order, memory_path, REGISTRY};

/// Starts putting in memory, on a background thread, the shared objects that a top-level
/// package's extension modules will need: the libraries they link
/// and the extension modules that link them. The importing thread meanwhile runs the
/// package's Python code; when it reaches an extension, the work is done or under way (it then
/// waits), never done twice. Turned off by `PYFERRY_PREFETCH=0`.
pub fn prefetch_package(context: &'static ArchiveContext, package: &str) {
    static STARTED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    if !environment::prefetch_enabled() {
        return;
    }
    {
        let mut started = STARTED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if started.iter().any(|known| known == package) {
            return;
        }
        started.push(package.to_string());
    }
    let prefix = format!("{package}/");
    let graph = &context.archive.manifest().shared_libraries;
    let users: Vec<String> = graph
        .range(prefix.clone()..)
        .take_while(|(name, _)| name.starts_with(&prefix))
        .map(|(name, _)| name.clone())
        .collect();
    if users.is_empty() {
        return;
    }
    let mut libraries: Vec<(String, String)> = Vec::new();
    for user in &users {
        for (step, needed_by) in libraries_in_load_order(context, user) {
            for library in step.members() {
                if !libraries.iter().any(|(known, _)| known == library) {
                    libraries.push((library.clone(), needed_by.clone()));
                }
            }
        }
    }
    tracing::debug!(
        package,
        libraries = libraries.len(),
        extensions = users.len(),
        "prefetching"
    );
    let spawned = std::thread::Builder::new()
        .name("pyferry-prefetch".to_string())
        .spawn(move || {
            // Whatever happens, a slot this thread claimed must not stay `Preparing`: the
            // importing thread would wait for it forever.
            let claimed: Vec<String> = libraries
                .iter()
                .map(|(library, _)| library.clone())
                .chain(users.iter().cloned())
                .collect();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                prefetch(context, &libraries, &users)
            }));
            if outcome.is_err() {
                REGISTRY.release_preparing(&claimed);
            }
        });
    if let Err(error) = spawned {
        tracing::debug!(%error, "no prefetch thread");
    }
}

/// The prefetch thread's work: libraries, then extension modules, into memory files. Loading
/// them is left to the importing thread, when the import needs them, as CPython in a venv
/// would: their constructors (OpenBLAS starts its thread pool) run there and then.
fn prefetch(context: &'static ArchiveContext, libraries: &[(String, String)], users: &[String]) {
    for (library, _) in libraries {
        if let Err(error) = memory_path(context, library, CopyThreads::One) {
            tracing::debug!(%error, "prefetch failed; the import will retry and report");
            return;
        }
    }
    for user in users {
        let _ = memory_path(context, user, CopyThreads::One);
    }
}

/// The top-level names that `source` imports at the start of a line (`import a.b, c` and
/// `from a.b import x`), in order, each once. A cheap textual scan, not a parse: it only
/// decides what to prefetch.
pub fn imported_top_level_names(source: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for line in source.lines() {
        let line = line.trim_start();
        let modules = if let Some(rest) = line.strip_prefix("import ") {
            rest.split(',').collect::<Vec<_>>()
        } else if let Some(rest) = line.strip_prefix("from ") {
            vec![rest.split_whitespace().next().unwrap_or_default()]
        } else {
            continue;
        };
        for module in modules {
            let top = module.trim().split(['.', ' ']).next().unwrap_or_default();
            if !top.is_empty()
                && top.chars().all(|c| c == '_' || c.is_alphanumeric())
                && !names.iter().any(|known| known == top)
            {
                names.push(top.to_string());
            }
        }
    }
    names
}

/// At start-up, before the interpreter exists: prefetch the native libraries of the packages
/// that the entry point's module imports directly (read from its shipped source).
pub fn prefetch_for_entry_point(
    context: &'static ArchiveContext,
    entry_point: &pyferry_payload::EntryPoint,
) {
    let module = entry_point.module.replace('.', "/");
    let source = [
        format!("{module}.py"),
        format!("{module}/__init__.py"),
        format!("{module}/__main__.py"),
    ]
    .iter()
    .find_map(|name| context.archive.read(name).ok().flatten());
    let Some(source) = source else {
        return;
    };
    for name in imported_top_level_names(&String::from_utf8_lossy(&source)) {
        prefetch_package(context, &name);
    }
}

#[cfg(test)]
mod tests {
    use super::imported_top_level_names;

    #[test]
    fn import_lines_name_their_top_level_packages() {
        let source = "import os, numpy.linalg as la\nfrom pandas.core import frame\n  import scipy\nx = 'import nope'\nfrom . import sibling\n";
        assert_eq!(
            imported_top_level_names(source),
            vec!["os", "numpy", "pandas", "scipy"]
        );
    }
}
