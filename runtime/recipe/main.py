"""The order of the recipe: find the cache directory from the recipe's hash, return it when it
exists, otherwise prepare the toolchain, build the C libraries, build CPython, check the result,
and rename the finished directory into place.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from . import cpython, libraries, toolchain, verify
from .common import BuildError, Context, atomic_directory, format_seconds, remove_stale_scratch, say, step

RECIPE_DIR = Path(__file__).resolve().parent.parent
# Files whose content decides the output; README, docs and the benchmark are not among them.
RECIPE_FILES = ["build", "pins.toml", "cpython-patches.txt", "Setup.local.in",
                "recipe/*.py", "files/*"]


def cache_root() -> Path:
    explicit = os.environ.get("PYFERRY_BUILD_CACHE")
    if explicit:
        return Path(explicit).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser().resolve() / "pyferry-build"


def host_tool_versions() -> dict:
    """Versions of the build machine's tools that take part (zig, LLVM and libgcc are pinned)."""
    versions = {}
    for tool in ("make", "patch", "perl"):
        try:
            output = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout
            versions[tool] = next((line for line in output.splitlines() if line.strip()), "")
        except FileNotFoundError:
            versions[tool] = "missing"
    return versions


def recipe_hash() -> str:
    digest = hashlib.sha256()
    for pattern in RECIPE_FILES:
        for path in sorted(RECIPE_DIR.glob(pattern)):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(RECIPE_DIR)).encode() + b"\0")
                digest.update(path.read_bytes() + b"\0")
    digest.update(json.dumps(host_tool_versions(), sort_keys=True).encode())
    return digest.hexdigest()[:16]


def output_dir(root: Path, recipe: str) -> Path:
    return root / f"cpython-3.11-{recipe}"


def main(argv: list) -> int:
    parser = argparse.ArgumentParser(prog="runtime/build", description=__doc__)
    parser.add_argument("--print-dir", action="store_true",
                        help="print the runtime's directory without building it")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    arguments = parser.parse_args(argv)

    root = cache_root()
    recipe = recipe_hash()
    final = output_dir(root, recipe)
    if arguments.print_dir:
        print(final)
        return 0
    if (final / "runtime.json").is_file():
        say(f"cached: {final}")
        print(final)
        return 0

    pins = tomllib.loads((RECIPE_DIR / "pins.toml").read_text())
    ctx = Context(recipe_dir=RECIPE_DIR, cache_root=root, pins=pins, jobs=max(1, arguments.jobs))
    started = time.monotonic()
    try:
        root.mkdir(parents=True, exist_ok=True)
        remove_stale_scratch(root)
        remove_stale_scratch(ctx.parts_dir)
        logs = root / "logs"
        logs.mkdir(exist_ok=True)
        ctx.log_path = logs / f"{final.name}-{os.getpid()}.log"
        with atomic_directory(final) as scratch:
            say(f"building the runtime {recipe} into {final} (log: {ctx.log_path})")
            with step(ctx, "toolchain (zig, LLVM 19 profile tools, libgcc)"):
                toolchain.prepare(ctx)
            prefixes = libraries.build_all(ctx)
            cpython.build(ctx, prefixes, scratch, recipe, final)
            with step(ctx, "verify"):
                verify.check(ctx, scratch)
            total = time.monotonic() - started
            ctx.timings.append({"step": "total", "seconds": round(total, 1)})
            (scratch / "build-times.json").write_text(json.dumps(ctx.timings, indent=2) + "\n")
            shutil.rmtree(scratch / "work", ignore_errors=True)
            shutil.copyfile(ctx.log_path, scratch / "build.log")
        ctx.log_path.unlink()
    except BuildError as error:
        say(f"error: {error}")
        return 1
    except KeyboardInterrupt:
        say("interrupted; nothing was written to the cache")
        return 130
    say(f"built in {format_seconds(time.monotonic() - started)}: {final}")
    print(final)
    return 0
