"""The compilers and tools: zig (from its PyPI wheel) as the C compiler for glibc 2.17, and
Debian's LLVM 19 (`llvm-profdata`, the profile runtime) for PGO, all unpacked under
`<cache>/tools/`; nothing is installed system-wide.

The C compiler is a small wrapper script, `x86_64-linux-gnu.2.17-clang`:
- its name contains `clang`, so CPython's configure picks clang's PGO and LTO flags;
- it always passes `-target x86_64-linux-gnu.2.17` (zig's glibc 2.17 headers and link stubs; an
  explicit target also means zig's baseline x86-64 CPU, not the build machine's);
- when it links (no `-c`/`-S`/`-E`) with `-fprofile-instr-generate` and
  PYFERRY_PGO_RUNTIME is set, it adds LLVM's profile runtime, which zig does not ship.
"""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from pathlib import Path

from . import fetch
from .common import BuildError, Context, run

TARGET = "x86_64-linux-gnu.2.17"
CC_NAME = f"{TARGET}-clang"

CC_WRAPPER = """#!/bin/sh
# zig cc for glibc 2.17 (written by runtime/recipe/toolchain.py)
export ZIG_GLOBAL_CACHE_DIR="{zig_cache}" ZIG_LOCAL_CACHE_DIR="{zig_cache}"
link=1 generate=0
for argument in "$@"; do
  case "$argument" in
    -c|-S|-E) link=0 ;;
    -fprofile-instr-generate*) generate=1 ;;
  esac
done
if [ "$link" = 1 ] && [ "$generate" = 1 ] && [ -n "$PYFERRY_PGO_RUNTIME" ]; then
  set -- "$@" -Wl,-u,__llvm_profile_runtime "$PYFERRY_PGO_RUNTIME"
fi
exec "{zig}" {mode} -target {target} "$@"
"""

TOOL_WRAPPER = """#!/bin/sh
export ZIG_GLOBAL_CACHE_DIR="{zig_cache}" ZIG_LOCAL_CACHE_DIR="{zig_cache}"
exec "{zig}" {tool} "$@"
"""

LLVM_WRAPPER = """#!/bin/sh
LD_LIBRARY_PATH="{llvm_lib}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}" exec "{binary}" "$@"
"""


def _write_script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _unpack_deb(ctx: Context, deb: Path, destination: Path) -> None:
    if shutil.which("dpkg-deb") is None:
        raise BuildError("`dpkg-deb` not found (hint: apt-get install dpkg)")
    run(ctx, ["dpkg-deb", "-x", deb, destination], what=f"unpacking {deb.name}")


def _zig(ctx: Context) -> Path:
    pin = ctx.pins["tools"]["zig"]
    home = ctx.tools_dir / f"zig-{pin['version']}"
    zig = home / "ziglang" / "zig"
    if not zig.is_file():
        wheel = fetch.pypi_wheel(ctx, pin)
        staging = ctx.tools_dir / f".staging-zig-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(staging)
        (staging / "ziglang" / "zig").chmod(0o755)
        shutil.rmtree(home, ignore_errors=True)
        os.rename(staging, home)
    version = run(ctx, [zig, "version"], what="zig version", capture=True).strip()
    if version != pin["version"]:
        raise BuildError(f"zig at `{zig}` reports {version}, pinned {pin['version']}")
    return zig


def _llvm(ctx: Context) -> Path:
    pin = ctx.pins["tools"]["llvm"]
    home = ctx.tools_dir / f"llvm-{pin['version'].replace(':', '_')}"
    if not (home / "usr").is_dir():
        staging = ctx.tools_dir / f".staging-llvm-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for package in pin["packages"]:
            deb = fetch.debian_binary(ctx, package["package"], pin["version"], package["sha256"])
            _unpack_deb(ctx, deb, staging)
        shutil.rmtree(home, ignore_errors=True)
        os.rename(staging, home)
    return home


def _libgcc(ctx: Context) -> Path:
    pin = ctx.pins["libraries"]["libgcc"]
    home = ctx.tools_dir / f"libgcc-{pin['version']}"
    found = list(home.glob("usr/lib/gcc/x86_64-linux-gnu/*/libgcc.a"))
    if not found:
        deb = fetch.debian_binary(ctx, pin["package"], pin["version"], pin["sha256"])
        staging = ctx.tools_dir / f".staging-libgcc-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        _unpack_deb(ctx, deb, staging)
        shutil.rmtree(home, ignore_errors=True)
        os.rename(staging, home)
        found = list(home.glob("usr/lib/gcc/x86_64-linux-gnu/*/libgcc.a"))
    if not found:
        raise BuildError(f"no libgcc.a inside {pin['package']} {pin['version']}")
    return found[0]


def prepare(ctx: Context) -> dict:
    """Makes the toolchain ready and returns the paths the other steps use."""
    for tool in ("make", "patch", "tar", "perl", "xz"):
        if shutil.which(tool) is None:
            raise BuildError(f"`{tool}` not found (hint: apt-get install {tool})")
    zig = _zig(ctx)
    llvm = _llvm(ctx)
    libgcc = _libgcc(ctx)
    zig_cache = ctx.cache_root / "zig-cache"
    zig_cache.mkdir(parents=True, exist_ok=True)
    bin_dir = ctx.tools_dir / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    _write_script(bin_dir / CC_NAME, CC_WRAPPER.format(zig=zig, zig_cache=zig_cache, mode="cc",
                                                       target=TARGET))
    _write_script(bin_dir / f"{TARGET}-clang++", CC_WRAPPER.format(
        zig=zig, zig_cache=zig_cache, mode="c++", target=TARGET))
    for name, tool in (("llvm-ar", "ar"), ("llvm-ranlib", "ranlib"), ("ld.lld", "ld.lld")):
        _write_script(bin_dir / name, TOOL_WRAPPER.format(zig=zig, zig_cache=zig_cache, tool=tool))
    llvm_lib = llvm / "usr" / "lib" / "x86_64-linux-gnu"
    for name in ("llvm-profdata", "llvm-nm", "llvm-objcopy"):
        _write_script(bin_dir / name, LLVM_WRAPPER.format(
            llvm_lib=llvm_lib, binary=llvm / "usr" / "lib" / "llvm-19" / "bin" / name))
    missing = [line for line in run(ctx, ["ldd", llvm_lib / "libLLVM.so.19.1"],
                                    what="ldd libLLVM", capture=True).splitlines()
               if "not found" in line]
    if missing:
        raise BuildError("Debian's libLLVM 19 lacks system libraries: "
                         + ", ".join(line.split()[0] for line in missing)
                         + " (hint: apt-get install libz3-4 libxml2 libedit2 libffi8 libzstd1 "
                           "libicu72 libbsd0)")
    profile_runtime = next((llvm / "usr" / "lib" / "llvm-19").glob(
        "lib/clang/*/lib/linux/libclang_rt.profile-x86_64.a"), None)
    if profile_runtime is None:
        raise BuildError("libclang_rt.profile-x86_64.a not found in Debian's libclang-rt-19-dev")
    profdata_version = run(ctx, [bin_dir / "llvm-profdata", "--version"],
                           what="llvm-profdata --version", capture=True)
    clang_version = run(ctx, [zig, "cc", "--version"], what="zig cc --version",
                        capture=True).splitlines()[0]
    tools = {
        "zig": zig,
        "bin": bin_dir,
        "cc": bin_dir / CC_NAME,
        "cxx": bin_dir / f"{TARGET}-clang++",
        "ar": bin_dir / "llvm-ar",
        "ranlib": bin_dir / "llvm-ranlib",
        "ld.lld": bin_dir / "ld.lld",
        "llvm-profdata": bin_dir / "llvm-profdata",
        "llvm-objcopy": bin_dir / "llvm-objcopy",
        "profile_runtime": profile_runtime,
        "libgcc": libgcc,
        "versions": {
            "zig": ctx.pins["tools"]["zig"]["version"],
            "clang (zig cc)": clang_version.strip(),
            "llvm-profdata": " ".join(profdata_version.split()[:4]),
            "llvm-19 (Debian)": ctx.pins["tools"]["llvm"]["version"],
            "libgcc (Debian libgcc-12-dev)": ctx.pins["libraries"]["libgcc"]["version"],
        },
    }
    ctx.tools.update(tools)
    return tools


def environment(ctx: Context) -> dict:
    """Environment for configure scripts and makefiles: the wrappers first on PATH and the
    compiler set; nothing from the host's /usr/include or /usr/lib reaches zig cc."""
    tools = ctx.tools
    return {
        "PATH": f"{tools['bin']}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "CC": tools["cc"],
        "CXX": tools["cxx"],
        "AR": tools["ar"],
        "RANLIB": tools["ranlib"],
        "PKG_CONFIG": "false",
        "PKG_CONFIG_PATH": "",
        "CPATH": "", "C_INCLUDE_PATH": "", "LIBRARY_PATH": "",
        "SOURCE_DATE_EPOCH": "1700000000",
        "LC_ALL": "C",
    }
