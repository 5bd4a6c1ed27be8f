"""Checks that fail the build when the runtime is not what runtime/README.md promises: the glibc
floor, a PIE that needs only glibc, position-independent objects, every extension module built
in, and maths from glibc's libm rather than zig's compiler_rt.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .common import BuildError, Context, run, say

GLIBC_FLOOR = (2, 17)
GLIBC_LIBRARIES = {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "libutil.so.1",
                   "librt.so.1", "ld-linux-x86-64.so.2"}
# Named in the issue; the full list is every *static* module of runtime/Setup.local.in.
REQUIRED_MODULES = """_ssl _hashlib _sqlite3 _ctypes _lzma _bz2 zlib pyexpat _elementtree _decimal
_uuid _json _asyncio _multiprocessing _posixsubprocess mmap select termios _curses _zoneinfo
_codecs_cn _codecs_hk _codecs_iso2022 _codecs_jp _codecs_kr _codecs_tw _multibytecodec _socket
array math cmath _struct binascii _random _sha1 _sha256 _sha512 _sha3 _md5 _blake2 unicodedata
fcntl grp resource _csv _pickle _datetime _heapq _bisect _opcode _lsprof _queue _statistics
_contextvars _posixshmem syslog readline""".split()
# compiler_rt defines these too; in the executable they must stay undefined (from libm.so.6).
LIBM_FUNCTIONS = ["log", "log2", "log10", "exp", "exp2", "sin", "cos", "tan", "pow", "fmod",
                  "floor", "ceil", "trunc", "round", "fma"]

SMOKE = r"""
import json, math, sys
import ssl, hashlib, sqlite3, ctypes, lzma, bz2, zlib, pyexpat, xml.etree.ElementTree, decimal
import uuid, asyncio, multiprocessing, mmap, select, termios, curses, zoneinfo, _codecs_jp
import readline
assert math.log(1e-308) == -709.1962086421661, math.log(1e-308)
assert abs(math.exp(-745.0) - 5e-324) < 1e-323
con = sqlite3.connect(":memory:")
assert con.execute("select json_extract('[1,2]', '$[1]') + 1").fetchone()[0] == 3
assert ctypes.CDLL(None).strlen(b"pyferry") == 7
assert lzma.decompress(lzma.compress(b"x" * 1000)) == b"x" * 1000
assert bz2.decompress(bz2.compress(b"y" * 1000)) == b"y" * 1000
assert hashlib.sha256(b"").hexdigest().startswith("e3b0c442")
assert hashlib.sha256.__module__ == "_hashlib" or hashlib.sha256.__name__.startswith("openssl")
assert hashlib.new("sha3_256", b"").hexdigest().startswith("a7ffc6f8")
uuid.uuid1(); uuid.uuid4()
import os
fd = os.memfd_create("verify", os.MFD_CLOEXEC)
os.write(fd, b"pyferry")
copy = os.memfd_create("verify-copy")  # same filesystem: no EXDEV on any kernel
assert os.copy_file_range(fd, copy, 7, 0) == 7
assert os.pread(copy, 7, 0) == b"pyferry"
os.close(fd), os.close(copy)
print(json.dumps({"builtin": sorted(sys.builtin_module_names), "openssl": ssl.OPENSSL_VERSION,
                  "sqlite": sqlite3.sqlite_version, "expat": pyexpat.EXPAT_VERSION,
                  "lzma": lzma.LZMA_VERSION if hasattr(lzma, "LZMA_VERSION") else "",
                  "zlib": zlib.ZLIB_RUNTIME_VERSION, "readline": readline._READLINE_LIBRARY_VERSION,
                  "paths": ssl.get_default_verify_paths()._asdict()}))
"""


def _glibc_versions(ctx: Context, binary: Path) -> list:
    output = run(ctx, ["objdump", "-T", binary], what="objdump -T", capture=True)
    versions = {tuple(int(part) for part in match.split("."))
                for match in re.findall(r"GLIBC_(\d+\.\d+(?:\.\d+)?)", output)}
    return sorted(versions)


def check_binary(ctx: Context, binary: Path) -> dict:
    header = run(ctx, ["readelf", "-h", binary], what="readelf -h", capture=True)
    if not re.search(r"Type:\s+DYN", header):
        raise BuildError(f"{binary.name} is not a position-independent executable (readelf -h)")
    dynamic = run(ctx, ["readelf", "-d", binary], what="readelf -d", capture=True)
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic))
    foreign = needed - GLIBC_LIBRARIES
    if foreign:
        raise BuildError(f"{binary.name} needs libraries beyond glibc: {', '.join(sorted(foreign))}")
    versions = _glibc_versions(ctx, binary)
    newest = versions[-1] if versions else (0, 0)
    if newest > GLIBC_FLOOR:
        raise BuildError(f"{binary.name} needs GLIBC_{'.'.join(map(str, newest))}, above the "
                         f"2.17 floor (objdump -T)")
    symbols = run(ctx, ["nm", binary], what="nm", capture=True)
    defined = {fields[-1] for fields in (line.split() for line in symbols.splitlines())
               if len(fields) == 3 and fields[1] in "TtWw"}
    wrong = [name for name in LIBM_FUNCTIONS if name in defined]
    if wrong:
        raise BuildError(f"{binary.name} defines {', '.join(wrong)} itself (zig's compiler_rt "
                         f"won over glibc's libm: put libgcc.a on the link)")
    return {"needed": sorted(needed), "newest_glibc": ".".join(map(str, newest))}


def check_relocations(ctx: Context, lib: Path) -> None:
    """No absolute 32-bit relocations (non-PIC code) outside debug sections."""
    for path in sorted(lib.glob("*.o")) + sorted(lib.glob("*.a")):
        output = run(ctx, ["readelf", "-r", "--wide", path], what=f"readelf -r {path.name}",
                     capture=True)
        section = ""
        bad = 0
        for line in output.splitlines():
            heading = re.match(r"Relocation section '([^']+)'", line)
            if heading:
                section = heading.group(1)
            elif re.search(r"\bR_X86_64_32S?\b", line) and ".debug" not in section:
                bad += 1
        if bad:
            raise BuildError(f"lib/{path.name} has {bad} R_X86_64_32/32S relocations outside "
                             f"debug sections (not position-independent)")


def check_exports(ctx: Context, out: Path, binary: Path) -> int:
    """lib/python.o defines exactly exports.txt as global symbols, and the executable exports
    nothing of the C libraries."""
    exports = set((out / "exports.txt").read_text().split())
    table = run(ctx, ["nm", "--defined-only", "--extern-only", "--format=posix",
                      out / "lib" / "python.o"], what="nm python.o", capture=True)
    defined = {line.split()[0] for line in table.splitlines() if line.strip()}
    if defined != exports:
        extra = sorted(defined - exports)[:10]
        raise BuildError(f"lib/python.o has {len(defined)} global symbols, exports.txt "
                         f"{len(exports)} (not exported but global: {', '.join(extra)})")
    dynamic = run(ctx, ["nm", "-D", "--defined-only", "--format=posix", binary],
                  what="nm -D", capture=True)
    exported = {line.split()[0].split("@")[0] for line in dynamic.splitlines() if line.strip()}
    foreign = sorted(name for name in exported - exports
                     if name not in ("main", "_IO_stdin_used", "_init", "_fini", "__bss_start",
                                     "_edata", "_end", "__data_start", "data_start",
                                     "__dso_handle", "_start", "__libc_csu_init",
                                     "__libc_csu_fini"))
    if foreign:
        raise BuildError(f"{binary.name} exports symbols beyond the C API: "
                         f"{', '.join(foreign[:10])}")
    return len(exports)


def check(ctx: Context, out: Path) -> None:
    binary = out / "bin" / "python3.11"
    facts = check_binary(ctx, binary)
    facts["exports"] = check_exports(ctx, out, binary)
    check_relocations(ctx, out / "lib")
    output = run(ctx, [binary, "-I", "-c", SMOKE], what="bin/python3.11 smoke test", capture=True)
    result = json.loads(output.strip().splitlines()[-1])
    runtime = json.loads((out / "runtime.json").read_text())
    required = sorted(set(REQUIRED_MODULES) | set(runtime["builtin_modules_required"]))
    missing = [name for name in required if name not in result["builtin"]]
    if missing:
        raise BuildError(f"modules not built in: {', '.join(missing)}")
    runtime["verified"] = {**facts, "builtin_modules": result["builtin"],
                           "library_versions_at_run_time": {key: result[key] for key in (
                               "openssl", "sqlite", "expat", "zlib", "readline")},
                           "openssl_default_verify_paths": result["paths"]}
    (out / "runtime.json").write_text(json.dumps(runtime, indent=2) + "\n")
    say(f"verified: PIE, newest symbol GLIBC_{facts['newest_glibc']}, needs "
        f"{' '.join(facts['needed'])}; {len(result['builtin'])} built-in modules")
