//! `pip install pyferry`: the wheel `wheel/build` writes (the `pyferry` executable and its
//! runtime), installed by pip into a fresh virtual environment and used from there with no
//! Rust toolchain and no `target/` on the way: it packs an application with a native dependency
//! resolved by the environment's own pip, and the result runs. The same wheel installed with
//! `uv tool install` packs too.

use std::path::Path;
use std::process::Command;

use pyferry_tests::{
    cache_wheels, run, wheel_cache, workspace_root, write_tree, Finished, Scratch,
};

/// A command whose `PATH` holds only the environment's `bin` and the system's directories
/// (no cargo, no `target/release`), with none of pyferry's own overrides.
fn isolated(program: &Path, venv: &Path) -> Command {
    let mut command = Command::new(program);
    command
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", venv.join("bin").display()),
        )
        .env_remove("PYFERRY_RUNTIME")
        .env_remove("PYFERRY_PIP_PYTHON")
        .env_remove("PYFERRY_UV")
        .env_remove("CARGO")
        .env_remove("RUSTUP_TOOLCHAIN");
    command
}

#[test]
fn the_wheel_installed_by_pip_into_a_venv_packs_and_runs_an_app() {
    let scratch = Scratch::new();
    let wheels = scratch.path("wheels");
    let built = run(Command::new("/usr/bin/python3")
        .arg(workspace_root().join("wheel/build"))
        .arg("--out")
        .arg(&wheels))
    .success();
    let wheel = Path::new(built.stdout.trim());
    assert_eq!(
        wheel.file_name().and_then(|name| name.to_str()),
        Some(
            format!(
                "pyferry-{}-py3-none-manylinux_2_17_x86_64.whl",
                env!("CARGO_PKG_VERSION")
            )
            .as_str()
        ),
        "{built:#?}"
    );

    let venv = scratch.path("venv");
    run(Command::new("/usr/bin/python3")
        .args(["-m", "venv"])
        .arg(&venv))
    .success();
    let installed = run(isolated(&venv.join("bin/python"), &venv)
        .args([
            "-m",
            "pip",
            "install",
            "--no-index",
            "--disable-pip-version-check",
        ])
        .arg(wheel));
    assert_eq!(installed.code, Some(0), "{installed:#?}");
    let pyferry = venv.join("bin/pyferry");
    assert!(venv.join("lib/pyferry/pyferry-runtime").is_file());

    let version = run(isolated(&pyferry, &venv).arg("--version")).success();
    assert_eq!(
        version.stdout.trim(),
        format!("pyferry {}", env!("CARGO_PKG_VERSION"))
    );

    // An app with a native dependency, resolved by the venv's pip (no uv on this PATH) from the
    // tests' wheel cache.
    cache_wheels(&["orjson==3.10.7"]);
    let app = scratch.path("app");
    write_tree(
        &app,
        &[(
            "__main__.py",
            "import orjson, sys\nprint(orjson.dumps({'python': sys.version_info[:2]}).decode())\n",
        )],
    );
    let output = scratch.path("orjson-app");
    let packed: Finished = run(isolated(&pyferry, &venv)
        .arg("pack")
        .arg(&app)
        .arg("orjson==3.10.7")
        .arg("--no-index")
        .arg("--find-links")
        .arg(wheel_cache())
        .arg("-o")
        .arg(&output));
    assert_eq!(packed.code, Some(0), "{packed:#?}");
    let ran = run(&mut Command::new(&output)).success();
    assert_eq!(ran.stdout, "{\"python\":[3,11]}\n");
    let inspected = run(isolated(&pyferry, &venv).arg("inspect").arg(&output)).success();
    // The runtime's build record came along: the exact CPython built in.
    assert!(
        inspected
            .stdout
            .contains("python:        3.11 (CPython 3.11."),
        "{}",
        inspected.stdout
    );
    assert!(
        inspected.stdout.lines().any(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            words.starts_with(&["orjson", "3.10.7"])
        }),
        "{}",
        inspected.stdout
    );

    // `uv tool install`: its own environment, the command linked into a bin directory.
    let tools = scratch.path("uv-tools");
    let installed = run(Command::new("uv")
        .args(["tool", "install", "--offline"])
        .arg(wheel)
        .env("UV_TOOL_DIR", tools.join("tools"))
        .env("UV_TOOL_BIN_DIR", tools.join("bin")));
    assert_eq!(installed.code, Some(0), "{installed:#?}");
    let linked = tools.join("bin/pyferry");
    let output = scratch.path("hello");
    write_tree(&app, &[("__main__.py", "print('hello from uv tool')\n")]);
    let packed = run(isolated(&linked, &venv)
        .args(["-q", "pack"])
        .arg(&app)
        .arg("-o")
        .arg(&output));
    assert_eq!(packed.code, Some(0), "{packed:#?}");
    assert_eq!(
        run(&mut Command::new(&output)).success().stdout,
        "hello from uv tool\n"
    );
}
