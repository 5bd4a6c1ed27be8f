#!/usr/bin/env python3
"""Scale: start-up must not grow with what the app does not import.

Packs a `print('hi')` app twice: alone, and together with about 500 MB of packages it never
imports (real wheels: numpy, Pillow, cryptography, shapely, pydantic-core...; generated pure
Python packages; generated binary data), then times the two executables in alternating pairs.
Target: the big one starts within 1.10x of the small one (median of the per-pair ratios).
Also reports each `pyferry pack`'s wall time and peak RSS (the packer must stay within the
machine's memory), executable sizes and entry counts, and the launcher's own `open_archive`
span (reading the central directory) for both.

Run with `make bench-scale` (after `make build`); `--pairs`, `--size-mb` to change the run.
Prints its table and writes it to docs/scale.md.
"""

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYFERRY = ROOT / "target/release/pyferry"
WORK = ROOT / "target/bench-scale"
WHEEL_CACHE = ROOT / "target/test-wheels"
TARGET = 1.10
DOC = ROOT / "docs" / "scale.md"

# Real wheels the app never imports (pinned; the end-to-end tests cache the same ones).
WHEELS = [
    "numpy==2.2.6",
    "pillow==10.4.0",
    "cryptography==43.0.3",
    "cffi==2.1.1",
    "pycparser==3.12",
    "shapely==2.0.6",
    "pydantic-core==2.23.4",
    "typing-extensions==4.16.0",
    "orjson==3.10.7",
    "pyyaml==6.0.2",
    "markupsafe==2.1.5",
    "charset-normalizer==3.3.2",
]

MODULE_TEMPLATE = '''"""Generated module {package}.{module}: never imported by the app."""

import functools

CONSTANTS = {constants!r}


class Model{index}:
    """A class with a few methods, like application code has."""

    def __init__(self, value):
        self.value = value

    def scaled(self, factor):
        return self.value * factor + {index}

    @functools.lru_cache(maxsize=None)
    def describe(self):
        return "model {index} holding %r" % (self.value,)


def compute_{index}(items):
    total = 0
    for position, item in enumerate(items):
        if position % 3 == 0:
            total += item * {index}
        elif position % 3 == 1:
            total -= item
        else:
            total ^= item
    return total
'''


def log(message):
    print(message, file=sys.stderr, flush=True)


def tree_size(path):
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


def pip(*args):
    return subprocess.run(
        [sys.executable, "-m", "pip", *args, "--quiet", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
    )


def install_wheels(target):
    """The pinned wheels into `target`, offline from the test cache when it has them."""
    common = ["--only-binary=:all:", "--target", str(target), "--no-deps", *WHEELS]
    offline = pip("install", "--root-user-action=ignore", "--no-index", "--find-links", str(WHEEL_CACHE), *common)
    if offline.returncode == 0:
        return
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    download = pip(
        "download", "--only-binary=:all:", "--no-deps", "--python-version", "3.11", "--implementation", "cp",
        "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
        "--platform", "manylinux2014_x86_64", "--platform", "any", "-d", str(WHEEL_CACHE), *WHEELS,
    )
    if download.returncode != 0:
        sys.exit(f"bench/scale.py: pip download failed: {download.stderr.strip()}")
    offline = pip("install", "--root-user-action=ignore", "--no-index", "--find-links", str(WHEEL_CACHE), *common)
    if offline.returncode != 0:
        sys.exit(f"bench/scale.py: pip install failed: {offline.stderr.strip()}")


def generate_python(target, packages, modules):
    rng = random.Random(1)
    for package_index in range(packages):
        package = f"unused_lib_{package_index:03d}"
        directory = target / package
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "__init__.py").write_text(f'"""Generated package {package}."""\n')
        for module_index in range(modules):
            constants = [rng.randrange(10**9) for _ in range(40)]
            source = MODULE_TEMPLATE.format(
                package=package, module=f"mod_{module_index:03d}", constants=constants, index=module_index
            )
            (directory / f"mod_{module_index:03d}.py").write_text(source)


def generate_data(target, total_bytes):
    """Incompressible data files of 1 to 8 MiB, in packages of their own."""
    rng = random.Random(2)
    written = 0
    index = 0
    while written < total_bytes:
        size = min(rng.randrange(1, 9) << 20, total_bytes - written)
        directory = target / f"unused_assets_{index // 20:02d}" / "data"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"blob_{index:04d}.bin").write_bytes(rng.randbytes(size))
        written += size
        index += 1


def build_trees(size_bytes):
    small = WORK / "small"
    big = WORK / "big"
    for tree in (small, big):
        shutil.rmtree(tree, ignore_errors=True)
        tree.mkdir(parents=True)
        (tree / "__main__.py").write_text("print('hi')\n")
    log("installing the unused wheels...")
    install_wheels(big)
    log("generating unused pure-Python packages...")
    generate_python(big, packages=40, modules=100)
    remaining = size_bytes - tree_size(big)
    log(f"generating {remaining / 1e6:.0f} MB of unused data...")
    generate_data(big, max(remaining, 0))
    return small, big


def pack(tree, output):
    """Packs `tree`; returns wall seconds and the packer's peak RSS in MiB (its children's
    included: `wait4` reports the largest of the process and the children it waited for)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(PYFERRY), "-q", "pack", str(tree), "-o", str(output)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"bench/scale.py: pyferry pack {tree} failed: {stderr.decode(errors='replace').strip()}")
    return wall, usage.ru_maxrss / 1024


def run_once(exe):
    started = time.perf_counter_ns()
    result = subprocess.run([str(exe)], capture_output=True)
    elapsed = (time.perf_counter_ns() - started) / 1e6
    if result.returncode != 0 or result.stdout != b"hi\n":
        sys.exit(f"bench/scale.py: {exe} printed {result.stdout!r}, exit {result.returncode}: {result.stderr!r}")
    return elapsed


def open_archive_ms(exe, runs=7):
    """The launcher's own `open_archive` span (map, find and read the central directory,
    the manifest), median of `runs`."""
    spans = []
    for _ in range(runs):
        result = subprocess.run([str(exe)], capture_output=True, env=dict(os.environ, PYFERRY_LOG="info"))
        match = re.search(rb"open_archive: close time\.busy=([0-9.]+)(\xc2\xb5s|ms|s)", result.stderr)
        if not match:
            return None
        value = float(match.group(1))
        unit = match.group(2)
        spans.append(value / 1000 if unit == b"\xc2\xb5s" else value * 1000 if unit == b"s" else value)
    return statistics.median(spans)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=41, help="paired runs (default 41)")
    parser.add_argument("--size-mb", type=int, default=500, help="size of the unused packages (default 500 MB)")
    args = parser.parse_args()
    if not PYFERRY.is_file():
        sys.exit("bench/scale.py: target/release/pyferry is missing: run `make build`")
    small_tree, big_tree = build_trees(args.size_mb * 1_000_000)
    big_size = tree_size(big_tree)
    log("packing...")
    small_exe, big_exe = WORK / "small.bin", WORK / "big.bin"
    small_pack = pack(small_tree, small_exe)
    big_pack = pack(big_tree, big_exe)
    entries = {exe: len(zipfile.ZipFile(exe).infolist()) for exe in (small_exe, big_exe)}
    subprocess.run(["sync"], check=False)
    log(f"timing {args.pairs} pairs...")
    for _ in range(5):
        run_once(small_exe)
        run_once(big_exe)
    small_times, big_times, ratios = [], [], []
    for pair in range(args.pairs):
        order = (small_exe, big_exe) if pair % 2 == 0 else (big_exe, small_exe)
        times = {exe: run_once(exe) for exe in order}
        small_times.append(times[small_exe])
        big_times.append(times[big_exe])
        ratios.append(times[big_exe] / times[small_exe])
    ratio = statistics.median(ratios)
    spans = {exe: open_archive_ms(exe) for exe in (small_exe, big_exe)}
    verdict = "target met" if ratio <= TARGET else f"missed by {(ratio / TARGET - 1) * 100:.1f}%"
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    lines = [
        f"scale: print('hi') with and without {big_size / 1e6:.0f} MB of unused packages "
        f"(nproc {os.cpu_count()}, load average {load:.2f})",
        "",
        "| measure | alone | with unused packages |",
        "| --- | ---: | ---: |",
        f"| tree size | {tree_size(small_tree)} bytes | {big_size / 1e6:.0f} MB |",
        f"| executable size | {small_exe.stat().st_size / 1e6:.1f} MB | {big_exe.stat().st_size / 1e6:.1f} MB |",
        f"| entries | {entries[small_exe]} | {entries[big_exe]} |",
        f"| `pyferry pack` wall time | {small_pack[0]:.1f} s | {big_pack[0]:.1f} s |",
        f"| `pyferry pack` peak RSS | {small_pack[1]:.0f} MiB | {big_pack[1]:.0f} MiB |",
        f"| start-up, median of {args.pairs} paired runs | {statistics.median(small_times):.2f} ms "
        f"| {statistics.median(big_times):.2f} ms |",
    ]
    shown = {exe: "n/a" if span is None else f"{span:.2f} ms" for exe, span in spans.items()}
    lines.append(f"| launcher's `open_archive` span, median of 7 | {shown[small_exe]} | {shown[big_exe]} |")
    lines += [
        "",
        f"target: with unused packages <= {TARGET:.2f}x alone (median of per-pair ratios): "
        f"{ratio:.3f}x -- {verdict}",
    ]
    print("\n".join(lines))
    DOC.write_text(
        "# Scale: start-up against unused packages\n\n"
        "Written by `make bench-scale` (bench/scale.py), which says how the trees are made. "
        "Start-up reads no more of the archive than the central directory's headers (one quick "
        "walk, no name copied; docs/architecture.md, boot step 2) and what it imports, so the "
        "unused packages cost only that walk.\n\n" + "\n".join(lines) + "\n"
    )

if __name__ == "__main__":
    main()
