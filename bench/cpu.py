"""CPU-bound pure Python: the packed runtime's interpreter against Debian's python3.11.

The workload is runtime/bench_cpu.py (dict, str, re and json work, about 1 s), timed inside the
process, so start-up is not part of it:

- pyferry: runtime/bench_cpu.py packed as an app's `__main__.py` (the launcher's CPython, built
  from source by runtime/build with PGO and ThinLTO);
- floor: `/usr/bin/python3.11 -I runtime/bench_cpu.py` (Debian's CPython 3.11.2, PGO + LTO).

Paired rounds, order alternating; reported: both medians and the median of the per-pair ratios.
"""

import json
import shutil
import statistics
import sys

from common import (PYFERRY, ROOT, SYSTEM_PYTHON, WORK, BenchError, clean_environment,
                    execute, run_checked)

WORKLOAD = ROOT / "runtime" / "bench_cpu.py"


def build(work):
    app = work / "app"
    shutil.rmtree(app, ignore_errors=True)
    app.mkdir(parents=True)
    shutil.copy(WORKLOAD, app / "__main__.py")
    packed = work / "cpu.bin"
    run_checked([PYFERRY, "-q", "pack", app, "-o", packed])
    return [str(packed)], [SYSTEM_PYTHON, "-I", str(WORKLOAD)]


def seconds_of(command):
    done = execute(command, clean_environment())
    if done.returncode != 0:
        raise BenchError(done.describe("the CPU workload failed"))
    try:
        return json.loads(done.stdout)["seconds"]
    except (ValueError, KeyError):
        raise BenchError(f"unexpected output of {' '.join(command)}: {done.stdout[:200]!r}") from None


def measure(settings, log):
    work = WORK / "cpu"
    work.mkdir(parents=True, exist_ok=True)
    pyferry, floor = build(work)
    seconds_of(pyferry), seconds_of(floor)  # warm-up
    results = {"pyferry": [], "floor": []}
    ratios = []
    for round_index in range(settings.runs):
        order = [("pyferry", pyferry), ("floor", floor)]
        if round_index % 2:
            order.reverse()
        pair = {key: seconds_of(command) for key, command in order}
        for key, value in pair.items():
            results[key].append(value)
        ratios.append(pair["pyferry"] / pair["floor"])
    figures = {key: statistics.median(values) for key, values in results.items()}
    ratio = statistics.median(ratios)
    log(f"[cpu] pure-Python workload: pyferry {figures['pyferry']:.3f} s, "
        f"python3.11 {figures['floor']:.3f} s, median ratio {ratio:.3f}")
    return {"samples": results, "median_s": figures, "median_ratio": ratio,
            "ratio_range": [min(ratios), max(ratios)], "rounds": settings.runs}


def section(result):
    if result is None:
        return ""
    low, high = result["ratio_range"]
    return "\n".join([
        "## CPU-bound pure Python: the runtime's interpreter against Debian's",
        "",
        "`runtime/bench_cpu.py` (dict, str, re and json work, about 1 s, timed inside the "
        "process) packed as an app, against `/usr/bin/python3.11 -I` running the same file "
        f"({result['rounds']} paired rounds, order alternating). Goal: ≤ 1.05×.",
        "",
        "| interpreter | median s | ratio |",
        "|---|---|---|",
        f"| Debian's python3.11 (PGO + LTO, gcc) | {result['median_s']['floor']:.3f} | 1.00x |",
        f"| pyferry's runtime (PGO + ThinLTO, zig cc) | {result['median_s']['pyferry']:.3f} | "
        f"{result['median_ratio']:.3f}x (pairs {low:.2f}–{high:.2f}) |",
        "",
    ])


if __name__ == "__main__":
    from common import Settings
    outcome = measure(Settings.quick() if "--quick" in sys.argv else Settings(), print)
    print(section(outcome))
