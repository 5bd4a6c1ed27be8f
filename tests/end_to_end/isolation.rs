//! Isolation: nothing from the host's Python configuration or the working directory reaches the
//! app, like `python -I`.

use std::process::Command;

use pyferry_tests::{run, write_tree, Scratch};

#[test]
fn pythonpath_and_a_malicious_cwd_are_ignored() {
    let scratch = Scratch::new();
    let app = scratch.packed_app(
        &[(
            "__main__.py",
            "import sys, json, os\nprint(json.__file__ == sys.executable + '/json/__init__.pyc')\nprint(sys.flags.isolated, sys.flags.ignore_environment, sys.flags.no_user_site)\nprint(sys.path == [sys.executable])\nprint('site' in sys.modules)\n",
        )],
        &[],
    );
    let evil = scratch.path("evil");
    let marker = "import sys\nprint('EVIL CODE RAN')\nsys.exit(99)\n";
    write_tree(
        &evil,
        &[
            ("json.py", marker),
            ("json/__init__.py", marker),
            ("sitecustomize.py", marker),
            ("usercustomize.py", marker),
            ("evil.pth", "import os; print('EVIL PTH')\n"),
            ("startup.py", marker),
        ],
    );
    let finished = run(Command::new(&app)
        .current_dir(&evil)
        .env("PYTHONPATH", &evil)
        .env("PYTHONHOME", &evil)
        .env("PYTHONSTARTUP", evil.join("startup.py"))
        .env("PYTHONINSPECT", "1")
        .env("PYTHONUSERBASE", &evil)
        .env("HOME", &evil))
    .success();
    assert!(!finished.stdout.contains("EVIL"), "{}", finished.stdout);
    assert_eq!(finished.stdout, "True\n1 1 1\nTrue\nFalse\n");
}

/// Runs `command` with `input` on stdin.
fn run_with_stdin(command: &mut Command, input: &str) -> pyferry_tests::Finished {
    use std::io::Write;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let output = child.wait_with_output().expect("wait");
    pyferry_tests::Finished {
        code: output.status.code(),
        signal: output.status.signal(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Bait in every place a non-isolated Python would look: the user site-packages of `HOME`
/// (`usercustomize.py`, `sitecustomize.py`, a `.pth`), the working directory, the directory of
/// the executable (with a `pyvenv.cfg` pointing elsewhere), `PYTHONSTARTUP`, and
/// `PYTHONINSPECT` with code waiting on stdin. Each bait prints `EVIL ...` when it runs.
#[test]
fn user_site_startup_inspect_and_a_venv_next_to_the_app_are_ignored() {
    let scratch = Scratch::new();
    let app_source = "import sys\nprint('ran', sys.flags.inspect, 'site' in sys.modules)\n";
    let app = scratch.packed_app(&[("__main__.py", app_source)], &[]);
    std::fs::write(scratch.path("app.py"), app_source).expect("write the control script");
    let bait = |what: &str| format!("print('EVIL {what}')\n");
    let home = scratch.path("home");
    let user_site = ".local/lib/python3.11/site-packages";
    write_tree(
        &home,
        &[
            (
                &format!("{user_site}/usercustomize.py"),
                &bait("usercustomize in HOME"),
            ),
            (
                &format!("{user_site}/sitecustomize.py"),
                &bait("sitecustomize in HOME"),
            ),
            (
                &format!("{user_site}/evil.pth"),
                "import sys; print('EVIL .pth in HOME')\n",
            ),
            (".pythonrc.py", &bait("PYTHONSTARTUP")),
        ],
    );
    let cwd = scratch.path("cwd");
    write_tree(
        &cwd,
        &[
            ("sitecustomize.py", &bait("sitecustomize in cwd")),
            ("usercustomize.py", &bait("usercustomize in cwd")),
            ("evil.pth", "import sys; print('EVIL .pth in cwd')\n"),
        ],
    );
    // Next to the executable: what a venv or an embeddable distribution would read.
    write_tree(
        scratch.dir.path(),
        &[
            (
                "pyvenv.cfg",
                &format!(
                    "home = {}\ninclude-system-site-packages = true\n",
                    cwd.display()
                ),
            ),
            ("sitecustomize.py", &bait("sitecustomize next to the app")),
            (
                "evil.pth",
                "import sys; print('EVIL .pth next to the app')\n",
            ),
        ],
    );
    let environment = |command: &mut Command| {
        command
            .current_dir(&cwd)
            .env("HOME", &home)
            .env_remove("PYTHONUSERBASE")
            .env_remove("PYTHONNOUSERSITE")
            .env("PYTHONSTARTUP", home.join(".pythonrc.py"))
            .env("PYTHONINSPECT", "1")
            .env("PYTHONPATH", &cwd);
    };
    let stdin = "print('EVIL code read by the interactive prompt')\n";
    let mut command = Command::new(&app);
    environment(&mut command);
    command.env("PYTHONHOME", &cwd);
    let finished = run_with_stdin(&mut command, stdin);
    assert_eq!(finished.code, Some(0), "{finished:#?}");
    assert_eq!(finished.stdout, "ran 0 False\n", "{finished:#?}");
    assert!(!finished.stderr.contains("EVIL"), "{}", finished.stderr);
    // Controls: the same bait under a plain, non-isolated python3.11 does fire, so each place
    // above is one Python really reads (PYTHONSTARTUP and the prompt need a terminal; what shows
    // without one is the inspect flag).
    let mut control = Command::new("/usr/bin/python3.11");
    control.arg(scratch.path("app.py"));
    environment(&mut control);
    let fired = run_with_stdin(&mut control, stdin);
    assert_eq!(
        fired.stdout,
        "EVIL .pth in HOME\nEVIL sitecustomize in cwd\nEVIL usercustomize in cwd\nran 1 True\n",
        "{fired:#?}"
    );
    let mut control = Command::new("/usr/bin/python3.11");
    control.arg(scratch.path("app.py"));
    environment(&mut control);
    control.env_remove("PYTHONPATH");
    let fired = run_with_stdin(&mut control, stdin);
    assert!(
        fired.stdout.contains("EVIL usercustomize in HOME\n"),
        "{fired:#?}"
    );
}
