//! Which spellings of a path may name something inside the archive, and what a path below the
//! archive root names: the part of the archive filesystem that needs no system call, so it is
//! unit-tested on its own.
//!
//! The archive is a directory tree mounted, in the process's eyes, at the executable's own
//! path (`/opt/myapp` holds `/opt/myapp/pkg/data.txt`). A path reaches it when it is that path
//! followed by `/`, spelled literally (the executable's path is canonical, `/proc/self/exe`),
//! or when one of its components is the executable's file name and the path up to that
//! component leads to the executable (through a symbolic link, relative to the working
//! directory, as `//opt/./myapp`...): the caller checks that with one `stat`. Inside, no
//! name is a symbolic link, so `.` and `..` are resolved by hand, component by component, with
//! the kernel's errors: `ENOTDIR` through a file, `ENOENT` through something absent.

use pyferry_payload::{EntryIndex, EntryKind};

/// Longest path the kernel accepts, with its terminating NUL (`PATH_MAX`).
pub const PATH_MAX: usize = 4096;

/// Longest file name component (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// A file or directory of the archive. `at` and `len` name it in the entry index: a file is
/// the name at `at` (its whole length), a directory the first `len` bytes of the first file
/// name below it ([`EntryIndex::directory_position`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    pub kind: EntryKind,
    pub at: u32,
    pub len: u16,
}

impl Node {
    pub fn is_directory(self) -> bool {
        self.kind == EntryKind::Directory
    }

    /// The node's archive path (`""` for the root).
    pub fn path<'i>(self, index: &'i EntryIndex<'_>) -> Option<&'i str> {
        index.name_prefix(self.at, usize::from(self.len))
    }

    /// Packed into 64 bits (what the descriptor table stores); never 0.
    pub fn pack(self) -> u64 {
        let kind = match self.kind {
            EntryKind::File => 1u64 << 62,
            EntryKind::Directory => 2u64 << 62,
        };
        kind | (u64::from(self.len) << 32) | u64::from(self.at)
    }

    pub fn unpack(packed: u64) -> Option<Node> {
        let kind = match packed >> 62 {
            1 => EntryKind::File,
            2 => EntryKind::Directory,
            _ => return None,
        };
        Some(Node {
            kind,
            at: packed as u32,
            len: (packed >> 32) as u16,
        })
    }
}

/// The file or directory at archive path `path` (`""` is the root).
pub fn node(index: &EntryIndex<'_>, path: &str) -> Option<Node> {
    let len = u16::try_from(path.len()).ok()?;
    if let Some(at) = index.position(path) {
        return Some(Node {
            kind: EntryKind::File,
            at,
            len,
        });
    }
    index.directory_position(path).map(|at| Node {
        kind: EntryKind::Directory,
        at,
        len,
    })
}

/// What a path below the archive root names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Walk {
    Found(Node),
    /// The last component is absent; everything before it is a directory (`parent`).
    Missing {
        parent: Node,
        name: String,
    },
    /// The kernel's error for the path: `ENOENT`, `ENOTDIR` or `ENAMETOOLONG`.
    Failed(i32),
    /// `..` climbed above the archive root: the path is not inside.
    Outside,
}

/// Resolves `rest`, a path relative to directory `start` of the archive (`rest` may be empty,
/// hold empty, `.` and `..` components, and end with `/`).
pub fn walk(index: &EntryIndex<'_>, start: &str, rest: &[u8]) -> Walk {
    let Some(start_node) = node(index, start).filter(|node| node.is_directory()) else {
        return Walk::Failed(libc::ENOENT);
    };
    let mut path = start.to_string();
    // What `path` is: a node, or absent (with its parent, its name).
    let mut current: Result<Node, (Node, String)> = Ok(start_node);
    let mut must_be_directory = false;
    for component in rest.split(|byte| *byte == b'/') {
        if component.is_empty() {
            // `a//b`, and a trailing `/`, which requires a directory.
            must_be_directory = true;
            continue;
        }
        let here = match current {
            Ok(here) if here.is_directory() => here,
            Ok(_) => return Walk::Failed(libc::ENOTDIR),
            Err(_) => return Walk::Failed(libc::ENOENT),
        };
        must_be_directory = false;
        match component {
            b"." => {}
            b".." => {
                if path.is_empty() {
                    return Walk::Outside;
                }
                path.truncate(path.rfind('/').unwrap_or(0));
                current = node(index, &path).ok_or((here, String::new()));
            }
            name => {
                if name.len() > NAME_MAX {
                    return Walk::Failed(libc::ENAMETOOLONG);
                }
                // A name that is not text matches no entry.
                let name = String::from_utf8_lossy(name);
                if !path.is_empty() {
                    path.push('/');
                }
                path.push_str(&name);
                current = node(index, &path).ok_or((here, name.into_owned()));
            }
        }
    }
    match current {
        Ok(found) if must_be_directory && !found.is_directory() => Walk::Failed(libc::ENOTDIR),
        Ok(found) => Walk::Found(found),
        Err((parent, name)) => Walk::Missing { parent, name },
    }
}

/// How a path relates to the executable's path `root`, judged from its spelling alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spelled<'p> {
    /// Exactly the executable (the file itself).
    Itself,
    /// Below it: what follows `root/`.
    Below(&'p [u8]),
}

/// `path` spelled as the executable's path itself or below it.
pub fn literally_under<'p>(path: &'p [u8], root: &[u8]) -> Option<Spelled<'p>> {
    let rest = path.strip_prefix(root)?;
    match rest.split_first() {
        None => Some(Spelled::Itself),
        Some((b'/', below)) => Some(Spelled::Below(below)),
        Some(_) => None,
    }
}

/// Where `path` has a component equal to `name`, as (the path up to and including that
/// component, how the path continues after it): `x/name/...` gives `x/name`.
pub fn under_component<'p>(
    path: &'p [u8],
    name: &[u8],
    starts: impl Iterator<Item = usize> + 'p,
) -> impl Iterator<Item = (&'p [u8], Spelled<'p>)> + 'p {
    let name_len = name.len();
    starts.filter_map(move |at| {
        if at > 0 && path[at - 1] != b'/' {
            return None;
        }
        let end = at + name_len;
        let spelled = match path[end..].split_first() {
            None => Spelled::Itself,
            Some((b'/', below)) => Spelled::Below(below),
            Some(_) => return None,
        };
        Some((&path[..end], spelled))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> EntryIndex<'static> {
        EntryIndex::from_names([
            "pkg/__init__.py",
            "pkg/data/a.txt",
            "pkg/data/deep/b.txt",
            "top.py",
        ])
    }

    fn found(index: &EntryIndex<'_>, walk: Walk) -> String {
        match walk {
            Walk::Found(node) => format!("{:?} {}", node.kind, node.path(index).unwrap()),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn dots_and_slashes_resolve_inside_the_archive() {
        let index = index();
        let cases: &[(&str, &str)] = &[
            ("pkg/data/a.txt", "File pkg/data/a.txt"),
            ("pkg//data/./deep/../a.txt", "File pkg/data/a.txt"),
            ("pkg/data/", "Directory pkg/data"),
            ("", "Directory "),
            (".", "Directory "),
            ("pkg/..", "Directory "),
            ("pkg/../top.py", "File top.py"),
        ];
        for (rest, expected) in cases {
            assert_eq!(
                found(&index, walk(&index, "", rest.as_bytes())),
                *expected,
                "{rest}"
            );
        }
    }

    #[test]
    fn errors_are_the_kernels() {
        let index = index();
        let failed = |rest: &str| walk(&index, "", rest.as_bytes());
        assert_eq!(failed("top.py/x"), Walk::Failed(libc::ENOTDIR));
        assert_eq!(failed("top.py/"), Walk::Failed(libc::ENOTDIR));
        assert_eq!(failed("top.py/."), Walk::Failed(libc::ENOTDIR));
        assert_eq!(failed("top.py/.."), Walk::Failed(libc::ENOTDIR));
        assert_eq!(failed("nope/x"), Walk::Failed(libc::ENOENT));
        assert_eq!(failed("nope/.."), Walk::Failed(libc::ENOENT));
        assert_eq!(failed(".."), Walk::Outside);
        assert_eq!(failed("pkg/../../x"), Walk::Outside);
        assert_eq!(failed(&"x".repeat(256)), Walk::Failed(libc::ENAMETOOLONG));
        let Walk::Missing { parent, name } = failed("pkg/data/new.txt") else {
            panic!("missing expected");
        };
        assert_eq!(parent.path(&index), Some("pkg/data"));
        assert_eq!(name, "new.txt");
    }

    #[test]
    fn walks_start_from_a_directory() {
        let index = index();
        assert_eq!(
            found(&index, walk(&index, "pkg/data", b"deep/b.txt")),
            "File pkg/data/deep/b.txt"
        );
        assert_eq!(
            found(&index, walk(&index, "pkg/data", b"../__init__.py")),
            "File pkg/__init__.py"
        );
    }

    #[test]
    fn nodes_pack_into_a_word() {
        let index = index();
        for path in ["", "pkg", "pkg/data/a.txt", "top.py"] {
            let found = node(&index, path).unwrap();
            assert_ne!(found.pack(), 0);
            assert_eq!(Node::unpack(found.pack()), Some(found));
            assert_eq!(found.path(&index), Some(path));
        }
        assert_eq!(Node::unpack(0), None);
    }

    #[test]
    fn spellings_under_the_executable() {
        let root = b"/opt/myapp";
        assert_eq!(literally_under(b"/opt/myapp", root), Some(Spelled::Itself));
        assert_eq!(
            literally_under(b"/opt/myapp/pkg/x", root),
            Some(Spelled::Below(b"pkg/x"))
        );
        assert_eq!(
            literally_under(b"/opt/myapp/", root),
            Some(Spelled::Below(b""))
        );
        assert_eq!(literally_under(b"/opt/myapp2/x", root), None);
        assert_eq!(literally_under(b"/opt", root), None);

        let starts = |path: &[u8]| {
            path.windows(5)
                .enumerate()
                .filter(|(_, window)| *window == b"myapp")
                .map(|(at, _)| at)
                .collect::<Vec<_>>()
        };
        let under = |path: &'static [u8]| {
            under_component(path, b"myapp", starts(path).into_iter()).collect::<Vec<_>>()
        };
        assert_eq!(
            under(b"/link/myapp/pkg"),
            vec![(&b"/link/myapp"[..], Spelled::Below(b"pkg"))]
        );
        assert_eq!(
            under(b"myapp/x"),
            vec![(&b"myapp"[..], Spelled::Below(b"x"))]
        );
        assert_eq!(under(b"/myapp"), vec![(&b"/myapp"[..], Spelled::Itself)]);
        assert_eq!(
            under(b"../myapp"),
            vec![(&b"../myapp"[..], Spelled::Itself)]
        );
        assert!(under(b"/opt/notmyapp/x").is_empty());
        assert!(under(b"/opt/myapps/x").is_empty());
        assert_eq!(
            under(b"/a/myapp/myapp/x"),
            vec![
                (&b"/a/myapp"[..], Spelled::Below(b"myapp/x")),
                (&b"/a/myapp/myapp"[..], Spelled::Below(b"x"))
            ]
        );
    }
}
