"""pyferry's start-up benchmarks: packed executables against plain CPython 3.11, side by side.

Run by `make bench` (after `make build`), or `python3 bench/run.py [--runs N]`.

For each app of APPS (its source: bench/apps/<name>/__main__.py) it
  1. prepares the app tree under target/bench/<app>/app (pip --target from wheels cached in
     target/bench/wheels) and a reference venv made with /usr/bin/python3.11 (the Debian
     CPython that pyferry embeds) holding the same wheels; the caches make a second run offline;
  2. packs the tree with target/release/pyferry (3 times: the median is the pack time);
  3. times pyferry and the reference alternately (A B A B ...: drift hits both alike), after
     warm-ups, and checks every run's stdout against the expected output;
  4. times "first runs": the executable copied to a brand-new file name before each run;
  5. measures peak RSS (`/usr/bin/time -f %M`) and the unshared memory the app reports itself
     (a `SMAPS` line, printed when PYFERRY_BENCH_SMAPS=1);
then prints the tables, rewrites docs/benchmarks.md (keeping its `<!-- notes -->` section) and
saves the raw samples in target/bench/last-run.json.

Python 3 standard library only. Any failure, including an unexpected output, aborts the run.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS_SOURCE = ROOT / "bench" / "apps"
WORK = ROOT / "target" / "bench"
WHEELS = WORK / "wheels"
VENV = WORK / "venv"
PYFERRY = ROOT / "target" / "release" / "pyferry"
RUNTIME = ROOT / "target" / "release" / "pyferry-runtime"  # what `pyferry pack` embeds
SYSTEM_PYTHON = "/usr/bin/python3.11"
TIME = "/usr/bin/time"  # GNU time, Debian package `time`
DOC = ROOT / "docs" / "benchmarks.md"
RAW = WORK / "last-run.json"

WARMUPS = 3
FIRST_RUNS = 7
MEMORY_RUNS = 3
PACK_RUNS = 3
NOTES_START = "<!-- notes -->"
NOTES_END = "<!-- /notes -->"
SMAPS_VARIABLE = "PYFERRY_BENCH_SMAPS"
SMAPS_LINE = re.compile(r"^SMAPS private_kib=(\d+) rss_kib=(\d+)$")
PIP_QUIET = ["--quiet", "--disable-pip-version-check", "--root-user-action=ignore"]


class BenchError(Exception):
    """Anything that makes the numbers meaningless: the run stops with this message."""


@dataclass
class Target:
    """A goal stated next to the numbers: `metric` (a key of Result.ratios) ≤ `limit`."""

    metric: str
    limit: float
    wording: str


@dataclass
class App:
    """One benchmark app: its source dir in bench/apps, what it needs, what it must print."""

    name: str
    requirements: list
    expected_stdout: str
    target: Target
    reference: list = field(default_factory=list)  # timed reference command, set by prepare
    reference_memory: list = field(default_factory=list)  # same, but able to print SMAPS
    executable: Path = None  # the packed app, set by prepare

    @property
    def work_dir(self):
        return WORK / self.name

    @property
    def tree(self):
        return self.work_dir / "app"


@dataclass
class Result:
    """Everything measured for one app; times in ns, memory in KiB, sizes in bytes."""

    app: App
    runs: int
    pyferry_ns: list
    reference_ns: list
    first_run_ns: list
    pyferry_memory: dict
    reference_memory: dict
    size: int
    pack_ns: list

    @property
    def ratios(self):
        pair_ratios = [a / b for a, b in zip(self.pyferry_ns, self.reference_ns)]
        reference = statistics.median(self.reference_ns)
        return {
            "pairs": statistics.median(pair_ratios),
            "medians": statistics.median(self.pyferry_ns) / reference,
            "first_run": statistics.median(self.first_run_ns) / reference,
        }


APPS = [
    App(
        name="hello",
        requirements=[],
        expected_stdout="hi\n",
        target=Target("pairs", 0.75, "hello ≤ 0.75× `python3.11 -I -c \"print('hi')\"`"),
    ),
    App(
        name="numpy",
        requirements=["numpy==2.2.6"],
        expected_stdout="numpy 2.2.6 checksum 71995201\n",
        target=Target("first_run", 1.10, "numpy first run ≤ 1.10× the venv"),
    ),
]


# ---------------------------------------------------------------------------------------------
# Running commands
# ---------------------------------------------------------------------------------------------


def clean_environment(smaps=False):
    """The inherited environment without PYFERRY_* / PYTHON* switches; SMAPS reporting on request."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYFERRY_", "PYTHON"))}
    if smaps:
        env[SMAPS_VARIABLE] = "1"
    return env


def describe_failure(cmd, what, stdout, stderr):
    return (
        f"{what}\n  command: {' '.join(map(str, cmd))}\n"
        f"  stdout: {stdout!r}\n  stderr: {stderr[-2000:]!r}"
    )


def run_checked(cmd, **kwargs):
    """Runs a preparation step; its failure aborts the benchmark with its output."""
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        raise BenchError(describe_failure(cmd, f"exit status {proc.returncode}", proc.stdout, proc.stderr))
    return proc.stdout


def check_output(cmd, returncode, stdout, stderr, expected):
    """Aborts unless the run exited 0 and printed exactly `expected`."""
    if returncode != 0:
        raise BenchError(describe_failure(cmd, f"exit status {returncode}", stdout, stderr))
    if stdout != expected:
        raise BenchError(describe_failure(cmd, f"unexpected stdout, wanted {expected!r}", stdout, stderr))


def timed_run(cmd, expected):
    """Wall time in ns of one run of `cmd`, whose stdout must be `expected`."""
    env = clean_environment()
    start = time.perf_counter_ns()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter_ns() - start
    check_output(cmd, proc.returncode, proc.stdout, proc.stderr, expected)
    return elapsed


def memory_run(cmd, expected):
    """Peak RSS (KiB, `/usr/bin/time -f %M`) and the SMAPS line's values of one run of `cmd`.

    Not os.wait4: a child's ru_maxrss includes this harness's RSS from before the exec.
    """
    report = WORK / "peak-rss.txt"
    proc = subprocess.run(
        [TIME, "-f", "%M", "-o", str(report), *cmd],
        capture_output=True, text=True, env=clean_environment(smaps=True),
    )
    lines = proc.stdout.splitlines(keepends=True)
    match = SMAPS_LINE.match(lines[-1].strip()) if lines else None
    if not match:
        raise BenchError(describe_failure(cmd, "no SMAPS line at the end", proc.stdout, proc.stderr))
    check_output(cmd, proc.returncode, "".join(lines[:-1]), proc.stderr, expected)
    return {
        "peak_rss": int(report.read_text().split()[-1]),
        "private": int(match.group(1)),
        "smaps_rss": int(match.group(2)),
    }


# ---------------------------------------------------------------------------------------------
# Preparation: wheels, app trees, the reference venv, packing
# ---------------------------------------------------------------------------------------------


def wheel_is_cached(requirement):
    name, version = requirement.split("==")
    return any(WHEELS.glob(f"{name.replace('-', '_')}-{version}-*.whl"))


def download_wheels(requirements):
    """Fills the wheel cache for the target platform; skipped when every wheel is there."""
    missing = [r for r in requirements if not wheel_is_cached(r)]
    if not missing:
        return
    print(f"downloading {' '.join(missing)} into {WHEELS}", flush=True)
    WHEELS.mkdir(parents=True, exist_ok=True)
    run_checked(
        [sys.executable, "-m", "pip", "download", *PIP_QUIET, "--only-binary=:all:",
         "--python-version", "3.11", "--platform", "manylinux_2_17_x86_64",
         "--implementation", "cp", "-d", str(WHEELS), *missing]
    )


def stamp_matches(stamp, requirements):
    """Whether the stamp file says these requirements are installed already."""
    return stamp.exists() and stamp.read_text() == "\n".join(requirements)


def install_from_cache(pip_command, stamp, requirements):
    """Runs `pip_command + requirements` offline from the wheel cache, unless `stamp` matches."""
    if stamp_matches(stamp, requirements):
        return
    if requirements:
        run_checked([*pip_command, *PIP_QUIET, "--no-index", "--find-links", str(WHEELS), *requirements])
    stamp.write_text("\n".join(requirements))


def prepare_tree(app):
    """target/bench/<app>/app: the app's requirements (pip --target) plus its __main__.py."""
    stamp = app.work_dir / "installed-requirements.txt"
    if not stamp_matches(stamp, app.requirements):
        shutil.rmtree(app.tree, ignore_errors=True)
    app.tree.mkdir(parents=True, exist_ok=True)
    install_from_cache(
        [sys.executable, "-m", "pip", "install", "--target", str(app.tree)], stamp, app.requirements
    )
    shutil.copyfile(APPS_SOURCE / app.name / "__main__.py", app.tree / "__main__.py")


def prepare_venv(requirements):
    """target/bench/venv: /usr/bin/python3.11's venv with the same wheels as the packed apps."""
    stamp = WORK / "venv-installed-requirements.txt"
    if not (stamp.exists() and (VENV / "bin" / "python").exists()):
        print(f"creating the reference venv {VENV}", flush=True)
        stamp.unlink(missing_ok=True)
        run_checked([SYSTEM_PYTHON, "-m", "venv", "--clear", str(VENV)])
    install_from_cache([str(VENV / "bin" / "python"), "-m", "pip", "install"], stamp, requirements)


def check_venv_imports(module):
    """The reference must import `module` from the venv (`-I` keeps the app dir off sys.path)."""
    cmd = [str(VENV / "bin" / "python"), "-I", "-c", f"import {module}; print({module}.__file__)"]
    location = run_checked(cmd).strip()
    if not location.startswith(str(VENV)):
        raise BenchError(f"the reference venv imports {module} from {location}, not from {VENV}")


def set_reference(app):
    """The reference commands: timed (as the targets state them) and able to print SMAPS."""
    if app.name == "hello":
        app.reference = [SYSTEM_PYTHON, "-I", "-c", "print('hi')"]
        source = (APPS_SOURCE / "hello" / "__main__.py").read_text()
        app.reference_memory = [SYSTEM_PYTHON, "-I", "-c", source]
    else:
        for requirement in app.requirements:
            check_venv_imports(requirement.split("==")[0])
        app.reference = [str(VENV / "bin" / "python"), "-I", str(app.tree / "__main__.py")]
        app.reference_memory = app.reference


def pack(app):
    """Packs the tree PACK_RUNS times; returns each pack's wall time in ns."""
    app.executable = app.work_dir / app.name
    times = []
    for _ in range(PACK_RUNS):
        cmd = [str(PYFERRY), "-q", "pack", str(app.tree), "-o", str(app.executable)]
        start = time.perf_counter_ns()
        run_checked(cmd)
        times.append(time.perf_counter_ns() - start)
    os.sync()  # the packed file's writeback would otherwise overlap the first timed runs
    return times


def prepare(apps):
    if not PYFERRY.exists():
        raise BenchError(f"{PYFERRY} is missing: run `make build` first")
    if not Path(TIME).exists():
        raise BenchError(f"{TIME} is missing: apt-get install time")
    requirements = sorted({r for app in apps for r in app.requirements})
    download_wheels(requirements)
    for app in apps:
        prepare_tree(app)
    prepare_venv(requirements)
    for app in apps:
        set_reference(app)


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------


def paired_runs(app, runs):
    """WARMUPS then `runs` pairs, pyferry then reference in each; returns both lists of ns."""
    pyferry_cmd = [str(app.executable)]
    for _ in range(WARMUPS):
        timed_run(pyferry_cmd, app.expected_stdout)
        timed_run(app.reference, app.expected_stdout)
    pyferry_ns, reference_ns = [], []
    for _ in range(runs):
        pyferry_ns.append(timed_run(pyferry_cmd, app.expected_stdout))
        reference_ns.append(timed_run(app.reference, app.expected_stdout))
    return pyferry_ns, reference_ns


def first_runs(app):
    """The first execution of a fresh copy (`cp` to a new file name), FIRST_RUNS times."""
    scratch = app.work_dir / "first-run"
    scratch.mkdir(exist_ok=True)
    times = []
    for index in range(FIRST_RUNS):
        copy = scratch / f"{app.name}-{os.getpid()}-{index}-{time.time_ns()}"
        run_checked(["cp", str(app.executable), str(copy)])
        os.sync()  # the copy's writeback would otherwise overlap the timed run
        try:
            times.append(timed_run([str(copy)], app.expected_stdout))
        finally:
            copy.unlink()
    return times


def memory_runs(app):
    """Medians over MEMORY_RUNS alternated runs of peak RSS and SMAPS values, per side."""
    samples = {"pyferry": [], "reference": []}
    for _ in range(MEMORY_RUNS):
        samples["pyferry"].append(memory_run([str(app.executable)], app.expected_stdout))
        samples["reference"].append(memory_run(app.reference_memory, app.expected_stdout))
    return {
        side: {key: statistics.median(s[key] for s in runs) for key in runs[0]}
        for side, runs in samples.items()
    }


def measure(app, runs):
    print(f"[{app.name}] packing x{PACK_RUNS}", flush=True)
    pack_ns = pack(app)
    print(f"[{app.name}] {WARMUPS} warm-ups + {runs} paired runs", flush=True)
    pyferry_ns, reference_ns = paired_runs(app, runs)
    print(f"[{app.name}] {FIRST_RUNS} first runs, {MEMORY_RUNS} memory runs", flush=True)
    first_ns = first_runs(app)
    memory = memory_runs(app)
    return Result(
        app=app, runs=runs, pyferry_ns=pyferry_ns, reference_ns=reference_ns,
        first_run_ns=first_ns, pyferry_memory=memory["pyferry"],
        reference_memory=memory["reference"], size=app.executable.stat().st_size, pack_ns=pack_ns,
    )


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------


def ms(values_ns):
    return f"{statistics.median(values_ns) / 1e6:.1f} ms"


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


RATIO_NAMES = {
    "pairs": "median of the per-pair wall-time ratios",
    "medians": "ratio of the median wall times",
    "first_run": "first-run median over the reference's median",
}


def verdict(result):
    """"target met" or "missed by X%", X being how far the ratio is above the limit."""
    target = result.app.target
    ratio = result.ratios[target.metric]
    judged = f"{RATIO_NAMES[target.metric]}: {ratio:.3f}×"
    if ratio <= target.limit:
        return f"**target met** ({judged} ≤ {target.limit:.2f}×)"
    return f"**missed by {(ratio / target.limit - 1) * 100:.1f}%** ({judged} > {target.limit:.2f}×)"


def command_text(cmd):
    """`cmd` as one shell line, paths relative to the repository."""
    shown = [str(Path(c).relative_to(ROOT)) if c.startswith(str(ROOT)) else c for c in map(str, cmd)]
    return " ".join(c if re.fullmatch(r"[\w./=-]+", c) else f'"{c}"' for c in shown)


def result_table(result):
    """The app's Markdown table: absolute medians and pyferry/reference ratios."""
    r, ratios = result, result.ratios
    pm, rm = r.pyferry_memory, r.reference_memory
    rows = [
        (f"wall time, median of {r.runs} paired runs", ms(r.pyferry_ns), ms(r.reference_ns),
         f"{ratios['medians']:.2f}× (ratio of medians)"),
        (f"wall time, median of the {r.runs} per-pair ratios", "", "", f"{ratios['pairs']:.2f}×"),
        (f"first run of a fresh copy, median of {FIRST_RUNS}", ms(r.first_run_ns),
         ms(r.reference_ns), f"{ratios['first_run']:.2f}× (vs the reference's median)"),
        (f"peak RSS, median of {MEMORY_RUNS}", mib(pm["peak_rss"]), mib(rm["peak_rss"]),
         f"{pm['peak_rss'] / rm['peak_rss']:.2f}×"),
        ("unshared memory at exit (Private_Clean + Private_Dirty)", mib(pm["private"]),
         mib(rm["private"]), f"{pm['private'] / rm['private']:.2f}×"),
        ("Rss at exit (smaps_rollup)", mib(pm["smaps_rss"]), mib(rm["smaps_rss"]),
         f"{pm['smaps_rss'] / rm['smaps_rss']:.2f}×"),
        ("executable size", f"{r.size / 2**20:.1f} MiB", "", ""),
        (f"pack time, median of {PACK_RUNS}", ms(r.pack_ns), "", ""),
    ]
    lines = ["| measure | pyferry | reference | pyferry / reference |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join(lines)


def app_section(result):
    app = result.app
    return "\n".join([
        f"## {app.name}",
        "",
        f"- pyferry: `{command_text([app.executable])}` (packed from `bench/apps/{app.name}`"
        + (f" with {', '.join(app.requirements)})" if app.requirements else ")"),
        f"- reference: `{command_text(app.reference)}`",
        f"- target: {app.target.wording} — {verdict(result)}",
        "",
        result_table(result),
        "",
    ])


def tool_output(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT).stdout.strip() or "?"
    except OSError:
        return "?"


def modified(path):
    stamp = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc)
    return stamp.strftime("%Y-%m-%d %H:%M UTC")


def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"


def machine_section(load_before):
    load_after = os.getloadavg()
    items = [
        ("date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("CPU", f"{cpu_model()}, nproc {os.cpu_count()}"),
        ("kernel", platform.release()),
        ("load average (1 min) before / after", f"{load_before[0]:.2f} / {load_after[0]:.2f}"),
        ("pyferry", f"{tool_output([str(PYFERRY), '--version'])}, commit "
                    f"{tool_output(['git', 'describe', '--always', '--dirty'])}"),
        ("binaries", ", ".join(f"{b.name} built {modified(b)}" for b in (PYFERRY, RUNTIME))),
        ("rustc", tool_output(["rustc", "--version"])),
        ("wheels (packed and in the venv alike)", ", ".join(sorted(w.name for w in WHEELS.glob("*.whl")))),
        ("reference CPython", f"{tool_output([SYSTEM_PYTHON, '--version'])} ({SYSTEM_PYTHON})"),
        ("harness", f"Python {platform.python_version()}, "
                    f"{tool_output([sys.executable, '-m', 'pip', '--version']).split(' from ')[0]}"),
    ]
    return "\n".join(["## Machine and tools", ""] + [f"- {k}: {v}" for k, v in items]) + "\n"


def method_section(runs):
    return "\n".join([
        "## Method",
        "",
        f"Wall time is `time.perf_counter_ns()` around `subprocess.run`, stdout captured. After "
        f"{WARMUPS} warm-ups each, pyferry and the reference run alternately, {runs} pairs. "
        f"\"First run\" copies the executable with `cp` to a new file name before each of "
        f"{FIRST_RUNS} runs (then `sync`, untimed). Peak RSS is `/usr/bin/time -f %M`. The apps print "
        f"`/proc/self/smaps_rollup` at exit when `{SMAPS_VARIABLE}=1` (for hello's reference, "
        f"the app's source is passed with `-c`); file-backed pages that no other process maps "
        f"count as unshared. Every run's stdout is checked.",
        "",
    ])


def reproduce_section():
    return "\n".join([
        "## How to reproduce",
        "",
        "```",
        "make bench                        # builds, then runs python3 bench/run.py",
        "python3 bench/run.py --runs 31    # after make build",
        "```",
        "",
        "Wheels, app trees and the reference venv are cached in target/bench/: a second run "
        "works offline. This file is rewritten by each run, except the notes section below.",
        "",
    ])


def existing_notes():
    """The `<!-- notes -->` section of the current doc, kept verbatim; a placeholder otherwise."""
    if DOC.exists():
        text = DOC.read_text()
        start, end = text.find(NOTES_START), text.find(NOTES_END)
        if 0 <= start < end:
            return text[start:end + len(NOTES_END)]
    return f"{NOTES_START}\n## Notes\n\n(Analysis goes here; bench/run.py keeps this section.)\n{NOTES_END}"


def write_doc(results, runs, load_before):
    parts = [
        "# Benchmarks\n",
        "Generated by `bench/run.py`; the numbers below are from one run.\n",
        machine_section(load_before),
        *[app_section(result) for result in results],
        method_section(runs),
        reproduce_section(),
        existing_notes() + "\n",
    ]
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text("\n".join(parts))


def save_raw(results, runs):
    """target/bench/last-run.json: every sample, for a closer look than the medians."""
    raw = {
        "runs": runs,
        "apps": {
            r.app.name: {
                "pyferry_ns": r.pyferry_ns, "reference_ns": r.reference_ns,
                "first_run_ns": r.first_run_ns, "pack_ns": r.pack_ns, "size_bytes": r.size,
                "pyferry_memory_kib": r.pyferry_memory, "reference_memory_kib": r.reference_memory,
            }
            for r in results
        },
    }
    RAW.write_text(json.dumps(raw, indent=1) + "\n")


def print_results(results):
    for result in results:
        print()
        print(app_section(result))


# ---------------------------------------------------------------------------------------------


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=31, help="paired timed runs per app (default 31)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main():
    args = parse_args()
    load_before = os.getloadavg()
    try:
        prepare(APPS)
        results = [measure(app, args.runs) for app in APPS]
    except BenchError as error:
        sys.exit(f"\nBENCHMARK ABORTED: {error}")
    print_results(results)
    write_doc(results, args.runs, load_before)
    save_raw(results, args.runs)
    print(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
