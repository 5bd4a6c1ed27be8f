//! Real packages from the package index that read their own files by path, packed as one file
//! and run as subprocesses (the probe is tests/apps/read_by_path): matplotlib's Agg `savefig`
//! with a title (its `matplotlibrc`, style sheets, and fonts read through FreeType), certifi's
//! `cacert.pem` by a hand-built path to `ssl`, pytz's zone files, black (compiled with mypyc:
//! `blib2to3/pygram` reads `Grammar.txt` next to its compiled module), OpenCV's C++ loading a
//! Haar cascade from `cv2.data.haarcascades`, pyproj's PROJ opening `proj.db` with its own
//! SQLite, and `fopen` called through `ctypes`. Nothing is extracted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use pyferry_tests::{
    pack, pip_install, run, run_on_a_read_only_root, workspace_root, Finished, Scratch,
};

/// Pinned, with their dependencies pinned too.
const REQUIREMENTS: &[&str] = &[
    "matplotlib==3.9.2",
    "contourpy==1.3.3",
    "cycler==0.12.1",
    "fonttools==4.68.0",
    "kiwisolver==1.5.1",
    "packaging==26.4",
    "pyparsing==3.3.3",
    "python-dateutil==4.0.0",
    "numpy==2.2.6",
    "pillow==10.4.0",
    "certifi==2024.2.2",
    "pytz==2024.2",
    "black==24.10.0",
    "click==8.5.1",
    "mypy-extensions==1.2.0",
    "pathspec==1.1.1",
    "platformdirs==4.14.9",
    "opencv-python-headless==4.10.0.84",
    "pyproj==3.7.0",
    "tzdata==2026.6",
];

fn app() -> &'static Path {
    static APP: OnceLock<(Scratch, PathBuf)> = OnceLock::new();
    let (_, path) = APP.get_or_init(|| {
        let scratch = Scratch::new();
        let app = scratch.path("app");
        pip_install(&app, REQUIREMENTS);
        std::fs::copy(
            workspace_root().join("tests/apps/read_by_path/__main__.py"),
            app.join("__main__.py"),
        )
        .expect("copy probe");
        let exe = pack(&app, &scratch.path("read-by-path.bin"), &[]);
        (scratch, exe)
    });
    path
}

const MATPLOTLIB: &[&str] = &[
    "data path True True",
    "savefig True True",
    "findfont DejaVuSans.ttf True",
    "styles True True",
];
const CERTIFI: &[&str] = &["certifi True True"];
const PYTZ: &[&str] = &["pytz Europe/Paris 2:00:00 True True", "zoneinfo file True"];
const MYPYC: &[&str] = &[
    "compiled True True",
    "grammar next to it True",
    "format 'x = (1, 2)\\n'",
];
const OPENCV: &[&str] = &[
    "haarcascades True True",
    "cascade loaded True",
    "faces on a blank image 0",
];
const PYPROJ: &[&str] = &[
    "proj data True True",
    "crs RGF93 v1 / Lambert-93",
    "transform 261846 6250564",
];
const CTYPES: &[&str] = &["ctypes fopen True", "ctypes fopen w None EROFS"];
const WRITES: &[&str] = &["open w EROFS", "remove EROFS", "mkdir EROFS"];

fn probe(check: &str) -> Finished {
    run(Command::new(app()).arg(check))
}

#[track_caller]
fn assert_lines(finished: &Finished, expected: &[&str]) {
    assert_eq!(finished.code, Some(0), "{finished:#?}");
    let lines: Vec<&str> = finished.stdout.lines().collect();
    assert_eq!(lines, expected, "stderr: {}", finished.stderr);
}

#[test]
fn matplotlib_agg_savefig_with_a_title_reads_fonts_through_freetype() {
    assert_lines(&probe("matplotlib"), MATPLOTLIB);
}

#[test]
fn certifi_by_a_hand_built_path_is_an_ssl_cafile() {
    assert_lines(&probe("certifi"), CERTIFI);
}

#[test]
fn pytz_opens_its_zone_files_by_path() {
    assert_lines(&probe("pytz"), PYTZ);
}

#[test]
fn black_compiled_with_mypyc_reads_its_grammar_next_to_the_compiled_module() {
    assert_lines(&probe("mypyc"), MYPYC);
}

#[test]
fn opencv_cpp_loads_a_haar_cascade_from_its_data_directory() {
    assert_lines(&probe("opencv"), OPENCV);
}

#[test]
fn pyproj_proj_opens_proj_db_with_its_own_sqlite() {
    assert_lines(&probe("pyproj"), PYPROJ);
}

#[test]
fn fopen_through_ctypes_reads_a_file_inside_the_archive() {
    assert_lines(&probe("ctypes"), CTYPES);
}

#[test]
fn writes_into_a_package_fail_with_erofs() {
    assert_lines(&probe("writes"), WRITES);
}

/// All of it on a read-only root with no `HOME` and `/tmp` an empty noexec tmpfs: it runs, and
/// nothing is created. matplotlib runs on its own: it makes a temporary cache directory under
/// `/tmp` whenever it finds no writable configuration directory (as under `python3.11`), and
/// removes it at exit; nothing else may be created there either.
#[test]
fn read_only_root_without_home_runs_them_and_nothing_is_created() {
    let checks = [
        "certifi", "pytz", "mypyc", "opencv", "pyproj", "ctypes", "writes",
    ];
    let Some((finished, writes)) = run_on_a_read_only_root(app(), &checks) else {
        return;
    };
    let expected: Vec<&str> = [CERTIFI, PYTZ, MYPYC, OPENCV, PYPROJ, CTYPES, WRITES].concat();
    assert_lines(&finished, &expected);
    assert!(writes.is_empty(), "files were created:\n{writes:#?}");

    let Some((finished, writes)) = run_on_a_read_only_root(app(), &["matplotlib"]) else {
        return;
    };
    assert_lines(&finished, MATPLOTLIB);
    // Absolute paths created or removed are matplotlib's own, under /tmp (its cache directory
    // is emptied through a descriptor at exit: those names are relative).
    let elsewhere: Vec<&String> = writes
        .iter()
        .filter(|line| line.contains("\"/") && !line.contains("\"/tmp/"))
        .collect();
    assert!(elsewhere.is_empty(), "files were created:\n{elsewhere:#?}");
    assert!(
        writes
            .iter()
            .any(|line| line.contains("\"/tmp/matplotlib-")),
        "matplotlib made no cache directory: {writes:#?}"
    );
}
