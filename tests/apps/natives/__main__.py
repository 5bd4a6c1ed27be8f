"""Probe app for pyferry's native-extension tests: `app CHECK` runs one check and prints
results that the Rust test compares with known values. Every check imports real wheels."""

import sys

EXE = sys.executable


def virtual(module):
    """Whether a module's __file__ is its path inside the executable."""
    return module.__file__.startswith(EXE + "/") and "/proc/self/fd" not in module.__file__


def check_numpy():
    import numpy as np
    import numpy._core._multiarray_umath as umath

    matrix = np.array([[4.0, 1.0], [2.0, 3.0]])
    print("det", round(float(np.linalg.det(matrix)), 6))
    print("inv", np.linalg.inv(matrix).round(4).tolist())
    print("eig", sorted(np.linalg.eigvals(matrix).round(6).tolist()))
    print("fft", np.fft.fft([1.0, 2.0, 3.0, 4.0]).round(6).tolist())
    print("random", np.random.default_rng(42).integers(0, 1000, 4).tolist())
    print("matmul", float((np.arange(10000.0).reshape(100, 100) @ np.ones(100)).sum()))
    print("virtual", virtual(np), virtual(umath), umath.__spec__.origin == umath.__file__)


def check_orjson():
    import orjson

    print("orjson", orjson.dumps({"a": [1, 2.5, None, "é"]}).decode(), orjson.loads(b'{"x": 1}'), virtual(orjson.orjson) if hasattr(orjson, "orjson") else virtual(orjson))


def check_pydantic():
    import pydantic
    import pydantic_core

    class User(pydantic.BaseModel):
        name: str
        age: int

    print("model", User(name="ada", age="36").model_dump())
    try:
        User(name="ada", age="old")
    except pydantic.ValidationError as error:
        print("error", error.errors()[0]["type"], error.errors()[0]["loc"])
        print(str(error).splitlines()[0])
    print("core virtual", virtual(pydantic_core._pydantic_core))


def check_cryptography():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.x509.oid import NameOID
    import datetime

    key = bytes(range(32))
    nonce = bytes(12)
    aead = AESGCM(key)
    sealed = aead.encrypt(nonce, b"attack at dawn", b"header")
    print("aesgcm", sealed.hex()[:16], aead.decrypt(nonce, sealed, b"header"))
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pyferry.test")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
        .serial_number(42).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(private, hashes.SHA256())
    )
    parsed = x509.load_pem_x509_certificate(cert.public_bytes(serialization.Encoding.PEM))
    print("x509", parsed.subject.rfc4514_string(), parsed.serial_number)


def check_markupsafe():
    import markupsafe
    import markupsafe._speedups as speedups

    print("markupsafe", markupsafe.escape("<a href='x'>&</a>"), virtual(speedups))


def check_yaml():
    import yaml

    document = yaml.load("a: [1, 2]\nb: {c: héllo}\n", Loader=yaml.CLoader)
    print("yaml", yaml.__with_libyaml__, document, yaml.dump(document, Dumper=yaml.CDumper).strip().replace("\n", " | "))


def check_pillow():
    import io
    from PIL import Image, features

    image = Image.new("RGB", (32, 16), (200, 10, 30))
    results = []
    for fmt in ("PNG", "JPEG"):
        buffer = io.BytesIO()
        image.save(buffer, fmt)
        decoded = Image.open(io.BytesIO(buffer.getvalue()))
        decoded.load()
        pixel = decoded.getpixel((5, 5))
        results.append((fmt, decoded.size, pixel if fmt == "PNG" else all(abs(a - b) < 8 for a, b in zip(pixel, (200, 10, 30)))))
    print("pillow", results, features.check("jpg"), features.check("zlib"))


def check_shapely():
    import shapely
    from shapely.geometry import Point, Polygon

    square = Polygon([(0, 0), (2, 0), (2, 2), (0, 2)])
    print("shapely", square.area, square.contains(Point(1, 1)), round(Point(0, 0).buffer(1.0).area, 2), shapely.geos_version)


def check_mypyc():
    import charset_normalizer
    import charset_normalizer.md as md

    best = charset_normalizer.from_bytes("Bonjour, ceci est un texte en français, évidemment.".encode("cp1252")).best()
    print("mypyc", md.__file__.endswith(".so"), best.encoding if best else None)


def check_pybind11():
    import mapbox_earcut
    import numpy as np

    vertices = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float64)
    rings = np.array([4], dtype=np.uint32)
    print("pybind11", sorted(mapbox_earcut.triangulate_float64(vertices, rings).tolist()))


def check_stdlib():
    import asyncio, bz2, ctypes, decimal, hashlib, lzma, sqlite3, ssl, zoneinfo
    import _asyncio

    context = ssl.create_default_context()
    print("ssl", context.verify_mode == ssl.CERT_REQUIRED, context.cert_store_stats()["x509_ca"] > 0)
    connection = sqlite3.connect(":memory:")
    connection.execute("create table t (x)")
    connection.executemany("insert into t values (?)", [(1,), (2,), (3,)])
    print("sqlite3", connection.execute("select sum(x) from t").fetchone()[0])
    libc = ctypes.CDLL(None)
    print("ctypes", libc.abs(-5), ctypes.sizeof(ctypes.c_long))
    data = b"pyferry " * 100
    print("lzma", lzma.decompress(lzma.compress(data)) == data, "bz2", bz2.decompress(bz2.compress(data)) == data)
    print("decimal", decimal.Decimal(1) / decimal.Decimal(7))
    print("hashlib", hashlib.sha3_256(b"abc").hexdigest()[:16], hashlib.blake2b(b"abc").hexdigest()[:16])
    print("zoneinfo", zoneinfo.ZoneInfo("UTC").utcoffset(None))

    async def main():
        await asyncio.sleep(0)
        return "done"

    # The standard library's extension modules are built into the launcher.
    print("asyncio", asyncio.run(main()), type(asyncio.get_event_loop_policy()).__name__, _asyncio.__name__ in sys.builtin_module_names)


def check_maps():
    import numpy  # noqa: F401
    import numpy.linalg  # noqa: F401

    with open("/proc/self/maps") as maps:
        names = sorted({line.split("/memfd:")[1].split(" (deleted)")[0].strip() for line in maps if "/memfd:" in line})
    print("memfds", [name for name in names if "openblas" in name or "_multiarray_umath" in name or "gfortran" in name])


def check_nofile():
    with open("/proc/self/limits") as limits:
        for line in limits:
            if line.startswith("Max open files"):
                print("nofile", *line.split()[3:5])


def check_memfd_exec():
    import os

    try:
        os.close(os.memfd_create("probe", os.MFD_CLOEXEC | 0x0010))  # MFD_EXEC
        print("memfd_exec allowed")
    except PermissionError:
        print("memfd_exec refused")


def check_hwm():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                print("hwm", line.split()[1])


MEMFD_FIELDS = ("Rss", "Pss", "Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty")


def memfd_smaps(_task=None):
    """kB of each field, summed over this process's mappings of memory files."""
    import numpy

    numpy.linalg.inv(numpy.eye(3) * 2.0).sum()
    totals = dict.fromkeys(MEMFD_FIELDS, 0)
    in_memfd = False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            first = line.split(maxsplit=1)[0]
            if "-" in first and not first.endswith(":"):
                in_memfd = "/memfd:" in line
            elif in_memfd and first[:-1] in totals:
                totals[first[:-1]] += int(line.split()[1])
    return totals


def fork_pool(parent_imports):
    import json
    import multiprocessing

    if parent_imports:
        import numpy

        numpy.linalg.inv(numpy.eye(3) * 2.0)
    context = multiprocessing.get_context("fork")
    with context.Pool(8) as pool:
        results = pool.map(memfd_smaps, range(8), chunksize=1)
        pids = set(pool.map(_pid, range(64), chunksize=1))
    print("workers", len(pids) if len(pids) == 8 else sorted(pids))
    print("smaps", json.dumps(results))


def _pid(_task):
    import os
    import time

    time.sleep(0.01)
    return os.getpid()


def check_forkpool():
    fork_pool(parent_imports=True)


def check_forkpool_late():
    fork_pool(parent_imports=False)


def memory_files():
    """(name, size, bytes allocated) of each memory file this process holds."""
    import os

    files = []
    for fd in sorted(os.listdir("/proc/self/fd"), key=int):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("/memfd:"):
            stat = os.fstat(int(fd))
            files.append((target[len("/memfd:"):].replace(" (deleted)", ""), stat.st_size, stat.st_blocks * 512))
    return files


def check_sharing():
    """How much of numpy's two big objects stays in memory files once loaded and used, and
    whether their code is mapped from the executable."""
    import time

    import numpy

    assert float((numpy.arange(10000.0).reshape(100, 100) @ numpy.ones(100)).sum()) == 49995000.0
    time.sleep(0.5)  # the release thread gives pages back in the background
    for name, size, allocated in memory_files():
        if "openblas" in name or "_multiarray_umath" in name:
            print("kept", name.split("-")[0].split(".")[0], round(allocated / size, 2))
    with open("/proc/self/maps") as maps:
        executable_code = [line for line in maps if line.split()[1] == "r-xp" and line.rstrip().endswith(EXE)]
    print("code mappings of the executable", len(executable_code))


def check_holes():
    """How much of numpy's two big objects their memory files hold before they are loaded:
    the prefetch thread copies them at `find_spec`, leaving out what is mapped from the
    executable once loaded."""
    import importlib.util
    import time

    importlib.util.find_spec("numpy")  # starts the prefetch of numpy's libraries
    wanted = ("openblas", "_multiarray_umath")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(any(w in name for name, _, _ in memory_files()) for w in wanted):
        time.sleep(0.005)
    time.sleep(0.3)  # let the copies finish
    for name, size, allocated in memory_files():
        if any(w in name for w in wanted):
            print("before loading", name.split("-")[0].split(".")[0], round(allocated / size, 2))
    import numpy

    print("sum", float(numpy.linalg.inv(numpy.eye(50) * 2.0).sum()))


def check_forkorder():
    """A memory file made before a fork, loaded after it by the child, then by the parent:
    neither may give back pages the other still has to load."""
    import importlib.util
    import os
    import time

    importlib.util.find_spec("numpy")  # starts the prefetch of numpy's libraries
    deadline = time.monotonic() + 5
    # Wait for the extension module's memory file: the prefetch thread copies it without
    # loading it, so the child and the parent will each load it after the fork.
    while time.monotonic() < deadline and not any("_multiarray_umath" in name for name, _, _ in memory_files()):
        time.sleep(0.005)
    pid = os.fork()
    if pid == 0:
        import numpy

        os._exit(0 if float(numpy.linalg.inv(numpy.eye(50) * 2.0).sum()) == 25.0 else 3)
    _, status = os.waitpid(pid, 0)
    import numpy

    print("child", os.waitstatus_to_exitcode(status), "parent", float(numpy.linalg.inv(numpy.eye(50) * 2.0).sum()))


def check_fail():
    import orjson  # noqa: F401


if __name__ == "__main__":
    for name in sys.argv[1:]:
        globals()["check_" + name]()
