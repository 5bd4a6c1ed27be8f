//! Running an executable that might multiply itself, so that a regression fails the test and
//! not the machine: inside a PID namespace of its own (everything in it dies with it), as a user
//! id of the test's own with a kernel limit on that user's processes (`RLIMIT_NPROC`, which root
//! would ignore), under a deadline, while the number of processes in the namespace is sampled.
//! Needs root (CI runs as root).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Finished;

/// How a contained run went.
#[derive(Debug)]
pub struct ContainedRun {
    /// `None` when the deadline passed and the namespace was killed.
    pub finished: Option<Finished>,
    /// The most processes seen at once in the namespace (its init included).
    pub peak_processes: usize,
}

/// What to run and within which limits.
pub struct Containment<'a> {
    /// A user id no other test uses: the process limit counts every process of that user.
    pub user: u32,
    /// The kernel's limit on that user's processes (`fork` fails past it).
    pub max_processes: u32,
    pub timeout: Duration,
    /// Environment variables, on top of a `PATH`, `HOME=/nonexistent` and `TMPDIR=/tmp`.
    pub environment: &'a [(&'a str, &'a str)],
    /// Fed to standard input.
    pub stdin: &'a str,
}

/// Runs `program ARGS` contained. Files it needs must be readable by `containment.user`.
pub fn run_contained(program: &Path, args: &[&str], containment: &Containment) -> ContainedRun {
    let user = containment.user.to_string();
    let limit = format!("--nproc={0}:{0}", containment.max_processes);
    let mut command = Command::new("unshare");
    command
        .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .args(["prlimit", &limit, "--"])
        .args([
            "setpriv",
            "--reuid",
            &user,
            "--regid",
            &user,
            "--clear-groups",
        ])
        .args(["--inh-caps=-all", "--"])
        .arg(program)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", "/nonexistent")
        .env("TMPDIR", "/tmp")
        .envs(containment.environment.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    let input = containment.stdin.to_string();
    let mut stdin = child.stdin.take().expect("piped stdin");
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(input.as_bytes());
    });
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + containment.timeout;
    let mut peak_processes = 0;
    let status = loop {
        peak_processes = peak_processes.max(descendants(child.id()));
        if let Some(status) = child.try_wait().expect("wait for the namespace") {
            break Some(status);
        }
        if Instant::now() > deadline {
            // `--kill-child`: the namespace's init dies with unshare, and everything in the
            // namespace with it.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = feeder.join();
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    ContainedRun {
        finished: status.map(|status| {
            Finished::from_output(std::process::Output {
                status,
                stdout,
                stderr,
            })
        }),
        peak_processes,
    }
}

fn drain(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// How many processes descend from `root` (not counting `root`), read from `/proc`.
fn descendants(root: u32) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let parents: Vec<(u32, u32)> = entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let after_name = &stat[stat.rfind(')')? + 1..];
            let parent = after_name.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, parent))
        })
        .collect();
    let mut inside = vec![root];
    let mut index = 0;
    while index < inside.len() {
        let parent = inside[index];
        inside.extend(
            parents
                .iter()
                .filter(|(_, of)| *of == parent)
                .map(|(pid, _)| *pid),
        );
        index += 1;
    }
    inside.len() - 1
}

/// Makes `path` and the directories above it up to `base` readable and searchable by anyone, so
/// that a contained run under another user id can open the executables in it.
pub fn open_to_everyone(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut current = Some(path);
    while let Some(dir) = current {
        if let Ok(metadata) = std::fs::metadata(dir) {
            let mode = metadata.permissions().mode();
            let wanted = mode | if metadata.is_dir() { 0o755 } else { 0o644 };
            if wanted != mode {
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(wanted));
            }
        }
        if dir == crate::workspace_root() || dir == Path::new("/") {
            break;
        }
        current = dir.parent();
    }
}
