"""pyferry against the packagers users would pick instead, measured side by side in one run.

Run by `make bench` (after `make build`), or `python3 bench/run.py [--quick] [--apps A,B]
[--tools T,U] [--runs N]`. Python 3 standard library only; root is needed for the hostile-host
checks (private mount namespaces). The steps, one module each:

  apps.py     the four apps (bench/apps/<name>/__main__.py and the exact output each must
              print) and the pinned wheels they are built from (bench/requirements/apps.txt),
              downloaded once into target/bench/wheels: later runs are offline;
  tools.py    the tools: pyferry, pyferry --format pyz, PyInstaller --onefile and --onedir,
              shiv, pex, pex --scie eager, and the floor (a venv of /usr/bin/python3.11 with the same wheels, bare
              `python3.11 -I` for hello). Each peer is pinned in bench/requirements/<tool>.txt
              and installed in its own venv of /usr/bin/python3.11 under target/bench/tools.
              Every build is clean and timed; a peer that fails to build is reported, not fatal;
  measure.py  per app and tool: first runs (fresh, empty HOME, TMPDIR, SHIV_ROOT, PEX_ROOT and
              working directory each time, single files copied to a new path), warm runs in
              rounds where every tool runs next to a floor run (pair order alternating),
              peak RSS (/usr/bin/time) and unshared memory (the app prints its smaps_rollup
              when PYFERRY_BENCH_SMAPS=1), bytes written by a first run (wait4's ru_oublock, and
              what is left in the fresh directories), and one run each with TMPDIR on a noexec
              tmpfs and with HOME read-only, inside a private mount namespace;
  cpu.py      a CPU-bound pure-Python workload, the packed runtime against Debian's python3.11;
  children.py the start-up of a python child started through `sys.executable` from a pyferry
              app, beside the same child of a venv's python;
  report.py   pyferry's goals with computed verdicts, one table per app (absolute medians and
              ratios to the floor), docs/benchmarks.md (its `<!-- notes -->` section kept);
  chart.py    docs/benchmarks.svg, first and warm run per tool.

Every run's stdout is checked against bench/apps/<name>/expected-output.txt: a wrong output
aborts the benchmark, as does any failure of pyferry or the floor. Raw samples go to
target/bench/last-run.json.
"""

import argparse
import dataclasses
import datetime
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

import children
import cpu
from apps import APP_PINS, download_wheels, prepare_sources, select_apps
from chart import render
from common import (APP_WHEELS, CHART, DOC, PYFERRY, RAW, RUNTIME, SCRATCH, TIME, BenchError,
                    Settings, relative)
from measure import check_namespaces, measure_app
from report import AppResult, app_table, document, goal_lines, where_pyferry_loses, write_doc
from tools import FLOOR_KEY, build, install_tools, select_tools, tool_versions

STARTED = time.monotonic()


def log(message):
    print(f"[{time.monotonic() - STARTED:6.0f} s] {message}", flush=True)


def names(text):
    return [name.strip() for name in text.split(",") if name.strip()]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="few runs of everything, to validate the harness (not for publishing)")
    parser.add_argument("--runs", type=int, help="warm runs per tool (default 21, 3 with --quick)")
    parser.add_argument("--apps", type=names, help="comma-separated apps (default: all)")
    parser.add_argument("--tools", type=names,
                        help="comma-separated tools (default: all; the floor is always measured)")
    args = parser.parse_args()
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def prepare(apps, tools):
    """Checks the prerequisites, fetches/installs what is missing; returns tool install errors."""
    if not PYFERRY.exists():
        raise BenchError(f"{PYFERRY} is missing: run `make build` first")
    for program in (TIME, shutil.which("unshare")):
        if not program or not Path(program).exists():
            raise BenchError(f"{program or 'unshare'} is missing: apt-get install time util-linux")
    check_namespaces()
    download_wheels(APP_PINS, APP_WHEELS)
    install_errors = install_tools(tools)
    for tool, error in install_errors.items():
        log(f"could not install {tool}: {error}")
    for app in apps:
        prepare_sources(app)
    return install_errors


def run_app(app, tools, settings, install_errors):
    """Builds the app with every tool, then measures what was built."""
    def app_log(message):
        log(f"[{app.name}] {message}")

    builds = {}
    for tool in tools:
        app_log(f"building with {tool.label}")
        builds[tool.key] = build(tool, app, install_errors)
        outcome = builds[tool.key]
        if outcome.error:
            app_log(f"  {tool.label} failed to build: {outcome.error}")
    figures = measure_app(app, builds, FLOOR_KEY, settings, app_log)
    return AppResult(app, builds, figures, FLOOR_KEY)


def raw_data(results, settings, run_info, child_result, cpu_result):
    """Every sample, for a closer look than the medians."""
    apps = {}
    for result in results:
        tools = {}
        for key, outcome in result.builds.items():
            entry = {"label": result.label(key), "build_ns": outcome.build_ns, "error": outcome.error,
                     "size_bytes": outcome.artifact.size if outcome.artifact else None,
                     "command": [relative(c) for c in map(str, outcome.artifact.command)]
                     if outcome.artifact else None}
            if key in result.figures:
                entry.update(dataclasses.asdict(result.figures[key]))
            tools[key] = entry
        apps[result.app.name] = tools
    return {"settings": dataclasses.asdict(settings), "run": run_info, "apps": apps,
            "children": child_result, "cpu": cpu_result}


def binaries_stamp():
    """The modification times of pyferry's binaries: a colleague's `make build` during the run
    would change what later packs embed."""
    return [path.stat().st_mtime_ns if path.exists() else None for path in (PYFERRY, RUNTIME)]


def main():
    args = parse_args()
    binaries_before = binaries_stamp()
    settings = Settings.quick() if args.quick else Settings()
    if args.runs:
        settings.runs = args.runs
    load_before = os.getloadavg()[0]
    try:
        apps = select_apps(args.apps)
        tools = select_tools(settings, args.tools)
        install_errors = prepare(apps, tools)
        results = [run_app(app, tools, settings, install_errors) for app in apps]
        with_pyferry = any(t.key == "pyferry" for t in tools)
        child_result = children.measure(settings, log) if with_pyferry else None
        cpu_result = cpu.measure(settings, log) if with_pyferry else None
    except BenchError as error:
        sys.exit(f"\nBENCHMARK ABORTED: {error}")
    finally:
        shutil.rmtree(SCRATCH, ignore_errors=True)
    minutes, seconds = divmod(int(time.monotonic() - STARTED), 60)
    run_info = {
        "command": shlex.join(["python3", "bench/run.py", *sys.argv[1:]]),
        "quick": args.quick,
        "finished": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "duration": f"{minutes} min {seconds} s",
        "load": f"{load_before:.2f} / {os.getloadavg()[0]:.2f}",
        "binaries_changed": binaries_stamp() != binaries_before,
    }
    if run_info["binaries_changed"]:
        print("WARNING: target/release/pyferry or pyferry-runtime changed during the run")
    print("\n## pyferry's goals\n\n" + "\n".join(goal_lines(results)))
    for result in results:
        print(f"\n## {result.app.name}\n\n{app_table(result)}")
    print("\n## Where another tool beats pyferry\n\n" + "\n".join(where_pyferry_loses(results)))
    extra = children.section(child_result) + "\n" + cpu.section(cpu_result)
    if child_result:
        print("\n" + extra)
    write_doc(document(results, settings, run_info, tool_versions(tools), extra))
    CHART.write_text(render(results))
    RAW.write_text(json.dumps(raw_data(results, settings, run_info, child_result, cpu_result),
                              indent=1) + "\n")
    print(f"\nwrote {relative(DOC)} and {relative(CHART)} in {run_info['duration']}")


if __name__ == "__main__":
    main()
