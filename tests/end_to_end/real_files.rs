//! Code that needs real files: packages found at pack time (or named with `--extract`) are
//! extracted once into a private, content-addressed cache and imported from there; everything
//! else stays in memory. Real wheels: certifi (`certifi.where()` is a file `ssl` loads), babel
//! (locale data opened next to `__file__`), llvmlite (`ctypes` loads its bundled library by
//! path).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use pyferry_tests::{is_root, pip_install, pyferry_command, run, write_tree, Scratch};

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

const EXPECTED: &str =
    "certifi True False\nssl True\nbabel français Frankreich\nllvmlite True\nin memory True\n";

/// The probe with certifi, babel and llvmlite, packed once; the packer's stderr too.
fn app() -> &'static (Scratch, PathBuf, String) {
    static APP: OnceLock<(Scratch, PathBuf, String)> = OnceLock::new();
    APP.get_or_init(|| {
        let scratch = Scratch::new();
        let dir = scratch.path("app");
        pip_install(
            &dir,
            &["certifi==2024.2.2", "babel==2.16.0", "llvmlite==0.43.0"],
        );
        write_tree(&dir, &[("__main__.py", PROBE)]);
        let exe = scratch.path("real-files.bin");
        let mut command = pyferry_command(["pack"]);
        command.arg(&dir).arg("-o").arg(&exe);
        let packed = run(&mut command).success();
        (scratch, exe, packed.stderr)
    })
}

fn private_dir(path: &std::path::Path) {
    std::fs::create_dir_all(path).expect("mkdir");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).expect("chmod");
}

#[test]
fn packer_finds_the_packages_that_need_real_files() {
    let stderr = &app().2;
    assert!(
        stderr.contains("`certifi` will be served from real files"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`babel` will be served from real files"),
        "{stderr}"
    );
    assert!(stderr.contains("`llvmlite` will be served from real files, extracted once at run time: `llvmlite/binding/libllvmlite.so` is a library loaded by path"), "{stderr}");
}

#[test]
fn certifi_babel_and_llvmlite_work_from_the_cache() {
    let (scratch, exe, _) = app();
    let cache = scratch.path("cache-a");
    private_dir(&cache);
    let first = run(Command::new(exe).env("PYFERRY_CACHE_DIR", &cache)).success();
    assert_eq!(first.stdout, EXPECTED);
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
    assert_eq!(entries.len(), 3, "{entries:?}");
    for entry in &entries {
        let mode = std::fs::metadata(cache.join(entry))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{entry}");
    }
    // The second run reuses the extraction.
    let second = run(Command::new(exe).env("PYFERRY_CACHE_DIR", &cache)).success();
    assert_eq!(second.stdout, EXPECTED);
}

#[test]
fn cache_open_to_others_is_refused_with_a_hint() {
    let (scratch, exe, _) = app();
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
    let (scratch, exe, _) = app();
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
    let (scratch, exe, _) = app();
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
    let (scratch, exe, _) = app();
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
    assert_eq!(finished.stdout, EXPECTED);
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
