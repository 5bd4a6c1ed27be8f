"""pyferry's build helper, run by the packer inside the embedded runtime.

The packer never needs a Python on the host: it runs the runtime (the launcher plus the
standard library, whose entry point is this module) to compile sources with exactly the
interpreter that will run them.

Usage: <runtime> compile JOB.json, or python3.X _pyferry_build.py compile JOB.json (a pyz for
another Python version is compiled by that version); <runtime> version prints the interpreter's
exact version as JSON (`platform.python_version()` and `sys.version`, for the SBOM).
JOB.json is a list of [source_path, archive_name, output_path]. Each source is compiled with
`archive_name` as its file name (the launcher rewrites it to the path inside the application at
import time), into an unchecked hash-based .pyc, so the output depends on the source only.
One JSON object per line on stdout reports each file that could not be compiled; the packer
ships those as source only, as pip does.
"""

import json
import sys

from importlib._bootstrap_external import _code_to_hash_pyc
from importlib.util import source_hash


def _pyc_bytes(code, source):
    return bytes(_code_to_hash_pyc(code, source_hash(source), checked=False))


def compile_job(job_path):
    with open(job_path, "rb") as job_file:
        items = json.load(job_file)
    failures = 0
    for source_path, archive_name, output_path in items:
        try:
            with open(source_path, "rb") as source_file:
                source = source_file.read()
            code = compile(source, archive_name, "exec", dont_inherit=True, optimize=0)
            with open(output_path, "wb") as output:
                output.write(_pyc_bytes(code, source))
        except (SyntaxError, ValueError, UnicodeDecodeError) as error:
            failures += 1
            line = getattr(error, "lineno", None)
            message = f"{type(error).__name__}: {getattr(error, 'msg', None) or error}"
            if line:
                message += f" (line {line})"
            print(json.dumps({"name": archive_name, "error": message}), flush=True)
        except OSError as error:
            print(json.dumps({"name": archive_name, "fatal": f"{error.filename}: {error.strerror}"}), flush=True)
            return 3
    return 0


def print_version():
    import platform

    print(json.dumps({"version": platform.python_version(), "sys_version": sys.version}))
    return 0


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "compile":
        return compile_job(sys.argv[2])
    if len(sys.argv) == 2 and sys.argv[1] == "version":
        return print_version()
    print("this is the pyferry runtime; `pyferry` runs it to compile bytecode, and copies it into every app", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
