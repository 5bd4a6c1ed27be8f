//! Directory streams (`DIR *`) of archive directories, listed from the entry index.
//!
//! `opendir`, `fdopendir` and `readdir` hand out glibc's streams for real directories and these
//! for archive ones; every function taking a `DIR *` tells them apart by their first bytes: a
//! glibc stream starts with its descriptor (never negative), one of these with [`MARKER`] and,
//! eight bytes in, [`MAGIC`].

use std::ffi::c_int;
use std::os::fd::RawFd;
use std::sync::Mutex;

use pyferry_payload::EntryKind;

use super::paths::{self, Node};
use super::system;
use super::ArchiveFs;

/// The first field of an archive directory stream.
pub const MARKER: c_int = -0x7079;
/// The third field (at byte 8) of an archive directory stream.
pub const MAGIC: u64 = u64::from_le_bytes(*b"pyferry\0");

/// One name of a listing.
struct Listed {
    name: Vec<u8>,
    kind: u8,
    inode: u64,
}

struct Position {
    next: usize,
    /// What `readdir` returned last: valid until the next call on this stream.
    current: libc::dirent64,
}

/// An open archive directory. `#[repr(C)]` keeps the marker and magic where [`is_archive_stream`]
/// reads them.
#[repr(C)]
pub struct ArchiveDir {
    marker: c_int,
    fd: c_int,
    magic: u64,
    entries: Vec<Listed>,
    position: Mutex<Position>,
}

impl ArchiveDir {
    /// A stream over `directory`, owning descriptor `fd` (closed by `closedir`).
    pub fn new(filesystem: &ArchiveFs, directory: Node, fd: RawFd) -> ArchiveDir {
        let index = filesystem.index();
        let path = filesystem.path_of(directory);
        let parent = match path.rfind('/') {
            Some(slash) => &path[..slash],
            None => "",
        };
        let parent_inode = paths::node(index, parent).map_or(directory.pack(), Node::pack);
        let mut entries = vec![
            Listed {
                name: b".".to_vec(),
                kind: libc::DT_DIR,
                inode: directory.pack(),
            },
            Listed {
                name: b"..".to_vec(),
                kind: libc::DT_DIR,
                inode: parent_inode,
            },
        ];
        for (name, kind) in index.children(path) {
            let child = if path.is_empty() {
                name.to_string()
            } else {
                format!("{path}/{name}")
            };
            let Some(node) = paths::node(index, &child) else {
                continue;
            };
            entries.push(Listed {
                name: name.as_bytes().to_vec(),
                kind: match kind {
                    EntryKind::File => libc::DT_REG,
                    EntryKind::Directory => libc::DT_DIR,
                },
                inode: node.pack(),
            });
        }
        ArchiveDir {
            marker: MARKER,
            fd,
            magic: MAGIC,
            entries,
            position: Mutex::new(Position {
                next: 0,
                current: system::zeroed_dirent(),
            }),
        }
    }

    pub fn fd(&self) -> RawFd {
        self.fd
    }

    fn position(&self) -> std::sync::MutexGuard<'_, Position> {
        self.position
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Fills `entry` with the listing's next name; `false` at the end.
    fn next_into(&self, next: &mut usize, entry: &mut libc::dirent64) -> bool {
        let Some(listed) = self.entries.get(*next) else {
            return false;
        };
        *next += 1;
        *entry = system::zeroed_dirent();
        entry.d_ino = listed.inode;
        entry.d_off = *next as i64;
        entry.d_reclen = std::mem::size_of::<libc::dirent64>() as u16;
        entry.d_type = listed.kind;
        let room = entry.d_name.len() - 1;
        for (slot, byte) in entry.d_name.iter_mut().zip(listed.name.iter().take(room)) {
            *slot = *byte as libc::c_char;
        }
        true
    }

    /// `readdir`: the next entry, in a buffer of the stream's, or null at the end.
    pub fn read(&self) -> *mut libc::dirent64 {
        let mut position = self.position();
        let Position { next, current } = &mut *position;
        if self.next_into(next, current) {
            current as *mut libc::dirent64
        } else {
            std::ptr::null_mut()
        }
    }

    /// `readdir_r`: the next entry into `entry`; `false` at the end.
    pub fn read_into(&self, entry: &mut libc::dirent64) -> bool {
        let mut position = self.position();
        self.next_into(&mut position.next, entry)
    }

    /// Every entry of the listing from the start (for `scandir`).
    pub fn all(&self) -> Vec<libc::dirent64> {
        let mut next = 0;
        let mut entries = Vec::new();
        let mut entry = system::zeroed_dirent();
        while self.next_into(&mut next, &mut entry) {
            entries.push(entry);
        }
        entries
    }

    pub fn tell(&self) -> libc::c_long {
        self.position().next as libc::c_long
    }

    pub fn seek(&self, location: libc::c_long) {
        self.position().next = usize::try_from(location).unwrap_or(0);
    }
}
