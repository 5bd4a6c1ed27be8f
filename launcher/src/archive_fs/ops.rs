//! What each interposed operation does with a path or descriptor inside the archive, with the
//! kernel's errors for a read-only filesystem; [`Outcome::Pass`] for everything else, which the
//! caller hands to glibc or the kernel unchanged.
//!
//! Errors follow the order the kernel checks in: resolving the path (`ENOENT`, `ENOTDIR`),
//! then what the operation needs (`EEXIST` before `EROFS` for creations, `EISDIR` for a
//! directory opened for writing, `EROFS` for anything that would write, `EXDEV` for a rename
//! or link between the archive and elsewhere).

use std::ffi::{c_int, CStr, CString};
use std::os::fd::RawFd;

use super::descriptors;
use super::directory_stream::ArchiveDir;
use super::paths::{Node, Walk};
use super::system::Errno;
use super::{filesystem, ArchiveFs, Location};

/// What an interposed call does.
#[derive(Debug)]
pub enum Outcome<T> {
    /// Not the archive's: glibc (or the kernel) answers, as without pyferry.
    Pass,
    Done(Result<T, Errno>),
}

use Outcome::{Done, Pass};

/// What a path names in the archive, for one operation.
enum Target {
    Pass,
    Found(Node),
    /// Absent, in a directory that exists.
    Missing,
    Failed(Errno),
}

/// Resolves `path` (relative to `dirfd`) for an operation; `directory_only` operations see the
/// executable's own path as the archive's root directory.
fn target(filesystem: &ArchiveFs, dirfd: RawFd, path: &CStr, directory_only: bool) -> Target {
    match filesystem.locate(dirfd, path) {
        Location::Outside => Target::Pass,
        Location::Itself if directory_only => match super::paths::node(filesystem.index(), "") {
            Some(root) => Target::Found(root),
            None => Target::Pass,
        },
        Location::Itself => Target::Pass,
        Location::Failed(errno) => Target::Failed(errno),
        Location::Inside(Walk::Found(node)) => Target::Found(node),
        Location::Inside(Walk::Missing { .. }) => Target::Missing,
        Location::Inside(Walk::Failed(errno)) => Target::Failed(Errno(errno)),
        Location::Inside(Walk::Outside) => Target::Pass,
    }
}

fn with_target<T>(
    dirfd: RawFd,
    path: &CStr,
    directory_only: bool,
    answer: impl FnOnce(&'static ArchiveFs, Target) -> Result<T, Errno>,
) -> Outcome<T> {
    let Some(filesystem) = filesystem() else {
        return Pass;
    };
    match target(filesystem, dirfd, path, directory_only) {
        Target::Pass => Pass,
        Target::Failed(errno) => Done(Err(errno)),
        found => Done(answer(filesystem, found)),
    }
}

fn missing<T>() -> Result<T, Errno> {
    Err(Errno(libc::ENOENT))
}

/// What `fstatat(dirfd, path, flags)` describes (`AT_EMPTY_PATH` with `""`: `dirfd` itself).
pub fn stat(dirfd: RawFd, path: &CStr, flags: c_int) -> Outcome<(&'static ArchiveFs, Node)> {
    if path.is_empty() && flags & libc::AT_EMPTY_PATH != 0 {
        return descriptor(dirfd);
    }
    with_target(dirfd, path, false, |filesystem, target| match target {
        Target::Found(node) => Ok((filesystem, node)),
        _ => missing(),
    })
}

/// What descriptor `fd` was opened for, when it is an archive descriptor.
pub fn descriptor(fd: RawFd) -> Outcome<(&'static ArchiveFs, Node)> {
    let Some(filesystem) = filesystem() else {
        return Pass;
    };
    match descriptors::lookup(fd) {
        Some(node) => Done(Ok((filesystem, node))),
        None => Pass,
    }
}

/// `faccessat(dirfd, path, mode)`: anything may be read, directories searched; files are not
/// executable, nothing is writable.
pub fn access(dirfd: RawFd, path: &CStr, mode: c_int) -> Outcome<()> {
    with_target(dirfd, path, false, |_, target| match target {
        Target::Found(_) if mode & libc::W_OK != 0 => Err(Errno(libc::EROFS)),
        Target::Found(node) if mode & libc::X_OK != 0 && !node.is_directory() => {
            Err(Errno(libc::EACCES))
        }
        Target::Found(_) => Ok(()),
        _ => missing(),
    })
}

/// `openat(dirfd, path, flags)`.
pub fn open(dirfd: RawFd, path: &CStr, flags: c_int) -> Outcome<RawFd> {
    let writes = flags & libc::O_ACCMODE != libc::O_RDONLY;
    let directory_only =
        flags & libc::O_DIRECTORY != 0 && flags & libc::O_TMPFILE != libc::O_TMPFILE;
    with_target(dirfd, path, directory_only, |filesystem, target| {
        let node = match target {
            Target::Found(node) => node,
            Target::Missing if flags & libc::O_CREAT != 0 => return Err(Errno(libc::EROFS)),
            _ => return missing(),
        };
        if flags & libc::O_TMPFILE == libc::O_TMPFILE {
            return Err(Errno(if node.is_directory() {
                libc::EROFS
            } else {
                libc::ENOTDIR
            }));
        }
        if flags & (libc::O_CREAT | libc::O_EXCL) == libc::O_CREAT | libc::O_EXCL {
            return Err(Errno(libc::EEXIST));
        }
        if node.is_directory() {
            if writes || flags & libc::O_CREAT != 0 {
                return Err(Errno(libc::EISDIR));
            }
        } else {
            if flags & libc::O_DIRECTORY != 0 {
                return Err(Errno(libc::ENOTDIR));
            }
            if writes || flags & libc::O_TRUNC != 0 {
                return Err(Errno(libc::EROFS));
            }
        }
        descriptors::open(filesystem, node, flags)
    })
}

/// The `open` flags of an `fopen` mode (`r`, `w+`, `ae`, `rb`, `wx`...).
pub fn fopen_flags(mode: &CStr) -> c_int {
    let mode = mode.to_bytes();
    let mode = mode.split(|byte| *byte == b',').next().unwrap_or_default();
    let update = mode.contains(&b'+');
    let mut flags = match (mode.first(), update) {
        (Some(b'w'), false) => libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
        (Some(b'w'), true) => libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC,
        (Some(b'a'), false) => libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND,
        (Some(b'a'), true) => libc::O_RDWR | libc::O_CREAT | libc::O_APPEND,
        (_, false) => libc::O_RDONLY,
        (_, true) => libc::O_RDWR,
    };
    if mode.contains(&b'e') {
        flags |= libc::O_CLOEXEC;
    }
    if mode.contains(&b'x') {
        flags |= libc::O_EXCL;
    }
    flags
}

/// `readlinkat(dirfd, path)`: nothing in the archive is a symbolic link.
pub fn readlink(dirfd: RawFd, path: &CStr) -> Outcome<()> {
    with_target(dirfd, path, false, |_, target| match target {
        Target::Found(_) => Err(Errno(libc::EINVAL)),
        _ => missing(),
    })
}

/// `realpath(path)`: the path without `.`, `..` and repeated slashes, from the executable's
/// (canonical) path.
pub fn realpath(path: &CStr) -> Outcome<CString> {
    with_target(
        libc::AT_FDCWD,
        path,
        false,
        |filesystem, target| match target {
            Target::Found(node) => {
                CString::new(filesystem.virtual_path(node)).map_err(|_| Errno(libc::EINVAL))
            }
            _ => missing(),
        },
    )
}

/// `listxattr(path)`: no extended attribute (what `shutil.copystat` asks).
pub fn list_attributes(path: &CStr) -> Outcome<usize> {
    with_target(libc::AT_FDCWD, path, false, |_, target| match target {
        Target::Found(_) => Ok(0),
        _ => missing(),
    })
}

/// `getxattr(path, name)`: never set.
pub fn get_attribute(path: &CStr) -> Outcome<usize> {
    with_target(libc::AT_FDCWD, path, false, |_, target| match target {
        Target::Found(_) => Err(Errno(libc::ENODATA)),
        _ => missing(),
    })
}

/// Creating `path` (`mkdir`, `mknod`, `mkfifo`, `symlink`): `EEXIST` when it exists, else
/// `EROFS`.
pub fn create(dirfd: RawFd, path: &CStr) -> Outcome<()> {
    with_target(dirfd, path, false, |_, target| match target {
        Target::Found(_) => Err(Errno(libc::EEXIST)),
        _ => Err(Errno(libc::EROFS)),
    })
}

/// Removing `path` (`unlink`, `rmdir`): `EROFS` once its directory exists, whether or not it
/// does (the kernel asks for write access to the mount before looking at the name).
pub fn remove(dirfd: RawFd, path: &CStr) -> Outcome<()> {
    with_target(dirfd, path, false, |_, _| Err(Errno(libc::EROFS)))
}

/// Changing `path` (`chmod`, `chown`, `utimes`, `truncate`, `setxattr`...): `EROFS` when it
/// exists.
pub fn change(dirfd: RawFd, path: &CStr) -> Outcome<()> {
    with_target(dirfd, path, false, |_, target| match target {
        Target::Found(_) => Err(Errno(libc::EROFS)),
        _ => missing(),
    })
}

/// `renameat` or `linkat` from `old` to `new`: `EXDEV` between the archive and elsewhere,
/// `EROFS` within it (`EEXIST` for a link whose new name exists).
pub fn rename_or_link(
    old_dirfd: RawFd,
    old: &CStr,
    new_dirfd: RawFd,
    new: &CStr,
    link: bool,
) -> Outcome<()> {
    let Some(filesystem) = filesystem() else {
        return Pass;
    };
    let old = target(filesystem, old_dirfd, old, false);
    let new = target(filesystem, new_dirfd, new, false);
    if let (Target::Pass, Target::Pass) = (&old, &new) {
        return Pass;
    }
    let result = match (old, new) {
        (Target::Failed(errno), _) => Err(errno),
        // `link` looks its source up before anything else; `rename` only its directory.
        (Target::Missing, _) if link => missing(),
        (_, Target::Failed(errno)) => Err(errno),
        (Target::Pass, _) | (_, Target::Pass) => Err(Errno(libc::EXDEV)),
        (_, Target::Found(_)) if link => Err(Errno(libc::EEXIST)),
        _ => Err(Errno(libc::EROFS)),
    };
    Done(result)
}

/// `opendir(path)`.
pub fn open_directory(path: &CStr) -> Outcome<Box<ArchiveDir>> {
    with_target(
        libc::AT_FDCWD,
        path,
        true,
        |filesystem, target| match target {
            Target::Found(node) if node.is_directory() => {
                let fd = descriptors::open(filesystem, node, libc::O_CLOEXEC | libc::O_DIRECTORY)?;
                Ok(Box::new(ArchiveDir::new(filesystem, node, fd)))
            }
            Target::Found(_) => Err(Errno(libc::ENOTDIR)),
            _ => missing(),
        },
    )
}

/// `fdopendir(fd)`: a stream over an archive directory's descriptor (which it then owns).
pub fn directory_from(fd: RawFd) -> Outcome<Box<ArchiveDir>> {
    match descriptor(fd) {
        Pass => Pass,
        Done(Ok((_, node))) if !node.is_directory() => Done(Err(Errno(libc::ENOTDIR))),
        Done(Ok((filesystem, node))) => Done(Ok(Box::new(ArchiveDir::new(filesystem, node, fd)))),
        Done(Err(errno)) => Done(Err(errno)),
    }
}

/// For `dlopen(path)`: the memory file an archive shared object was put in and loaded from
/// (`native::shared_objects`), for the dynamic loader to open instead of `path`.
pub fn shared_object(path: &CStr, flags: c_int) -> Option<CString> {
    let filesystem = filesystem()?;
    if !path.to_bytes().contains(&b'/') {
        // A bare name is searched for by the dynamic loader, never a path of ours.
        return None;
    }
    let Location::Inside(Walk::Found(node)) = filesystem.locate(libc::AT_FDCWD, path) else {
        return None;
    };
    if node.is_directory() {
        return None;
    }
    let name = filesystem.path_of(node);
    match crate::native::shared_objects::open_for_dlopen(filesystem.context, name, flags) {
        Ok(memory_path) => CString::new(memory_path).ok(),
        Err(error) => {
            tracing::debug!(name, %error, "dlopen of an archive file");
            None
        }
    }
}
