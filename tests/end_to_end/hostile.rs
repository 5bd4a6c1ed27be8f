//! Hostile hosts: `memfd_create` denied by a seccomp filter, a kernel without
//! `MFD_NOEXEC_SEAL`, `vm.memfd_noexec=2`, no `/proc`, every temporary directory `noexec`, a low
//! open-file limit. Each runs the numpy probe app (its extensions and `numpy.libs` load from
//! memory files) as root, in namespaces of its own (CI is root; elsewhere the tests say so and
//! pass vacuously). The standard-library-natives app has every extension module built into the
//! launcher and holds no shared object: it runs where no memory file can be made at all.
//!
//! The seccomp filters come from a small C program compiled here with gcc: it installs the
//! filter (`prctl(PR_SET_SECCOMP)`) and execs the app.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use pyferry_tests::{is_root, pack, run, workspace_root, Finished, Scratch};

use crate::native::{natives_app, NUMPY_EXPECTED, STDLIB_EXPECTED};

/// An app and the probe check it runs.
struct Subject {
    name: &'static str,
    exe: &'static Path,
    check: &'static str,
    expected: &'static [&'static str],
}

/// The probe app with only the standard library: its natives (`_ssl`, `_sqlite3`, `_ctypes`,
/// `_lzma`, `_decimal`...), all built into the launcher.
fn stdlib_app() -> &'static Path {
    static APP: OnceLock<(Scratch, PathBuf)> = OnceLock::new();
    let (_, path) = APP.get_or_init(|| {
        let scratch = Scratch::new();
        let app = scratch.path("app");
        std::fs::create_dir_all(&app).expect("mkdir");
        std::fs::copy(
            workspace_root().join("tests/apps/natives/__main__.py"),
            app.join("__main__.py"),
        )
        .expect("copy probe");
        let exe = pack(&app, &scratch.path("stdlib.bin"), &[]);
        (scratch, exe)
    });
    path
}

/// The apps that load shared objects from memory files.
fn subjects() -> [Subject; 1] {
    [numpy_subject()]
}

fn numpy_subject() -> Subject {
    Subject {
        name: "numpy",
        exe: natives_app(),
        check: "numpy",
        expected: NUMPY_EXPECTED,
    }
}

fn stdlib_subject() -> Subject {
    Subject {
        name: "stdlib",
        exe: stdlib_app(),
        check: "stdlib",
        expected: STDLIB_EXPECTED,
    }
}

const SECCOMP_RUN_C: &str = r#"
/* seccomp-run MODE PROGRAM ARGS...: installs a seccomp filter on memfd_create, then execs.
   MODE eperm: memfd_create fails with EPERM (a container profile that denies it).
   MODE einval-seal: memfd_create with MFD_NOEXEC_SEAL fails with EINVAL (a kernel before 6.3). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#define MFD_NOEXEC_SEAL_FLAG 0x0008U

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: seccomp-run eperm|einval-seal PROGRAM ARGS...\n");
        return 127;
    }
    int eperm = strcmp(argv[1], "eperm") == 0;
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_memfd_create, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        /* memfd_create: flags are the second argument (low word on little-endian x86-64). */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, eperm ? 0xffffffffU : MFD_NOEXEC_SEAL_FLAG, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((eperm ? EPERM : EINVAL) & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, eperm ? (SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)) : SECCOMP_RET_ALLOW),
    };
    struct sock_fprog program = {.len = sizeof filter / sizeof filter[0], .filter = filter};
    if (strcmp(argv[1], "eperm") != 0 && strcmp(argv[1], "einval-seal") != 0) {
        fprintf(stderr, "seccomp-run: unknown mode %s\n", argv[1]);
        return 127;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) {
        perror("seccomp-run: prctl");
        return 127;
    }
    execvp(argv[2], argv + 2);
    perror("seccomp-run: execvp");
    return 127;
}
"#;

/// The directory holding `seccomp-run`, compiled once.
pub(crate) fn tools_dir() -> &'static Path {
    static TOOLS: OnceLock<Scratch> = OnceLock::new();
    TOOLS
        .get_or_init(|| {
            let scratch = Scratch::new();
            std::fs::write(scratch.path("seccomp-run.c"), SECCOMP_RUN_C).expect("write C");
            let built = run(Command::new("gcc")
                .args([
                    "-O2",
                    "-Wall",
                    "-Werror",
                    "-o",
                    "seccomp-run",
                    "seccomp-run.c",
                ])
                .current_dir(scratch.dir.path()));
            assert_eq!(built.code, Some(0), "gcc seccomp-run.c: {built:#?}");
            scratch
        })
        .dir
        .path()
}

/// Runs `body` (sh) with `unshare UNSHARE... sh -c`, in a private mount namespace where the
/// app's directory is at `/mnt/app` and the tools at `/mnt/tools` (so that mounts over
/// `/tmp`, where a clone of the repository may live, hide neither). `$APP` and `$CHECK` name
/// what to run.
fn in_namespace(unshare: &[&str], subject: &Subject, setup: &str, body: &str) -> Finished {
    let script = format!(
        "set -e; mount --make-rprivate /; mount -t tmpfs tmpfs /mnt; mkdir /mnt/app /mnt/tools; \
         mount --bind '{app_dir}' /mnt/app; mount --bind '{tools}' /mnt/tools; {setup}; set +e; \
         APP=/mnt/app/{name}; CHECK={check}; SECCOMP=/mnt/tools/seccomp-run; {body}",
        app_dir = subject.exe.parent().expect("parent").display(),
        tools = tools_dir().display(),
        name = subject.exe.file_name().expect("name").to_string_lossy(),
        check = subject.check,
    );
    let mut command = Command::new("unshare");
    command
        .args(unshare)
        .args(["sh", "-c", &script])
        .env_remove("PYFERRY_LOG")
        .env_remove("PYFERRY_MEMFD")
        .env_remove("XDG_RUNTIME_DIR");
    run(&mut command)
}

fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!("skipped: {test} needs root (namespaces, mounts, sysctls)");
    true
}

#[track_caller]
fn assert_output(subject: &Subject, finished: &Finished) {
    assert_eq!(finished.code, Some(0), "{}: {finished:#?}", subject.name);
    let lines: Vec<&str> = finished.stdout.lines().collect();
    assert_eq!(
        lines, subject.expected,
        "{}: stderr {}",
        subject.name, finished.stderr
    );
}

#[test]
fn memfd_denied_by_seccomp_falls_back_to_an_unnamed_tmpfile() {
    if skip_unless_root("the seccomp fallback test") {
        return;
    }
    for subject in subjects() {
        let finished = in_namespace(
            &["--mount"],
            &subject,
            "mount -t tmpfs -o mode=1777 tmpfs /dev/shm",
            "PYFERRY_LOG=debug $SECCOMP eperm $APP $CHECK; status=$?; \
             echo \"left in /dev/shm: $(ls -A /dev/shm | wc -l)\" >&2; exit $status",
        );
        assert_output(&subject, &finished);
        let log = &finished.stderr;
        assert!(
            log.contains("memfd_create(MFD_NOEXEC_SEAL) failed")
                && log.contains("Operation not permitted"),
            "{}: {log}",
            subject.name
        );
        assert!(
            log.contains("backing=O_TMPFILE in /dev/shm"),
            "{}: {log}",
            subject.name
        );
        assert!(
            !log.contains("backing=memfd_create"),
            "{}: {log}",
            subject.name
        );
        assert!(
            log.contains("left in /dev/shm: 0"),
            "{}: {log}",
            subject.name
        );
    }
}

#[test]
fn memfd_denied_and_every_tmp_noexec_is_one_clear_import_error() {
    if skip_unless_root("the no-way-to-load test") {
        return;
    }
    for subject in subjects() {
        let finished = in_namespace(
            &["--mount"],
            &subject,
            "mkdir /mnt/run; for dir in /mnt/run /dev/shm /tmp /var/tmp; do mount -t tmpfs -o noexec tmpfs $dir; done",
            "XDG_RUNTIME_DIR=/mnt/run exec $SECCOMP eperm $APP $CHECK",
        );
        assert_eq!(finished.code, Some(1), "{}: {finished:#?}", subject.name);
        assert!(!finished.stderr.contains("panicked"), "{finished:#?}");
        let error = finished
            .stderr
            .lines()
            .find(|line| line.contains("no way to hold"))
            .unwrap_or_else(|| panic!("{}: no error line: {}", subject.name, finished.stderr));
        assert!(
            error.starts_with("ImportError: cannot import `"),
            "{}: {error}",
            subject.name
        );
        for attempt in [
            "memfd_create(MFD_NOEXEC_SEAL): Operation not permitted (os error 1)",
            "O_TMPFILE in /mnt/run: mounted noexec",
            "O_TMPFILE in /dev/shm: mounted noexec",
            "O_TMPFILE in /tmp: mounted noexec",
            "O_TMPFILE in /var/tmp: mounted noexec",
        ] {
            assert!(
                error.contains(attempt),
                "{}: `{attempt}` not in {error}",
                subject.name
            );
        }
        // The run ends with an ImportError (numpy re-raises ours inside its own, several lines
        // of advice long; the standard library's shows ours as the last line).
        let last_traceback = finished
            .stderr
            .rsplit("Traceback (most recent call last):")
            .next()
            .unwrap_or_default();
        let exception = last_traceback
            .lines()
            .find(|line| !line.is_empty() && !line.starts_with(' '))
            .unwrap_or_default();
        assert!(
            exception.starts_with("ImportError: "),
            "{}: {}",
            subject.name,
            finished.stderr
        );
    }
}

#[test]
fn the_standard_library_needs_no_memory_file_and_no_exec_mount() {
    if skip_unless_root("the standard library's no-memory-file test") {
        return;
    }
    let subject = stdlib_subject();
    assert_eq!(
        descriptors_needed(subject.exe).0,
        0,
        "the stdlib app holds a shared object"
    );
    // Every way to make a memory file closed, and every descriptor beyond 32 too.
    let finished = in_namespace(
        &["--mount"],
        &subject,
        "mkdir /mnt/run; for dir in /mnt/run /dev/shm /tmp /var/tmp; do mount -t tmpfs -o noexec tmpfs $dir; done",
        "ulimit -n 32; PYFERRY_LOG=debug XDG_RUNTIME_DIR=/mnt/run exec $SECCOMP eperm $APP $CHECK",
    );
    assert_output(&subject, &finished);
    assert!(
        !finished.stderr.contains("memfd_create") && !finished.stderr.contains("O_TMPFILE"),
        "a memory file was tried: {}",
        finished.stderr
    );
}

#[test]
fn kernel_without_noexec_seal_retries_without_the_flag() {
    if skip_unless_root("the MFD_NOEXEC_SEAL retry test") {
        return;
    }
    for subject in subjects() {
        let finished = in_namespace(
            &["--mount"],
            &subject,
            "true",
            "PYFERRY_LOG=debug exec $SECCOMP einval-seal $APP $CHECK",
        );
        assert_output(&subject, &finished);
        let log = &finished.stderr;
        assert!(
            log.contains("memfd_create(MFD_NOEXEC_SEAL) failed")
                && log.contains("Invalid argument"),
            "{}: {log}",
            subject.name
        );
        assert!(
            log.contains("backing=memfd_create path="),
            "{}: {log}",
            subject.name
        );
        assert!(
            !log.contains("backing=memfd_create(MFD_NOEXEC_SEAL)") && !log.contains("O_TMPFILE"),
            "{}: {log}",
            subject.name
        );
    }
}

fn memfd_noexec() -> String {
    std::fs::read_to_string("/proc/sys/vm/memfd_noexec")
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn memfd_noexec_2_in_a_new_pid_namespace() {
    if skip_unless_root("the vm.memfd_noexec test") {
        return;
    }
    if memfd_noexec().is_empty() {
        eprintln!("skipped: this kernel has no vm.memfd_noexec (before 6.3)");
        return;
    }
    let host_before = memfd_noexec();
    for subject in subjects() {
        // The probe's last check asks for an executable memory file (MFD_EXEC), which level 2
        // refuses: it shows the level is in force where the app runs.
        let finished = in_namespace(
            &["--pid", "--fork", "--mount-proc"],
            &subject,
            "echo 2 > /proc/sys/vm/memfd_noexec; echo \"memfd_noexec=$(cat /proc/sys/vm/memfd_noexec)\" >&2",
            "PYFERRY_LOG=debug exec $APP $CHECK memfd_exec",
        );
        let log = &finished.stderr;
        assert_eq!(finished.code, Some(0), "{}: {finished:#?}", subject.name);
        let mut expected = subject.expected.to_vec();
        expected.push("memfd_exec refused");
        assert_eq!(
            finished.stdout.lines().collect::<Vec<_>>(),
            expected,
            "{}: {log}",
            subject.name
        );
        assert!(log.contains("memfd_noexec=2"), "{}: {log}", subject.name);
        assert!(
            log.contains("backing=memfd_create(MFD_NOEXEC_SEAL)") && !log.contains("O_TMPFILE"),
            "{}: {log}",
            subject.name
        );
    }
    assert_eq!(memfd_noexec(), host_before, "the host's level changed");
}

#[test]
fn no_proc_is_one_clear_error() {
    if skip_unless_root("the no-/proc test") {
        return;
    }
    for subject in [numpy_subject(), stdlib_subject()] {
        let finished = in_namespace(
            &["--mount"],
            &subject,
            "umount -l /proc",
            "exec $APP $CHECK",
        );
        assert_eq!(finished.code, Some(2), "{}: {finished:#?}", subject.name);
        assert_eq!(finished.stdout, "");
        assert_eq!(
            finished.stderr,
            "pyferry: error: cannot locate the running executable through `/proc/self/exe`: \
             No such file or directory (os error 2) (is /proc mounted?)\n",
            "{}",
            subject.name
        );
    }
}

/// What the launcher counts as needing a descriptor: every shared object of the archive, plus
/// 32 (the rule of `launcher/src/native/limits.rs`, counted here independently).
fn descriptors_needed(exe: &Path) -> (u64, u64) {
    let bytes = std::fs::read(exe).expect("read app");
    let archive = pyferry_payload::Archive::parse(&bytes).expect("parse app");
    let shared = archive
        .index()
        .names()
        .filter(|name| {
            let base = name.rsplit('/').next().unwrap_or(name);
            base.ends_with(".so") || base.contains(".so.")
        })
        .count() as u64;
    (shared, shared + 32)
}

#[test]
fn low_open_file_limit_is_raised_or_named() {
    // Lowering a limit needs no privilege: this test runs for everyone.
    for subject in subjects() {
        let (shared, needed) = descriptors_needed(subject.exe);
        let hard = run(Command::new("sh").args(["-c", "ulimit -Hn"])).stdout;
        let hard = hard.trim();
        // Soft limit 32, hard limit unchanged: raised to exactly what the app may need.
        let raised = run(Command::new("sh")
            .args(["-c", "ulimit -Sn 32 && exec \"$0\" \"$1\" nofile"])
            .arg(subject.exe)
            .arg(subject.check));
        let mut expected = subject.expected.to_vec();
        let nofile = format!("nofile {needed} {hard}");
        expected.push(&nofile);
        assert_eq!(raised.code, Some(0), "{}: {raised:#?}", subject.name);
        assert_eq!(
            raised.stdout.lines().collect::<Vec<_>>(),
            expected,
            "{}",
            subject.name
        );
        // Hard limit 32 too: one line saying how many are needed.
        let refused = run(Command::new("sh")
            .args(["-c", "ulimit -n 32 && exec \"$0\" \"$1\""])
            .arg(subject.exe)
            .arg(subject.check));
        assert_eq!(refused.code, Some(2), "{}: {refused:#?}", subject.name);
        assert_eq!(
            refused.stderr,
            format!(
                "pyferry: error: {}: needs up to {needed} open file descriptors ({shared} shared objects it may hold in memory, plus 32), but the limit is 32 and the hard limit 32; raise both with `ulimit -n {needed}`\n",
                subject.exe.display()
            )
        );
        assert_eq!(refused.stdout, "");
    }
}
