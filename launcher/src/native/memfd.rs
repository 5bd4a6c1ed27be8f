//! Anonymous executable-mappable files for shared objects read out of the archive.
//!
//! The order of attempts, each tried only when the one before fails:
//! 1. `memfd_create(MFD_CLOEXEC | MFD_NOEXEC_SEAL)`: `NOEXEC_SEAL` only forbids `execve`, so
//!    `dlopen` still maps it executable, and it is the one flag combination accepted at every
//!    `vm.memfd_noexec` level;
//! 2. `memfd_create(MFD_CLOEXEC)` when the kernel predates `MFD_NOEXEC_SEAL` (6.3) and says
//!    `EINVAL`;
//! 3. an unnamed `O_TMPFILE` file in the first of `$XDG_RUNTIME_DIR`, `/dev/shm`, `/tmp`,
//!    `/var/tmp` whose mount is not `noexec` (a seccomp profile may deny `memfd_create`).
//!
//! With `PYFERRY_HUGE_PAGES=1` an `O_TMPFILE` in a tmpfs of the launcher's own, with huge pages
//! and mounted nowhere, is tried first (it needs `CAP_SYS_ADMIN`).
//!
//! The descriptors are never closed: if one were closed and its number reused,
//! `dlopen("/proc/self/fd/N")` would return the library first loaded under that name.
#![allow(unsafe_code)]
// The FreeBSD build (checked, never run) leaves the Linux-only fallbacks unused.
#![cfg_attr(target_os = "freebsd", allow(unused_imports, dead_code))]

use std::ffi::CString;
use std::fs::File;
use std::io::{Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::environment::{self, MemoryFilePolicy};

/// How a memory file was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backing {
    /// `PYFERRY_HUGE_PAGES=1`: an `O_TMPFILE` in a tmpfs of the launcher's own, mounted nowhere,
    /// with huge pages.
    HugeTmpfs,
    MemfdNoexecSeal,
    Memfd,
    TmpFile(PathBuf),
}

impl std::fmt::Display for Backing {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backing::HugeTmpfs => write!(formatter, "O_TMPFILE in a private tmpfs with huge pages"),
            Backing::MemfdNoexecSeal => write!(formatter, "memfd_create(MFD_NOEXEC_SEAL)"),
            Backing::Memfd => write!(formatter, "memfd_create"),
            Backing::TmpFile(dir) => write!(formatter, "O_TMPFILE in {}", dir.display()),
        }
    }
}

/// An open, never-closed file holding one shared object.
#[derive(Debug)]
pub struct MemoryFile {
    fd: RawFd,
    pub backing: Backing,
}

impl MemoryFile {
    /// The path `dlopen` is given: `/proc/self/fd/N` on Linux; `/dev/fd/N` on FreeBSD, which
    /// needs `fdescfs` mounted on `/dev/fd` (untested).
    pub fn proc_path(&self) -> String {
        #[cfg(target_os = "freebsd")]
        return format!("/dev/fd/{}", self.fd);
        #[cfg(not(target_os = "freebsd"))]
        return format!("/proc/self/fd/{}", self.fd);
    }

    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub fn fd(&self) -> RawFd {
        self.fd
    }
}

/// The descriptor a path made by [`MemoryFile::proc_path`] names (`/proc/self/fd/N`,
/// `/dev/fd/N`): its last component.
pub fn descriptor_of(path: &str) -> Result<RawFd, String> {
    path.rsplit('/')
        .next()
        .and_then(|number| number.parse().ok())
        .ok_or_else(|| format!("{path:?} names no descriptor"))
}

/// Every way that was tried and why each failed.
#[derive(Debug, thiserror::Error)]
#[error("no way to hold `{name}` in memory: {}", .attempts.join("; "))]
pub struct MemoryFileError {
    pub name: String,
    pub attempts: Vec<String>,
    /// The error number of the last attempt (`ENOMEM` when none was made).
    pub errno: i32,
}

fn errno_of(error: &std::io::Error) -> i32 {
    error.raw_os_error().unwrap_or(libc::EIO)
}

fn memfd(name: &str, flags: libc::c_uint) -> std::io::Result<File> {
    let name = CString::new(name.replace('\0', "_")).unwrap_or_default();
    // SAFETY: `name` is a valid C string for the duration of the call; the returned descriptor
    // (checked below) is owned by nobody else. On Linux through `syscall`: glibc's
    // `memfd_create` wrapper only exists since 2.27, and the launcher runs on 2.17.
    #[cfg(target_os = "linux")]
    let fd = unsafe {
        libc::syscall(libc::SYS_memfd_create, name.as_ptr(), flags) as std::os::fd::RawFd
    };
    // SAFETY: as above.
    #[cfg(not(target_os = "linux"))]
    let fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

#[cfg(target_os = "linux")]
pub(crate) fn mount_is_noexec(dir: &Path) -> std::io::Result<bool> {
    let path = CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a valid C string and `stats` points at writable memory of the right
    // type, which `statvfs` fills on success (checked before reading it).
    let result = unsafe { libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) };
    if result != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `statvfs` returned 0, so it initialized the struct.
    let stats = unsafe { stats.assume_init() };
    Ok(stats.f_flag & libc::ST_NOEXEC != 0)
}

#[cfg(target_os = "linux")]
fn tmpfile_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(runtime_dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|dir| !dir.is_empty()) {
        dirs.push(PathBuf::from(runtime_dir));
    }
    for dir in ["/dev/shm", "/tmp", "/var/tmp"].map(PathBuf::from) {
        // `XDG_RUNTIME_DIR=/dev/shm` is tried (and reported) once.
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

#[cfg(target_os = "linux")]
fn tmpfile(dir: &Path) -> std::io::Result<File> {
    if mount_is_noexec(dir)? {
        return Err(std::io::Error::other("mounted noexec"));
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o700)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .open(dir)
}

/// FreeBSD (untested): `memfd_create(MFD_CLOEXEC)` only; it has neither `MFD_NOEXEC_SEAL` nor
/// `O_TMPFILE`.
#[cfg(target_os = "freebsd")]
pub fn create(name: &str) -> Result<(File, Backing), MemoryFileError> {
    let base_name = name.rsplit('/').next().unwrap_or(name);
    if !environment::memory_file_policy().allows_memfd() {
        return Err(MemoryFileError {
            name: name.to_string(),
            attempts: vec![format!("memfd_create: disabled by {}", environment::MEMFD)],
            errno: libc::ENOMEM,
        });
    }
    memfd(base_name, libc::MFD_CLOEXEC)
        .map(|file| (file, Backing::Memfd))
        .map_err(|error| MemoryFileError {
            name: name.to_string(),
            attempts: vec![format!("{}: {error}", Backing::Memfd)],
            errno: errno_of(&error),
        })
}

/// Creates an empty memory file named after `name` (its base name shows in `/proc/PID/maps`,
/// perf and gdb), trying each backing in turn.
#[cfg(target_os = "linux")]
pub fn create(name: &str) -> Result<(File, Backing), MemoryFileError> {
    let policy = environment::memory_file_policy();
    let base_name = name.rsplit('/').next().unwrap_or(name);
    let mut attempts = Vec::new();
    let mut errno = libc::ENOMEM;
    if environment::huge_pages_requested() && policy == MemoryFilePolicy::Auto {
        match huge_tmpfile() {
            Ok(file) => return Ok((file, Backing::HugeTmpfs)),
            Err(error) => {
                tracing::debug!(%error, "no private tmpfs with huge pages");
                attempts.push(format!("{}: {error}", Backing::HugeTmpfs));
            }
        }
    }
    if policy.allows_memfd() {
        // Without `MFD_NOEXEC_SEAL` only when the kernel did not know the flag (`EINVAL`): any
        // other error (seccomp's `EPERM`, `ENOSYS`) would only repeat.
        let mut retry_without_seal = policy == MemoryFilePolicy::MemfdOnly;
        if policy == MemoryFilePolicy::Auto {
            match memfd(base_name, libc::MFD_CLOEXEC | libc::MFD_NOEXEC_SEAL) {
                Ok(file) => return Ok((file, Backing::MemfdNoexecSeal)),
                Err(error) => {
                    errno = errno_of(&error);
                    retry_without_seal = error.raw_os_error() == Some(libc::EINVAL);
                    tracing::debug!(%error, "memfd_create(MFD_NOEXEC_SEAL) failed");
                    attempts.push(format!("{}: {error}", Backing::MemfdNoexecSeal));
                }
            }
        }
        if retry_without_seal {
            match memfd(base_name, libc::MFD_CLOEXEC) {
                Ok(file) => return Ok((file, Backing::Memfd)),
                Err(error) => {
                    errno = errno_of(&error);
                    attempts.push(format!("{}: {error}", Backing::Memfd));
                }
            }
        }
    } else {
        attempts.push(format!("memfd_create: disabled by {}", environment::MEMFD));
    }
    if policy.allows_tmpfile() {
        for dir in tmpfile_dirs() {
            match tmpfile(&dir) {
                Ok(file) => return Ok((file, Backing::TmpFile(dir))),
                Err(error) => {
                    errno = errno_of(&error);
                    attempts.push(format!("O_TMPFILE in {}: {error}", dir.display()));
                }
            }
        }
    } else {
        attempts.push(format!("O_TMPFILE: disabled by {}", environment::MEMFD));
    }
    Err(MemoryFileError {
        name: name.to_string(),
        attempts,
        errno,
    })
}

/// A tmpfs of this process's own with `huge=within_size`, created once: a detached mount
/// (`fsopen`/`fsconfig`/`fsmount`), attached to no directory, so no other process sees it and it
/// goes away with its last file. Memory files there are filled and freed in 2 MB pages, whatever
/// the host's policy for memfds; creating it needs `CAP_SYS_ADMIN`.
#[cfg(target_os = "linux")]
fn huge_tmpfs() -> Result<RawFd, String> {
    use std::sync::OnceLock;
    static MOUNT: OnceLock<Result<RawFd, String>> = OnceLock::new();
    MOUNT
        .get_or_init(|| {
            const FSOPEN_CLOEXEC: libc::c_uint = 1;
            const FSCONFIG_SET_STRING: libc::c_uint = 1;
            const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
            const FSMOUNT_CLOEXEC: libc::c_uint = 1;
            let error = |call: &str| format!("{call}: {}", std::io::Error::last_os_error());
            // SAFETY: `fsopen` takes a C string and flags and returns a new descriptor or -1.
            let context =
                unsafe { libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), FSOPEN_CLOEXEC) };
            if context < 0 {
                return Err(error("fsopen(tmpfs)"));
            }
            let context = context as RawFd;
            // SAFETY: `context` is the descriptor just opened; the key and value are C strings.
            let configured = unsafe {
                libc::syscall(
                    libc::SYS_fsconfig,
                    context,
                    FSCONFIG_SET_STRING,
                    c"huge".as_ptr(),
                    c"within_size".as_ptr(),
                    0,
                ) == 0
                    && libc::syscall(
                        libc::SYS_fsconfig,
                        context,
                        FSCONFIG_CMD_CREATE,
                        std::ptr::null::<libc::c_char>(),
                        std::ptr::null::<libc::c_char>(),
                        0,
                    ) == 0
            };
            let mount = if configured {
                // SAFETY: as above; the result is a new descriptor or -1.
                unsafe { libc::syscall(libc::SYS_fsmount, context, FSMOUNT_CLOEXEC, 0) }
            } else {
                -1
            };
            let result = if mount < 0 {
                Err(error(if configured { "fsmount" } else { "fsconfig" }))
            } else {
                Ok(mount as RawFd)
            };
            // SAFETY: `context` is ours and no longer needed (the mount holds the superblock).
            unsafe { libc::close(context) };
            result
        })
        .clone()
}

#[cfg(target_os = "linux")]
fn huge_tmpfile() -> Result<File, String> {
    let mount = huge_tmpfs()?;
    // SAFETY: `openat` on the mount's descriptor with a C string; returns a new descriptor or -1.
    let fd = unsafe {
        libc::openat(
            mount,
            c".".as_ptr(),
            libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
            0o700,
        )
    };
    if fd < 0 {
        return Err(format!("O_TMPFILE: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// How many threads may copy one object: the importing thread, which waits for the copy, uses
/// two; the prefetch thread, which runs beside the importing one, uses one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyThreads {
    One,
    Two,
}

/// Objects at least this large are copied by two threads, each into its own half: the copy is
/// bound by allocating and filling memory pages, which two cores do twice as fast.
const SPLIT_COPY_THRESHOLD: usize = 8 << 20;

/// Copies `bytes`, which lie at `offset` of `source`, into `file` at its position (see
/// [`fill_range`]), in two halves on two threads when large. The second half is written
/// through a second open file description of the same file (its own file position); it is
/// closed afterwards, which is safe because that descriptor number is never given to `dlopen`.
fn fill(
    file: &mut File,
    source: RawFd,
    offset: u64,
    bytes: &[u8],
    threads: CopyThreads,
) -> std::io::Result<()> {
    if threads == CopyThreads::One || bytes.len() < SPLIT_COPY_THRESHOLD {
        return fill_range(file, source, offset, bytes);
    }
    let middle = (bytes.len() / 2) & !0xfff;
    let second = std::fs::OpenOptions::new().write(true).open(
        MemoryFile {
            fd: file.as_raw_fd(),
            backing: Backing::Memfd,
        }
        .proc_path(),
    );
    let mut second = match second {
        Ok(second) => second,
        Err(_) => return fill_range(file, source, offset, bytes),
    };
    let start = file.stream_position()?;
    second.seek(std::io::SeekFrom::Start(start + middle as u64))?;
    std::thread::scope(|scope| {
        let second_half = scope.spawn(move || {
            fill_range(
                &mut second,
                source,
                offset + middle as u64,
                &bytes[middle..],
            )
        });
        let first_half = fill_range(file, source, offset, &bytes[..middle]);
        let second_half = second_half
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the copy thread panicked")));
        first_half.and(second_half)
    })
}

/// FreeBSD's `sendfile` only writes to sockets: the bytes are written from the mapping, after
/// sizing the file (FreeBSD's memory files need `ftruncate` first).
#[cfg(target_os = "freebsd")]
fn fill_range(file: &mut File, _source: RawFd, _offset: u64, bytes: &[u8]) -> std::io::Result<()> {
    let position = file.stream_position()?;
    if file.metadata()?.len() < position + bytes.len() as u64 {
        file.set_len(position + bytes.len() as u64)?;
    }
    file.write_all(bytes)
}

/// Copies `fallback.len()` bytes at `offset` of `source` into `file` at its current position,
/// in the kernel (`sendfile`), falling back to writing `fallback` when the kernel refuses.
#[cfg(target_os = "linux")]
fn fill_range(file: &mut File, source: RawFd, offset: u64, fallback: &[u8]) -> std::io::Result<()> {
    let mut position = offset as libc::off_t;
    let end = offset as libc::off_t + fallback.len() as libc::off_t;
    while position < end {
        let remaining = (end - position) as usize;
        // SAFETY: both descriptors are open; `position` is a valid `off_t` the kernel advances.
        let copied = unsafe { libc::sendfile(file.as_raw_fd(), source, &mut position, remaining) };
        if copied < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            tracing::debug!(%error, "sendfile failed; writing from the mapping");
            let done = (position - offset as libc::off_t) as usize;
            return file.write_all(&fallback[done..]);
        }
        if copied == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        }
    }
    Ok(())
}

/// What to leave out of a memory file: byte ranges of the object (left as holes, the file
/// keeping its full size), and the offsets of 8-byte dynamic tags to overwrite with
/// [`HIDDEN_TAG`] (see `pyferry_payload::LoadPlan`).
#[derive(Debug, Clone, Copy, Default)]
pub struct LeaveOut<'a> {
    pub ranges: &'a [std::ops::Range<u64>],
    pub hidden_tags: &'a [u64],
}

/// What a hidden dynamic tag becomes: `DT_LOOS`, a tag of no meaning that glibc skips.
const HIDDEN_TAG: u64 = 0x6000_000d;

/// Makes a memory file holding `bytes`, which lie at `offset` in the file open as `source`,
/// except what `leave_out` names.
pub fn load(
    name: &str,
    source: RawFd,
    offset: u64,
    bytes: &[u8],
    threads: CopyThreads,
    leave_out: LeaveOut<'_>,
) -> Result<MemoryFile, MemoryFileError> {
    let (mut file, backing) = create(name)?;
    // `huge=within_size` gives a page only the huge pages that lie within the file's size; a
    // file with holes needs its size first too.
    let sized = if backing == Backing::HugeTmpfs || !leave_out.ranges.is_empty() {
        file.set_len(bytes.len() as u64)
    } else {
        Ok(())
    };
    let filled = sized.and_then(|()| {
        if leave_out.ranges.is_empty() {
            return fill(&mut file, source, offset, bytes, threads);
        }
        let whole = 0..bytes.len() as u64;
        let pieces =
            pyferry_payload::ranges::subtract(std::slice::from_ref(&whole), leave_out.ranges);
        for piece in pieces {
            file.seek(std::io::SeekFrom::Start(piece.start))?;
            let range = piece.start as usize..piece.end as usize;
            fill(
                &mut file,
                source,
                offset + piece.start,
                &bytes[range],
                threads,
            )?;
        }
        for &tag in leave_out.hidden_tags {
            std::os::unix::fs::FileExt::write_all_at(&file, &HIDDEN_TAG.to_le_bytes(), tag)?;
        }
        Ok(())
    });
    if let Err(error) = filled {
        return Err(MemoryFileError {
            name: name.to_string(),
            attempts: vec![format!(
                "writing {} bytes into {backing}: {error}",
                bytes.len()
            )],
            errno: errno_of(&error),
        });
    }
    Ok(MemoryFile {
        fd: file.into_raw_fd(),
        backing,
    })
}

/// Writes into memory file `fd` what [`load`] left out of it (`ranges` of `bytes`, which lie at
/// `offset` of `source`, and the original bytes of the hidden tags when `restore_tags`): for a
/// process that cannot map those ranges from the executable after all.
pub fn complete(
    fd: RawFd,
    source: RawFd,
    offset: u64,
    bytes: &[u8],
    ranges: &[std::ops::Range<u64>],
    hidden_tags: &[u64],
) -> std::io::Result<()> {
    // SAFETY: `fd` is a memory file this process keeps open for its whole life; the `File` is
    // turned back into a bare descriptor below without being closed.
    let mut file = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
    for range in ranges {
        let piece = range.start as usize..(range.end as usize).min(bytes.len());
        file.seek(std::io::SeekFrom::Start(range.start))?;
        fill_range(&mut file, source, offset + range.start, &bytes[piece])?;
    }
    for &tag in hidden_tags {
        let original = &bytes[tag as usize..tag as usize + 8];
        std::os::unix::fs::FileExt::write_all_at(&*file, original, tag)?;
    }
    Ok(())
}

/// Writes `bytes` at `offset` of memory file `fd`.
pub fn write_at(fd: RawFd, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    // SAFETY: `fd` is a memory file this process keeps open for its whole life; the `File` is
    // turned back into a bare descriptor without being closed.
    let file = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
    std::os::unix::fs::FileExt::write_all_at(&*file, bytes, offset)
}

/// Makes a memory file holding `bytes` that are not stored in the file as-is (compressed).
pub fn load_bytes(name: &str, bytes: &[u8]) -> Result<MemoryFile, MemoryFileError> {
    let (mut file, backing) = create(name)?;
    if let Err(error) = file.write_all(bytes) {
        return Err(MemoryFileError {
            name: name.to_string(),
            attempts: vec![format!(
                "writing {} bytes into {backing}: {error}",
                bytes.len()
            )],
            errno: errno_of(&error),
        });
    }
    Ok(MemoryFile {
        fd: file.into_raw_fd(),
        backing,
    })
}

/// Tries every way of holding a shared object on this host, in order, without keeping any
/// (nothing is loaded from them), for `PYFERRY_INFO`: `(way, "works" or why not)`.
#[cfg(target_os = "linux")]
pub fn probe() -> Vec<(String, String)> {
    let verdict = |result: std::io::Result<File>| match result {
        Ok(_) => "works".to_string(),
        Err(error) => format!("fails: {error}"),
    };
    let mut report = vec![
        (
            Backing::MemfdNoexecSeal.to_string(),
            verdict(memfd("probe", libc::MFD_CLOEXEC | libc::MFD_NOEXEC_SEAL)),
        ),
        (
            Backing::Memfd.to_string(),
            verdict(memfd("probe", libc::MFD_CLOEXEC)),
        ),
    ];
    for dir in tmpfile_dirs() {
        report.push((
            Backing::TmpFile(dir.clone()).to_string(),
            verdict(tmpfile(&dir)),
        ));
    }
    let policy = environment::memory_file_policy();
    if policy != MemoryFilePolicy::Auto {
        report.push((
            environment::MEMFD.to_string(),
            format!("restricts this to {policy:?}"),
        ));
    }
    report
}

#[cfg(not(target_os = "linux"))]
pub fn probe() -> Vec<(String, String)> {
    let verdict = match memfd("probe", libc::MFD_CLOEXEC) {
        Ok(_) => "works".to_string(),
        Err(error) => format!("fails: {error}"),
    };
    vec![(Backing::Memfd.to_string(), verdict)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    /// A large object copied with two ranges left out and a tag hidden: every other byte is
    /// the object's, the ranges read as zeros, and `complete` restores both.
    #[cfg(target_os = "linux")]
    #[test]
    fn load_leaves_out_what_it_is_told_and_complete_puts_it_back() {
        let len = 20 << 20;
        let bytes: Vec<u8> = (0..len).map(|index| (index % 251) as u8).collect();
        let mut source = memfd("source", libc::MFD_CLOEXEC).expect("memfd");
        source.write_all(&[0xee; 4096]).expect("write");
        source.write_all(&bytes).expect("write");
        let ranges = [4096..8192, (12 << 20)..(12 << 20) + 4096];
        let tags = [104];
        let loaded = load(
            "object.so",
            source.as_raw_fd(),
            4096,
            &bytes,
            CopyThreads::Two,
            LeaveOut {
                ranges: &ranges,
                hidden_tags: &tags,
            },
        )
        .expect("load");
        let read_back = || {
            let copy = File::open(loaded.proc_path()).expect("open");
            let mut back = vec![0; len];
            copy.read_exact_at(&mut back, 0).expect("read");
            back
        };
        let back = read_back();
        assert_eq!(back.len(), len);
        let left_out = |at: usize| ranges.iter().any(|range| range.contains(&(at as u64)));
        for at in 0..len {
            let expected = if left_out(at) {
                0
            } else if (104..112).contains(&at) {
                HIDDEN_TAG.to_le_bytes()[at - 104]
            } else {
                bytes[at]
            };
            assert_eq!(back[at], expected, "byte {at}");
        }
        complete(
            loaded.fd(),
            source.as_raw_fd(),
            4096,
            &bytes,
            &ranges,
            &tags,
        )
        .expect("complete");
        assert!(read_back() == bytes);
    }
}
