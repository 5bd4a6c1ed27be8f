"""What every step of the recipe shares: the build context, running commands with their output
sent to the log, timing and printing progress, checksums, and directories that appear whole or
not at all.

Progress goes to stderr; stdout is kept for the one line a Makefile reads (the runtime's path).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


class BuildError(Exception):
    """A failure with a one-line reason; `runtime/build` prints it and exits with status 1."""


def say(message: str) -> None:
    print(f"runtime: {message}", file=sys.stderr, flush=True)


@dataclass
class Context:
    """Paths and settings of one run of the recipe."""

    recipe_dir: Path  # runtime/ in the work tree
    cache_root: Path  # $PYFERRY_BUILD_CACHE or ~/.cache/pyferry-build
    pins: dict
    jobs: int
    log_path: Path | None = None
    timings: list = field(default_factory=list)
    tools: dict = field(default_factory=dict)  # filled by toolchain.prepare

    @property
    def downloads(self) -> Path:
        return self.cache_root / "downloads"

    @property
    def tools_dir(self) -> Path:
        return self.cache_root / "tools"

    @property
    def parts_dir(self) -> Path:
        return self.cache_root / "parts"

    def log(self, text: str) -> None:
        if self.log_path is not None:
            with open(self.log_path, "a", encoding="utf-8") as log:
                log.write(text if text.endswith("\n") else text + "\n")


@contextlib.contextmanager
def step(ctx: Context, name: str):
    """Prints the step's name, then its duration; records it for build-times.json."""
    say(f"{name} ...")
    ctx.log(f"\n===== {name}")
    started = time.monotonic()
    yield
    seconds = time.monotonic() - started
    ctx.timings.append({"step": name, "seconds": round(seconds, 1)})
    say(f"{name}: done in {format_seconds(seconds)}")


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def run(ctx: Context, command: list, cwd: Path | None = None, env: dict | None = None,
        what: str | None = None, capture: bool = False) -> str:
    """Runs a command with its output written to the build log as it comes (or returned, with
    `capture`); on failure raises BuildError naming the command and showing the last lines of
    its output."""
    command = [str(part) for part in command]
    ctx.log(f"$ (cd {cwd or os.getcwd()}) {' '.join(command)}")
    full_env = None
    if env is not None:
        full_env = dict(os.environ)
        full_env.update({key: str(value) for key, value in env.items()})
    log = open(ctx.log_path, "ab") if ctx.log_path is not None and not capture else None
    start = log.tell() if log else 0
    try:
        completed = subprocess.run(command, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL,
                                   stdout=log or subprocess.PIPE, stderr=subprocess.STDOUT)
    except FileNotFoundError as error:
        raise BuildError(f"`{command[0]}` not found ({what or 'needed by the recipe'}): {error}")
    finally:
        if log:
            log.close()
    if log:
        with open(ctx.log_path, "rb") as file:
            file.seek(start)
            output = file.read().decode("utf-8", "replace")
    else:
        output = completed.stdout.decode("utf-8", "replace")
        ctx.log(output)
    if completed.returncode != 0:
        tail = "\n".join(output.rstrip().splitlines()[-25:])
        raise BuildError(f"{what or command[0]} failed (exit {completed.returncode}): "
                         f"`{' '.join(command)[:300]}`\n{tail}\n(full output in {ctx.log_path})")
    return output if capture else ""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise BuildError(f"checksum mismatch for `{path.name}`: expected {expected}, got {actual} "
                         f"(hint: a changed download is never used; update runtime/pins.toml only "
                         f"after checking why it changed)")


@contextlib.contextmanager
def atomic_directory(final: Path):
    """Yields a scratch directory beside `final`; renames it to `final` only when the block
    finishes without an error, so a killed or failed build never leaves a half directory."""
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = final.parent / f"{final.name}.partial-{os.getpid()}"
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir()
    try:
        yield scratch
    except BaseException:
        if os.environ.get("PYFERRY_RUNTIME_KEEP_FAILED") != "1":
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            say(f"kept the failed build's directory: {scratch}")
        raise
    if final.exists():  # another build finished first: same inputs, same result
        shutil.rmtree(scratch, ignore_errors=True)
        return
    os.rename(scratch, final)


def remove_stale_scratch(directory: Path) -> None:
    """Removes `*.partial-PID` directories whose process is gone (a killed build)."""
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        name = entry.name
        if ".partial-" not in name:
            continue
        pid = name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(entry, ignore_errors=True)


def unpack(ctx: Context, archive: Path, destination: Path) -> Path:
    """Unpacks a tarball into `destination` and returns its single top directory."""
    destination.mkdir(parents=True, exist_ok=True)
    run(ctx, ["tar", "-xf", archive, "-C", destination], what=f"unpacking {archive.name}")
    entries = [entry for entry in destination.iterdir()]
    if len(entries) != 1 or not entries[0].is_dir():
        raise BuildError(f"`{archive.name}` does not hold one top directory")
    return entries[0]


def apply_quilt_series(ctx: Context, source: Path, patches_dir: Path, names: list) -> None:
    """Applies Debian quilt patches in the given order with `patch`, failing on any reject."""
    for line in names:
        fields = line.split()
        name, level = fields[0], "-p1"
        for option in fields[1:]:
            if option.startswith("-p"):
                level = option
        run(ctx, ["patch", level, "-N", "-s", "--no-backup-if-mismatch", "-d", source, "-i",
                  patches_dir / name], what=f"applying Debian patch {name}")
