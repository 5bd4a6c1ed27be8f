//! Code that reads its package's files by path, loads a library by path, or hands a path to
//! C: served from the archive, with nothing written (real wheels: certifi's `cacert.pem` to
//! `ssl`, babel's locale data next to `__file__`, llvmlite's library through `ctypes`). Packages
//! named with `--extract` are extracted once into a private, content-addressed cache and
//! imported from there: the cache's rules are tested here too.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use pyferry_tests::{
    is_root, pip_install, pyferry_command, run, run_on_a_read_only_root, write_tree, Scratch,
};

const PROBE: &str = r#"
import os, ssl, sys
import certifi
path = certifi.where()
print("certifi", os.path.isfile(path), path.startswith(sys.executable))
context = ssl.create_default_context(cafile=path)
print("ssl", context.cert_store_stats()["x509_ca"] > 100)
from babel import Locale
print("babel", Locale("fr").display_name, Locale.parse("de_DE").territories["FR"])
import llvmlite.binding as llvm
llvm.initialize()
llvm.initialize_native_target()
print("llvmlite", llvm.llvm_version_info >= (14,))
import json
print("in memory", json.__file__.startswith(sys.executable))
"#;

/// What the probe prints when certifi is served from the archive.
const EXPECTED: &str =
    "certifi True True\nssl True\nbabel français Frankreich\nllvmlite True\nin memory True\n";

/// What it prints when certifi is extracted (`--extract certifi`).
const EXPECTED_EXTRACTED: &str =
    "certifi True False\nssl True\nbabel français Frankreich\nllvmlite True\nin memory True\n";

const REQUIREMENTS: &[&str] = &["certifi==2024.2.2", "babel==2.16.0", "llvmlite==0.43.0"];

/// The probe with certifi, babel and llvmlite, packed once as it is and once with `--extract`
/// for certifi and llvmlite; the packer's stderr for each.
struct Apps {
    scratch: Scratch,
    served: PathBuf,
    served_log: String,
    extracted: PathBuf,
    extracted_log: String,
}

fn apps() -> &'static Apps {
    static APPS: OnceLock<Apps> = OnceLock::new();
    APPS.get_or_init(|| {
        let scratch = Scratch::new();
        let dir = scratch.path("app");
        pip_install(&dir, REQUIREMENTS);
        write_tree(&dir, &[("__main__.py", PROBE)]);
        let pack = |name: &str, extra: &[&str]| {
            let exe = scratch.path(name);
            let mut command = pyferry_command(["pack"]);
            command.arg(&dir).arg("-o").arg(&exe).args(extra);
            let packed = run(&mut command).success();
            (exe, packed.stderr)
        };
        let (served, served_log) = pack("served.bin", &[]);
        let (extracted, extracted_log) = pack(
            "extracted.bin",
            &["--extract", "certifi", "--extract", "llvmlite"],
        );
        Apps {
            scratch,
            served,
            served_log,
            extracted,
            extracted_log,
        }
    })
}

/// The app with certifi and llvmlite extracted, for the cache's rules.
fn app() -> (&'static Scratch, &'static PathBuf) {
    let apps = apps();
    (&apps.scratch, &apps.extracted)
}

fn private_dir(path: &std::path::Path) {
    std::fs::create_dir_all(path).expect("mkdir");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).expect("chmod");
}

#[test]
fn packer_extracts_only_the_packages_it_is_told_to() {
    let apps = apps();
    assert!(
        !apps.served_log.contains("served from real files"),
        "{}",
        apps.served_log
    );
    for package in ["certifi", "llvmlite"] {
        assert!(
            apps.extracted_log.contains(&format!(
                "`{package}` will be served from real files, extracted once at run time: named with --extract"
            )),
            "{}",
            apps.extracted_log
        );
    }
    assert!(
        !apps.extracted_log.contains("`babel` will be served"),
        "{}",
        apps.extracted_log
    );
}

#[test]
fn certifi_babel_and_llvmlite_run_from_the_archive_with_nothing_extracted() {
    let apps = apps();
    let cache = apps.scratch.path("cache-unused");
    private_dir(&cache);
    let finished = run(Command::new(&apps.served).env("PYFERRY_CACHE_DIR", &cache)).success();
    assert_eq!(finished.stdout, EXPECTED);
    assert_eq!(
        std::fs::read_dir(&cache).expect("list").count(),
        0,
        "something was extracted"
    );
}

/// A read-only root, no `HOME`, `/tmp` noexec: the app runs and creates no file (`strace`).
#[test]
fn read_only_root_without_home_runs_them_and_nothing_is_created() {
    let Some((finished, writes)) = run_on_a_read_only_root(&apps().served, &[]) else {
        return;
    };
    assert_eq!(finished.code, Some(0), "{finished:#?}");
    assert_eq!(finished.stdout, EXPECTED);
    assert!(writes.is_empty(), "the run wrote:\n{}", writes.join("\n"));
}

#[test]
fn certifi_and_llvmlite_work_from_the_cache_when_extracted() {
    let (scratch, exe) = app();
    let cache = scratch.path("cache-a");
    private_dir(&cache);
    let first = run(Command::new(exe).env("PYFERRY_CACHE_DIR", &cache)).success();
    assert_eq!(first.stdout, EXPECTED_EXTRACTED);
    let entries: Vec<String> = std::fs::read_dir(&cache)
        .expect("list")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    for entry in &entries {
        let mode = std::fs::metadata(cache.join(entry))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{entry}");
    }
    // The second run reuses the extraction.
    let second = run(Command::new(exe).env("PYFERRY_CACHE_DIR", &cache)).success();
    assert_eq!(second.stdout, EXPECTED_EXTRACTED);
}

#[test]
fn cache_open_to_others_is_refused_with_a_hint() {
    let (scratch, exe) = app();
    let cache = scratch.path("cache-open");
    std::fs::create_dir_all(&cache).expect("mkdir");
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let finished = run(Command::new(exe).env("PYFERRY_CACHE_DIR", &cache));
    assert_eq!(finished.code, Some(1));
    let last = finished.stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("cannot import `certifi`: it needs real files")
            && last.contains("is open to other users (mode 777); refusing it"),
        "{last}"
    );
    assert!(last.contains("hint: set PYFERRY_CACHE_DIR"), "{last}");
}

#[test]
fn planted_symlink_in_the_cache_is_not_followed() {
    let (scratch, exe) = app();
    let cache = scratch.path("cache-planted");
    private_dir(&cache);
    // Learn the directory name a clean run uses, then replace it with a symbolic link.
    run(Command::new(exe).env("PYFERRY_CACHE_DIR", &cache)).success();
    let certifi_dir = std::fs::read_dir(&cache)
        .expect("list")
        .map(|entry| entry.expect("entry").path())
        .find(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("certifi-"))
        })
        .expect("certifi extracted");
    let elsewhere = scratch.path("attacker");
    std::fs::rename(&certifi_dir, &elsewhere).expect("move");
    std::os::unix::fs::symlink(&elsewhere, &certifi_dir).expect("symlink");
    let finished = run(Command::new(exe).env("PYFERRY_CACHE_DIR", &cache));
    assert_eq!(finished.code, Some(1));
    assert!(
        finished
            .stderr
            .contains("is not a directory (a symbolic link?); refusing it"),
        "{}",
        finished.stderr
    );
}

#[test]
fn cache_owned_by_another_user_is_refused() {
    if !is_root() {
        eprintln!("skipped: needs root to create a directory owned by another uid");
        return;
    }
    let (scratch, exe) = app();
    let cache = scratch.path("cache-foreign");
    private_dir(&cache);
    run(Command::new("chown").args(["12345:12345"]).arg(&cache)).success();
    let finished = run(Command::new(exe).env("PYFERRY_CACHE_DIR", &cache));
    assert_eq!(finished.code, Some(1));
    assert!(
        finished
            .stderr
            .contains("is owned by uid 12345, not by this user (uid 0); refusing it"),
        "{}",
        finished.stderr
    );
}

#[test]
fn tmp_noexec_does_not_matter() {
    if !is_root() {
        eprintln!("skipped: needs root for a mount namespace");
        return;
    }
    let (scratch, exe) = app();
    // The cache sits beside the executable, both reached through /mnt: the scratch directory
    // itself may lie under /tmp.
    let cache = scratch.path("cache-noexec-tmp");
    private_dir(&cache);
    let script = format!(
        "mount --make-rprivate / && mount --bind {dir} /mnt && mount -t tmpfs -o noexec tmpfs /tmp && PYFERRY_CACHE_DIR=/mnt/{cache} exec /mnt/{name}",
        dir = exe.parent().expect("parent").display(),
        cache = cache.file_name().expect("name").to_string_lossy(),
        name = exe.file_name().expect("name").to_string_lossy(),
    );
    let finished = run(Command::new("unshare").args(["--mount", "sh", "-c", &script]));
    assert_eq!(finished.code, Some(0), "{finished:#?}");
    assert_eq!(finished.stdout, EXPECTED_EXTRACTED);
}

#[test]
fn packer_names_the_programs_packages_ship_with_a_hint() {
    let scratch = Scratch::new();
    let app = scratch.path("app");
    write_tree(
        &app,
        &[
            ("__main__.py", ""),
            ("tool/__init__.py", ""),
            ("tool/bin/run.sh", "#!/bin/sh\necho ran\n"),
            ("data/__init__.py", ""),
            ("data/notes.sh", "#!/bin/sh\n"),
        ],
    );
    std::fs::set_permissions(
        app.join("tool/bin/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    let mut command = pyferry_command(["pack"]);
    command.arg(&app).arg("-o").arg(scratch.path("tool.bin"));
    let packed = run(&mut command).success();
    assert!(
        packed.stderr.contains("`tool/bin/run.sh` is a program: a program run with `subprocess` needs a real file; hint: if the application runs it, pack with `--extract tool`"),
        "{}",
        packed.stderr
    );
    assert!(!packed.stderr.contains("notes.sh"), "{}", packed.stderr);
}

#[test]
fn extraction_refuses_entries_that_climb_out_of_the_cache() {
    let scratch = Scratch::new();
    let exe = scratch.packed_app(
        &[
            ("__main__.py", "import pkg\nprint('imported')\n"),
            ("pkg/__init__.py", ""),
            ("pkg/data.txt", "x"),
        ],
        &["--extract", "pkg"],
    );
    // Append a hostile entry the way an attacker with write access to the file would.
    let escaped = scratch.path("ESCAPED.txt");
    let name = format!("pkg/../../../../../../..{}", escaped.display());
    let append = format!("import zipfile\nwith zipfile.ZipFile({:?}, 'a') as z:\n    z.writestr({name:?}, 'owned')\n", exe.display().to_string());
    run(
        Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
            .args(["-c", &append]),
    )
    .success();
    let cache = scratch.path("cache");
    private_dir(&cache);
    let finished = run(Command::new(&exe).env("PYFERRY_CACHE_DIR", &cache));
    assert_eq!(finished.code, Some(1), "{finished:#?}");
    assert!(
        finished
            .stderr
            .contains("would be written outside the cache"),
        "{}",
        finished.stderr
    );
    assert!(!escaped.exists(), "an entry was written outside the cache");
}
