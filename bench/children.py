"""Start-up of a python child that an app starts through `sys.executable`.

Libraries start "python" as `[sys.executable, "-c", ...]` or `-m ...` (joblib's loky workers,
pip, test runners). In a pyferry app `sys.executable` is the app, whose launcher recognizes the
python command line and runs the embedded interpreter over the packed `sys.path`. This step
measures what such a child costs, timed from inside the parent around `subprocess.run`:

- pyferry: a packed app whose `__main__` starts `[sys.executable, "-c", "pass"]`;
- floor: the same `__main__` run by a venv's python (`python3.11 -m venv`), whose
  `sys.executable` is the venv's python.

Each round runs both parents, order alternating; each parent times CHILDREN_PER_RUN children and
prints the samples. Reported: the median child of each and their ratio.
"""

import statistics
import subprocess
import sys

from common import (PYFERRY, SYSTEM_PYTHON, WORK, BenchError, clean_environment, execute, fresh_dir,
                    run_checked)

CHILDREN_PER_RUN = 5

PARENT_SOURCE = f"""\
import subprocess, sys, time
samples = []
for _ in range({CHILDREN_PER_RUN}):
    started = time.perf_counter_ns()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    samples.append(time.perf_counter_ns() - started)
print(" ".join(map(str, samples)))
"""


def build(work):
    """The packed parent and the venv; returns (pyferry command, floor command)."""
    app = work / "app"
    fresh_dir(app)
    (app / "__main__.py").write_text(PARENT_SOURCE)
    packed = work / "parent.bin"
    run_checked([PYFERRY, "-q", "pack", app, "-o", packed])
    venv = work / "venv"
    if not (venv / "bin" / "python").exists():
        run_checked([SYSTEM_PYTHON, "-m", "venv", "--without-pip", venv])
    return [str(packed)], [str(venv / "bin" / "python"), "-I", str(app / "__main__.py")]


def samples_of(command):
    done = execute(command, clean_environment())
    if done.returncode != 0:
        raise BenchError(f"the child benchmark's parent failed: {' '.join(command)}: {done.stderr.strip()[-300:]}")
    try:
        return [int(value) for value in done.stdout.split()]
    except ValueError:
        raise BenchError(f"unexpected output of {' '.join(command)}: {done.stdout[:200]!r}") from None


def measure(settings, log):
    """The median child start-up (ns) of pyferry and of the venv, from paired rounds."""
    work = WORK / "children"
    work.mkdir(parents=True, exist_ok=True)
    pyferry, floor = build(work)
    for _ in range(settings.warmups):
        samples_of(pyferry)
        samples_of(floor)
    results = {"pyferry": [], "floor": []}
    for round_index in range(settings.runs):
        order = [("pyferry", pyferry), ("floor", floor)]
        if round_index % 2:
            order.reverse()
        for key, command in order:
            results[key].extend(samples_of(command))
    figures = {key: statistics.median(values) for key, values in results.items()}
    log(f"[children] [sys.executable, '-c', 'pass']: pyferry {figures['pyferry'] / 1e6:.1f} ms, "
        f"venv {figures['floor'] / 1e6:.1f} ms")
    return {"samples": results, "median_ns": figures, "children_per_run": CHILDREN_PER_RUN,
            "rounds": settings.runs}


def section(result):
    """The docs/benchmarks.md section."""
    if result is None:
        return ""
    pyferry = result["median_ns"]["pyferry"]
    floor = result["median_ns"]["floor"]
    count = len(result["samples"]["pyferry"])
    return "\n".join([
        "## A python child started through `sys.executable`",
        "",
        "`subprocess.run([sys.executable, \"-c\", \"pass\"])` timed inside the parent: in the "
        "pyferry app `sys.executable` is the app, which recognizes the python command line and "
        "runs its embedded interpreter (docs/architecture.md, \"Interpreter mode\"); the floor "
        f"is the same parent run by a venv's python. Median of {count} children each "
        f"({result['rounds']} paired rounds of {result['children_per_run']}).",
        "",
        "| parent | child start-up ms | ratio |",
        "|---|---|---|",
        f"| venv python (floor) | {floor / 1e6:.1f} | 1.00x |",
        f"| pyferry app | {pyferry / 1e6:.1f} | {pyferry / floor:.2f}x |",
        "",
    ])


if __name__ == "__main__":
    from common import Settings
    outcome = measure(Settings.quick() if "--quick" in sys.argv else Settings(), print)
    print(section(outcome))
