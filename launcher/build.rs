//! Link settings for the launcher executable.
//!
//! The launcher embeds the portable CPython that `runtime/build` makes (docs/runtime.md):
//! `lib/python.o`, one position-independent object holding CPython, its built-in extension
//! modules and the C libraries they use, whose only global symbols are the C API. This script
//! links it whole, with `link-args.txt` (gcc's `libgcc.a`, so that glibc's libm keeps `log`,
//! `exp`... from zig's compiler_rt, and glibc's own libraries), and exports the executable's
//! global symbols dynamically (`-rdynamic`): the C API, so that extension modules `dlopen`ed
//! later resolve `PyLong_FromLong` & co. against the executable, and the glibc entry points of
//! the archive filesystem (`src/archive_fs/exports.rs`), so that they come first for the
//! extension modules and libraries the dynamic loader loads. zig's linker takes neither a
//! dynamic list nor a version script's `local: *` for an executable, so `-rdynamic` is the
//! control; the runtime's C libraries (OpenSSL, zlib, SQLite...) are local inside `python.o`
//! and never interpose on a wheel's own copies.
//!
//! The runtime's directory comes from `PYFERRY_CPYTHON` (`.cargo/config.toml`:
//! `target/toolchain/cpython`, which `make toolchain` links). The final link is zig cc for
//! glibc 2.17 (`target/toolchain/linker`), which makes a PIE.

use std::env;
use std::fs;
use std::path::PathBuf;

const ARCHIVE_FS_EXPORTS: &str = "src/archive_fs/exports.rs";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=pyo3-static-python.cfg");
    println!("cargo:rerun-if-changed={ARCHIVE_FS_EXPORTS}");
    println!("cargo:rerun-if-env-changed=PYFERRY_CPYTHON");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        // Other platforms (FreeBSD) are compiled by `make check-freebsd`, never linked here.
        return;
    }
    let runtime = runtime_dir();
    let object = runtime.join("lib/python.o");
    let link_args = runtime.join("link-args.txt");
    println!("cargo:rerun-if-changed={}", object.display());
    println!("cargo:rerun-if-changed={}", link_args.display());
    check_archive_fs_exports();

    println!("cargo:rustc-link-arg={}", object.display());
    let arguments = fs::read_to_string(&link_args)
        .unwrap_or_else(|error| panic!("read `{}`: {error}", link_args.display()));
    for argument in arguments
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
    {
        println!("cargo:rustc-link-arg={argument}");
    }
    println!("cargo:rustc-link-arg-bins=-rdynamic");
}

/// The runtime's directory, with a one-line explanation when it is missing.
fn runtime_dir() -> PathBuf {
    let Some(dir) = env::var_os("PYFERRY_CPYTHON").map(PathBuf::from) else {
        panic!("PYFERRY_CPYTHON is not set: build with the workspace's .cargo/config.toml, or run `make build`");
    };
    if !dir.join("lib/python.o").is_file() {
        panic!(
            "`{}` holds no built runtime (lib/python.o): run `make toolchain` (it builds CPython from source once, then finds it in its cache)",
            dir.display()
        );
    }
    dir
}

/// The archive filesystem's functions must be exported: `-rdynamic` exports every global
/// symbol, and `pub unsafe extern "C" fn` with `#[no_mangle]` is global. Checked here so that a
/// renamed file fails the build rather than the interposition.
fn check_archive_fs_exports() {
    let source = fs::read_to_string(ARCHIVE_FS_EXPORTS)
        .unwrap_or_else(|error| panic!("read {ARCHIVE_FS_EXPORTS}: {error}"));
    let count = source
        .lines()
        .filter(|line| line.starts_with("pub unsafe extern \"C\" fn "))
        .count();
    assert!(
        count > 50,
        "only {count} exported functions found in {ARCHIVE_FS_EXPORTS}"
    );
}
