//! `pyferry pack --format pyz`: zipapps run by the host's own Python (Debian's
//! `/usr/bin/python3.11`; trixie's `python3.13` in a chroot), their native extensions and
//! libraries loaded from memory by `pyferry_bootstrap`: real wheels (numpy, orjson, pydantic,
//! cryptography, Pillow 13 and its cycle of libraries, a console script), every input form, the
//! tags and the refusals by another interpreter, the hostile hosts, and the bootstrap on its own
//! in a `python -m zipapp` archive.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use pyferry_tests::{
    cache_wheels, cache_wheels_for, debian_root, is_root, pip_install, pyferry_command, run,
    wheel_cache, workspace_root, write_tree, Finished, Scratch,
};

/// Debian's own CPython 3.11: what every pyz here is built for and run by.
const PYTHON: &str = "/usr/bin/python3.11";

/// Pinned, with their dependencies pinned too.
const PROBE_REQUIREMENTS: &[&str] = &[
    "numpy==2.2.6",
    "orjson==3.10.7",
    "pydantic==2.9.2",
    "pydantic-core==2.23.4",
    "annotated-types==0.8.0",
    "typing-extensions==4.16.0",
    "cryptography==43.0.3",
    "cffi==2.1.1",
    "pycparser==3.12",
    "pillow==13.0.0",
];

/// `pyferry pack --format pyz ARGS`, offline from the wheel cache.
fn pack_pyz(args: &[&str]) -> Finished {
    let mut command = pyferry_command(["pack", "--format", "pyz"]);
    command
        .args(args)
        .arg("--no-index")
        .arg("--find-links")
        .arg(wheel_cache());
    run(&mut command)
}

#[track_caller]
fn packed(args: &[&str]) -> Finished {
    let finished = pack_pyz(args);
    assert_eq!(finished.code, Some(0), "{finished:#?}");
    finished
}

/// The probe app (tests/apps/pyz) with every wheel above installed by pip into its tree,
/// packed once with `-o DIR`: the file gets its default name.
fn probe_pyz() -> &'static Path {
    static APP: OnceLock<(Scratch, PathBuf)> = OnceLock::new();
    let (_, path) = APP.get_or_init(|| {
        let scratch = Scratch::new();
        let app = scratch.path("probe");
        pip_install(&app, PROBE_REQUIREMENTS);
        copy_tree(&workspace_root().join("tests/apps/pyz"), &app);
        let out = scratch.path("out");
        std::fs::create_dir_all(&out).expect("mkdir out");
        packed(&[app.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        let pyz = out.join("probe-cp311-manylinux_2_28_x86_64.pyz");
        assert!(
            pyz.is_file(),
            "{:?}",
            std::fs::read_dir(&out).unwrap().collect::<Vec<_>>()
        );
        (scratch, pyz)
    });
    path
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Runs `python3.11 PYZ CHECKS...`.
fn probe(checks: &[&str]) -> Finished {
    run(Command::new(PYTHON).arg(probe_pyz()).args(checks))
}

#[track_caller]
fn assert_lines(finished: &Finished, expected: &[&str]) {
    assert_eq!(finished.code, Some(0), "{finished:#?}");
    let lines: Vec<&str> = finished.stdout.lines().collect();
    assert_eq!(lines, expected, "stderr: {}", finished.stderr);
}

/// A failure of the pyz itself: exit status 1, one line on stderr, nothing else.
#[track_caller]
fn assert_one_line_refusal(finished: &Finished, name: &str, needle: &str) {
    assert_eq!(finished.code, Some(1), "{finished:#?}");
    assert_eq!(finished.stdout, "", "{finished:#?}");
    assert_eq!(finished.stderr.lines().count(), 1, "{finished:#?}");
    let line = finished.stderr.trim_end();
    assert!(
        line.starts_with(&format!("{name}: error: ")) && line.contains(needle),
        "`{needle}` not in: {line}"
    );
}

const NUMPY_EXPECTED: &[&str] = &[
    "det 10.0",
    "inv [[0.3, -0.1], [-0.2, 0.4]]",
    "fft [(10+0j), (-2+2j), (-2+0j), (-2-2j)]",
    "random [89, 773, 654, 438]",
    "matmul 49995000.0",
    "inside True True True",
];

#[test]
fn pyz_imports_numpy_orjson_pydantic_cryptography_from_memory() {
    let mut expected = NUMPY_EXPECTED.to_vec();
    expected.extend([
        "orjson {\"a\":[1,2.5,null,\"é\"]} {'x': 1}",
        "model {'name': 'ada', 'age': 36}",
        "error int_parsing ('age',)",
        "core inside True",
        "aesgcm 6fc8c1bfd647a3dc b'attack at dawn'",
        "sha256 ba7816bf8f01cfea",
    ]);
    assert_lines(
        &probe(&["numpy", "orjson", "pydantic", "cryptography"]),
        &expected,
    );
}

#[test]
fn pyz_pillow_13_draws_text_through_a_cycle_of_libraries() {
    // libfreetype needs libharfbuzz and libharfbuzz needs libfreetype (pillow.libs).
    assert_lines(
        &probe(&["pillow_text"]),
        &["pillow FreeTypeFont 2.14.3 (6, 10, 82, 33)"],
    );
    let manifest = manifest_of(probe_pyz());
    let cycle = &manifest["needed_names"];
    let freetype = cycle
        .as_object()
        .and_then(|objects| objects.keys().find(|key| key.contains("libfreetype")))
        .expect("freetype's name of harfbuzz is recorded");
    assert!(
        cycle[freetype]
            .as_object()
            .is_some_and(|names| names.keys().any(|key| key.contains("libharfbuzz"))),
        "{cycle}"
    );
}

#[test]
fn pyz_serves_resources_metadata_and_source_lines() {
    assert_lines(
        &probe(&["data"]),
        &[
            "resources hello from the archive",
            "get_data hello from the archive",
            "metadata 3.10.7 ['annotated-types', 'cffi', 'cryptography', 'numpy', 'orjson', 'pillow', 'pycparser', 'pydantic', 'pydantic_core', 'typing_extensions']",
            "iter_modules ['extra'] True",
            "traceback raise ValueError(\"raised inside the archive\")",
        ],
    );
}

/// What `check_backing` prints when memory files hold the objects (named after them) and the
/// code of the large ones is mapped from the archive (about a tenth of OpenBLAS copied).
const SHARED_BACKING: &[&str] = &[
    "backing ['memfd'] openblas named True",
    "code from the archive True openblas copied 0.1",
];

#[test]
fn pyz_native_code_is_in_named_memory_files_and_large_code_mapped_from_the_archive() {
    assert_lines(&probe(&["backing"]), SHARED_BACKING);
    let manifest = manifest_of(probe_pyz());
    let planned: Vec<&String> = manifest["load_plans"]
        .as_object()
        .expect("load plans")
        .keys()
        .collect();
    assert!(
        planned
            .iter()
            .any(|name| name.contains("libscipy_openblas"))
            && planned
                .iter()
                .any(|name| name.contains("_multiarray_umath")),
        "{planned:?}"
    );
}

/// The prefetch thread once copied an object again after the importing thread had taken its
/// memory file and before it was loaded (a race: run a few times).
#[test]
fn pyz_objects_are_copied_into_memory_once() {
    for _ in 0..6 {
        assert_lines(&probe(&["copies"]), &["copied twice [] True"]);
    }
}

#[test]
fn pyz_fork_pool_workers_use_numpy() {
    assert_lines(&probe(&["forkpool"]), &["forkpool [1.0, 2.0, 3.0, 4.0]"]);
}

fn manifest_of(pyz: &Path) -> serde_json::Value {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(pyz).expect("open pyz")).expect("zip");
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut zip.by_name(".pyferry/manifest.json").expect("manifest"),
        &mut text,
    )
    .expect("read manifest");
    serde_json::from_str(&text).expect("manifest JSON")
}

#[test]
fn pyz_is_a_standard_zipapp_named_after_its_tags() {
    let pyz = probe_pyz();
    let bytes = std::fs::read(pyz).expect("read pyz");
    assert!(bytes.starts_with(b"#!/usr/bin/env python3.11\n"));
    // `./app.pyz` through the `#!` line, `python3.11 app.pyz`: the same program.
    let direct = run(Command::new(pyz)
        .arg("environment")
        .env("PATH", "/usr/bin:/bin"));
    assert_lines(&direct, &["home /root executable python3.11"]);
    // A zip any tool reads: no runtime, no standard library inside.
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).expect("a zip");
    let names: Vec<String> = zip
        .file_names()
        .map(|name| name.expect("a UTF-8 name").into_owned())
        .collect();
    for name in [
        "__main__.py",
        "__main__.pyc",
        "pyferry_bootstrap.py",
        "pyferry_bootstrap.pyc",
        "__pyferry_main__.py",
        "__pyferry_main__.pyc",
        "numpy/__init__.pyc",
        "numpy/__init__.py",
        ".pyferry/manifest.json",
    ] {
        assert!(names.iter().any(|known| known == name), "{name} missing");
    }
    for absent in ["os.pyc", "encodings/__init__.pyc", "json/__init__.pyc"] {
        assert!(
            !names.iter().any(|known| known == absent),
            "{absent} packed"
        );
    }
    assert!(!names.iter().any(|name| name.starts_with(".pyferry/libs/")));
    // Bytecode compiled for 3.11 (its magic number); it and shared objects are stored.
    let mut pyc = Vec::new();
    std::io::Read::read_to_end(
        &mut zip.by_name("numpy/__init__.pyc").expect("pyc"),
        &mut pyc,
    )
    .expect("read pyc");
    assert_eq!(&pyc[..4], &[0xa7, 0x0d, 0x0d, 0x0a], "3.11's magic number");
    assert_eq!(
        zip.by_name("numpy/__init__.pyc").unwrap().compression(),
        zip::CompressionMethod::Stored
    );
    let so = names
        .iter()
        .find(|name| name.contains("_multiarray_umath"))
        .expect("an extension")
        .clone();
    assert_eq!(
        zip.by_name(&so).unwrap().compression(),
        zip::CompressionMethod::Stored
    );
    let manifest = manifest_of(pyz);
    assert_eq!(manifest["kind"], "pyz");
    assert_eq!(manifest["python_version"], "3.11");
    assert_eq!(manifest["tags"]["interpreter"], "cp311");
    // Pillow 13 and cryptography 43 declare manylinux_2_28 (the newest floor of the wheels).
    assert_eq!(manifest["tags"]["platform"], "manylinux_2_28_x86_64");
    let inspected = run(pyferry_command(["inspect"]).arg(pyz)).success();
    for needle in [
        "(pyz, ",
        "run by:        the host's python3.11 (cp311)",
        "runs on:       Linux x86_64 with glibc 2.28 or newer (set by ",
        "wheels for:    x86_64-manylinux_2_28",
        "tags:          cp311-manylinux_2_28_x86_64",
        "entry point:   __main__",
        "  numpy ",
        "libscipy_openblas64_",
    ] {
        assert!(
            inspected.stdout.contains(needle),
            "{needle}: {}",
            inspected.stdout
        );
    }
    let json = run(pyferry_command(["inspect", "--json"]).arg(pyz)).success();
    let report: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(report["kind"], "pyz");
    assert_eq!(report["tags"]["platform"], "manylinux_2_28_x86_64");
    let verified = run(pyferry_command(["verify"]).arg(pyz)).success();
    assert!(
        verified.stdout.contains(": ok, the `#!` line and "),
        "{}",
        verified.stdout
    );
}

#[test]
fn pyz_same_inputs_give_the_same_bytes_and_a_changed_byte_is_found() {
    let scratch = Scratch::new();
    let app = scratch.path("hello");
    write_tree(&app, &[("__main__.py", "print('hello from a pyz')\n")]);
    let first = scratch.path("first.pyz");
    let second = scratch.path("second.pyz");
    for output in [&first, &second] {
        packed(&[app.to_str().unwrap(), "-o", output.to_str().unwrap()]);
    }
    let bytes = std::fs::read(&first).expect("read");
    assert_eq!(bytes, std::fs::read(&second).expect("read"));
    assert_lines(
        &run(Command::new(PYTHON).arg(&first)),
        &["hello from a pyz"],
    );
    assert_eq!(
        manifest_of(&first)["tags"],
        serde_json::json!({"interpreter": "cp311", "platform": "any"})
    );
    // One byte of the `#!` line changed: verify names it.
    let mut changed = bytes.clone();
    changed[3] = b'X';
    let damaged = scratch.path("damaged.pyz");
    std::fs::write(&damaged, changed).expect("write");
    let verified = run(pyferry_command(["verify"]).arg(&damaged));
    assert_eq!(verified.code, Some(1), "{verified:#?}");
    assert!(
        verified.stderr.contains("`<launcher>` differs"),
        "{verified:#?}"
    );
}

#[test]
fn pyz_default_name_and_every_input_form() {
    let requirements = [
        "charset-normalizer==3.3.2",
        "orjson==3.10.7",
        "pyflakes==3.2.0",
        "flake8==7.1.1",
    ];
    cache_wheels(&requirements);
    let scratch = Scratch::new();
    let out = scratch.path("out");
    std::fs::create_dir_all(&out).expect("mkdir");
    // A console script with native (mypyc) code, from a requirement, `-o DIR`.
    packed(&[
        "charset-normalizer==3.3.2",
        "-c",
        "normalizer",
        "-o",
        out.to_str().unwrap(),
    ]);
    let normalizer = out.join("normalizer-cp311-manylinux_2_17_x86_64.pyz");
    let version = run(Command::new(PYTHON).arg(&normalizer).arg("--version"));
    assert_eq!(version.code, Some(0), "{version:#?}");
    assert!(
        version
            .stdout
            .starts_with("Charset-Normalizer 3.3.2 - Python 3.11.2 - Unicode 14.0.0 - SpeedUp ON"),
        "{version:#?}"
    );
    // A wheel file and `-e module:function`, `-o` left out: the current directory.
    let orjson_wheel = std::fs::read_dir(wheel_cache())
        .expect("cache")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("orjson-3.10.7-cp311-cp311-manylinux") && name.contains("x86_64")
        })
        .expect("the orjson wheel is cached");
    let mut command = pyferry_command([
        "pack",
        "--format",
        "pyz",
        "--no-deps",
        "-e",
        "json.tool:main",
    ]);
    command.arg(&orjson_wheel).current_dir(&out);
    let finished = run(&mut command);
    assert_eq!(finished.code, Some(0), "{finished:#?}");
    assert!(out.join("orjson-cp311-manylinux_2_17_x86_64.pyz").is_file());
    // `-r FILE` and `-e MODULE` with an application directory.
    let app = scratch.path("lint");
    write_tree(
        &app,
        &[(
            "checker.py",
            "import sys, orjson\nprint('checker', orjson.dumps(sys.argv[1:]).decode())\n",
        )],
    );
    let requirements_file = scratch.path("requirements.txt");
    std::fs::write(&requirements_file, "orjson==3.10.7\n").expect("write");
    let lint = scratch.path("lint.pyz");
    packed(&[
        app.to_str().unwrap(),
        "-r",
        requirements_file.to_str().unwrap(),
        "-e",
        "checker",
        "-o",
        lint.to_str().unwrap(),
    ]);
    assert_lines(
        &run(Command::new(PYTHON).arg(&lint).args(["a", "b"])),
        &["checker [\"a\",\"b\"]"],
    );
    // `--all-scripts`: the script is chosen by the name the pyz is started as.
    let tools = scratch.path("tools.pyz");
    packed(&[
        "flake8==7.1.1",
        "--all-scripts",
        "-o",
        tools.to_str().unwrap(),
    ]);
    let link = scratch.path("flake8");
    std::os::unix::fs::symlink(&tools, &link).expect("symlink");
    let flake8 = run(Command::new(PYTHON).arg(&link).arg("--version"));
    assert_eq!(flake8.code, Some(0), "{flake8:#?}");
    assert!(flake8.stdout.starts_with("7.1.1 (mccabe: "), "{flake8:#?}");
    let unnamed = run(Command::new(PYTHON).arg(&tools));
    assert_eq!(unnamed.code, Some(2), "{unnamed:#?}");
    assert!(
        unnamed
            .stderr
            .contains("run it under one of the names of its scripts")
            && unnamed.stderr.contains("flake8"),
        "{unnamed:#?}"
    );
}

#[test]
fn pyz_project_directory_with_a_console_script() {
    cache_wheels(&["pyflakes==3.2.0"]);
    let scratch = Scratch::new();
    let project = scratch.path("greeter");
    write_tree(
        &project,
        &[
            (
                "pyproject.toml",
                "[build-system]\nrequires = [\"flit_core>=3.9,<4\"]\nbuild-backend = \"flit_core.buildapi\"\n\n[project]\nname = \"greeter\"\nversion = \"0.1.0\"\ndescription = \"A test project.\"\ndependencies = [\"pyflakes==3.2.0\"]\n\n[project.scripts]\ngreet = \"greeter:main\"\n",
            ),
            (
                "greeter.py",
                "\"\"\"Greets.\"\"\"\nimport importlib.metadata\nimport sys\n\ndef main():\n    print('hello from greeter', importlib.metadata.version('greeter'), 'with pyflakes', importlib.metadata.version('pyflakes'), sys.argv[1:])\n    return 3\n",
            ),
        ],
    );
    let pyz = scratch.path("greet.pyz");
    // The build backend comes from the index (build isolation); pyflakes from the cache.
    let mut command = pyferry_command(["pack", "--format", "pyz"]);
    command
        .arg(&project)
        .args(["-c", "greet", "-o"])
        .arg(&pyz)
        .arg("--find-links")
        .arg(wheel_cache());
    let finished = run(&mut command);
    assert_eq!(finished.code, Some(0), "{finished:#?}");
    let greeted = run(Command::new(PYTHON).arg(&pyz).arg("x"));
    assert_eq!(greeted.code, Some(3), "{greeted:#?}");
    assert_eq!(
        greeted.stdout,
        "hello from greeter 0.1.0 with pyflakes 3.2.0 ['x']\n"
    );
}

#[test]
fn pyz_packing_mistakes_are_one_line_each() {
    let scratch = Scratch::new();
    let app = scratch.path("app");
    write_tree(&app, &[("__main__.py", "print('hi')\n")]);
    let app = app.to_str().unwrap();
    let out = scratch.path("x.pyz");
    let out = out.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &[app, "-o", out, "--extract", "numpy"],
            "`--extract` is for executables",
        ),
        (
            &[app, "-o", out, "--inherit-python-env"],
            "`--inherit-python-env` is for executables",
        ),
        (
            &[app, "-o", out, "--python", "3.13t"],
            "free-threaded CPython is not a target",
        ),
        (
            &[app, "-o", out, "--python", "2.7"],
            "pyferry builds for CPython 3.8 or newer",
        ),
        (
            &[app, "-o", out, "--python", "/nonexistent/python3"],
            "cannot run `/nonexistent/python3`",
        ),
        (
            &[app, "-o", out, "--shebang", "a\nb"],
            "`--shebang` must be one line",
        ),
        (
            &[app, "-o", "/nonexistent-dir/"],
            "cannot write into `/nonexistent-dir/`",
        ),
    ];
    for (args, needle) in cases {
        let finished = pack_pyz(args);
        assert_eq!(finished.code, Some(2), "{args:?}: {finished:#?}");
        let lines: Vec<&str> = finished.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {finished:#?}");
        assert!(
            lines[0].starts_with("pyferry: error: ") && lines[0].contains(needle),
            "{args:?}: `{needle}` not in {}",
            lines[0]
        );
    }
    // Platforms are parsed by the command line (clap's own error lines, exit status 2).
    for (platform, needle) in [
        (
            "x86_64-musllinux_1_2",
            "musl's dynamic loader finds libraries by file name only",
        ),
        ("macosx_11_0_arm64", "`macosx_11_0_arm64` is not a platform"),
    ] {
        let finished = pack_pyz(&[app, "-o", out, "--python-platform", platform]);
        assert_eq!(finished.code, Some(2), "{finished:#?}");
        assert!(finished.stderr.contains(needle), "{finished:#?}");
        assert!(!finished.stderr.contains("panicked"), "{finished:#?}");
    }
    // The executable format has a fixed target.
    for (args, needle) in [
        (
            vec![app, "-o", out, "--python", "3.12"],
            "an executable carries pyferry's own CPython 3.11",
        ),
        (
            vec![
                app,
                "-o",
                out,
                "--python-platform",
                "aarch64-manylinux_2_28",
            ],
            "only x86_64 runtimes are built so far (aarch64 is not); hint: `--format pyz`",
        ),
        (
            vec![app, "-o", out, "--shebang", "/usr/bin/python3"],
            "`--shebang` is for `--format pyz`",
        ),
        (
            vec![app],
            "no output: name the executable to write with `-o FILE`",
        ),
    ] {
        let finished = run(pyferry_command(["pack"]).args(&args));
        assert_eq!(finished.code, Some(2), "{finished:#?}");
        assert!(
            finished.stderr.trim_end().starts_with("pyferry: error: ")
                && finished.stderr.contains(needle),
            "{finished:#?}"
        );
    }
    // The pyz's own names cannot come from the application.
    let clash = scratch.path("clash");
    write_tree(
        &clash,
        &[
            ("__main__.py", "print('hi')\n"),
            ("pyferry_bootstrap.py", "x = 1\n"),
        ],
    );
    let finished = pack_pyz(&[clash.to_str().unwrap(), "-o", out]);
    assert_eq!(finished.code, Some(2), "{finished:#?}");
    assert!(
        finished
            .stderr
            .contains("`pyferry_bootstrap.py` is the name of the pyz's own start-up files"),
        "{finished:#?}"
    );
}

#[test]
fn pyz_failed_pack_leaves_the_existing_file_alone() {
    let scratch = Scratch::new();
    let app = scratch.path("app");
    write_tree(&app, &[("__main__.py", "print(1)\n")]);
    std::os::unix::fs::symlink(scratch.path("does-not-exist"), app.join("broken.py"))
        .expect("symlink");
    let out = scratch.path("precious.pyz");
    std::fs::write(&out, "the user's file").expect("write");
    let finished = pack_pyz(&[app.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(finished.code, Some(2), "{finished:#?}");
    assert!(
        finished.stderr.starts_with("pyferry: error: ") && finished.stderr.contains("broken.py"),
        "{finished:#?}"
    );
    assert_eq!(
        std::fs::read_to_string(&out).expect("read"),
        "the user's file"
    );
    let leftovers = std::fs::read_dir(scratch.dir.path())
        .expect("list")
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".partial"))
        .count();
    assert_eq!(leftovers, 0, "a partial file was left behind");
}

/// A pyz for aarch64 started by this machine's x86_64 Python.
#[test]
fn pyz_for_another_architecture_is_refused_in_one_line() {
    cache_wheels_for(
        "3.11",
        &["manylinux_2_17_aarch64", "manylinux2014_aarch64", "any"],
        &["orjson==3.10.7"],
    );
    let scratch = Scratch::new();
    let app = scratch.path("app");
    write_tree(
        &app,
        &[("__main__.py", "import orjson\nprint(orjson.dumps(1))\n")],
    );
    let pyz = scratch.path("arm.pyz");
    packed(&[
        app.to_str().unwrap(),
        "orjson==3.10.7",
        "--python-platform",
        "aarch64-manylinux_2_28",
        "-o",
        pyz.to_str().unwrap(),
    ]);
    assert_eq!(
        manifest_of(&pyz)["tags"]["platform"],
        "manylinux_2_17_aarch64"
    );
    assert_one_line_refusal(
        &run(Command::new(PYTHON).arg(&pyz)),
        "arm.pyz",
        "built for aarch64 (manylinux_2_17_aarch64); this Python runs on x86_64 (CPython 3.11.2 (cp311) at /usr/bin/python3.11)",
    );
}

/// Compiles a shared object with gcc and declares it, in its `WHEEL` file, for a glibc newer
/// than this host's, as a wheel built on a newer distribution would be.
#[test]
fn pyz_needing_a_newer_glibc_is_refused_in_one_line() {
    let scratch = Scratch::new();
    let app = scratch.path("app");
    write_tree(
        &app,
        &[
            ("__main__.py", "import fresh\nprint(fresh.answer())\n"),
            ("fresh.c", "#include <Python.h>\nstatic PyObject *answer(PyObject *self, PyObject *args) { return PyLong_FromLong(42); }\nstatic PyMethodDef methods[] = {{\"answer\", answer, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};\nstatic struct PyModuleDef module = {PyModuleDef_HEAD_INIT, \"fresh\", NULL, -1, methods};\nPyMODINIT_FUNC PyInit_fresh(void) { return PyModule_Create(&module); }\n"),
            ("fresh-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: fresh\nVersion: 1.0\n"),
            ("fresh-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: cp311-cp311-manylinux_2_39_x86_64\n"),
        ],
    );
    let built = run(Command::new("gcc")
        .args(["-shared", "-fPIC", "-O1", "-I/usr/include/python3.11", "-o"])
        .arg(app.join("fresh.cpython-311-x86_64-linux-gnu.so"))
        .arg(app.join("fresh.c")));
    assert_eq!(built.code, Some(0), "{built:#?}");
    std::fs::remove_file(app.join("fresh.c")).expect("rm");
    let pyz = scratch.path("fresh.pyz");
    let finished = packed(&[
        app.to_str().unwrap(),
        "-o",
        pyz.to_str().unwrap(),
        "--python-platform",
        "x86_64-manylinux_2_36",
    ]);
    assert!(
        finished.stderr.contains(
            "the pyz needs glibc 2.39 or newer (set by fresh 1.0 (wheel tag manylinux_2_39_x86_64))"
        ),
        "{finished:#?}"
    );
    assert_eq!(
        manifest_of(&pyz)["tags"]["platform"],
        "manylinux_2_39_x86_64"
    );
    let glibc = run(Command::new("getconf").arg("GNU_LIBC_VERSION")).stdout;
    let glibc = glibc.trim().trim_start_matches("glibc ");
    assert_one_line_refusal(
        &run(Command::new(PYTHON).arg(&pyz)),
        "fresh.pyz",
        &format!("needs glibc 2.39 or newer (manylinux_2_39_x86_64); this host has glibc {glibc}"),
    );
}

/// Debian trixie's CPython 3.13 and what it needs, unpacked into `target/debian-roots/trixie`.
fn trixie() -> PathBuf {
    debian_root("trixie", &["python3.13", "libstdc++6"])
}

/// A `python3.13` for this host: trixie's, started by trixie's own dynamic loader (its glibc is
/// newer than the host's), in a directory to put on PATH.
fn trixie_python_on_host() -> PathBuf {
    let root = trixie();
    let bin = root.with_file_name("trixie-bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let script = bin.join("python3.13");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec {root}/lib64/ld-linux-x86-64.so.2 --library-path {root}/usr/lib/x86_64-linux-gnu {root}/usr/bin/python3.13 \"$@\"\n",
            root = root.display()
        ),
    )
    .expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    bin
}

/// Runs `python3.13 /app.pyz ARGS` in a chroot of `root` (trixie), with /proc mounted.
fn run_in_trixie(root: &Path, pyz: &Path, args: &str) -> Finished {
    std::fs::copy(pyz, root.join("app.pyz")).expect("copy pyz");
    let script = format!(
        "mount -t proc proc {root}/proc && exec chroot {root} /usr/bin/python3.13 /app.pyz {args}",
        root = root.display()
    );
    run(Command::new("unshare")
        .args(["--mount", "--fork", "sh", "-c", &script])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"))
}

#[test]
fn pyz_started_by_trixie_python_3_13_is_refused_in_one_line() {
    if !is_root() {
        eprintln!("skipped: the chroot test needs root");
        return;
    }
    let root = trixie();
    assert_one_line_refusal(
        &run_in_trixie(&root, probe_pyz(), "numpy"),
        "app.pyz",
        "built for CPython 3.11 (cp311); this is CPython 3.13.5 (cp313) at /usr/bin/python3.13: run it with python3.11, or pack it again with `--python 3.13`",
    );
}

#[test]
fn pyz_for_python_3_13_runs_on_trixie() {
    if !is_root() {
        eprintln!("skipped: the chroot test needs root");
        return;
    }
    let requirements = ["orjson==3.10.7", "numpy==2.2.6"];
    cache_wheels_for(
        "3.13",
        &["manylinux_2_17_x86_64", "manylinux2014_x86_64", "any"],
        &requirements,
    );
    let root = trixie();
    let scratch = Scratch::new();
    let app = scratch.path("app");
    write_tree(
        &app,
        &[("__main__.py", "import sys, numpy, orjson\nprint(sys.version_info[:2], orjson.dumps([1]).decode(), float(numpy.arange(4.0).sum()), __spec__.name)\n")],
    );
    let expected = "(3, 13) [1] 6.0 __pyferry_main__\n";
    // Compiled by trixie's python3.13 (on PATH): 3.13 bytecode inside.
    let compiled = scratch.path("compiled.pyz");
    let path = format!("{}:/usr/bin:/bin", trixie_python_on_host().display());
    let mut command = pyferry_command(["pack", "--format", "pyz", "--python", "3.13"]);
    command
        .arg(&app)
        .args(requirements)
        .arg("-o")
        .arg(&compiled)
        .args(["--no-index", "--find-links"])
        .arg(wheel_cache())
        .env("PATH", &path);
    let finished = run(&mut command);
    assert_eq!(finished.code, Some(0), "{finished:#?}");
    assert!(
        finished.stderr.contains("compiling ") && finished.stderr.contains(" for Python 3.13"),
        "{finished:#?}"
    );
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&compiled).unwrap()).unwrap();
    let mut pyc = Vec::new();
    std::io::Read::read_to_end(&mut zip.by_name("__pyferry_main__.pyc").unwrap(), &mut pyc)
        .unwrap();
    assert_eq!(&pyc[..4], &[0xf3, 0x0d, 0x0d, 0x0a], "3.13's magic number");
    assert_eq!(manifest_of(&compiled)["tags"]["interpreter"], "cp313");
    let ran = run_in_trixie(&root, &compiled, "");
    assert_eq!(ran.code, Some(0), "{ran:#?}");
    assert_eq!(ran.stdout, expected);
    // No python3.13 on PATH: sources only, said once, and it still runs.
    let sources = scratch.path("sources.pyz");
    let mut command = pyferry_command(["pack", "--format", "pyz", "--python", "3.13"]);
    command
        .arg(&app)
        .args(requirements)
        .arg("-o")
        .arg(&sources)
        .args(["--no-index", "--find-links"])
        .arg(wheel_cache())
        .env("PATH", "/usr/bin:/bin");
    let finished = run(&mut command);
    assert_eq!(finished.code, Some(0), "{finished:#?}");
    assert!(
        finished
            .stderr
            .contains("no python3.13 on PATH to compile bytecode with: the pyz holds sources only"),
        "{finished:#?}"
    );
    let zip = zip::ZipArchive::new(std::fs::File::open(&sources).unwrap()).unwrap();
    assert!(!zip
        .file_names()
        .any(|name| name.expect("a UTF-8 name").ends_with(".pyc")));
    let ran = run_in_trixie(&root, &sources, "");
    assert_eq!(ran.code, Some(0), "{ran:#?}");
    assert_eq!(ran.stdout, expected);
    // And Debian's 3.11 refuses it.
    assert_one_line_refusal(
        &run(Command::new(PYTHON).arg(&compiled)),
        "compiled.pyz",
        "built for CPython 3.13 (cp313); this is CPython 3.11.2 (cp311) at /usr/bin/python3.11",
    );
}

/// The bootstrap on its own: a `python -m zipapp` archive of numpy, Pillow 13 and
/// `pyferry_bootstrap.py`, whose `__main__.py` installs it first. No manifest: the libraries
/// each object needs are read from the ELF headers at run time.
#[test]
fn bootstrap_alone_in_a_python_m_zipapp_archive() {
    let scratch = Scratch::new();
    let app = scratch.path("zipapp");
    pip_install(&app, &["numpy==2.2.6", "pillow==13.0.0"]);
    std::fs::copy(
        workspace_root().join("packer/python/pyferry_bootstrap.py"),
        app.join("pyferry_bootstrap.py"),
    )
    .expect("copy the bootstrap");
    write_tree(
        &app,
        &[(
            "__main__.py",
            "import pyferry_bootstrap\npyferry_bootstrap.install()\n\nimport numpy\nfrom PIL import Image, ImageDraw, ImageFont\n\nfont = ImageFont.load_default(size=24)\nimage = Image.new('L', (160, 40))\nImageDraw.Draw(image).text((4, 4), 'pyferry', font=font, fill=255)\nprint(float(numpy.linalg.inv(numpy.eye(3) * 2.0).sum()), image.getbbox(), numpy.__file__.startswith(__file__.rsplit('/', 1)[0]))\n",
        )],
    );
    let pyz = scratch.path("plain.pyz");
    let built = run(Command::new(PYTHON)
        .args(["-m", "zipapp"])
        .arg(&app)
        .arg("-o")
        .arg(&pyz)
        .args(["-p", "/usr/bin/python3.11"]));
    assert_eq!(built.code, Some(0), "{built:#?}");
    assert_lines(
        &run(Command::new(PYTHON).arg(&pyz)),
        &["1.5 (6, 10, 82, 33) True"],
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile hosts: each run in a mount namespace of its own, as root (CI is root).
// ---------------------------------------------------------------------------------------------

fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!("skipped: {test} needs root (namespaces, mounts)");
    true
}

/// Runs `body` (sh) with `unshare --mount [EXTRA]` in a private mount namespace where the probe
/// pyz is at `/mnt/app/probe.pyz` (`$APP`) and the seccomp tool at `$SECCOMP`, after `setup`.
fn in_namespace(extra: &[&str], setup: &str, body: &str) -> Finished {
    let pyz = probe_pyz();
    let script = format!(
        "set -e; mount --make-rprivate /; mount -t tmpfs tmpfs /mnt; mkdir /mnt/app /mnt/tools; \
         mount --bind '{app_dir}' /mnt/app; mount --bind '{tools}' /mnt/tools; {setup}; set +e; \
         APP=/mnt/app/{name}; SECCOMP=/mnt/tools/seccomp-run; {body}",
        app_dir = pyz.parent().expect("parent").display(),
        tools = crate::hostile::tools_dir().display(),
        name = pyz.file_name().expect("name").to_string_lossy(),
    );
    let mut command = Command::new("unshare");
    command
        .arg("--mount")
        .args(extra)
        .args(["sh", "-c", &script])
        .env_remove("XDG_RUNTIME_DIR")
        .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin");
    run(&mut command)
}

#[test]
fn pyz_memfd_denied_by_seccomp_falls_back_to_an_unnamed_tmpfile() {
    if skip_unless_root("the seccomp fallback test") {
        return;
    }
    let finished = in_namespace(
        &[],
        "mount -t tmpfs -o mode=1777 tmpfs /dev/shm",
        "$SECCOMP eperm /usr/bin/python3.11 $APP numpy backing; status=$?; \
         echo \"left in /dev/shm: $(ls -A /dev/shm | wc -l)\" >&2; exit $status",
    );
    let mut expected = NUMPY_EXPECTED.to_vec();
    expected.extend([
        "backing ['/dev/shm'] openblas named False",
        "code from the archive True openblas copied None",
    ]);
    assert_lines(&finished, &expected);
    assert!(
        finished.stderr.contains("left in /dev/shm: 0"),
        "{finished:#?}"
    );
}

/// The archive on a `noexec` mount: its code cannot be mapped from it, so the holes left for
/// that are filled in the memory files (whole copies), and numpy works the same.
#[test]
fn pyz_on_a_noexec_mount_copies_the_code_instead() {
    if skip_unless_root("the noexec archive test") {
        return;
    }
    let finished = in_namespace(
        &[],
        "mount -o remount,bind,noexec /mnt/app",
        "exec /usr/bin/python3.11 $APP numpy backing",
    );
    let mut expected = NUMPY_EXPECTED.to_vec();
    expected.extend([
        "backing ['memfd'] openblas named True",
        "code from the archive False openblas copied 1.0",
    ]);
    assert_lines(&finished, &expected);
}

#[test]
fn pyz_kernel_without_noexec_seal_retries_without_the_flag() {
    if skip_unless_root("the MFD_NOEXEC_SEAL retry test") {
        return;
    }
    let finished = in_namespace(
        &[],
        "true",
        "exec $SECCOMP einval-seal /usr/bin/python3.11 $APP backing",
    );
    assert_lines(&finished, SHARED_BACKING);
}

#[test]
fn pyz_memfd_denied_and_every_tmp_noexec_is_one_clear_line() {
    if skip_unless_root("the no-way-to-load test") {
        return;
    }
    let finished = in_namespace(
        &[],
        "mkdir /mnt/run; for dir in /mnt/run /dev/shm /tmp /var/tmp; do mount -t tmpfs -o noexec tmpfs $dir; done",
        "XDG_RUNTIME_DIR=/mnt/run exec $SECCOMP eperm /usr/bin/python3.11 $APP numpy",
    );
    assert_one_line_refusal(
        &finished,
        "probe-cp311-manylinux_2_28_x86_64.pyz",
        "no way to hold shared objects in memory on this host (memfd_create(MFD_NOEXEC_SEAL): Operation not permitted; O_TMPFILE in /mnt/run: mounted noexec; O_TMPFILE in /dev/shm: mounted noexec; O_TMPFILE in /tmp: mounted noexec; O_TMPFILE in /var/tmp: mounted noexec)",
    );
}

#[test]
fn pyz_runs_with_a_read_only_root_a_noexec_tmp_and_no_home() {
    if skip_unless_root("the read-only root test") {
        return;
    }
    let finished = in_namespace(
        &[],
        "for dir in /tmp /var/tmp /dev/shm; do mount -t tmpfs -o noexec tmpfs $dir; done; \
         mount -o remount,bind,ro /mnt/app; mount -o remount,bind,ro /",
        "touch /probe-write 2>/dev/null && echo 'root is writable' >&2; \
         exec env -u HOME /usr/bin/python3.11 $APP numpy environment",
    );
    let mut expected = NUMPY_EXPECTED.to_vec();
    expected.push("home None executable python3.11");
    assert_lines(&finished, &expected);
    assert!(
        !finished.stderr.contains("root is writable"),
        "{finished:#?}"
    );
}

#[test]
fn pyz_memfd_noexec_2_in_a_new_pid_namespace() {
    if skip_unless_root("the vm.memfd_noexec test") {
        return;
    }
    let level = std::fs::read_to_string("/proc/sys/vm/memfd_noexec").unwrap_or_default();
    if level.trim().is_empty() {
        eprintln!("skipped: this kernel has no vm.memfd_noexec (before 6.3)");
        return;
    }
    let finished = in_namespace(
        &["--pid", "--fork", "--mount-proc"],
        "echo 2 > /proc/sys/vm/memfd_noexec",
        "echo \"memfd_noexec=$(cat /proc/sys/vm/memfd_noexec)\" >&2; exec /usr/bin/python3.11 $APP backing",
    );
    assert_lines(&finished, SHARED_BACKING);
    assert!(finished.stderr.contains("memfd_noexec=2"), "{finished:#?}");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/vm/memfd_noexec").unwrap_or_default(),
        level,
        "the host's level changed"
    );
}

/// `strace -f` of a run that imports numpy, pydantic, cryptography and Pillow: no file is
/// created, renamed, linked or written to; only memory files are made.
#[test]
fn pyz_run_creates_no_file() {
    let trace_dir = Scratch::new();
    let log = trace_dir.path("trace");
    let finished = run(Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(&log)
        .args([
            "-e",
            "trace=open,openat,openat2,creat,mkdir,mkdirat,rename,renameat,renameat2,link,linkat,symlink,symlinkat,unlink,unlinkat,memfd_create",
        ])
        .arg(PYTHON)
        .arg(probe_pyz())
        .args(["numpy", "pydantic", "cryptography", "pillow_text"]));
    assert_eq!(finished.code, Some(0), "{finished:#?}");
    let trace = std::fs::read_to_string(&log).expect("read the trace");
    let creating: Vec<&str> = trace
        .lines()
        .filter(|line| {
            line.contains("O_CREAT")
                || line.contains("O_TMPFILE")
                || line.contains("O_WRONLY")
                || line.contains("O_RDWR")
                || [
                    "creat(", "mkdir", "rename", "link(", "linkat(", "symlink", "unlink",
                ]
                .iter()
                .any(|call| {
                    line.split_whitespace()
                        .nth(1)
                        .is_some_and(|word| word.starts_with(call))
                })
        })
        .collect();
    assert!(
        creating.is_empty(),
        "files created or written: {creating:#?}"
    );
    let memory_files = trace
        .lines()
        .filter(|line| line.contains("memfd_create("))
        .count();
    assert!(memory_files >= 10, "{memory_files} memory files:\n{trace}");
}
