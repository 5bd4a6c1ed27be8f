"""CPython 3.11 from Debian's source package: the upstream tarball plus Debian's security
patches, configured for zig cc and glibc 2.17, every extension module built in, compiled with
PGO and ThinLTO, then turned into what the launcher links:

- `lib/python.o`: one ordinary ELF relocatable object (ThinLTO's bitcode archives partially
  linked with `ld.lld -r`), holding libpython3.11.a and libmpdec, without `main`;
- `lib/*.a`: the C libraries, and `link-args.txt`, `exports.txt`;
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
# -fPIC: position-independent code, so the launcher can be a PIE.
# -Wno-error=date-time: zig cc makes -Wdate-time an error (getbuildinfo.c uses __DATE__).
CFLAGS = "-fPIC -Wno-error=date-time"

# The PGO training run: CPython's --pgo test selection minus the slowest tests and test_embed
# (which expects a shared-library layout). Runs in two worker processes.
PROFILE_TASK = ("-m test --pgo -j2 --timeout=1200 -x test_embed test_decimal test_pickle "
                "test_datetime test_tabnanny test_lzma")

# Archives on the final link, in order (after lib/python.o). libgcc.a last: its __divti3 & co.
# keep zig's compiler_rt (which also defines log, exp, sin... wrongly for some inputs) out.
ARCHIVES = [
    ("openssl", "libssl.a"), ("openssl", "libcrypto.a"), ("sqlite", "libsqlite3.a"),
    ("xz", "liblzma.a"), ("bzip2", "libbz2.a"), ("zlib", "libz.a"), ("libffi", "libffi.a"),
    ("expat", "libexpat.a"), ("libuuid", "libuuid.a"), ("libedit", "libedit.a"),
    ("ncurses", "libpanelw.a"), ("ncurses", "libncursesw.a"),
]
SYSTEM_LIBRARIES = ["-lm", "-lpthread", "-ldl", "-lutil", "-lrt"]

# What the dynamic symbol table must export: the C API (every Debian libpython3.11.so export
# matches this), never the C libraries' symbols.
EXPORT_PATTERN = re.compile(r"^_?(Py|PY)")


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


def configure(ctx: Context, source: Path, prefixes: dict) -> dict:
    env = toolchain.environment(ctx)
    p = prefixes
    env.update({
        "CFLAGS": CFLAGS,
        "OPT": OPT,
        "CPPFLAGS": _include_flags(prefixes),
        "LDFLAGS": " ".join(f"-L{prefix}/lib" for prefix in prefixes.values()),
        "LIBS": "-lpthread -ldl",
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


def make(ctx: Context, source: Path, env: dict) -> None:
    env = dict(env)
    env["PYFERRY_PGO_RUNTIME"] = ctx.tools["profile_runtime"]
    run(ctx, ["make", f"-j{ctx.jobs}", f"PROFILE_TASK={PROFILE_TASK}"], cwd=source, env=env,
        what="CPython make (PGO + ThinLTO)")
    leftovers = sorted(path.name for path in source.glob("build/lib.*/*.so"))
    if leftovers:
        raise BuildError(f"setup.py built shared modules the runtime would not carry: "
                         f"{', '.join(leftovers)} (hint: add them to runtime/Setup.local.in)")


def partial_link(ctx: Context, source: Path, out: Path) -> Path:
    """ThinLTO leaves LLVM bitcode in libpython3.11.a and libmpdec.a; one `ld.lld -r` runs the
    link-time optimization and writes one ordinary ELF relocatable object."""
    python_o = out / "lib" / "python.o"
    python_o.parent.mkdir(parents=True, exist_ok=True)
    run(ctx, [ctx.tools["ld.lld"], "-r", "-o", python_o, "--lto-O3", f"--thinlto-jobs={ctx.jobs}",
              "--whole-archive", source / "libpython3.11.a",
              source / "Modules/_decimal/libmpdec/libmpdec.a", "--no-whole-archive"],
        what="partial link of CPython (ld.lld -r)")
    kind = run(ctx, ["readelf", "-h", python_o], what="readelf -h python.o", capture=True)
    if "REL (Relocatable file)" not in kind:
        raise BuildError("lib/python.o is not an ELF relocatable object")
    return python_o


def copy_libraries(ctx: Context, prefixes: dict, out: Path) -> list:
    lib = out / "lib"
    archives = []
    for name, archive in ARCHIVES:
        shutil.copy(prefixes[name] / "lib" / archive, lib / archive)
        archives.append(lib / archive)
    shutil.copy(ctx.tools["libgcc"], lib / "libgcc.a")
    archives.append(lib / "libgcc.a")
    return archives


def write_exports(ctx: Context, python_o: Path, out: Path) -> list:
    listing = run(ctx, ["nm", "--defined-only", "--extern-only", "--format=posix", python_o],
                  what="nm python.o", capture=True)
    names = sorted({fields[0] for fields in (line.split() for line in listing.splitlines())
                    if len(fields) >= 2 and fields[1] in "TDBRVW" and EXPORT_PATTERN.match(fields[0])})
    (out / "exports.txt").write_text("".join(f"{name}\n" for name in names))
    return names


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
    # The tests stay available beside the runtime, outside its standard library.
    for relative in dropped:
        shutil.copytree(source / "Lib" / relative, tests / relative,
                        ignore=shutil.ignore_patterns("__pycache__"))
        for parent in (tests / relative).parents:
            if parent == tests:
                break
            init = parent / "__init__.py"
            if not init.exists():
                init.touch()
    # sysconfig's data module, written by the build.
    sysconfigdata = list(source.glob("build/lib.*/_sysconfigdata_*.py"))
    if len(sysconfigdata) != 1:
        raise BuildError("expected one _sysconfigdata_*.py in the build directory")
    shutil.copy(sysconfigdata[0], stdlib / sysconfigdata[0].name)
    return {"dropped_from_stdlib": sorted(dropped)}


def link_executable(ctx: Context, source: Path, out: Path, python_o: Path, link_args: list,
                    exports: list) -> Path:
    """bin/python3.11: CPython's main, lib/python.o and link-args.txt, linked as a PIE the way
    the launcher is, with the same exported symbols."""
    work = source.parent
    main_o = work / "python-main.o"
    run(ctx, [ctx.tools["cc"], "-c", "-O2", "-fPIE", "-DNDEBUG", f"-I{source}/Include",
              f"-I{source}", source / "Programs" / "python.c", "-o", main_o],
        env=toolchain.environment(ctx), what="compiling Programs/python.c")
    dynamic_list = work / "exports.ld"
    dynamic_list.write_text("{\n" + "".join(f"  {name};\n" for name in exports) + "};\n")
    binary = out / "bin" / "python3.11"
    binary.parent.mkdir(parents=True, exist_ok=True)
    run(ctx, [ctx.tools["cc"], "-O2", "-fPIE", "-pie", "-o", binary, main_o, python_o,
              *link_args, f"-Wl,--dynamic-list={dynamic_list}"],
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
        env = configure(ctx, source, prefixes)
        modules = write_setup_local(ctx, source, prefixes)
    with step(ctx, "cpython: make with PGO and ThinLTO"):
        make(ctx, source, env)
    with step(ctx, "cpython: partial link to lib/python.o"):
        python_o = partial_link(ctx, source, out)
    with step(ctx, "cpython: install headers, standard library, libraries"):
        archives = copy_libraries(ctx, prefixes, out)
        link_args = [str(path) for path in archives] + SYSTEM_LIBRARIES
        (out / "link-args.txt").write_text("".join(
            f"{argument.replace(str(out), str(final))}\n" for argument in link_args))
        exports = write_exports(ctx, python_o, out)
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
        "exports": len(exports),
        "recipe_hash": recipe,
        "stdlib_dropped": installed["dropped_from_stdlib"],
    }
    (out / "runtime.json").write_text(json.dumps(document, indent=2) + "\n")
