"""The tools compared: how each is installed (a venv of /usr/bin/python3.11 per pinned
requirements file) and how each builds an app from the same pinned wheels.

Every build starts from an empty output directory with a fresh HOME, TMPDIR and tool cache
(PYINSTALLER_CONFIG_DIR, the pex root): build times are clean builds, not cache hits.
"""

import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from apps import APP_PINS, download_wheels, offline_pip_arguments
from common import (APP_WHEELS, BENCH, PIP_QUIET, PYFERRY, SYSTEM_PYTHON, TOOL_WHEELS, WORK, BenchError,
                    ToolFailed, clean_environment, execute, fresh_dir, one_line, run_checked,
                    tree_bytes)

TOOL_VENVS = WORK / "tools"
SHEBANG = f"{SYSTEM_PYTHON} -sE"  # shiv's and pex's zipapps run on Debian's CPython, like the rest


@dataclass
class Artifact:
    """What a build produced: the command that runs the app, and what counts as its size."""

    command: list
    path: Path = None  # the file or folder measured for the size; None: nothing was built
    single_file: bool = False  # copied to a new file name before each first run, like pyferry's
    size_note: str = ""

    @property
    def size(self):
        return tree_bytes(self.path) if self.path else None


@dataclass
class Build:
    """One app built by one tool: the artifact and build time, or why it failed."""

    tool: "Tool"
    artifact: Artifact = None
    build_ns: list = field(default_factory=list)  # one per build (several for pyferry)
    error: str = None  # one line, for the table

    @property
    def build_median_ns(self):
        return statistics.median(self.build_ns) if self.build_ns else None


@dataclass
class Tool:
    """A packager (or the floor): `requirements` names bench/requirements/<name>.txt, the venv
    it is installed in; `builder(tool, app, out_dir, env)` returns (build times in ns, Artifact)."""

    key: str
    label: str
    requirements: str
    builder: Callable
    is_peer: bool = True  # a peer's failure is reported; pyferry's or the floor's aborts the run
    explain: Callable = None  # turns a failure line into the table's explanation

    @property
    def venv(self):
        return TOOL_VENVS / self.requirements

    def program(self, name):
        return str(self.venv / "bin" / name)


def timed_step(cmd, env, cwd=None):
    """Runs one build command; returns its wall time in ns or raises ToolFailed with its error."""
    done = execute(cmd, env, cwd=cwd, timeout_s=1800)
    if done.returncode != 0:
        failure = ToolFailed(one_line(done.stderr or done.stdout))
        failure.details = done.describe("build failed")
        raise failure
    return done.ns


# ---------------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------------


def build_pyferry(settings):
    """`pyferry pack` of the app tree, `settings.pack_runs` times (packs are cheap)."""
    def build(tool, app, out, env):
        executable = out / app.name
        cmd = [PYFERRY, "-q", "pack", app.tree, "-o", executable]
        times = [timed_step(cmd, env) for _ in range(settings.pack_runs)]
        return times, Artifact([executable], executable, single_file=True, size_note="self-contained")
    return build


def build_pyz(settings):
    """`pyferry pack --format pyz` of the app tree, with shiv's and pex's `#!` line (the same
    /usr/bin/python3.11 -sE), `settings.pack_runs` times."""
    def build(tool, app, out, env):
        output = out / f"{app.name}.pyz"
        cmd = [PYFERRY, "-q", "pack", app.tree, "--format", "pyz", "--shebang", SHEBANG,
               "-o", output]
        times = [timed_step(cmd, env) for _ in range(settings.pack_runs)]
        return times, Artifact([output], output, single_file=True, size_note="+ system Python")
    return build


def build_pyinstaller(mode):
    """PyInstaller `--onefile` or `--onedir` on the tree's __main__.py (the script's directory,
    holding the installed wheels, is on PyInstaller's search path), cold cache (--clean)."""
    def build(tool, app, out, env):
        cmd = [tool.program("pyinstaller"), f"--{mode}", "--clean",
               "--noconfirm", "--log-level", "WARN", "--name", app.name,
               "--distpath", out / "dist", "--workpath", out / "build", "--specpath", out,
               app.tree / "__main__.py"]
        env = dict(env, PYINSTALLER_CONFIG_DIR=str(out / "pyinstaller-config"))
        ns = timed_step(cmd, env, cwd=out)
        if mode == "onefile":
            executable = out / "dist" / app.name
            return [ns], Artifact([executable], executable, single_file=True, size_note="self-contained")
        folder = out / "dist" / app.name
        return [ns], Artifact([folder / app.name], folder, size_note="a folder")
    return build


def build_shiv(tool, app, out, env):
    """shiv: its pip installs the pinned wheels offline; the app module and its entry shim come
    in with --site-packages."""
    output = out / f"{app.name}.pyz"
    pip_arguments = [*offline_pip_arguments(), *app.requirements] if app.requirements else []
    cmd = [tool.program("shiv"), "-e", "shiv_entry:main", "-o", output,
           "-p", SHEBANG, "--site-packages", app.module_dir, *pip_arguments]
    ns = timed_step(cmd, env, cwd=out)
    return [ns], Artifact([output], output, single_file=True, size_note="+ system Python")


def pex_command(tool, app, out, output, extra=()):
    """pex resolving the pinned wheels offline (--no-pypi), the app module as `-m bench_app`."""
    requirements = ["--no-pypi", "--find-links", APP_WHEELS, "--constraints", APP_PINS,
                    *app.requirements] if app.requirements else []
    return [tool.program("pex"), *requirements, "-D", app.module_dir,
            "-m", "bench_app", "--python-shebang", SHEBANG, "--pex-root", out / "pex-root",
            *extra, "-o", output]


def build_pex(tool, app, out, env):
    """Plain pex: a zipapp PEX run by /usr/bin/python3.11."""
    output = out / f"{app.name}.pex"
    ns = timed_step(pex_command(tool, app, out, output), env, cwd=out)
    return [ns], Artifact([output], output, single_file=True, size_note="+ system Python")


def build_pex_scie(tool, app, out, env):
    """pex `--scie eager`: the PEX plus a CPython in one native executable."""
    output = out / f"{app.name}.pex"
    ns = timed_step(pex_command(tool, app, out, output, ["--scie", "eager"]), env, cwd=out)
    scie = out / app.name  # pex names the scie after the PEX, without `.pex`
    return [ns], Artifact([scie], scie, single_file=True, size_note="self-contained")


def explain_scie(line):
    """pex --scie eager fetches `science` and a python-build-standalone CPython from GitHub."""
    if "urlopen" in line or "Name or service not known" in line or "Temporary failure" in line:
        return ("cannot build offline: it downloads the `science` tool and a "
                f"python-build-standalone CPython from GitHub ({line})")
    return line


def build_floor(tool, app, out, env):
    """A venv of /usr/bin/python3.11 with the app's wheels (hello: nothing to build)."""
    if not app.requirements:
        return [], Artifact(app.floor_command(), None, size_note="system Python")
    venv = out / "venv"
    python = venv / "bin" / "python"
    ns = timed_step([SYSTEM_PYTHON, "-m", "venv", venv], env)
    ns += timed_step([python, "-m", "pip", "install", *PIP_QUIET, *offline_pip_arguments(),
                      *app.requirements], env)
    for module in app.requirements:
        check_venv_imports(python, venv, module)
    return [ns], Artifact(app.floor_command(), venv, size_note="installed, + system Python")


def check_venv_imports(python, venv, module):
    """The floor must import `module` from its venv (`-I` keeps the app dir off sys.path)."""
    location = run_checked([python, "-I", "-c", f"import {module}; print({module}.__file__)"]).strip()
    if not location.startswith(str(venv)):
        raise BenchError(f"the floor venv imports {module} from {location}, not from {venv}")


# ---------------------------------------------------------------------------------------------
# The tool list, installation, building
# ---------------------------------------------------------------------------------------------


def make_tools(settings):
    """Every tool, pyferry first; the floor is FLOOR_KEY and always measured."""
    return [
        Tool("pyferry", "pyferry", None, build_pyferry(settings), is_peer=False),
        Tool("pyz", "pyferry --format pyz", None, build_pyz(settings), is_peer=False),
        Tool("pyinstaller-onefile", "PyInstaller --onefile", "pyinstaller", build_pyinstaller("onefile")),
        Tool("pyinstaller-onedir", "PyInstaller --onedir", "pyinstaller", build_pyinstaller("onedir")),
        Tool("shiv", "shiv", "shiv", build_shiv),
        Tool("pex", "pex", "pex", build_pex),
        Tool("pex-scie", "pex --scie eager", "pex", build_pex_scie, explain=explain_scie),
        Tool(FLOOR_KEY, "floor", None, build_floor, is_peer=False),  # labelled per app in report
    ]


FLOOR_KEY = "floor"


def select_tools(settings, keys):
    """The tools named in `keys` (all for None) plus the floor, in make_tools order."""
    tools = make_tools(settings)
    if keys is None:
        return tools
    unknown = set(keys) - {tool.key for tool in tools} - {FLOOR_KEY}
    if unknown:
        known = ", ".join(t.key for t in tools if t.key != FLOOR_KEY)
        raise SystemExit(f"unknown tool(s) {', '.join(sorted(unknown))}; known: {known}")
    return [tool for tool in tools if tool.key in keys or tool.key == FLOOR_KEY]


def install_step(cmd):
    """One installation command; its failure raises ToolFailed with pip's last error line."""
    done = execute(cmd, clean_environment(), timeout_s=1800)
    if done.returncode != 0:
        raise ToolFailed(one_line(done.stderr or done.stdout))


def install_tools(tools):
    """Installs each needed venv from its pinned wheels (skipped when its stamp matches).

    Returns {requirements name: one-line error} for venvs that could not be installed: their
    tools then fail to build, reported like any other build failure.
    """
    errors = {}
    for name in sorted({tool.requirements for tool in tools if tool.requirements}):
        requirements = BENCH / "requirements" / f"{name}.txt"
        venv = TOOL_VENVS / name
        stamp = venv / "installed-from.txt"
        try:
            download_wheels(requirements, TOOL_WHEELS, on_error=ToolFailed)
            if stamp.exists() and stamp.read_text() == requirements.read_text():
                continue
            print(f"installing {name} into {venv}", flush=True)
            install_step([SYSTEM_PYTHON, "-m", "venv", "--clear", venv])
            install_step([venv / "bin" / "python", "-m", "pip", "install", *PIP_QUIET, "--no-index",
                          "--find-links", TOOL_WHEELS, "-r", requirements])
            stamp.write_text(requirements.read_text())
        except (ToolFailed, ValueError) as error:
            errors[name] = str(error)
    return errors


def build(tool, app, install_errors):
    """Builds `app` with `tool` in a fresh target/bench/<app>/<tool>; a peer's failure is kept."""
    out = fresh_dir(app.work_dir / tool.key)
    env = clean_environment(HOME=fresh_dir(out / "build-home"), TMPDIR=fresh_dir(out / "build-tmp"))
    if tool.requirements in install_errors:
        return Build(tool, error=f"not installed: {install_errors[tool.requirements]}")
    try:
        build_ns, artifact = tool.builder(tool, app, out, env)
    except ToolFailed as failure:
        if not tool.is_peer:
            raise BenchError(getattr(failure, "details", str(failure))) from None
        line = str(failure)
        return Build(tool, error=tool.explain(line) if tool.explain else line)
    finally:
        os.sync()  # the build's writeback would otherwise overlap the timed runs
    return Build(tool, artifact, build_ns)


def tool_versions(tools):
    """`--version` of each installed tool, for the doc."""
    versions = {}
    for tool in tools:
        program = {"pyinstaller": "pyinstaller", "shiv": "shiv", "pex": "pex"}.get(tool.requirements)
        if program and tool.requirements not in versions and Path(tool.program(program)).exists():
            done = execute([tool.program(program), "--version"], clean_environment())
            words = (done.stdout or done.stderr).split()  # shiv says "shiv, version 1.0.8"
            versions[tool.requirements] = words[-1] if words else "?"
    return versions
