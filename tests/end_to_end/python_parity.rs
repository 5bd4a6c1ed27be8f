//! Behaving like `python`: multiprocessing with every start method and no `freeze_support()`,
//! the interpreter mode (python's command line over the packed `sys.path`), `sys.executable` in
//! child processes, and `PYFERRY_INFO`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use pyferry_tests::{pack, pip_install, run, write_tree, Scratch};

const MULTIPROCESSING_APP: &str = r#"
import multiprocessing as mp
import sys
from concurrent.futures import ProcessPoolExecutor

def square_with_numpy(x):
    import numpy
    return int(numpy.int64(x) * x)

class Point:
    def __init__(self, x):
        self.x = x

def double(point):
    return point.x * 2

if __name__ == "__main__":
    print("main runs once")
    for method in sys.argv[1:]:
        with mp.get_context(method).Pool(2) as pool:
            print(method, pool.map(square_with_numpy, range(5)), pool.map(double, [Point(1), Point(2)]))
    with ProcessPoolExecutor(2, mp_context=mp.get_context("forkserver")) as executor:
        print("executor", list(executor.map(square_with_numpy, [3, 4])))
"#;

/// An app with numpy and the multiprocessing probe, packed once.
fn app() -> &'static PathBuf {
    static APP: OnceLock<(Scratch, PathBuf)> = OnceLock::new();
    &APP.get_or_init(|| {
        let scratch = Scratch::new();
        let dir = scratch.path("app");
        pip_install(&dir, &["numpy==2.2.6"]);
        write_tree(&dir, &[("__main__.py", MULTIPROCESSING_APP)]);
        let exe = pack(&dir, &scratch.path("mp.bin"), &[]);
        (scratch, exe)
    })
    .1
}

#[test]
fn multiprocessing_pools_with_every_start_method() {
    let finished = run(Command::new(app()).args(["spawn", "forkserver", "fork"])).success();
    assert_eq!(
        finished.stdout,
        "main runs once\nspawn [0, 1, 4, 9, 16] [2, 4]\nforkserver [0, 1, 4, 9, 16] [2, 4]\nfork [0, 1, 4, 9, 16] [2, 4]\nexecutor [9, 16]\n"
    );
}

fn python(args: &[&str]) -> Command {
    let mut command = Command::new(app());
    command.args(args).env("PYFERRY_PYTHON", "1");
    command
}

#[test]
fn interpreter_mode_runs_pythons_command_line() {
    let code = run(&mut python(&[
        "-c",
        "import sys, numpy; print(sys.argv, numpy.__version__)",
        "x",
    ]))
    .success();
    assert_eq!(code.stdout, "['-c', 'x'] 2.2.6\n");
    assert_eq!(
        run(&mut python(&["-V"])).success().stdout,
        "Python 3.11.2\n"
    );
    assert_eq!(
        run(&mut python(&["-c", "raise SystemExit(5)"])).code,
        Some(5)
    );
    let bad = run(&mut python(&["--bogus-option"]));
    assert_eq!(bad.code, Some(2));
    assert!(
        bad.stderr.contains("unknown option --bogus-option"),
        "{}",
        bad.stderr
    );

    let module = python(&["-m", "json.tool"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let mut module = module.expect("spawn");
    module
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"{\"a\": [1]}")
        .expect("write");
    let output = module.wait_with_output().expect("wait");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "{\n    \"a\": [\n        1\n    ]\n}\n"
    );

    let scratch = Scratch::new();
    let script = scratch.path("script.py");
    std::fs::write(
        &script,
        "import sys\nprint('script', sys.argv[1:], sys.path[0] == sys.argv[0].rsplit('/', 1)[0])\n",
    )
    .expect("write");
    let ran = run(python(&[]).arg(&script).arg("a")).success();
    assert_eq!(ran.stdout, "script ['a'] True\n");

    let stdin = python(&["-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let mut stdin = stdin.expect("spawn");
    stdin
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"print('from stdin', __name__)\n")
        .expect("write");
    assert_eq!(
        String::from_utf8_lossy(&stdin.wait_with_output().expect("wait").stdout),
        "from stdin __main__\n"
    );
}

#[test]
fn sys_executable_in_interpreter_mode_is_python_for_children() {
    let finished = run(&mut python(&[
        "-c",
        "import subprocess, sys\nr = subprocess.run([sys.executable, '-c', 'print(1 + 1)'], capture_output=True, text=True)\nprint(repr(r.stdout), r.returncode)",
    ]))
    .success();
    assert_eq!(finished.stdout, "'2\\n' 0\n");
}

#[test]
fn started_as_python3_it_is_python() {
    let scratch = Scratch::new();
    let link = scratch.path("python3");
    std::os::unix::fs::symlink(app(), &link).expect("symlink");
    let finished = run(Command::new(&link).args([
        "-I",
        "-c",
        "import sys, numpy; print(sys.flags.isolated, numpy.__name__)",
    ]))
    .success();
    assert_eq!(finished.stdout, "1 numpy\n");
}

#[test]
fn the_app_keeps_its_own_dash_c() {
    // `-c` as the application's own option does not switch to the interpreter.
    let scratch = Scratch::new();
    let exe = scratch.packed_app(
        &[("__main__.py", "import sys\nprint('app', sys.argv[1:])\n")],
        &[],
    );
    assert_eq!(
        run(Command::new(&exe).args(["-c", "print(1)"]))
            .success()
            .stdout,
        "app ['-c', 'print(1)']\n"
    );
}

#[test]
fn pyferry_info_reports_the_runtime_and_the_loading_ways() {
    let finished = run(Command::new(app()).env("PYFERRY_INFO", "1")).success();
    for needle in [
        "pyferry launcher ",
        "python:           3.11",
        "build id:",
        "entry point:      __main__",
        "memfd_create(MFD_NOEXEC_SEAL)",
        "memory-file huge pages: ",
    ] {
        assert!(
            finished.stdout.contains(needle),
            "{needle} not in:\n{}",
            finished.stdout
        );
    }
}

const INTROSPECTION_APP: &str = r#"
import contextlib, faulthandler, io, platform, pydoc, sys, sysconfig, tracemalloc
print("prefix", sys.prefix == sys.executable, sys.base_prefix == sys.executable)
print("paths", "purelib" in sysconfig.get_paths())
print("ext", sysconfig.get_config_var("EXT_SUFFIX"))
print("version", platform.python_version())
print("site", "site" in sys.modules)
faulthandler.enable()
print("faulthandler", faulthandler.is_enabled())
tracemalloc.start()
data = [1] * 1000
print("tracemalloc", tracemalloc.get_traced_memory()[0] > 0)
buffer = io.StringIO()
with contextlib.redirect_stdout(buffer):
    help(len)
print("help", "len(obj, /)" in buffer.getvalue())
print("pydoc", "json" in pydoc.render_doc("json"))
import helper
helper.warn()
"#;

#[test]
fn introspection_does_not_crash_and_warnings_show_source_lines() {
    let scratch = Scratch::new();
    let exe = scratch.packed_app(
        &[
            ("__main__.py", INTROSPECTION_APP),
            (
                "helper.py",
                "import warnings\ndef warn():\n    warnings.warn('careful now', UserWarning)\n",
            ),
        ],
        &[],
    );
    let finished = run(&mut Command::new(&exe)).success();
    assert_eq!(
        finished.stdout,
        "prefix True True\npaths True\next .cpython-311-x86_64-linux-gnu.so\nversion 3.11.2\nsite False\nfaulthandler True\ntracemalloc True\nhelp True\npydoc True\n"
    );
    assert_eq!(
        finished.stderr,
        format!("{}/helper.py:3: UserWarning: careful now\n  warnings.warn('careful now', UserWarning)\n", exe.display())
    );
}

#[test]
fn python_environment_is_ignored_unless_packed_to_inherit_it() {
    let scratch = Scratch::new();
    let app = scratch.path("app");
    write_tree(
        &app,
        &[(
            "__main__.py",
            "import warnings\nwarnings.warn('w')\nprint('after')\n",
        )],
    );
    let isolated = pack(&app, &scratch.path("isolated"), &[]);
    let inheriting = pack(&app, &scratch.path("inheriting"), &["--inherit-python-env"]);
    let ignored = run(Command::new(&isolated).env("PYTHONWARNINGS", "error")).success();
    assert_eq!(ignored.stdout, "after\n");
    let honoured = run(Command::new(&inheriting).env("PYTHONWARNINGS", "error"));
    assert_eq!(honoured.code, Some(1), "{honoured:#?}");
    assert!(
        honoured.stderr.trim_end().ends_with("UserWarning: w"),
        "{}",
        honoured.stderr
    );
}

#[test]
fn exit_paths_match_python_running_the_same_file() {
    let source = "import atexit, os, sys\natexit.register(lambda: print('atexit ran'))\nmode = sys.argv[1]\nif mode == 'os-exit':\n    print('buffered, never flushed', end='')\n    os._exit(3)\nif mode == 'many':\n    for i in range(100000):\n        print(i)\nif mode == 'exit-message':\n    sys.exit('bye')\nprint('done')\n";
    let scratch = Scratch::new();
    let exe = scratch.packed_app(&[("__main__.py", source)], &[]);
    let script = scratch.path("app/__main__.py");
    for mode in ["plain", "os-exit", "exit-message"] {
        let ours = run(Command::new(&exe).arg(mode));
        let python = run(Command::new("/usr/bin/python3.11")
            .arg("-I")
            .arg(&script)
            .arg(mode));
        assert_eq!(
            (ours.code, &ours.stdout, &ours.stderr),
            (python.code, &python.stdout, &python.stderr),
            "mode {mode}"
        );
    }
    // A reader that goes away: the writer sees a broken pipe, as python does (exit status 120
    // when the final flush fails too).
    let status = |command: String| {
        run(Command::new("bash").args([
            "-c",
            &format!("{command} many | head -1 >/dev/null; echo ${{PIPESTATUS[0]}}"),
        ]))
        .stdout
    };
    assert_eq!(
        status(exe.display().to_string()),
        status(format!("/usr/bin/python3.11 -I {}", script.display()))
    );
}

#[test]
fn interpreter_mode_on_a_terminal_is_the_repl() {
    // `script` gives the interpreter a pseudo-terminal, as a user's shell would.
    let command = format!("env PYFERRY_PYTHON=1 {}", app().display());
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn script (util-linux)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"print(6 * 7)\nimport numpy; print(numpy.__name__)\nexit()\n")
        .expect("write");
    let output = child.wait_with_output().expect("wait");
    let screen = String::from_utf8_lossy(&output.stdout).replace('\r', "");
    assert!(screen.contains("Python 3.11.2"), "{screen}");
    assert!(screen.contains(">>> print(6 * 7)\n42\n"), "{screen}");
    assert!(screen.contains("numpy\n>>> exit()"), "{screen}");
}
