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

/// The groups of libraries that need each other, directly or through others (the strongly
/// connected components of the dependency graph with more than one member), each sorted. The
/// graphs are small (tens of objects): two objects are in one group when each reaches the other.
pub fn cycles(dependencies: &BTreeMap<String, Vec<String>>) -> Vec<Vec<String>> {
    let reachable_from = |start: &str| -> BTreeSet<&str> {
        let mut seen = BTreeSet::new();
        let mut queue = vec![start];
        while let Some(node) = queue.pop() {
            for next in dependencies.get(node).into_iter().flatten() {
                if seen.insert(next.as_str()) {
                    queue.push(next);
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&str, BTreeSet<&str>> = dependencies
        .keys()
        .map(|node| (node.as_str(), reachable_from(node)))
        .collect();
    let mut grouped: BTreeSet<&str> = BTreeSet::new();
    let mut groups = Vec::new();
    for (node, reached) in &reach {
        if grouped.contains(node) || !reached.contains(node) {
            continue;
        }
        let group: Vec<String> = reached
            .iter()
            .filter(|other| reach.get(*other).is_some_and(|back| back.contains(node)))
            .map(|other| other.to_string())
            .collect();
        grouped.extend(
            reached
                .iter()
                .filter(|other| group.iter().any(|member| member == *other)),
        );
        if group.len() > 1 {
            groups.push(group);
        }
    }
    groups
}

/// For each member of a cycle: where, in its file, the `DT_NEEDED` strings naming the other
/// members lie (the manifest's `needed_names`), and the pairs whose string cannot be
/// overwritten (a warning: a pyz cannot load that cycle from memory).
#[allow(clippy::type_complexity)]
pub fn cycle_needed_names(
    objects: &BTreeMap<String, SharedObject>,
    dependencies: &BTreeMap<String, Vec<String>>,
) -> (
    BTreeMap<String, BTreeMap<String, [u64; 2]>>,
    Vec<(String, String)>,
) {
    let mut names: BTreeMap<String, BTreeMap<String, [u64; 2]>> = BTreeMap::new();
    let mut unusable = Vec::new();
    for group in cycles(dependencies) {
        for member in &group {
            let Some(object) = objects.get(member) else {
                continue;
            };
            for library in dependencies.get(member).into_iter().flatten() {
                if !group.contains(library) {
                    continue;
                }
                let file_name = library.rsplit('/').next().unwrap_or(library);
                let soname = objects
                    .get(library)
                    .and_then(|other| other.soname.as_deref());
                let position = object
                    .needed
                    .iter()
                    .zip(&object.needed_positions)
                    .find(|(name, _)| Some(name.as_str()) == soname || name.as_str() == file_name)
                    .and_then(|(_, position)| *position);
                match position {
                    Some(position) => {
                        names
                            .entry(member.clone())
                            .or_default()
                            .insert(library.clone(), position);
                    }
                    None => unusable.push((member.clone(), library.clone())),
                }
            }
        }
    }
    (names, unusable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(soname: Option<&str>, needed: &[&str]) -> SharedObject {
        SharedObject {
            soname: soname.map(str::to_string),
            needed: needed.iter().map(|name| name.to_string()).collect(),
            needed_positions: (0..needed.len())
                .map(|index| Some([0x400 + 0x40 * index as u64, 20]))
                .collect(),
            ..SharedObject::default()
        }
    }

    #[test]
    fn cycles_are_found_with_the_names_to_overwrite() {
        // Pillow 13's pillow.libs: freetype and harfbuzz need each other; png is outside.
        let objects = BTreeMap::from([
            (
                "PIL/_imagingft.so".to_string(),
                object(
                    None,
                    &["libfreetype-1.so.6", "libharfbuzz-2.so.0", "libc.so.6"],
                ),
            ),
            (
                "pillow.libs/libfreetype-1.so.6".to_string(),
                object(
                    Some("libfreetype-1.so.6"),
                    &["libpng16-3.so.16", "libharfbuzz-2.so.0"],
                ),
            ),
            (
                "pillow.libs/libharfbuzz-2.so.0".to_string(),
                object(
                    Some("libharfbuzz-2.so.0"),
                    &["libm.so.6", "libfreetype-1.so.6"],
                ),
            ),
            (
                "pillow.libs/libpng16-3.so.16".to_string(),
                object(Some("libpng16-3.so.16"), &["libz.so.1"]),
            ),
        ]);
        let graph = library_graph(&objects);
        assert_eq!(
            cycles(&graph.dependencies),
            vec![vec![
                "pillow.libs/libfreetype-1.so.6".to_string(),
                "pillow.libs/libharfbuzz-2.so.0".to_string()
            ]]
        );
        let (names, unusable) = cycle_needed_names(&objects, &graph.dependencies);
        assert!(unusable.is_empty());
        assert_eq!(
            names["pillow.libs/libfreetype-1.so.6"],
            BTreeMap::from([("pillow.libs/libharfbuzz-2.so.0".to_string(), [0x440, 20])])
        );
        assert_eq!(
            names["pillow.libs/libharfbuzz-2.so.0"],
            BTreeMap::from([("pillow.libs/libfreetype-1.so.6".to_string(), [0x440, 20])])
        );
        assert_eq!(names.len(), 2, "png and the extension are in no cycle");
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
