"""CPython 3.11 from Debian's source package: the upstream tarball plus Debian's security
patches, configured for zig cc and glibc 2.17, every extension module built in, compiled with
PGO and ThinLTO, then turned into what the launcher links:

- `lib/python.o`: one ordinary ELF relocatable object (ThinLTO's bitcode archives partially
  linked with `ld.lld -r`) holding libpython3.11.a and libmpdec, without `main`, with the C
  libraries folded in and every symbol but the C API made local;
- `lib/libgcc.a`, `link-args.txt`, `exports.txt`;
- `include/python3.11/`, `lib/python3.11/` (pure-Python standard library), `bin/python3.11`.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from . import fetch, libraries, toolchain
from .common import BuildError, Context, apply_quilt_series, run, step, unpack

# configure's --prefix: compiled into sys.prefix defaults but never used, since getpath finds the
# standard library next to the executable (bin/../lib/python3.11) and the launcher sets its
# own paths. A directory no host has, so nothing is picked up by accident.
PREFIX = "/opt/pyferry-runtime/python3.11"

# CPython's own optimization flags (configure's default OPT without -g).
OPT = "-DNDEBUG -fwrapv -O3 -Wall"
# -fPIE: position-independent code for an executable (the launcher, a PIE; bin/python3.11):
# nothing of CPython goes into a shared object, so symbols it defines are reached directly,
# not through the GOT as -fPIC would have it.
# -Wno-error=date-time: zig cc makes -Wdate-time an error (getbuildinfo.c uses __DATE__).
CFLAGS = "-fPIE -Wno-error=date-time"

# The PGO training run: CPython's own --pgo selection (Lib/test/libregrtest/pgo.py) without
# its slowest tests (test_datetime, test_decimal, test_lzma, test_pickle, test_tabnanny) and
# without test_embed (it expects a shared-library layout). Two worker processes. The tests are
# named one by one: with -x, regrtest would run every other test of the suite.
PGO_TESTS = """test_array test_base64 test_binascii test_binop test_bisect test_bytes test_bz2
test_cmath test_codecs test_collections test_complex test_dataclasses test_difflib test_float
test_fstring test_functools test_generators test_hashlib test_heapq test_int test_itertools
test_json test_long test_math test_memoryview test_operator test_ordered_dict test_patma
test_pprint test_re test_set test_sqlite3 test_statistics test_struct test_time test_unicode
test_xml_etree test_xml_etree_c""".split()
PROFILE_TASK = f"-m test --pgo -j2 --timeout=1200 {' '.join(PGO_TESTS)}"

# The C libraries folded into lib/python.o (only the members CPython uses are pulled in).
ARCHIVES = [
    ("openssl", "libssl.a"), ("openssl", "libcrypto.a"), ("sqlite", "libsqlite3.a"),
    ("xz", "liblzma.a"), ("bzip2", "libbz2.a"), ("zlib", "libz.a"), ("libffi", "libffi.a"),
    ("expat", "libexpat.a"), ("libuuid", "libuuid.a"), ("libedit", "libedit.a"),
    ("ncurses", "libpanelw.a"), ("ncurses", "libncursesw.a"),
]
# After lib/python.o on the final link, after lib/libgcc.a: its __divti3 & co. keep zig's
# compiler_rt (which also defines log, exp, sin... wrongly for some inputs) out of the link.
SYSTEM_LIBRARIES = ["-lm", "-lpthread", "-ldl", "-lutil", "-lrt"]



def _patch_list(ctx: Context) -> list:
    return [line.strip() for line in (ctx.recipe_dir / "cpython-patches.txt").read_text()
            .splitlines() if line.strip() and not line.startswith("#")]


def prepare_source(ctx: Context, work: Path) -> tuple:
    """Unpacks the orig tarball and applies the listed Debian patches in series order. Fails if
    Debian's series holds a security patch the list does not name (a new Debian revision)."""
    pin = ctx.pins["cpython"]
    files = fetch.debian_source(ctx, pin)
    orig = next(path for name, path in files.items() if ".orig." in name)
    debian_tar = next(path for name, path in files.items() if name.endswith(".debian.tar.xz"))
    source = unpack(ctx, orig, work / "src")
    debian = work / "debian-packaging"
    debian.mkdir()
    run(ctx, ["tar", "-xf", debian_tar, "-C", debian], what=f"unpacking {debian_tar.name}")
    series = [line.split()[0] for line in (debian / "debian/patches/series").read_text()
              .splitlines() if line.strip() and not line.startswith("#")]
    wanted = _patch_list(ctx)
    unknown = [name for name in wanted if name not in series]
    if unknown:
        raise BuildError(f"runtime/cpython-patches.txt names patches not in Debian's series: "
                         f"{', '.join(unknown)}")
    security = [name for name in series
                if name.startswith("CVE-") or re.match(r"^\d{4}-3\.11-", name)]
    forgotten = [name for name in security if name not in wanted]
    if forgotten:
        raise BuildError(f"Debian's series has security patches not in "
                         f"runtime/cpython-patches.txt: {', '.join(forgotten)} (hint: review "
                         f"and add them)")
    ordered = [name for name in series if name in wanted]
    apply_quilt_series(ctx, source, debian / "debian/patches", ordered)
    return source, ordered


def _include_flags(prefixes: dict) -> str:
    flags = [f"-I{prefixes['ncurses']}/include/ncursesw"]
    flags += [f"-I{prefix}/include" for prefix in prefixes.values()]
    return " ".join(flags)


def compile_glibc_compat(ctx: Context, work: Path) -> Path:
    """runtime/files/glibc-compat.c: memfd_create() and copy_file_range() as system calls, for
    glibc 2.17 (which has neither); linked into every program of the build and into
    lib/python.o."""
    compat = work / "glibc-compat.o"
    run(ctx, [ctx.tools["cc"], "-O2", "-fPIC", "-Wall", "-c",
              ctx.recipe_dir / "files" / "glibc-compat.c", "-o", compat],
        what="compiling runtime/files/glibc-compat.c")
    return compat


def configure(ctx: Context, source: Path, prefixes: dict, compat: Path) -> dict:
    env = toolchain.environment(ctx)
    p = prefixes
    env.update({
        "CFLAGS": CFLAGS,
        "OPT": OPT,
        "CPPFLAGS": _include_flags(prefixes),
        "LDFLAGS": " ".join(f"-L{prefix}/lib" for prefix in prefixes.values()),
        "LIBS": f"-lpthread -ldl {compat}",
        "LIBSQLITE3_CFLAGS": f"-I{p['sqlite']}/include",
        "LIBSQLITE3_LIBS": f"{p['sqlite']}/lib/libsqlite3.a -lm -ldl -lpthread",
        "LIBLZMA_CFLAGS": f"-I{p['xz']}/include",
        "LIBLZMA_LIBS": f"{p['xz']}/lib/liblzma.a -lpthread",
        "BZIP2_CFLAGS": f"-I{p['bzip2']}/include",
        "BZIP2_LIBS": f"{p['bzip2']}/lib/libbz2.a",
        "ZLIB_CFLAGS": f"-I{p['zlib']}/include",
        "ZLIB_LIBS": f"{p['zlib']}/lib/libz.a",
        "LIBFFI_CFLAGS": f"-I{p['libffi']}/include",
        "LIBFFI_LIBS": f"{p['libffi']}/lib/libffi.a",
        "LIBUUID_CFLAGS": f"-I{p['libuuid']}/include/uuid",  # as uuid.pc says
        "LIBUUID_LIBS": f"{p['libuuid']}/lib/libuuid.a",
        "LIBEXPAT_CFLAGS": f"-I{p['expat']}/include",
        "LIBEXPAT_LDFLAGS": f"{p['expat']}/lib/libexpat.a",
        "LLVM_PROFDATA": ctx.tools["llvm-profdata"],
        "LLVM_AR": ctx.tools["ar"],
        # configure cannot test these in a cross-capable build; both are facts of Linux.
        "ac_cv_file__dev_ptmx": "yes",
        "ac_cv_file__dev_ptc": "no",
        # glibc 2.17 lacks them; runtime/files/glibc-compat.c defines them (system calls).
        "ac_cv_func_memfd_create": "yes",
        "ac_cv_func_copy_file_range": "yes",
    })
    arguments = [
        "./configure", f"--prefix={PREFIX}", "--build=x86_64-linux-gnu",
        "--host=x86_64-linux-gnu", "--disable-shared", "--enable-optimizations",
        "--with-lto=thin", "--without-ensurepip", f"--with-openssl={p['openssl']}",
        "--with-system-expat", "--with-system-ffi", "--with-readline=editline",
        "--with-dbmliborder=", "--enable-ipv6",
    ]
    run(ctx, arguments, cwd=source, env=env, what="CPython configure")
    return env


def write_setup_local(ctx: Context, source: Path, prefixes: dict) -> list:
    """Modules/Setup.local from runtime/Setup.local.in; returns the module names to build in."""
    text = (ctx.recipe_dir / "Setup.local.in").read_text()
    for name, prefix in prefixes.items():
        text = text.replace(f"@{name.upper()}@", str(prefix))
    if "@" in re.sub(r"#.*", "", text):
        raise BuildError("runtime/Setup.local.in has an @NAME@ with no library of that name")
    (source / "Modules" / "Setup.local").write_text(text)
    modules, section = [], None
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("*") and line.endswith("*"):
            section = line
        elif line and section == "*static*":
            modules.append(line.split()[0])
    # configure must have found what a module needs (MODULE_<NAME>_STATE in the Makefile).
    makefile = (source / "Makefile").read_text()
    missing = []
    for module in modules:
        state = re.search(rf"^MODULE_{module.upper()}_STATE=(\S*)", makefile, re.MULTILINE)
        if state and state.group(1) not in ("yes", ""):
            missing.append(f"{module} ({state.group(1)})")
    if missing:
        raise BuildError(f"configure found no support for: {', '.join(missing)} "
                         f"(see config.log in the build log)")
    return modules


def _makefile_value(source: Path, name: str) -> str:
    match = re.search(rf"^{name}=(.*)$", (source / "Makefile").read_text(), re.MULTILINE)
    return match.group(1).strip() if match else ""


def make(ctx: Context, source: Path, env: dict) -> None:
    """CPython's PGO sequence in two steps. The instrumented build and the training run are
    compiled without LTO (clang instruments in the front end, so the profile matches the LTO
    build all the same, and the instrumented links take seconds instead of minutes); the final
    build uses ThinLTO and the merged profile."""
    env = dict(env)
    env["PYFERRY_PGO_RUNTIME"] = ctx.tools["profile_runtime"]
    # Make's own CPPFLAGS (configure's are in the Makefile as CONFIGURE_CPPFLAGS) declare the
    # glibc-compat functions to every compile. Not given to configure: it preprocesses test
    # files to learn the compiler's name, and the declaration in that output breaks it.
    env["CPPFLAGS"] = f"-include {ctx.recipe_dir / 'files' / 'glibc-compat.h'}"
    without_lto = {}
    for name in ("CONFIGURE_CFLAGS_NODIST", "CONFIGURE_LDFLAGS_NODIST"):
        value = _makefile_value(source, name)
        without_lto[name] = " ".join(flag for flag in value.split() if not flag.startswith("-flto"))
    run(ctx, ["make", f"-j{ctx.jobs}", "profile-run-stamp", f"PROFILE_TASK={PROFILE_TASK}",
              *(f"{name}={value}" for name, value in without_lto.items())],
        cwd=source, env=env, what="CPython make: instrumented build and training run")
    if not (source / "code.profclangd").is_file():
        raise BuildError("the PGO training run left no profile (code.profclangd)")
    run(ctx, ["make", f"-j{ctx.jobs}", "profile-opt", f"PROFILE_TASK={PROFILE_TASK}"],
        cwd=source, env=env, what="CPython make: ThinLTO build with the profile")
    leftovers = sorted(path.name for path in source.glob("build/lib.*/*.so"))
    if leftovers:
        raise BuildError(f"setup.py built shared modules the runtime would not carry: "
                         f"{', '.join(leftovers)} (hint: add them to runtime/Setup.local.in)")


def _exported_symbols(ctx: Context, cpython_o: Path) -> list:
    """The symbols libpython3.11.so would export: CPython's global definitions with default
    visibility (3.11 compiles with -fvisibility=hidden and marks its API with PyAPI_FUNC/DATA;
    PyInit_* of the built-in modules are among them)."""
    table = run(ctx, ["readelf", "-s", "--wide", cpython_o], what="readelf -s", capture=True)
    names = set()
    for line in table.splitlines():
        fields = line.split()
        if (len(fields) >= 8 and fields[4] in ("GLOBAL", "WEAK") and fields[5] == "DEFAULT"
                and fields[6] != "UND" and fields[3] in ("FUNC", "OBJECT", "NOTYPE", "TLS")):
            names.add(fields[7].split("@")[0])
    return sorted(names)


# The LLVM sections GNU ld cannot carry through a relocatable link (it writes them with a wrong
# entry size and stale symbol indices): the call-graph profile (function ordering by the final
# linker) and the address-significance table (identical code folding). Debug information is
# dropped too: it would make lib/python.o about five times larger.
OBJCOPY_OPTIONS = ["--remove-section=.llvm.call-graph-profile", "--remove-section=.llvm_addrsig",
                   "--strip-debug"]


def fold_libraries(ctx: Context, cpython_o: Path, prefixes: dict, folded: Path) -> None:
    """Adds the C libraries' members that CPython uses. GNU ld (binutils), not lld: OpenSSL's
    assembly declares OPENSSL_ia32cap_P as a common symbol, and only GNU ld gives common
    symbols their space in a relocatable link (`-d`); a common symbol cannot be made local."""
    run(ctx, ["ld", "-r", "-d", "-o", folded, cpython_o, cpython_o.parent / "glibc-compat.o",
              *(prefixes[name] / "lib" / archive for name, archive in ARCHIVES)],
        what="partial link of CPython with the C libraries (GNU ld -r -d; hint: apt-get "
             "install binutils)")


def partial_link(ctx: Context, source: Path, prefixes: dict, out: Path) -> tuple:
    """lib/python.o, one ordinary ELF relocatable object, in three steps:
    1. ThinLTO left LLVM bitcode in libpython3.11.a and libmpdec.a: one `ld.lld -r` runs the
       link-time optimization (the PGO data is in the bitcode) and writes ELF;
    2. a second relocatable link adds the C libraries' members that CPython uses;
    3. `llvm-objcopy --keep-global-symbols=exports.txt` makes every other symbol local, so
       OpenSSL, zlib, SQLite... can neither clash with another copy in the final link nor be
       exported from the executable (where they would interpose on a wheel's own copies)."""
    work = source.parent
    cpython_o = work / "cpython.o"
    run(ctx, [ctx.tools["ld.lld"], "-r", "-o", cpython_o, "--lto-O3", f"--thinlto-jobs={ctx.jobs}",
              "--whole-archive", source / "libpython3.11.a",
              source / "Modules/_decimal/libmpdec/libmpdec.a", "--no-whole-archive"],
        what="partial link of CPython with link-time optimization (ld.lld -r)")
    exports = _exported_symbols(ctx, cpython_o)
    if len(exports) < 1500:
        raise BuildError(f"only {len(exports)} exported symbols found in the CPython objects")
    (out / "exports.txt").write_text("".join(f"{name}\n" for name in exports))
    folded = work / "folded.o"
    fold_libraries(ctx, cpython_o, prefixes, folded)
    python_o = out / "lib" / "python.o"
    python_o.parent.mkdir(parents=True, exist_ok=True)
    run(ctx, [ctx.tools["llvm-objcopy"], *OBJCOPY_OPTIONS,
              f"--keep-global-symbols={out / 'exports.txt'}", folded, python_o],
        what="llvm-objcopy --keep-global-symbols")
    kind = run(ctx, ["readelf", "-h", python_o], what="readelf -h python.o", capture=True)
    if "REL (Relocatable file)" not in kind:
        raise BuildError("lib/python.o is not an ELF relocatable object")
    return python_o, exports


def install(ctx: Context, source: Path, out: Path) -> dict:
    """Headers with `make inclinstall`; the standard library copied from Lib/ without tests
    (compiling it to bytecode is left to the packer); the tests go to `test-lib/` for
    `PYTHONPATH=<dir>/test-lib bin/python3.11 -m test`."""
    staging = source.parent / "install"
    run(ctx, ["make", "inclinstall", f"DESTDIR={staging}"], cwd=source,
        env=toolchain.environment(ctx), what="make inclinstall")
    include = staging / PREFIX.lstrip("/") / "include" / "python3.11"
    shutil.copytree(include, out / "include" / "python3.11")

    stdlib = out / "lib" / "python3.11"
    tests = out / "test-lib"
    test_dirs = {"test", "idle_test", "tests"}
    dropped = []

    def ignore(directory, names):
        skipped = {name for name in names if name == "__pycache__"}
        relative = Path(directory).relative_to(source / "Lib")
        for name in names:
            if name in test_dirs and (Path(directory) / name).is_dir():
                skipped.add(name)
                dropped.append(str(relative / name))
        return skipped

    shutil.copytree(source / "Lib", stdlib, ignore=ignore)
    # Empty: every extension module is built in. It is getpath's landmark for exec_prefix
    # (without it bin/python3.11 warns "Could not find platform dependent libraries").
    (stdlib / "lib-dynload").mkdir()
    # The tests stay available beside the runtime, outside its standard library: test/ as it
    # is, and for tests inside a package (ctypes/test, unittest/test...) the whole package,
    # which shadows the identical one of lib/python3.11 when test-lib/ is on PYTHONPATH.
    for relative in sorted({Path(path).parts[0] for path in dropped}):
        shutil.copytree(source / "Lib" / relative, tests / relative,
                        ignore=shutil.ignore_patterns("__pycache__"))
    # sysconfig's data module, written by the build.
    sysconfigdata = list(source.glob("build/lib.*/_sysconfigdata_*.py"))
    if len(sysconfigdata) != 1:
        raise BuildError("expected one _sysconfigdata_*.py in the build directory")
    shutil.copy(sysconfigdata[0], stdlib / sysconfigdata[0].name)
    return {"dropped_from_stdlib": sorted(dropped)}


def link_executable(ctx: Context, source: Path, out: Path, python_o: Path, link_args: list,
                    exports: list) -> Path:
    """bin/python3.11: CPython's main, lib/python.o and link-args.txt, linked as a PIE. zig cc
    takes no --dynamic-list; -rdynamic exports exactly exports.txt here, since every other
    symbol of lib/python.o is local."""
    work = source.parent
    main_o = work / "python-main.o"
    run(ctx, [ctx.tools["cc"], "-c", "-O2", "-fPIE", "-DNDEBUG", f"-I{source}/Include",
              f"-I{source}", source / "Programs" / "python.c", "-o", main_o],
        env=toolchain.environment(ctx), what="compiling Programs/python.c")
    binary = out / "bin" / "python3.11"
    binary.parent.mkdir(parents=True, exist_ok=True)
    run(ctx, [ctx.tools["cc"], "-O2", "-fPIE", "-pie", "-o", binary, main_o, python_o,
              *link_args, "-rdynamic"],
        env=toolchain.environment(ctx), what="linking bin/python3.11")
    (out / "bin" / "python3").symlink_to("python3.11")
    return binary


def build(ctx: Context, prefixes: dict, out: Path, recipe: str, final: Path) -> None:
    """Builds into `out` (the scratch directory); files that name paths name `final`, where
    `out` is renamed when everything succeeded."""
    work = out / "work"
    work.mkdir()
    with step(ctx, "cpython: sources and Debian's security patches"):
        source, patches = prepare_source(ctx, work)
    with step(ctx, "cpython: configure"):
        compat = compile_glibc_compat(ctx, work / "src")
        env = configure(ctx, source, prefixes, compat)
        modules = write_setup_local(ctx, source, prefixes)
    with step(ctx, "cpython: make (instrumented build, training run, ThinLTO build with the profile)"):
        make(ctx, source, env)
    with step(ctx, "cpython: lib/python.o (LTO partial link, C libraries folded in)"):
        python_o, exports = partial_link(ctx, source, prefixes, out)
    with step(ctx, "cpython: install headers, standard library, bin/python3.11"):
        shutil.copy(ctx.tools["libgcc"], out / "lib" / "libgcc.a")
        link_args = [str(out / "lib" / "libgcc.a")] + SYSTEM_LIBRARIES
        (out / "link-args.txt").write_text("".join(
            f"{argument.replace(str(out), str(final))}\n" for argument in link_args))
        installed = install(ctx, source, out)
        link_executable(ctx, source, out, python_o, link_args, exports)
    write_runtime_json(ctx, out, recipe, patches, modules, exports, installed)


def write_runtime_json(ctx: Context, out: Path, recipe: str, patches: list, modules: list,
                       exports: list, installed: dict) -> None:
    pin = ctx.pins["cpython"]
    library_entries = []
    for name, library in ctx.pins["libraries"].items():
        entry = {"name": name, "version": library["upstream"], "spdx": library["spdx"]}
        if library["kind"] == "crate":
            entry["source"] = {"kind": "crate", "crate": library["crate"],
                               "version": library["version"], "sha256": library["sha256"],
                               "path_in_crate": library["subdir"]}
        elif library["kind"] == "debian-source":
            entry["source"] = {"kind": "debian-source", "package": library["package"],
                               "version": library["version"], "files": library["files"],
                               "debian_patches_applied": libraries.LIBRARIES[name][2]}
        else:
            entry["source"] = {"kind": "debian-binary", "package": library["package"],
                               "version": library["version"], "sha256": library["sha256"]}
        library_entries.append(entry)
    document = {
        "cpython": {"version": pin["upstream"], "debian_package": pin["package"],
                    "debian_version": pin["version"], "files": pin["files"], "spdx": pin["spdx"],
                    "debian_patches_applied": patches},
        "libraries": library_entries,
        "builtin_modules_required": modules,
        "toolchain": ctx.tools["versions"],
        "target": {"triple": toolchain.TARGET, "glibc_floor": "2.17", "cpu": "x86-64 baseline",
                   "position_independent": True},
        "flags": {"cpython_cflags": CFLAGS, "cpython_opt": OPT, "libraries_cflags":
                  libraries.CFLAGS, "lto": "thin", "pgo": True, "pgo_task": PROFILE_TASK,
                  "configure_prefix": PREFIX},
        "link_args": (out / "link-args.txt").read_text().split(),
        "folded_into_python_o": [archive for _, archive in ARCHIVES],
        "exports": len(exports),
        "recipe_hash": recipe,
        "stdlib_dropped": installed["dropped_from_stdlib"],
    }
    (out / "runtime.json").write_text(json.dumps(document, indent=2) + "\n")
