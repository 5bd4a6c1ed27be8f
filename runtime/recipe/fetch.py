"""Downloads, each through its registry's ordinary client, each checked against the SHA-256 in
runtime/pins.toml before it is used. Files land in `<cache>/downloads/` and are reused while
their checksum matches.

- Debian: apt with a private configuration under `<cache>/apt/` (its own sources, lists and
  package cache, the system keyring), so the machine's apt state is never touched.
- crates.io: `cargo fetch` of a throwaway manifest with a private CARGO_HOME.
- PyPI: `pip download --no-deps` of one wheel.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from .common import BuildError, Context, run, sha256_file, verify_sha256

SYSTEM_SOURCES = [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]


def _have(path: Path, sha256: str) -> bool:
    return path.is_file() and sha256_file(path) == sha256


def debian_mirrors() -> tuple:
    """The machine's Debian mirror URIs (main archive, security archive), read from its apt
    sources so the recipe names no host of its own."""
    main = security = None
    for source in SYSTEM_SOURCES:
        if not source.is_file():
            continue
        for uri in re.findall(r"(?:^URIs:\s*|^deb(?:-src)?\s+(?:\[[^\]]*\]\s+)?)(\S+)",
                              source.read_text(), flags=re.MULTILINE):
            if "security" in uri:
                security = security or uri
            elif "debian" in uri:
                main = main or uri
    if main is None or security is None:
        raise BuildError("no Debian mirror found in /etc/apt/sources.list.d/debian.sources or "
                         "/etc/apt/sources.list (hint: the recipe reuses the machine's Debian "
                         "mirrors for its private apt configuration)")
    return main.rstrip("/"), security.rstrip("/")


def _apt_options(ctx: Context) -> list:
    base = ctx.cache_root / "apt"
    return [
        "-o", f"Dir::Etc::SourceList={base / 'sources.list'}",
        "-o", f"Dir::Etc::SourceParts={base / 'sources.list.d'}",
        "-o", f"Dir::State::Lists={base / 'lists'}",
        "-o", f"Dir::Cache={base / 'cache'}",
        "-o", "Dir::State::status=/var/lib/dpkg/status",
        "-q",
    ] + (["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else [])


_apt_ready = False


def apt(ctx: Context, *arguments, cwd: Path | None = None, what: str = "apt-get") -> str:
    """Runs apt-get (or apt-cache) with the private configuration, updating its lists once."""
    global _apt_ready
    if not _apt_ready:
        base = ctx.cache_root / "apt"
        for sub in ("sources.list.d", "lists/partial", "cache/archives/partial"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        (base / "sources.list").write_text("")
        main, security = debian_mirrors()
        keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
        if not Path(keyring).is_file():
            raise BuildError(f"`{keyring}` missing (hint: apt-get install debian-archive-keyring)")
        entries = []
        for suite in ctx.pins["debian"]["suites"]:
            uri = security if suite.endswith("-security") else main
            entries.append(f"Types: deb deb-src\nURIs: {uri}\nSuites: {suite}\n"
                           f"Components: main\nSigned-By: {keyring}\n")
        (base / "sources.list.d" / "pyferry-runtime.sources").write_text("\n".join(entries))
        run(ctx, ["apt-get", *_apt_options(ctx), "update"], what="apt-get update (private lists)")
        _apt_ready = True
    tool = "apt-cache" if arguments[0] in ("madison", "showsrc", "policy") else "apt-get"
    return run(ctx, [tool, *_apt_options(ctx), *arguments], cwd=cwd, what=what, capture=True)


def debian_source(ctx: Context, pin: dict) -> dict:
    """Downloads a Debian source package's files (orig and debian tarballs); returns
    {file name: path}."""
    ctx.downloads.mkdir(parents=True, exist_ok=True)
    paths = {entry["name"]: ctx.downloads / entry["name"] for entry in pin["files"]}
    if not all(_have(paths[entry["name"]], entry["sha256"]) for entry in pin["files"]):
        staging = ctx.downloads / f".staging-{pin['package']}-{os.getpid()}"
        staging.mkdir(exist_ok=True)
        try:
            apt(ctx, "source", "--download-only", f"{pin['package']}={pin['version']}",
                cwd=staging, what=f"downloading Debian source {pin['package']} {pin['version']}")
            for entry in pin["files"]:
                downloaded = staging / entry["name"]
                if not downloaded.is_file():
                    raise BuildError(f"`{entry['name']}` missing from Debian source "
                                     f"{pin['package']} {pin['version']}")
                verify_sha256(downloaded, entry["sha256"])
                os.replace(downloaded, paths[entry["name"]])
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return paths


def debian_binary(ctx: Context, package: str, version: str, sha256: str) -> Path:
    """Downloads one Debian binary package (`apt-get download`); returns the .deb's path."""
    ctx.downloads.mkdir(parents=True, exist_ok=True)
    name = f"{package}_{version.split(':')[-1]}_amd64.deb"
    path = ctx.downloads / name
    if not _have(path, sha256):
        staging = ctx.downloads / f".staging-{package}-{os.getpid()}"
        staging.mkdir(exist_ok=True)
        try:
            apt(ctx, "download", f"{package}={version}", cwd=staging,
                what=f"downloading Debian package {package} {version}")
            debs = list(staging.glob("*.deb"))
            if len(debs) != 1:
                raise BuildError(f"`apt-get download {package}={version}` gave {len(debs)} files")
            verify_sha256(debs[0], sha256)
            os.replace(debs[0], path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return path


def crates(ctx: Context, pins: list) -> dict:
    """Fetches the pinned crates with cargo; returns {crate name: path of its .crate}."""
    ctx.downloads.mkdir(parents=True, exist_ok=True)
    paths = {pin["crate"]: ctx.downloads / f"{pin['crate']}-{pin['version']}.crate" for pin in pins}
    missing = [pin for pin in pins if not _have(paths[pin["crate"]], pin["sha256"])]
    if missing:
        project = ctx.cache_root / "cargo-fetch"
        (project / "src").mkdir(parents=True, exist_ok=True)
        (project / "src" / "lib.rs").write_text("")
        dependencies = "\n".join(f'{pin["crate"]} = "={pin["version"]}"' for pin in missing)
        (project / "Cargo.toml").write_text(
            '[package]\nname = "pyferry-runtime-sources"\nversion = "0.0.0"\nedition = "2021"\n'
            f"publish = false\n\n[dependencies]\n{dependencies}\n\n[workspace]\n")
        cargo_home = ctx.cache_root / "cargo-home"
        cargo = shutil.which("cargo") or str(Path.home() / ".cargo" / "bin" / "cargo")
        run(ctx, [cargo, "fetch", "--manifest-path", project / "Cargo.toml"],
            env={"CARGO_HOME": cargo_home, "CARGO_REGISTRIES_CRATES_IO_PROTOCOL": "sparse"},
            what="cargo fetch of the pinned source crates")
        for pin in missing:
            found = list((cargo_home / "registry" / "cache").glob(
                f"*/{pin['crate']}-{pin['version']}.crate"))
            if not found:
                raise BuildError(f"cargo fetched no `{pin['crate']}-{pin['version']}.crate`")
            verify_sha256(found[0], pin["sha256"])
            shutil.copyfile(found[0], paths[pin["crate"]])
    return paths


def pypi_wheel(ctx: Context, pin: dict) -> Path:
    """Downloads one wheel with pip (no dependencies, no install); returns its path."""
    ctx.downloads.mkdir(parents=True, exist_ok=True)
    path = ctx.downloads / pin["wheel"]
    if not _have(path, pin["sha256"]):
        staging = ctx.downloads / f".staging-{pin['package']}-{os.getpid()}"
        staging.mkdir(exist_ok=True)
        try:
            run(ctx, [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                      "--disable-pip-version-check", "--only-binary=:all:",
                      "--platform", "manylinux_2_12_x86_64", "--python-version", "3.11",
                      "-d", staging, f"{pin['package']}=={pin['version']}"],
                what=f"pip download {pin['package']}=={pin['version']} "
                     f"(hint: apt-get install python3-pip)")
            downloaded = staging / pin["wheel"]
            if not downloaded.is_file():
                raise BuildError(f"pip did not download `{pin['wheel']}`")
            verify_sha256(downloaded, pin["sha256"])
            os.replace(downloaded, path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return path
