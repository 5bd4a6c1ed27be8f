//! Calls into the system's dynamic loader (`dlopen`) for libraries that extension modules need.
//!
//! Libraries are opened `RTLD_NOW | RTLD_LOCAL` and never closed: once loaded, glibc satisfies
//! later `DT_NEEDED` entries naming their SONAME with the loaded copy, which is what makes a
//! wheel's vendored `*.libs/` directory work without any file on disk.
#![allow(unsafe_code)]
#![cfg_attr(target_os = "freebsd", allow(unused_imports))]

use std::ffi::{CStr, CString};

#[cfg(target_os = "freebsd")]
extern "C" {
    /// FreeBSD's `dlopen` of an open descriptor (`<dlfcn.h>`); the libc crate has no binding.
    fn fdlopen(fd: libc::c_int, mode: libc::c_int) -> *mut libc::c_void;
}

/// FreeBSD (untested): memory files are loaded with `fdlopen` on the descriptor that ends the
/// `/dev/fd/N` path, so libraries need no `fdescfs`.
#[cfg(target_os = "freebsd")]
pub fn open_library(path: &str) -> Result<(), String> {
    let fd = crate::native::memfd::descriptor_of(path)?;
    // SAFETY: `fd` is an open memory file this process never closes; the handle is leaked on
    // purpose, as on Linux.
    let handle = unsafe { fdlopen(fd, libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(last_error());
    }
    Ok(())
}

/// Opens the shared object at `path` and keeps it loaded for the life of the process.
#[cfg(not(target_os = "freebsd"))]
pub fn open_library(path: &str) -> Result<(), String> {
    open(path, libc::RTLD_NOW | libc::RTLD_LOCAL)
}

/// `dlopen(path, flags)`, never closed.
#[cfg(not(target_os = "freebsd"))]
fn open(path: &str, flags: libc::c_int) -> Result<(), String> {
    let c_path = CString::new(path).map_err(|_| format!("{path:?} contains a NUL byte"))?;
    // SAFETY: `c_path` is a valid C string; the handle is deliberately leaked (never passed to
    // `dlclose`), so the object's code stays mapped for whoever links against it.
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), flags) };
    if handle.is_null() {
        return Err(last_error());
    }
    Ok(())
}

/// Opens an extension module from memory with CPython's `dlopen` flags (`sys.getdlopenflags()`)
/// just before CPython does: its own `dlopen` then finds it loaded. Opening it here first lets
/// the launcher share its read-only pages before anything can fork (`page_sharing.rs`).
#[cfg(target_os = "linux")]
pub fn open_extension(path: &str, flags: libc::c_int) -> Result<(), String> {
    open(path, flags)
}

fn last_error() -> String {
    // SAFETY: `dlerror` returns NULL or a pointer to a thread-local C string valid until the
    // next dl* call on this thread; it is copied out at once.
    let message = unsafe { libc::dlerror() };
    if message.is_null() {
        return "unknown dlopen error".to_string();
    }
    // SAFETY: non-NULL results of `dlerror` are NUL-terminated strings (see above).
    unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned()
}
