//! Which shared libraries an archive's native code needs, and where each comes from.
//!
//! glibc satisfies a `DT_NEEDED` entry with an already-loaded object of that SONAME, so the
//! launcher only has to load, from memory and dependencies first, the libraries that are in the
//! archive. This module works out that graph at pack time (the launcher does no ELF parsing) and
//! sorts every other needed library into "the host provides it" (glibc, and what manylinux lets
//! wheels assume) or "missing" (a warning), and refuses extensions linked to `libpython`.

use std::collections::{BTreeMap, BTreeSet};

use crate::elf::SharedObject;

/// Libraries of glibc itself: never packed, always the host's.
pub const GLIBC_LIBRARIES: &[&str] = &[
    "ld-linux-x86-64.so.2",
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "librt.so.1",
    "libpthread.so.0",
    "libutil.so.1",
    "libresolv.so.2",
    "libnsl.so.1",
    "libanl.so.1",
    "libBrokenLocale.so.1",
    "libmvec.so.1",
    "libnss_files.so.2",
    "libnss_dns.so.2",
    "libthread_db.so.1",
];

/// Libraries outside glibc that manylinux policies let wheels take from the host.
pub const MANYLINUX_HOST_LIBRARIES: &[&str] = &[
    "libgcc_s.so.1",
    "libstdc++.so.6",
    "libz.so.1",
    "libX11.so.6",
    "libXext.so.6",
    "libXrender.so.1",
    "libICE.so.6",
    "libSM.so.6",
    "libGL.so.1",
    "libgobject-2.0.so.0",
    "libgthread-2.0.so.0",
    "libglib-2.0.so.0",
];

pub fn is_glibc_library(name: &str) -> bool {
    GLIBC_LIBRARIES.contains(&name)
}

pub fn is_host_library(name: &str) -> bool {
    is_glibc_library(name) || MANYLINUX_HOST_LIBRARIES.contains(&name)
}

/// What a look at the archive's shared objects found.
#[derive(Debug, Default)]
pub struct LibraryGraph {
    /// For each object needing libraries of the archive: those libraries' archive paths.
    pub dependencies: BTreeMap<String, Vec<String>>,
    /// `(object, library)` pairs where the library is neither in the archive nor the host's.
    pub missing: Vec<(String, String)>,
    /// Objects linked against a shared libpython.
    pub linked_to_libpython: Vec<(String, String)>,
}

/// The load plans of `objects` (archive path → plan), for the manifest.
pub fn load_plans(
    objects: &BTreeMap<String, SharedObject>,
) -> BTreeMap<String, pyferry_payload::LoadPlan> {
    objects
        .iter()
        .filter_map(|(path, object)| Some((path.clone(), object.load_plan.clone()?)))
        .collect()
}

/// Builds the graph over `objects`: archive path → parsed ELF facts.
pub fn library_graph(objects: &BTreeMap<String, SharedObject>) -> LibraryGraph {
    // A library is found by SONAME, or by file name when it has none (what the loader matches).
    let mut by_name: BTreeMap<&str, &str> = BTreeMap::new();
    for (path, object) in objects {
        let file_name = path.rsplit('/').next().unwrap_or(path);
        by_name.entry(file_name).or_insert(path);
        if let Some(soname) = &object.soname {
            by_name.entry(soname.as_str()).or_insert(path);
        }
    }
    let mut graph = LibraryGraph::default();
    for (path, object) in objects {
        let mut needs: Vec<String> = Vec::new();
        for needed in &object.needed {
            if needed.starts_with("libpython") {
                graph
                    .linked_to_libpython
                    .push((path.clone(), needed.clone()));
            } else if let Some(library) = by_name.get(needed.as_str()) {
                if *library != path && !needs.iter().any(|known| known == library) {
                    needs.push(library.to_string());
                }
            } else if !is_host_library(needed) {
                graph.missing.push((path.clone(), needed.clone()));
            }
        }
        if !needs.is_empty() {
            graph.dependencies.insert(path.clone(), needs);
        }
    }
    graph
}

/// The transitive closure of host libraries needed by `needed`, resolved in `search_dirs`,
/// leaving out glibc: `soname → path on the host`. Used to pack the system libraries of the
/// standard library's own extension modules into the runtime.
pub fn host_closure(
    needed: impl IntoIterator<Item = String>,
    search_dirs: &[std::path::PathBuf],
    read: impl Fn(&std::path::Path) -> Option<SharedObject>,
) -> (BTreeMap<String, std::path::PathBuf>, BTreeSet<String>) {
    let mut found = BTreeMap::new();
    let mut unresolved = BTreeSet::new();
    let mut queue: Vec<String> = needed.into_iter().collect();
    while let Some(name) = queue.pop() {
        if is_glibc_library(&name) || found.contains_key(&name) || unresolved.contains(&name) {
            continue;
        }
        match search_dirs
            .iter()
            .map(|dir| dir.join(&name))
            .find(|path| path.exists())
        {
            Some(path) => {
                if let Some(object) = read(&path) {
                    queue.extend(object.needed);
                }
                found.insert(name, path);
            }
            None => {
                unresolved.insert(name);
            }
        }
    }
    (found, unresolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(soname: Option<&str>, needed: &[&str]) -> SharedObject {
        SharedObject {
            soname: soname.map(str::to_string),
            needed: needed.iter().map(|name| name.to_string()).collect(),
            extension_module: false,
            load_plan: None,
            glibc_need: None,
        }
    }

    #[test]
    fn vendored_libraries_are_matched_by_soname_and_file_name() {
        let objects = BTreeMap::from([
            (
                "numpy/_core/_multiarray.so".to_string(),
                object(
                    None,
                    &["libopenblas-1a2b.so", "libc.so.6", "libgfortran-3c.so.5"],
                ),
            ),
            (
                "numpy.libs/libopenblas-1a2b.so".to_string(),
                object(Some("libopenblas-1a2b.so"), &["libgfortran-3c.so.5"]),
            ),
            (
                "numpy.libs/libgfortran-3c.so.5.0.0".to_string(),
                object(Some("libgfortran-3c.so.5"), &["libm.so.6"]),
            ),
            (
                "ext/needs_foreign.so".to_string(),
                object(None, &["libfoo.so.1", "libstdc++.so.6"]),
            ),
            (
                "bad/linked.so".to_string(),
                object(None, &["libpython3.11.so.1.0"]),
            ),
        ]);
        let graph = library_graph(&objects);
        assert_eq!(
            graph.dependencies["numpy/_core/_multiarray.so"],
            vec![
                "numpy.libs/libopenblas-1a2b.so",
                "numpy.libs/libgfortran-3c.so.5.0.0"
            ]
        );
        assert_eq!(
            graph.dependencies["numpy.libs/libopenblas-1a2b.so"],
            vec!["numpy.libs/libgfortran-3c.so.5.0.0"]
        );
        assert_eq!(
            graph.missing,
            vec![(
                "ext/needs_foreign.so".to_string(),
                "libfoo.so.1".to_string()
            )]
        );
        assert_eq!(graph.linked_to_libpython.len(), 1);
    }
}
