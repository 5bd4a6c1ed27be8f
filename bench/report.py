"""The report: pyferry's goals with verdicts, one table per app, docs/benchmarks.md."""

import datetime
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from common import (APP_WHEELS, CHART, DOC, PYFERRY, ROOT, RUNTIME, SYSTEM_PYTHON, relative)
from measure import HOSTILE_SCENARIOS

NOTES_START = "<!-- notes -->"
NOTES_END = "<!-- /notes -->"
ONEFILE = "pyinstaller-onefile"
SCENARIO_TITLES = {"noexec_tmp": "`TMPDIR` noexec", "ro_home": "read-only `HOME`"}


@dataclass
class AppResult:
    """One app's builds ({tool key: Build}) and figures ({tool key: Figures}, built tools only)."""

    app: object
    builds: dict
    figures: dict
    floor_key: str

    def usable(self, key):
        """Whether `key` was built and ran: it has figures to show."""
        return key in self.figures and not self.figures[key].error

    def floor(self):
        return self.figures[self.floor_key]

    def floor_label(self):
        return "python3.11 -I (floor)" if self.app.name == "hello" else "venv (floor)"

    def label(self, key):
        return self.floor_label() if key == self.floor_key else self.builds[key].tool.label


def median(values):
    return statistics.median(values) if values else None


# ---------------------------------------------------------------------------------------------
# Goals
# ---------------------------------------------------------------------------------------------


@dataclass
class Goal:
    """The subject's figure (pyferry's, or its pyz's) ÷ a reference figure must be ≤ `limit`.
    "missed by X%" means the subject's figure is X% above `limit` × the reference's."""

    wording: str
    apps: list  # app names the goal is judged on (None: every app measured)
    reference: str  # tool key of the reference figure
    figure: str  # "warm_pairs", "first", "size" or "build"
    limit: float
    shown_inverted: bool = False  # show reference ÷ subject ("12× faster") rather than the ratio
    subject: str = "pyferry"  # tool key of the figure judged


GOALS = [
    Goal("hello ≤ 0.75× `python3.11 -I -c \"print('hi')\"` (median of per-pair warm-run ratios)",
         ["hello"], "floor", "warm_pairs", 0.75),
    Goal("numpy first run ≤ 1.10× the venv's first run", ["numpy"], "floor", "first", 1.10),
    Goal("first run ≥ 10× faster than PyInstaller `--onefile`'s", None, ONEFILE, "first", 0.10,
         shown_inverted=True),
    Goal("file size ≤ PyInstaller `--onefile`'s", None, ONEFILE, "size", 1.0),
    Goal("pack time ≤ 0.3× PyInstaller `--onefile`'s build time", None, ONEFILE, "build", 0.3),
    # `pyferry pack --format pyz` (issue 23), against the floor (the venv; bare python3.11 -I
    # for hello, which no zipapp can match: running a zip imports runpy and its dependencies).
    Goal("pyz first run ≤ 1.10× the floor's first run", None, "floor", "first", 1.10,
         subject="pyz"),
    Goal("pyz warm run ≤ 1.10× the floor's (median of per-pair ratios)", None, "floor",
         "warm_pairs", 1.10, subject="pyz"),
    Goal("pyz file size ≤ shiv's", None, "shiv", "size", 1.0, subject="pyz"),
]


def figure_value(result, key, figure):
    """One figure of one tool on one app, or None when it was not measured."""
    if figure == "size":
        build = result.builds.get(key)
        return build.artifact.size if build and build.artifact else None
    if figure == "build":
        build = result.builds.get(key)
        return build.build_median_ns if build and build.artifact else None
    if not result.usable(key):
        return None
    if figure == "first":
        return median(result.figures[key].first_ns)
    raise ValueError(figure)


def goal_ratio(goal, result):
    """subject ÷ reference for `goal` on this app, or the reason it cannot be judged."""
    subject = goal.subject
    if subject not in result.builds:
        return None, f"{subject} was not part of this run (--tools)"
    if goal.figure == "warm_pairs":
        if result.usable(subject) and result.figures[subject].warm_ns:
            return result.figures[subject].pair_ratio, None
        return None, f"{subject} not measured"
    ours = figure_value(result, subject, goal.figure)
    theirs = figure_value(result, goal.reference, goal.figure)
    if ours is None:
        return None, f"{subject} not measured"
    if theirs is None:
        build = result.builds.get(goal.reference)
        if build is None:
            return None, f"{goal.reference} was not part of this run (--tools)"
        figures = result.figures.get(goal.reference)
        why = build.error or (figures.error if figures else None) or "not measured"
        return None, f"{result.label(goal.reference)}: {why}"
    return ours / theirs, None


def verdict(goal, ratio):
    shown = f"{1 / ratio:.1f}×" if goal.shown_inverted else f"{ratio:.3f}×"
    if ratio <= goal.limit:
        return f"**met** ({shown})"
    return f"**missed by {(ratio / goal.limit - 1) * 100:.1f}%** ({shown})"


def goal_lines(results):
    """One verdict line per goal (per-app goals list every app on their line)."""
    lines = []
    for goal in GOALS:
        judged = [r for r in results if goal.apps is None or r.app.name in goal.apps]
        if not judged:
            continue
        parts = []
        for result in judged:
            ratio, why = goal_ratio(goal, result)
            text = verdict(goal, ratio) if why is None else f"not judged: {why}"
            parts.append(text if goal.apps else f"{result.app.name} {text}")
        lines.append(f"- {goal.wording}: {'; '.join(parts)}")
    return lines


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


def ms(ns):
    return f"{ns / 1e6:.1f} ms" if ns >= 1e7 else f"{ns / 1e6:.2f} ms"


def mib(n_bytes):
    """A size in MiB, or in KiB below one MiB (2^10 and 2^20 bytes)."""
    if n_bytes < 2**20:
        return f"{n_bytes / 2**10:.0f} KiB"
    return f"{n_bytes / 2**20:.1f} MiB"


def seconds(ns):
    return f"{ns / 1e9:.1f} s" if ns >= 1e9 else f"{ns / 1e9:.2f} s"


def ratio_text(value, floor):
    return f" ({value / floor:.2f}×)" if floor else ""


def bytes_written(figures):
    """'none', or the median bytes a first run wrote and the median it left behind."""
    written, left = median(figures.first_written), median(figures.first_left)
    if not written and not left:
        return "none"
    return f"{mib(written)} written, {mib(left)} left"


def tool_row(result, key, footnotes):
    """One row of an app's table: absolute medians, ratios to the floor in parentheses."""
    build = result.builds[key]
    label = result.label(key)
    if build.error:
        footnotes.append(f"{label}: build failed: {build.error}")
        return [label, f"build failed ({len(footnotes)})"] + [""] * 10
    build_cell = seconds(build.build_median_ns) if build.build_ns else "—"
    size = build.artifact.size
    size_cell = ", ".join(part for part in (mib(size) if size is not None else "",
                                            build.artifact.size_note) if part)
    figures = result.figures[key]
    if figures.error:
        footnotes.append(f"{label}: {figures.error}")
        return [label, build_cell, size_cell, f"fails to run ({len(footnotes)})"] + [""] * 8
    floor = result.floor()
    first, floor_first = median(figures.first_ns), median(floor.first_ns)
    warm = median(figures.warm_ns)
    warm_ratio = 1.0 if key == result.floor_key else figures.pair_ratio
    memory, floor_memory = figures.memory, floor.memory
    row = [
        label, build_cell, size_cell,
        ms(first), f"{first / floor_first:.2f}×",
        ms(warm), f"{warm_ratio:.2f}×",
        mib(memory["peak_rss"] * 1024) + ratio_text(memory["peak_rss"], floor_memory["peak_rss"]),
        mib(memory["private"] * 1024) + ratio_text(memory["private"], floor_memory["private"]),
        bytes_written(figures),
    ]
    for scenario in HOSTILE_SCENARIOS:
        outcome, line = figures.hostile[scenario]
        if outcome == "runs":
            row.append("runs")
        else:
            footnotes.append(f"{label}, {SCENARIO_TITLES[scenario]}: {line}")
            row.append(f"**fails** ({len(footnotes)})" if outcome == "fails"
                       else f"runs, warns ({len(footnotes)})")
    return row


TABLE_HEADER = [
    "tool", "build", "size", "first run", "× floor", "warm run", "× floor",
    "peak RSS (× floor)", "unshared (× floor)", "disk written by a first run",
    *SCENARIO_TITLES.values(),
]


def app_table(result):
    """The app's Markdown table, then its numbered footnotes (failures, one line each)."""
    footnotes = []
    order = [key for key in result.builds if key != result.floor_key] + [result.floor_key]
    rows = [tool_row(result, key, footnotes) for key in order]
    lines = ["| " + " | ".join(TABLE_HEADER) + " |",
             "| --- |" + " ---: |" * (len(TABLE_HEADER) - 3) + " --- | --- |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if footnotes:
        lines += [""] + [f"{n}. {text}" for n, text in enumerate(footnotes, 1)]
    return "\n".join(lines)


def app_section(result, settings):
    app = result.app
    pins = ", ".join(app.requirements) or "no dependencies"
    return "\n".join([
        f"## {app.name}",
        "",
        f"{app.summary} (`bench/apps/{app.name}`, {pins}). Floor: `{command_text(app.floor_command())}`. "
        f"First run: median of {settings.first_runs}, × floor is over the floor's first-run median; "
        f"warm run: median of {settings.runs} runs, each paired with a floor run, × floor is the "
        f"median of the per-pair ratios. Failures are numbered below the table.",
        "",
        app_table(result),
        "",
    ])


def command_text(cmd):
    """`cmd` as one shell line, paths relative to the repository."""
    shown = [relative(c) for c in map(str, cmd)]
    return " ".join(c if all(ch.isalnum() or ch in "./=-_" for ch in c) else f'"{c}"' for c in shown)


def where_pyferry_loses(results):
    """Computed facts: for each app and figure, the tools that beat pyferry on it."""
    figures = [
        ("first run", lambda r, k: median(r.figures[k].first_ns), ms),
        ("warm run", lambda r, k: median(r.figures[k].warm_ns), ms),
        ("peak RSS", lambda r, k: r.figures[k].memory["peak_rss"] * 1024, mib),
        ("unshared memory", lambda r, k: r.figures[k].memory["private"] * 1024, mib),
        ("size", lambda r, k: r.builds[k].artifact.size, mib),
        ("build time", lambda r, k: r.builds[k].build_median_ns, seconds),
    ]
    lines = []
    for result in results:
        if not result.usable("pyferry"):
            continue
        for name, value, fmt in figures:
            ours = value(result, "pyferry")
            better = []
            for key in result.figures:
                if key == "pyferry" or not result.usable(key):
                    continue
                theirs = value(result, key)
                if theirs is not None and ours is not None and theirs < ours:
                    better.append(f"{result.label(key)} {fmt(theirs)}")
            if better:
                lines.append(f"- {result.app.name}, {name} (pyferry {fmt(ours)}): {', '.join(better)}")
    return lines or ["- nowhere: pyferry has the best figure of every tool on every app measured"]


# ---------------------------------------------------------------------------------------------
# The document
# ---------------------------------------------------------------------------------------------


def tool_output(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT).stdout.strip() or "?"
    except OSError:
        return "?"


def modified(path):
    if not path.exists():
        return "missing"
    stamp = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc)
    return stamp.strftime("%Y-%m-%d %H:%M UTC")


def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"


def machine_section(run_info, versions):
    items = [
        ("date", run_info["finished"]),
        ("CPU", f"{cpu_model()}, nproc {os.cpu_count()}"),
        ("memory", f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"),
        ("kernel", platform.release()),
        ("load average (1 min) before / after", run_info["load"]),
        ("run", f"`{run_info['command']}`, {run_info['duration']}"),
        ("pyferry", f"{tool_output([str(PYFERRY), '--version'])}, commit "
                    f"{tool_output(['git', 'describe', '--always', '--dirty'])}; "
                    f"binaries built {modified(PYFERRY)} / {modified(RUNTIME)}"),
        ("peers", ", ".join(f"{name} {version}" for name, version in versions.items()) or "none"),
        ("CPython (floor, shiv, pex, PyInstaller)", f"{tool_output([SYSTEM_PYTHON, '--version'])} ({SYSTEM_PYTHON})"),
        ("app wheels (every tool, the floor alike)",
         ", ".join(sorted(w.name.split("-")[0] + " " + w.name.split("-")[1] for w in APP_WHEELS.glob("*.whl")))),
        ("harness", f"Python {platform.python_version()} ({sys.executable})"),
    ]
    return "\n".join(["## Machine and tools", ""] + [f"- {k}: {v}" for k, v in items]) + "\n"


def method_section(settings):
    return f"""## Method

Each tool builds each app from the same pinned wheels (`bench/requirements/apps.txt`, cached
in `target/bench/wheels`): pyferry packs `pip --target` of the wheels plus `__main__.py`,
PyInstaller analyses that same tree, shiv and pex install the wheels offline themselves, and
the floor is a venv of `/usr/bin/python3.11` holding them (for hello: bare `python3.11 -I`).
The peers are pinned in `bench/requirements/*.txt`, each in its own venv of
`/usr/bin/python3.11`, and run on it (shiv's and pex's shebang: `/usr/bin/python3.11 -sE`).
Builds are clean: an empty output directory, HOME, TMPDIR and tool cache each time; pyferry's
pack time is the median of {settings.pack_runs}, each peer builds once.

- **first run**: median of {settings.first_runs}; before each, a new empty HOME, TMPDIR and working
  directory (so `~/.shiv`, the pex root `~/.pex` and PyInstaller's `_MEI*` start empty), a
  single-file artifact copied to a new path, then `sync` (untimed). Page cache not dropped.
- **warm run**: after {settings.warmups} warm-ups per tool, {settings.runs} rounds; in each round every tool
  runs once next to a run of the floor, the pair's order alternating between rounds. The
  median is shown; its "× floor" is the median of the per-pair ratios.
- **wall time**: `time.perf_counter_ns()` from `Popen` to the child reaped, stdout and
  stderr read through pipes; every run's stdout must equal `bench/apps/<app>/expected-output.txt`.
- **peak RSS**: `/usr/bin/time -f %M` (the largest single process: for PyInstaller `--onefile`,
  the app's process, not the bootloader that extracted it); **unshared**: Private_Clean +
  Private_Dirty of `/proc/self/smaps_rollup`, printed by the app at exit when
  `PYFERRY_BENCH_SMAPS=1`; medians of {settings.memory_runs}, warm.
- **disk written**: `wait4`'s `ru_oublock` × 512 for the first run (file pages the process tree
  dirtied, deleted files included: PyInstaller `--onefile` removes its `_MEI*` tree at exit),
  and what was left in its HOME, TMPDIR and working directory; medians.
- **hostile hosts**: one first run in a private mount namespace (`unshare --mount`) with the
  fresh TMPDIR mounted `tmpfs -o noexec`, and one with the fresh HOME bind-mounted read-only.
- size: the file (a folder's files for `--onedir`, the installed venv for the floor);
  MiB = 2^20 bytes.
"""


def reproduce_section():
    return """## How to reproduce

```
make bench                              # builds pyferry, then runs python3 bench/run.py
python3 bench/run.py --quick            # a few runs of everything, to validate
python3 bench/run.py --apps numpy --tools pyferry,pyinstaller-onefile
```

The first run downloads the pinned wheels into `target/bench/wheels`; later runs are offline.
This file and `benchmarks.svg` are rewritten by each run, except the notes section below;
every sample is in `target/bench/last-run.json`.
"""


def existing_notes():
    """The `<!-- notes -->` section of the current doc, kept verbatim; a placeholder otherwise."""
    if DOC.exists():
        text = DOC.read_text()
        start, end = text.find(NOTES_START), text.find(NOTES_END)
        if 0 <= start < end:
            return text[start:end + len(NOTES_END)]
    return f"{NOTES_START}\n## Notes\n\n(Analysis goes here; bench/run.py keeps this section.)\n{NOTES_END}"


def document(results, settings, run_info, versions, children_section=""):
    """The whole docs/benchmarks.md text."""
    quick = ("\n\n**A `--quick` validation run: too few samples for the figures to mean much.**"
             if run_info["quick"] else "")
    changed = ("\n\n**pyferry's binaries were rebuilt during the run: its figures mix two builds.**"
               if run_info["binaries_changed"] else "")
    return "\n".join([
        "# Benchmarks",
        "",
        "pyferry against the tools users would pick instead, measured side by side in one run "
        "of `bench/run.py` (`make bench`); the numbers below are that run's." + quick + changed,
        "",
        "## pyferry's goals",
        "",
        *goal_lines(results),
        "",
        f"![first and warm run of each tool, per app]({CHART.name})",
        "",
        *[app_section(result, settings) for result in results],
        "## Where another tool beats pyferry (computed)",
        "",
        *where_pyferry_loses(results),
        "",
        children_section,
        machine_section(run_info, versions),
        method_section(settings),
        reproduce_section(),
        existing_notes(),
        "",
    ])


def write_doc(text):
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
