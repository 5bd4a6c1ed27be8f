"""Probe app for pyferry's pyz tests: `app.pyz CHECK...` runs checks and prints results that the
Rust test (tests/end_to_end/pyz.rs) compares with known values. Every check imports real
wheels, from the archive, through pyferry_bootstrap."""

import os
import sys

ARCHIVE = os.path.dirname(__file__)


def inside(module):
    """Whether a module's __file__ is its path inside the archive (never /proc/self/fd/N)."""
    return module.__file__.startswith(ARCHIVE + "/") and "/proc/" not in module.__file__


def check_numpy():
    import numpy as np
    import numpy._core._multiarray_umath as umath

    matrix = np.array([[4.0, 1.0], [2.0, 3.0]])
    print("det", round(float(np.linalg.det(matrix)), 6))
    print("inv", np.linalg.inv(matrix).round(4).tolist())
    print("fft", np.fft.fft([1.0, 2.0, 3.0, 4.0]).round(6).tolist())
    print("random", np.random.default_rng(42).integers(0, 1000, 4).tolist())
    print("matmul", float((np.arange(10000.0).reshape(100, 100) @ np.ones(100)).sum()))
    print("inside", inside(np), inside(umath), umath.__spec__.origin == umath.__file__)


def check_orjson():
    import orjson

    print("orjson", orjson.dumps({"a": [1, 2.5, None, "é"]}).decode(), orjson.loads(b'{"x": 1}'))


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
    print("core inside", inside(pydantic_core._pydantic_core))


def check_cryptography():
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives import hashes

    aead = AESGCM(bytes(range(32)))
    sealed = aead.encrypt(bytes(12), b"attack at dawn", b"header")
    print("aesgcm", sealed.hex()[:16], aead.decrypt(bytes(12), sealed, b"header"))
    digest = hashes.Hash(hashes.SHA256())
    digest.update(b"abc")
    print("sha256", digest.finalize().hex()[:16])


def check_pillow_text():
    """Pillow 13's FreeType needs HarfBuzz and HarfBuzz needs FreeType: a cycle of libraries."""
    from PIL import Image, ImageDraw, ImageFont, features

    font = ImageFont.load_default(size=24)
    image = Image.new("L", (160, 40))
    ImageDraw.Draw(image).text((4, 4), "pyferry", font=font, fill=255)
    print("pillow", type(font).__name__, features.version("freetype2"), image.getbbox())


def check_data():
    import importlib.metadata
    import importlib.resources
    import pkgutil

    import pyz_probe_data

    print("resources", importlib.resources.files("pyz_probe_data").joinpath("greeting.txt").read_text().strip())
    print("get_data", pkgutil.get_data("pyz_probe_data", "greeting.txt").decode().strip())
    packed = sorted(
        dist.metadata["Name"]
        for dist in importlib.metadata.distributions()
        if str(dist.locate_file("")).startswith(ARCHIVE)
    )
    print("metadata", importlib.metadata.version("orjson"), packed)
    print("iter_modules", sorted(name for _, name, _ in pkgutil.iter_modules(pyz_probe_data.__path__)),
          "pyz_probe_data" in {name for _, name, _ in pkgutil.iter_modules()})
    try:
        pyz_probe_data.fail()
    except ValueError:
        import traceback

        print("traceback", traceback.format_exc().splitlines()[-2].strip())


def check_backing():
    """What the loaded native code is mapped from: memory files named after their objects, or
    unnamed temporary files (the fallback); never a file of the archive's directory."""
    import numpy  # noqa: F401

    backings = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(None, 5)
            if len(fields) == 6 and "x" in fields[1] and fields[5].rstrip().endswith("(deleted)"):
                path = fields[5].rstrip()[: -len(" (deleted)")]
                backings.add("memfd" if path.startswith("/memfd:") else os.path.dirname(path))
    with open("/proc/self/maps") as maps:
        lines = maps.read().splitlines()
    named = any("/memfd:libscipy_openblas" in line for line in lines)
    print("backing", sorted(backings), "openblas named", named)
    from_archive = any(line.split()[1] == "r-xp" and line.endswith(ARCHIVE) for line in lines)
    copied = None
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            continue
        if target.startswith("/memfd:libscipy_openblas"):
            status = os.fstat(int(fd))
            copied = round(status.st_blocks * 512 / status.st_size, 1)
    print("code from the archive", from_archive, "openblas copied", copied)


def check_copies():
    """Memory files this process holds, by name: each object once (the prefetch thread and the
    importing thread never both copy one)."""
    import numpy  # noqa: F401
    import numpy.linalg  # noqa: F401

    names = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            continue
        if target.startswith("/memfd:"):
            names.append(target[len("/memfd:"):].replace(" (deleted)", ""))
    print("copied twice", sorted({name for name in names if names.count(name) > 1}), len(names) >= 5)


def check_forkpool():
    import multiprocessing

    import numpy

    with multiprocessing.get_context("fork").Pool(4) as pool:
        print("forkpool", [float(root) for root in pool.map(numpy.sqrt, [1.0, 4.0, 9.0, 16.0])])


def check_environment():
    print("home", os.environ.get("HOME"), "executable", os.path.basename(sys.executable))


if __name__ == "__main__":
    for name in sys.argv[1:]:
        globals()["check_" + name]()
