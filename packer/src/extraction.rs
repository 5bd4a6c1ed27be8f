//! Which packages are extracted to real files at run time: only those named with
//! `--extract PACKAGE`.
//!
//! Every file of the archive is readable at its path inside the running application, by Python
//! and by C code, and a library loaded by path (`ctypes.CDLL`, `cffi`) is loaded from memory
//! (docs/architecture.md, "The archive as a filesystem"). What still needs a file on a real
//! filesystem is what the kernel itself opens: a program a package runs with `subprocess`
//! (`execve` is not a library call), or a library that makes its own system calls. The packer
//! cannot tell whether a package runs the programs it ships, so it names them
//! ([`bundled_programs`]) and leaves the choice to `--extract`. (It used to extract packages
//! whose code builds paths from `__file__`, or that ship a library no extension links: both
//! are served from the archive now.)
//!
//! `--extract PACKAGE` writes the package, with its `PACKAGE.libs/`, once into a private cache
//! at its first import (see `launcher/src/importer/extract.rs`).

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;

use crate::tree::TreeFile;

/// Packages to extract, each with the reason, for the packer's log.
pub fn packages_to_extract(requested: &[String]) -> BTreeMap<String, String> {
    requested
        .iter()
        .map(|package| (package.clone(), "named with --extract".to_string()))
        .collect()
}

/// The top-level package of an archive path, if it is inside one (not `*.dist-info`,
/// `*.libs` or a top-level module).
fn top_level_package(name: &str) -> Option<&str> {
    let (top, _) = name.split_once('/')?;
    (!top.contains('.')).then_some(top)
}

/// Whether the file at `file` is a program: an ELF executable (it names a program interpreter,
/// or is not a shared object), or a file with an execute bit that starts with `#!`. Shared
/// libraries and extension modules are not.
fn is_program(file: &TreeFile) -> bool {
    if pyferry_payload::is_shared_object(&file.name) || file.name.ends_with(".py") {
        return false;
    }
    let Ok(mut opened) = std::fs::File::open(&file.path) else {
        return false;
    };
    let mut head = [0u8; 64];
    let Ok(read) = opened.read(&mut head) else {
        return false;
    };
    let head = &head[..read];
    if head.starts_with(b"\x7fELF") {
        return match goblin::elf::Elf::parse(&std::fs::read(&file.path).unwrap_or_default()) {
            Ok(elf) => {
                elf.interpreter.is_some() || elf.header.e_type == goblin::elf::header::ET_EXEC
            }
            Err(_) => false,
        };
    }
    let executable = opened
        .metadata()
        .is_ok_and(|metadata| metadata.permissions().mode() & 0o111 != 0);
    executable && head.starts_with(b"#!")
}

/// The programs packages ship, by package (not those named with `--extract`): each may need
/// `--extract PACKAGE` if the application runs it.
pub fn bundled_programs(files: &[TreeFile], extracted: &[String]) -> BTreeMap<String, String> {
    let mut programs: BTreeMap<String, String> = BTreeMap::new();
    for file in files {
        let Some(package) = top_level_package(&file.name) else {
            continue;
        };
        if programs.contains_key(package) || extracted.iter().any(|name| name == package) {
            continue;
        }
        if is_program(file) {
            programs.insert(package.to_string(), file.name.clone());
        }
    }
    programs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree_file(dir: &std::path::Path, name: &str, contents: &[u8], mode: u32) -> TreeFile {
        let path = dir.join(name.replace('/', "_"));
        std::fs::write(&path, contents).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        TreeFile {
            path,
            name: name.to_string(),
        }
    }

    #[test]
    fn programs_are_named_and_data_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let own = std::fs::read("/proc/self/exe").expect("this test's executable");
        let files = vec![
            tree_file(dir.path(), "tool/bin/run.sh", b"#!/bin/sh\necho\n", 0o755),
            tree_file(dir.path(), "data/readme.sh", b"#!/bin/sh\n", 0o644),
            tree_file(dir.path(), "data/table.csv", b"a,b\n", 0o755),
            tree_file(dir.path(), "native/bin/program", &own, 0o755),
            tree_file(dir.path(), "named/bin/program", &own, 0o755),
            tree_file(dir.path(), "top.sh", b"#!/bin/sh\n", 0o755),
        ];
        let programs = bundled_programs(&files, &["named".to_string()]);
        assert_eq!(
            programs.into_iter().collect::<Vec<_>>(),
            vec![
                ("native".to_string(), "native/bin/program".to_string()),
                ("tool".to_string(), "tool/bin/run.sh".to_string()),
            ]
        );
    }
}
