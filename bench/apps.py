"""The four benchmark apps, and the pinned wheels every tool builds them from."""

import re
import shutil
import sys
from dataclasses import dataclass

from common import (APP_WHEELS, BENCH, PIP_QUIET, SYSTEM_PYTHON, WORK, BenchError,
                    clean_environment, execute, one_line, run_checked)

APP_PINS = BENCH / "requirements" / "apps.txt"


@dataclass
class App:
    """One app: bench/apps/<name>/__main__.py, the requirements it names, the output it must print.

    `requirements` are top-level names; their versions and their dependencies' come from
    APP_PINS (used as a constraints file by every installer).
    """

    name: str
    requirements: list
    summary: str

    @property
    def source(self):
        return BENCH / "apps" / self.name / "__main__.py"

    @property
    def expected_stdout(self):
        return (BENCH / "apps" / self.name / "expected-output.txt").read_text()

    @property
    def work_dir(self):
        return WORK / self.name

    @property
    def tree(self):
        """What pyferry packs and PyInstaller analyses: `pip --target` of the wheels + __main__.py."""
        return self.work_dir / "app"

    @property
    def module_dir(self):
        """For shiv and pex, which install the wheels themselves: the app as module `bench_app`."""
        return self.work_dir / "module"

    def floor_command(self):
        """The floor: the venv's python running the app, or for hello bare `python3.11 -I`."""
        if self.name == "hello":
            return [SYSTEM_PYTHON, "-I", "-c", "print('hi')"]
        return [str(self.work_dir / "floor" / "venv" / "bin" / "python"), "-I", str(self.tree / "__main__.py")]

    def floor_memory_command(self):
        """Like floor_command, but able to print the SMAPS line (hello's whole source with -c)."""
        if self.name == "hello":
            return [SYSTEM_PYTHON, "-I", "-c", self.source.read_text()]
        return self.floor_command()


APPS = [
    App("hello", [], "print('hi'): start-up alone"),
    App("clirich", ["click", "rich"], "a click command printing a rich table: many small pure-Python modules"),
    App("numpy", ["numpy"], "import numpy, 200×200 matrix product: large native libraries"),
    App("pydantic", ["pydantic"], "validate 300 nested records: a native core and models built at import"),
]


def read_pins(path):
    """The `name==version` lines of a requirements file."""
    pins = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            if not re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+!-]+", line):
                raise ValueError(f"{path}: {line!r} is not pinned as name==version")
            pins.append(line)
    return pins


def normalized(name):
    return re.sub(r"[-_.]+", "_", name).lower()


def wheel_is_cached(pin, directory):
    """Whether `directory` holds a wheel of this name==version (names compared normalized)."""
    name, version = pin.split("==")
    for wheel in directory.glob("*.whl"):
        wheel_name, wheel_version = wheel.name.split("-")[:2]
        if normalized(wheel_name) == normalized(name) and wheel_version == version:
            return True
    return False


def download_wheels(requirements_file, directory, on_error=BenchError):
    """Fills `directory` with the pinned wheels (no dependency resolution: every pin is listed),
    as /usr/bin/python3.11's own pip picks them for itself; does nothing when all are there,
    so later runs are offline. A failure raises `on_error` with pip's last error line."""
    missing = [pin for pin in read_pins(requirements_file) if not wheel_is_cached(pin, directory)]
    if not missing:
        return
    print(f"downloading {' '.join(missing)} into {directory}", flush=True)
    directory.mkdir(parents=True, exist_ok=True)
    done = execute([SYSTEM_PYTHON, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                    "--no-deps", "--only-binary=:all:", "-d", directory, *missing],
                   clean_environment(), timeout_s=1800)
    if done.returncode != 0:
        raise on_error(f"downloading {requirements_file.name}: {one_line(done.stderr)}")


def offline_pip_arguments():
    """pip options that install the requirements from the cached, pinned wheels only."""
    return ["--no-index", "--find-links", str(APP_WHEELS), "--constraint", str(APP_PINS)]


def prepare_sources(app):
    """The app tree (reinstalled when the pins changed) and the module copy for shiv and pex."""
    stamp = app.work_dir / "tree-installed-from.txt"
    wanted = APP_PINS.read_text() + "\n".join(app.requirements)
    if not (stamp.exists() and stamp.read_text() == wanted):
        shutil.rmtree(app.tree, ignore_errors=True)
        app.tree.mkdir(parents=True)
        if app.requirements:
            run_checked(
                [sys.executable, "-m", "pip", "install", *PIP_QUIET, "--target", str(app.tree),
                 *offline_pip_arguments(), *app.requirements]
            )
        stamp.write_text(wanted)
    shutil.copyfile(app.source, app.tree / "__main__.py")
    app.module_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(app.source, app.module_dir / "bench_app.py")
    (app.module_dir / "shiv_entry.py").write_text(SHIV_ENTRY)


# shiv calls a function as its entry point (pex -m and PyInstaller run a module as __main__).
SHIV_ENTRY = '''"""shiv's entry point for the benchmark: run module bench_app as __main__, as `pex -m` does."""
import runpy


def main():
    runpy.run_module("bench_app", run_name="__main__", alter_sys=True)
'''


def select_apps(names):
    """The APPS named in `names` (all of them for None), in APPS order."""
    if names is None:
        return list(APPS)
    known = {app.name for app in APPS}
    unknown = set(names) - known
    if unknown:
        raise SystemExit(f"unknown app(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
    return [app for app in APPS if app.name in names]

