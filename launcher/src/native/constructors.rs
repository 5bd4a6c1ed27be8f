//! Running the constructors of a shared object whose constructors were hidden from `dlopen`.
//!
//! An object loaded with a load plan (`pyferry_payload::LoadPlan`) has code that is not in its
//! memory file until the launcher maps it from the executable, which it can only do once
//! `dlopen` has returned. So the plan hides the object's `DT_INIT` and `DT_INIT_ARRAY` from the
//! dynamic loader, and this module calls them afterwards, as glibc would have: `DT_INIT` first,
//! then the array in order, each with `(argc, argv, envp)`. The object's destructors are not
//! hidden: glibc runs them at exit as usual.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int};
use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};

use pyferry_payload::LoadPlan;

/// A constructor's signature, as glibc calls it.
type Constructor = unsafe extern "C" fn(c_int, *mut *mut c_char, *mut *mut c_char);

static ARGC: AtomicI32 = AtomicI32::new(0);
static ARGV: AtomicPtr<*mut c_char> = AtomicPtr::new(std::ptr::null_mut());

/// glibc calls the executable's own constructors with `(argc, argv, envp)`: keep the first two
/// for the objects' constructors.
extern "C" fn remember_arguments(argc: c_int, argv: *mut *mut c_char, _envp: *mut *mut c_char) {
    ARGC.store(argc, Ordering::Relaxed);
    ARGV.store(argv, Ordering::Relaxed);
}

#[used]
#[link_section = ".init_array"]
static REMEMBER_ARGUMENTS: extern "C" fn(c_int, *mut *mut c_char, *mut *mut c_char) =
    remember_arguments;

extern "C" {
    static mut environ: *mut *mut c_char;
}

/// Runs the constructors that `plan` hid, of the object loaded at `bias`.
pub fn run(bias: usize, plan: &LoadPlan) {
    let argc = ARGC.load(Ordering::Relaxed);
    let argv = ARGV.load(Ordering::Relaxed);
    // SAFETY: reading the `environ` pointer, as glibc does when it calls constructors.
    let envp = unsafe { environ };
    if let Some(init) = plan.init {
        // SAFETY: `init` is the object's `DT_INIT` (recorded by the packer from its dynamic
        // section), a function of this signature, now mapped at `bias + init`; the loader
        // would have called it exactly like this, once.
        unsafe {
            let function: Constructor = std::mem::transmute(bias + init as usize);
            function(argc, argv, envp);
        }
    }
    if let Some([array, count]) = plan.init_array {
        let entries = (bias + array as usize) as *const usize;
        for index in 0..count as usize {
            // SAFETY: the array is the object's `DT_INIT_ARRAY` of `count` entries, in its
            // writable segment, relocated by `dlopen` to absolute addresses of functions of this
            // signature; glibc calls them in this order with these arguments.
            unsafe {
                let address = entries.add(index).read();
                if address == 0 || address == usize::MAX {
                    continue;
                }
                let function: Constructor = std::mem::transmute(address);
                function(argc, argv, envp);
            }
        }
    }
}
