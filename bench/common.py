"""Paths, settings and the process runner shared by the benchmark's steps (see run.py)."""

import os
import selectors
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORK = ROOT / "target" / "bench"
APP_WHEELS = WORK / "wheels" / "apps"
TOOL_WHEELS = WORK / "wheels" / "tools"
SCRATCH = WORK / "scratch"  # fresh HOME/TMPDIR/cwd trees of first and hostile runs
PYFERRY = ROOT / "target" / "release" / "pyferry"
RUNTIME = ROOT / "target" / "release" / "pyferry-runtime"  # what `pyferry pack` embeds
SYSTEM_PYTHON = "/usr/bin/python3.11"  # Debian's CPython 3.11.2: the one pyferry embeds
TIME = "/usr/bin/time"  # GNU time, Debian package `time`
DOC = ROOT / "docs" / "benchmarks.md"
CHART = ROOT / "docs" / "benchmarks.svg"
RAW = WORK / "last-run.json"

SMAPS_VARIABLE = "PYFERRY_BENCH_SMAPS"
PIP_QUIET = ["--quiet", "--disable-pip-version-check", "--root-user-action=ignore"]
RUN_TIMEOUT_S = 120  # one run of an app; a hung peer is killed and reported
BUILD_TIMEOUT_S = 900  # one build
# Variables that would change what a tool does: Python's and pip's switches, XDG cache
# locations (pex honours XDG_CACHE_HOME), pyferry's own, the peers' cache roots.
STRIPPED_PREFIXES = ("PYFERRY_", "PYTHON", "PIP_", "XDG_", "SHIV_", "PEX_", "PYINSTALLER_")


class BenchError(Exception):
    """Anything that makes the numbers meaningless: the run stops with this message."""


class ToolFailed(Exception):
    """A peer failed to build or to run: recorded in the table (one line), the run goes on."""


@dataclass
class Settings:
    """How many samples of each kind; `--quick` takes the small set."""

    warmups: int = 3
    runs: int = 21  # warm runs per tool, each paired with a floor run
    first_runs: int = 7
    memory_runs: int = 3
    pack_runs: int = 3  # pyferry packs are cheap: median of 3; each peer builds once

    @classmethod
    def quick(cls):
        return cls(warmups=1, runs=3, first_runs=2, memory_runs=1, pack_runs=1)


@dataclass
class Completed:
    """One finished run: wall time, exit status, output, and bytes its process tree wrote."""

    cmd: list
    ns: int
    returncode: int
    stdout: str
    stderr: str
    written_bytes: int

    def describe(self, what):
        return (
            f"{what}\n  command: {' '.join(map(str, self.cmd))}\n"
            f"  exit status: {self.returncode}\n  stdout: {self.stdout[-2000:]!r}\n"
            f"  stderr: {self.stderr[-2000:]!r}"
        )


def clean_environment(**extra):
    """The inherited environment without the STRIPPED_PREFIXES variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(STRIPPED_PREFIXES)}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _drain(proc, timeout_s):
    """Reads the child's stdout and stderr to EOF (as communicate does); kills it past the timeout."""
    chunks = {proc.stdout: [], proc.stderr: []}
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as selector:
        for stream in chunks:
            selector.register(stream, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                proc.kill()
                chunks[proc.stderr].append(f"\n(killed after {timeout_s} s)".encode())
                break
            for key, _ in selector.select(remaining):
                data = os.read(key.fd, 65536)
                if data:
                    chunks[key.fileobj].append(data)
                else:
                    selector.unregister(key.fileobj)
    return [b"".join(chunks[s]).decode(errors="replace") for s in (proc.stdout, proc.stderr)]


def execute(cmd, env, cwd=None, timeout_s=RUN_TIMEOUT_S):
    """Runs `cmd` to its end and returns a Completed.

    The wall time spans Popen to the child's reaping. The bytes written are wait4's ru_oublock
    × 512: file pages dirtied by the child and every descendant it waited for, counted when
    dirtied, so files written then deleted within the run (PyInstaller's _MEI* tree) count too;
    pages of tmpfs and memfd files, which no disk backs, never do.
    """
    start = time.perf_counter_ns()
    proc = subprocess.Popen(
        [str(c) for c in cmd], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=env, cwd=cwd,
    )
    stdout, stderr = _drain(proc, timeout_s)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter_ns() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    proc.stderr.close()
    return Completed(cmd, elapsed, proc.returncode, stdout, stderr, usage.ru_oublock * 512)


def run_checked(cmd, env=None, cwd=None, timeout_s=BUILD_TIMEOUT_S):
    """Runs a preparation step; its failure aborts the benchmark with its output."""
    done = execute(cmd, env if env is not None else clean_environment(), cwd, timeout_s)
    if done.returncode != 0:
        raise BenchError(done.describe("a preparation step failed"))
    return done.stdout


def one_line(text, names=None, limit=120):
    """The last informative line of a tool's error output, shortened for a table cell;
    `names` maps paths (such as a fresh HOME) to the words shown instead."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    informative = [line for line in lines if not line.startswith(("File ", "^", "~"))]
    line = (informative or lines or ["(no error output)"])[-1]
    for path, name in (names or {}).items():
        line = line.replace(str(path), name)
    line = line.replace(str(ROOT) + "/", "").replace("|", "/").replace("`", "'")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def fresh_dir(path):
    """`path` emptied (or created)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def tree_bytes(path):
    """The summed size of the regular files under `path` (symlinks not followed), or its own size."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            info = os.lstat(os.path.join(directory, name))
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total


def relative(path):
    """`path` relative to the repository when inside it, for messages and the doc."""
    text = str(path)
    return text[len(str(ROOT)) + 1:] if text.startswith(str(ROOT) + "/") else text
