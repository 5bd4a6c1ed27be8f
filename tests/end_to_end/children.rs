//! Children started through `sys.executable`: python command lines from the application's own
//! processes run as python over the packed `sys.path` (joblib's loky, scikit-learn's `n_jobs`,
//! `-m pip`, scripts, `sh -c`), a person's command line always runs the application, and an
//! application that re-runs itself stops at the nesting limit instead of multiplying.
//!
//! Everything that could multiply runs contained (`pyferry_tests::contained`): a PID namespace,
//! a user id of its own with a process limit, a deadline, and the peak process count checked.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pyferry_tests::contained::{open_to_everyone, run_contained, ContainedRun, Containment};
use pyferry_tests::{is_root, pack, pip_install, run, write_tree, Scratch};

/// The application that starts every kind of python child through `sys.executable`, or prints
/// its own arguments when run with any.
const CHILDREN_APP: &str = r#"
import os, subprocess, sys

exe = sys.executable

def show(label, args, **options):
    result = subprocess.run(args, capture_output=True, text=True, **options)
    lines = "|".join(result.stdout.split("\n")).strip("|")
    errors = result.stderr.strip().splitlines()[-1:] if result.returncode else []
    print(label, result.returncode, lines, *errors)

if len(sys.argv) == 1:
    show("dash-c", [exe, "-c", "import sys; print('python', sys.argv[1:])", "x"])
    show("dash-m", [exe, "-m", "helper", "arg"])
    show("script", [exe, os.environ["SCRIPT"], "a"])
    show("stdin", [exe, "-"], input="print('from stdin')")
    show("options", [exe, "-B", "-S", "-I", "-E", "-s", "-u", "-O", "-X", "dev", "-W", "ignore",
        "-c", "import sys; print(sys.flags.optimize, sys.flags.no_site, sys.flags.isolated, sys.flags.dev_mode)"])
    show("shell", ["sh", "-c", f"'{exe}' -c 'print(6 * 7)'"])
    show("cleared-environment", [exe, "-c", "print('no marker')"], env={})
    show("grandchild", [exe, "-c",
        "import subprocess, sys; subprocess.run([sys.executable, '-c', 'print(\"grandchild\")'])"])
    show("pip", [exe, "-m", "pip", "--version"])
    show("forced-app", [exe, "-c", "1"], env={**os.environ, "PYFERRY_PYTHON": "0"})
    show("other-app", [os.environ["OTHER_APP"], "-c", "print('never python')"])
else:
    print("app", sys.argv[1:])
"#;

const HELPER_MODULE: &str =
    "import sys\nprint('helper', sys.argv[1:], __file__.startswith(sys.executable + '/'))\n";

const SCRIPT: &str = "import json, sys\nprint('script', sys.argv[1:], json.dumps([1]))\n";

/// The application of [`CHILDREN_APP`] with pip, a second application, and a script, in a
/// scratch directory every user can read.
struct ChildrenSetup {
    scratch: Scratch,
    app: PathBuf,
    other: PathBuf,
    script: PathBuf,
}

fn children_setup() -> ChildrenSetup {
    let scratch = Scratch::new();
    let dir = scratch.path("app");
    pip_install(&dir, &["pip==24.2"]);
    write_tree(
        &dir,
        &[("__main__.py", CHILDREN_APP), ("helper.py", HELPER_MODULE)],
    );
    let app = pack(&dir, &scratch.path("app.bin"), &[]);
    let other_dir = scratch.path("other");
    write_tree(
        &other_dir,
        &[("__main__.py", "import sys\nprint('other', sys.argv[1:])\n")],
    );
    let other = pack(&other_dir, &scratch.path("other.bin"), &[]);
    let script = scratch.path("t.py");
    std::fs::write(&script, SCRIPT).expect("write the script");
    open_to_everyone(scratch.dir.path());
    for file in [&app, &other, &script] {
        open_to_everyone(file);
    }
    ChildrenSetup {
        scratch,
        app,
        other,
        script,
    }
}

fn contained(
    program: &Path,
    args: &[&str],
    user: u32,
    environment: &[(&str, &str)],
) -> ContainedRun {
    run_contained(
        program,
        args,
        &Containment {
            user,
            max_processes: 64,
            timeout: Duration::from_secs(120),
            environment,
            stdin: "",
        },
    )
}

/// A user id for contained run `index` of this test process: the kernel's process limit counts
/// every process of a user, so two test runs at once (another checkout's) must not share one.
fn user(index: u32) -> u32 {
    200_000 + (std::process::id() % 100_000) * 8 + index
}

/// The line of `stdout` that starts with `label `.
#[track_caller]
fn line<'a>(stdout: &'a str, label: &str) -> &'a str {
    stdout
        .lines()
        .find(|line| line.starts_with(&format!("{label} ")))
        .unwrap_or_else(|| panic!("no `{label}` line in:\n{stdout}"))
}

#[test]
fn python_command_lines_from_the_application_run_as_python() {
    if !is_root() {
        eprintln!("skipped: PID namespaces need root");
        return;
    }
    let setup = children_setup();
    let script = setup.script.to_str().expect("utf-8 path");
    let other = setup.other.to_str().expect("utf-8 path");
    let outcome = contained(
        &setup.app,
        &[],
        user(1),
        &[("SCRIPT", script), ("OTHER_APP", other)],
    );
    let finished = outcome
        .finished
        .expect("the application finished in time")
        .success();
    let out = &finished.stdout;
    assert_eq!(line(out, "dash-c"), "dash-c 0 python ['x']");
    assert_eq!(line(out, "dash-m"), "dash-m 0 helper ['arg'] True");
    assert_eq!(line(out, "script"), "script 0 script ['a'] [1]");
    assert_eq!(line(out, "stdin"), "stdin 0 from stdin");
    assert_eq!(line(out, "options"), "options 0 1 1 1 True");
    assert_eq!(line(out, "shell"), "shell 0 42");
    assert_eq!(
        line(out, "cleared-environment"),
        "cleared-environment 0 no marker"
    );
    assert_eq!(line(out, "grandchild"), "grandchild 0 grandchild");
    assert_eq!(
        line(out, "pip"),
        format!(
            "pip 0 pip 24.2 from {}/pip (python 3.11)",
            setup.app.display()
        )
    );
    // `PYFERRY_PYTHON=0` forces the application; another pyferry application started with a
    // python-looking command line is that application, not python.
    assert_eq!(line(out, "forced-app"), "forced-app 0 app ['-c', '1']");
    assert_eq!(
        line(out, "other-app"),
        "other-app 0 other ['-c', \"print('never python')\"]"
    );
    assert!(
        outcome.peak_processes < 10,
        "{} processes",
        outcome.peak_processes
    );
    drop(setup.scratch);
}

#[test]
fn a_persons_command_line_runs_the_application() {
    let setup = children_setup();
    let app = setup.app.to_str().expect("utf-8 path");
    let script = setup.script.to_str().expect("utf-8 path");
    for (args, expected) in [
        (vec!["-m", "helper"], "app ['-m', 'helper']\n"),
        (vec![script], &*format!("app ['{script}']\n")),
        (vec!["-c", "print(1)"], "app ['-c', 'print(1)']\n"),
        (vec!["-"], "app ['-']\n"),
    ] {
        let finished = run(Command::new(app).args(&args)).success();
        assert_eq!(finished.stdout, expected, "{args:?}");
    }
    let through_shell =
        run(Command::new("sh").args(["-c", &format!("'{app}' -c 'print(1)'")])).success();
    assert_eq!(through_shell.stdout, "app ['-c', 'print(1)']\n");
}

const RECURSIVE_APP: &str = r#"
import subprocess, sys
print("run", flush=True)
result = subprocess.run([sys.executable, *sys.argv[1:]])
sys.exit(result.returncode)
"#;

const BRANCHING_APP: &str = r#"
import subprocess, sys
children = [subprocess.Popen([sys.executable, *sys.argv[1:]]) for _ in range(2)]
sys.exit(max(child.wait() for child in children))
"#;

#[test]
fn an_application_that_reruns_itself_stops_at_the_nesting_limit() {
    if !is_root() {
        eprintln!("skipped: PID namespaces need root");
        return;
    }
    let scratch = Scratch::new();
    let recursive = scratch.packed_app(&[("__main__.py", RECURSIVE_APP)], &[]);
    let branching_dir = scratch.path("branching");
    write_tree(&branching_dir, &[("__main__.py", BRANCHING_APP)]);
    let branching = pack(&branching_dir, &scratch.path("branching.bin"), &[]);
    open_to_everyone(scratch.dir.path());
    open_to_everyone(&recursive);
    open_to_everyone(&branching);

    let outcome = contained(&recursive, &["again"], user(2), &[]);
    let finished = outcome.finished.expect("the chain stopped by itself");
    assert_eq!(finished.code, Some(1), "{finished:#?}");
    // The default limit: four nested runs of the application, the fifth refused.
    assert_eq!(finished.stdout, "run\n".repeat(4));
    let refusals: Vec<&str> = finished
        .stderr
        .lines()
        .filter(|line| line.contains("re-ran itself recursively"))
        .collect();
    assert_eq!(refusals.len(), 1, "{}", finished.stderr);
    assert!(
        refusals[0].starts_with("pyferry: error: ")
            && refusals[0].contains("5 nested runs")
            && refusals[0].contains("sys.executable")
            && refusals[0].contains("PYFERRY_MAX_NESTING"),
        "{}",
        refusals[0]
    );
    assert!(
        outcome.peak_processes <= 5,
        "{} processes",
        outcome.peak_processes
    );

    // Two children per run: the tree stops at 1 + 2 + 4 + 8 + 16 processes, far below the
    // kernel limit of 64 that would otherwise end it.
    let outcome = contained(&branching, &["again"], user(3), &[]);
    let finished = outcome.finished.expect("the tree stopped by itself");
    assert_eq!(finished.code, Some(1), "{finished:#?}");
    assert_eq!(
        finished
            .stderr
            .lines()
            .filter(|line| line.contains("re-ran itself recursively"))
            .count(),
        16,
        "{}",
        finished.stderr
    );
    assert!(
        outcome.peak_processes <= 31,
        "{} processes",
        outcome.peak_processes
    );

    // A deeper limit, when the nesting is intended.
    let outcome = contained(
        &recursive,
        &["again"],
        user(4),
        &[("PYFERRY_MAX_NESTING", "6")],
    );
    let finished = outcome.finished.expect("the chain stopped by itself");
    assert_eq!(finished.stdout, "run\n".repeat(6));
}

const POOLS_APP: &str = r#"
import os
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from joblib import Parallel, delayed

def square(x):
    return x * x, os.getpid()

if __name__ == "__main__":
    results = Parallel(n_jobs=2, backend="loky")(delayed(square)(x) for x in range(10))
    workers = {pid for _, pid in results}
    print("loky", [value for value, _ in results], os.getpid() not in workers)
    for method in ("spawn", "forkserver"):
        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(method)) as executor:
            results = list(executor.map(square, range(6)))
        workers = {pid for _, pid in results}
        print(method, [value for value, _ in results], os.getpid() not in workers)
"#;

#[test]
fn joblib_loky_and_process_pools_work_in_worker_processes() {
    if !is_root() {
        eprintln!("skipped: PID namespaces need root");
        return;
    }
    let scratch = Scratch::new();
    let dir = scratch.path("app");
    pip_install(&dir, &["joblib==1.4.2"]);
    write_tree(&dir, &[("__main__.py", POOLS_APP)]);
    let app = pack(&dir, &scratch.path("pools.bin"), &[]);
    open_to_everyone(scratch.dir.path());
    open_to_everyone(&app);
    let outcome = contained(&app, &[], user(5), &[]);
    let finished = outcome.finished.expect("finished in time").success();
    assert_eq!(
        finished.stdout,
        "loky [0, 1, 4, 9, 16, 25, 36, 49, 64, 81] True\n\
         spawn [0, 1, 4, 9, 16, 25] True\n\
         forkserver [0, 1, 4, 9, 16, 25] True\n"
    );
    // The app, two loky workers, loky's resource tracker, two pool workers and
    // multiprocessing's helpers: a handful, not a tree.
    assert!(
        outcome.peak_processes <= 12,
        "{} processes",
        outcome.peak_processes
    );
}

const SKLEARN_APP: &str = r#"
import os
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

def worker_pid(estimator, X, y):
    return os.getpid()

if __name__ == "__main__":
    X, y = make_classification(n_samples=300, n_features=8, random_state=0)
    scores = cross_val_score(LogisticRegression(max_iter=1000), X, y, cv=5, n_jobs=2)
    print("scores", len(scores), bool(scores.mean() > 0.8))
    pids = cross_val_score(LogisticRegression(max_iter=1000), X, y, cv=4, n_jobs=2, scoring=worker_pid)
    print("workers", os.getpid() not in set(int(pid) for pid in pids))
"#;

#[test]
fn scikit_learn_cross_validation_with_two_jobs() {
    if !is_root() {
        eprintln!("skipped: PID namespaces need root");
        return;
    }
    let scratch = Scratch::new();
    let dir = scratch.path("app");
    pip_install(
        &dir,
        &[
            "scikit-learn==1.6.1",
            "scipy==1.15.2",
            "numpy==2.2.6",
            "joblib==1.4.2",
            "threadpoolctl==3.5.0",
        ],
    );
    write_tree(&dir, &[("__main__.py", SKLEARN_APP)]);
    // scikit-learn reads a `.css` next to its module at import: served by the archive
    // filesystem, with no home to extract anything into.
    let app = pack(&dir, &scratch.path("sklearn.bin"), &[]);
    open_to_everyone(scratch.dir.path());
    open_to_everyone(&app);
    let outcome = contained(&app, &[], user(6), &[]);
    let finished = outcome.finished.expect("finished in time").success();
    assert_eq!(finished.stdout, "scores 5 True\nworkers True\n");
    assert!(
        outcome.peak_processes <= 12,
        "{} processes",
        outcome.peak_processes
    );
}
