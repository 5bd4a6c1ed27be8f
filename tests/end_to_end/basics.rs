//! Running an app: output, arguments, exit statuses, tracebacks, start-up modes.

use std::process::Command;

use pyferry_tests::{run, Scratch};

#[test]
fn hello_world_prints_and_exits_zero() {
    let scratch = Scratch::new();
    let app = scratch.packed_app(&[("__main__.py", "print('hello, world')\n")], &[]);
    let finished = run(&mut Command::new(&app)).success();
    assert_eq!(finished.stdout, "hello, world\n");
    assert_eq!(finished.stderr, "");
}

#[test]
fn argv_executable_and_path_are_what_a_user_expects() {
    let scratch = Scratch::new();
    let app = scratch.packed_app(
        &[(
            "__main__.py",
            "import sys\nprint(sys.argv[1:])\nprint(sys.executable)\nprint(sys.path)\nprint(__name__, __file__)\n",
        )],
        &[],
    );
    let finished = run(Command::new(&app).args(["a b", "--flag", "é"])).success();
    let exe = app.to_str().unwrap();
    let lines: Vec<&str> = finished.stdout.lines().collect();
    assert_eq!(lines[0], "['a b', '--flag', 'é']");
    assert_eq!(lines[1], exe);
    assert_eq!(lines[2], format!("['{exe}']"));
    assert_eq!(lines[3], format!("__main__ {exe}/__main__.py"));
}

#[test]
fn sys_exit_statuses_match_python() {
    let scratch = Scratch::new();
    let app = scratch.packed_app(
        &[(
            "__main__.py",
            "import sys\nmode = sys.argv[1]\nif mode == 'int': sys.exit(3)\nif mode == 'msg': sys.exit('bad thing')\nif mode == 'none': sys.exit()\nif mode == 'exit': exit(4)\n",
        )],
        &[],
    );
    let int = run(Command::new(&app).arg("int"));
    assert_eq!(int.code, Some(3));
    let message = run(Command::new(&app).arg("msg"));
    assert_eq!(message.code, Some(1));
    assert_eq!(message.stderr, "bad thing\n");
    assert_eq!(run(Command::new(&app).arg("none")).code, Some(0));
    assert_eq!(
        run(Command::new(&app).arg("exit")).code,
        Some(4),
        "the `exit` builtin exists"
    );
}

#[test]
fn uncaught_exception_prints_traceback_with_source_lines() {
    let scratch = Scratch::new();
    let app = scratch.packed_app(
        &[
            ("__main__.py", "import pkg.mod\npkg.mod.explode()\n"),
            ("pkg/__init__.py", ""),
            (
                "pkg/mod.py",
                "def explode():\n    value = {}\n    return value['missing key']\n",
            ),
        ],
        &[],
    );
    let finished = run(&mut Command::new(&app));
    assert_eq!(finished.code, Some(1));
    let exe = app.to_str().unwrap();
    assert!(
        finished
            .stderr
            .starts_with("Traceback (most recent call last):\n"),
        "{}",
        finished.stderr
    );
    assert!(
        finished.stderr.contains(&format!(
            "File \"{exe}/pkg/mod.py\", line 3, in explode\n    return value['missing key']"
        )),
        "{}",
        finished.stderr
    );
    assert!(
        finished.stderr.contains(&format!(
            "File \"{exe}/__main__.py\", line 2, in <module>\n    pkg.mod.explode()"
        )),
        "{}",
        finished.stderr
    );
    assert!(
        finished.stderr.ends_with("KeyError: 'missing key'\n"),
        "{}",
        finished.stderr
    );
}

#[test]
fn entry_point_function_return_value_is_the_exit_status() {
    let scratch = Scratch::new();
    let app = scratch.packed_app(
        &[
            ("cli/__init__.py", ""),
            (
                "cli/main.py",
                "import sys\ndef run():\n    print('run', sys.argv[1:])\n    return 7\n",
            ),
        ],
        &["-e", "cli.main:run"],
    );
    let finished = run(Command::new(&app).arg("x"));
    assert_eq!(finished.code, Some(7));
    assert_eq!(finished.stdout, "run ['x']\n");
}

#[test]
fn entry_point_module_runs_as_main() {
    let scratch = Scratch::new();
    let app = scratch.packed_app(
        &[
            ("tool/__init__.py", "print('package init')\n"),
            (
                "tool/__main__.py",
                "print('main of', __spec__.name, __name__)\n",
            ),
        ],
        &["-e", "tool"],
    );
    let finished = run(&mut Command::new(&app)).success();
    assert_eq!(
        finished.stdout,
        "package init\nmain of tool.__main__ __main__\n"
    );
}

#[test]
fn unicode_output_works_under_the_c_locale() {
    let scratch = Scratch::new();
    let app = scratch.packed_app(
        &[(
            "__main__.py",
            "import sys\nprint('é ✓', sys.flags.utf8_mode)\n",
        )],
        &[],
    );
    let finished = run(Command::new(&app).env_clear().env("LANG", "C")).success();
    assert_eq!(finished.stdout, "é ✓ 1\n");
}

#[test]
fn single_phase_start_up_runs_the_same_app() {
    let scratch = Scratch::new();
    let app = scratch.packed_app(
        &[(
            "__main__.py",
            "import sys, json, encodings\nprint(type(encodings.__loader__).__name__, type(json.__loader__).__name__)\nprint(json.dumps({'a': 1}))\n",
        )],
        &[],
    );
    let multi = run(&mut Command::new(&app)).success();
    assert_eq!(
        multi.stdout,
        "ArchiveImporter ArchiveImporter\n{\"a\": 1}\n"
    );
    let single = run(Command::new(&app).env("PYFERRY_INIT", "single-phase")).success();
    // zipimport read `encodings` during start-up; the Rust importer serves everything after.
    assert_eq!(single.stdout, "zipimporter ArchiveImporter\n{\"a\": 1}\n");
    let bad = run(Command::new(&app).env("PYFERRY_INIT", "sideways"));
    assert_eq!(bad.code, Some(2));
    assert!(bad.stderr.contains("PYFERRY_INIT"), "{}", bad.stderr);
}

#[test]
fn keyboard_interrupt_kills_by_sigint() {
    let scratch = Scratch::new();
    let app = scratch.packed_app(&[("__main__.py", "raise KeyboardInterrupt\n")], &[]);
    let finished = run(&mut Command::new(&app));
    assert_eq!(finished.signal, Some(2), "{finished:#?}");
    assert!(
        finished.stderr.contains("KeyboardInterrupt"),
        "{}",
        finished.stderr
    );
}

#[test]
fn unzip_lists_the_contents() {
    let scratch = Scratch::new();
    let app = scratch.packed_app(&[("__main__.py", "print(1)\n")], &[]);
    let listing = run(Command::new("unzip").arg("-l").arg(&app)).success();
    for name in [
        "__main__.py",
        "__main__.pyc",
        "json/__init__.pyc",
        ".pyferry/manifest.json",
    ] {
        assert!(
            listing.stdout.contains(name),
            "{name} not listed:\n{}",
            listing.stdout
        );
    }
    assert!(
        !listing.stderr.contains("extra bytes"),
        "offsets are absolute: {}",
        listing.stderr
    );
}

#[test]
fn ctrl_c_raises_keyboard_interrupt_in_a_sleeping_app() {
    use std::io::BufRead;
    use std::os::unix::process::ExitStatusExt;
    let scratch = Scratch::new();
    let app = scratch.packed_app(
        &[(
            "__main__.py",
            // `ready` is printed inside the `try`, so the interrupt cannot land before it.
            "import sys, time\ntry:\n    print('ready', flush=True)\n    time.sleep(30)\nfinally:\n    print('finally ran', flush=True)\n",
        )],
        &[],
    );
    // Started with SIGINT at its default, as from a terminal: a shell's background job (`cmd
    // &` without job control) inherits SIGINT ignored, and python then keeps ignoring it.
    let mut child = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); \
             os.execv(sys.argv[1], sys.argv[1:])",
        ])
        .arg(&app)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read");
    assert_eq!(line, "ready\n");
    run(Command::new("kill").args(["-INT", &child.id().to_string()])).success();
    let output = child.wait_with_output().expect("wait");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("read rest");
    assert_eq!(
        output.status.signal(),
        Some(2),
        "dies by SIGINT like python: {output:?}"
    );
    assert_eq!(rest, "finally ran\n");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("Traceback (most recent call last):")
            && stderr.trim_end().ends_with("KeyboardInterrupt"),
        "{stderr}"
    );
}
