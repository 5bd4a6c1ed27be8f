//! Native extension modules and their shared libraries, loaded from memory: real wheels from the
//! package index (numpy, orjson, pydantic, cryptography, markupsafe, PyYAML, Pillow 10 and 13,
//! shapely, a mypyc and a pybind11 wheel), the standard library's own extensions, the forced fallbacks,
//! and what the packer says about libraries it cannot account for.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use pyferry_tests::{
    is_root, pack, pip_install, pyferry_command, run, run_on_a_read_only_root, workspace_root,
    write_tree, Finished, Scratch,
};

use crate::chroot::{glibc_root, run_in_root};

/// Pinned, with their dependencies pinned too.
const REQUIREMENTS: &[&str] = &[
    "numpy==2.2.6",
    "orjson==3.10.7",
    "pydantic==2.9.2",
    "pydantic-core==2.23.4",
    "annotated-types==0.8.0",
    "typing-extensions==4.16.0",
    "cryptography==43.0.3",
    "cffi==2.1.1",
    "pycparser==3.12",
    "markupsafe==2.1.5",
    "pyyaml==6.0.2",
    "pillow==10.4.0",
    "shapely==2.0.6",
    "charset-normalizer==3.3.2",
    "mapbox-earcut==1.0.2",
];

/// The probe app (tests/apps/natives) with every wheel above, packed once for all tests.
pub(crate) fn natives_app() -> &'static Path {
    static APP: OnceLock<(Scratch, PathBuf)> = OnceLock::new();
    let (_, path) = APP.get_or_init(|| {
        let scratch = Scratch::new();
        let app = scratch.path("app");
        pip_install(&app, REQUIREMENTS);
        std::fs::copy(
            workspace_root().join("tests/apps/natives/__main__.py"),
            app.join("__main__.py"),
        )
        .expect("copy probe");
        let exe = pack(&app, &scratch.path("natives.bin"), &[]);
        (scratch, exe)
    });
    path
}

fn probe(check: &str) -> Finished {
    run(Command::new(natives_app()).arg(check)).success()
}

#[track_caller]
fn assert_lines(finished: &Finished, expected: &[&str]) {
    let lines: Vec<&str> = finished.stdout.lines().collect();
    assert_eq!(lines, expected, "stderr: {}", finished.stderr);
}

/// What the probe's `numpy` check prints.
pub(crate) const NUMPY_EXPECTED: &[&str] = &[
    "det 10.0",
    "inv [[0.3, -0.1], [-0.2, 0.4]]",
    "eig [2.0, 5.0]",
    "fft [(10+0j), (-2+2j), (-2+0j), (-2-2j)]",
    "random [89, 773, 654, 438]",
    "matmul 49995000.0",
    "virtual True True True",
];

#[test]
fn numpy_linalg_fft_random() {
    assert_lines(&probe("numpy"), NUMPY_EXPECTED);
}

#[test]
fn orjson_pyo3_extension() {
    assert_lines(
        &probe("orjson"),
        &["orjson {\"a\":[1,2.5,null,\"é\"]} {'x': 1} True"],
    );
}

#[test]
fn pydantic_validation_error_text() {
    assert_lines(
        &probe("pydantic"),
        &[
            "model {'name': 'ada', 'age': 36}",
            "error int_parsing ('age',)",
            "1 validation error for User",
            "core virtual True",
        ],
    );
}

#[test]
fn cryptography_aes_gcm_and_x509() {
    assert_lines(
        &probe("cryptography"),
        &[
            "aesgcm 6fc8c1bfd647a3dc b'attack at dawn'",
            "x509 CN=pyferry.test 42",
        ],
    );
}

#[test]
fn markupsafe_speedups() {
    assert_lines(
        &probe("markupsafe"),
        &["markupsafe &lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt; True"],
    );
}

#[test]
fn pyyaml_cython_loader() {
    assert_lines(
        &probe("yaml"),
        &["yaml True {'a': [1, 2], 'b': {'c': 'héllo'}} a: | - 1 | - 2 | b: |   c: \"h\\xE9llo\""],
    );
}

#[test]
fn pillow_png_and_jpeg_with_vendored_libraries() {
    assert_lines(
        &probe("pillow"),
        &["pillow [('PNG', (32, 16), (200, 10, 30)), ('JPEG', (32, 16), True)] True True"],
    );
}

#[test]
fn shapely_geos_from_shapely_libs() {
    assert_lines(&probe("shapely"), &["shapely 4.0 True 3.14 (3, 11, 4)"]);
}

#[test]
fn mypyc_compiled_module() {
    let finished = probe("mypyc");
    assert!(
        finished.stdout.starts_with("mypyc True cp125"),
        "{finished:#?}"
    );
}

#[test]
fn pybind11_module() {
    assert_lines(&probe("pybind11"), &["pybind11 [0, 0, 1, 2, 2, 3]"]);
}

pub(crate) const STDLIB_EXPECTED: &[&str] = &[
    "ssl True True",
    "sqlite3 6",
    "ctypes 5 8",
    "lzma True bz2 True",
    "decimal 0.1428571428571428571428571429",
    "hashlib 3a985da74fe225b2 ba80a53f981c4d0d",
    "zoneinfo 0:00:00",
    "asyncio done _UnixDefaultEventLoopPolicy True",
];

#[test]
fn standard_library_extensions() {
    assert_lines(&probe("stdlib"), STDLIB_EXPECTED);
}

#[test]
fn memfds_are_named_after_their_library() {
    let finished = probe("maps");
    let line = finished.stdout.trim();
    for name in [
        "_multiarray_umath.cpython-311-x86_64-linux-gnu.so",
        "libscipy_openblas64_",
        "libgfortran-",
    ] {
        assert!(line.contains(name), "{name} not in /proc/self/maps: {line}");
    }
}

#[test]
fn numpy_and_stdlib_natives_in_a_glibc_only_chroot() {
    if !is_root() {
        eprintln!("skipped: the chroot test needs root");
        return;
    }
    let scratch = Scratch::new();
    let root = scratch.path("root");
    // What manylinux lets wheels assume from the host, besides glibc.
    // (The time zone file is host data `zoneinfo` reads, as it would on any server.)
    let host = [
        "/lib/x86_64-linux-gnu/libstdc++.so.6",
        "/lib/x86_64-linux-gnu/libgcc_s.so.1",
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/share/zoneinfo/UTC",
    ];
    glibc_root(&root, &host);
    std::fs::copy(natives_app(), root.join("app.bin")).expect("copy app");
    let finished = run_in_root(&root, "numpy stdlib");
    assert_eq!(finished.code, Some(0), "{finished:#?}");
    let lines: Vec<&str> = finished.stdout.lines().collect();
    assert_eq!(lines[0], "det 10.0");
    assert_eq!(lines[4], "random [89, 773, 654, 438]");
    // No CA store in the chroot: the context still builds, with no certificates.
    assert_eq!(lines[7], "ssl True False");
    assert_eq!(&lines[8..], &STDLIB_EXPECTED[1..]);
}

fn debug_run(memfd: &str, check: &str) -> Finished {
    run(Command::new(natives_app())
        .arg(check)
        .env("PYFERRY_MEMFD", memfd)
        .env("PYFERRY_LOG", "debug"))
}

#[test]
fn forced_fallback_memfd_without_noexec_seal() {
    let finished = debug_run("memfd", "orjson");
    assert_eq!(finished.code, Some(0), "{finished:#?}");
    assert!(
        finished.stderr.contains("backing=memfd_create "),
        "{}",
        finished.stderr
    );
    assert!(
        !finished.stderr.contains("MFD_NOEXEC_SEAL"),
        "{}",
        finished.stderr
    );
}

#[test]
fn default_uses_memfd_with_noexec_seal() {
    let finished = debug_run("auto", "orjson");
    assert_eq!(finished.code, Some(0), "{finished:#?}");
    assert!(
        finished
            .stderr
            .contains("backing=memfd_create(MFD_NOEXEC_SEAL)"),
        "{}",
        finished.stderr
    );
}

#[test]
fn forced_fallback_tmpfile() {
    let finished = debug_run("tmpfile", "numpy");
    assert_eq!(finished.code, Some(0), "{finished:#?}");
    assert!(
        finished.stderr.contains("backing=O_TMPFILE in "),
        "{}",
        finished.stderr
    );
    assert!(
        finished.stdout.starts_with("det 10.0\n"),
        "{}",
        finished.stdout
    );
}

#[test]
fn no_way_to_load_gives_an_import_error_naming_each_attempt() {
    let finished = run(Command::new(natives_app())
        .arg("fail")
        .env("PYFERRY_MEMFD", "none"));
    assert_eq!(finished.code, Some(1), "{finished:#?}");
    let last = finished.stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("ImportError: cannot import `orjson.orjson`: no way to hold"),
        "{}",
        finished.stderr
    );
    assert!(
        last.contains("memfd_create: disabled by PYFERRY_MEMFD")
            && last.contains("O_TMPFILE: disabled"),
        "{last}"
    );
}

#[test]
fn nothing_is_written_with_noexec_tmp_no_home_and_a_read_only_root() {
    let Some((finished, writes)) = run_on_a_read_only_root(natives_app(), &["numpy", "stdlib"])
    else {
        return;
    };
    assert_eq!(finished.code, Some(0), "{finished:#?}");
    assert!(
        finished.stdout.starts_with("det 10.0\n"),
        "{}",
        finished.stdout
    );
    assert!(
        writes.is_empty(),
        "the run wrote to disk:\n{}",
        writes.join("\n")
    );
}

/// Compiles C sources with the host's gcc against CPython 3.11's headers.
fn gcc(args: &[&str], dir: &Path) {
    let finished = run(Command::new("gcc").args(args).current_dir(dir));
    assert_eq!(finished.code, Some(0), "gcc {args:?}: {finished:#?}");
}

/// The extension asks its library for a value that the library's constructor sets; its own
/// constructor asks too, so it sees the value only if the library's constructor ran first.
const EXTENSION_C: &str = r#"
#include <Python.h>
extern int vendored_answer(void);
extern int vendored_argc(void);
static int answer_at_load = -1;
__attribute__((constructor)) static void at_load(void) { answer_at_load = vendored_answer(); }
static PyObject *answer(PyObject *self, PyObject *unused) { return PyLong_FromLong(vendored_answer()); }
static PyObject *at_load_answer(PyObject *self, PyObject *unused) { return PyLong_FromLong(answer_at_load); }
static PyObject *argc(PyObject *self, PyObject *unused) { return PyLong_FromLong(vendored_argc()); }
static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, ""}, {"at_load", at_load_answer, METH_NOARGS, ""}, {"argc", argc, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "ext", NULL, -1, methods};
PyMODINIT_FUNC PyInit_ext(void) { return PyModule_Create(&module); }
"#;

/// A library whose answer is set by its constructor, which also records `argc`.
const VENDORED_C: &str = r#"
static int answer, seen_argc;
__attribute__((constructor)) static void set_answer(int argc, char **argv, char **envp) {
    answer = 42;
    seen_argc = argc;
}
int vendored_answer(void) { return answer; }
int vendored_argc(void) { return seen_argc; }
"#;

/// Builds `pkg/ext.cpython-311-x86_64-linux-gnu.so` needing `libvendored.so.1`, which is put
/// next to it when `keep_library`.
fn extension_tree(scratch: &Scratch, keep_library: bool, link_libpython: bool) -> PathBuf {
    let build = scratch.path("build");
    write_tree(
        &build,
        &[("ext.c", EXTENSION_C), ("vendored.c", VENDORED_C)],
    );
    gcc(
        &[
            "-shared",
            "-fPIC",
            "-Wl,-soname,libvendored.so.1",
            "-o",
            "libvendored.so.1",
            "vendored.c",
        ],
        &build,
    );
    let mut ext_args = vec![
        "-shared",
        "-fPIC",
        "-I/usr/include/python3.11",
        "-o",
        "ext.so",
        "ext.c",
        "-L.",
        "-l:libvendored.so.1",
    ];
    if link_libpython {
        ext_args.push("-lpython3.11");
    }
    gcc(&ext_args, &build);
    let app = scratch.path("app");
    write_tree(&app, &[("__main__.py", "from pkg import ext\nprint('answer', ext.answer(), ext.__file__.endswith('/pkg/ext.cpython-311-x86_64-linux-gnu.so'))\nprint('at load', ext.at_load(), 'argc', ext.argc())\n"), ("pkg/__init__.py", "")]);
    std::fs::copy(
        build.join("ext.so"),
        app.join("pkg/ext.cpython-311-x86_64-linux-gnu.so"),
    )
    .expect("copy ext");
    if keep_library {
        std::fs::copy(
            build.join("libvendored.so.1"),
            app.join("pkg/libvendored.so.1"),
        )
        .expect("copy lib");
    }
    app
}

#[test]
fn library_kept_next_to_its_extension_is_loaded_first() {
    let scratch = Scratch::new();
    let app = extension_tree(&scratch, true, false);
    let exe = pack(&app, &scratch.path("app.bin"), &[]);
    let expected = "answer 42 True\nat load 42 argc 3\n";
    // By default the library and the extension are loaded with their code mapped from the
    // executable and their constructors run by the launcher, in the loader's order.
    let finished = run(Command::new(&exe)
        .args(["one", "two"])
        .env("PYFERRY_LOG", "debug"))
    .success();
    assert_eq!(finished.stdout, expected);
    for object in [
        "pkg/libvendored.so.1",
        "pkg/ext.cpython-311-x86_64-linux-gnu.so",
    ] {
        assert!(
            finished.stderr.lines().any(|line| line
                .contains("constructors run after mapping its code")
                && line.contains(object)),
            "{object}: {finished:#?}"
        );
    }
    // Without page sharing, everything is copied and the loader runs the constructors.
    let finished = run(Command::new(&exe)
        .args(["one", "two"])
        .env("PYFERRY_SHARE_PAGES", "0")
        .env("PYFERRY_LOG", "debug"))
    .success();
    assert_eq!(finished.stdout, expected);
    assert!(
        !finished
            .stderr
            .contains("constructors run after mapping its code"),
        "{finished:#?}"
    );
}

#[test]
fn missing_library_is_a_pack_time_warning() {
    let scratch = Scratch::new();
    let app = extension_tree(&scratch, false, false);
    let out = scratch.path("app.bin");
    let packed = run(pyferry_command(["pack"]).arg(&app).arg("-o").arg(&out)).success();
    assert!(
        packed.stderr.contains("`pkg/ext.cpython-311-x86_64-linux-gnu.so` needs `libvendored.so.1`, which is neither in the application nor"),
        "{}",
        packed.stderr
    );
    let finished = run(&mut Command::new(&out));
    assert_eq!(finished.code, Some(1));
    assert!(
        finished
            .stderr
            .contains("libvendored.so.1: cannot open shared object file"),
        "{}",
        finished.stderr
    );
}

#[test]
fn extension_linked_to_libpython_is_refused() {
    let scratch = Scratch::new();
    let app = extension_tree(&scratch, true, true);
    let out = scratch.path("app.bin");
    let finished = run(pyferry_command(["pack"]).arg(&app).arg("-o").arg(&out));
    assert_eq!(finished.code, Some(2), "{finished:#?}");
    let last = finished.stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("pyferry: error: `pkg/ext.cpython-311-x86_64-linux-gnu.so` is linked against `libpython3.11.so.1.0`"), "{}", finished.stderr);
    assert!(!out.exists());
}

#[test]
fn logging_into_a_closed_stderr_neither_panics_nor_hangs() {
    // Regression: tracing's writer panicked on a failed write, and a prefetch thread dying
    // mid-task left the importing thread waiting forever.
    let script = format!(
        "PYFERRY_LOG=debug PYFERRY_MEMFD=memfd {} numpy 2>&1 >/dev/null | head -c 200 >/dev/null; echo ${{PIPESTATUS[0]}}",
        natives_app().display()
    );
    let finished = run(Command::new("timeout").args(["60", "bash", "-c", &script]));
    assert_eq!(finished.code, Some(0), "timed out: {finished:#?}");
    assert_eq!(finished.stdout.trim(), "0", "{finished:#?}");
}

#[test]
fn an_extension_that_fails_to_load_is_named_by_its_archive_path() {
    // Regression: `dlopen`'s message named the memory file (`/proc/self/fd/N`).
    let scratch = Scratch::new();
    let app = scratch.path("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("__main__.py"), "import broken\n").unwrap();
    std::fs::write(
        app.join("broken.cpython-311-x86_64-linux-gnu.so"),
        "not an ELF file\n",
    )
    .unwrap();
    let out = scratch.path("app.bin");
    run(pyferry_command(["pack"]).arg(&app).arg("-o").arg(&out)).success();
    let finished = run(&mut Command::new(&out));
    assert_eq!(finished.code, Some(1), "{finished:#?}");
    let last = finished.stderr.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!(
            "ImportError: {}/broken.cpython-311-x86_64-linux-gnu.so: file too short",
            out.display()
        ),
        "{}",
        finished.stderr
    );
}

/// The number ending the first line of `finished`'s output that starts with `prefix`.
#[track_caller]
fn number_after(finished: &Finished, prefix: &str) -> f64 {
    let line = finished
        .stdout
        .lines()
        .find(|line| line.starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line: {finished:#?}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn read_only_pages_come_from_the_executable_once_loaded() {
    // Default: the code and constants of numpy's big objects are mapped from the executable,
    // and their memory files keep only what must stay private (headers, writable data).
    let shared = probe("sharing");
    let kept = |finished: &Finished, name: &str| number_after(finished, &format!("kept {name}"));
    for name in ["libscipy_openblas64_", "_multiarray_umath"] {
        let fraction = kept(&shared, name);
        eprintln!("{name}: {:.0}% of its memory file kept", fraction * 100.0);
        assert!(
            fraction < 0.25,
            "{name} keeps {fraction} of its memory file: {shared:#?}"
        );
    }
    assert!(
        !shared
            .stdout
            .contains("code mappings of the executable 0\n"),
        "{shared:#?}"
    );
    // PYFERRY_SHARE_PAGES=0: everything stays in the memory files.
    let kept_all = run(Command::new(natives_app())
        .arg("sharing")
        .env("PYFERRY_SHARE_PAGES", "0"))
    .success();
    for name in ["libscipy_openblas64_", "_multiarray_umath"] {
        assert!(kept(&kept_all, name) > 0.9, "{kept_all:#?}");
    }
}

#[test]
fn code_is_never_copied_into_memory_files() {
    // numpy's two big objects, copied into memory files by the prefetch thread and not yet
    // loaded: their code and constants are holes (the packer's load plans leave them out), and
    // numpy works once they are loaded.
    let fraction =
        |finished: &Finished, name: &str| number_after(finished, &format!("before loading {name}"));
    let planned = probe("holes");
    assert!(planned.stdout.ends_with("sum 25.0\n"), "{planned:#?}");
    for name in ["libscipy_openblas64_", "_multiarray_umath"] {
        let held = fraction(&planned, name);
        eprintln!("{name}: {:.0}% of it copied", held * 100.0);
        assert!(held < 0.25, "{name}: {held} copied: {planned:#?}");
    }
    // PYFERRY_SHARE_PAGES=0: nothing is mapped from the executable, so everything is copied.
    let whole = run(Command::new(natives_app())
        .arg("holes")
        .env("PYFERRY_SHARE_PAGES", "0"))
    .success();
    assert!(whole.stdout.ends_with("sum 25.0\n"), "{whole:#?}");
    for name in ["libscipy_openblas64_", "_multiarray_umath"] {
        assert!(fraction(&whole, name) > 0.9, "{whole:#?}");
    }
}

#[test]
fn memory_files_made_before_a_fork_stay_whole_for_whoever_loads_them() {
    // The prefetch thread fills numpy's memory files, the app forks, the child loads numpy,
    // then the parent does: a process that gave back pages of a file another process had yet
    // to load would make that one run zeros.
    for _ in 0..3 {
        let finished = probe("forkorder");
        assert_eq!(
            finished.stdout.trim(),
            "child 0 parent 25.0",
            "{finished:#?}"
        );
    }
}

#[test]
fn huge_pages_opt_in_uses_a_private_tmpfs_or_falls_back() {
    if !is_root() {
        eprintln!("skipped: a private tmpfs needs CAP_SYS_ADMIN (root)");
        return;
    }
    let with_huge_pages = |command: &mut Command| -> Finished {
        run(command
            .env("PYFERRY_HUGE_PAGES", "1")
            .env("PYFERRY_LOG", "debug"))
    };
    // Root: the objects go to a tmpfs of the launcher's own, mounted nowhere.
    let finished = with_huge_pages(Command::new(natives_app()).arg("numpy"));
    assert_eq!(finished.code, Some(0), "{finished:#?}");
    assert_lines(&finished, NUMPY_EXPECTED);
    assert!(
        finished
            .stderr
            .contains("backing=O_TMPFILE in a private tmpfs with huge pages"),
        "{}",
        finished.stderr
    );
    // Without CAP_SYS_ADMIN over the mount namespace (a new user namespace): memfd, as usual.
    let finished = with_huge_pages(
        Command::new("unshare")
            .args(["--user", "--"])
            .arg(natives_app())
            .arg("numpy"),
    );
    assert_eq!(finished.code, Some(0), "{finished:#?}");
    assert_lines(&finished, NUMPY_EXPECTED);
    assert!(
        finished.stderr.contains("no private tmpfs with huge pages")
            && finished
                .stderr
                .contains("backing=memfd_create(MFD_NOEXEC_SEAL)"),
        "{}",
        finished.stderr
    );
}

/// Pillow 13's `libfreetype` and `libharfbuzz` (in `pillow.libs/`) need each other: loaded by one
/// `dlopen`, as the dynamic loader loads a cycle, so `PIL._imagingft` imports and draws text,
/// laid out by raqm with harfbuzz (it failed with "library dependencies ... nest too deep (a
/// cycle?)").
#[test]
fn pillow_13_libraries_that_need_each_other_load_together() {
    let scratch = Scratch::new();
    let app = scratch.path("app");
    pip_install(&app, &["pillow==13.0.0"]);
    write_tree(
        &app,
        &[(
            "__main__.py",
            "from PIL import Image, ImageDraw, ImageFont, features\nfont = ImageFont.load_default(size=32)\nprint(type(font).__name__, features.version('freetype2'), features.check('raqm'))\nimage = Image.new('L', (200, 60))\nImageDraw.Draw(image).text((5, 5), 'pyferry', font=font, fill=255)\nleft, top, right, bottom = image.getbbox()\nprint('inked', right - left > 80, bottom - top > 20)\nmaps = open('/proc/self/maps').read()\nprint('from memory', all(name in maps and '/pillow.libs/' + name not in maps for name in ('libfreetype', 'libharfbuzz')))\n",
        )],
    );
    let exe = pack(&app, &scratch.path("pillow13.bin"), &[]);
    let finished = run(&mut Command::new(&exe));
    assert_eq!(finished.code, Some(0), "{finished:#?}");
    assert_eq!(
        finished.stdout,
        "FreeTypeFont 2.14.3 True\ninked True True\nfrom memory True\n"
    );
}
