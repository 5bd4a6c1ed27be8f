"""The C libraries CPython's extension modules need, one function per library, each compiled
from source by zig cc for glibc 2.17 as a static, position-independent archive.

Each library lands in its own prefix, `<cache>/parts/<name>-<key>/` (`include/`, `lib/`), so
each gets its own include directory and the host's /usr/include never enters a compile. A part
is keyed by its pin, the source of its build function, the shared flags and the toolchain, so a
change to one library rebuilds only that library (and CPython).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
from pathlib import Path

from . import fetch, toolchain
from .common import BuildError, Context, apply_quilt_series, atomic_directory, run, step, unpack

# Flags of every C library: optimized, position-independent, no debug information.
CFLAGS = "-O2 -fPIC -g0"
HOST = "x86_64-linux-gnu"


def _jobs(ctx: Context) -> str:
    return f"-j{ctx.jobs}"


def _archive(ctx: Context, library: Path, objects: list) -> None:
    library.parent.mkdir(parents=True, exist_ok=True)
    run(ctx, [ctx.tools["ar"], "rcs", library, *objects], what=f"archiving {library.name}")


def _compile_all(ctx: Context, sources: list, build: Path, flags: list) -> list:
    """Compiles C files with zig cc, `ctx.jobs` at a time; returns the object paths."""
    import concurrent.futures

    build.mkdir(parents=True, exist_ok=True)
    objects = []
    commands = []
    for index, source in enumerate(sources):
        obj = build / f"{index:03d}-{Path(source).stem}.o"
        objects.append(obj)
        commands.append([ctx.tools["cc"], *CFLAGS.split(), *flags, "-c", source, "-o", obj])
    with concurrent.futures.ThreadPoolExecutor(max_workers=ctx.jobs) as pool:
        for future in [pool.submit(run, ctx, command, None, toolchain.environment(ctx),
                                   f"compiling {Path(command[-3]).name}") for command in commands]:
            future.result()
    return objects


def _debian_tree(ctx: Context, pin: dict, work: Path, apply_patches: bool = True) -> Path:
    """Unpacks a Debian source package (orig tarball, then its quilt series in order)."""
    files = fetch.debian_source(ctx, pin)
    orig = next(path for name, path in files.items() if ".orig." in name)
    debian = next(path for name, path in files.items() if name.endswith(".debian.tar.xz"))
    source = unpack(ctx, orig, work / "src")
    run(ctx, ["tar", "-xf", debian, "-C", source], what=f"unpacking {debian.name}")
    series = source / "debian" / "patches" / "series"
    if apply_patches and series.is_file():
        names = [line.strip() for line in series.read_text().splitlines()
                 if line.strip() and not line.startswith("#")]
        apply_quilt_series(ctx, source, source / "debian" / "patches", names)
        _settle_autotools(source)
    return source


def _settle_autotools(source: Path) -> None:
    """Patches that touch configure.ac or Makefile.am make `make` want to rerun autotools
    (which the recipe does not use). Those changes concern programs we do not build, so the
    generated files are marked newer, in the order autotools itself would write them."""
    import time

    stamp = time.time()
    for offset, pattern in enumerate(("aclocal.m4", "configure", "config.h.in", "Makefile.in")):
        for path in source.rglob(pattern):
            os.utime(path, (stamp + offset, stamp + offset))


def _crate_tree(ctx: Context, pin: dict, crate_paths: dict, work: Path) -> Path:
    crate = crate_paths[pin["crate"]]
    top = unpack(ctx, crate, work / "crate")
    return top / pin["subdir"]


def _configure_env(ctx: Context, cflags: str = CFLAGS, cppflags: str = "", ldflags: str = "",
                   libs: str = "") -> dict:
    env = toolchain.environment(ctx)
    env.update({"CFLAGS": cflags, "CPPFLAGS": cppflags, "LDFLAGS": ldflags, "LIBS": libs})
    return env


# ---------------------------------------------------------------------------------------------
# One function per library. Each gets (ctx, source tree or inputs, prefix, dependencies) and
# must leave include/ and lib/ in prefix.


def build_zlib(ctx, source: Path, prefix: Path, dependencies: dict) -> None:
    names = ["adler32", "compress", "crc32", "deflate", "gzclose", "gzlib", "gzread", "gzwrite",
             "infback", "inffast", "inflate", "inftrees", "trees", "uncompr", "zutil"]
    objects = _compile_all(ctx, [source / f"{name}.c" for name in names], prefix / "build",
                           ["-D_LARGEFILE64_SOURCE=1", "-DHAVE_UNISTD_H", "-DHAVE_STDARG_H",
                            "-DHAVE_HIDDEN", f"-I{source}"])
    _archive(ctx, prefix / "lib" / "libz.a", objects)
    (prefix / "include").mkdir(parents=True, exist_ok=True)
    for header in ("zlib.h", "zconf.h"):
        shutil.copy(source / header, prefix / "include" / header)


def build_bzip2(ctx, source: Path, prefix: Path, dependencies: dict) -> None:
    names = ["blocksort", "huffman", "crctable", "randtable", "compress", "decompress", "bzlib"]
    objects = _compile_all(ctx, [source / f"{name}.c" for name in names], prefix / "build",
                           ["-D_FILE_OFFSET_BITS=64", f"-I{source}"])
    _archive(ctx, prefix / "lib" / "libbz2.a", objects)
    (prefix / "include").mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "bzlib.h", prefix / "include" / "bzlib.h")


def build_xz(ctx, source: Path, prefix: Path, dependencies: dict) -> None:
    # xz's CMake/autotools are not in the crate's copy: compile liblzma's C files with our own
    # configuration header (runtime/files/liblzma-config.h: every filter and check, threads).
    liblzma = source / "src" / "liblzma"
    directories = ["common", "lzma", "lz", "check", "delta", "rangecoder", "simple"]
    skipped = {"crc32_small.c", "crc64_small.c", "crc_clmul_consts_gen.c"}
    # *_tablegen.c are programs that print tables (each has a main), not library code.
    sources = sorted(path for directory in directories for path in (liblzma / directory).glob("*.c")
                     if path.name not in skipped and not path.name.endswith("_tablegen.c"))
    sources += [source / "src" / "common" / "tuklib_cpucores.c",
                source / "src" / "common" / "tuklib_physmem.c"]
    config = prefix / "build" / "config"
    config.mkdir(parents=True, exist_ok=True)
    shutil.copy(ctx.recipe_dir / "files" / "liblzma-config.h", config / "config.h")
    includes = [f"-I{config}", f"-I{liblzma / 'api'}", f"-I{source / 'src' / 'common'}"]
    includes += [f"-I{liblzma / directory}" for directory in directories]
    objects = _compile_all(ctx, sources, prefix / "build",
                           ["-std=gnu99", "-DHAVE_CONFIG_H", "-pthread", *includes])
    _archive(ctx, prefix / "lib" / "liblzma.a", objects)
    shutil.copytree(liblzma / "api", prefix / "include", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("Makefile*"))


def build_sqlite(ctx, source: Path, prefix: Path, dependencies: dict) -> None:
    # Options close to Debian's libsqlite3: full-text search, R-tree, JSON, math functions,
    # column metadata, extension loading (sqlite3.Connection.enable_load_extension).
    options = ["-DSQLITE_THREADSAFE=1", "-DSQLITE_ENABLE_FTS3", "-DSQLITE_ENABLE_FTS3_PARENTHESIS",
               "-DSQLITE_ENABLE_FTS4", "-DSQLITE_ENABLE_FTS5", "-DSQLITE_ENABLE_RTREE",
               "-DSQLITE_ENABLE_GEOPOLY", "-DSQLITE_ENABLE_MATH_FUNCTIONS",
               "-DSQLITE_ENABLE_COLUMN_METADATA", "-DSQLITE_ENABLE_DBSTAT_VTAB",
               "-DSQLITE_ENABLE_UNLOCK_NOTIFY", "-DSQLITE_ENABLE_STAT4",
               "-DSQLITE_ENABLE_DESERIALIZE", "-DSQLITE_SECURE_DELETE",
               "-DSQLITE_MAX_VARIABLE_NUMBER=250000", "-DSQLITE_DEFAULT_FOREIGN_KEYS=0",
               "-DHAVE_USLEEP=1", "-DHAVE_FDATASYNC=1", "-DHAVE_MALLOC_USABLE_SIZE=1",
               "-DHAVE_ISNAN=1", "-DHAVE_LOCALTIME_R=1", "-DHAVE_GMTIME_R=1"]
    objects = _compile_all(ctx, [source / "sqlite3.c"], prefix / "build", [*options, f"-I{source}"])
    _archive(ctx, prefix / "lib" / "libsqlite3.a", objects)
    (prefix / "include").mkdir(parents=True, exist_ok=True)
    for header in ("sqlite3.h", "sqlite3ext.h"):
        shutil.copy(source / header, prefix / "include" / header)


def build_openssl(ctx, source: Path, prefix: Path, dependencies: dict) -> None:
    # OPENSSLDIR=/etc/ssl: the default CA file is /etc/ssl/cert.pem and the default hashed CA
    # directory /etc/ssl/certs (Debian/Ubuntu; RHEL keeps a link to /etc/pki/tls/certs).
    # no-module builds the legacy provider into libcrypto; no-shared: static archives only.
    env = toolchain.environment(ctx)
    env["CFLAGS"] = CFLAGS
    run(ctx, ["perl", "./Configure", "linux-x86_64", f"--prefix={prefix}", "--libdir=lib",
              "--openssldir=/etc/ssl", "no-shared", "no-module", "no-tests", "no-docs",
              "no-comp", "no-zlib", "-fPIC"],
        cwd=source, env=env, what="OpenSSL Configure")
    run(ctx, ["make", _jobs(ctx), "build_libs"], cwd=source, env=env, what="OpenSSL make")
    run(ctx, ["make", "install_dev"], cwd=source, env=env, what="OpenSSL make install_dev")
    for unwanted in ("lib/pkgconfig", "lib/cmake"):
        shutil.rmtree(prefix / unwanted, ignore_errors=True)


def build_libffi(ctx, source: Path, prefix: Path, dependencies: dict) -> None:
    # 3.4.4's src/tramp.c calls open_temp_exec_file() (defined in closures.c, returns int)
    # without a prototype, which clang 16+ rejects; the call is correct as C89 would read it.
    env = _configure_env(ctx, cflags=f"{CFLAGS} -Wno-error=implicit-function-declaration")
    run(ctx, ["./configure", f"--prefix={prefix}", f"--host={HOST}", f"--build={HOST}",
              "--disable-shared", "--enable-static", "--with-pic", "--disable-docs",
              "--disable-multi-os-directory"], cwd=source, env=env, what="libffi configure")
    run(ctx, ["make", _jobs(ctx)], cwd=source, env=env, what="libffi make")
    run(ctx, ["make", "install"], cwd=source, env=env, what="libffi make install")


def build_expat(ctx, source: Path, prefix: Path, dependencies: dict) -> None:
    # Debian's patched expat 2.5.0. Its source is a git snapshot (no generated configure, and
    # the recipe needs no autotools or CMake): compile the library's three C files with our
    # own configuration header, runtime/files/expat-config.h.
    lib = source / "expat" / "lib"
    config = prefix / "build" / "config"
    config.mkdir(parents=True, exist_ok=True)
    shutil.copy(ctx.recipe_dir / "files" / "expat-config.h", config / "expat_config.h")
    objects = _compile_all(ctx, [lib / "xmlparse.c", lib / "xmlrole.c", lib / "xmltok.c"],
                           prefix / "build", ["-DHAVE_EXPAT_CONFIG_H", f"-I{config}", f"-I{lib}",
                                              "-fvisibility=default"])
    _archive(ctx, prefix / "lib" / "libexpat.a", objects)
    (prefix / "include").mkdir(parents=True, exist_ok=True)
    for header in ("expat.h", "expat_external.h"):
        shutil.copy(lib / header, prefix / "include" / header)


def build_libuuid(ctx, source: Path, prefix: Path, dependencies: dict) -> None:
    # Only libuuid out of util-linux: Debian's libuuid.a needs getrandom() (glibc 2.25).
    env = _configure_env(ctx)
    run(ctx, ["./configure", f"--prefix={prefix}", f"--host={HOST}", f"--build={HOST}",
              "--disable-all-programs", "--enable-libuuid", "--disable-shared", "--enable-static",
              "--with-pic", "--disable-nls", "--without-python", "--without-systemd",
              "--without-udev", "--without-readline", "--without-ncursesw", "--without-ncurses",
              "--disable-bash-completion", "--disable-asciidoc", "--disable-poman"],
        cwd=source, env=env, what="util-linux configure")
    run(ctx, ["make", _jobs(ctx), "libuuid.la"], cwd=source, env=env, what="libuuid make")
    (prefix / "lib").mkdir(parents=True, exist_ok=True)
    (prefix / "include" / "uuid").mkdir(parents=True, exist_ok=True)
    shutil.copy(source / ".libs" / "libuuid.a", prefix / "lib" / "libuuid.a")
    shutil.copy(source / "libuuid" / "src" / "uuid.h", prefix / "include" / "uuid" / "uuid.h")


TERMINFO_DIRS = "/etc/terminfo:/lib/terminfo:/usr/share/terminfo:/usr/lib/terminfo"


def build_ncurses(ctx, source: Path, prefix: Path, dependencies: dict) -> None:
    # Wide-character ncurses with terminfo built in (one libncursesw.a) and libpanelw.a. The
    # compiled-in search list covers Debian/Ubuntu (/lib/terminfo, /usr/share/terminfo, /etc)
    # and RHEL (/usr/share/terminfo); $TERMINFO and $TERMINFO_DIRS still come first.
    env = _configure_env(ctx)
    run(ctx, ["./configure", f"--prefix={prefix}", f"--host={HOST}", f"--build={HOST}",
              "--without-shared", "--with-normal", "--without-debug", "--without-profile",
              "--without-cxx", "--without-cxx-binding", "--without-ada", "--without-progs",
              "--without-tests", "--without-manpages", "--enable-widec", "--disable-db-install",
              "--disable-pc-files", "--without-pkg-config", "--enable-ext-colors",
              f"--with-terminfo-dirs={TERMINFO_DIRS}",
              "--with-default-terminfo-dir=/usr/share/terminfo", "--disable-stripping"],
        cwd=source, env=env, what="ncurses configure")
    run(ctx, ["make", _jobs(ctx), "libs"], cwd=source, env=env, what="ncurses make")
    run(ctx, ["make", "install.libs"], cwd=source, env=env, what="ncurses make install.libs")


def build_libedit(ctx, source: Path, prefix: Path, dependencies: dict) -> None:
    # BSD-licensed line editing for the readline module (GNU readline is GPL-3). Debian's
    # patches only change configure.ac (soname, libbsd) and would need autoreconf: not applied.
    # Its configure looks for tgetent in -lncurses: a link named libncurses.a points at our
    # wide-character libncursesw.a.
    ncurses = dependencies["ncurses"]
    termlib = prefix / "build" / "termlib"
    termlib.mkdir(parents=True, exist_ok=True)
    (termlib / "libncurses.a").symlink_to(ncurses / "lib" / "libncursesw.a")
    env = _configure_env(ctx, cppflags=f"-I{ncurses}/include/ncursesw -I{ncurses}/include",
                         ldflags=f"-L{termlib}")
    run(ctx, ["./configure", f"--prefix={prefix}", f"--host={HOST}", f"--build={HOST}",
              "--disable-shared", "--enable-static", "--with-pic", "--disable-examples"],
        cwd=source, env=env, what="libedit configure")
    run(ctx, ["make", _jobs(ctx), "-C", "src"], cwd=source, env=env, what="libedit make")
    run(ctx, ["make", "-C", "src", "install"], cwd=source, env=env, what="libedit make install")


# name: (build function, dependencies, whether Debian's patch series is applied)
LIBRARIES = {
    "zlib": (build_zlib, [], True),
    "bzip2": (build_bzip2, [], True),
    "xz": (build_xz, [], True),
    "sqlite": (build_sqlite, [], True),
    "openssl": (build_openssl, [], True),
    "libffi": (build_libffi, [], True),
    "expat": (build_expat, [], True),
    "libuuid": (build_libuuid, [], True),
    "ncurses": (build_ncurses, [], True),
    "libedit": (build_libedit, ["ncurses"], False),
}


def part_key(ctx: Context, name: str, dependency_keys: list) -> str:
    function, _, patched = LIBRARIES[name]
    material = {
        "pin": ctx.pins["libraries"][name],
        "function": inspect.getsource(function),
        "helpers": [inspect.getsource(helper) for helper in
                    (_compile_all, _debian_tree, _crate_tree, _configure_env, _archive,
                     _settle_autotools)],
        "patched": patched,
        "cflags": CFLAGS,
        "toolchain": ctx.tools["versions"],
        "wrapper": toolchain.CC_WRAPPER,
        "dependencies": dependency_keys,
    }
    for library, config in (("xz", "liblzma-config.h"), ("expat", "expat-config.h")):
        if name == library:
            material["config"] = (ctx.recipe_dir / "files" / config).read_text()
    digest = hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def build_all(ctx: Context) -> dict:
    """Builds (or finds in the cache) every library; returns {name: prefix}."""
    crate_pins = [pin for pin in ctx.pins["libraries"].values() if pin["kind"] == "crate"]
    crate_paths = None
    prefixes, keys = {}, {}
    for name, (function, dependencies, patched) in LIBRARIES.items():
        keys[name] = part_key(ctx, name, [keys[dependency] for dependency in dependencies])
        prefix = ctx.parts_dir / f"{name}-{keys[name]}"
        prefixes[name] = prefix
        pin = ctx.pins["libraries"][name]
        if (prefix / "part.json").is_file():
            continue
        with step(ctx, f"library {name} {pin['upstream']}"):
            with atomic_directory(prefix) as scratch:
                work = scratch / "work"
                if pin["kind"] == "crate":
                    if crate_paths is None:
                        crate_paths = fetch.crates(ctx, crate_pins)
                    source = _crate_tree(ctx, pin, crate_paths, work)
                else:
                    source = _debian_tree(ctx, pin, work, apply_patches=patched)
                # Installed into the scratch directory: only headers and archives are kept,
                # and neither depends on the directory's name.
                function(ctx, source, scratch, {dep: prefixes[dep] for dep in dependencies})
                shutil.rmtree(work, ignore_errors=True)
                shutil.rmtree(scratch / "build", ignore_errors=True)
                for unwanted in ("share", "bin", "lib/pkgconfig"):
                    shutil.rmtree(scratch / unwanted, ignore_errors=True)
                for libtool_file in scratch.glob("lib/*.la"):
                    libtool_file.unlink()
                if not list(scratch.glob("lib/*.a")):
                    raise BuildError(f"library {name}: no static archive produced")
                (scratch / "part.json").write_text(json.dumps(
                    {"name": name, "key": keys[name], "pin": pin}, indent=2))
    return prefixes

