//! The glibc entry points the launcher defines and exports (`build.rs` lists every
//! `pub unsafe extern "C" fn` of this file in the executable's dynamic symbol table).
//!
//! Each one turns its C arguments into Rust values, asks `ops` what the call means for the
//! archive, and either writes the answer the C way (a result, `errno`) or passes the call on,
//! arguments untouched, to glibc's own definition (`system::real`) or, for the `stat` family,
//! to the system call glibc would make. Every function's contract is the C function's own (its
//! manual page): that is the safety requirement of every `unsafe fn` here.
#![allow(unsafe_code)]
#![allow(clippy::missing_safety_doc)]

use std::ffi::{c_char, c_int, c_long, c_uint, c_void, CStr};
use std::os::fd::RawFd;

use super::directory_stream::{ArchiveDir, MAGIC, MARKER};
use super::ops::{self, Outcome};
use super::paths::PATH_MAX;
use super::system::{self, raw, real, Errno};
use super::{descriptors, ArchiveFs};

type Mode = libc::mode_t;
type Path = *const c_char;

/// The C string at `pointer`, or `None` for a null pointer (left for the kernel to refuse).
///
/// # Safety
/// `pointer` is null or a NUL-terminated string that outlives `'a`.
unsafe fn text<'a>(pointer: *const c_char) -> Option<&'a CStr> {
    if pointer.is_null() {
        None
    } else {
        // SAFETY: non-null, and a C string by the caller's contract.
        Some(unsafe { CStr::from_ptr(pointer) })
    }
}

fn status(outcome: Result<(), Errno>) -> c_int {
    match outcome {
        Ok(()) => 0,
        Err(errno) => errno.fail(),
    }
}

// ---------------------------------------------------------------------------------------------
// stat

/// Writes what `outcome` describes into the caller's `struct stat`, or passes.
///
/// # Safety
/// `buffer` is null or points to a writable `struct stat`.
unsafe fn answer_stat(
    outcome: Outcome<(&'static ArchiveFs, super::paths::Node)>,
    buffer: *mut c_void,
    pass: impl FnOnce() -> c_int,
) -> c_int {
    match outcome {
        Outcome::Pass => pass(),
        Outcome::Done(Err(errno)) => errno.fail(),
        Outcome::Done(Ok(_)) if buffer.is_null() => Errno(libc::EFAULT).fail(),
        Outcome::Done(Ok((filesystem, node))) => {
            // SAFETY: non-null, and a `struct stat` (the same as `stat64` on x86_64) by the
            // caller's contract.
            unsafe { buffer.cast::<libc::stat>().write(filesystem.stat_of(node)) };
            0
        }
    }
}

unsafe fn stat_at(dirfd: c_int, path: Path, buffer: *mut c_void, flags: c_int) -> c_int {
    // SAFETY: `path` as the caller's `fstatat` got it.
    let Some(requested) = (unsafe { text(path) }) else {
        // SAFETY: the caller's arguments, unchanged.
        return unsafe { raw::newfstatat(dirfd, path, buffer, flags) };
    };
    // SAFETY: `buffer` as the caller's `fstatat` got it; the pass-through gets the caller's
    // arguments unchanged.
    unsafe {
        answer_stat(ops::stat(dirfd, requested, flags), buffer, || {
            raw::newfstatat(dirfd, path, buffer, flags)
        })
    }
}

unsafe fn stat_descriptor(fd: c_int, buffer: *mut c_void) -> c_int {
    // SAFETY: `buffer` as the caller's `fstat` got it; the pass-through gets the caller's
    // arguments unchanged.
    unsafe { answer_stat(ops::descriptor(fd), buffer, || raw::fstat(fd, buffer)) }
}

/// glibc's check of the `__xstat` family's version argument (x86_64 knows 0 and 1).
fn stat_version_ok(version: c_int) -> bool {
    version == 0 || version == 1
}

#[no_mangle]
pub unsafe extern "C" fn stat(path: Path, buffer: *mut c_void) -> c_int {
    // SAFETY: the caller's arguments, as `fstatat(AT_FDCWD, ...)` takes them.
    unsafe { stat_at(libc::AT_FDCWD, path, buffer, 0) }
}

#[no_mangle]
pub unsafe extern "C" fn stat64(path: Path, buffer: *mut c_void) -> c_int {
    // SAFETY: as for `stat`.
    unsafe { stat_at(libc::AT_FDCWD, path, buffer, 0) }
}

#[no_mangle]
pub unsafe extern "C" fn lstat(path: Path, buffer: *mut c_void) -> c_int {
    // SAFETY: as for `stat`.
    unsafe { stat_at(libc::AT_FDCWD, path, buffer, libc::AT_SYMLINK_NOFOLLOW) }
}

#[no_mangle]
pub unsafe extern "C" fn lstat64(path: Path, buffer: *mut c_void) -> c_int {
    // SAFETY: as for `stat`.
    unsafe { stat_at(libc::AT_FDCWD, path, buffer, libc::AT_SYMLINK_NOFOLLOW) }
}

#[no_mangle]
pub unsafe extern "C" fn fstatat(
    dirfd: c_int,
    path: Path,
    buffer: *mut c_void,
    flags: c_int,
) -> c_int {
    // SAFETY: the caller's arguments.
    unsafe { stat_at(dirfd, path, buffer, flags) }
}

#[no_mangle]
pub unsafe extern "C" fn fstatat64(
    dirfd: c_int,
    path: Path,
    buffer: *mut c_void,
    flags: c_int,
) -> c_int {
    // SAFETY: the caller's arguments.
    unsafe { stat_at(dirfd, path, buffer, flags) }
}

#[no_mangle]
pub unsafe extern "C" fn fstat(fd: c_int, buffer: *mut c_void) -> c_int {
    // SAFETY: the caller's arguments.
    unsafe { stat_descriptor(fd, buffer) }
}

#[no_mangle]
pub unsafe extern "C" fn fstat64(fd: c_int, buffer: *mut c_void) -> c_int {
    // SAFETY: the caller's arguments.
    unsafe { stat_descriptor(fd, buffer) }
}

#[no_mangle]
pub unsafe extern "C" fn __xstat(version: c_int, path: Path, buffer: *mut c_void) -> c_int {
    if !stat_version_ok(version) {
        return Errno(libc::EINVAL).fail();
    }
    // SAFETY: the caller's arguments, as `stat` takes them.
    unsafe { stat_at(libc::AT_FDCWD, path, buffer, 0) }
}

#[no_mangle]
pub unsafe extern "C" fn __xstat64(version: c_int, path: Path, buffer: *mut c_void) -> c_int {
    // SAFETY: the caller's arguments.
    unsafe { __xstat(version, path, buffer) }
}

#[no_mangle]
pub unsafe extern "C" fn __lxstat(version: c_int, path: Path, buffer: *mut c_void) -> c_int {
    if !stat_version_ok(version) {
        return Errno(libc::EINVAL).fail();
    }
    // SAFETY: the caller's arguments, as `lstat` takes them.
    unsafe { stat_at(libc::AT_FDCWD, path, buffer, libc::AT_SYMLINK_NOFOLLOW) }
}

#[no_mangle]
pub unsafe extern "C" fn __lxstat64(version: c_int, path: Path, buffer: *mut c_void) -> c_int {
    // SAFETY: the caller's arguments.
    unsafe { __lxstat(version, path, buffer) }
}

#[no_mangle]
pub unsafe extern "C" fn __fxstat(version: c_int, fd: c_int, buffer: *mut c_void) -> c_int {
    if !stat_version_ok(version) {
        return Errno(libc::EINVAL).fail();
    }
    // SAFETY: the caller's arguments, as `fstat` takes them.
    unsafe { stat_descriptor(fd, buffer) }
}

#[no_mangle]
pub unsafe extern "C" fn __fxstat64(version: c_int, fd: c_int, buffer: *mut c_void) -> c_int {
    // SAFETY: the caller's arguments.
    unsafe { __fxstat(version, fd, buffer) }
}

#[no_mangle]
pub unsafe extern "C" fn __fxstatat(
    version: c_int,
    dirfd: c_int,
    path: Path,
    buffer: *mut c_void,
    flags: c_int,
) -> c_int {
    if !stat_version_ok(version) {
        return Errno(libc::EINVAL).fail();
    }
    // SAFETY: the caller's arguments, as `fstatat` takes them.
    unsafe { stat_at(dirfd, path, buffer, flags) }
}

#[no_mangle]
pub unsafe extern "C" fn __fxstatat64(
    version: c_int,
    dirfd: c_int,
    path: Path,
    buffer: *mut c_void,
    flags: c_int,
) -> c_int {
    // SAFETY: the caller's arguments.
    unsafe { __fxstatat(version, dirfd, path, buffer, flags) }
}

#[no_mangle]
pub unsafe extern "C" fn statx(
    dirfd: c_int,
    path: Path,
    flags: c_int,
    mask: c_uint,
    buffer: *mut c_void,
) -> c_int {
    // SAFETY: `path` as the caller's `statx` got it.
    let outcome = match unsafe { text(path) } {
        Some(requested) => ops::stat(dirfd, requested, flags),
        None => Outcome::Pass,
    };
    match outcome {
        // SAFETY: the caller's arguments, unchanged.
        Outcome::Pass => unsafe { raw::statx(dirfd, path, flags, mask, buffer) },
        Outcome::Done(Err(errno)) => errno.fail(),
        Outcome::Done(Ok(_)) if buffer.is_null() => Errno(libc::EFAULT).fail(),
        Outcome::Done(Ok((filesystem, node))) => {
            // SAFETY: non-null, and a `struct statx` by the caller's contract.
            unsafe {
                buffer
                    .cast::<libc::statx>()
                    .write(filesystem.statx_of(node))
            };
            0
        }
    }
}

// ---------------------------------------------------------------------------------------------
// open

/// `openat` for the archive, or `pass`.
///
/// # Safety
/// `path` is null or a C string.
unsafe fn open_at(dirfd: c_int, path: Path, flags: c_int, pass: impl FnOnce() -> c_int) -> c_int {
    // SAFETY: `path` as the caller got it.
    let Some(requested) = (unsafe { text(path) }) else {
        return pass();
    };
    match ops::open(dirfd, requested, flags) {
        Outcome::Pass => pass(),
        Outcome::Done(Ok(fd)) => fd,
        Outcome::Done(Err(errno)) => errno.fail(),
    }
}

/// glibc's fortified `open` aborts on `O_CREAT` or `O_TMPFILE` without a mode: left to it.
fn needs_mode(flags: c_int) -> bool {
    flags & libc::O_CREAT != 0 || flags & libc::O_TMPFILE == libc::O_TMPFILE
}

#[no_mangle]
pub unsafe extern "C" fn open(path: Path, flags: c_int, mode: Mode) -> c_int {
    // SAFETY: the caller's arguments; the pass-through gets them unchanged.
    unsafe {
        open_at(libc::AT_FDCWD, path, flags, || {
            real::open()(path, flags, mode)
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn open64(path: Path, flags: c_int, mode: Mode) -> c_int {
    // SAFETY: as for `open`.
    unsafe {
        open_at(libc::AT_FDCWD, path, flags, || {
            real::open64()(path, flags, mode)
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn openat(dirfd: c_int, path: Path, flags: c_int, mode: Mode) -> c_int {
    // SAFETY: as for `open`.
    unsafe {
        open_at(dirfd, path, flags, || {
            real::openat()(dirfd, path, flags, mode)
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn openat64(dirfd: c_int, path: Path, flags: c_int, mode: Mode) -> c_int {
    // SAFETY: as for `open`.
    unsafe {
        open_at(dirfd, path, flags, || {
            real::openat64()(dirfd, path, flags, mode)
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn __open_2(path: Path, flags: c_int) -> c_int {
    if needs_mode(flags) {
        // SAFETY: the caller's arguments, to glibc's check.
        return unsafe { real::__open_2()(path, flags) };
    }
    // SAFETY: as for `open`.
    unsafe {
        open_at(libc::AT_FDCWD, path, flags, || {
            real::__open_2()(path, flags)
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn __open64_2(path: Path, flags: c_int) -> c_int {
    if needs_mode(flags) {
        // SAFETY: the caller's arguments, to glibc's check.
        return unsafe { real::__open64_2()(path, flags) };
    }
    // SAFETY: as for `open`.
    unsafe {
        open_at(libc::AT_FDCWD, path, flags, || {
            real::__open64_2()(path, flags)
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn __openat_2(dirfd: c_int, path: Path, flags: c_int) -> c_int {
    if needs_mode(flags) {
        // SAFETY: the caller's arguments, to glibc's check.
        return unsafe { real::__openat_2()(dirfd, path, flags) };
    }
    // SAFETY: as for `open`.
    unsafe {
        open_at(dirfd, path, flags, || {
            real::__openat_2()(dirfd, path, flags)
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn __openat64_2(dirfd: c_int, path: Path, flags: c_int) -> c_int {
    if needs_mode(flags) {
        // SAFETY: the caller's arguments, to glibc's check.
        return unsafe { real::__openat64_2()(dirfd, path, flags) };
    }
    // SAFETY: as for `open`.
    unsafe {
        open_at(dirfd, path, flags, || {
            real::__openat64_2()(dirfd, path, flags)
        })
    }
}

const CREAT_FLAGS: c_int = libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC;

#[no_mangle]
pub unsafe extern "C" fn creat(path: Path, mode: Mode) -> c_int {
    // SAFETY: as for `open`.
    unsafe {
        open_at(libc::AT_FDCWD, path, CREAT_FLAGS, || {
            real::creat()(path, mode)
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn creat64(path: Path, mode: Mode) -> c_int {
    // SAFETY: as for `open`.
    unsafe {
        open_at(libc::AT_FDCWD, path, CREAT_FLAGS, || {
            real::creat64()(path, mode)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// stdio: glibc's `fopen` opens through an internal call no interposer sees.

/// `fopen` for the archive (the descriptor wrapped by glibc's `fdopen`), or `pass`.
///
/// # Safety
/// `path` and `mode` are null or C strings.
unsafe fn open_stream(
    path: Path,
    mode: *const c_char,
    pass: impl FnOnce() -> *mut libc::FILE,
) -> *mut libc::FILE {
    // SAFETY: the caller's C strings.
    let (Some(requested), Some(flags)) = (unsafe { text(path) }, unsafe { text(mode) }) else {
        return pass();
    };
    match ops::open(libc::AT_FDCWD, requested, ops::fopen_flags(flags)) {
        Outcome::Pass => pass(),
        Outcome::Done(Err(errno)) => {
            errno.fail();
            std::ptr::null_mut()
        }
        Outcome::Done(Ok(fd)) => {
            // SAFETY: `fd` is a descriptor just opened for this stream; `mode` the caller's.
            let stream = unsafe { real::fdopen()(fd, mode) };
            if stream.is_null() {
                let errno = Errno::last();
                system::close(fd);
                errno.fail();
            }
            stream
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn fopen(path: Path, mode: *const c_char) -> *mut libc::FILE {
    // SAFETY: the caller's arguments; the pass-through gets them unchanged.
    unsafe { open_stream(path, mode, || real::fopen()(path, mode)) }
}

#[no_mangle]
pub unsafe extern "C" fn fopen64(path: Path, mode: *const c_char) -> *mut libc::FILE {
    // SAFETY: as for `fopen`.
    unsafe { open_stream(path, mode, || real::fopen64()(path, mode)) }
}

/// `freopen` for the archive: glibc reopens `/proc/self/fd/N` of an archive descriptor into the
/// caller's stream.
///
/// # Safety
/// As `freopen`'s.
unsafe fn reopen_stream(
    path: Path,
    mode: *const c_char,
    stream: *mut libc::FILE,
    next: unsafe extern "C" fn(Path, *const c_char, *mut libc::FILE) -> *mut libc::FILE,
) -> *mut libc::FILE {
    // SAFETY: the caller's C strings.
    let (Some(requested), Some(flags)) = (unsafe { text(path) }, unsafe { text(mode) }) else {
        // SAFETY: the caller's arguments, unchanged.
        return unsafe { next(path, mode, stream) };
    };
    match ops::open(libc::AT_FDCWD, requested, ops::fopen_flags(flags)) {
        // SAFETY: the caller's arguments, unchanged.
        Outcome::Pass => unsafe { next(path, mode, stream) },
        Outcome::Done(Err(errno)) => {
            errno.fail();
            std::ptr::null_mut()
        }
        Outcome::Done(Ok(fd)) => {
            let proc_path = format!("/proc/self/fd/{fd}\0");
            // SAFETY: a C string made above; `mode` and `stream` are the caller's.
            let reopened = unsafe { next(proc_path.as_ptr().cast(), mode, stream) };
            if !reopened.is_null() {
                // SAFETY: a stream glibc just returned.
                descriptors::duplicated(fd, unsafe { real::fileno()(reopened) });
            }
            let errno = Errno::last();
            system::close(fd);
            system::set_errno(errno.0);
            reopened
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn freopen(
    path: Path,
    mode: *const c_char,
    stream: *mut libc::FILE,
) -> *mut libc::FILE {
    // SAFETY: the caller's arguments.
    unsafe { reopen_stream(path, mode, stream, real::freopen()) }
}

#[no_mangle]
pub unsafe extern "C" fn freopen64(
    path: Path,
    mode: *const c_char,
    stream: *mut libc::FILE,
) -> *mut libc::FILE {
    // SAFETY: the caller's arguments.
    unsafe { reopen_stream(path, mode, stream, real::freopen64()) }
}

// ---------------------------------------------------------------------------------------------
// directories

/// The archive directory stream `dir` is, if it is one (see `directory_stream.rs`).
///
/// # Safety
/// `dir` is null or a `DIR *` from `opendir`/`fdopendir` not yet closed.
unsafe fn archive_stream<'a>(dir: *mut c_void) -> Option<&'a ArchiveDir> {
    if dir.is_null() {
        return None;
    }
    // SAFETY: both glibc's streams and ours are at least 16 bytes long, and aligned for these
    // reads; glibc's begins with its descriptor (never negative) and its buffer size.
    let (marker, magic) = unsafe {
        (
            dir.cast::<c_int>().read(),
            dir.cast::<u8>().add(8).cast::<u64>().read(),
        )
    };
    // SAFETY: the marker and magic are only ever written by `ArchiveDir::new`, so this is a
    // live `ArchiveDir` (the caller has not closed it).
    (marker == MARKER && magic == MAGIC).then(|| unsafe { &*dir.cast::<ArchiveDir>() })
}

fn into_stream(outcome: Result<Box<ArchiveDir>, Errno>) -> *mut c_void {
    match outcome {
        Ok(dir) => Box::into_raw(dir).cast(),
        Err(errno) => {
            errno.fail();
            std::ptr::null_mut()
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn opendir(path: Path) -> *mut c_void {
    // SAFETY: the caller's C string.
    let Some(requested) = (unsafe { text(path) }) else {
        // SAFETY: the caller's argument, unchanged.
        return unsafe { real::opendir()(path) };
    };
    match ops::open_directory(requested) {
        // SAFETY: the caller's argument, unchanged.
        Outcome::Pass => unsafe { real::opendir()(path) },
        Outcome::Done(outcome) => into_stream(outcome),
    }
}

#[no_mangle]
pub unsafe extern "C" fn fdopendir(fd: c_int) -> *mut c_void {
    match ops::directory_from(fd) {
        // SAFETY: the caller's argument, unchanged.
        Outcome::Pass => unsafe { real::fdopendir()(fd) },
        Outcome::Done(outcome) => into_stream(outcome),
    }
}

#[no_mangle]
pub unsafe extern "C" fn readdir(dir: *mut c_void) -> *mut libc::dirent64 {
    // SAFETY: `dir` as the caller's `readdir` got it.
    match unsafe { archive_stream(dir) } {
        Some(stream) => stream.read(),
        // SAFETY: the caller's argument, unchanged.
        None => unsafe { real::readdir()(dir) },
    }
}

#[no_mangle]
pub unsafe extern "C" fn readdir64(dir: *mut c_void) -> *mut libc::dirent64 {
    // SAFETY: `dir` as the caller's `readdir64` got it.
    match unsafe { archive_stream(dir) } {
        Some(stream) => stream.read(),
        // SAFETY: the caller's argument, unchanged.
        None => unsafe { real::readdir64()(dir) },
    }
}

/// `readdir_r` on an archive stream.
///
/// # Safety
/// `entry` and `result` as `readdir_r` takes them.
unsafe fn read_into(
    stream: &ArchiveDir,
    entry: *mut libc::dirent64,
    result: *mut *mut libc::dirent64,
) -> c_int {
    if entry.is_null() || result.is_null() {
        return libc::EFAULT;
    }
    // SAFETY: both point to writable memory of their types by the caller's contract.
    unsafe {
        let more = stream.read_into(&mut *entry);
        result.write(if more { entry } else { std::ptr::null_mut() });
    }
    0
}

#[no_mangle]
pub unsafe extern "C" fn readdir_r(
    dir: *mut c_void,
    entry: *mut libc::dirent64,
    result: *mut *mut libc::dirent64,
) -> c_int {
    // SAFETY: the caller's arguments.
    match unsafe { archive_stream(dir) } {
        // SAFETY: the caller's arguments.
        Some(stream) => unsafe { read_into(stream, entry, result) },
        // SAFETY: the caller's arguments, unchanged.
        None => unsafe { real::readdir_r()(dir, entry, result) },
    }
}

#[no_mangle]
pub unsafe extern "C" fn readdir64_r(
    dir: *mut c_void,
    entry: *mut libc::dirent64,
    result: *mut *mut libc::dirent64,
) -> c_int {
    // SAFETY: the caller's arguments.
    match unsafe { archive_stream(dir) } {
        // SAFETY: the caller's arguments.
        Some(stream) => unsafe { read_into(stream, entry, result) },
        // SAFETY: the caller's arguments, unchanged.
        None => unsafe { real::readdir64_r()(dir, entry, result) },
    }
}

#[no_mangle]
pub unsafe extern "C" fn closedir(dir: *mut c_void) -> c_int {
    // SAFETY: `dir` as the caller's `closedir` got it.
    if unsafe { archive_stream(dir) }.is_none() {
        // SAFETY: the caller's argument, unchanged.
        return unsafe { real::closedir()(dir) };
    }
    // SAFETY: an archive stream comes from `Box::into_raw` in `into_stream`, and `closedir` is
    // its last use.
    let stream = unsafe { Box::from_raw(dir.cast::<ArchiveDir>()) };
    system::close(stream.fd());
    0
}

#[no_mangle]
pub unsafe extern "C" fn dirfd(dir: *mut c_void) -> c_int {
    // SAFETY: `dir` as the caller's `dirfd` got it.
    match unsafe { archive_stream(dir) } {
        Some(stream) => stream.fd(),
        // SAFETY: the caller's argument, unchanged.
        None => unsafe { real::dirfd()(dir) },
    }
}

#[no_mangle]
pub unsafe extern "C" fn rewinddir(dir: *mut c_void) {
    // SAFETY: `dir` as the caller's `rewinddir` got it.
    match unsafe { archive_stream(dir) } {
        Some(stream) => stream.seek(0),
        // SAFETY: the caller's argument, unchanged.
        None => unsafe { real::rewinddir()(dir) },
    }
}

#[no_mangle]
pub unsafe extern "C" fn telldir(dir: *mut c_void) -> c_long {
    // SAFETY: `dir` as the caller's `telldir` got it.
    match unsafe { archive_stream(dir) } {
        Some(stream) => stream.tell(),
        // SAFETY: the caller's argument, unchanged.
        None => unsafe { real::telldir()(dir) },
    }
}

#[no_mangle]
pub unsafe extern "C" fn seekdir(dir: *mut c_void, location: c_long) {
    // SAFETY: `dir` as the caller's `seekdir` got it.
    match unsafe { archive_stream(dir) } {
        Some(stream) => stream.seek(location),
        // SAFETY: the caller's arguments, unchanged.
        None => unsafe { real::seekdir()(dir, location) },
    }
}

type Filter = unsafe extern "C" fn(*const libc::dirent64) -> c_int;
type Compare = unsafe extern "C" fn(*const c_void, *const c_void) -> c_int;

/// `scandir` of an archive directory: glibc's opens its directory through an internal call.
///
/// # Safety
/// As `scandir`'s: `names` writable, `filter` and `compare` null or functions of the right types.
unsafe fn scan(
    path: Path,
    names: *mut *mut *mut libc::dirent64,
    filter: *mut c_void,
    compare: *mut c_void,
    next: unsafe extern "C" fn(Path, *mut c_void, *mut c_void, *mut c_void) -> c_int,
) -> c_int {
    // SAFETY: the caller's C string.
    let outcome = match unsafe { text(path) } {
        Some(requested) => ops::open_directory(requested),
        None => Outcome::Pass,
    };
    let stream = match outcome {
        // SAFETY: the caller's arguments, unchanged.
        Outcome::Pass => return unsafe { next(path, names.cast(), filter, compare) },
        Outcome::Done(Err(errno)) => return errno.fail(),
        Outcome::Done(Ok(stream)) => stream,
    };
    let entries = stream.all();
    system::close(stream.fd());
    // SAFETY: a non-null `filter` is a function of this type by `scandir`'s contract.
    let filter =
        (!filter.is_null()).then(|| unsafe { std::mem::transmute::<*mut c_void, Filter>(filter) });
    let size = std::mem::size_of::<libc::dirent64>();
    let mut kept: Vec<*mut libc::dirent64> = Vec::new();
    for entry in entries {
        // SAFETY: the caller's filter, given an entry that lives for the call.
        if filter.is_some_and(|filter| unsafe { filter(&entry) } == 0) {
            continue;
        }
        // SAFETY: a fresh allocation of `size` bytes (checked for null), which the caller frees.
        let copy = unsafe { libc::malloc(size) }.cast::<libc::dirent64>();
        if copy.is_null() {
            for allocated in kept {
                // SAFETY: allocated above with `malloc`, not handed out.
                unsafe { libc::free(allocated.cast()) };
            }
            return Errno(libc::ENOMEM).fail();
        }
        // SAFETY: `copy` is writable for a `dirent64`.
        unsafe { copy.write(entry) };
        kept.push(copy);
    }
    let pointer_size = std::mem::size_of::<*mut libc::dirent64>();
    // SAFETY: a fresh allocation (checked for null) for the array the caller frees.
    let array =
        unsafe { libc::malloc(pointer_size * kept.len().max(1)) }.cast::<*mut libc::dirent64>();
    if array.is_null() {
        for allocated in kept {
            // SAFETY: allocated above with `malloc`, not handed out.
            unsafe { libc::free(allocated.cast()) };
        }
        return Errno(libc::ENOMEM).fail();
    }
    // SAFETY: `array` has room for `kept.len()` pointers.
    unsafe { std::ptr::copy_nonoverlapping(kept.as_ptr(), array, kept.len()) };
    if !compare.is_null() {
        // SAFETY: a non-null `compare` is a comparison of `dirent` pointers by `scandir`'s
        // contract; `qsort` sorts `kept.len()` pointers in `array`.
        unsafe {
            let compare = std::mem::transmute::<*mut c_void, Compare>(compare);
            libc::qsort(array.cast(), kept.len(), pointer_size, Some(compare));
        }
    }
    if names.is_null() {
        return Errno(libc::EFAULT).fail();
    }
    // SAFETY: `names` is writable by the caller's contract (checked for null).
    unsafe { names.write(array) };
    kept.len() as c_int
}

#[no_mangle]
pub unsafe extern "C" fn scandir(
    path: Path,
    names: *mut *mut *mut libc::dirent64,
    filter: *mut c_void,
    compare: *mut c_void,
) -> c_int {
    // SAFETY: the caller's arguments.
    unsafe { scan(path, names, filter, compare, real::scandir()) }
}

#[no_mangle]
pub unsafe extern "C" fn scandir64(
    path: Path,
    names: *mut *mut *mut libc::dirent64,
    filter: *mut c_void,
    compare: *mut c_void,
) -> c_int {
    // SAFETY: the caller's arguments.
    unsafe { scan(path, names, filter, compare, real::scandir64()) }
}

// ---------------------------------------------------------------------------------------------
// access, links, real paths, extended attributes

/// Runs `archive` on the caller's path, or `pass` when it is not the archive's.
///
/// # Safety
/// `path` is null or a C string.
unsafe fn on_path<T>(
    path: Path,
    archive: impl FnOnce(&CStr) -> Outcome<T>,
    answer: impl FnOnce(Result<T, Errno>) -> c_int,
    pass: impl FnOnce() -> c_int,
) -> c_int {
    // SAFETY: the caller's C string.
    let Some(requested) = (unsafe { text(path) }) else {
        return pass();
    };
    match archive(requested) {
        Outcome::Pass => pass(),
        Outcome::Done(result) => answer(result),
    }
}

#[no_mangle]
pub unsafe extern "C" fn access(path: Path, mode: c_int) -> c_int {
    // SAFETY: the caller's arguments; the pass-through gets them unchanged.
    unsafe {
        on_path(
            path,
            |path| ops::access(libc::AT_FDCWD, path, mode),
            status,
            || real::access()(path, mode),
        )
    }
}

#[no_mangle]
pub unsafe extern "C" fn euidaccess(path: Path, mode: c_int) -> c_int {
    // SAFETY: as for `access`.
    unsafe {
        on_path(
            path,
            |path| ops::access(libc::AT_FDCWD, path, mode),
            status,
            || real::euidaccess()(path, mode),
        )
    }
}

#[no_mangle]
pub unsafe extern "C" fn eaccess(path: Path, mode: c_int) -> c_int {
    // SAFETY: as for `access`.
    unsafe {
        on_path(
            path,
            |path| ops::access(libc::AT_FDCWD, path, mode),
            status,
            || real::eaccess()(path, mode),
        )
    }
}

#[no_mangle]
pub unsafe extern "C" fn faccessat(dirfd: c_int, path: Path, mode: c_int, flags: c_int) -> c_int {
    // SAFETY: as for `access`.
    unsafe {
        on_path(
            path,
            |path| ops::access(dirfd, path, mode),
            status,
            || real::faccessat()(dirfd, path, mode, flags),
        )
    }
}

#[no_mangle]
pub unsafe extern "C" fn readlink(path: Path, buffer: *mut c_char, size: usize) -> isize {
    // SAFETY: the caller's C string.
    let outcome = match unsafe { text(path) } {
        Some(requested) => ops::readlink(libc::AT_FDCWD, requested),
        None => Outcome::Pass,
    };
    match outcome {
        // SAFETY: the caller's arguments, unchanged.
        Outcome::Pass => unsafe { real::readlink()(path, buffer, size) },
        Outcome::Done(result) => status(result) as isize,
    }
}

#[no_mangle]
pub unsafe extern "C" fn readlinkat(
    dirfd: c_int,
    path: Path,
    buffer: *mut c_char,
    size: usize,
) -> isize {
    // SAFETY: the caller's C string.
    let outcome = match unsafe { text(path) } {
        Some(requested) => ops::readlink(dirfd, requested),
        None => Outcome::Pass,
    };
    match outcome {
        // SAFETY: the caller's arguments, unchanged.
        Outcome::Pass => unsafe { real::readlinkat()(dirfd, path, buffer, size) },
        Outcome::Done(result) => status(result) as isize,
    }
}

/// `realpath` for the archive: into `resolved` (`PATH_MAX` bytes) or a `malloc`ed copy.
///
/// # Safety
/// `path` is null or a C string; `resolved` null or `PATH_MAX` writable bytes.
unsafe fn resolve(
    path: Path,
    resolved: *mut c_char,
    pass: impl FnOnce() -> *mut c_char,
) -> *mut c_char {
    // SAFETY: the caller's C string.
    let Some(requested) = (unsafe { text(path) }) else {
        return pass();
    };
    let found = match ops::realpath(requested) {
        Outcome::Pass => return pass(),
        Outcome::Done(Err(errno)) => {
            errno.fail();
            return std::ptr::null_mut();
        }
        Outcome::Done(Ok(found)) => found,
    };
    let bytes = found.as_bytes_with_nul();
    if bytes.len() > PATH_MAX {
        Errno(libc::ENAMETOOLONG).fail();
        return std::ptr::null_mut();
    }
    let target = if resolved.is_null() {
        // SAFETY: a fresh allocation, checked for null, which the caller frees.
        let allocated = unsafe { libc::malloc(bytes.len()) }.cast::<c_char>();
        if allocated.is_null() {
            Errno(libc::ENOMEM).fail();
            return std::ptr::null_mut();
        }
        allocated
    } else {
        resolved
    };
    // SAFETY: `target` has room for `bytes` (`PATH_MAX` bytes, or allocated for them).
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr().cast::<c_char>(), target, bytes.len()) };
    target
}

#[no_mangle]
pub unsafe extern "C" fn realpath(path: Path, resolved: *mut c_char) -> *mut c_char {
    // SAFETY: the caller's arguments; the pass-through gets them unchanged.
    unsafe { resolve(path, resolved, || real::realpath()(path, resolved)) }
}

#[no_mangle]
pub unsafe extern "C" fn __realpath_chk(
    path: Path,
    resolved: *mut c_char,
    resolved_len: usize,
) -> *mut c_char {
    if !resolved.is_null() && resolved_len < PATH_MAX {
        // SAFETY: glibc's own check fails the call, as it would.
        return unsafe { real::__realpath_chk()(path, resolved, resolved_len) };
    }
    // SAFETY: the caller's arguments; the pass-through gets them unchanged.
    unsafe {
        resolve(path, resolved, || {
            real::__realpath_chk()(path, resolved, resolved_len)
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn canonicalize_file_name(path: Path) -> *mut c_char {
    // SAFETY: the caller's argument; the pass-through gets it unchanged.
    unsafe {
        resolve(path, std::ptr::null_mut(), || {
            real::canonicalize_file_name()(path)
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn listxattr(path: Path, list: *mut c_char, size: usize) -> isize {
    // SAFETY: the caller's C string.
    let outcome = match unsafe { text(path) } {
        Some(requested) => ops::list_attributes(requested),
        None => Outcome::Pass,
    };
    match outcome {
        // SAFETY: the caller's arguments, unchanged.
        Outcome::Pass => unsafe { real::listxattr()(path, list, size) },
        Outcome::Done(Ok(len)) => len as isize,
        Outcome::Done(Err(errno)) => errno.fail() as isize,
    }
}

#[no_mangle]
pub unsafe extern "C" fn llistxattr(path: Path, list: *mut c_char, size: usize) -> isize {
    // SAFETY: the caller's C string.
    let outcome = match unsafe { text(path) } {
        Some(requested) => ops::list_attributes(requested),
        None => Outcome::Pass,
    };
    match outcome {
        // SAFETY: the caller's arguments, unchanged.
        Outcome::Pass => unsafe { real::llistxattr()(path, list, size) },
        Outcome::Done(Ok(len)) => len as isize,
        Outcome::Done(Err(errno)) => errno.fail() as isize,
    }
}

#[no_mangle]
pub unsafe extern "C" fn getxattr(
    path: Path,
    name: Path,
    value: *mut c_void,
    size: usize,
) -> isize {
    // SAFETY: the caller's C string.
    let outcome = match unsafe { text(path) } {
        Some(requested) => ops::get_attribute(requested),
        None => Outcome::Pass,
    };
    match outcome {
        // SAFETY: the caller's arguments, unchanged.
        Outcome::Pass => unsafe { real::getxattr()(path, name, value, size) },
        Outcome::Done(Ok(len)) => len as isize,
        Outcome::Done(Err(errno)) => errno.fail() as isize,
    }
}

#[no_mangle]
pub unsafe extern "C" fn lgetxattr(
    path: Path,
    name: Path,
    value: *mut c_void,
    size: usize,
) -> isize {
    // SAFETY: the caller's C string.
    let outcome = match unsafe { text(path) } {
        Some(requested) => ops::get_attribute(requested),
        None => Outcome::Pass,
    };
    match outcome {
        // SAFETY: the caller's arguments, unchanged.
        Outcome::Pass => unsafe { real::lgetxattr()(path, name, value, size) },
        Outcome::Done(Ok(len)) => len as isize,
        Outcome::Done(Err(errno)) => errno.fail() as isize,
    }
}

// ---------------------------------------------------------------------------------------------
// writes: EROFS inside the archive

/// A creation of `path` (relative to `dirfd`), or `pass`.
///
/// # Safety
/// `path` is null or a C string.
unsafe fn creating(dirfd: c_int, path: Path, pass: impl FnOnce() -> c_int) -> c_int {
    // SAFETY: the caller's C string.
    unsafe { on_path(path, |path| ops::create(dirfd, path), status, pass) }
}

/// A removal of `path`, or `pass`.
///
/// # Safety
/// `path` is null or a C string.
unsafe fn removing(dirfd: c_int, path: Path, pass: impl FnOnce() -> c_int) -> c_int {
    // SAFETY: the caller's C string.
    unsafe { on_path(path, |path| ops::remove(dirfd, path), status, pass) }
}

/// A change to `path`, or `pass`.
///
/// # Safety
/// `path` is null or a C string.
unsafe fn changing(dirfd: c_int, path: Path, pass: impl FnOnce() -> c_int) -> c_int {
    // SAFETY: the caller's C string.
    unsafe { on_path(path, |path| ops::change(dirfd, path), status, pass) }
}

/// A rename or link from `old` to `new`, or `pass`.
///
/// # Safety
/// `old` and `new` are null or C strings.
unsafe fn moving(
    old_dirfd: c_int,
    old: Path,
    new_dirfd: c_int,
    new: Path,
    link: bool,
    pass: impl FnOnce() -> c_int,
) -> c_int {
    // SAFETY: the caller's C strings.
    let (Some(old), Some(new)) = (unsafe { text(old) }, unsafe { text(new) }) else {
        return pass();
    };
    match ops::rename_or_link(old_dirfd, old, new_dirfd, new, link) {
        Outcome::Pass => pass(),
        Outcome::Done(result) => status(result),
    }
}

#[no_mangle]
pub unsafe extern "C" fn mkdir(path: Path, mode: Mode) -> c_int {
    // SAFETY: the caller's arguments; the pass-through gets them unchanged.
    unsafe { creating(libc::AT_FDCWD, path, || real::mkdir()(path, mode)) }
}

#[no_mangle]
pub unsafe extern "C" fn mkdirat(dirfd: c_int, path: Path, mode: Mode) -> c_int {
    // SAFETY: as for `mkdir`.
    unsafe { creating(dirfd, path, || real::mkdirat()(dirfd, path, mode)) }
}

#[no_mangle]
pub unsafe extern "C" fn mknod(path: Path, mode: Mode, device: libc::dev_t) -> c_int {
    // SAFETY: as for `mkdir`.
    unsafe {
        creating(libc::AT_FDCWD, path, || {
            raw::mknodat(libc::AT_FDCWD, path, mode, device)
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn mknodat(
    dirfd: c_int,
    path: Path,
    mode: Mode,
    device: libc::dev_t,
) -> c_int {
    // SAFETY: as for `mkdir`.
    unsafe { creating(dirfd, path, || raw::mknodat(dirfd, path, mode, device)) }
}

/// `mknod` as glibc's headers before 2.33 compile it (`_MKNOD_VER` 0 on x86_64).
#[no_mangle]
pub unsafe extern "C" fn __xmknod(
    version: c_int,
    path: Path,
    mode: Mode,
    device: *const libc::dev_t,
) -> c_int {
    // SAFETY: the caller's arguments, as `__xmknodat(AT_FDCWD, ...)` takes them.
    unsafe { __xmknodat(version, libc::AT_FDCWD, path, mode, device) }
}

#[no_mangle]
pub unsafe extern "C" fn __xmknodat(
    version: c_int,
    dirfd: c_int,
    path: Path,
    mode: Mode,
    device: *const libc::dev_t,
) -> c_int {
    if version != 0 || device.is_null() {
        return Errno(libc::EINVAL).fail();
    }
    // SAFETY: `device` is non-null and points to the caller's `dev_t`.
    let device = unsafe { device.read() };
    // SAFETY: as for `mkdir`.
    unsafe { creating(dirfd, path, || raw::mknodat(dirfd, path, mode, device)) }
}

#[no_mangle]
pub unsafe extern "C" fn mkfifo(path: Path, mode: Mode) -> c_int {
    // SAFETY: as for `mkdir`.
    unsafe { creating(libc::AT_FDCWD, path, || real::mkfifo()(path, mode)) }
}

#[no_mangle]
pub unsafe extern "C" fn mkfifoat(dirfd: c_int, path: Path, mode: Mode) -> c_int {
    // SAFETY: as for `mkdir`.
    unsafe { creating(dirfd, path, || real::mkfifoat()(dirfd, path, mode)) }
}

#[no_mangle]
pub unsafe extern "C" fn symlink(target: Path, path: Path) -> c_int {
    // SAFETY: as for `mkdir`.
    unsafe { creating(libc::AT_FDCWD, path, || real::symlink()(target, path)) }
}

#[no_mangle]
pub unsafe extern "C" fn symlinkat(target: Path, dirfd: c_int, path: Path) -> c_int {
    // SAFETY: as for `mkdir`.
    unsafe { creating(dirfd, path, || real::symlinkat()(target, dirfd, path)) }
}

#[no_mangle]
pub unsafe extern "C" fn unlink(path: Path) -> c_int {
    // SAFETY: as for `mkdir`.
    unsafe { removing(libc::AT_FDCWD, path, || real::unlink()(path)) }
}

#[no_mangle]
pub unsafe extern "C" fn unlinkat(dirfd: c_int, path: Path, flags: c_int) -> c_int {
    // SAFETY: as for `mkdir`.
    unsafe { removing(dirfd, path, || real::unlinkat()(dirfd, path, flags)) }
}

#[no_mangle]
pub unsafe extern "C" fn rmdir(path: Path) -> c_int {
    // SAFETY: as for `mkdir`.
    unsafe { removing(libc::AT_FDCWD, path, || real::rmdir()(path)) }
}

#[no_mangle]
pub unsafe extern "C" fn rename(old: Path, new: Path) -> c_int {
    // SAFETY: the caller's arguments; the pass-through gets them unchanged.
    unsafe {
        moving(libc::AT_FDCWD, old, libc::AT_FDCWD, new, false, || {
            real::rename()(old, new)
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn renameat(
    old_dirfd: c_int,
    old: Path,
    new_dirfd: c_int,
    new: Path,
) -> c_int {
    // SAFETY: as for `rename`.
    unsafe {
        moving(old_dirfd, old, new_dirfd, new, false, || {
            real::renameat()(old_dirfd, old, new_dirfd, new)
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn renameat2(
    old_dirfd: c_int,
    old: Path,
    new_dirfd: c_int,
    new: Path,
    flags: c_uint,
) -> c_int {
    // SAFETY: as for `rename`.
    unsafe {
        moving(old_dirfd, old, new_dirfd, new, false, || {
            raw::renameat2(old_dirfd, old, new_dirfd, new, flags)
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn link(old: Path, new: Path) -> c_int {
    // SAFETY: as for `rename`.
    unsafe {
        moving(libc::AT_FDCWD, old, libc::AT_FDCWD, new, true, || {
            real::link()(old, new)
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn linkat(
    old_dirfd: c_int,
    old: Path,
    new_dirfd: c_int,
    new: Path,
    flags: c_int,
) -> c_int {
    // SAFETY: as for `rename`.
    unsafe {
        moving(old_dirfd, old, new_dirfd, new, true, || {
            real::linkat()(old_dirfd, old, new_dirfd, new, flags)
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn truncate(path: Path, length: libc::off_t) -> c_int {
    // SAFETY: as for `mkdir`.
    unsafe { changing(libc::AT_FDCWD, path, || real::truncate()(path, length)) }
}

#[no_mangle]
pub unsafe extern "C" fn truncate64(path: Path, length: libc::off64_t) -> c_int {
    // SAFETY: as for `mkdir`.
    unsafe { changing(libc::AT_FDCWD, path, || real::truncate64()(path, length)) }
}

#[no_mangle]
pub unsafe extern "C" fn chmod(path: Path, mode: Mode) -> c_int {
    // SAFETY: as for `mkdir`.
    unsafe { changing(libc::AT_FDCWD, path, || real::chmod()(path, mode)) }
}

#[no_mangle]
pub unsafe extern "C" fn fchmodat(dirfd: c_int, path: Path, mode: Mode, flags: c_int) -> c_int {
    // SAFETY: as for `mkdir`.
    unsafe { changing(dirfd, path, || real::fchmodat()(dirfd, path, mode, flags)) }
}

#[no_mangle]
pub unsafe extern "C" fn chown(path: Path, owner: libc::uid_t, group: libc::gid_t) -> c_int {
    // SAFETY: as for `mkdir`.
    unsafe { changing(libc::AT_FDCWD, path, || real::chown()(path, owner, group)) }
}

#[no_mangle]
pub unsafe extern "C" fn lchown(path: Path, owner: libc::uid_t, group: libc::gid_t) -> c_int {
    // SAFETY: as for `mkdir`.
    unsafe { changing(libc::AT_FDCWD, path, || real::lchown()(path, owner, group)) }
}

#[no_mangle]
pub unsafe extern "C" fn fchownat(
    dirfd: c_int,
    path: Path,
    owner: libc::uid_t,
    group: libc::gid_t,
    flags: c_int,
) -> c_int {
    if flags & libc::AT_EMPTY_PATH != 0 {
        // SAFETY: the caller's arguments, unchanged (the descriptor itself is changed).
        return unsafe { real::fchownat()(dirfd, path, owner, group, flags) };
    }
    // SAFETY: as for `mkdir`.
    unsafe {
        changing(dirfd, path, || {
            real::fchownat()(dirfd, path, owner, group, flags)
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn utime(path: Path, times: *const c_void) -> c_int {
    // SAFETY: as for `mkdir`.
    unsafe { changing(libc::AT_FDCWD, path, || real::utime()(path, times)) }
}

#[no_mangle]
pub unsafe extern "C" fn utimes(path: Path, times: *const c_void) -> c_int {
    // SAFETY: as for `mkdir`.
    unsafe { changing(libc::AT_FDCWD, path, || real::utimes()(path, times)) }
}

#[no_mangle]
pub unsafe extern "C" fn lutimes(path: Path, times: *const c_void) -> c_int {
    // SAFETY: as for `mkdir`.
    unsafe { changing(libc::AT_FDCWD, path, || real::lutimes()(path, times)) }
}

#[no_mangle]
pub unsafe extern "C" fn utimensat(
    dirfd: c_int,
    path: Path,
    times: *const c_void,
    flags: c_int,
) -> c_int {
    // A null path changes `dirfd` itself (`futimens`): passed on by `on_path`.
    // SAFETY: as for `mkdir`.
    unsafe { changing(dirfd, path, || real::utimensat()(dirfd, path, times, flags)) }
}

#[no_mangle]
pub unsafe extern "C" fn futimesat(dirfd: c_int, path: Path, times: *const c_void) -> c_int {
    // SAFETY: as for `mkdir`.
    unsafe { changing(dirfd, path, || real::futimesat()(dirfd, path, times)) }
}

#[no_mangle]
pub unsafe extern "C" fn setxattr(
    path: Path,
    name: Path,
    value: *const c_void,
    size: usize,
    flags: c_int,
) -> c_int {
    // SAFETY: as for `mkdir`.
    unsafe {
        changing(libc::AT_FDCWD, path, || {
            real::setxattr()(path, name, value, size, flags)
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn lsetxattr(
    path: Path,
    name: Path,
    value: *const c_void,
    size: usize,
    flags: c_int,
) -> c_int {
    // SAFETY: as for `mkdir`.
    unsafe {
        changing(libc::AT_FDCWD, path, || {
            real::lsetxattr()(path, name, value, size, flags)
        })
    }
}

#[no_mangle]
pub unsafe extern "C" fn removexattr(path: Path, name: Path) -> c_int {
    // SAFETY: as for `mkdir`.
    unsafe { changing(libc::AT_FDCWD, path, || real::removexattr()(path, name)) }
}

#[no_mangle]
pub unsafe extern "C" fn lremovexattr(path: Path, name: Path) -> c_int {
    // SAFETY: as for `mkdir`.
    unsafe { changing(libc::AT_FDCWD, path, || real::lremovexattr()(path, name)) }
}

// ---------------------------------------------------------------------------------------------
// duplicated descriptors stand for what their original stands for

fn after_duplicate(from: RawFd, result: c_int) -> c_int {
    if result >= 0 && result != from {
        descriptors::duplicated(from, result);
    }
    result
}

#[no_mangle]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    // SAFETY: the caller's argument, unchanged.
    after_duplicate(fd, unsafe { real::dup()(fd) })
}

#[no_mangle]
pub unsafe extern "C" fn dup2(fd: c_int, target: c_int) -> c_int {
    // SAFETY: the caller's arguments, unchanged.
    after_duplicate(fd, unsafe { real::dup2()(fd, target) })
}

#[no_mangle]
pub unsafe extern "C" fn dup3(fd: c_int, target: c_int, flags: c_int) -> c_int {
    // SAFETY: the caller's arguments, unchanged.
    after_duplicate(fd, unsafe { real::dup3()(fd, target, flags) })
}

/// `fcntl` (a C variadic function: its one optional argument is a register, passed on as is).
#[no_mangle]
pub unsafe extern "C" fn fcntl(fd: c_int, command: c_int, argument: usize) -> c_int {
    // SAFETY: the caller's arguments, unchanged.
    let result = unsafe { real::fcntl()(fd, command, argument) };
    if command == libc::F_DUPFD || command == libc::F_DUPFD_CLOEXEC {
        return after_duplicate(fd, result);
    }
    result
}

#[no_mangle]
pub unsafe extern "C" fn fcntl64(fd: c_int, command: c_int, argument: usize) -> c_int {
    // SAFETY: the caller's arguments (`fcntl64` is `fcntl` on x86_64).
    unsafe { fcntl(fd, command, argument) }
}
