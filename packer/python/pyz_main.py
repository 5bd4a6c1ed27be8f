# The start of a pyz written by `pyferry pack --format pyz` (docs/pyz.md). It is written to run
# on any Python: first it checks that this interpreter and this machine are the ones the archive
# was built for, and says in one line what it needs and what it found (exit status 1) before any
# package of the archive is imported; then pyferry_bootstrap serves every import from the
# archive, extension modules included, and runs the entry point.
import sys

PYFERRY = __PYFERRY_CONFIG__


def _pyferry_found_interpreter():
    implementation = getattr(sys, "implementation", None)
    name = getattr(implementation, "name", None) or ("pypy" if "PyPy" in sys.version else "cpython")
    version = "%d.%d.%d" % tuple(sys.version_info[:3])
    tag = "%s%d%d%s" % (
        "cp" if name == "cpython" else name,
        sys.version_info[0],
        sys.version_info[1],
        getattr(sys, "abiflags", ""),
    )
    label = {"cpython": "CPython", "pypy": "PyPy"}.get(name, name)
    notes = []
    if "t" in getattr(sys, "abiflags", ""):
        notes.append("free-threaded")
    if "d" in getattr(sys, "abiflags", ""):
        notes.append("debug build")
    return "%s %s (%s%s) at %s" % (
        label,
        version,
        tag,
        "".join(", " + note for note in notes),
        sys.executable or "an unknown path",
    )


def _pyferry_libc():
    """('glibc', (2, 36)), or (name, None) for another C library."""
    import os

    try:
        text = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (AttributeError, ValueError, OSError):
        text = ""
    parts = text.split()
    if len(parts) == 2 and parts[0] == "glibc":
        try:
            return "glibc", tuple(int(part) for part in parts[1].split(".")[:2])
        except ValueError:
            return "glibc", None
    multiarch = getattr(getattr(sys, "implementation", None), "_multiarch", "") or ""
    if "musl" in multiarch:
        return "musl libc", None
    return "a C library that is not glibc", None


def _pyferry_mismatch():
    """What this interpreter lacks, as the one line to print; None when it can run the archive."""
    needed = PYFERRY["python"]
    implementation = getattr(getattr(sys, "implementation", None), "name", "")
    version = "%d.%d" % tuple(sys.version_info[:2])
    if implementation != "cpython" or version != needed:
        return "built for CPython %s (%s); this is %s: run it with python%s, or pack it again with `--python %s`" % (
            needed,
            PYFERRY["interpreter"],
            _pyferry_found_interpreter(),
            needed,
            version,
        )
    platform = PYFERRY["platform"]
    if platform == "any":
        return None
    if getattr(sys, "abiflags", "") != "":
        return "built for CPython %s (%s); this is %s, whose extension modules differ" % (
            needed,
            PYFERRY["interpreter"],
            _pyferry_found_interpreter(),
        )
    import os

    # manylinux_2_17_x86_64 -> glibc 2.17, x86_64
    parts = platform.split("_")
    glibc = (int(parts[1]), int(parts[2]))
    architecture = "_".join(parts[3:])
    machine = os.uname()[4] if hasattr(os, "uname") else sys.platform
    if sys.platform != "linux" and not sys.platform.startswith("linux"):
        return "built for Linux %s with glibc %d.%d or newer (%s); this is %s" % (
            architecture,
            glibc[0],
            glibc[1],
            platform,
            sys.platform,
        )
    multiarch = getattr(getattr(sys, "implementation", None), "_multiarch", "") or ""
    if multiarch:
        machine = multiarch.split("-")[0]
    elif machine == "x86_64" and sys.maxsize <= 2**32:
        machine = "i686"
    if machine.replace("-", "_") != architecture:
        return "built for %s (%s); this Python runs on %s (%s)" % (
            architecture,
            platform,
            machine,
            _pyferry_found_interpreter(),
        )
    libc, found = _pyferry_libc()
    if libc != "glibc":
        return "needs glibc %d.%d or newer (%s); this Python runs on %s" % (glibc[0], glibc[1], platform, libc)
    if found is not None and found < glibc:
        return "needs glibc %d.%d or newer (%s); this host has glibc %d.%d" % (
            glibc[0],
            glibc[1],
            platform,
            found[0],
            found[1],
        )
    return None


def _pyferry_start():
    import os

    problem = _pyferry_mismatch()
    if problem is not None:
        name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "pyz"
        sys.stderr.write("%s: error: %s\n" % (name, problem))
        sys.stderr.flush()
        raise SystemExit(1)
    import pyferry_bootstrap

    return pyferry_bootstrap.main(PYFERRY)


_pyferry_start()
