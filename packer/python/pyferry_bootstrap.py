"""pyferry's zipapp bootstrap: import everything from the archive, native code included.

A zipapp run by `python3.X app.pyz` can import pure Python modules from itself (CPython's
`zipimport`), but not extension modules: `dlopen` needs a file. This module serves every import
from the archive with nothing written to disk:

- pure modules and packages from their bytecode (`.pyc` compiled for this interpreter; the `.py`
  source when there is none), with `__file__`, `get_source` (tracebacks), `get_data`,
  `importlib.resources` and `pkgutil.iter_modules`;
- extension modules and the shared libraries they need (`*.libs/`), each copied from the archive
  into a memory file (`memfd_create`) and loaded through `/proc/self/fd/N`, libraries first,
  a cycle of libraries that need each other in one `dlopen`; the code of large ones is mapped
  from the archive itself instead of copied, when pyferry planned it (`_PageSharing`);
- `importlib.metadata` and entry points need nothing: the `*.dist-info` directories are at the
  archive's root, which is on `sys.path`.

Use it in a zipapp of your own (`python -m zipapp`): put this file at the archive's root and
call it first in `__main__.py`:

    import pyferry_bootstrap
    pyferry_bootstrap.install()

`pyferry pack --format pyz` writes it into every pyz with a `__main__.py` that first checks the
interpreter against the archive's tags. docs/pyz.md describes the whole path. Standard library
only, no compiler, nothing downloaded; Linux (glibc) is tested, FreeBSD is written but untested.
"""

import _frozen_importlib as _bootstrap
import _frozen_importlib_external as _bootstrap_external
import _imp
import marshal
import os
import sys

try:
    import _thread
except ImportError:  # a build without threads
    _thread = None

__all__ = ["install", "BootstrapError"]

_PLATFORM_IS_FREEBSD = sys.platform.startswith("freebsd")

# memfd_create flags (<linux/memfd.h>); os.MFD_NOEXEC_SEAL is not in every Python.
_MFD_CLOEXEC = 0x0001
_MFD_NOEXEC_SEAL = 0x0008

# Where an O_TMPFILE may hold a shared object when memory files are refused: the launcher's
# order. A directory on a `noexec` mount cannot: `dlopen` would fail to map it.
_TMPFILE_DIRECTORIES = ("$XDG_RUNTIME_DIR", "/dev/shm", "/tmp", "/var/tmp")

_LOCAL_HEADER_LENGTH = 30
_LOCAL_HEADER_SIGNATURE = b"PK\x03\x04"
_STORED, _DEFLATED = 0, 8


class BootstrapError(ImportError):
    """A failure of the bootstrap itself: the archive cannot be read, or no way to load a shared
    object exists on this host. Its text is one line. An ImportError, as `zipimport`'s own
    errors are: code that falls back when an optional module cannot be imported still does."""


def _program_name():
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "pyferry_bootstrap"


def _fail(message):
    """Ends the program with one line on stderr and exit status 1."""
    raise SystemExit("%s: error: %s" % (_program_name(), message))


# ---------------------------------------------------------------------------------------------
# The archive
# ---------------------------------------------------------------------------------------------


class _Archive:
    """The zip file, open once (so neither `chdir` nor replacing the file disturbs imports) and
    indexed once: CPython's `zipimport` has already read the central directory to run
    `__main__.py`, and its table is reused when it is there."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        try:
            self.fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as error:
            raise BootstrapError("cannot open `%s`: %s" % (self.path, error.strerror))
        self.entries = self._table(path)
        self._directories = None

    def _table(self, path):
        """name -> (path, compression, compressed size, size, local header offset, ...), the
        layout of `zipimport`'s cache."""
        try:
            import zipimport

            cache = zipimport._zip_directory_cache
            for key in (path, self.path):
                if key in cache:
                    return cache[key]
            zipimport.zipimporter(self.path)
            if self.path in cache:
                return cache[self.path]
        except (ImportError, AttributeError):
            pass
        return self._read_table()

    def _read_table(self):
        import zipfile

        try:
            with zipfile.ZipFile(self.path) as archive:
                return {
                    info.filename: (
                        self.path + "/" + info.filename,
                        info.compress_type,
                        info.compress_size,
                        info.file_size,
                        info.header_offset,
                    )
                    for info in archive.infolist()
                }
        except (OSError, zipfile.BadZipFile) as error:
            raise BootstrapError("cannot read `%s` as a zip: %s" % (self.path, error))

    @property
    def directories(self):
        """Every directory the entries imply (computed at the first namespace lookup)."""
        if self._directories is None:
            directories = set()
            for name in self.entries:
                cut = name.rfind("/")
                while cut > 0:
                    parent = name[:cut]
                    if parent in directories:
                        break
                    directories.add(parent)
                    cut = name.rfind("/", 0, cut)
            self._directories = directories
        return self._directories

    def data_position(self, name):
        """(offset of the data in the file, compressed size, size, compression) of entry `name`."""
        entry = self.entries[name]
        compression, compressed_size, size, header_offset = entry[1], entry[2], entry[3], entry[4]
        header = os.pread(self.fd, _LOCAL_HEADER_LENGTH, header_offset)
        if len(header) != _LOCAL_HEADER_LENGTH or header[:4] != _LOCAL_HEADER_SIGNATURE:
            raise BootstrapError("`%s` in `%s` is damaged (bad local header)" % (name, self.path))
        name_length = int.from_bytes(header[26:28], "little")
        extra_length = int.from_bytes(header[28:30], "little")
        start = header_offset + _LOCAL_HEADER_LENGTH + name_length + extra_length
        return start, compressed_size, size, compression

    def read(self, name):
        """The contents of entry `name`."""
        entry = self.entries[name]
        compression, compressed_size, header_offset = entry[1], entry[2], entry[4]
        # One read for the header, the name and the data: the extra field of a local header is
        # empty for everything but page-aligned shared objects.
        length = _LOCAL_HEADER_LENGTH + len(name.encode()) + compressed_size
        block = os.pread(self.fd, length, header_offset)
        if block[:4] != _LOCAL_HEADER_SIGNATURE:
            raise BootstrapError("`%s` in `%s` is damaged (bad local header)" % (name, self.path))
        extra_length = int.from_bytes(block[28:30], "little")
        start = length - compressed_size
        if extra_length or len(block) != length:
            start, compressed_size, _, compression = self.data_position(name)
            data = os.pread(self.fd, compressed_size, start)
        else:
            data = block[start:]
        if compression == _STORED:
            return data
        if compression == _DEFLATED:
            import zlib

            return zlib.decompress(data, -15)
        raise BootstrapError(
            "`%s` in `%s` uses zip compression method %d; only stored and deflated entries can be "
            "read" % (name, self.path, compression)
        )


# ---------------------------------------------------------------------------------------------
# Shared objects: which libraries each needs (from pyferry's manifest, or read from the ELF)
# ---------------------------------------------------------------------------------------------


def _is_shared_object(name):
    base = name.rpartition("/")[2]
    return base.endswith(".so") or ".so." in base


class _ElfFacts:
    """What loading needs from a shared object's dynamic section: its SONAME, and where each
    DT_NEEDED name lies in the file (offset, length). Little- and big-endian ELF64 and ELF32."""

    def __init__(self, soname, needed):
        self.soname = soname
        self.needed = needed  # [(name, file offset, length)]

    @classmethod
    def read(cls, read_at):
        import struct

        header = read_at(0, 64)
        if header[:4] != b"\x7fELF":
            return None
        wide = header[4] == 2
        order = "<" if header[5] == 1 else ">"
        if wide:
            program_offset, = struct.unpack_from(order + "Q", header, 0x20)
            entry_size, count = struct.unpack_from(order + "HH", header, 0x36)
            layout = order + "IIQQQQQQ"
            dynamic_layout, dynamic_size = order + "qQ", 16
        else:
            program_offset, = struct.unpack_from(order + "I", header, 0x1C)
            entry_size, count = struct.unpack_from(order + "HH", header, 0x2A)
            layout = order + "IIIIIIII"
            dynamic_layout, dynamic_size = order + "iI", 8
        table = read_at(program_offset, entry_size * count)
        loads, dynamic = [], None
        for index in range(count):
            fields = struct.unpack_from(layout, table, index * entry_size)
            if wide:
                kind, offset, address, file_size = fields[0], fields[2], fields[3], fields[5]
            else:
                kind, offset, address, file_size = fields[0], fields[1], fields[2], fields[4]
            if kind == 1:  # PT_LOAD
                loads.append((address, offset, file_size))
            elif kind == 2:  # PT_DYNAMIC
                dynamic = (offset, file_size)
        if dynamic is None:
            return cls(None, [])
        section = read_at(dynamic[0], dynamic[1])
        string_table, needed_at, soname_at = None, [], None
        for at in range(0, len(section) - dynamic_size + 1, dynamic_size):
            tag, value = struct.unpack_from(dynamic_layout, section, at)
            if tag == 0:
                break
            if tag == 1:
                needed_at.append(value)
            elif tag == 5:
                string_table = value
            elif tag == 14:
                soname_at = value
        if string_table is None:
            return cls(None, [])
        table_offset = None
        for address, offset, size in loads:
            if address <= string_table < address + size:
                table_offset = string_table - address + offset
        if table_offset is None:
            return cls(None, [])

        def string(at):
            data = read_at(table_offset + at, 256)
            end = data.find(b"\0")
            return data[: end if end >= 0 else len(data)].decode("utf-8", "replace")

        needed = []
        for at in needed_at:
            name = string(at)
            needed.append((name, table_offset + at, len(name.encode())))
        return cls(string(soname_at) if soname_at is not None else None, needed)


class _LibraryGraph:
    """For each shared object of the archive, the libraries of the archive it needs, in DT_NEEDED
    order, and where their names lie in it (so a cycle can be loaded by path, see
    `_Loader.load_group`).

    pyferry computes all of this when packing (`shared_libraries` and `needed_names` in the
    manifest). A zipapp made otherwise gets it from the objects' ELF headers, read when the
    first extension module is loaded."""

    def __init__(self, archive, libraries=None, needed_names=None):
        self._archive = archive
        self._libraries = libraries
        self._needed_names = needed_names or {}
        self._facts = {}
        self._by_name = None
        self._shared_objects = None

    def _facts_of(self, path):
        facts = self._facts.get(path)
        if facts is None:
            start, compressed_size, size, compression = self._archive.data_position(path)
            fd = self._archive.fd
            if compression == _STORED:

                def read_at(offset, length):
                    length = max(0, min(length, size - offset))
                    return os.pread(fd, length, start + offset)

            else:
                data = self._archive.read(path)

                def read_at(offset, length):
                    return data[offset : offset + length]

            facts = _ElfFacts.read(read_at) or _ElfFacts(None, [])
            self._facts[path] = facts
        return facts

    def _library_named(self, name):
        """The archive path of the library a DT_NEEDED `name` designates: matched by file name
        first (auditwheel names a vendored library after its SONAME), then by SONAME."""
        if self._by_name is None:
            by_name = {}
            candidates = self.shared_objects()
            for path in candidates:
                by_name.setdefault(path.rpartition("/")[2], path)
            self._by_name = by_name
            self._sonames_read = False
            self._candidates = candidates
        path = self._by_name.get(name)
        if path is None and not self._sonames_read:
            self._sonames_read = True
            for candidate in self._candidates:
                soname = self._facts_of(candidate).soname
                if soname:
                    self._by_name.setdefault(soname, candidate)
            path = self._by_name.get(name)
        return path

    def shared_objects(self):
        """Every shared object of the archive, in archive order."""
        if self._shared_objects is None:
            self._shared_objects = [name for name in self._archive.entries if _is_shared_object(name)]
        return self._shared_objects

    def needs(self, path):
        """The archive paths of the libraries `path` needs."""
        if self._libraries is not None:
            return self._libraries.get(path, ())
        needs = []
        for name, _, _ in self._facts_of(path).needed:
            library = self._library_named(name)
            if library is not None and library != path and library not in needs:
                needs.append(library)
        return needs

    def needed_name(self, path, library):
        """(file offset, length) of the DT_NEEDED string in `path` naming `library`."""
        if self._libraries is not None:
            position = self._needed_names.get(path, {}).get(library)
            return tuple(position) if position else None
        for name, offset, length in self._facts_of(path).needed:
            if self._library_named(name) == library:
                return offset, length
        return None

    def groups_in_load_order(self, path):
        """The libraries `path` needs, transitively, as groups in the order to load them,
        dependencies first: a group is one library, or every member of a cycle (libraries that
        need each other, directly or through others). Tarjan's algorithm, whose components come
        out dependencies first."""
        index_of, low, stack, on_stack, groups = {}, {}, [], set(), []
        counter = [0]

        def visit(node):
            # Iterative: dependency chains can be long.
            work = [(node, iter(self.needs(node)))]
            index_of[node] = low[node] = counter[0]
            counter[0] += 1
            stack.append(node)
            on_stack.add(node)
            while work:
                current, children = work[-1]
                advanced = False
                for child in children:
                    if child not in index_of:
                        index_of[child] = low[child] = counter[0]
                        counter[0] += 1
                        stack.append(child)
                        on_stack.add(child)
                        work.append((child, iter(self.needs(child))))
                        advanced = True
                        break
                    if child in on_stack:
                        low[current] = min(low[current], index_of[child])
                if advanced:
                    continue
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[current])
                if low[current] == index_of[current]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == current:
                            break
                    groups.append(tuple(sorted(group)))

        for library in self.needs(path):
            if library not in index_of:
                visit(library)
        return [group for group in groups if path not in group]


# ---------------------------------------------------------------------------------------------
# Memory files and loading
# ---------------------------------------------------------------------------------------------


class _MemoryFiles:
    """Creates the files shared objects are loaded from: `memfd_create` (with MFD_NOEXEC_SEAL
    where the kernel knows it: it forbids only `execve`, and is the one choice every
    `vm.memfd_noexec` level accepts), else an unnamed O_TMPFILE in the first of
    `_TMPFILE_DIRECTORIES` that is writable and not mounted `noexec`. The first way that works is
    kept for the rest of the run. None of these files is ever closed: a closed descriptor's
    number is reused, and `dlopen` of the same `/proc/self/fd/N` path would then return the
    library loaded before."""

    def __init__(self):
        self._way = None
        self._impossible = None
        self.kept = []

    def _memfd(self, name, flags):
        return os.memfd_create(name[:240], flags)

    def create(self, name):
        """A new file for shared object `name`; BootstrapError when no way works (decided at
        the first call, for the whole run)."""
        if self._impossible is not None:
            raise BootstrapError(self._impossible)
        if self._way is None:
            fd = self._first_way(name)
        else:
            fd = self._way(name)
        self.kept.append(fd)
        return fd

    def _first_way(self, name):
        attempts = []
        memfd_create = getattr(os, "memfd_create", None)
        if memfd_create is None:
            attempts.append("memfd_create: not in this Python's os module")
        else:
            sealed = _MFD_CLOEXEC if _PLATFORM_IS_FREEBSD else _MFD_CLOEXEC | _MFD_NOEXEC_SEAL
            try:
                fd = self._memfd(name, sealed)
                self._way = lambda name: self._memfd(name, sealed)
                return fd
            except OSError as error:
                attempts.append("memfd_create(MFD_NOEXEC_SEAL): %s" % error.strerror)
                if error.errno == 22 and sealed != _MFD_CLOEXEC:  # EINVAL: a kernel before 6.3
                    try:
                        fd = self._memfd(name, _MFD_CLOEXEC)
                        self._way = lambda name: self._memfd(name, _MFD_CLOEXEC)
                        return fd
                    except OSError as error:
                        attempts.append("memfd_create: %s" % error.strerror)
        for directory in _TMPFILE_DIRECTORIES:
            if directory.startswith("$"):
                directory = os.environ.get(directory[1:])
                if not directory:
                    continue
            fd = self._tmpfile(directory, attempts)
            if fd is not None:
                self._way = lambda name, directory=directory: self._tmpfile(directory, None)
                return fd
        self._impossible = "no way to hold shared objects in memory on this host (%s)" % "; ".join(
            attempts
        )
        raise BootstrapError(self._impossible)

    def _tmpfile(self, directory, attempts):
        """An unnamed file in `directory`; None (and why, in `attempts`) when it cannot be had
        there. Once chosen (`attempts` is None), a failure is an error."""
        try:
            if os.statvfs(directory).f_flag & getattr(os, "ST_NOEXEC", 8):
                if attempts is None:
                    raise BootstrapError("O_TMPFILE in %s: mounted noexec" % directory)
                attempts.append("O_TMPFILE in %s: mounted noexec" % directory)
                return None
            flags = os.O_TMPFILE | os.O_RDWR | getattr(os, "O_CLOEXEC", 0)
            return os.open(directory, flags, 0o600)
        except (OSError, AttributeError) as error:
            reason = "O_TMPFILE in %s: %s" % (directory, getattr(error, "strerror", None) or error)
            if attempts is None:
                raise BootstrapError(reason)
            attempts.append(reason)
            return None


class _PageSharing:
    """Maps the code of large shared objects from the archive instead of copying it, as
    pyferry's executables do (docs/architecture.md, "Code mapped from the executable").

    pyferry stores shared objects uncompressed and page-aligned, and gives each large one a
    load plan: the page ranges of its read-only segments that the dynamic loader does not read
    while loading (`mapped`), and its constructors. Those ranges stay holes in the memory file;
    the constructors' dynamic-section tags are overwritten there with DT_LOOS, which the loader
    skips, so `dlopen` runs no code that is not there yet. Once it has returned, the ranges are
    mapped at their addresses from the archive (`MAP_FIXED`, same protection), then the
    constructors run, `DT_INIT` first then `DT_INIT_ARRAY`, with (argc, argv, envp) as glibc
    calls them. If the mapping fails (the archive on a `noexec` mount), the holes are filled in
    the memory file instead, which the loader's mapping then shows. Needs `ctypes`, imported
    only for the first planned object; without it, objects are copied whole."""

    _DT_LOOS = (0x6000000D).to_bytes(8, "little")
    _RTLD_NOLOAD = 4
    _RTLD_DI_LINKMAP = 2
    _PROT_READ, _PROT_EXEC = 1, 4
    _MAP_PRIVATE, _MAP_FIXED = 0x02, 0x10

    def __init__(self, plans):
        self.plans = plans or {}
        self._libc = None
        self._failed = False
        self._keep = []

    def plan(self, path):
        if self._failed or not sys.platform.startswith("linux"):
            return None
        return self.plans.get(path)

    def _c(self):
        if self._libc is None:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.dlopen.restype = ctypes.c_void_p
            libc.dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
            libc.dlinfo.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
            libc.dlclose.argtypes = [ctypes.c_void_p]
            libc.mmap.restype = ctypes.c_void_p
            libc.mmap.argtypes = [
                ctypes.c_void_p,
                ctypes.c_size_t,
                ctypes.c_int,
                ctypes.c_int,
                ctypes.c_int,
                ctypes.c_long,
            ]
            self._ctypes = ctypes
            self._libc = libc
        return self._libc

    @staticmethod
    def copy_ranges(size, plan):
        """The byte ranges of the object to copy: all but the planned holes."""
        ranges, at = [], 0
        for start, end in plan["mapped"]:
            if start > at:
                ranges.append((at, start))
            at = max(at, end)
        if at < size:
            ranges.append((at, size))
        return ranges

    def hide_constructors(self, fd, plan):
        for offset in plan.get("hidden_init_tags", ()):
            os.pwrite(fd, self._DT_LOOS, offset)

    def reveal_constructors(self, fd, path, loader):
        """Puts back the tags `hide_constructors` overwrote (for CPython's own `dlopen` to
        report the loader's real error on a whole object)."""
        for offset in self.plans[path].get("hidden_init_tags", ()):
            loader.fill_ranges(fd, path, [(offset, offset + 8)])

    def _bias(self, path):
        libc, ctypes = self._c(), self._ctypes
        handle = libc.dlopen(path.encode(), os.RTLD_NOW | self._RTLD_NOLOAD)
        if not handle:
            return None
        try:
            link_map = ctypes.c_void_p()
            if libc.dlinfo(handle, self._RTLD_DI_LINKMAP, ctypes.byref(link_map)) != 0:
                return None
            return ctypes.c_size_t.from_address(link_map.value).value
        finally:
            libc.dlclose(handle)

    def after_dlopen(self, loader, path, fd, plan):
        """Maps the planned ranges of the object just loaded from `fd` and runs its
        constructors; fills the holes instead when mapping is refused."""
        bias = self._bias(_descriptor_path(fd))
        if bias is None:
            loader.fill_ranges(fd, path, [tuple(pair) for pair in plan["mapped"]])
            raise ImportError("`%s` was loaded, but where cannot be told (dlinfo)" % path, path=path)
        segments = _load_segments(lambda offset, length: os.pread(fd, length, offset))
        start_in_archive = loader.archive.data_position(path)[0]
        libc = self._c()
        failed = start_in_archive % 4096 != 0
        for start, end in plan["mapped"]:
            if failed:
                break
            segment = next(
                (
                    s
                    for s in segments
                    if s[0] & ~4095 <= start and end <= (s[0] + s[2] + 4095) & ~4095
                ),
                None,
            )
            if segment is None:
                failed = True
                break
            offset, address, _, flags = segment
            protection = self._PROT_READ | (self._PROT_EXEC if flags & 1 else 0)
            target = bias + address + (start - offset)
            mapped = libc.mmap(
                target,
                end - start,
                protection,
                self._MAP_PRIVATE | self._MAP_FIXED,
                loader.archive.fd,
                start_in_archive + start,
            )
            if mapped != target:
                failed = True
        if failed:
            # The loader's mapping of the memory file shows whatever is written into it now.
            loader.fill_ranges(fd, path, [tuple(pair) for pair in plan["mapped"]])
            self._failed = True
        loader.with_holes.discard(fd)
        self._run_constructors(bias, plan)

    def _run_constructors(self, bias, plan):
        ctypes = self._ctypes
        constructor = ctypes.CFUNCTYPE(
            None, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_char_p)
        )
        arguments = [os.fsencode(argument) for argument in getattr(sys, "orig_argv", sys.argv)]
        argv = (ctypes.c_char_p * (len(arguments) + 1))(*arguments, None)
        environment = [b"%s=%s" % pair for pair in os.environb.items()]
        envp = (ctypes.c_char_p * (len(environment) + 1))(*environment, None)
        self._keep.append((argv, envp))
        addresses = []
        if "init" in plan:
            addresses.append(bias + plan["init"])
        if "init_array" in plan:
            array, count = plan["init_array"]
            entries = (ctypes.c_size_t * count).from_address(bias + array)
            addresses.extend(entry for entry in entries if entry not in (0, 2**64 - 1, 2**32 - 1))
        for address in addresses:
            constructor(address)(len(arguments), argv, envp)


def _load_segments(read_at):
    """(offset, address, file size, flags) of each PT_LOAD segment of a little-endian ELF64."""
    import struct

    header = read_at(0, 64)
    program_offset, = struct.unpack_from("<Q", header, 0x20)
    entry_size, count = struct.unpack_from("<HH", header, 0x36)
    table = read_at(program_offset, entry_size * count)
    segments = []
    for index in range(count):
        kind, flags, offset, address, _, file_size = struct.unpack_from(
            "<IIQQQQ", table, index * entry_size
        )
        if kind == 1:
            segments.append((offset, address, file_size, flags))
    return segments


def _descriptor_path(fd):
    if _PLATFORM_IS_FREEBSD:
        return "/dev/fd/%d" % fd
    return "/proc/self/fd/%d" % fd


class _Loader:
    """Loads shared objects of the archive from memory files, once each, dependencies first.

    Libraries are opened with `_imp.create_dynamic`: CPython `dlopen`s the file with
    `sys.getdlopenflags()`, then finds no `PyInit_*` function and raises; the library stays
    loaded (CPython never `dlclose`s), which is all a library needs, and `ctypes` (an extension
    of its own, with libffi) is not needed. glibc then satisfies the DT_NEEDED entries of
    whatever is loaded next by matching the SONAMEs of loaded objects."""

    _NO_INIT_FUNCTION = "does not define module export function"

    def __init__(self, archive, graph, load_plans=None):
        self.archive = archive
        self.graph = graph
        self.sharing = _PageSharing(load_plans)
        self.with_holes = set()  # memory files filled with their load plan's holes
        self.memory = _MemoryFiles()
        self.loaded = set()
        self.lock = _thread.RLock() if _thread else None
        self._counter = 0
        # Memory files filled ahead of their import by `prefetch`: path -> [done lock, fd];
        # `_claimed`: the objects the importing threads took (or made) memory files for. Both
        # change under `_slots`, so no object is ever copied twice.
        self._prefetched = {}
        self._claimed = set()
        self._slots = _thread.allocate_lock() if _thread else None
        self._prefetching = set()
        if _thread and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._forget_unfinished_prefetches)
            # No fork between a `dlopen` and the mapping of the object's code (a child would
            # keep the holes): fork waits for the loader's lock.
            os.register_at_fork(
                before=self.lock.acquire,
                after_in_parent=self.lock.release,
                after_in_child=self.lock.release,
            )

    def _forget_unfinished_prefetches(self):
        """In a forked child, a copy the parent's prefetch thread had not finished never will:
        the child makes its own. (The slots' lock may have been held by that thread: a new one.)"""
        self._slots = _thread.allocate_lock()
        for path, slot in list(self._prefetched.items()):
            if slot[1] is None:
                del self._prefetched[path]

    def prefetch(self, package):
        """Starts copying, on a thread of its own, the shared objects that `package`'s extension
        modules will need: the libraries they link (cycles excepted) and those extension modules
        themselves. The importing thread meanwhile runs the package's Python code; when it
        reaches one of them, the copy is done or under way (it waits for it), never done twice.
        `sendfile` runs without the GIL."""
        if _thread is None or package in self._prefetching:
            return
        self._prefetching.add(package)
        prefix = package + "/"
        if not any(name.startswith(prefix) and _is_shared_object(name) for name in self.graph.shared_objects()):
            return
        try:
            _thread.start_new_thread(self._prefetch_package, (prefix,))
        except RuntimeError:
            pass

    def _prefetch_package(self, prefix):
        try:
            for extension in self.graph.shared_objects():
                if not extension.startswith(prefix) or not self.graph.needs(extension):
                    continue
                for group in self.graph.groups_in_load_order(extension):
                    if len(group) == 1 and group[0] not in self.graph.needs(group[0]):
                        self._prefetch_one(group[0])
                self._prefetch_one(extension)
        except BaseException:  # the import retries and reports it where it belongs
            pass

    def _prefetch_one(self, path):
        with self._slots:
            if path in self._claimed or path in self._prefetched:
                return
            done = _thread.allocate_lock()
            done.acquire()
            slot = [done, None]
            self._prefetched[path] = slot
        try:
            fd = self.memory.create(path.rpartition("/")[2])
            self.fill(fd, path)
            slot[1] = fd
        except BaseException:
            self._prefetched.pop(path, None)
        finally:
            done.release()

    def filled(self, path):
        """A memory file holding entry `path`: the one the prefetch thread filled (waiting for it
        if needed), else a new one."""
        if self._slots:
            with self._slots:
                self._claimed.add(path)
                slot = self._prefetched.pop(path, None)
        else:
            slot = None
        if slot is not None:
            slot[0].acquire()
            slot[0].release()
            if slot[1] is not None:
                return slot[1]
        fd = self.memory_file(path)
        self.fill(fd, path)
        return fd

    def memory_file(self, path):
        """A new memory file for entry `path`, named after it (as `/proc/PID/maps` shows it)."""
        try:
            return self.memory.create(path.rpartition("/")[2])
        except BootstrapError as error:
            _fail("cannot load `%s` from memory: %s" % (path, error))

    def fill(self, fd, path, patches=()):
        """Copies entry `path` into `fd` (by the kernel, `sendfile`, when it is stored), then
        writes `patches` ((offset, bytes)) over it. An object with a load plan gets all but
        its planned ranges (holes), and its constructors hidden."""
        start, compressed_size, size, compression = self.archive.data_position(path)
        plan = self.sharing.plan(path) if compression == _STORED and not patches else None
        if plan is not None:
            os.ftruncate(fd, size)
            self.fill_ranges(fd, path, self.sharing.copy_ranges(size, plan))
            self.sharing.hide_constructors(fd, plan)
            self.with_holes.add(fd)
        elif compression == _STORED:
            self.fill_ranges(fd, path, [(0, size)])
        else:
            view = memoryview(self.archive.read(path))
            while view:
                view = view[os.write(fd, view) :]
        for offset, replacement in patches:
            os.pwrite(fd, replacement, offset)

    def fill_ranges(self, fd, path, ranges):
        """Copies the `ranges` ((start, end), in the object's bytes) of stored entry `path`
        into the same places of `fd`."""
        start = self.archive.data_position(path)[0]
        for begin, end in ranges:
            os.lseek(fd, begin, os.SEEK_SET)
            at = begin
            while at < end:
                count = os.sendfile(fd, self.archive.fd, start + at, end - at)
                if count <= 0:
                    raise ImportError("`%s`: the archive ended early" % path, path=path)
                at += count

    def _planned(self, path, fd):
        """The load plan `fd` was filled with (holes in it), if any."""
        return self.sharing.plans.get(path) if fd in self.with_holes else None

    def open_library(self, path, fd, needed_by):
        """`dlopen`s the library in `fd`; an ImportError with the loader's message otherwise."""
        self._counter += 1
        name = "_pyferry_library_%d" % self._counter
        if _PLATFORM_IS_FREEBSD and not _fd_path_works(fd):
            _freebsd_fdlopen(fd, path)
            return
        spec = _ModuleSpec(name, None, origin=_descriptor_path(fd))
        plan = self._planned(path, fd)
        try:
            _imp.create_dynamic(spec)
        except ImportError as error:
            if self._NO_INIT_FUNCTION in str(error):
                if plan is not None:
                    self.sharing.after_dlopen(self, path, fd, plan)
                return
            if plan is not None:
                # The loader's own error, with the object whole again.
                self.fill_ranges(fd, path, [tuple(pair) for pair in plan["mapped"]])
                self.sharing.reveal_constructors(fd, path, self)
                self.with_holes.discard(fd)
            raise ImportError(
                "cannot load `%s` (needed by `%s`) from memory: %s" % (path, needed_by, error),
                path=path,
            ) from None
        raise ImportError("`%s` is an extension module, not a library" % path, path=path)

    def load_group(self, group, needed_by):
        """Loads `group`: one library, or the members of a cycle. A cycle cannot be loaded one
        member at a time (each one's DT_NEEDED names another that is not loaded yet), so every
        member gets its memory file first, with the DT_NEEDED strings that name other members
        overwritten by those members' `/proc/self/fd/N` paths (a name with a slash is opened as a
        path); one `dlopen` of the first member then loads them all, exactly as the dynamic loader
        loads such a cycle from a directory: relocations and constructors in its own order."""
        if len(group) == 1 and group[0] not in self.graph.needs(group[0]):
            fd = self.filled(group[0])
            self.open_library(group[0], fd, needed_by)
            self.loaded.add(group[0])
            return
        members = set(group)
        descriptors = {member: self.memory_file(member) for member in group}
        for member in group:
            patches = []
            for library in self.graph.needs(member):
                if library not in members:
                    continue
                position = self.graph.needed_name(member, library)
                replacement = _descriptor_path(descriptors[library]).encode()
                if position is None or len(replacement) > position[1]:
                    raise ImportError(
                        "cannot load the cycle of libraries %s (needed by `%s`): the name of `%s` "
                        "in `%s` cannot be replaced by a path" % (", ".join(group), needed_by, library, member)
                    )
                patches.append((position[0], replacement + b"\0" * (position[1] - len(replacement))))
            self.fill(descriptors[member], member, patches)
        self.open_library(group[0], descriptors[group[0]], needed_by)
        self.loaded.update(group)

    def load_libraries_of(self, path, module):
        """Loads every library of the archive that `path` needs, dependencies first."""
        if self.lock:
            self.lock.acquire()
        try:
            for group in self.graph.groups_in_load_order(path):
                if not all(member in self.loaded for member in group):
                    self.load_group(group, module)
        finally:
            if self.lock:
                self.lock.release()

    def extension_file(self, path):
        """A memory file holding extension module `path`, for `_imp.create_dynamic`. One with
        a load plan is loaded first as a library (its code mapped, its constructors run), so
        that CPython's `dlopen` of the same path finds it loaded and only calls `PyInit_*`."""
        fd = self.filled(path)
        if self._planned(path, fd) is not None:
            if self.lock:
                self.lock.acquire()
            try:
                self.open_library(path, fd, path)
            except ImportError:
                pass  # CPython's own dlopen reports it
            finally:
                if self.lock:
                    self.lock.release()
        return fd


def _fd_path_works(fd):
    """Whether `/dev/fd/N` names `fd` itself (FreeBSD with fdescfs mounted on /dev/fd)."""
    try:
        left, right = os.stat(_descriptor_path(fd)), os.fstat(fd)
    except OSError:
        return False
    return (left.st_dev, left.st_ino) == (right.st_dev, right.st_ino)


def _freebsd_fdlopen(fd, path):
    """FreeBSD without fdescfs: `fdlopen(3)` through ctypes. UNTESTED (written for FreeBSD 13+,
    never run): see docs/pyz.md."""
    import ctypes

    libc = ctypes.CDLL(None)
    libc.fdlopen.restype = ctypes.c_void_p
    libc.fdlopen.argtypes = [ctypes.c_int, ctypes.c_int]
    handle = libc.fdlopen(fd, os.RTLD_NOW | os.RTLD_LOCAL)
    if not handle:
        libc.dlerror.restype = ctypes.c_char_p
        message = (libc.dlerror() or b"unknown error").decode("utf-8", "replace")
        raise ImportError("cannot load `%s` from memory: %s" % (path, message), path=path)
    return handle, libc


def _freebsd_create_module(fd, spec, path):
    """FreeBSD without fdescfs: load an extension module with `fdlopen` and call its
    `PyInit_<name>` as CPython's importer would (single- and multi-phase initialization).
    UNTESTED (see docs/pyz.md)."""
    import ctypes

    handle, libc = _freebsd_fdlopen(fd, path)
    short = spec.name.rpartition(".")[2]
    try:
        symbol = "PyInit_" + short.encode("ascii").decode()
    except UnicodeEncodeError:
        symbol = "PyInitU_" + short.encode("punycode").decode().replace("-", "_")
    libc.dlsym.restype = ctypes.c_void_p
    libc.dlsym.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    address = libc.dlsym(handle, symbol.encode())
    if not address:
        raise ImportError("dynamic module does not define module export function (%s)" % symbol,
                          name=spec.name, path=path)
    result = ctypes.PYFUNCTYPE(ctypes.py_object)(address)()
    if type(result).__name__ != "moduledef":
        return result  # single-phase initialization: the module itself
    api = ctypes.pythonapi
    api.PyModule_FromDefAndSpec2.restype = ctypes.py_object
    api.PyModule_FromDefAndSpec2.argtypes = [ctypes.py_object, ctypes.py_object, ctypes.c_int]
    module = api.PyModule_FromDefAndSpec2(result, spec, sys.api_version)
    module.__pyferry_definition__ = result
    return module


# ---------------------------------------------------------------------------------------------
# Finding and loading modules
# ---------------------------------------------------------------------------------------------

_ModuleSpec = _bootstrap.ModuleSpec
_MAGIC_NUMBER = _bootstrap_external.MAGIC_NUMBER

_EXTENSION_SUFFIXES = tuple(_imp.extension_suffixes())


class _PythonLoader:
    """Loads a pure module of the archive: its `.pyc` when it was compiled for this interpreter,
    else its `.py`."""

    def __init__(self, importer, fullname, base, is_package, has_source, has_bytecode):
        self._importer = importer
        self._fullname = fullname
        self._base = base  # archive name without suffix: `pkg/mod` or `pkg/__init__`
        self._is_package = is_package
        self._has_source = has_source
        self._has_bytecode = has_bytecode

    @property
    def _archive(self):
        return self._importer.archive

    def _origin(self):
        suffix = ".py" if self._has_source or not self._has_bytecode else ".pyc"
        return self._archive.path + "/" + self._base + suffix

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        code = self.get_code(module.__name__)
        exec(code, module.__dict__)

    def is_package(self, fullname):
        return self._is_package

    def get_filename(self, fullname=None):
        return self._origin()

    def get_code(self, fullname=None):
        origin = self._origin()
        if self._has_bytecode:
            data = self._archive.read(self._base + ".pyc")
            if data[:4] == _MAGIC_NUMBER and len(data) >= 16:
                try:
                    code = marshal.loads(memoryview(data)[16:])
                except (ValueError, EOFError, TypeError) as error:
                    raise ImportError(
                        "`%s.pyc` in `%s` is damaged (%s)" % (self._base, self._archive.path, error),
                        name=self._fullname,
                        path=origin,
                    ) from None
                _imp._fix_co_filename(code, origin)
                return code
            if not self._has_source:
                raise ImportError(
                    "`%s.pyc` was compiled for another Python version than this one (%d.%d)"
                    % (self._base, sys.version_info[0], sys.version_info[1]),
                    name=self._fullname,
                    path=origin,
                )
        source = self._archive.read(self._base + ".py")
        return compile(source, origin, "exec", dont_inherit=True)

    def get_source(self, fullname=None):
        if not self._has_source:
            return None
        return _bootstrap_external.decode_source(self._archive.read(self._base + ".py"))

    def get_data(self, path):
        return self._importer.get_data(path)

    def get_resource_reader(self, fullname=None):
        directory = self._base.rpartition("/")[0]
        return _resource_reader(self._archive.path, directory)


class _ExtensionLoader:
    """Loads an extension module of the archive from a memory file, after the libraries of the
    archive it needs; `__file__` is its path inside the archive."""

    def __init__(self, importer, fullname, entry):
        self._importer = importer
        self._fullname = fullname
        self._entry = entry

    def create_module(self, spec):
        loader = self._importer.loader
        loader.load_libraries_of(self._entry, spec.name)
        fd = loader.extension_file(self._entry)
        if _PLATFORM_IS_FREEBSD and not _fd_path_works(fd):
            module = _freebsd_create_module(fd, spec, self._entry)
        else:
            inner = _ModuleSpec(spec.name, self, origin=_descriptor_path(fd))
            inner.submodule_search_locations = spec.submodule_search_locations
            module = _imp.create_dynamic(inner)
        try:
            module.__file__ = spec.origin
        except AttributeError:
            pass
        return module

    def exec_module(self, module):
        definition = getattr(module, "__pyferry_definition__", None)
        if definition is not None:  # FreeBSD's fdlopen path, multi-phase: untested
            import ctypes

            ctypes.pythonapi.PyModule_ExecDef.argtypes = [ctypes.py_object, ctypes.py_object]
            if ctypes.pythonapi.PyModule_ExecDef(module, definition) != 0:
                raise ImportError("initializing `%s` failed" % module.__name__)
            return
        _imp.exec_dynamic(module)

    def is_package(self, fullname):
        return self._entry.rpartition("/")[2].startswith("__init__.")

    def get_filename(self, fullname=None):
        return self._importer.archive.path + "/" + self._entry

    def get_code(self, fullname=None):
        return None

    def get_source(self, fullname=None):
        return None

    def get_data(self, path):
        return self._importer.get_data(path)

    def get_resource_reader(self, fullname=None):
        return _resource_reader(self._importer.archive.path, self._entry.rpartition("/")[0])


def _resource_reader(archive_path, directory):
    """`importlib.resources` for a package of the archive: `zipfile.Path` over its directory."""
    try:
        from importlib.resources.abc import TraversableResources
    except ImportError:  # 3.9, 3.10
        from importlib.abc import TraversableResources

    class ArchiveResources(TraversableResources):
        def files(self):
            import zipfile

            return zipfile.Path(archive_path, directory + "/" if directory else "")

    return ArchiveResources()


class _DirectoryImporter:
    """The path-entry finder for one directory of the archive (`sys.path_hooks` makes one per
    path entry inside the archive: the archive itself, a package's `__path__`)."""

    def __init__(self, archive_importer, directory):
        self._root = archive_importer
        self._prefix = directory + "/" if directory else ""
        self._directory = directory

    @property
    def archive(self):
        return self._root.archive

    @property
    def loader(self):
        return self._root.loader

    def find_spec(self, fullname, target=None):
        entries = self.archive.entries
        tail = fullname.rpartition(".")[2]
        base = self._prefix + tail
        location = self.archive.path + "/" + base
        init = base + "/__init__"
        has_source, has_bytecode = init + ".py" in entries, init + ".pyc" in entries
        if has_source or has_bytecode:
            if not self._prefix:
                self.loader.prefetch(tail)
            return self._python_spec(fullname, init, True, has_source, has_bytecode, location)
        for suffix in _EXTENSION_SUFFIXES:
            if init + suffix in entries:
                return self._extension_spec(fullname, init + suffix, location)
        for suffix in _EXTENSION_SUFFIXES:
            if base + suffix in entries:
                return self._extension_spec(fullname, base + suffix, None)
        has_source, has_bytecode = base + ".py" in entries, base + ".pyc" in entries
        if has_source or has_bytecode:
            return self._python_spec(fullname, base, False, has_source, has_bytecode, None)
        if base in self.archive.directories:
            spec = _ModuleSpec(fullname, None, is_package=True)
            spec.submodule_search_locations = [location]
            return spec
        return None

    def _python_spec(self, fullname, base, is_package, has_source, has_bytecode, location):
        loader = _PythonLoader(self, fullname, base, is_package, has_source, has_bytecode)
        spec = _ModuleSpec(fullname, loader, origin=loader.get_filename(), is_package=is_package)
        spec.has_location = True
        if is_package:
            spec.submodule_search_locations = [location]
        return spec

    def _extension_spec(self, fullname, entry, location):
        loader = _ExtensionLoader(self, fullname, entry)
        spec = _ModuleSpec(fullname, loader, origin=loader.get_filename(), is_package=bool(location))
        spec.has_location = True
        if location:
            spec.submodule_search_locations = [location]
        return spec

    def get_data(self, path):
        prefix = self.archive.path + "/"
        if not path.startswith(prefix) or path[len(prefix) :] not in self.archive.entries:
            raise OSError(2, "No such file in the archive", path)
        return self.archive.read(path[len(prefix) :])

    def invalidate_caches(self):
        pass

    def iter_modules(self, prefix=""):
        """What `pkgutil.iter_modules` lists for this directory: (name, is package)."""
        seen = set()
        start = len(self._prefix)
        for name in sorted(self.archive.entries):
            if not name.startswith(self._prefix):
                continue
            rest = name[start:]
            head, slash, tail = rest.partition("/")
            if slash:
                if tail.startswith("__init__.") and head.isidentifier() and head not in seen:
                    seen.add(head)
                    yield prefix + head, True
                continue
            module = None
            for suffix in (".py", ".pyc") + _EXTENSION_SUFFIXES:
                if rest.endswith(suffix):
                    module = rest[: -len(suffix)]
                    break
            if module and module != "__init__" and module.isidentifier() and module not in seen:
                seen.add(module)
                yield prefix + module, False


class _ArchiveImporter:
    """Everything one archive serves: the index, the shared-object loader, the path hook."""

    def __init__(self, archive, root, libraries=None, needed_names=None, load_plans=None):
        self.archive = archive
        self.loader = _Loader(archive, _LibraryGraph(archive, libraries, needed_names), load_plans)
        self.root = root
        self.entry = archive.path + ("/" + root if root else "")

    def path_hook(self, path):
        path = path.rstrip("/")
        if path == self.entry:
            return _DirectoryImporter(self, self.root)
        if path.startswith(self.entry + "/"):
            return _DirectoryImporter(self, path[len(self.archive.path) + 1 :])
        raise ImportError("not inside %s" % self.entry, path=path)


_installed = {}


def _caller_archive():
    """The archive this module was imported from (by `zipimport`, or by pyferry's importer)."""
    loader = globals().get("__loader__")
    archive = getattr(loader, "archive", None)
    if archive is None and isinstance(loader, _PythonLoader):
        archive = loader._archive.path
    if archive is None:
        main = sys.modules.get("__main__")
        archive = getattr(getattr(main, "__loader__", None), "archive", None)
    if archive is None:
        raise BootstrapError(
            "cannot tell which archive to serve: this module was not imported from a zip; "
            "pass install(archive=PATH)"
        )
    return archive


def install(archive=None, root="", libraries=None, needed_names=None, load_plans=None):
    """Makes every module of the zip `archive` importable, extension modules included.

    `archive`: the zip (default: the one this module was imported from). `root`: the directory
    inside it that holds the import tree (default: its root, as for `python -m zipapp`); its path
    goes first on `sys.path` if it is not there. `libraries` and `needed_names` are pyferry's
    analysis of the shared objects (written by `pyferry pack --format pyz`); without them the
    objects' ELF headers are read when the first extension module is imported. `load_plans`
    (pyferry's too) lets the code of large objects be mapped from the archive, not copied.

    Installed once per archive; later calls return the same importer."""
    archive = archive or _caller_archive()
    key = os.path.abspath(archive) + "/" + root
    if key in _installed:
        return _installed[key]
    importer = _ArchiveImporter(
        _Archive(archive), root.strip("/"), libraries, needed_names, load_plans
    )
    entry = importer.entry
    sys.path_hooks.insert(0, importer.path_hook)
    # The zipimporter CPython made for the archive to run __main__.py would keep serving it.
    for path in list(sys.path_importer_cache):
        if path == archive or path == entry or path.startswith(entry + "/") or (
            os.path.abspath(path) == importer.archive.path
        ):
            del sys.path_importer_cache[path]
    if entry not in sys.path:
        sys.path.insert(0, entry)
    _installed[key] = importer
    return importer


# ---------------------------------------------------------------------------------------------
# Running a pyz written by pyferry
# ---------------------------------------------------------------------------------------------


def _run_entry_point(entry_point):
    """Runs `module` like `python -m module`, or calls `module:function` and exits with its
    result (the console-script contract). `__pyferry_main__` is the application's own
    `__main__.py`, stored under that name (the archive's `__main__.py` is the start-up)."""
    module, _, function = entry_point.partition(":")
    if not function:
        import runpy

        main = type(sys)("__main__")
        sys.modules["__main__"] = main
        return runpy._run_module_as_main(module, alter_argv=False)
    __import__(module)
    target = sys.modules[module]
    for attribute in function.split("."):
        target = getattr(target, attribute)
    sys.exit(target())


def _print_exception(kind, value, trace):
    import traceback

    traceback.print_exception(kind, value, trace)


def main(config):
    """The start of a pyz written by `pyferry pack --format pyz`, called by its `__main__.py`
    once the interpreter passed the tag check."""
    try:
        install(
            config.get("archive"),
            libraries=config.get("libraries"),
            needed_names=config.get("needed_names"),
            load_plans=config.get("load_plans"),
        )
    except BootstrapError as error:
        _fail(str(error))
    if sys.excepthook is sys.__excepthook__ and sys.version_info < (3, 13):
        # Before 3.13 the built-in hook prints source lines from real files only; the
        # `traceback` module asks the modules' loaders, which read them from the archive.
        sys.excepthook = _print_exception
    scripts = config.get("scripts") or {}
    entry_point = config.get("entry_point") or ""
    if scripts:
        invoked = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
        for candidate in (invoked, invoked[:-4] if invoked.endswith(".pyz") else None):
            if candidate in scripts:
                entry_point = scripts[candidate]
                break
        else:
            if not entry_point:
                sys.stderr.write(
                    "%s: run it under one of the names of its scripts (a symbolic link: "
                    "`ln -s %s NAME`): %s\n" % (invoked, invoked, ", ".join(sorted(scripts)))
                )
                raise SystemExit(2)
    return _run_entry_point(entry_point)
