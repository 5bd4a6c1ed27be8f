//! The archive filesystem's own way to the kernel and to glibc, around its interposed entry
//! points: raw system calls (never the interposed symbols, so nothing recurses) and the next
//! definition of each glibc function (`dlsym(RTLD_NEXT, ...)`), resolved once before any thread
//! or child can need it.
//!
//! Everything here is safe to run between `fork`/`vfork` and `exec` (no lock, no allocation)
//! once [`resolve_all`] has run, except [`resolve_all`] itself.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicPtr, Ordering};

/// An error number, as the kernel returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub c_int);

impl Errno {
    /// The calling thread's `errno`.
    pub fn last() -> Errno {
        Errno(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        )
    }

    pub fn of(error: &std::io::Error) -> Errno {
        Errno(error.raw_os_error().unwrap_or(libc::EIO))
    }

    /// Sets `errno` and returns -1, as a failing libc call does.
    pub fn fail(self) -> c_int {
        set_errno(self.0);
        -1
    }
}

pub fn set_errno(value: c_int) {
    // SAFETY: `__errno_location` returns the calling thread's `errno`, valid for the thread's
    // life.
    unsafe { *libc::__errno_location() = value };
}

/// A `struct stat` of zeros, to fill in.
pub fn zeroed_stat() -> libc::stat {
    // SAFETY: `stat` is plain integers (and padding): all zeros is a valid value.
    unsafe { std::mem::zeroed() }
}

/// A `struct statx` of zeros, to fill in.
pub fn zeroed_statx() -> libc::statx {
    // SAFETY: `statx` is plain integers (and padding): all zeros is a valid value.
    unsafe { std::mem::zeroed() }
}

/// A `struct dirent64` of zeros, to fill in.
pub fn zeroed_dirent() -> libc::dirent64 {
    // SAFETY: `dirent64` is integers and a byte array: all zeros is a valid value.
    unsafe { std::mem::zeroed() }
}

fn result(value: libc::c_long) -> Result<libc::c_long, Errno> {
    if value < 0 {
        Err(Errno::last())
    } else {
        Ok(value)
    }
}

/// `fstatat(dirfd, path, flags)` by system call.
pub fn stat_at(dirfd: RawFd, path: &CStr, flags: c_int) -> Result<libc::stat, Errno> {
    let mut buffer = zeroed_stat();
    // SAFETY: `path` is a C string and `buffer` a writable `struct stat`, both valid for the
    // call; the kernel writes only the buffer.
    result(unsafe {
        libc::syscall(
            libc::SYS_newfstatat,
            dirfd,
            path.as_ptr(),
            &mut buffer as *mut libc::stat,
            flags,
        )
    })?;
    Ok(buffer)
}

/// `fstat(fd)` by system call.
pub fn stat_descriptor(fd: RawFd) -> Result<libc::stat, Errno> {
    let mut buffer = zeroed_stat();
    // SAFETY: `buffer` is a writable `struct stat` valid for the call.
    result(unsafe { libc::syscall(libc::SYS_fstat, fd, &mut buffer as *mut libc::stat) })?;
    Ok(buffer)
}

/// `openat(dirfd, path, flags, mode)` by system call.
pub fn open_at(
    dirfd: RawFd,
    path: &CStr,
    flags: c_int,
    mode: libc::mode_t,
) -> Result<RawFd, Errno> {
    // SAFETY: `path` is a C string valid for the call; the new descriptor is the caller's.
    result(unsafe { libc::syscall(libc::SYS_openat, dirfd, path.as_ptr(), flags, mode) })
        .map(|fd| fd as RawFd)
}

/// `close(fd)` by system call.
pub fn close(fd: RawFd) {
    // SAFETY: closing a descriptor this module's caller owns has no memory effect.
    unsafe { libc::syscall(libc::SYS_close, fd) };
}

/// The raw system calls the pass-through of the `stat` family makes, with the caller's
/// pointers, exactly as glibc (2.33 and later, x86_64) makes them.
pub mod raw {
    use super::*;

    /// # Safety
    /// `path` and `buffer` as for `fstatat(2)`.
    pub unsafe fn newfstatat(
        dirfd: c_int,
        path: *const c_char,
        buffer: *mut c_void,
        flags: c_int,
    ) -> c_int {
        // SAFETY: the caller passes what it would pass to glibc's `fstatat`.
        unsafe { libc::syscall(libc::SYS_newfstatat, dirfd, path, buffer, flags) as c_int }
    }

    /// # Safety
    /// `buffer` as for `fstat(2)`.
    pub unsafe fn fstat(fd: c_int, buffer: *mut c_void) -> c_int {
        if fd < 0 {
            return Errno(libc::EBADF).fail();
        }
        // SAFETY: the caller passes what it would pass to glibc's `fstat`.
        unsafe { libc::syscall(libc::SYS_fstat, fd, buffer) as c_int }
    }

    /// # Safety
    /// The paths as for `renameat2(2)`. (glibc's `renameat2` is younger than some glibc this
    /// may run on: the system call is made directly.)
    pub unsafe fn renameat2(
        old_dirfd: c_int,
        old: *const c_char,
        new_dirfd: c_int,
        new: *const c_char,
        flags: libc::c_uint,
    ) -> c_int {
        // SAFETY: the caller passes what it would pass to glibc's `renameat2`.
        unsafe {
            libc::syscall(libc::SYS_renameat2, old_dirfd, old, new_dirfd, new, flags) as c_int
        }
    }

    /// # Safety
    /// `path` as for `mknodat(2)`. (glibc before 2.33 has no `mknod` function to look up: its
    /// headers make it `__xmknod`.)
    pub unsafe fn mknodat(
        dirfd: c_int,
        path: *const c_char,
        mode: libc::mode_t,
        device: libc::dev_t,
    ) -> c_int {
        // SAFETY: the caller passes what it would pass to glibc's `mknodat`.
        unsafe { libc::syscall(libc::SYS_mknodat, dirfd, path, mode, device) as c_int }
    }

    /// # Safety
    /// `path` and `buffer` as for `statx(2)`.
    pub unsafe fn statx(
        dirfd: c_int,
        path: *const c_char,
        flags: c_int,
        mask: libc::c_uint,
        buffer: *mut c_void,
    ) -> c_int {
        // SAFETY: the caller passes what it would pass to glibc's `statx`.
        unsafe { libc::syscall(libc::SYS_statx, dirfd, path, flags, mask, buffer) as c_int }
    }
}

/// Writes `message` to stderr and aborts: for a glibc function that is not there.
fn missing(name: &CStr) -> ! {
    let write = |bytes: &[u8]| {
        // SAFETY: writing a valid buffer to descriptor 2.
        unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
    };
    write(b"pyferry: error: glibc has no `");
    write(name.to_bytes());
    write(b"`\n");
    std::process::abort()
}

/// The next definition of `name` after the executable's (glibc's), looked up once.
fn next_definition(cell: &AtomicPtr<c_void>, name: &CStr) -> *mut c_void {
    let known = cell.load(Ordering::Acquire);
    if !known.is_null() {
        return known;
    }
    // SAFETY: `name` is a C string; `RTLD_NEXT` from the executable searches the objects loaded
    // after it, which is where glibc's definitions are.
    let found = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
    if found.is_null() {
        missing(name);
    }
    cell.store(found, Ordering::Release);
    found
}

/// Declares `real::NAME()`: glibc's own `NAME`, as a typed function pointer.
macro_rules! real_functions {
    ($($name:ident: fn($($argument:ty),*) -> $result:ty;)*) => {
        /// glibc's own definitions of the functions the archive filesystem interposes.
        #[allow(non_snake_case, non_upper_case_globals, dead_code)]
        pub mod real {
            use super::*;
            $(
                pub fn $name() -> unsafe extern "C" fn($($argument),*) -> $result {
                    static CELL: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
                    let pointer = next_definition(
                        &CELL,
                        // SAFETY: the literal ends with its NUL and has no other.
                        unsafe { CStr::from_bytes_with_nul_unchecked(concat!(stringify!($name), "\0").as_bytes()) },
                    );
                    // SAFETY: `dlsym` found glibc's `$name`, whose C signature this is.
                    unsafe { std::mem::transmute::<*mut c_void, unsafe extern "C" fn($($argument),*) -> $result>(pointer) }
                }
            )*

            /// Looks every function up now (before threads and children exist), so that none is
            /// looked up later between `fork` and `exec`.
            pub fn resolve_all() {
                $( let _ = $name(); )*
            }
        }
    };
}

type Dir = c_void;
type File = libc::FILE;
type Mode = libc::mode_t;
type Path = *const c_char;

real_functions! {
    open: fn(Path, c_int, Mode) -> c_int;
    open64: fn(Path, c_int, Mode) -> c_int;
    openat: fn(c_int, Path, c_int, Mode) -> c_int;
    openat64: fn(c_int, Path, c_int, Mode) -> c_int;
    __open_2: fn(Path, c_int) -> c_int;
    __open64_2: fn(Path, c_int) -> c_int;
    __openat_2: fn(c_int, Path, c_int) -> c_int;
    __openat64_2: fn(c_int, Path, c_int) -> c_int;
    creat: fn(Path, Mode) -> c_int;
    creat64: fn(Path, Mode) -> c_int;
    fopen: fn(Path, *const c_char) -> *mut File;
    fopen64: fn(Path, *const c_char) -> *mut File;
    freopen: fn(Path, *const c_char, *mut File) -> *mut File;
    freopen64: fn(Path, *const c_char, *mut File) -> *mut File;
    fdopen: fn(c_int, *const c_char) -> *mut File;
    fileno: fn(*mut File) -> c_int;
    opendir: fn(Path) -> *mut Dir;
    fdopendir: fn(c_int) -> *mut Dir;
    readdir: fn(*mut Dir) -> *mut libc::dirent64;
    readdir64: fn(*mut Dir) -> *mut libc::dirent64;
    readdir_r: fn(*mut Dir, *mut libc::dirent64, *mut *mut libc::dirent64) -> c_int;
    readdir64_r: fn(*mut Dir, *mut libc::dirent64, *mut *mut libc::dirent64) -> c_int;
    closedir: fn(*mut Dir) -> c_int;
    dirfd: fn(*mut Dir) -> c_int;
    rewinddir: fn(*mut Dir) -> ();
    telldir: fn(*mut Dir) -> libc::c_long;
    seekdir: fn(*mut Dir, libc::c_long) -> ();
    scandir: fn(Path, *mut c_void, *mut c_void, *mut c_void) -> c_int;
    scandir64: fn(Path, *mut c_void, *mut c_void, *mut c_void) -> c_int;
    access: fn(Path, c_int) -> c_int;
    faccessat: fn(c_int, Path, c_int, c_int) -> c_int;
    euidaccess: fn(Path, c_int) -> c_int;
    eaccess: fn(Path, c_int) -> c_int;
    readlink: fn(Path, *mut c_char, usize) -> isize;
    readlinkat: fn(c_int, Path, *mut c_char, usize) -> isize;
    realpath: fn(Path, *mut c_char) -> *mut c_char;
    __realpath_chk: fn(Path, *mut c_char, usize) -> *mut c_char;
    canonicalize_file_name: fn(Path) -> *mut c_char;
    dlopen: fn(Path, c_int) -> *mut c_void;
    mkdir: fn(Path, Mode) -> c_int;
    mkdirat: fn(c_int, Path, Mode) -> c_int;
    rmdir: fn(Path) -> c_int;
    unlink: fn(Path) -> c_int;
    unlinkat: fn(c_int, Path, c_int) -> c_int;
    rename: fn(Path, Path) -> c_int;
    renameat: fn(c_int, Path, c_int, Path) -> c_int;
    link: fn(Path, Path) -> c_int;
    linkat: fn(c_int, Path, c_int, Path, c_int) -> c_int;
    symlink: fn(Path, Path) -> c_int;
    symlinkat: fn(Path, c_int, Path) -> c_int;
    truncate: fn(Path, libc::off_t) -> c_int;
    truncate64: fn(Path, libc::off64_t) -> c_int;
    chmod: fn(Path, Mode) -> c_int;
    fchmodat: fn(c_int, Path, Mode, c_int) -> c_int;
    chown: fn(Path, libc::uid_t, libc::gid_t) -> c_int;
    lchown: fn(Path, libc::uid_t, libc::gid_t) -> c_int;
    fchownat: fn(c_int, Path, libc::uid_t, libc::gid_t, c_int) -> c_int;
    utime: fn(Path, *const c_void) -> c_int;
    utimes: fn(Path, *const c_void) -> c_int;
    lutimes: fn(Path, *const c_void) -> c_int;
    utimensat: fn(c_int, Path, *const c_void, c_int) -> c_int;
    futimesat: fn(c_int, Path, *const c_void) -> c_int;
    mkfifo: fn(Path, Mode) -> c_int;
    mkfifoat: fn(c_int, Path, Mode) -> c_int;
    listxattr: fn(Path, *mut c_char, usize) -> isize;
    llistxattr: fn(Path, *mut c_char, usize) -> isize;
    getxattr: fn(Path, Path, *mut c_void, usize) -> isize;
    lgetxattr: fn(Path, Path, *mut c_void, usize) -> isize;
    setxattr: fn(Path, Path, *const c_void, usize, c_int) -> c_int;
    lsetxattr: fn(Path, Path, *const c_void, usize, c_int) -> c_int;
    removexattr: fn(Path, Path) -> c_int;
    lremovexattr: fn(Path, Path) -> c_int;
    dup: fn(c_int) -> c_int;
    dup2: fn(c_int, c_int) -> c_int;
    dup3: fn(c_int, c_int, c_int) -> c_int;
    fcntl: fn(c_int, c_int, usize) -> c_int;
}
