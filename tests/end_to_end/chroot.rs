//! The app runs where nothing but glibc exists: a chroot holding only glibc's shared objects and
//! `/proc`. Needs root (CI runs as root); elsewhere the test says so and passes vacuously.

use std::path::Path;
use std::process::Command;

use pyferry_tests::{is_root, run, Scratch};

/// Builds a root directory with glibc's `.so` files (what `dpkg -L libc6` lists) plus `extra`
/// host libraries, and an empty `/proc` to mount on.
pub fn glibc_root(root: &Path, extra: &[&str]) {
    std::fs::create_dir_all(root).expect("create the root");
    // Mirror the host's merged-/usr links (`/lib -> usr/lib`...) so copies land where the loader
    // looks.
    for link in ["lib", "lib64", "lib32", "libx32", "bin", "sbin"] {
        let host = Path::new("/").join(link);
        if let Ok(target) = std::fs::read_link(&host) {
            std::fs::create_dir_all(root.join(&target)).expect("create link target");
            std::os::unix::fs::symlink(&target, root.join(link)).expect("symlink");
        }
    }
    let listing = run(Command::new("dpkg").args(["-L", "libc6"])).success();
    let mut files: Vec<String> = listing
        .stdout
        .lines()
        .filter(|line| {
            line.contains(".so") && (line.starts_with("/lib") || line.starts_with("/usr/lib"))
        })
        .map(str::to_string)
        .collect();
    files.extend(extra.iter().map(|name| name.to_string()));
    for file in files {
        let listed = Path::new(&file);
        if !listed.exists() || listed.is_dir() {
            continue;
        }
        // Copy the contents both where the package lists the file and where it really is
        // (through symbolic links), so every name the loader may use resolves.
        let real = std::fs::canonicalize(listed).expect("canonicalize");
        for path in [listed, real.as_path()] {
            let inside = root.join(path.strip_prefix("/").expect("absolute"));
            std::fs::create_dir_all(inside.parent().expect("parent")).expect("create dirs");
            if !inside.exists() {
                std::fs::copy(listed, &inside).expect("copy library");
            }
        }
    }
    std::fs::create_dir_all(root.join("proc")).expect("create proc");
}

/// Runs `/app.bin ARGS` inside `root` in a private mount namespace with `/proc` mounted.
pub fn run_in_root(root: &Path, args: &str) -> pyferry_tests::Finished {
    run_in_root_with(root, args, &[])
}

/// [`run_in_root`] with environment variables.
pub fn run_in_root_with(
    root: &Path,
    args: &str,
    environment: &[(&str, &str)],
) -> pyferry_tests::Finished {
    let script = format!(
        "mount -t proc proc {root}/proc && exec chroot {root} /app.bin {args}",
        root = root.display()
    );
    run(Command::new("unshare")
        .args(["--mount", "--fork", "sh", "-c", &script])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(environment.iter().copied()))
}

#[test]
fn runs_in_a_chroot_with_only_glibc() {
    if !is_root() {
        eprintln!("skipped: the chroot test needs root");
        return;
    }
    let scratch = Scratch::new();
    let app = scratch.packed_app(
        &[(
            "__main__.py",
            "import sys, os, json, decimal, hashlib, importlib.metadata\nprint(json.dumps({'ok': sorted(os.listdir('/'))}))\nprint(sys.executable, sys.path)\nprint(decimal.Decimal('1.1') + decimal.Decimal('2.2'))\nprint(hashlib.sha256(b'x').hexdigest()[:12])\n",
        )],
        &[],
    );
    let root = scratch.path("root");
    glibc_root(&root, &[]);
    std::fs::copy(&app, root.join("app.bin")).expect("copy app");
    assert!(!root.join("usr/lib/python3.11").exists() && !root.join("usr/bin/python3").exists());
    let finished = run_in_root(&root, "");
    assert_eq!(finished.code, Some(0), "{finished:#?}");
    let lines: Vec<&str> = finished.stdout.lines().collect();
    assert!(
        lines[0].starts_with("{\"ok\": [") && lines[0].contains("\"app.bin\""),
        "{}",
        finished.stdout
    );
    assert!(!lines[0].contains("python"), "{}", finished.stdout);
    assert_eq!(lines[1], "/app.bin ['/app.bin']");
    assert_eq!(lines[2], "3.3");
    assert_eq!(lines[3], "2d711642b726");
}
