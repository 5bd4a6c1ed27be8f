//! Every feature of the Rust importer, exercised with real pure-Python wheels from the package
//! index: a PEP 420 namespace package (`jaraco.functools`), data files read through
//! `importlib.resources` (`tzdata`) and `pkgutil.get_data` (`certifi`), entry points and
//! metadata (`pyflakes`), plus `inspect`, `linecache` and `pkgutil.iter_modules`.

use std::process::Command;

use pyferry_tests::{pack, pip_install, run, write_tree, Scratch};

const REQUIREMENTS: &[&str] = &[
    "pyflakes==3.2.0",
    "jaraco.functools==4.0.1",
    "more-itertools==10.2.0",
    "tzdata==2024.1",
    "certifi==2024.2.2",
];

const PROBE: &str = r#"
import sys, importlib, importlib.metadata as metadata, importlib.resources as resources
import inspect, linecache, pkgutil, zoneinfo

exe = sys.executable
def show(label, value):
    print(f"{label}: {value}")

# PEP 420 namespace package spanning the archive root.
import jaraco.functools
show("namespace path", list(jaraco.__path__) == [exe + "/jaraco"])
show("namespace loader", type(jaraco.__spec__.loader).__name__)
show("jaraco.functools file", jaraco.functools.__file__ == exe + "/jaraco/functools/__init__.py")
show("more_itertools works", list(jaraco.functools.compose(list, reversed)([1, 2, 3])))

# Packages, modules, loader methods.
import pyflakes, pyflakes.api
loader = pyflakes.__loader__
show("is_package", (loader.is_package("pyflakes"), loader.is_package("pyflakes.api")))
show("get_filename", loader.get_filename("pyflakes.api") == exe + "/pyflakes/api.py")
show("get_source has def", "def check(" in loader.get_source("pyflakes.api"))
show("get_code filename", loader.get_code("pyflakes.api").co_filename == exe + "/pyflakes/api.py")
show("spec origin", pyflakes.api.__spec__.origin == exe + "/pyflakes/api.py")
show("package path", pyflakes.__path__ == [exe + "/pyflakes"])

# inspect and linecache through the loader.
show("inspect.getsource", inspect.getsource(pyflakes.api.check).splitlines()[0])
show("linecache", linecache.getline(pyflakes.api.__file__, 1, pyflakes.api.__dict__).strip()[:3])

# pkgutil over the path hook.
names = sorted(name for _, name, _ in pkgutil.iter_modules(pyflakes.__path__))
show("iter_modules", [name for name in names if name in ("api", "checker", "messages", "scripts", "test")])
top = {name for _, name, ispkg in pkgutil.iter_modules(sys.path) if name in ("pyflakes", "certifi", "json", "tzdata")}
show("top-level modules", sorted(top))
show("path hook finder", type(sys.path_importer_cache[exe + "/pyflakes"]).__name__)

# Data files.
import certifi
pem = pkgutil.get_data("certifi", "cacert.pem")
show("get_data", pem.startswith(b"\n# Issuer") or pem.startswith(b"-----BEGIN") or b"BEGIN CERTIFICATE" in pem[:2000])
files = resources.files("tzdata")
show("files type", type(files).__name__)
utc = files.joinpath("zoneinfo", "UTC")
show("read_bytes", utc.read_bytes()[:4])
show("is_file/is_dir", (utc.is_file(), (files / "zoneinfo").is_dir(), (files / "nope").exists()))
show("iterdir has Europe", "Europe" in [child.name for child in (files / "zoneinfo").iterdir()])
show("read_text", (files / "zones").read_text().splitlines()[0] if (files / "zones").is_file() else "no zones file")
with (files / "zoneinfo" / "UTC").open("rb") as handle:
    show("open rb", handle.read(4))
show("resources.read_binary", resources.read_binary("tzdata.zoneinfo", "UTC")[:4])
with resources.as_file(files / "zoneinfo" / "UTC") as real_path:
    show("as_file real", open(real_path, "rb").read(4))
    show("as_file in place", str(real_path) == exe + "/tzdata/zoneinfo/UTC")
tz = zoneinfo.ZoneInfo.no_cache("Europe/Paris")
show("zoneinfo", tz.key)

# importlib.metadata.
show("version", metadata.version("pyflakes"))
scripts = metadata.entry_points(group="console_scripts")
show("entry point", [(ep.name, ep.value) for ep in scripts if ep.name == "pyflakes"])
show("files", any(str(path) == "pyflakes/api.py" for path in metadata.files("pyflakes")))
dists = sorted({dist.metadata["Name"].lower() for dist in metadata.distributions()})
show("distributions", [name for name in dists if name in ("certifi", "jaraco.functools", "more-itertools", "pyflakes", "tzdata")])

# The entry point itself works.
from pyflakes.api import check
from pyflakes.reporter import Reporter
import io
out = io.StringIO()
warnings = check("import os\n", "example.py", Reporter(out, out))
show("pyflakes check", (warnings, out.getvalue().strip()))
"#;

#[test]
fn importer_serves_real_wheels() {
    let scratch = Scratch::new();
    let app = scratch.path("app");
    pip_install(&app, REQUIREMENTS);
    write_tree(&app, &[("__main__.py", PROBE)]);
    let exe = pack(&app, &scratch.path("app.bin"), &[]);
    let finished = run(&mut Command::new(&exe)).success();
    let expected = [
        "namespace path: True",
        "namespace loader: NamespaceLoader",
        "jaraco.functools file: True",
        "more_itertools works: [3, 2, 1]",
        "is_package: (True, False)",
        "get_filename: True",
        "get_source has def: True",
        "get_code filename: True",
        "spec origin: True",
        "package path: True",
        "inspect.getsource: def check(codeString, filename, reporter=None):",
        "linecache: \"\"\"",
        "iter_modules: ['api', 'checker', 'messages', 'scripts', 'test']",
        "top-level modules: ['certifi', 'json', 'pyflakes', 'tzdata']",
        "path hook finder: ArchivePathFinder",
        "get_data: True",
        "files type: PosixPath",
        "read_bytes: b'TZif'",
        "is_file/is_dir: (True, True, False)",
        "iterdir has Europe: True",
        "open rb: b'TZif'",
        "resources.read_binary: b'TZif'",
        "as_file real: b'TZif'",
        "as_file in place: True",
        "zoneinfo: Europe/Paris",
        "version: 3.2.0",
        "entry point: [('pyflakes', 'pyflakes.api:main')]",
        "files: True",
        "distributions: ['certifi', 'jaraco.functools', 'more-itertools', 'pyflakes', 'tzdata']",
        "pyflakes check: (1, \"example.py:1:1: 'os' imported but unused\")",
    ];
    let lines: Vec<&str> = finished.stdout.lines().collect();
    for line in expected {
        assert!(
            lines.contains(&line),
            "missing `{line}` in:\n{}",
            finished.stdout
        );
    }
}

#[test]
fn traceback_inside_a_wheel_shows_its_source_line() {
    let scratch = Scratch::new();
    let app = scratch.path("app");
    pip_install(&app, &["pyflakes==3.2.0"]);
    write_tree(
        &app,
        &[(
            "__main__.py",
            "from pyflakes.messages import Message\nMessage('x.py', None)\n",
        )],
    );
    let exe = pack(&app, &scratch.path("app.bin"), &[]);
    let finished = run(&mut Command::new(&exe));
    assert_eq!(finished.code, Some(1));
    let path = format!("File \"{}/pyflakes/messages.py\", line", exe.display());
    assert!(finished.stderr.contains(&path), "{}", finished.stderr);
    // The line below the frame header is the source text, indented.
    let frame = finished.stderr.split(&path).nth(1).expect("frame");
    let source_line = frame.lines().nth(1).expect("source line");
    assert!(
        source_line.starts_with("    ") && source_line.trim().len() > 3,
        "{}",
        finished.stderr
    );
}

/// A top-level import follows `sys.path`'s order: an archive directory put before the archive
/// root shadows the root, as OpenCV's loader needs (it puts `cv2/` first to import its binary
/// `cv2` instead of itself, and looped before), and a real directory put first shadows the
/// archive, as for `python`.
#[test]
fn top_level_imports_follow_the_order_of_sys_path() {
    let scratch = Scratch::new();
    let real = scratch.path("real");
    write_tree(&real, &[("shadow.py", "WHERE = 'real directory'\n")]);
    let exe = scratch.packed_app(
        &[
            ("__main__.py", "import sys\nsys.path.insert(0, sys.executable + '/pkg/inner')\nimport helper\nprint(helper.WHERE)\nsys.path.insert(0, sys.argv[1])\nimport shadow\nprint(shadow.WHERE)\nimport json\nprint('after a real directory', json.__file__.startswith(sys.executable))\n"),
            ("helper.py", "WHERE = 'archive root'\n"),
            ("shadow.py", "WHERE = 'archive root'\n"),
            ("pkg/__init__.py", ""),
            ("pkg/inner/helper.py", "WHERE = 'pkg/inner'\n"),
        ],
        &[],
    );
    let finished = run(Command::new(&exe).arg(&real)).success();
    assert_eq!(
        finished.stdout,
        "pkg/inner\nreal directory\nafter a real directory True\n"
    );
}
