//! `dlopen` of a shared object inside the archive (`ctypes.CDLL("/opt/myapp/pkg/lib.so")`).
//!
//! The exported `dlopen` is a few instructions of assembly: it asks [`route`] which path to
//! open (the caller's, or the memory file an archive object was put in and loaded from), then
//! jumps to glibc's `dlopen` with the caller's return address still on the stack. glibc takes
//! the object that called `dlopen` from that address (its `RUNPATH` is searched for bare
//! names, its namespace used): a plain Rust wrapper would make every `dlopen` of the process
//! look like the launcher's.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Mutex;

use super::{ops, system};

/// glibc's `dlopen`, which the exported one jumps to.
static NEXT_DLOPEN: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

// The exported `dlopen(path, flags)`: on entry the stack pointer is 8 bytes off a 16-byte
// boundary (the caller's return address); two pushes and 8 bytes align it for the call to
// `route`, and undoing them leaves the stack exactly as the caller made it for the jump.
std::arch::global_asm!(
    ".globl dlopen",
    ".type dlopen, @function",
    "dlopen:",
    "push rdi",
    "push rsi",
    "sub rsp, 8",
    "call {route}",
    "add rsp, 8",
    "pop rsi",
    "pop rdi",
    "mov rdi, rax",
    "jmp qword ptr [rip + {next}]",
    ".size dlopen, . - dlopen",
    route = sym route,
    next = sym NEXT_DLOPEN,
);

/// Memory-file paths handed to `dlopen`: they must outlive the call, so each is kept (once)
/// for the life of the process, as its memory file is.
static ROUTED: Mutex<Option<HashMap<CString, CString>>> = Mutex::new(None);

/// The path the exported `dlopen` opens for `path`: the memory file of an archive shared object
/// (loaded now, with its libraries), else `path` itself. Also makes sure [`NEXT_DLOPEN`] is set.
extern "C" fn route(path: *const c_char, flags: c_int) -> *const c_char {
    if NEXT_DLOPEN.load(Ordering::Relaxed).is_null() {
        NEXT_DLOPEN.store(system::real::dlopen() as *mut c_void, Ordering::Relaxed);
    }
    if path.is_null() {
        return path;
    }
    // SAFETY: `dlopen`'s first argument is a C string when it is not null.
    let requested = unsafe { CStr::from_ptr(path) };
    let Some(memory_file) = ops::shared_object(requested, flags) else {
        return path;
    };
    let mut routed = ROUTED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    routed
        .get_or_insert_with(HashMap::new)
        .entry(memory_file.clone())
        .or_insert(memory_file)
        .as_ptr()
}
