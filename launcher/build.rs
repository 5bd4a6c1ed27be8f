//! Link settings for the launcher executable.
//!
//! pyo3 (through `pyo3-static-python.cfg`) links Debian's `libpython3.11.a` whole into the
//! binary. This script adds what makes that binary a working Python host:
//! - `-no-pie`: Debian's static libpython is not position-independent code;
//! - a dynamic symbol list with every name `libpython3.11.so` exports, so extension modules that
//!   are `dlopen`ed later resolve `PyLong_FromLong` & co. against the executable, without
//!   exporting every Rust symbol as `--export-dynamic` would;
//! - `--exclude-libs` for the bundled zlib and expat, so they never interpose on the `libz.so.1`
//!   that a wheel's own libraries load;
//! - the glibc entry points of the archive filesystem (every `pub unsafe extern "C" fn` of
//!   `src/archive_fs/exports.rs`, and `dlopen`), exported so that they come first for the
//!   extension modules and libraries the dynamic loader loads.

use std::env;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

const SHARED_LIBPYTHON: &str = "/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0";
const STATIC_LIBPYTHON: &str = "/usr/lib/x86_64-linux-gnu/libpython3.11.a";
const ARCHIVE_FS_EXPORTS: &str = "src/archive_fs/exports.rs";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=pyo3-static-python.cfg");
    println!("cargo:rerun-if-changed={SHARED_LIBPYTHON}");
    println!("cargo:rerun-if-changed={STATIC_LIBPYTHON}");
    println!("cargo:rerun-if-changed={ARCHIVE_FS_EXPORTS}");

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let list_path = out_dir.join("python-exports.list");
    let mut symbols = exported_symbols();
    symbols.extend(archive_fs_symbols());
    let mut list = String::from("{\n");
    for symbol in &symbols {
        list.push_str("  ");
        list.push_str(symbol);
        list.push_str(";\n");
    }
    list.push_str("};\n");
    fs::write(&list_path, list).expect("write the dynamic symbol list");

    println!("cargo:rustc-link-arg=-no-pie");
    println!(
        "cargo:rustc-link-arg-bins=-Wl,--dynamic-list={}",
        list_path.display()
    );
    // Unwinding from the static libgcc_eh, so the binary needs no libgcc_s.so.1.
    if let Some(gcc_dir) = gcc_library_dir() {
        println!("cargo:rustc-link-search=native={gcc_dir}");
    }
    println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
    println!("cargo:rustc-link-arg=-Wl,--exclude-libs,libz.a:libexpat.a:libgcc_eh.a");
}

/// The dynamic symbols defined by Debian's shared libpython: exactly the C API that extension
/// modules may import.
fn exported_symbols() -> Vec<String> {
    let output = Command::new("nm")
        .args(["-D", "--defined-only", "--format=posix", SHARED_LIBPYTHON])
        .output()
        .unwrap_or_else(|error| {
            panic!("run `nm` on {SHARED_LIBPYTHON}: {error} (install binutils and libpython3.11)")
        });
    assert!(
        output.status.success(),
        "`nm -D {SHARED_LIBPYTHON}` failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut symbols: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let name = fields.next()?;
            let kind = fields.next()?;
            // Functions and data; skip version definitions (`A`) and the like.
            matches!(kind, "T" | "D" | "B" | "R" | "V" | "W")
                .then(|| name.split('@').next().unwrap_or(name).to_string())
        })
        .collect();
    symbols.sort();
    symbols.dedup();
    assert!(
        symbols.len() > 1000,
        "only {} symbols found in {SHARED_LIBPYTHON}",
        symbols.len()
    );
    symbols
}

/// The functions the archive filesystem defines in place of glibc's: the names of
/// `pub unsafe extern "C" fn` in its exports file, and `dlopen` (written in assembly).
fn archive_fs_symbols() -> Vec<String> {
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return Vec::new();
    }
    let source = fs::read_to_string(ARCHIVE_FS_EXPORTS)
        .unwrap_or_else(|error| panic!("read {ARCHIVE_FS_EXPORTS}: {error}"));
    let mut names: Vec<String> = source
        .lines()
        .filter_map(|line| line.strip_prefix("pub unsafe extern \"C\" fn "))
        .filter_map(|rest| rest.split('(').next())
        .map(str::to_string)
        .collect();
    assert!(
        names.len() > 50,
        "only {} exported functions found in {ARCHIVE_FS_EXPORTS}",
        names.len()
    );
    names.push("dlopen".to_string());
    names
}

/// The directory of gcc's own `libgcc_eh.a` (`gcc -print-file-name`), which depends on gcc's
/// version.
fn gcc_library_dir() -> Option<String> {
    let output = Command::new("gcc")
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(output.stdout).ok()?.trim());
    path.is_absolute()
        .then(|| path.parent().map(|dir| dir.display().to_string()))
        .flatten()
}
