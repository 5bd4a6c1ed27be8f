//! Bad input, to the launcher and to the packer: one line on stderr naming the file and the
//! cause, exit status 2, never a panic; nothing the user owns is lost.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use pyferry_payload::{EntryPoint, Manifest, PayloadKind, PayloadWriter, FORMAT_VERSION};
use pyferry_tests::{launcher, pyferry_command, run, write_tree, Finished, Scratch};

#[track_caller]
fn assert_one_line_error(finished: &Finished, needle: &str) {
    assert_eq!(finished.code, Some(2), "{finished:#?}");
    // Progress lines may come first; the error itself is one line, the last.
    let errors: Vec<&str> = finished
        .stderr
        .lines()
        .filter(|line| line.starts_with("pyferry: error: "))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "one error line expected: {}",
        finished.stderr
    );
    assert_eq!(
        finished.stderr.lines().last(),
        Some(errors[0]),
        "{}",
        finished.stderr
    );
    assert!(
        errors[0].contains(needle),
        "`{needle}` not in: {}",
        finished.stderr
    );
    assert!(!finished.stderr.contains("panicked"), "{}", finished.stderr);
}

/// The bare launcher with a crafted payload appended.
fn launcher_with_manifest(path: &Path, manifest: &Manifest) {
    // Read and write: the writer records the launcher's hash.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .expect("create");
    file.write_all(&std::fs::read(launcher()).expect("read launcher"))
        .expect("write");
    let mut writer = PayloadWriter::new(file, None).expect("writer");
    writer
        .add(
            "__main__.py",
            b"print('should not run')\n",
            pyferry_payload::Compression::Deflated,
        )
        .expect("add");
    writer.finish(manifest).expect("finish");
    make_executable(path);
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn manifest() -> Manifest {
    Manifest {
        format_version: FORMAT_VERSION,
        kind: PayloadKind::App,
        pyferry_version: "0.0.0".into(),
        python_version: "3.11".into(),
        build_id: String::new(),
        entry_point: EntryPoint::parse("__main__").expect("entry point"),
        shared_libraries: Default::default(),
        load_plans: Default::default(),
        scripts: Default::default(),
        distributions: Default::default(),
        glibc_floor: None,
        inherit_python_env: false,
        extract: Vec::new(),
        needed_names: Default::default(),
        tags: None,
    }
}

#[test]
fn launcher_without_payload() {
    let scratch = Scratch::new();
    let bare = scratch.path("bare");
    std::fs::copy(launcher(), &bare).expect("copy");
    let finished = run(&mut Command::new(&bare));
    assert_one_line_error(
        &finished,
        &format!(
            "no application is appended to {}; build one with `pyferry pack`",
            bare.display()
        ),
    );
}

#[test]
fn truncated_application() {
    let scratch = Scratch::new();
    let app = scratch.packed_app(&[("__main__.py", "print(1)\n")], &[]);
    let bytes = std::fs::read(&app).expect("read");
    for cut in [10, 1000, bytes.len() / 3] {
        let truncated = scratch.path(&format!("truncated-{cut}"));
        std::fs::write(&truncated, &bytes[..bytes.len() - cut]).expect("write");
        make_executable(&truncated);
        let finished = run(&mut Command::new(&truncated));
        assert_one_line_error(&finished, "truncated or corrupted");
        assert!(
            finished.stderr.contains(truncated.to_str().unwrap()),
            "{}",
            finished.stderr
        );
    }
}

#[test]
fn corrupted_central_directory() {
    let scratch = Scratch::new();
    let app = scratch.packed_app(&[("__main__.py", "print(1)\n")], &[]);
    let mut bytes = std::fs::read(&app).expect("read");
    let position = bytes
        .windows(4)
        .rposition(|window| window == b"PK\x01\x02")
        .expect("a central directory header");
    bytes[position + 1] = b'X';
    let corrupted = scratch.path("corrupted");
    std::fs::write(&corrupted, &bytes).expect("write");
    make_executable(&corrupted);
    assert_one_line_error(
        &run(&mut Command::new(&corrupted)),
        "truncated or corrupted",
    );
}

#[test]
fn unknown_format_version() {
    let scratch = Scratch::new();
    let path = scratch.path("future");
    launcher_with_manifest(
        &path,
        &Manifest {
            format_version: 99,
            ..manifest()
        },
    );
    assert_one_line_error(
        &run(&mut Command::new(&path)),
        "payload format version 99 is not supported",
    );
}

#[test]
fn python_version_mismatch() {
    let scratch = Scratch::new();
    let path = scratch.path("py312");
    launcher_with_manifest(
        &path,
        &Manifest {
            python_version: "3.12".into(),
            ..manifest()
        },
    );
    assert_one_line_error(&run(&mut Command::new(&path)), "built for Python 3.12");
}

#[test]
fn zip_without_manifest() {
    let scratch = Scratch::new();
    let path = scratch.path("plainzip");
    let mut file = std::fs::File::create(&path).expect("create");
    file.write_all(&std::fs::read(launcher()).expect("read"))
        .expect("write");
    let mut zip = zip::ZipWriter::new(file);
    zip.start_file("__main__.py", zip::write::SimpleFileOptions::default())
        .expect("start");
    zip.write_all(b"print(1)\n").expect("write");
    zip.finish().expect("finish");
    make_executable(&path);
    assert_one_line_error(&run(&mut Command::new(&path)), "has no pyferry manifest");
}

#[test]
fn pack_missing_directory() {
    let scratch = Scratch::new();
    let missing = scratch.path("nope");
    let finished = run(pyferry_command(["pack"])
        .arg(&missing)
        .arg("-o")
        .arg(scratch.path("out")));
    assert_one_line_error(
        &finished,
        &format!("`{}` does not exist", missing.display()),
    );
    assert!(!scratch.path("out").exists());
}

#[test]
fn pack_directory_without_main() {
    let scratch = Scratch::new();
    let app = scratch.path("app");
    write_tree(&app, &[("lib.py", "x = 1\n")]);
    let finished = run(pyferry_command(["pack"])
        .arg(&app)
        .arg("-o")
        .arg(scratch.path("out")));
    assert_one_line_error(
        &finished,
        "has no `__main__.py`; hint: name the entry point with `-e",
    );
}

#[test]
fn pack_output_is_a_directory() {
    let scratch = Scratch::new();
    let app = scratch.path("app");
    write_tree(&app, &[("__main__.py", "print(1)\n")]);
    let out = scratch.path("outdir");
    std::fs::create_dir(&out).expect("mkdir");
    let finished = run(pyferry_command(["pack"]).arg(&app).arg("-o").arg(&out));
    assert_one_line_error(&finished, &format!("`{}` is a directory", out.display()));
}

#[test]
fn pack_unreadable_file_leaves_the_existing_output_alone() {
    let scratch = Scratch::new();
    let app = scratch.path("app");
    write_tree(&app, &[("__main__.py", "print(1)\n")]);
    std::os::unix::fs::symlink(scratch.path("does-not-exist"), app.join("broken.py"))
        .expect("symlink");
    let out = scratch.path("precious");
    std::fs::write(&out, "the user's file").expect("write");
    let finished = run(pyferry_command(["pack"]).arg(&app).arg("-o").arg(&out));
    assert_one_line_error(&finished, "broken.py");
    assert_eq!(
        std::fs::read_to_string(&out).expect("read"),
        "the user's file"
    );
    let leftovers: Vec<_> = std::fs::read_dir(scratch.dir.path())
        .expect("list")
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "a partial file was left behind");
}

#[test]
fn pack_bad_entry_points() {
    let scratch = Scratch::new();
    let app = scratch.path("app");
    write_tree(&app, &[("tool.py", "def main(): pass\n")]);
    let out = scratch.path("out");
    let syntax = run(pyferry_command(["pack"])
        .arg(&app)
        .arg("-o")
        .arg(&out)
        .args(["-e", "tool-x:main"]));
    assert_one_line_error(&syntax, "is not a module name");
    let missing = run(pyferry_command(["pack"])
        .arg(&app)
        .arg("-o")
        .arg(&out)
        .args(["-e", "other:main"]));
    assert_one_line_error(&missing, "the entry point module `other` is not in");
    assert!(!out.exists());
}

#[test]
fn source_that_does_not_compile_is_packed_and_fails_at_import() {
    let scratch = Scratch::new();
    let app = scratch.path("app");
    write_tree(
        &app,
        &[
            ("__main__.py", "print('before')\nimport broken\n"),
            ("broken.py", "def oops(:\n    pass\n"),
        ],
    );
    let out = scratch.path("app.bin");
    let packed = run(pyferry_command(["pack"]).arg(&app).arg("-o").arg(&out)).success();
    assert!(
        packed.stderr.contains("`broken.py` does not compile"),
        "{}",
        packed.stderr
    );
    let finished = run(&mut Command::new(&out));
    assert_eq!(finished.code, Some(1));
    assert_eq!(finished.stdout, "before\n");
    assert!(
        finished.stderr.contains("SyntaxError"),
        "{}",
        finished.stderr
    );
    assert!(
        finished
            .stderr
            .contains(&format!("{}/broken.py", out.display())),
        "{}",
        finished.stderr
    );
}

/// A copy of `app` with one byte flipped in the middle of entry `name`'s data.
fn with_flipped_data(scratch: &Scratch, app: &Path, name: &str) -> std::path::PathBuf {
    let mut bytes = std::fs::read(app).expect("read");
    let layout = pyferry_tests::damage::Layout::of(&bytes);
    let local = layout.local(name).expect("the entry");
    bytes[(local.data + local.end) / 2] ^= 0x5a;
    let damaged = scratch.path(&format!("damaged-{}", name.replace('/', "_")));
    std::fs::write(&damaged, &bytes).expect("write");
    make_executable(&damaged);
    damaged
}

#[test]
fn damaged_bytecode_that_python_starts_with_is_one_line_naming_the_entry() {
    // Before: CPython printed its path configuration (twenty lines) and the error did not say
    // which entry; stored bytecode was not checked, so a flipped byte could crash marshal.
    let scratch = Scratch::new();
    let app = scratch.packed_app(&[("__main__.py", "print(1)\n")], &[]);
    for name in [
        "encodings/__init__.pyc",
        "encodings/utf_8.pyc",
        "encodings/aliases.pyc",
    ] {
        let damaged = with_flipped_data(&scratch, &app, name);
        let finished = run(&mut Command::new(&damaged));
        assert_eq!(finished.stderr.lines().count(), 1, "{}", finished.stderr);
        assert_one_line_error(
            &finished,
            &format!("cannot load the UTF-8 codec that Python starts with (ImportError: cannot read `{}/{name}`: entry `{name}` cannot be read (CRC-32 mismatch))", damaged.display()),
        );
    }
}

#[test]
fn damaged_bytecode_of_a_later_import_is_an_import_error_naming_the_entry() {
    let scratch = Scratch::new();
    let app = scratch.packed_app(&[("__main__.py", "import json\n")], &[]);
    let damaged = with_flipped_data(&scratch, &app, "json/decoder.pyc");
    let finished = run(&mut Command::new(&damaged));
    assert_eq!(finished.code, Some(1), "{finished:#?}");
    assert_eq!(
        finished.stderr.lines().last().unwrap_or_default(),
        format!(
            "ImportError: cannot read `{0}/json/decoder.pyc`: entry `json/decoder.pyc` cannot be read (CRC-32 mismatch)",
            damaged.display()
        ),
        "{}",
        finished.stderr
    );
}
