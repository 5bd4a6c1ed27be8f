//! The packer for real projects: requirements, `-r` files with hashes, pyproject projects,
//! console scripts and `#!python` scripts (`-c`, `--all-scripts`), target-tag checks,
//! reproducible output, and `pyferry inspect` / `pyferry verify`. Wheels come from the package
//! index once, then from `target/test-wheels` (`--no-index --find-links`).

use std::path::Path;
use std::process::Command;

use pyferry_tests::{
    cache_wheels, pyferry_command, run, wheel_cache, write_tree, Finished, Scratch,
};

/// `pyferry pack ARGS -o OUT` offline from the wheel cache.
fn pack_offline(args: &[&str], output: &Path) -> Finished {
    let mut command = pyferry_command(["pack"]);
    command
        .args(args)
        .arg("-o")
        .arg(output)
        .arg("--no-index")
        .arg("--find-links")
        .arg(wheel_cache());
    run(&mut command)
}

#[track_caller]
fn assert_error_line(finished: &Finished, code: i32, needle: &str) {
    assert_eq!(finished.code, Some(code), "{finished:#?}");
    let last = finished.stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("pyferry: error: ") && last.contains(needle),
        "`{needle}` not in: {}",
        finished.stderr
    );
    assert!(
        !finished.stderr.contains("panicked") && !finished.stderr.contains("Traceback"),
        "{}",
        finished.stderr
    );
}

#[test]
fn console_script_of_a_real_cli() {
    cache_wheels(&["httpie==3.2.4"]);
    let scratch = Scratch::new();
    let exe = scratch.path("http");
    let packed = pack_offline(&["httpie==3.2.4", "-c", "http"], &exe);
    assert_eq!(packed.code, Some(0), "{packed:#?}");
    assert!(
        packed.stderr.contains("packed ") && packed.stderr.contains(" distributions, "),
        "{}",
        packed.stderr
    );
    assert_eq!(
        run(Command::new(&exe).arg("--version")).success().stdout,
        "3.2.4\n"
    );
    let unknown = pack_offline(&["httpie==3.2.4", "-c", "nope"], &scratch.path("nope"));
    assert_error_line(&unknown, 2, "no console script named `nope` in the installed distributions (available: http, httpie, https, ");
}

#[test]
fn a_program_in_a_wheels_scripts_is_named_as_a_program_not_a_missing_script() {
    // ruff's wheel carries the `ruff` executable (Rust) in `ruff-0.8.4.data/scripts/`.
    cache_wheels(&["ruff==0.8.4"]);
    let scratch = Scratch::new();
    let output = scratch.path("ruff");
    let refused = pack_offline(&["ruff==0.8.4", "-c", "ruff"], &output);
    assert_error_line(
        &refused,
        2,
        "`ruff` of ruff 0.8.4 is a program, not a Python entry point (`.data/scripts/ruff` is not a `#!python` script)",
    );
    assert!(!output.exists());
}

#[test]
fn pyproject_project_with_a_dependency() {
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
    let exe = scratch.path("greet");
    // The build backend comes from the index (build isolation); pyflakes from the cache.
    let mut command = pyferry_command(["pack"]);
    command
        .arg(&project)
        .args(["-c", "greet", "-o"])
        .arg(&exe)
        .arg("--find-links")
        .arg(wheel_cache());
    let packed = run(&mut command);
    assert_eq!(packed.code, Some(0), "{packed:#?}");
    let finished = run(Command::new(&exe).arg("x"));
    assert_eq!(finished.code, Some(3), "{finished:#?}");
    assert_eq!(
        finished.stdout,
        "hello from greeter 0.1.0 with pyflakes 3.2.0 ['x']\n"
    );
}

#[test]
fn requirements_file_with_hashes() {
    cache_wheels(&["pyflakes==3.2.0"]);
    let scratch = Scratch::new();
    let good = scratch.path("good.txt");
    std::fs::write(&good, "# pinned\npyflakes==3.2.0 \\\n    --hash=sha256:84b5be138a2dfbb40689ca07e2152deb896a65c3a3e24c251c5c62489568074a\n").expect("write");
    let exe = scratch.path("pyflakes");
    let packed = pack_offline(&["-r", good.to_str().unwrap(), "-c", "pyflakes"], &exe);
    assert_eq!(packed.code, Some(0), "{packed:#?}");
    let version = run(Command::new(&exe).arg("--version")).success();
    assert!(
        version.stdout.starts_with("3.2.0 Python 3.11.2 on Linux"),
        "{}",
        version.stdout
    );
    let bad = scratch.path("bad.txt");
    std::fs::write(&bad, "pyflakes==3.2.0 --hash=sha256:0000000000000000000000000000000000000000000000000000000000000000\n").expect("write");
    let refused = pack_offline(
        &["-r", bad.to_str().unwrap(), "-c", "pyflakes"],
        &scratch.path("bad"),
    );
    assert_error_line(&refused, 2, "HASHES");
    assert!(!scratch.path("bad").exists());
}

#[test]
fn sdist_only_requirement_is_refused_with_the_target() {
    let scratch = Scratch::new();
    // uv is installed by .ci/run; both resolvers give the same message.
    for resolver in ["pip", "uv"] {
        let mut command = pyferry_command([
            "pack",
            "docopt==0.6.2",
            "-e",
            "docopt",
            "--resolver",
            resolver,
            "-o",
        ]);
        command.arg(scratch.path("out"));
        let finished = run(&mut command);
        assert_error_line(&finished, 2, "no wheel of `docopt==0.6.2` for CPython 3.11 (cp311, abi3 or none) on manylinux_2_28_x86_64 or older");
        assert!(
            finished.stderr.contains("nothing is built from an sdist"),
            "{resolver}: {}",
            finished.stderr
        );
    }
}

#[test]
fn both_resolvers_give_the_same_application() {
    cache_wheels(&["flake8==7.1.1"]);
    let scratch = Scratch::new();
    let mut digests = Vec::new();
    for resolver in ["pip", "uv"] {
        let exe = scratch.path(&format!("flake8-{resolver}"));
        let packed = pack_offline(
            &["flake8==7.1.1", "-c", "flake8", "--resolver", resolver],
            &exe,
        );
        assert_eq!(packed.code, Some(0), "{resolver}: {packed:#?}");
        assert!(run(Command::new(&exe).arg("--version"))
            .success()
            .stdout
            .starts_with("7.1.1 "));
        digests.push(
            run(Command::new("sha256sum").arg(&exe))
                .success()
                .stdout
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string(),
        );
    }
    assert_eq!(
        digests[0], digests[1],
        "uv and pip resolved to different distributions"
    );
}

#[test]
fn wheel_for_another_platform_is_refused_with_both_tag_sets() {
    let scratch = Scratch::new();
    let foreign = scratch.path("foreign");
    let download = run(
        Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
            .args([
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--python-version",
                "3.11",
            ])
            .args(["--platform", "macosx_11_0_arm64", "orjson==3.10.7", "-d"])
            .arg(&foreign),
    );
    assert_eq!(download.code, Some(0), "{download:#?}");
    let wheel = std::fs::read_dir(&foreign)
        .expect("list")
        .next()
        .expect("a wheel")
        .expect("entry")
        .path();
    let mut command = pyferry_command(["pack"]);
    command
        .arg(&wheel)
        .args(["--no-deps", "-e", "orjson", "-o"])
        .arg(scratch.path("out"));
    let finished = run(&mut command);
    assert_error_line(&finished, 2, "orjson 3.10.7 is built for cp311-cp311-macosx_10_15_x86_64.macosx_11_0_arm64.macosx_10_15_universal2, but the application needs CPython 3.11");
}

#[test]
fn local_wheels_with_no_deps_need_no_python() {
    cache_wheels(&["pyflakes==3.2.0"]);
    let scratch = Scratch::new();
    let wheel = wheel_cache().join("pyflakes-3.2.0-py2.py3-none-any.whl");
    let exe = scratch.path("pyflakes");
    let mut command = pyferry_command(["pack"]);
    command
        .arg(&wheel)
        .args(["--no-deps", "-c", "pyflakes", "-o"])
        .arg(&exe)
        .env("PYFERRY_PIP_PYTHON", "/nonexistent/python");
    let packed = run(&mut command);
    assert_eq!(packed.code, Some(0), "{packed:#?}");
    assert!(run(Command::new(&exe).arg("--version"))
        .success()
        .stdout
        .starts_with("3.2.0 "));
}

#[test]
fn all_scripts_dispatch_on_the_name_the_app_is_started_as() {
    cache_wheels(&["flake8==7.1.1"]);
    let scratch = Scratch::new();
    let exe = scratch.path("tools");
    let packed = pack_offline(&["flake8==7.1.1", "--all-scripts"], &exe);
    assert_eq!(packed.code, Some(0), "{packed:#?}");
    let link = scratch.path("flake8");
    std::os::unix::fs::symlink(&exe, &link).expect("symlink");
    let version = run(Command::new(&link).arg("--version")).success();
    assert!(
        version
            .stdout
            .starts_with("7.1.1 (mccabe: 0.7.0, pycodestyle: 2.12.1, pyflakes: 3.2.0)"),
        "{}",
        version.stdout
    );
    let lint = scratch.path("lint.py");
    std::fs::write(&lint, "import os\n").expect("write");
    let findings = run(Command::new(&link).arg(&lint));
    assert_eq!(findings.code, Some(1));
    assert!(
        findings.stdout.contains("F401 'os' imported but unused"),
        "{}",
        findings.stdout
    );
    let direct = run(&mut Command::new(&exe));
    assert_eq!(direct.code, Some(2));
    assert!(
        direct
            .stderr
            .contains("which is none of its scripts (flake8)"),
        "{}",
        direct.stderr
    );
}

#[test]
fn same_inputs_give_byte_identical_executables() {
    use std::io::Read;
    let digest = |path: &Path| {
        let output = run(Command::new("sha256sum").arg(path)).success();
        output
            .stdout
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let files = [
        ("__main__.py", "import pkg.mod\nprint(pkg.mod.VALUE)\n"),
        ("pkg/__init__.py", ""),
        ("pkg/mod.py", "VALUE = {'a': [1, 2, 3], 'b': 'text'}\ndef f(x):\n    return [y * 2 for y in x if y]\n"),
        ("pkg/data.txt", "some data\n"),
    ];
    for epoch in [None, Some("1700000000")] {
        let first = Scratch::new();
        let second = Scratch::new();
        write_tree(&first.path("one"), &files);
        write_tree(&second.path("elsewhere/two"), &files);
        let mut outputs = Vec::new();
        for (scratch, dir) in [(&first, "one"), (&second, "elsewhere/two")] {
            let output = scratch.path("app.bin");
            let mut command = pyferry_command(["pack"]);
            command
                .arg(scratch.path(dir))
                .arg("-o")
                .arg(&output)
                .current_dir(scratch.dir.path());
            if let Some(epoch) = epoch {
                command.env("SOURCE_DATE_EPOCH", epoch);
            }
            run(&mut command).success();
            outputs.push(output);
        }
        assert_eq!(
            digest(&outputs[0]),
            digest(&outputs[1]),
            "SOURCE_DATE_EPOCH={epoch:?}"
        );
        let mut bytes = Vec::new();
        std::fs::File::open(&outputs[0])
            .expect("open")
            .read_to_end(&mut bytes)
            .expect("read");
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(first.dir.path().to_str().unwrap()),
            "a build path leaked into the output"
        );
    }
}

#[test]
fn inspect_and_verify_a_packed_app() {
    cache_wheels(&["pyflakes==3.2.0"]);
    let scratch = Scratch::new();
    let exe = scratch.path("pyflakes");
    assert_eq!(
        pack_offline(&["pyflakes==3.2.0", "-c", "pyflakes"], &exe).code,
        Some(0)
    );

    let inspect = run(pyferry_command(["inspect", "--json"]).arg(&exe)).success();
    let report: serde_json::Value = serde_json::from_str(&inspect.stdout).expect("json");
    assert_eq!(report["python_version"], "3.11");
    assert_eq!(report["entry_point"], "pyflakes.api:main");
    let distributions = report["distributions"].as_array().expect("distributions");
    assert!(
        distributions.iter().any(|d| d["name"] == "pyflakes"
            && d["version"] == "3.2.0"
            && d["size"].as_u64() > Some(100_000)),
        "{report}"
    );
    let human = run(pyferry_command(["inspect"]).arg(&exe)).success();
    assert!(
        human.stdout.contains("entry point:   pyflakes.api:main"),
        "{}",
        human.stdout
    );

    let ok = run(pyferry_command(["verify"]).arg(&exe)).success();
    assert!(
        ok.stdout.contains(": ok, the launcher and "),
        "{}",
        ok.stdout
    );

    // One flipped byte anywhere is found: in the launcher, in an entry, in the central
    // directory, in the end record's seal.
    let bytes = std::fs::read(&exe).expect("read");
    let central = bytes
        .windows(4)
        .rposition(|window| window == b"PK\x01\x02")
        .expect("central directory");
    let entry = bytes
        .windows(11)
        .position(|window| window == b"pyflakes/ap")
        .expect("an entry name")
        + 200;
    for (label, position, needle) in [
        ("launcher", 5000, "`<launcher>` differs"),
        ("entry", entry, "`pyflakes/api.py`"),
        ("central directory", central + 12, ""),
        ("seal", bytes.len() - 3, "seal"),
    ] {
        let mut damaged = bytes.clone();
        damaged[position] ^= 0x01;
        let path = scratch.path(&format!("damaged-{position}"));
        std::fs::write(&path, &damaged).expect("write");
        let finished = run(pyferry_command(["verify"]).arg(&path));
        assert!(
            matches!(finished.code, Some(1) | Some(2)),
            "{label}: {finished:#?}"
        );
        assert!(
            finished.stderr.starts_with("pyferry: error: ") && finished.stderr.lines().count() == 1,
            "{label}: {}",
            finished.stderr
        );
        assert!(
            finished.stderr.contains(needle),
            "{label}: {}",
            finished.stderr
        );
    }

    let plain = scratch.path("plain.txt");
    std::fs::write(&plain, "not an application").expect("write");
    for command in ["inspect", "verify"] {
        let finished = run(pyferry_command([command]).arg(&plain));
        assert_error_line(&finished, 2, "is not a pyferry application");
    }
}

#[test]
fn compressed_executables_are_smaller_and_behave_the_same() {
    let scratch = Scratch::new();
    let app = scratch.path("app");
    write_tree(&app, &[("__main__.py", "import json, ssl, sqlite3, decimal\nprint(json.dumps({'ok': ssl.OPENSSL_VERSION.split()[0]}), sqlite3.connect(':memory:').execute('select 6*7').fetchone()[0], decimal.Decimal(1) / 8)\n")]);
    let fast = scratch.path("fast");
    let small = scratch.path("small");
    run(pyferry_command(["pack"]).arg(&app).arg("-o").arg(&fast)).success();
    run(pyferry_command(["pack", "--compress"])
        .arg(&app)
        .arg("-o")
        .arg(&small))
    .success();
    // The payloads (what follows the launcher, which is the same in both).
    let launcher = std::fs::metadata(pyferry_tests::launcher())
        .expect("stat the launcher")
        .len();
    let payload = |path: &Path| std::fs::metadata(path).expect("stat").len() - launcher;
    assert!(
        payload(&small) * 10 < payload(&fast) * 7,
        "{} vs {}",
        payload(&small),
        payload(&fast)
    );
    let expected = "{\"ok\": \"OpenSSL\"} 42 0.125\n";
    assert_eq!(run(&mut Command::new(&fast)).success().stdout, expected);
    assert_eq!(run(&mut Command::new(&small)).success().stdout, expected);
    run(pyferry_command(["verify"]).arg(&small)).success();
}

/// The glibc floor a launcher needs, from `objdump -T`: the highest `GLIBC_2.N`.
fn objdump_glibc_floor(file: &Path) -> (u32, u32) {
    let dump = run(Command::new("objdump").arg("-T").arg(file)).success();
    dump.stdout
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter_map(|word| word.strip_prefix("GLIBC_2."))
        .filter_map(|minor| minor.parse::<u32>().ok())
        .map(|minor| (2, minor))
        .max()
        .expect("the launcher needs glibc")
}

fn inspect_json(exe: &Path) -> serde_json::Value {
    let finished = run(pyferry_command(["inspect", "--json"]).arg(exe)).success();
    serde_json::from_str(&finished.stdout).expect("inspect --json prints JSON")
}

#[test]
fn a_requirement_without_a_wheel_for_the_platform_names_the_platform_that_has_one() {
    // pyzmq 27.3.0 publishes x86_64 wheels tagged manylinux_2_26 and 2_28 only.
    let scratch = Scratch::new();
    for resolver in ["uv", "pip"] {
        let mut command = pyferry_command([
            "pack",
            "pyzmq==27.3.0",
            "-e",
            "zmq",
            "--python-platform",
            "x86_64-manylinux_2_17",
            "--resolver",
            resolver,
            "-o",
        ]);
        command.arg(scratch.path("out"));
        let finished = run(&mut command);
        assert_error_line(
            &finished,
            2,
            "no wheel of `pyzmq==27.3.0` for CPython 3.11 (cp311, abi3 or none) on manylinux_2_17_x86_64 or older",
        );
        assert!(
            finished
                .stderr
                .contains("it has wheels for glibc 2.28: hint: pack with `--python-platform x86_64-manylinux_2_28`"),
            "{resolver}: {}",
            finished.stderr
        );
        assert!(!scratch.path("out").exists());
    }
    let unknown = run(&mut pyferry_command([
        "pack",
        "pyzmq==27.3.0",
        "--python-platform",
        "x86_64-musllinux_1_2",
        "-o",
        "out",
    ]));
    assert_eq!(unknown.code, Some(2), "{unknown:#?}");
    assert!(
        unknown
            .stderr
            .contains("`x86_64-musllinux_1_2` is not a platform"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn inspect_shows_the_glibc_floor_and_what_sets_it() {
    cache_wheels(&["pyzmq==27.3.0"]);
    let scratch = Scratch::new();
    let launcher_floor = objdump_glibc_floor(&pyferry_tests::launcher());

    // The standard library alone: the runtime's floor.
    let hello = scratch.packed_app(&[("__main__.py", "print('hi')\n")], &[]);
    let report = inspect_json(&hello);
    assert_eq!(report["platform"], "x86_64-manylinux_2_28");
    let floor = report["glibc_floor"].as_str().expect("a floor");
    let (major, minor) = floor.split_once('.').expect("2.N");
    let floor = (major.parse::<u32>().unwrap(), minor.parse::<u32>().unwrap());
    assert!(floor >= launcher_floor, "{floor:?} < {launcher_floor:?}");

    // A wheel tagged manylinux_2_26: the floor is at least that, and names what sets it.
    let exe = scratch.path("zmq.bin");
    let packed = pack_offline(&["pyzmq==27.3.0", "-e", "zmq"], &exe);
    assert_eq!(packed.code, Some(0), "{packed:#?}");
    let report = inspect_json(&exe);
    let floor = report["glibc_floor"].as_str().expect("a floor").to_string();
    let minor: u32 = floor.trim_start_matches("2.").parse().expect("2.N");
    assert!(minor >= 26 && minor >= launcher_floor.1, "{floor}");
    let set_by = report["glibc_floor_set_by"].as_str().expect("set by");
    if minor == 26 {
        assert!(set_by.starts_with("pyzmq 27.3.0 (wheel tag"), "{set_by}");
    }
    let text = run(pyferry_command(["inspect"]).arg(&exe)).success().stdout;
    assert!(
        text.contains(&format!(
            "runs on:       Linux x86_64 with glibc {floor} or newer (set by {set_by})"
        )),
        "{text}"
    );
}

/// docutils 0.20.1 installs its `rst2*.py` tools as `#!python` scripts in
/// `docutils-0.20.1.data/scripts/`, not as console scripts: `-c rst2html.py` runs one as
/// `__main__`, `--all-scripts` packs them with the console script `docutils`.
#[test]
fn python_scripts_of_a_wheels_data_directory_run_as_main() {
    cache_wheels(&["docutils==0.20.1"]);
    let scratch = Scratch::new();
    let input = scratch.path("in.rst");
    std::fs::write(&input, "Title\n=====\n\nHello *world*.\n").expect("write");
    let exe = scratch.path("rst2html.py");
    let packed = pack_offline(&["docutils==0.20.1", "-c", "rst2html.py"], &exe);
    assert_eq!(packed.code, Some(0), "{packed:#?}");
    let html = run(Command::new(&exe).arg(&input)).success().stdout;
    assert!(
        html.contains("<title>Title</title>") && html.contains("<p>Hello <em>world</em>.</p>"),
        "{html}"
    );

    let tools = scratch.path("tools");
    let packed = pack_offline(&["docutils==0.20.1", "--all-scripts"], &tools);
    assert_eq!(packed.code, Some(0), "{packed:#?}");
    let listed = run(&mut Command::new(&tools));
    assert_error_line(
        &listed,
        2,
        "which is none of its scripts (docutils, rst2html.py, rst2html4.py,",
    );
    let man = scratch.path("rst2man.py");
    std::os::unix::fs::symlink(&tools, &man).expect("symlink");
    let page = run(Command::new(&man).arg(&input)).success().stdout;
    assert!(
        page.starts_with(".\\\" Man page generated from reStructuredText."),
        "{page}"
    );
    let console = scratch.path("docutils");
    std::os::unix::fs::symlink(&tools, &console).expect("symlink");
    let version = run(Command::new(&console).arg("--version"))
        .success()
        .stdout;
    assert!(
        version.starts_with("docutils (Docutils 0.20.1"),
        "{version}"
    );
}
