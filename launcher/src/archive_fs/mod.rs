//! The archive as a read-only filesystem at the executable's own path: `/opt/myapp/pkg/x.css`
//! (where `/opt/myapp` is the executable and `pkg/x.css` an entry of its archive) can be opened,
//! read, mapped, stat'ed and listed by Python code and by C code in extension modules, with
//! nothing written anywhere.
//!
//! The launcher is the main executable, so the glibc entry points it defines and exports come
//! first for every object the dynamic loader loads (extension modules and their libraries), and
//! CPython, linked into it statically, is bound to them when the launcher is linked. Each entry
//! point (`exports.rs`) asks [`ops`] whether its path or descriptor is inside the archive: when
//! it is not, the call goes on to glibc (or to the kernel, for the `stat` family) exactly as it
//! would have; when it is, it is answered here:
//! - a file is opened as a real descriptor: a fresh memory file holding the entry's bytes,
//!   reopened read-only (`read`, `pread`, `lseek`, `mmap`, `fstat`, `sendfile` and passing the
//!   descriptor to C all work; closing it frees the copy);
//! - a directory is listed from the entry index (a directory stream of the launcher's own, and
//!   an empty memory file as its descriptor, for `openat`, `fstatat` and `fdopendir`);
//! - `stat` and friends describe files and directories (mode `0644`/`0755`, the executable's
//!   owner and times, a device number of their own);
//! - a write, create, rename or removal fails with `EROFS`, as on a read-only mount, and never
//!   touches the executable;
//! - `dlopen` of a shared object inside loads it from memory (`native::shared_objects`).
//!
//! docs/architecture.md ("The archive as a filesystem") has the decision, the measurements and
//! the limits.

mod descriptors;
mod directory_stream;
mod dlopen;
mod exports;
mod ops;
mod paths;
mod system;

use std::ffi::CStr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use memchr::memmem;
use pyferry_payload::{EntryIndex, EntryKind};

use crate::executable::context::ArchiveContext;
use paths::{Node, Spelled, Walk};
use system::Errno;

/// The device number of every file and directory of the archive: major 0 (the kernel's
/// anonymous devices) and the last minor number, which the kernel hands out last.
pub const DEVICE_MINOR: u32 = 0xf_fffe;

/// Block size reported for archive files.
const BLOCK_SIZE: i64 = 4096;

/// The archive filesystem of this process: set once, before the interpreter starts.
pub struct ArchiveFs {
    context: &'static ArchiveContext,
    /// The executable's path (canonical, as `/proc/self/exe` gives it) and its file name.
    root: &'static [u8],
    name: &'static [u8],
    name_finder: memmem::Finder<'static>,
    /// `(st_dev, st_ino)` of the executable.
    identity: (u64, u64),
    /// The executable's owner and modification time, reported for every archive path.
    owner: (libc::uid_t, libc::gid_t),
    time: (i64, i64),
}

static FILESYSTEM: OnceLock<ArchiveFs> = OnceLock::new();

/// The archive filesystem, once installed.
fn filesystem() -> Option<&'static ArchiveFs> {
    FILESYSTEM.get()
}

/// Whether archive paths are served in this process.
pub fn serving() -> bool {
    filesystem().is_some()
}

/// Starts serving archive paths. Looks up glibc's definitions first in any case (they are the
/// pass-through of every interposed call), so that none is looked up later in a child process
/// between `fork` and `exec`. `enabled` false (`PYFERRY_ARCHIVE_FS=0`) leaves every path to the
/// kernel.
pub fn install(context: &'static ArchiveContext, enabled: bool) {
    system::real::resolve_all();
    if !enabled {
        tracing::debug!("archive filesystem off");
        return;
    }
    let root: &'static [u8] = context.root.as_bytes();
    let Some(slash) = root.iter().rposition(|byte| *byte == b'/') else {
        return;
    };
    let name = &root[slash + 1..];
    let Ok(executable) = std::ffi::CString::new(root) else {
        return;
    };
    let Ok(executable) = system::stat_at(libc::AT_FDCWD, &executable, 0) else {
        tracing::debug!("archive filesystem off: the executable cannot be stat'ed");
        return;
    };
    let installed = FILESYSTEM.set(ArchiveFs {
        context,
        root,
        name,
        name_finder: memmem::Finder::new(name),
        identity: (executable.st_dev, executable.st_ino),
        owner: (executable.st_uid, executable.st_gid),
        time: (executable.st_mtime, executable.st_mtime_nsec),
    });
    tracing::debug!(
        root = %context.root,
        installed = installed.is_ok(),
        "archive filesystem"
    );
}

/// Where a path leads, seen from the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    /// Not inside the archive: the kernel's.
    Outside,
    /// The executable itself: a file for the kernel, the archive's root directory for
    /// operations that can only mean a directory (`opendir`, `O_DIRECTORY`).
    Itself,
    Inside(Walk),
    Failed(Errno),
}

impl ArchiveFs {
    fn index(&self) -> &'static EntryIndex<'static> {
        self.context.archive.index()
    }

    /// Where `path` leads, relative to `dirfd` (`AT_FDCWD` or a descriptor) when relative.
    /// Costs no system call for a path that is not inside unless one of its components is the
    /// executable's file name; then one `stat` of the path up to that component (once per
    /// absolute spelling: [`SPELLINGS`] keeps the verdict).
    fn locate(&self, dirfd: RawFd, path: &CStr) -> Location {
        let bytes = path.to_bytes();
        let Some(&first) = bytes.first() else {
            return Location::Outside;
        };
        if first != b'/' && dirfd != libc::AT_FDCWD {
            if let Some(node) = descriptors::lookup(dirfd).filter(|node| node.is_directory()) {
                if bytes.len() >= paths::PATH_MAX {
                    return Location::Failed(Errno(libc::ENAMETOOLONG));
                }
                let start = node.path(self.index()).unwrap_or_default();
                return inside(paths::walk(self.index(), start, bytes));
            }
        }
        if first == b'/' {
            if let Some(spelled) = paths::literally_under(bytes, self.root) {
                return self.spelled(spelled, bytes.len());
            }
        }
        let starts = self.name_finder.find_iter(bytes);
        for (spelling, spelled) in paths::under_component(bytes, self.name, starts) {
            if self.leads_to_executable(dirfd, spelling) {
                return self.spelled(spelled, bytes.len());
            }
        }
        Location::Outside
    }

    fn spelled(&self, spelled: Spelled<'_>, len: usize) -> Location {
        match spelled {
            Spelled::Itself => Location::Itself,
            Spelled::Below(_) if len >= paths::PATH_MAX => {
                Location::Failed(Errno(libc::ENAMETOOLONG))
            }
            Spelled::Below(rest) => inside(paths::walk(self.index(), "", rest)),
        }
    }

    /// Whether `spelling` (relative to `dirfd` when relative) is the executable.
    fn leads_to_executable(&self, dirfd: RawFd, spelling: &[u8]) -> bool {
        let absolute = spelling.first() == Some(&b'/');
        if absolute {
            if let Some(verdict) = SPELLINGS.get(spelling) {
                return verdict;
            }
        }
        let mut buffer = [0u8; paths::PATH_MAX];
        if spelling.len() >= buffer.len() {
            return false;
        }
        buffer[..spelling.len()].copy_from_slice(spelling);
        let Ok(path) = CStr::from_bytes_until_nul(&buffer) else {
            return false;
        };
        let base = if absolute { libc::AT_FDCWD } else { dirfd };
        let verdict = system::stat_at(base, path, 0)
            .is_ok_and(|found| (found.st_dev, found.st_ino) == self.identity);
        if absolute {
            SPELLINGS.set(spelling, verdict);
        }
        verdict
    }

    /// The archive path of `node`.
    fn path_of(&self, node: Node) -> &'static str {
        node.path(self.index()).unwrap_or_default()
    }

    /// The virtual absolute path of `node` (the executable's path for the root).
    fn virtual_path(&self, node: Node) -> String {
        self.context.virtual_path(self.path_of(node))
    }

    fn size_of(&self, node: Node) -> u64 {
        match node.kind {
            EntryKind::File => self.context.archive.size(self.path_of(node)).unwrap_or(0),
            EntryKind::Directory => 0,
        }
    }

    /// Mode bits: as an installed tree has them (a read-only mount keeps them; `access` and
    /// writes say `EROFS`), so that `shutil.copytree` out of the archive gives a writable copy.
    fn mode_of(node: Node) -> libc::mode_t {
        match node.kind {
            EntryKind::File => libc::S_IFREG | 0o644,
            EntryKind::Directory => libc::S_IFDIR | 0o755,
        }
    }

    /// `struct stat` of `node`.
    fn stat_of(&self, node: Node) -> libc::stat {
        let size = self.size_of(node);
        let mut stat = system::zeroed_stat();
        stat.st_dev = libc::makedev(0, DEVICE_MINOR);
        stat.st_ino = node.pack();
        stat.st_nlink = 1;
        stat.st_mode = Self::mode_of(node);
        stat.st_uid = self.owner.0;
        stat.st_gid = self.owner.1;
        stat.st_size = size as i64;
        stat.st_blksize = BLOCK_SIZE;
        stat.st_blocks = size.div_ceil(512) as i64;
        (stat.st_atime, stat.st_atime_nsec) = self.time;
        (stat.st_mtime, stat.st_mtime_nsec) = self.time;
        (stat.st_ctime, stat.st_ctime_nsec) = self.time;
        stat
    }

    /// `struct statx` of `node`, with every basic field.
    fn statx_of(&self, node: Node) -> libc::statx {
        let size = self.size_of(node);
        let mut statx = system::zeroed_statx();
        let mut time = statx.stx_mtime;
        time.tv_sec = self.time.0;
        time.tv_nsec = self.time.1 as u32;
        statx.stx_mask = libc::STATX_BASIC_STATS;
        statx.stx_blksize = BLOCK_SIZE as u32;
        statx.stx_nlink = 1;
        statx.stx_uid = self.owner.0;
        statx.stx_gid = self.owner.1;
        statx.stx_mode = Self::mode_of(node) as u16;
        statx.stx_ino = node.pack();
        statx.stx_size = size;
        statx.stx_blocks = size.div_ceil(512);
        statx.stx_atime = time;
        statx.stx_ctime = time;
        statx.stx_mtime = time;
        statx.stx_dev_major = 0;
        statx.stx_dev_minor = DEVICE_MINOR;
        statx
    }
}

/// Verdicts on absolute spellings other than the executable's own path (`/link/myapp`, or
/// `/app` for an executable named `app` elsewhere): whether each leads to the executable, so
/// that a host path that merely has a component named like the executable costs one `stat` the
/// first time, not every time. A verdict is kept for the life of the process (a symbolic link
/// made or removed later is not seen). Each slot is one atomic word, a hash of the spelling with
/// the verdict as its lowest bit: no lock, nothing allocated.
struct SpellingCache {
    slots: [AtomicU64; 64],
}

static SPELLINGS: SpellingCache = SpellingCache {
    slots: [const { AtomicU64::new(0) }; 64],
};

impl SpellingCache {
    /// FNV-1a of `spelling`, never 0, lowest bit clear.
    fn hash(spelling: &[u8]) -> u64 {
        let hash = spelling
            .iter()
            .fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
                (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
            });
        (hash & !1).max(2)
    }

    fn slot(&self, hash: u64) -> &AtomicU64 {
        &self.slots[(hash >> 58) as usize % self.slots.len()]
    }

    fn get(&self, spelling: &[u8]) -> Option<bool> {
        let hash = Self::hash(spelling);
        let value = self.slot(hash).load(Ordering::Relaxed);
        (value & !1 == hash).then_some(value & 1 == 1)
    }

    fn set(&self, spelling: &[u8], verdict: bool) {
        let hash = Self::hash(spelling);
        self.slot(hash)
            .store(hash | u64::from(verdict), Ordering::Relaxed);
    }
}

fn inside(walk: Walk) -> Location {
    match walk {
        Walk::Outside => Location::Outside,
        walk => Location::Inside(walk),
    }
}
