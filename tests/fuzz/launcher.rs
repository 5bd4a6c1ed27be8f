//! The launcher's start-up path on real executables, damaged and run as subprocesses under a
//! 1 GiB address-space limit and a timeout. Every run must end cleanly (exit 0, the app's
//! output), or in a one-line error: exit 2 and `pyferry: error: ...` from the launcher before
//! Python runs, or exit 1 and a Python exception line (a traceback above it) once it runs.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pyferry_payload::MANIFEST_PATH;
use pyferry_tests::damage::{self, Focus, Layout, Mutation, RawEntry, Rng};
use pyferry_tests::{run_with_timeout, Finished, Scratch};

use crate::fixtures::{self, HELLO_OUTPUT};

/// The entries the hello app reads when it starts: damage aims at them.
const READ_AT_START: &[&str] = &[
    MANIFEST_PATH,
    "encodings/__init__.pyc",
    "encodings/aliases.pyc",
    "encodings/utf_8.pyc",
    "__main__.pyc",
    "__main__.py",
    "mod.pyc",
    "mod.py",
    fixtures::EXTENSION,
    fixtures::LIBZMQ,
    fixtures::LIBSODIUM,
];

/// The address-space limit every run gets: far above what the app needs, far below what an
/// unchecked allocation from a damaged size field would ask for.
const ADDRESS_SPACE: &str = "--as=1073741824";
const TIMEOUT: Duration = Duration::from_secs(30);

/// How a run ended, when it ended acceptably.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Clean,
    /// Exit 2, one `pyferry: error:` line.
    Refused(String),
    /// Exit 1 with a Python exception as the last line.
    Raised(String),
}

fn is_exception_line(line: &str) -> bool {
    let name = line.split(':').next().unwrap_or_default();
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && (name.ends_with("Error") || name.ends_with("Exception"))
}

/// The exception line of a traceback whose message has more lines after it: the last line
/// that looks like `SomeError: ...` below the traceback's last `  File "..."` frame.
fn raised_with_a_long_message<'a>(lines: &[&'a str]) -> Option<&'a str> {
    let last_frame = lines
        .iter()
        .rposition(|line| line.starts_with("  File \""))?;
    lines[last_frame..]
        .iter()
        .copied()
        .find(|line| is_exception_line(line))
}

/// Judges one run: `Err` says why the run is unacceptable.
fn classify(finished: Option<&Finished>, expected_stdout: &str) -> Result<Verdict, String> {
    let Some(finished) = finished else {
        return Err(format!("hung for more than {TIMEOUT:?} and was killed"));
    };
    if let Some(signal) = finished.signal {
        return Err(format!("killed by signal {signal}: {}", finished.stderr));
    }
    for alarm in [
        "panicked",
        "Fatal Python error",
        "memory allocation of",
        "Segmentation fault",
        "core dumped",
    ] {
        if finished.stderr.contains(alarm) {
            return Err(format!("`{alarm}` in stderr: {}", finished.stderr));
        }
    }
    let lines: Vec<&str> = finished.stderr.lines().collect();
    let last = lines.last().copied().unwrap_or_default().to_string();
    match finished.code {
        Some(0) if finished.stdout == expected_stdout => Ok(Verdict::Clean),
        Some(0) => Err(format!(
            "exit 0 but printed {:?} (stderr {:?})",
            finished.stdout, finished.stderr
        )),
        Some(2) if lines.len() == 1 && last.starts_with("pyferry: error: ") => {
            Ok(Verdict::Refused(last))
        }
        Some(1) if is_exception_line(&last) => Ok(Verdict::Raised(last)),
        // An exception whose message runs over several lines (pyzmq's ImportError explains
        // itself at length): the last unindented exception line, after the last frame.
        Some(1) if raised_with_a_long_message(&lines).is_some() => Ok(Verdict::Raised(
            raised_with_a_long_message(&lines)
                .unwrap_or_default()
                .to_string(),
        )),
        code => Err(format!(
            "exit {code:?} without a one-line error:\nstdout: {}\nstderr: {}",
            finished.stdout, finished.stderr
        )),
    }
}

/// A copy of an executable that damage is applied to in place and undone after each run.
struct Subject {
    path: PathBuf,
    original: Vec<u8>,
    scratch: Scratch,
}

impl Subject {
    fn new(bytes: &[u8]) -> Subject {
        let scratch = Scratch::new();
        let path = scratch.path("subject");
        write_executable(&path, bytes);
        Subject {
            path,
            original: bytes.to_vec(),
            scratch,
        }
    }

    /// Writes the damage, runs, and restores the file. The file is closed before it runs (a
    /// file open for writing cannot be executed).
    fn run(&self, mutation: &Mutation) -> Option<Finished> {
        {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&self.path)
                .expect("open the subject");
            for (at, patch) in &mutation.patches {
                file.write_all_at(patch, *at as u64).expect("patch");
            }
            file.set_len(mutation.len as u64).expect("truncate");
        }
        let finished = run_app(&self.path, self.scratch.dir.path());
        {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&self.path)
                .expect("open the subject");
            file.write_all_at(&self.original[mutation.len..], mutation.len as u64)
                .expect("restore the tail");
            for (at, patch) in &mutation.patches {
                let end = (at + patch.len()).min(mutation.len);
                if *at < end {
                    file.write_all_at(&self.original[*at..end], *at as u64)
                        .expect("restore a patch");
                }
            }
        }
        finished
    }
}

fn write_executable(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, bytes).expect("write the executable");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Runs an app under the address-space limit, with no core dump, none of the launcher's
/// switches, and a timeout.
///
/// Another test thread that forks while this one has just written the file holds a copy of
/// the writing descriptor until it execs: `execve` then fails with `ETXTBSY` for a moment, so
/// that failure (and only that one) is retried.
fn run_app(path: &Path, cwd: &Path) -> Option<Finished> {
    for _ in 0..50 {
        let mut command = Command::new("prlimit");
        command
            .args([ADDRESS_SPACE, "--core=0", "--"])
            .arg(path)
            .current_dir(cwd);
        for (name, _) in std::env::vars() {
            if name.starts_with("PYFERRY_") {
                command.env_remove(name);
            }
        }
        let finished = run_with_timeout(&mut command, TIMEOUT);
        match &finished {
            Some(busy) if busy.code == Some(126) && busy.stderr.contains("Text file busy") => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => return finished,
        }
    }
    panic!("{} stayed busy (ETXTBSY) for a second", path.display())
}

#[derive(Default)]
struct Tally {
    runs: u64,
    verdicts: BTreeMap<String, u64>,
    failures: Vec<String>,
}

impl Tally {
    fn record(&mut self, what: &str, verdict: Result<Verdict, String>) {
        self.runs += 1;
        let key = match &verdict {
            Ok(Verdict::Clean) => "clean run".to_string(),
            Ok(Verdict::Refused(line)) => format!("exit 2: {}", summary(line)),
            Ok(Verdict::Raised(line)) => format!("exit 1: {}", summary(line)),
            Err(failure) => {
                self.failures.push(format!("{what}: {failure}"));
                "FAILED".to_string()
            }
        };
        *self.verdicts.entry(key).or_default() += 1;
    }

    fn report(&self, title: &str) {
        eprintln!("{title}: {} runs", self.runs);
        for (verdict, count) in &self.verdicts {
            eprintln!("  {count:>6}  {verdict}");
        }
        assert!(
            self.failures.is_empty(),
            "{} of {} runs failed:\n{}",
            self.failures.len(),
            self.runs,
            self.failures
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n\n")
        );
    }
}

/// The gist of an error line, for counting: paths, numbers and quoted names removed.
fn summary(line: &str) -> String {
    let mut text = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '`' => {
                quoted = !quoted;
                if quoted {
                    text.push_str("`…`");
                }
            }
            _ if quoted => {}
            c if c.is_ascii_digit() => {}
            c => text.push(c),
        }
    }
    let text = text.replace("pyferry: error: ", "");
    let words: Vec<&str> = text
        .split_whitespace()
        .filter(|word| !word.starts_with('/'))
        .take(12)
        .collect();
    words.join(" ")
}

#[test]
fn undamaged_app_runs_under_the_limits() {
    let subject = Subject::new(&fixtures::hello().bytes);
    let finished = run_app(&subject.path, subject.scratch.dir.path());
    assert_eq!(
        classify(finished.as_ref(), HELLO_OUTPUT),
        Ok(Verdict::Clean),
        "{finished:#?}"
    );
}

#[test]
fn random_damage_to_the_start_up_path() {
    let seed = crate::seed();
    let count = crate::setting("PYFERRY_FUZZ_RUNS", 120);
    let app = fixtures::hello();
    let layout = Layout::of(&app.bytes);
    let focus = Focus {
        names: READ_AT_START.iter().map(|name| name.to_string()).collect(),
        // Cut inside its own image, an executable is the kernel's to refuse or crash (the
        // launcher never runs): the shortest run keeps the whole launcher.
        keep: layout.payload_start,
    };
    for name in READ_AT_START {
        assert!(
            layout.local(name).is_some() || name.ends_with(".py"),
            "the app has no `{name}`"
        );
    }
    let subject = Subject::new(&app.bytes);
    let mut tally = Tally::default();
    let started = Instant::now();
    for case in crate::case_numbers(count) {
        // Distinct from the in-process cases of the same seed.
        let mut rng = Rng::for_case(seed ^ 0x5eed_0f1a_0c4e, case);
        let mutation = damage::mutate(&app.bytes, &layout, &focus, &mut rng);
        let what = format!("seed {seed} run {case}: {}", mutation.what);
        let finished = subject.run(&mutation);
        tally.record(&what, classify(finished.as_ref(), HELLO_OUTPUT));
    }
    tally.report(&format!(
        "launcher, random damage, seed {seed}, {:.1} s",
        started.elapsed().as_secs_f64()
    ));
}

#[test]
fn truncation_at_region_boundaries() {
    let app = fixtures::hello();
    let layout = Layout::of(&app.bytes);
    let image_len =
        pyferry_payload::archive::elf_image_len(&app.bytes).expect("an ELF in front") as usize;
    // Cut inside its own image, an executable is the kernel's to refuse or crash: the launcher
    // never runs. Every cut from the end of the launcher on is the launcher's to report.
    let mut boundaries = layout.boundaries();
    boundaries.retain(|(at, _)| *at >= layout.payload_start);
    if !crate::all_boundaries() {
        // The end records, the start of the zip and of the directory, and the entries start-up
        // reads, plus a sample of the rest.
        let mut rng = Rng::new(crate::seed());
        boundaries.retain(|(at, region)| {
            *at >= layout.end_record
                || *at == layout.payload_start
                || *at == layout.central_start
                || READ_AT_START
                    .iter()
                    .any(|name| region.ends_with(&format!(" {name}")))
                || rng.chance(1)
        });
    }
    let subject = Subject::new(&app.bytes);
    let mut tally = Tally::default();
    for (at, region) in boundaries {
        let mutation = Mutation {
            what: format!("truncated to {at} bytes ({region})"),
            patches: Vec::new(),
            len: at,
        };
        let finished = subject.run(&mutation);
        let expected = if at <= image_len {
            "no application is appended to"
        } else {
            "truncated or corrupted"
        };
        let verdict =
            classify(finished.as_ref(), HELLO_OUTPUT).and_then(|verdict| match &verdict {
                Verdict::Refused(line)
                    if line.contains(expected)
                        && line.contains(&*subject.path.to_string_lossy()) =>
                {
                    Ok(verdict)
                }
                other => Err(format!(
                    "expected a refusal naming the file and `{expected}`, got {other:?}"
                )),
            });
        tally.record(&mutation.what, verdict);
    }
    tally.report("launcher, truncation at region boundaries");
}

/// Runs `bytes` as an executable and returns the verdict, failing on an unacceptable run.
fn verdict_of(bytes: &[u8], expected_stdout: &str) -> (Verdict, Finished) {
    let subject = Subject::new(bytes);
    let finished = run_app(&subject.path, subject.scratch.dir.path());
    let verdict =
        classify(finished.as_ref(), expected_stdout).unwrap_or_else(|failure| panic!("{failure}"));
    (verdict, finished.expect("finished"))
}

#[track_caller]
fn assert_refused(bytes: &[u8], needle: &str) {
    match verdict_of(bytes, HELLO_OUTPUT) {
        (Verdict::Refused(line), _) if line.contains(needle) => {}
        other => panic!("expected exit 2 with `{needle}`, got {other:#?}"),
    }
}

#[track_caller]
fn assert_raised(bytes: &[u8], needle: &str) {
    match verdict_of(bytes, HELLO_OUTPUT) {
        (Verdict::Raised(line), _) if line.contains(needle) => {}
        other => panic!("expected exit 1 with `{needle}` last, got {other:#?}"),
    }
}

/// The hello app rebuilt entry by entry (through `edit`), with the launcher in front.
fn rebuilt(
    zip64: bool,
    edit: impl FnMut(&mut damage::ZipWriter, &damage::CopiedEntry, &[u8]),
) -> Vec<u8> {
    let bytes = &fixtures::hello().bytes;
    let prefix = &bytes[..Layout::of(bytes).payload_start];
    damage::rewrite(bytes, prefix, zip64, edit)
}

#[test]
fn zip64_app_runs() {
    let bytes = rebuilt(true, damage::copy_entry);
    assert!(Layout::of(&bytes).zip64_record.is_some());
    assert_eq!(verdict_of(&bytes, HELLO_OUTPUT).0, Verdict::Clean);
}

#[test]
fn duplicate_entries_first_one_wins() {
    let other = &fixtures::hello_43().bytes;
    let other_entries = damage::entries_of(other);
    let mod_43 = other_entries
        .iter()
        .find(|entry| entry.name == "mod.pyc")
        .expect("mod.pyc");
    let add_43 = |writer: &mut damage::ZipWriter| {
        damage::copy_entry(writer, mod_43, &other[mod_43.data.clone()])
    };
    let after = rebuilt(false, |writer, entry, data| {
        damage::copy_entry(writer, entry, data);
        if entry.name == "mod.pyc" {
            add_43(writer);
        }
    });
    assert_eq!(verdict_of(&after, HELLO_OUTPUT).0, Verdict::Clean);
    let before = rebuilt(false, |writer, entry, data| {
        if entry.name == "mod.pyc" {
            add_43(writer);
        }
        damage::copy_entry(writer, entry, data);
    });
    assert_eq!(verdict_of(&before, "hello 43\n").0, Verdict::Clean);
    let future = br#"{"format_version": 99}"#;
    let second_manifest = rebuilt(false, |writer, entry, data| {
        damage::copy_entry(writer, entry, data);
        if entry.name == MANIFEST_PATH {
            writer.add_stored(MANIFEST_PATH, future);
        }
    });
    assert_eq!(verdict_of(&second_manifest, HELLO_OUTPUT).0, Verdict::Clean);
    let first_manifest = rebuilt(false, |writer, entry, data| {
        if entry.name == MANIFEST_PATH {
            writer.add_stored(MANIFEST_PATH, future);
        }
        damage::copy_entry(writer, entry, data);
    });
    assert_refused(
        &first_manifest,
        "payload format version 99 is not supported",
    );
}

#[test]
fn path_traversal_names_are_never_acted_on() {
    let bytes = rebuilt(false, |writer, entry, data| {
        damage::copy_entry(writer, entry, data);
        if entry.name == "mod.pyc" {
            for name in fixtures::TRAVERSAL_NAMES {
                writer.add_deflated(name, b"print('escaped')\n");
            }
        }
    });
    let absolute = Path::new("/tmp/pyferry-absolute.py");
    let existed = absolute.exists();
    let subject = Subject::new(&bytes);
    let cwd = subject.scratch.path("deep/er");
    std::fs::create_dir_all(&cwd).expect("mkdir");
    let finished = run_app(&subject.path, &cwd);
    assert_eq!(
        classify(finished.as_ref(), HELLO_OUTPUT),
        Ok(Verdict::Clean),
        "{finished:#?}"
    );
    // Nothing was created next to, above or below the app or the working directory.
    let listing = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = walk(dir);
        names.sort();
        names
    };
    assert_eq!(
        listing(subject.scratch.dir.path()),
        ["deep", "deep/er", "subject"]
    );
    assert_eq!(absolute.exists(), existed);
}

fn walk(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("list").flatten() {
            let path = entry.path();
            found.push(
                path.strip_prefix(dir)
                    .expect("inside")
                    .to_string_lossy()
                    .into_owned(),
            );
            if path.is_dir() {
                pending.push(path);
            }
        }
    }
    found
}

#[test]
fn zip_bombs_fail_the_import_not_the_machine() {
    let bomb = fixtures::zeros_deflated(16 << 20);
    let with_mod = |entry: RawEntry<'_>| {
        rebuilt(false, |writer, copied, data| {
            if copied.name == "mod.pyc" || copied.name == "mod.py" {
                return;
            }
            damage::copy_entry(writer, copied, data);
            if copied.name == "__main__.py" {
                writer.add_raw(&entry);
            }
        })
    };
    let lying = with_mod(RawEntry {
        name: b"mod.py",
        method: 8,
        crc32: 0,
        data: &bomb,
        size: 100,
    });
    assert_raised(&lying, "inflates to more than the 100 bytes recorded");
    let impossible = with_mod(RawEntry {
        name: b"mod.py",
        method: 8,
        crc32: 0,
        data: &bomb[..4096],
        size: 0xffff_fff0,
    });
    assert_raised(
        &impossible,
        "claims to inflate to 4294967280 bytes from 4096",
    );
    let manifest = rebuilt(false, |writer, entry, data| {
        if entry.name != MANIFEST_PATH {
            return damage::copy_entry(writer, entry, data);
        }
        let mut padded = data.to_vec();
        let close = padded
            .iter()
            .rposition(|&byte| byte == b'}')
            .expect("a JSON object");
        padded.truncate(close);
        padded.extend(std::iter::repeat_n(b' ', 20 << 20));
        padded.push(b'}');
        writer.add_deflated(MANIFEST_PATH, &padded);
    });
    assert_refused(&manifest, "more than the 16777216 a manifest may be");
}

#[test]
fn foreign_payloads_after_the_launcher() {
    let launcher = fixtures::launcher_bytes();
    assert_refused(launcher, "no application is appended to");
    let mut script = launcher.to_vec();
    script.extend_from_slice(b"#!/bin/sh\necho 'a shell script'\n");
    assert_refused(
        &script,
        "truncated or corrupted (no end of central directory record",
    );
    let mut elf = launcher.to_vec();
    elf.extend_from_slice(&std::fs::read("/bin/true").expect("read /bin/true"));
    assert_refused(&elf, "truncated or corrupted");
    let mut empty_zip = launcher.to_vec();
    empty_zip.extend_from_slice(b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
    assert_refused(&empty_zip, "has no pyferry manifest");
}

#[test]
fn manifest_text_cannot_split_the_error_line() {
    let bytes = rebuilt(false, |writer, entry, data| {
        if entry.name != MANIFEST_PATH {
            return damage::copy_entry(writer, entry, data);
        }
        let mut manifest: serde_json::Value = serde_json::from_slice(data).expect("JSON");
        manifest["python_version"] = "3.12\npyferry: error: a forged second line".into();
        writer.add_stored(MANIFEST_PATH, manifest.to_string().as_bytes());
    });
    assert_refused(
        &bytes,
        "`python_version` is \"3.12\\npyferry: error: a forged",
    );
}

#[test]
fn an_offset_moved_onto_another_library_is_refused_not_loaded() {
    // The extension's central header pointed at the local header of libzmq (794 KB): read
    // with the extension's size (297 KB), its first bytes are a valid ELF header whose segments
    // run past the end, which the dynamic loader maps and touches (SIGBUS), unless the reader
    // sees that the local header names another entry.
    let app = fixtures::hello();
    let layout = Layout::of(&app.bytes);
    let extension = layout
        .centrals
        .iter()
        .position(|central| central.name == fixtures::EXTENSION)
        .expect("the extension module");
    let library = layout.local(fixtures::LIBZMQ).expect("libzmq");
    let mut bytes = app.bytes.clone();
    let field = layout.centrals[extension].start + 42;
    bytes[field..field + 4].copy_from_slice(&(library.header as u32).to_le_bytes());
    assert_raised(&bytes, "its local header names another entry");
}
