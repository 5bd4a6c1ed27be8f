//! Descriptors of archive files and directories: how they are made, and how a later call that
//! is given one (`fstat`, `openat`, `fdopendir`) knows what it stands for.
//!
//! A file is a memory file holding the entry's bytes, made for this one `open` and reopened
//! read-only through `/proc/self/fd/N`: the caller gets a descriptor of its own (its own offset,
//! `O_RDONLY` as the kernel would report it, `write` failing with `EBADF`), and closing it frees
//! the copy. A directory is an empty memory file. Nothing is kept per file, so an application
//! reading thousands of files holds no descriptor and no memory for them afterwards.
//!
//! The table below maps a descriptor number to the node it was opened for, with the identity
//! (`st_dev`, `st_ino`) of its memory file. `close` is not interposed: an entry is believed only
//! when the descriptor still has that identity (one `fstat`), so a closed and reused number is
//! never mistaken for an archive file, and a child between `vfork` and `exec` that closes or
//! duplicates descriptors changes nothing its parent relies on. `dup`, `dup2`, `dup3` and
//! `fcntl(F_DUPFD)` copy the entry. Reads and writes of the table are single atomic operations:
//! no lock, no allocation.

use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

use super::paths::Node;
use super::system::{self, Errno};
use super::ArchiveFs;
use crate::native::memfd;

/// Descriptor numbers the table covers. An archive directory opened at a higher number fails
/// with `EMFILE`; an archive file there works, but `fstat` reports its memory file.
const TABLE_LEN: usize = 1 << 16;

struct Entry {
    /// [`Node::pack`], or 0 for no entry.
    node: AtomicU64,
    device: AtomicU64,
    inode: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Entry = Entry {
    node: AtomicU64::new(0),
    device: AtomicU64::new(0),
    inode: AtomicU64::new(0),
};

static TABLE: [Entry; TABLE_LEN] = [EMPTY; TABLE_LEN];

fn entry(fd: RawFd) -> Option<&'static Entry> {
    TABLE.get(usize::try_from(fd).ok()?)
}

/// Records that `fd` was opened for `node`.
fn register(fd: RawFd, node: Node) -> bool {
    let (Some(entry), Ok(stat)) = (entry(fd), system::stat_descriptor(fd)) else {
        return false;
    };
    entry.device.store(stat.st_dev, Ordering::Relaxed);
    entry.inode.store(stat.st_ino, Ordering::Relaxed);
    entry.node.store(node.pack(), Ordering::Release);
    true
}

/// The node descriptor `fd` was opened for, if it is still that descriptor. One atomic load
/// when it is not an archive descriptor.
pub fn lookup(fd: RawFd) -> Option<Node> {
    let entry = entry(fd)?;
    let node = Node::unpack(entry.node.load(Ordering::Acquire))?;
    let identity = (
        entry.device.load(Ordering::Relaxed),
        entry.inode.load(Ordering::Relaxed),
    );
    let stat = system::stat_descriptor(fd).ok()?;
    ((stat.st_dev, stat.st_ino) == identity).then_some(node)
}

/// After `to` became a duplicate of `from`: `to` stands for what `from` stands for.
pub fn duplicated(from: RawFd, to: RawFd) {
    let (Some(source), Some(target)) = (entry(from), entry(to)) else {
        return;
    };
    let node = source.node.load(Ordering::Acquire);
    if node == 0 {
        return;
    }
    target
        .device
        .store(source.device.load(Ordering::Relaxed), Ordering::Relaxed);
    target
        .inode
        .store(source.inode.load(Ordering::Relaxed), Ordering::Relaxed);
    target.node.store(node, Ordering::Release);
}

/// Flags of the caller's `open` that the read-only descriptor keeps.
const KEPT_FLAGS: libc::c_int =
    libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_PATH | libc::O_NOATIME | libc::O_NOCTTY;

/// Opens `node` for reading, with the caller's `flags` where they matter to a read-only
/// descriptor (`O_CLOEXEC`, `O_NONBLOCK`, `O_PATH`...).
pub fn open(filesystem: &ArchiveFs, node: Node, flags: libc::c_int) -> Result<RawFd, Errno> {
    let path = filesystem.path_of(node);
    let name = if node.is_directory() {
        "pyferry-directory"
    } else {
        path.rsplit('/').next().unwrap_or(path)
    };
    let (mut file, _) = memfd::create(name).map_err(|error| Errno(error.errno))?;
    if !node.is_directory() {
        let data = match filesystem.context.archive.read(path) {
            Ok(Some(data)) => data,
            Ok(None) => return Err(Errno(libc::ENOENT)),
            Err(error) => {
                tracing::debug!(%error, "an archive file cannot be read");
                return Err(Errno(libc::EIO));
            }
        };
        file.write_all(&data).map_err(|error| Errno::of(&error))?;
    }
    let reopened = format!("/proc/self/fd/{}\0", file.as_raw_fd());
    let reopened = std::ffi::CStr::from_bytes_with_nul(reopened.as_bytes())
        .map_err(|_| Errno(libc::EINVAL))?;
    let fd = system::open_at(
        libc::AT_FDCWD,
        reopened,
        libc::O_RDONLY | (flags & KEPT_FLAGS),
        0,
    )?;
    drop(file);
    if !register(fd, node) && node.is_directory() {
        system::close(fd);
        return Err(Errno(libc::EMFILE));
    }
    Ok(fd)
}
