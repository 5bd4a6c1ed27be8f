"""Which glibc level popular packages with native code need on x86_64 for CPython 3.11.

For each package: its newest release that has a cp311 (or abi3) x86_64 manylinux wheel, and
the lowest glibc that release's wheels accept (the lowest manylinux tag of the best-covered
wheel). Reads the package index's JSON API (pypi.org). Run: `python3 bench/manylinux_levels.py`;
it prints the Markdown table kept in docs/cli.md ("Which glibc the wheels need").
"""

import json
import re
import sys
import urllib.request

PACKAGES = [
    "numpy", "scipy", "pandas", "pyarrow", "pillow", "matplotlib", "scikit-learn", "lxml",
    "cryptography", "bcrypt", "cffi", "pydantic-core", "orjson", "ujson", "msgpack", "pyyaml",
    "regex", "psutil", "markupsafe", "charset-normalizer", "grpcio", "pyzmq", "h5py", "shapely",
    "zstandard", "rpds-py", "greenlet", "aiohttp", "frozenlist", "yarl", "sqlalchemy",
    "psycopg2-binary", "numba", "tokenizers", "soundfile", "opencv-python-headless",
]

LEGACY = {"manylinux1": 5, "manylinux2010": 12, "manylinux2014": 17}


def wheel_level(filename):
    """The lowest glibc minor of a wheel's manylinux x86_64 tags, or None."""
    tags = filename[:-4].split("-")[-1].split(".")
    levels = []
    for tag in tags:
        match = re.fullmatch(r"manylinux_2_(\d+)_x86_64", tag)
        if match:
            levels.append(int(match.group(1)))
        elif tag.removesuffix("_x86_64") in LEGACY and tag.endswith("_x86_64"):
            levels.append(LEGACY[tag.removesuffix("_x86_64")])
    return min(levels) if levels else None


def fits_cp311(filename):
    parts = filename[:-4].split("-")
    python, abi = parts[-3], parts[-2]
    if "cp311" in python.split("."):
        return True
    if abi == "abi3":
        return any(int(tag[3:]) <= 11 for tag in python.split(".") if tag.startswith("cp3"))
    return python in ("py3", "py2.py3") and abi == "none"


def newest_level(name):
    data = json.load(urllib.request.urlopen(f"https://pypi.org/pypi/{name}/json", timeout=60))
    def key(version):
        return [int(part) if part.isdigit() else 0 for part in re.split(r"[.+-]", version)]
    for version in sorted(data["releases"], key=key, reverse=True):
        if re.search(r"[a-zA-Z]", version):
            continue  # pre-releases
        levels = [wheel_level(file["filename"]) for file in data["releases"][version]
                  if file["filename"].endswith(".whl") and fits_cp311(file["filename"])]
        levels = [level for level in levels if level is not None]
        if levels:
            return version, min(levels)
    return None, None


def main():
    rows = []
    for name in PACKAGES:
        try:
            version, level = newest_level(name)
        except Exception as error:  # noqa: BLE001 - report and go on
            print(f"{name}: {error}", file=sys.stderr)
            continue
        rows.append((name, version, level))
    print("| package | newest release with a cp311 x86_64 wheel | glibc it needs |")
    print("|---|---|---|")
    for name, version, level in rows:
        print(f"| {name} | {version or '-'} | {'2.' + str(level) if level else '-'} |")
    counted = [level for _, _, level in rows if level]
    for floor in (17, 28):
        fits = sum(1 for level in counted if level <= floor)
        print(f"\nat manylinux_2_{floor}: {fits} of {len(counted)} get their newest release")


if __name__ == "__main__":
    main()
