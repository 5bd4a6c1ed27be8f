//! The entry index: every name in the zip, searchable by exact name and by directory.
//!
//! Built once from the central directory, as one sorted list: lookups by name and directory
//! questions ("does `pkg/sub/` exist?", "what is directly inside `pkg/`?") are binary searches,
//! so zips without explicit directory entries (the usual case) still have directories. pyferry
//! writes its entries sorted, so building the index is a single pass with no sort and no hash
//! table: start-up stays flat when an application carries many modules it does not import.

/// Whether a name is a file or a directory of the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntryKind {
    File,
    Directory,
}

/// Names of an archive's files (borrowed from the archive), with their position in the zip's
/// central directory.
#[derive(Debug, Default)]
pub struct EntryIndex<'a> {
    /// File names, sorted bytewise, each once; directory entries (`name/`) are left out.
    sorted: Vec<&'a str>,
    /// Central-directory position of each name of `sorted`, at the same index.
    positions: Vec<usize>,
}

impl<'a> EntryIndex<'a> {
    /// Builds the index from `(name, position)` pairs. Directory entries (ending in `/`) are
    /// dropped: directories are derived from file names. A later duplicate name keeps the first.
    pub fn new(names: impl IntoIterator<Item = (&'a str, usize)>) -> EntryIndex<'a> {
        let mut entries: Vec<(&'a str, usize)> = names
            .into_iter()
            .filter(|(name, _)| !name.ends_with('/') && !name.is_empty())
            .collect();
        // pyferry's archives are sorted except for the few entries written last (manifest,
        // record): keep the sorted prefix and insert the rest, instead of sorting everything.
        let sorted_prefix = entries
            .windows(2)
            .position(|pair| pair[0].0 >= pair[1].0)
            .map_or(entries.len(), |position| position + 1);
        if entries.len() - sorted_prefix <= 64 {
            let tail = entries.split_off(sorted_prefix);
            for entry in tail {
                match entries.binary_search_by(|probe| probe.0.cmp(entry.0)) {
                    Ok(_) => {} // a duplicate name: the first one stays
                    Err(at) => entries.insert(at, entry),
                }
            }
        } else {
            // A stable sort keeps the first of duplicate names first.
            entries.sort_by(|left, right| left.0.cmp(right.0));
            entries.dedup_by(|later, earlier| later.0 == earlier.0);
        }
        let (sorted, positions) = entries.into_iter().unzip();
        EntryIndex { sorted, positions }
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The central-directory position of the file `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.sorted
            .binary_search(&name)
            .ok()
            .map(|index| self.positions[index])
    }

    /// Whether `path` (no trailing slash; `""` is the root) is a file, a directory, or absent.
    pub fn kind(&self, path: &str) -> Option<EntryKind> {
        if path.is_empty() {
            return Some(EntryKind::Directory);
        }
        if self.sorted.binary_search(&path).is_ok() {
            return Some(EntryKind::File);
        }
        let prefix = format!("{path}/");
        let start = self.sorted.partition_point(|name| *name < prefix.as_str());
        match self.sorted.get(start) {
            Some(name) if name.starts_with(&prefix) => Some(EntryKind::Directory),
            _ => None,
        }
    }

    /// The names directly inside directory `dir` (`""` is the root), each once, sorted, with
    /// whether it is a directory.
    pub fn children(&self, dir: &str) -> Vec<(&'a str, EntryKind)> {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let start = self.sorted.partition_point(|name| *name < prefix.as_str());
        let mut children: Vec<(&str, EntryKind)> = Vec::new();
        for name in self.sorted[start..]
            .iter()
            .take_while(|name| name.starts_with(&prefix))
        {
            let rest = &name[prefix.len()..];
            let child = match rest.split_once('/') {
                Some((directory, _)) => (directory, EntryKind::Directory),
                None => (rest, EntryKind::File),
            };
            // Sorted input keeps the files of one directory together, but `a/x` and `a.py`
            // interleave (`-` < `.` < `/`), so compare against everything pushed.
            if !children.iter().any(|known| known.0 == child.0) {
                children.push(child);
            }
        }
        children.sort_unstable();
        children
    }

    /// All file names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.sorted.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index<'a>(names: &[&'a str]) -> EntryIndex<'a> {
        EntryIndex::new(names.iter().copied().zip(0..))
    }

    #[test]
    fn directories_are_derived_from_file_names() {
        let index = index(&["pkg/__init__.py", "pkg/sub/mod.py", "ns/a/b.py", "top.py"]);
        assert_eq!(index.kind("pkg"), Some(EntryKind::Directory));
        assert_eq!(index.kind("pkg/sub"), Some(EntryKind::Directory));
        assert_eq!(index.kind("ns"), Some(EntryKind::Directory));
        assert_eq!(index.kind("top.py"), Some(EntryKind::File));
        assert_eq!(index.kind("pk"), None);
        assert_eq!(index.kind("pkg/sub/mod"), None);
        assert_eq!(index.kind(""), Some(EntryKind::Directory));
    }

    #[test]
    fn children_lists_each_name_once() {
        let index = index(&["a/x.py", "a.py", "a-b/c", "a/y/z.py", "a/y/w.py", "b/"]);
        assert_eq!(
            index.children(""),
            vec![
                ("a", EntryKind::Directory),
                ("a-b", EntryKind::Directory),
                ("a.py", EntryKind::File)
            ]
        );
        assert_eq!(
            index.children("a"),
            vec![("x.py", EntryKind::File), ("y", EntryKind::Directory)]
        );
        assert!(index.children("b").is_empty());
    }

    #[test]
    fn unsorted_tails_and_unsorted_archives_give_the_same_index() {
        let names = [
            "b/x.py",
            "c.py",
            "d/y.py",
            ".pyferry/manifest.json",
            "a.py",
            "c.py",
        ];
        let index = EntryIndex::new(names.iter().copied().zip(0..));
        assert_eq!(
            index.names().collect::<Vec<_>>(),
            vec![".pyferry/manifest.json", "a.py", "b/x.py", "c.py", "d/y.py"]
        );
        assert_eq!(index.position("c.py"), Some(1), "the first duplicate wins");
        let mut many: Vec<String> = (0..200).map(|n| format!("m{:03}.py", 199 - n)).collect();
        many.push("m050.py".to_string());
        let index = EntryIndex::new(many.iter().map(String::as_str).zip(0..));
        assert_eq!(index.len(), 200);
        assert_eq!(index.position("m050.py"), Some(149));
        assert_eq!(index.names().next(), Some("m000.py"));
    }

    #[test]
    fn first_duplicate_wins() {
        let index = EntryIndex::new([("m.py", 3), ("m.py", 9)]);
        assert_eq!(index.position("m.py"), Some(3));
        assert_eq!(index.len(), 1);
    }
}
