//! The payload reader (`pyferry_payload::Archive`), in process: random damage to real and
//! synthetic payloads, truncation at every region boundary, crafted archives and foreign
//! files. The reader must return an error or a readable archive; a panic, a broken invariant
//! or a case slower than a few seconds fails the test.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyferry_payload::archive::elf_image_len;
use pyferry_payload::{Archive, ArchiveError, EntryKind, MANIFEST_PATH};
use pyferry_tests::damage::{self, Focus, Layout, Mutation, Rng};

use crate::fixtures::{self, Crafted};

/// What the reader made of one file.
#[derive(Debug)]
enum Outcome {
    Parsed,
    Refused(String),
}

/// A one-line, non-empty message.
fn check_message(message: &str) -> Result<(), String> {
    if message.is_empty() || message.contains('\n') {
        return Err(format!("not a one-line error: {message:?}"));
    }
    Ok(())
}

/// Parses `bytes` and, when it parses, reads every entry through every accessor, checking
/// what must hold for any input.
fn exercise_unguarded(bytes: &[u8]) -> Result<Outcome, String> {
    let archive = match Archive::parse(bytes) {
        Ok(archive) => archive,
        Err(error) => {
            let message = error.to_string();
            check_message(&message)?;
            return Ok(Outcome::Refused(message));
        }
    };
    if archive.payload_start() > bytes.len() as u64 {
        return Err(format!(
            "payload starts at {} past the end",
            archive.payload_start()
        ));
    }
    let index = archive.index();
    // Every name of a real app; a sample of a crafted archive with 10,000 names.
    let names: Vec<&str> = index.names().step_by(index.len() / 1000 + 1).collect();
    for name in &names {
        if index.kind(name) != Some(EntryKind::File) {
            return Err(format!("`{name}` is listed but not a file"));
        }
        let size = archive.size(name);
        match archive.read(name) {
            Ok(Some(data)) => {
                if Some(data.len() as u64) != size {
                    return Err(format!(
                        "`{name}` read {} bytes, size() says {size:?}",
                        data.len()
                    ));
                }
            }
            Ok(None) => return Err(format!("`{name}` is listed but reads as absent")),
            Err(error) => check_message(&error.to_string())?,
        }
        if let Some(range) = archive.stored_range(name) {
            if range.end > bytes.len() || Some(range.len() as u64) != size {
                return Err(format!("`{name}`: stored range {range:?} is wrong"));
            }
        }
        if let Some((parent, _)) = name.rsplit_once('/') {
            if index.kind(parent) != Some(EntryKind::Directory)
                && index.kind(parent) != Some(EntryKind::File)
            {
                return Err(format!(
                    "`{parent}` (parent of `{name}`) is not a directory"
                ));
            }
        }
    }
    let _ = index.children("");
    Ok(Outcome::Parsed)
}

/// [`exercise_unguarded`], with panics turned into failures.
fn exercise(bytes: &[u8]) -> Result<Outcome, String> {
    match catch_unwind(AssertUnwindSafe(|| exercise_unguarded(bytes))) {
        Ok(result) => result,
        Err(panic) => Err(format!(
            "panicked: {}",
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
                .unwrap_or_default()
        )),
    }
}

/// Aborts the test binary when one case runs for a minute: a hang fails loudly instead of
/// blocking `make test`.
struct Watchdog {
    current: Arc<Mutex<Option<(Instant, String)>>>,
}

impl Watchdog {
    fn start() -> Watchdog {
        let current: Arc<Mutex<Option<(Instant, String)>>> = Arc::new(Mutex::new(None));
        let watched = Arc::downgrade(&current);
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
            let Some(current) = watched.upgrade() else {
                return;
            };
            let guard = current
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some((started, what)) = guard.as_ref() {
                if started.elapsed() > Duration::from_secs(60) {
                    eprintln!("HUNG for {:?}: {what}", started.elapsed());
                    std::process::abort();
                }
            }
        });
        Watchdog { current }
    }

    fn case(&self, what: &str) {
        *self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) =
            Some((Instant::now(), what.to_string()));
    }
}

/// Counts of what happened, the slowest case, and every failure.
#[derive(Default)]
struct Tally {
    cases: u64,
    parsed: u64,
    refused: BTreeMap<String, u64>,
    slowest: (Duration, String),
    failures: Vec<String>,
}

/// The kind of a refusal, for the summary: its text up to the first detail.
fn reason(message: &str) -> String {
    let text = message
        .split(['(', ':', '`'])
        .next()
        .unwrap_or(message)
        .trim();
    let text: String = text.chars().filter(|c| !c.is_ascii_digit()).collect();
    text.trim().to_string()
}

impl Tally {
    fn record(&mut self, what: &str, started: Instant, result: Result<Outcome, String>) {
        self.cases += 1;
        let took = started.elapsed();
        if took > self.slowest.0 {
            self.slowest = (took, what.to_string());
        }
        if took > Duration::from_secs(5) {
            self.failures.push(format!("{what}: took {took:?}"));
        }
        match result {
            Ok(Outcome::Parsed) => self.parsed += 1,
            Ok(Outcome::Refused(message)) => {
                *self.refused.entry(reason(&message)).or_default() += 1;
            }
            Err(failure) => self.failures.push(format!("{what}: {failure}")),
        }
    }

    fn report(&self, title: &str) {
        eprintln!(
            "{title}: {} cases, {} parsed, {} refused; slowest {:?} ({})",
            self.cases,
            self.parsed,
            self.cases - self.parsed,
            self.slowest.0,
            self.slowest.1
        );
        for (reason, count) in &self.refused {
            eprintln!("  {count:>7}  {reason}");
        }
        assert!(
            self.failures.is_empty(),
            "{} of {} cases failed:\n{}",
            self.failures.len(),
            self.cases,
            self.failures
                .iter()
                .take(30)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// Peak resident memory of this process (`VmHWM`), in MiB.
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib / 1024)
}

struct Base {
    name: String,
    bytes: Vec<u8>,
    layout: Layout,
}

fn base(name: &str, bytes: &[u8]) -> Base {
    Base {
        name: name.to_string(),
        bytes: bytes.to_vec(),
        layout: Layout::of(bytes),
    }
}

fn apply_and_exercise(base: &mut Base, mutation: &Mutation) -> Result<Outcome, String> {
    let saved = mutation.apply(&mut base.bytes);
    let result = exercise(&base.bytes[..mutation.len]);
    damage::undo(&mut base.bytes, saved);
    result
}

#[test]
fn random_damage_to_payloads() {
    let seed = crate::seed();
    let count = crate::setting("PYFERRY_FUZZ_CASES", 2_000);
    let mut bases = vec![
        base("synthetic", fixtures::synthetic()),
        base("synthetic zip64", fixtures::synthetic_zip64()),
        base("hello app", &fixtures::hello().bytes),
    ];
    for crafted in fixtures::crafted() {
        if crafted.bytes.len() < 1 << 20 && !Layout::of(&crafted.bytes).locals.is_empty() {
            bases.push(base(crafted.name, &crafted.bytes));
        }
    }
    for base in &bases {
        assert!(
            exercise(&base.bytes).is_ok(),
            "{} must be readable before damage",
            base.name
        );
    }
    let watchdog = Watchdog::start();
    let mut tally = Tally::default();
    let mut time_by_base: BTreeMap<String, Duration> = BTreeMap::new();
    for case in crate::case_numbers(count) {
        let mut rng = Rng::for_case(seed, case);
        // The small payloads are the cheapest to read whole; the real app is the real thing.
        let which = match rng.below(100) {
            0..=29 => 0,
            30..=54 => 1,
            55..=79 => 2,
            _ => 3 + rng.index(bases.len() - 3),
        };
        let base = &mut bases[which];
        let mutation = damage::mutate(&base.bytes, &base.layout, &Focus::default(), &mut rng);
        let what = format!("seed {seed} case {case} ({}): {}", base.name, mutation.what);
        watchdog.case(&what);
        let started = Instant::now();
        let result = apply_and_exercise(base, &mutation);
        *time_by_base.entry(base.name.clone()).or_default() += started.elapsed();
        tally.record(&what, started, result);
    }
    eprintln!("time by base: {time_by_base:?}");
    tally.report(&format!("payload reader, random damage, seed {seed}"));
    eprintln!("peak RSS of the test process: {} MiB", peak_rss_mib());
}

#[test]
fn truncation_at_every_region_boundary() {
    let watchdog = Watchdog::start();
    let mut tally = Tally::default();
    let deltas: &[i64] = if crate::all_boundaries() {
        &[-2, -1, 0, 1, 2]
    } else {
        &[-1, 0, 1]
    };
    let hello = &fixtures::hello().bytes;
    let bases: [(&str, &[u8]); 3] = [
        ("synthetic", fixtures::synthetic()),
        ("synthetic zip64", fixtures::synthetic_zip64()),
        ("hello app", hello),
    ];
    for (name, bytes) in bases {
        let layout = Layout::of(bytes);
        let image_len = elf_image_len(bytes).expect("an ELF in front");
        let mut boundaries = layout.boundaries();
        let mut deltas = deltas;
        if name == "hello app" && !crate::all_boundaries() {
            // Without `PYFERRY_FUZZ_BOUNDARIES=all` (make fuzz), the real app's thousands of
            // boundaries are sampled: its end records and directory start, and one in twenty.
            let mut rng = Rng::new(crate::seed());
            boundaries.retain(|(at, _)| {
                *at >= layout.end_record
                    || *at <= layout.central_start.max(layout.payload_start) && rng.chance(5)
            });
            deltas = &[0];
        }
        for (boundary, region) in boundaries {
            for delta in deltas {
                let cut = (boundary as i64 + delta).clamp(0, bytes.len() as i64 - 1) as usize;
                let what = format!("{name} truncated to {cut} bytes ({region} {delta:+})");
                watchdog.case(&what);
                let started = Instant::now();
                let result = exercise(&bytes[..cut]).and_then(|outcome| {
                    // Exact expectations: an executable cut inside its own image has no
                    // payload; cut anywhere after it, it is a damaged one.
                    let expected = if cut as u64 <= image_len {
                        "no application is appended"
                    } else {
                        "truncated or corrupted"
                    };
                    match &outcome {
                        Outcome::Refused(message) if message.contains(expected) => Ok(outcome),
                        other => Err(format!("expected `{expected}`, got {other:?}")),
                    }
                });
                tally.record(&what, started, result);
            }
        }
    }
    tally.report("payload reader, truncation at every region boundary");
}

fn refused_with(bytes: &[u8], needle: &str) -> String {
    match exercise(bytes) {
        Ok(Outcome::Refused(message)) => {
            assert!(message.contains(needle), "`{needle}` not in: {message}");
            message
        }
        other => panic!("expected a refusal with `{needle}`, got {other:?}"),
    }
}

fn crafted(name: &str) -> &'static Crafted {
    fixtures::crafted()
        .iter()
        .find(|crafted| crafted.name == name)
        .unwrap_or_else(|| panic!("no crafted archive `{name}`"))
}

fn read_error(bytes: &[u8], entry: &str) -> String {
    let archive = Archive::parse(bytes).expect("parses");
    match archive.read(entry) {
        Err(error) => error.to_string(),
        Ok(data) => panic!("`{entry}` read as {:?} bytes", data.map(|data| data.len())),
    }
}

#[test]
fn zip_bombs_are_refused_without_inflating_them() {
    let started = Instant::now();
    let lying = crafted("a bomb whose headers claim 100 bytes");
    let message = read_error(&lying.bytes, "bomb.py");
    assert!(
        message.contains("inflates to more than the 100 bytes recorded"),
        "{message}"
    );
    let huge = crafted("a bomb whose headers claim 1 TiB (zip64)");
    let message = read_error(&huge.bytes, "bomb.py");
    assert!(
        message.contains("claims to inflate to 1099511627776 bytes"),
        "{message}"
    );
    let ratio = crafted("1 GiB claimed from 1 KiB of deflate");
    let message = read_error(&ratio.bytes, "bomb.py");
    assert!(
        message.contains("claims to inflate to 1073741824 bytes from 1024"),
        "{message}"
    );
    refused_with(
        &crafted("a manifest that inflates to 20 MiB (valid JSON)").bytes,
        "the manifest is 2097",
    );
    // None of this may take long: a bomb is refused before it is inflated.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let overlap = crafted("10,000 entries sharing one local header");
    // The overlapping ("non-recursive") zip bomb: the directory parses, the entry that owns the
    // local header reads, the 9,999 others are refused because the header names another entry.
    let archive = Archive::parse(&overlap.bytes).expect("overlapping entries parse");
    assert_eq!(archive.index().len(), 10_001);
    assert_eq!(
        archive.read("overlap/0.py").expect("reads").as_deref(),
        Some(&b"X = 1\n"[..])
    );
    let message = read_error(&overlap.bytes, "overlap/9999.py");
    assert!(
        message.contains("its local header names another entry"),
        "{message}"
    );
    assert!(exercise(&overlap.bytes).is_ok());
}

#[test]
fn duplicate_names_first_one_wins() {
    let bytes = &crafted("duplicate names").bytes;
    let archive = Archive::parse(bytes).expect("parses");
    assert_eq!(
        archive.manifest().format_version,
        pyferry_payload::FORMAT_VERSION,
        "the first manifest wins"
    );
    assert_eq!(
        archive.read("mod.py").expect("reads").as_deref(),
        Some(&b"VALUE = 1\n"[..])
    );
}

#[test]
fn path_traversal_names_stay_inert_names() {
    let bytes = &crafted("path traversal and odd names").bytes;
    let archive = Archive::parse(bytes).expect("parses");
    for name in fixtures::TRAVERSAL_NAMES {
        let listed = archive.index().position(name).is_some();
        // Directory entries and the empty name are never files; everything else is kept
        // verbatim, as a name: nothing in the reader resolves it against a file system.
        assert_eq!(
            listed,
            !(name.is_empty() || name.ends_with('/')),
            "{name:?}"
        );
    }
    assert!(exercise(bytes).is_ok());
    let long = &crafted("a name of 65,535 bytes").bytes;
    assert!(matches!(exercise(long), Ok(Outcome::Parsed)));
}

#[test]
fn zip64_payload_reads_like_the_original() {
    let original = Archive::parse(fixtures::synthetic()).expect("parses");
    let zip64 = Archive::parse(fixtures::synthetic_zip64()).expect("zip64 parses");
    assert!(Layout::of(fixtures::synthetic_zip64())
        .zip64_record
        .is_some());
    assert_eq!(original.manifest(), zip64.manifest());
    let names: Vec<&str> = original.index().names().collect();
    assert_eq!(names, zip64.index().names().collect::<Vec<_>>());
    for name in names {
        assert_eq!(
            original.read(name).expect("reads"),
            zip64.read(name).expect("reads"),
            "{name}"
        );
    }
}

/// Sets the `width`-byte little-endian field at `at`.
fn set(bytes: &mut [u8], at: usize, width: usize, value: u64) {
    bytes[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
}

#[test]
fn huge_counts_and_entries_outside_the_file() {
    let bytes = fixtures::synthetic().to_vec();
    let layout = Layout::of(&bytes);
    let end = layout.end_record;
    let manifest = layout
        .centrals
        .iter()
        .position(|central| central.name == MANIFEST_PATH)
        .expect("manifest");
    let offset_field = layout.centrals[manifest].start + 42;
    let cases: Vec<(&str, usize, usize, u64, &str)> = vec![
        (
            "count 65,535 without zip64",
            end + 10,
            2,
            0xffff,
            "zip64 end of central directory locator is missing",
        ),
        (
            "count larger than the directory",
            end + 10,
            2,
            5000,
            "entries cannot fit",
        ),
        (
            "directory larger than the file",
            end + 12,
            4,
            0xffff_fff0,
            "larger than the file",
        ),
        (
            "directory size past the start of file",
            end + 12,
            4,
            (end + 1) as u64,
            "larger than the file",
        ),
        (
            "manifest beyond the end of file",
            offset_field,
            4,
            bytes.len() as u64 + 100,
            "outside the archive",
        ),
        (
            "manifest inside the executable",
            offset_field,
            4,
            0,
            "bad local header signature",
        ),
        (
            "manifest at the central directory",
            offset_field,
            4,
            layout.central_start as u64,
            "outside the archive",
        ),
    ];
    for (what, at, width, value, needle) in cases {
        let mut damaged = bytes.clone();
        set(&mut damaged, at, width, value);
        let message = refused_with(&damaged, needle);
        eprintln!("{what}: {message}");
    }
    let zip64 = fixtures::synthetic_zip64().to_vec();
    let record = Layout::of(&zip64).zip64_record.expect("zip64");
    let mut damaged = zip64.clone();
    set(&mut damaged, record + 32, 8, 1 << 62);
    refused_with(&damaged, "entries cannot fit");
    let mut damaged = zip64;
    set(&mut damaged, record + 40, 8, u64::MAX);
    refused_with(&damaged, "larger than the file");
}

#[test]
fn names_and_manifests_that_are_not_text() {
    let mut bytes = fixtures::synthetic().to_vec();
    let layout = Layout::of(&bytes);
    // A name that is not UTF-8 can name no module: the archive opens (start-up does not
    // validate every name), the name is never listed, and reading its entry by its old name
    // finds nothing. `pyferry verify` catches the change through the seal.
    let central = &layout.centrals[0];
    let original = central.name.clone();
    bytes[central.start + 46] = 0xff;
    let archive = Archive::parse(&bytes).expect("a name that is not text refuses nothing else");
    assert!(archive.index().names().all(|name| name != original));
    assert!(archive.read(&original).expect("no error").is_none());
    assert!(matches!(exercise(&bytes), Ok(Outcome::Parsed)));
    let nested = "[".repeat(100_000);
    for (manifest, needle) in [
        (nested.as_bytes(), "not valid JSON"),
        (&b"\xff\xfe{}"[..], "not valid JSON"),
        (b"[1, 2]", "no `format_version`"),
        (
            format!(
                "{{\"format_version\": {}}}",
                pyferry_payload::FORMAT_VERSION
            )
            .as_bytes(),
            "the manifest is invalid",
        ),
        (
            b"{\"format_version\": 18446744073709551615}",
            "format version 18446744073709551615 is not supported",
        ),
    ] {
        let mut zip = damage::ZipWriter::new(fixtures::fake_elf(), false);
        zip.add_stored(MANIFEST_PATH, manifest);
        refused_with(&zip.finish(), needle);
    }
}

#[test]
fn foreign_files_have_no_payload() {
    let mut script = b"#!/bin/sh\necho 'a shell script'\n".to_vec();
    let random = Rng::new(7).bytes(1 << 20);
    let true_elf = std::fs::read("/bin/true").expect("read /bin/true");
    let launcher = fixtures::launcher_bytes();
    for (what, bytes) in [
        ("empty file", &b""[..]),
        ("a shell script", &script[..]),
        ("1 MiB of random bytes", &random[..]),
        ("/bin/true", &true_elf[..]),
        ("the bare launcher", launcher),
    ] {
        let message = refused_with(bytes, "no application is appended");
        eprintln!("{what}: {message}");
    }
    let mut appended = launcher.to_vec();
    appended.append(&mut script);
    refused_with(&appended, "truncated or corrupted");
    let mut appended = launcher.to_vec();
    appended.extend_from_slice(&true_elf);
    refused_with(&appended, "truncated or corrupted");
    assert!(matches!(
        Archive::parse(&crafted("no manifest, only sources").bytes),
        Err(ArchiveError::NoManifest)
    ));
    assert!(matches!(
        Archive::parse(&crafted("an empty zip").bytes),
        Err(ArchiveError::NoManifest)
    ));
}

#[test]
fn names_and_values_that_would_break_an_error_line_are_escaped() {
    let name = "evil\n\x1b[2Jname.py";
    let mut zip = damage::ZipWriter::new(fixtures::fake_elf(), false);
    let offset = zip.add_stored(name, b"x") as usize;
    zip.add_stored(MANIFEST_PATH, &fixtures::manifest().to_json());
    let mut bytes = zip.finish();
    bytes[offset] ^= 0xff;
    assert_eq!(
        read_error(&bytes, name),
        "entry `evil\\n\\u{1b}[2Jname.py` cannot be read (bad local header signature)"
    );
    let versions = ["3.12\nsecond line", "\x1b[31m3.11", "3", "3.x", ""];
    for version in versions {
        let manifest = pyferry_payload::Manifest {
            python_version: version.to_string(),
            ..fixtures::manifest()
        };
        let mut zip = damage::ZipWriter::new(fixtures::fake_elf(), false);
        zip.add_stored(MANIFEST_PATH, &manifest.to_json());
        let message = refused_with(&zip.finish(), "not MAJOR.MINOR");
        assert!(!message.chars().any(char::is_control), "{message:?}");
    }
    let manifest = pyferry_payload::Manifest {
        scripts: [(
            "tool\n\x1b[2J".to_string(),
            pyferry_payload::EntryPoint::parse("m:f").expect("entry point"),
        )]
        .into(),
        ..fixtures::manifest()
    };
    let mut zip = damage::ZipWriter::new(fixtures::fake_elf(), false);
    zip.add_stored(MANIFEST_PATH, &manifest.to_json());
    let message = refused_with(&zip.finish(), "holds control characters");
    assert!(!message.chars().any(char::is_control), "{message:?}");
}
