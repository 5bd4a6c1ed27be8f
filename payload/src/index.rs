//! The entry index: every name in the zip, searchable by exact name and by directory.
//!
//! One sorted list of references to names that stay where they are (in the zip's central
//! directory, which the launcher maps): lookups by name and directory questions ("does
//! `pkg/sub/` exist?", "what is directly inside `pkg/`?") are binary searches, so zips without
//! explicit directory entries (the usual case) still have directories. pyferry writes its
//! entries sorted, so building the index is one pass that copies no name, validates no text and
//! sorts nothing: start-up stays flat when an application carries many modules it does not
//! import. Names are compared as bytes; one that is not UTF-8 can never match a module name
//! and is left out of listings.

use std::borrow::Cow;

/// Whether a name is a file or a directory of the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntryKind {
    File,
    Directory,
}

/// Where one name lies in the index's name bytes.
#[derive(Debug, Clone, Copy)]
pub struct NameSpan {
    pub at: u32,
    pub len: u16,
}

/// Names of an archive's files, sorted, each with where it lies in `names` (for an archive: the
/// central directory, where a name starts 46 bytes after its header).
#[derive(Debug, Default)]
pub struct EntryIndex<'a> {
    names: Cow<'a, [u8]>,
    /// Sorted bytewise by name, each name once; directory entries (`name/`) are left out.
    sorted: Vec<NameSpan>,
}

/// What the names below directory `dir` start with: `dir/`, or nothing for the root.
fn directory_prefix(dir: &str) -> String {
    if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    }
}

/// Unsorted names at the end of an otherwise sorted list that are inserted one by one instead
/// of sorting everything (pyferry writes its manifest and record last).
const MAX_UNSORTED_TAIL: usize = 64;

impl<'a> EntryIndex<'a> {
    /// Builds the index over the name bytes `names` from the spans of each name, in archive
    /// order. Directory entries (ending in `/`) and empty names are dropped: directories are
    /// derived from file names. A later duplicate name keeps the first. A span outside `names`
    /// is dropped too.
    pub fn new(names: Cow<'a, [u8]>, spans: Vec<NameSpan>) -> EntryIndex<'a> {
        let mut index = EntryIndex {
            names,
            sorted: spans,
        };
        let bytes = index.names.as_ref();
        let name_of =
            |span: &NameSpan| bytes.get(span.at as usize..span.at as usize + span.len as usize);
        index.sorted.retain(|span| {
            name_of(span).is_some_and(|name| !name.is_empty() && !name.ends_with(b"/"))
        });
        let name_of =
            |span: &NameSpan| &bytes[span.at as usize..span.at as usize + span.len as usize];
        let sorted_prefix = index
            .sorted
            .windows(2)
            .position(|pair| name_of(&pair[0]) >= name_of(&pair[1]))
            .map_or(index.sorted.len(), |position| position + 1);
        let mut sorted = std::mem::take(&mut index.sorted);
        if sorted.len() - sorted_prefix <= MAX_UNSORTED_TAIL {
            let tail = sorted.split_off(sorted_prefix);
            for span in tail {
                match sorted.binary_search_by(|probe| name_of(probe).cmp(name_of(&span))) {
                    Ok(_) => {} // a duplicate name: the first one stays
                    Err(at) => sorted.insert(at, span),
                }
            }
        } else {
            // A stable sort keeps the first of duplicate names first.
            sorted.sort_by(|left, right| name_of(left).cmp(name_of(right)));
            sorted.dedup_by(|later, earlier| name_of(later) == name_of(earlier));
        }
        index.sorted = sorted;
        index
    }

    /// An index of `names` (in that order) held in its own buffer; a name's position is
    /// where it starts in that buffer, names joined with no separator.
    pub fn from_names<'n>(names: impl IntoIterator<Item = &'n str>) -> EntryIndex<'static> {
        let mut bytes = Vec::new();
        let mut spans = Vec::new();
        for name in names {
            spans.push(NameSpan {
                at: bytes.len() as u32,
                len: name.len() as u16,
            });
            bytes.extend_from_slice(name.as_bytes());
        }
        EntryIndex::new(Cow::Owned(bytes), spans)
    }

    fn name_bytes(&self, span: &NameSpan) -> &[u8] {
        &self.names[span.at as usize..span.at as usize + span.len as usize]
    }

    /// Where the first name not below `bound` is in `sorted`.
    fn lower_bound(&self, bound: &[u8]) -> usize {
        self.sorted
            .partition_point(|span| self.name_bytes(span) < bound)
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// Where the file `name` starts in the name bytes (for an archive, its central header
    /// starts 46 bytes before).
    pub fn position(&self, name: &str) -> Option<u32> {
        self.sorted
            .binary_search_by(|span| self.name_bytes(span).cmp(name.as_bytes()))
            .ok()
            .map(|index| self.sorted[index].at)
    }

    /// Whether `path` (no trailing slash; `""` is the root) is a file, a directory, or absent.
    pub fn kind(&self, path: &str) -> Option<EntryKind> {
        if path.is_empty() {
            return Some(EntryKind::Directory);
        }
        if self.position(path).is_some() {
            return Some(EntryKind::File);
        }
        let prefix = format!("{path}/");
        let start = self.lower_bound(prefix.as_bytes());
        match self.sorted.get(start) {
            Some(span) if self.name_bytes(span).starts_with(prefix.as_bytes()) => {
                Some(EntryKind::Directory)
            }
            _ => None,
        }
    }

    /// The names directly inside directory `dir` (`""` is the root), each once, sorted, with
    /// whether it is a directory. Costs a binary search per child directory (whatever lies
    /// below it is skipped), not a look at every name below `dir`.
    pub fn children(&self, dir: &str) -> Vec<(&str, EntryKind)> {
        let prefix = directory_prefix(dir);
        let mut children: Vec<(&str, EntryKind)> = Vec::new();
        let mut position = self.lower_bound(prefix.as_bytes());
        while let Some(span) = self.sorted.get(position) {
            let name = self.name_bytes(span);
            let Some(rest) = name.strip_prefix(prefix.as_bytes()) else {
                break;
            };
            let (child, kind) = match rest.iter().position(|byte| *byte == b'/') {
                Some(slash) => {
                    // Every name below `child/` sorts before `child0` (`0` follows `/`).
                    let mut next = name[..prefix.len() + slash].to_vec();
                    next.push(b'/' + 1);
                    position = self.lower_bound(&next);
                    (&rest[..slash], EntryKind::Directory)
                }
                None => {
                    position += 1;
                    (rest, EntryKind::File)
                }
            };
            if let Ok(child) = std::str::from_utf8(child) {
                children.push((child, kind));
            }
        }
        // A file and a directory of the same name (`a` and `a/x`): the file, which comes first,
        // stays.
        children.sort_unstable();
        children.dedup_by(|later, earlier| later.0 == earlier.0);
        children
    }

    /// Where directory `path` (no trailing slash; `""` is the root) begins in the name bytes:
    /// the position of the first file name below it, or `None` when no file lies below it.
    /// With the length of `path` it names the directory ([`EntryIndex::name_prefix`] gives the
    /// path back), as [`EntryIndex::position`] names a file.
    pub fn directory_position(&self, path: &str) -> Option<u32> {
        let prefix = directory_prefix(path);
        let span = self.sorted.get(self.lower_bound(prefix.as_bytes()))?;
        self.name_bytes(span)
            .starts_with(prefix.as_bytes())
            .then_some(span.at)
    }

    /// The first `len` bytes of the name at `at` in the name bytes (a position given by
    /// [`EntryIndex::position`] or [`EntryIndex::directory_position`]), when they are text.
    pub fn name_prefix(&self, at: u32, len: usize) -> Option<&str> {
        let start = at as usize;
        let bytes = self.names.get(start..start.checked_add(len)?)?;
        std::str::from_utf8(bytes).ok()
    }

    /// All file names that are text, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.sorted
            .iter()
            .filter_map(|span| std::str::from_utf8(self.name_bytes(span)).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(names: &[&str]) -> EntryIndex<'static> {
        EntryIndex::from_names(names.iter().copied())
    }

    /// Where the `occurrence`-th name of `names` starts in the index's buffer.
    fn start_of(names: &[&str], occurrence: usize) -> u32 {
        names[..occurrence]
            .iter()
            .map(|name| name.len() as u32)
            .sum()
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
    fn directories_have_a_position_that_gives_their_path_back() {
        let names = ["a.py", "pkg/sub/x.py", "pkg/y.py", "pkg/z/w.py"];
        let index = index(&names);
        let sub = index.directory_position("pkg/sub").expect("a directory");
        assert_eq!(sub, start_of(&names, 1));
        assert_eq!(index.name_prefix(sub, "pkg/sub".len()), Some("pkg/sub"));
        let pkg = index.directory_position("pkg").expect("a directory");
        assert_eq!(pkg, sub, "both begin with the same file");
        assert_eq!(index.name_prefix(pkg, 3), Some("pkg"));
        assert_eq!(index.directory_position(""), Some(start_of(&names, 0)));
        assert_eq!(index.directory_position("pk"), None);
        assert_eq!(index.directory_position("a.py"), None);
        assert_eq!(index.name_prefix(pkg, 1000), None);
    }

    #[test]
    fn children_of_a_large_tree_skip_what_lies_below_each_child() {
        let mut names: Vec<String> = (0..2000).map(|n| format!("big/m{n:04}.py")).collect();
        names.extend(["big.py", "a/b/c.py", "z", "big-x/y.py"].map(String::from));
        let index = EntryIndex::from_names(names.iter().map(String::as_str));
        assert_eq!(
            index.children(""),
            vec![
                ("a", EntryKind::Directory),
                ("big", EntryKind::Directory),
                ("big-x", EntryKind::Directory),
                ("big.py", EntryKind::File),
                ("z", EntryKind::File)
            ]
        );
        assert_eq!(index.children("big").len(), 2000);
        let same_name = EntryIndex::from_names(["a", "a/x"]);
        assert_eq!(same_name.children(""), vec![("a", EntryKind::File)]);
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
        let index = index(&names);
        assert_eq!(
            index.names().collect::<Vec<_>>(),
            vec![".pyferry/manifest.json", "a.py", "b/x.py", "c.py", "d/y.py"]
        );
        assert_eq!(
            index.position("c.py"),
            Some(start_of(&names, 1)),
            "the first duplicate wins"
        );
        let mut many: Vec<String> = (0..200).map(|n| format!("m{:03}.py", 199 - n)).collect();
        many.push("m050.py".to_string());
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let index = EntryIndex::from_names(many.iter().copied());
        assert_eq!(index.len(), 200);
        assert_eq!(index.position("m050.py"), Some(start_of(&many, 149)));
        assert_eq!(index.names().next(), Some("m000.py"));
    }

    #[test]
    fn first_duplicate_wins() {
        let index = index(&["m.py", "m.py"]);
        assert_eq!(index.position("m.py"), Some(0));
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn names_that_are_not_text_are_indexed_but_never_listed() {
        let bytes = b"a.pyb\xff.pyc.py".to_vec();
        let spans = [(0, 4), (4, 5), (9, 4)]
            .map(|(at, len)| NameSpan { at, len })
            .to_vec();
        let index = EntryIndex::new(Cow::Owned(bytes), spans);
        assert_eq!(index.len(), 3);
        assert_eq!(index.names().collect::<Vec<_>>(), vec!["a.py", "c.py"]);
        assert_eq!(
            index.children(""),
            vec![("a.py", EntryKind::File), ("c.py", EntryKind::File)]
        );
        assert_eq!(index.kind("c.py"), Some(EntryKind::File));
    }

    #[test]
    fn spans_outside_the_names_are_dropped() {
        let spans = vec![NameSpan { at: 0, len: 4 }, NameSpan { at: 2, len: 9 }];
        let index = EntryIndex::new(Cow::Borrowed(b"a.py"), spans);
        assert_eq!(index.names().collect::<Vec<_>>(), vec!["a.py"]);
    }
}
