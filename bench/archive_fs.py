#!/usr/bin/env python3
"""What the archive filesystem costs: calls on real files, and on archive files.

The launcher defines glibc's `open`, `stat`... itself (launcher/src/archive_fs/); every call in
the process goes through a check of its path. This times, per call, in one process:
  no system call  os.path.join (what the interpreters' builds alone make of the same code)
  stat      os.stat of a real file
  open      open(path, 'rb').close() of a real file
  os.open   os.open + os.close of a real file
  lookalike os.stat of a real file whose path has a component named like the executable (a
            system call more the first time: the path up to it is stat'ed, the verdict kept)
  archive   os.stat and open+read+close of files inside the archive (1 KB and 1 MB, deflated)
in three interpreters, alternating, each round a fresh process:
  python    /usr/bin/python3.11 -I (the same CPython 3.11, with glibc's own functions)
  packed    the packed app (archive filesystem on)
  off       the packed app with PYFERRY_ARCHIVE_FS=0 (its functions only pass calls on)
and, for the other design (patching Python's functions instead of glibc's), `python` with
`os.stat` and `builtins.open` replaced by Python wrappers that test the prefix ("wrapped").

Run after `make build`: `python3 bench/archive_fs.py [--rounds 11] [--calls 200000]`. Prints a
table of medians (CPU ns per call) and, for each kind, the median of its per-round ratios to
`python` (each round runs every kind once, back to back) and of `packed` to `off`.
"""

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYFERRY = ROOT / "target/release/pyferry"
WORK = ROOT / "target/bench-archive-fs"
PYTHON = "/usr/bin/python3.11"
NAME = "app-bench"

PROBE = r'''
import os, sys, time, builtins

def per_call(function, calls):
    # CPU time of this process (user and system): time spent waiting for a busy CPU is left out.
    function()
    start = time.process_time_ns()
    for _ in range(calls):
        function()
    return (time.process_time_ns() - start) / calls

def main(argv):
    mode, calls, real_dir = argv[0], int(argv[1]), argv[2]
    if mode == "wrapped":
        prefix = "/opt/" + "app-bench" + "/"
        real_stat, real_open = os.stat, builtins.open
        def stat(path, *args, **kwargs):
            if isinstance(path, str) and path.startswith(prefix):
                raise NotImplementedError
            return real_stat(path, *args, **kwargs)
        def open_(file, *args, **kwargs):
            if isinstance(file, str) and file.startswith(prefix):
                raise NotImplementedError
            return real_open(file, *args, **kwargs)
        os.stat, builtins.open = stat, open_
    real = os.path.join(real_dir, "file.txt")
    lookalike = os.path.join(real_dir, "app-bench", "file.txt")
    results = {
        "no system call": per_call(lambda: os.path.join(real_dir, "file.txt"), calls),
        "stat": per_call(lambda: os.stat(real), calls),
        "open": per_call(lambda: open(real, "rb").close(), calls // 4),
        "os.open": per_call(lambda: os.close(os.open(real, os.O_RDONLY)), calls // 2),
        "lookalike": per_call(lambda: os.stat(lookalike), calls),
    }
    if mode in ("packed",):
        here = os.path.dirname(__file__)
        small, large = os.path.join(here, "small.txt"), os.path.join(here, "large.txt")
        def read(path):
            with open(path, "rb") as file:
                file.read()
        results["archive stat"] = per_call(lambda: os.stat(small), calls // 4)
        results["archive read 1 KB"] = per_call(lambda: read(small), calls // 40)
        results["archive read 1 MB"] = per_call(lambda: read(large), 200)
    if mode in ("python",):
        results["real read 1 KB"] = per_call(lambda: open(os.path.join(real_dir, "small.txt"), "rb").read(), calls // 40)
        results["real read 1 MB"] = per_call(lambda: open(os.path.join(real_dir, "large.txt"), "rb").read(), 200)
    for name, value in results.items():
        print(f"{name}\t{value:.1f}")

if __name__ == "__main__":
    main(sys.argv[1:])
'''


def pack() -> tuple[Path, Path]:
    app = WORK / "app"
    real = WORK / "real"
    for directory in (app, real / NAME):
        directory.mkdir(parents=True, exist_ok=True)
    (app / "__main__.py").write_text(PROBE)
    (WORK / "probe.py").write_text(PROBE)
    small = os.urandom(512).hex()
    large = os.urandom(512 * 1024).hex()
    for directory in (app, real):
        (directory / "small.txt").write_text(small)
        (directory / "large.txt").write_text(large)
    (real / "file.txt").write_text("x")
    (real / NAME / "file.txt").write_text("x")
    exe = WORK / NAME
    subprocess.run([PYFERRY, "-q", "pack", app, "-o", exe], check=True)
    return exe, real


def run(command: list, env: dict) -> dict:
    output = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    return {line.split("\t")[0]: float(line.split("\t")[1]) for line in output.splitlines()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    exe, real = pack()
    base_env = {key: value for key, value in os.environ.items() if not key.startswith("PYFERRY_")}
    kinds = {
        "python": ([PYTHON, "-I", WORK / "probe.py", "python"], base_env),
        "wrapped": ([PYTHON, "-I", WORK / "probe.py", "wrapped"], base_env),
        "packed": ([exe, "packed"], base_env),
        "off": ([exe, "off"], {**base_env, "PYFERRY_ARCHIVE_FS": "0"}),
    }
    samples: dict = {kind: {} for kind in kinds}
    for round_number in range(args.rounds):
        for kind, (command, env) in kinds.items():
            for name, value in run([*command, str(args.calls), real], env).items():
                samples[kind].setdefault(name, []).append(value)
        print(f"round {round_number + 1}/{args.rounds}", file=sys.stderr)
    medians = {kind: {name: statistics.median(values) for name, values in by_name.items()} for kind, by_name in samples.items()}

    def ratio(kind, base, name):
        return statistics.median(
            value / reference for value, reference in zip(samples[kind][name], samples[base][name])
        )

    names = ["no system call", "stat", "open", "os.open", "lookalike"]
    print(f"{'CPU ns per call, median of ' + str(args.rounds):<30}" + "".join(f"{kind:>18}" for kind in kinds) + f"{'packed/off':>12}")
    for name in names:
        cells = "".join(f"{medians[kind][name]:>9.0f} ({ratio(kind, 'python', name):4.2f}x)" for kind in kinds)
        print(f"{name:<30}{cells}{ratio('packed', 'off', name):>11.3f}x")
    for name in ["archive stat", "archive read 1 KB", "archive read 1 MB"]:
        print(f"{name:<30}{medians['packed'][name]:>9.0f}")
    for name in ["real read 1 KB", "real read 1 MB"]:
        print(f"{name:<30}{medians['python'][name]:>9.0f}")


if __name__ == "__main__":
    main()
