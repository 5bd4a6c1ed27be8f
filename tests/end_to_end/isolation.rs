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
