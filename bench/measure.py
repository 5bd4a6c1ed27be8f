"""Measuring what the tools built: first runs, warm runs paired with the floor, memory, and
runs on hostile hosts. Every run's stdout is checked against the app's expected output."""

import os
import re
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import (SCRATCH, SMAPS_VARIABLE, TIME, WORK, BenchError, ToolFailed,
                    clean_environment, execute, fresh_dir, one_line, tree_bytes)

SMAPS_LINE = re.compile(r"^SMAPS private_kib=(\d+) rss_kib=(\d+)$")

# Each hostile scenario: shell commands run as root in a private mount namespace
# (`unshare --mount`, propagation private) before the app is exec'd; the host's mounts are
# never touched. HOME and TMPDIR are fresh, empty directories, as for a first run.
HOSTILE_SCENARIOS = {
    "noexec_tmp": 'mount -t tmpfs -o noexec,nosuid,size=2g pyferry-bench-noexec "$TMPDIR"',
    "ro_home": 'mount --bind "$HOME" "$HOME" && mount -o remount,bind,ro "$HOME"',
}


@dataclass
class Figures:
    """Everything measured for one tool on one app: times in ns, memory in KiB, sizes in bytes."""

    first_ns: list = field(default_factory=list)
    first_written: list = field(default_factory=list)  # bytes dirtied in files (wait4 ru_oublock)
    first_left: list = field(default_factory=list)  # bytes left in HOME/TMPDIR/cwd afterwards
    warm_ns: list = field(default_factory=list)
    floor_ns: list = field(default_factory=list)  # the floor run paired with each warm run
    memory: dict = None  # medians of peak_rss, private, smaps_rss
    hostile: dict = field(default_factory=dict)  # scenario -> (outcome, line), see hostile_run
    error: str = None  # a peer that built but failed to run: measured no further

    @property
    def pair_ratio(self):
        """The median of the per-pair ratios tool / floor."""
        return statistics.median(a / b for a, b in zip(self.warm_ns, self.floor_ns))


class RunDirs:
    """A fresh HOME, TMPDIR and working directory under `base`; the peers' caches in HOME
    (SHIV_ROOT=~/.shiv, PEX_ROOT=~/.pex, as they default), PyInstaller's _MEI* in TMPDIR."""

    def __init__(self, base, fresh=True):
        self.base = base
        self.home, self.tmp, self.cwd = (base / d for d in ("home", "tmp", "cwd"))
        if fresh:
            fresh_dir(base)
            for directory in (self.home, self.tmp, self.cwd):
                directory.mkdir()

    def env(self, **extra):
        return clean_environment(HOME=self.home, TMPDIR=self.tmp, SHIV_ROOT=self.home / ".shiv",
                                 PEX_ROOT=self.home / ".pex", **extra)

    def remove(self):
        shutil.rmtree(self.base, ignore_errors=True)


def check(done, expected):
    """A run that failed raises ToolFailed; one that printed anything but `expected` aborts."""
    if done.returncode != 0:
        failure = ToolFailed(f"exit status {done.returncode}: {one_line(done.stderr or done.stdout)}")
        failure.details = done.describe("the app failed")
        raise failure
    if done.stdout != expected:
        raise BenchError(done.describe(f"wrong output, expected {expected!r}"))
    return done


def first_run(build, app, index):
    """One first run: fresh HOME/TMPDIR/caches/cwd, a single-file artifact copied to a new path,
    `sync` (untimed); returns (ns, bytes written, bytes left in the fresh dirs)."""
    dirs = RunDirs(SCRATCH / "first")
    command = list(build.artifact.command)
    copy_dir = None
    if build.artifact.single_file:
        copy_dir = fresh_dir(SCRATCH / f"copy-{index}-{time.time_ns()}")
        copy = copy_dir / build.artifact.path.name
        shutil.copy2(build.artifact.path, copy)
        # An access time later than the copy's ctime: relatime would otherwise update the new
        # file's atime at exec, and that inode write would count as the app's.
        os.utime(copy, ns=(time.time_ns() + 10**9, copy.stat().st_mtime_ns))
        command[0] = copy
    os.sync()  # the copy's writeback, or the previous run's, would overlap the timed run
    try:
        done = check(execute(command, dirs.env(), cwd=dirs.cwd), app.expected_stdout)
        return done.ns, done.written_bytes, tree_bytes(dirs.base)
    finally:
        dirs.remove()
        if copy_dir:
            shutil.rmtree(copy_dir)


def first_runs(build, app, figures, count):
    for index in range(count):
        ns, written, left = first_run(build, app, index)
        figures.first_ns.append(ns)
        figures.first_written.append(written)
        figures.first_left.append(left)


def warm_runs(app, builds, figures, floor_key, settings):
    """Warm-ups, then `settings.runs` rounds; in each round every tool runs once next to a floor
    run, the pair's order alternating between rounds. Each tool keeps its own HOME/TMPDIR (its
    caches stay warm). A peer that fails is marked and leaves the rounds."""
    dirs = {key: RunDirs(app.work_dir / key / "warm") for key in builds}
    envs = {key: d.env() for key, d in dirs.items()}

    def run(key):
        done = execute(builds[key].artifact.command, envs[key], cwd=dirs[key].cwd)
        return check(done, app.expected_stdout).ns

    peers = [key for key in builds if key != floor_key]
    for key in [floor_key, *peers]:
        for _ in range(settings.warmups):
            guarded(builds[key], figures[key], lambda: run(key))
    for round_index in range(settings.runs):
        for key in peers:
            if figures[key].error:
                continue
            floor_first = round_index % 2 == 0
            floor_ns = run(floor_key) if floor_first else None
            tool_ns = guarded(builds[key], figures[key], lambda: run(key))
            if tool_ns is None:
                continue
            if not floor_first:
                floor_ns = run(floor_key)
            figures[key].warm_ns.append(tool_ns)
            figures[key].floor_ns.append(floor_ns)
            figures[floor_key].warm_ns.append(floor_ns)
    if not figures[floor_key].warm_ns:  # every other tool failed: the floor alone
        figures[floor_key].warm_ns = [run(floor_key) for _ in range(settings.runs)]


def memory_run(command, env, cwd, expected):
    """Peak RSS (KiB, `/usr/bin/time -f %M`) and the app's own SMAPS line, for one run.

    Not wait4's ru_maxrss: a child's counts this harness's RSS from before the exec.
    """
    report = WORK / "peak-rss.txt"
    done = execute([TIME, "-f", "%M", "-o", report, *command], env, cwd=cwd)
    lines = done.stdout.splitlines(keepends=True)
    match = SMAPS_LINE.match(lines[-1].strip()) if lines else None
    if done.returncode == 0 and not match:
        raise BenchError(done.describe("no SMAPS line at the end of the output"))
    done.stdout = "".join(lines[:-1]) if match else done.stdout
    check(done, expected)
    return {"peak_rss": int(report.read_text().split()[-1]), "private": int(match.group(1)),
            "smaps_rss": int(match.group(2))}


def memory_runs(build, app, figures, count, memory_command):
    dirs = RunDirs(app.work_dir / build.tool.key / "warm", fresh=False)  # caches warm already
    env = dirs.env(**{SMAPS_VARIABLE: "1"})
    samples = [memory_run(memory_command, env, dirs.cwd, app.expected_stdout) for _ in range(count)]
    figures.memory = {key: statistics.median(s[key] for s in samples) for key in samples[0]}


def hostile_run(build, app, scenario):
    """How the app fares in `scenario`: ("runs", None), ("warns", line) when it ran correctly
    but said something on stderr (pex falling back to a temporary root), or ("fails", line)."""
    dirs = RunDirs(SCRATCH / "hostile")
    setup = HOSTILE_SCENARIOS[scenario]
    cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'{setup} && exec "$@"',
           "sh", *build.artifact.command]
    try:
        done = execute(cmd, dirs.env(), cwd=dirs.cwd)
    finally:
        dirs.remove()
    names = {dirs.home: "$HOME", dirs.tmp: "$TMPDIR", f"{Path(build.artifact.command[0]).parent}/": ""}
    if done.returncode != 0:
        return "fails", one_line(done.stderr or done.stdout, names)
    if done.stdout != app.expected_stdout:
        raise BenchError(done.describe(f"wrong output in scenario {scenario}"))
    if done.stderr.strip():
        lines = done.stderr.strip().splitlines()
        warning = next((line for line in lines if "warn" in line.lower()), lines[0])
        return "warns", one_line(re.sub(r"^\S+\.py:\d+: ", "", warning), names)
    return "runs", None


def check_namespaces():
    """Every hostile scenario's setup works here (root, unshare, tmpfs): else the run stops."""
    dirs = RunDirs(SCRATCH / "namespace-check")
    try:
        for scenario, setup in HOSTILE_SCENARIOS.items():
            done = execute(["unshare", "--mount", "--propagation", "private", "sh", "-c", setup],
                           dirs.env(), cwd=dirs.cwd)
            if done.returncode != 0:
                raise BenchError(done.describe(f"cannot set up the {scenario} scenario"))
    finally:
        dirs.remove()


def guarded(build, figures, step):
    """Runs `step`; a peer's ToolFailed is recorded in `figures` (None returned), pyferry's or
    the floor's aborts the benchmark with the full output."""
    try:
        return step()
    except ToolFailed as failure:
        if not build.tool.is_peer:
            raise BenchError(getattr(failure, "details", str(failure))) from None
        figures.error = f"built, but fails to run: {failure}"
        return None


def measure_app(app, builds, floor_key, settings, log):
    """All figures of one app: {tool key: Figures}, for the tools whose build succeeded."""
    built = {key: b for key, b in builds.items() if b.artifact}
    figures = {key: Figures() for key in built}
    for key, build in built.items():
        log(f"{build.tool.label}: {settings.first_runs} first runs")
        guarded(build, figures[key], lambda: first_runs(build, app, figures[key], settings.first_runs))
    working = {key: b for key, b in built.items() if not figures[key].error}
    log(f"{settings.warmups} warm-ups, {settings.runs} rounds of paired warm runs")
    warm_runs(app, working, figures, floor_key, settings)
    for key, build in working.items():
        if figures[key].error:
            continue
        log(f"{build.tool.label}: memory and hostile hosts")
        command = app.floor_memory_command() if key == floor_key else build.artifact.command
        guarded(build, figures[key],
                lambda: memory_runs(build, app, figures[key], settings.memory_runs, command))
        for scenario in HOSTILE_SCENARIOS:
            figures[key].hostile[scenario] = hostile_run(build, app, scenario)
    return figures
