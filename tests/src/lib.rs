//! Helpers for pyferry's end-to-end tests: build real executables with the real `pyferry`
//! binary (built by `make build`), run them as subprocesses, and fetch real wheels from the
//! package index (pinned, cached under `target/test-wheels`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_path_buf()
}

/// `target/release/pyferry`, with its runtime next to it.
pub fn pyferry() -> PathBuf {
    let path = workspace_root().join("target/release/pyferry");
    assert!(
        path.is_file() && path.with_file_name("pyferry-runtime").is_file(),
        "{} or its runtime is missing: run `make build` first (make test does)",
        path.display()
    );
    path
}

/// `target/release/pyferry-launcher`, the bare launcher.
pub fn launcher() -> PathBuf {
    workspace_root().join("target/release/pyferry-launcher")
}

/// What a finished process printed and how it ended.
#[derive(Debug)]
pub struct Finished {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub(crate) fn from_output(output: Output) -> Finished {
        use std::os::unix::process::ExitStatusExt;
        Finished {
            code: output.status.code(),
            signal: output.status.signal(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics with everything printed unless the process exited 0.
    #[track_caller]
    pub fn success(self) -> Finished {
        assert_eq!(self.code, Some(0), "expected success:\n{self:#?}");
        self
    }
}

/// Runs `command` to completion with no stdin. A freshly written executable can be briefly
/// "busy" (`ETXTBSY`) while another test thread's child still holds it open between `fork`
/// and `exec`: that is retried.
pub fn run(command: &mut Command) -> Finished {
    const TEXT_FILE_BUSY: i32 = 26;
    let mut attempts = 0;
    loop {
        match command.stdin(Stdio::null()).output() {
            Ok(output) => return Finished::from_output(output),
            Err(error) if error.raw_os_error() == Some(TEXT_FILE_BUSY) && attempts < 50 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(error) => panic!("cannot run {command:?}: {error}"),
        }
    }
}

/// Runs `command` with no stdin, killing it after `timeout`: `None` when it had to be killed.
pub fn run_with_timeout(command: &mut Command, timeout: std::time::Duration) -> Option<Finished> {
    use std::io::Read;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|pipe| Box::new(pipe) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|pipe| Box::new(pipe) as Box<dyn Read + Send>),
    );
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    status.map(|status| {
        Finished::from_output(Output {
            status,
            stdout,
            stderr,
        })
    })
}

/// A command for `pyferry ARGS`.
pub fn pyferry_command<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut command = Command::new(pyferry());
    command.args(args);
    command
}

/// Writes `files` (archive-relative name, contents) below `root`.
pub fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (name, contents) in files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().expect("a file has a parent")).expect("create dirs");
        std::fs::write(&path, contents).expect("write file");
    }
}

/// `pyferry pack DIR -o OUT EXTRA...`, expected to succeed; returns OUT.
#[track_caller]
pub fn pack(dir: &Path, output: &Path, extra: &[&str]) -> PathBuf {
    let mut command = pyferry_command(["pack"]);
    command.arg(dir).arg("-o").arg(output).args(extra);
    run(&mut command).success();
    output.to_path_buf()
}

/// A scratch directory with an app tree at `app/` and room for outputs.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        let base = workspace_root().join("target/test-scratch");
        std::fs::create_dir_all(&base).expect("create target/test-scratch");
        Scratch {
            dir: tempfile::Builder::new()
                .prefix("e2e-")
                .tempdir_in(base)
                .expect("scratch dir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `files` into `app/` and packs it into `app.bin`.
    #[track_caller]
    pub fn packed_app(&self, files: &[(&str, &str)], extra: &[&str]) -> PathBuf {
        let app = self.path("app");
        write_tree(&app, files);
        pack(&app, &self.path("app.bin"), extra)
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

static PIP: Mutex<()> = Mutex::new(());

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// The directory of cached test wheels, `target/test-wheels`.
pub fn wheel_cache() -> PathBuf {
    workspace_root().join("target/test-wheels")
}

/// The platforms test wheels are chosen for by default: what the executable's launcher can load.
const DEFAULT_PLATFORMS: &[&str] = &[
    "manylinux_2_28_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "any",
];

/// Makes sure the wheels of pinned `requirements` (and their dependencies) are in
/// [`wheel_cache`], downloading them from the package index the first time.
pub fn cache_wheels(requirements: &[&str]) {
    cache_wheels_for("3.11", DEFAULT_PLATFORMS, requirements);
}

/// [`cache_wheels`] for another CPython version (`3.13`) or other platform tags
/// (`manylinux_2_17_aarch64`...).
pub fn cache_wheels_for(python_version: &str, platforms: &[&str], requirements: &[&str]) {
    let _guard = PIP.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    download_into_cache(python_version, platforms, requirements);
}

/// `pip download` for the target tags into the cache: offline first, then from the index.
fn download_into_cache(python_version: &str, platforms: &[&str], requirements: &[&str]) {
    let cache = wheel_cache();
    std::fs::create_dir_all(&cache).expect("create wheel cache");
    let download = |offline: bool| {
        let mut command = Command::new(python());
        command
            .args([
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(["--only-binary=:all:", "--python-version", python_version])
            .args(["--implementation", "cp"])
            .args(
                platforms
                    .iter()
                    .flat_map(|platform| ["--platform", platform]),
            )
            .arg("-d")
            .arg(&cache);
        if offline {
            command.arg("--no-index").arg("--find-links").arg(&cache);
        }
        run(command.args(requirements))
    };
    if download(true).code == Some(0) {
        return;
    }
    let online = download(false);
    assert_eq!(
        online.code,
        Some(0),
        "pip download {requirements:?} failed:\n{online:#?}"
    );
}

/// Installs pinned requirements into `target` with pip, from wheels cached under
/// `target/test-wheels` (downloaded from the package index the first time). Only binary wheels
/// for CPython 3.11 on manylinux x86_64 are accepted.
pub fn pip_install(target: &Path, requirements: &[&str]) {
    let _guard = PIP.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let cache = workspace_root().join("target/test-wheels");
    std::fs::create_dir_all(&cache).expect("create wheel cache");
    let install = || {
        run(Command::new(python())
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args([
                "--root-user-action=ignore",
                "--no-index",
                "--only-binary=:all:",
            ])
            .arg("--find-links")
            .arg(&cache)
            .arg("--target")
            .arg(target)
            .args(requirements))
    };
    if install().code == Some(0) {
        return;
    }
    download_into_cache("3.11", DEFAULT_PLATFORMS, requirements);
    install().success();
}

/// A root directory holding `packages` of Debian `suite` and their dependencies (e.g. trixie's
/// `python3.13`), made once by `tests/debian-root.sh` under `target/debian-roots/SUITE` with
/// apt's state kept apart from the system's. Panics when it cannot be made (it needs the
/// network the first time).
pub fn debian_root(suite: &str, packages: &[&str]) -> PathBuf {
    static ROOTS: Mutex<()> = Mutex::new(());
    let _guard = ROOTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let root = workspace_root().join("target/debian-roots").join(suite);
    std::fs::create_dir_all(root.parent().expect("a parent")).expect("create target/debian-roots");
    let made = run(Command::new(workspace_root().join("tests/debian-root.sh"))
        .arg(suite)
        .arg(&root)
        .args(packages));
    assert_eq!(
        made.code,
        Some(0),
        "tests/debian-root.sh {suite} {packages:?} failed:\n{made:#?}"
    );
    root
}

/// Whether the tests run as root (chroot and mount namespaces need it; CI is root).
pub fn is_root() -> bool {
    run(Command::new("id").arg("-u")).stdout.trim() == "0"
}

/// Runs `exe ARGS` as root in a mount namespace where the root file system is read-only, `/tmp`
/// an empty `noexec` tmpfs and `HOME` unset, under `strace -f`; returns how it ended and the
/// system calls that created, wrote or removed a file or directory (calls that failed,
/// re-opening the process's own memory files through `/proc/self/fd` and opening `/dev/*` do
/// not count). `None`, with a note, when not root.
pub fn run_on_a_read_only_root(exe: &Path, args: &[&str]) -> Option<(Finished, Vec<String>)> {
    if !is_root() {
        eprintln!("skipped: needs root for a mount namespace");
        return None;
    }
    assert!(
        run(Command::new("strace").arg("-V")).code == Some(0),
        "strace is missing (.ci/run installs it)"
    );
    // The app is reached through a bind mount on /mnt: its own directory may lie under /tmp,
    // which the run covers with an empty noexec tmpfs.
    assert!(
        Path::new("/mnt").is_dir(),
        "the run mounts the app's directory on /mnt"
    );
    let script = format!(
        "mount --make-rprivate / && mount --bind {dir} /mnt && mount -t tmpfs -o noexec tmpfs /tmp && mount -o remount,bind,ro / && \
         exec strace -f -qq -e trace=openat,open,creat,mkdir,mkdirat,rename,renameat,renameat2,link,linkat,symlink,symlinkat,unlink,unlinkat \
         env -u HOME -u LD_LIBRARY_PATH /mnt/{name} {args}",
        dir = exe.parent().expect("parent").display(),
        name = exe.file_name().expect("name").to_string_lossy(),
        args = args.join(" "),
    );
    let finished = run(Command::new("unshare").args(["--mount", "sh", "-c", &script]));
    let writes = finished
        .stderr
        .lines()
        .filter(|line| {
            let creates = line.contains("O_CREAT")
                || line.contains("O_WRONLY")
                || line.contains("O_RDWR")
                || line.contains("O_TMPFILE");
            let other = [
                "mkdir", "rename", "link(", "linkat", "symlink", "unlink", "creat(",
            ]
            .iter()
            .any(|call| line.contains(call));
            // Re-opening one of our own memory files through /proc/self/fd is not the disk.
            let ours = line.contains("\"/dev/") || line.contains("\"/proc/self/fd/");
            let failed = line.contains(") = -1 ");
            ((creates && !ours) || other) && !failed
        })
        .map(str::to_string)
        .collect();
    Some((finished, writes))
}

pub mod contained;
pub mod damage;
pub mod sbom_tools;
