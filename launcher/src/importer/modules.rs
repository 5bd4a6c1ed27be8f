//! Where a module lives in the archive: the search order of CPython's `FileFinder`, applied to
//! the entry index instead of a directory listing.
//!
//! Pure Rust on purpose (no Python objects), so the search order is unit-tested on its own.

use pyferry_payload::{EntryIndex, EntryKind};

/// File-name suffixes of extension modules, in CPython's order
/// (`importlib.machinery.EXTENSION_SUFFIXES` on Linux x86_64 for CPython 3.11).
pub const EXTENSION_SUFFIXES: [&str; 3] = [".cpython-311-x86_64-linux-gnu.so", ".abi3.so", ".so"];

/// A module found in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FoundModule {
    /// Python code: `stem.py` and/or `stem.pyc` (`stem` is `pkg/__init__` for a package).
    Python {
        stem: String,
        has_source: bool,
        has_bytecode: bool,
        package_dir: Option<String>,
    },
    /// A compiled extension module (`file` is the whole entry name).
    Extension {
        file: String,
        package_dir: Option<String>,
    },
    /// A directory with no `__init__`: a portion of a PEP 420 namespace package.
    Namespace { dir: String },
}

impl FoundModule {
    /// The archive path the module was found at: `__file__` relative to the archive root.
    /// Namespace portions have none.
    pub fn origin(&self) -> Option<String> {
        match self {
            FoundModule::Python {
                stem, has_source, ..
            } => Some(if *has_source {
                format!("{stem}.py")
            } else {
                format!("{stem}.pyc")
            }),
            FoundModule::Extension { file, .. } => Some(file.clone()),
            FoundModule::Namespace { .. } => None,
        }
    }

    /// The package's own directory, for packages.
    pub fn package_dir(&self) -> Option<&str> {
        match self {
            FoundModule::Python { package_dir, .. }
            | FoundModule::Extension { package_dir, .. } => package_dir.as_deref(),
            FoundModule::Namespace { dir } => Some(dir),
        }
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn find_code(index: &EntryIndex, stem: &str, package_dir: Option<&str>) -> Option<FoundModule> {
    for suffix in EXTENSION_SUFFIXES {
        let file = format!("{stem}{suffix}");
        if index.position(&file).is_some() {
            return Some(FoundModule::Extension {
                file,
                package_dir: package_dir.map(str::to_string),
            });
        }
    }
    let has_source = index.position(&format!("{stem}.py")).is_some();
    let has_bytecode = index.position(&format!("{stem}.pyc")).is_some();
    (has_source || has_bytecode).then(|| FoundModule::Python {
        stem: stem.to_string(),
        has_source,
        has_bytecode,
        package_dir: package_dir.map(str::to_string),
    })
}

/// Finds module `name` (one component, no dots) in archive directory `dir` (`""` is the root):
/// a package directory with an `__init__` first, then a module file (extension before Python
/// code, as `FileFinder` orders its loaders), then a namespace portion.
pub fn find_module(index: &EntryIndex, dir: &str, name: &str) -> Option<FoundModule> {
    if name.is_empty() || name.contains(['/', '.']) {
        return None;
    }
    let base = join(dir, name);
    let is_dir = index.kind(&base) == Some(EntryKind::Directory);
    if is_dir {
        if let Some(found) = find_code(index, &format!("{base}/__init__"), Some(&base)) {
            return Some(found);
        }
    }
    if let Some(found) = find_code(index, &base, None) {
        return Some(found);
    }
    is_dir.then_some(FoundModule::Namespace { dir: base })
}

/// The module name a file name stands for, if any (`inspect.getmodulename`'s rule).
pub fn module_name_of_file(file_name: &str) -> Option<&str> {
    EXTENSION_SUFFIXES
        .iter()
        .chain([".py", ".pyc"].iter())
        .find_map(|suffix| file_name.strip_suffix(suffix))
        .filter(|stem| !stem.is_empty() && !stem.contains('.'))
}

/// The importable modules directly inside archive directory `dir`, as `pkgutil.iter_modules`
/// lists them: `(name, is_package)`, sorted, packages only when they have an `__init__`.
pub fn iter_modules(index: &EntryIndex, dir: &str) -> Vec<(String, bool)> {
    let mut modules: Vec<(String, bool)> = Vec::new();
    for (child, kind) in index.children(dir) {
        let entry = match kind {
            EntryKind::Directory => {
                let is_package = !child.contains('.')
                    && find_code(index, &format!("{}/__init__", join(dir, child)), None).is_some();
                if !is_package {
                    continue;
                }
                (child.to_string(), true)
            }
            EntryKind::File => match module_name_of_file(child) {
                Some(name) if name != "__init__" => (name.to_string(), false),
                _ => continue,
            },
        };
        if !modules.iter().any(|known| known.0 == entry.0) {
            modules.push(entry);
        }
    }
    modules.sort();
    modules
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(names: &[&str]) -> EntryIndex<'static> {
        EntryIndex::from_names(names.iter().copied())
    }

    #[test]
    fn package_before_module_and_extension_before_python() {
        let index = index(&[
            "a/__init__.py",
            "a/__init__.pyc",
            "a.py",
            "fast.py",
            "fast.cpython-311-x86_64-linux-gnu.so",
            "bc.pyc",
            "ns/x.py",
        ]);
        assert_eq!(
            find_module(&index, "", "a"),
            Some(FoundModule::Python {
                stem: "a/__init__".into(),
                has_source: true,
                has_bytecode: true,
                package_dir: Some("a".into())
            })
        );
        assert_eq!(
            find_module(&index, "", "fast").unwrap().origin().unwrap(),
            "fast.cpython-311-x86_64-linux-gnu.so"
        );
        assert_eq!(
            find_module(&index, "", "bc").unwrap().origin().unwrap(),
            "bc.pyc"
        );
        assert_eq!(
            find_module(&index, "", "ns"),
            Some(FoundModule::Namespace { dir: "ns".into() })
        );
        assert_eq!(
            find_module(&index, "ns", "x").unwrap().origin().unwrap(),
            "ns/x.py"
        );
        assert_eq!(find_module(&index, "", "missing"), None);
        assert_eq!(find_module(&index, "", "a.b"), None);
    }

    #[test]
    fn abi3_and_plain_suffixes() {
        let index = index(&["p/m.abi3.so", "q.so"]);
        assert_eq!(
            find_module(&index, "p", "m").unwrap().origin().unwrap(),
            "p/m.abi3.so"
        );
        assert_eq!(
            find_module(&index, "", "q").unwrap().origin().unwrap(),
            "q.so"
        );
    }

    #[test]
    fn iter_modules_lists_what_pkgutil_would() {
        let index = index(&[
            "pkg/__init__.py",
            "pkg/a.py",
            "pkg/a.pyc",
            "pkg/b.cpython-311-x86_64-linux-gnu.so",
            "pkg/sub/__init__.pyc",
            "pkg/data/file.txt",
            "pkg/notes.txt",
            "pkg/x.y.py",
        ]);
        assert_eq!(
            iter_modules(&index, "pkg"),
            vec![
                ("a".to_string(), false),
                ("b".to_string(), false),
                ("sub".to_string(), true)
            ]
        );
    }
}
