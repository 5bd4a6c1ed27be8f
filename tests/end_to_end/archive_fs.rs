//! The archive as a read-only filesystem at the executable's own path: Python and C code read,
//! stat and list `/path/app.bin/pkg/...` with nothing extracted, writes fail with `EROFS`, and
//! paths elsewhere behave as they do for `python3.11`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use pyferry_tests::{launcher, pack, run, write_tree, Finished, Scratch};

/// Data files of the probe package, besides its code.
const DATA: &[(&str, &str)] = &[
    ("pkg/__init__.py", "VALUE = 1\n"),
    ("pkg/data/a.txt", "alpha\nbeta\ngamma\n"),
    ("pkg/data/sub/b.json", "{\"b\": 2}\n"),
    ("pkg/data/sub/deeper/c.css", "body { color: red }\n"),
    ("pkg/helper.py", "def line():\n    return 'helper line'\n"),
];

/// Python reads the package's own files in every way the issue lists.
const READ_PROBE: &str = r#"
import glob, io, linecache, mmap, os, pathlib, pkgutil, shutil, stat, sys, tempfile
import pkg, pkg.helper
here = os.path.dirname(pkg.__file__)
data = os.path.join(here, "data")
a = os.path.join(data, "a.txt")
print("prefix", here == sys.executable + "/pkg")
with open(a) as f:
    print("text", f.readline().strip(), f.read().split())
with open(a, "rb") as f:
    f.seek(6); print("seek", f.read(4), f.tell())
    buffer = bytearray(5); f.seek(0); print("readinto", f.readinto(buffer), bytes(buffer))
with io.FileIO(a) as f:
    print("fileio", f.read(), f.mode)
with open(a, "rb") as f:
    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        print("mmap", m[:5], len(m), m.find(b"gamma"))
    print("fstat", os.fstat(f.fileno()).st_size, os.path.samestat(os.fstat(f.fileno()), os.stat(a)))
fd = os.open(a, os.O_RDONLY)
print("os.open", os.pread(fd, 4, 6), os.lseek(fd, 0, os.SEEK_END))
os.close(fd)
st = os.stat(a)
print("stat", stat.filemode(st.st_mode), st.st_size, os.lstat(a) == st, stat.filemode(os.stat(data).st_mode))
print("access", os.access(a, os.R_OK), os.access(a, os.W_OK), os.access(a, os.X_OK), os.access(data, os.X_OK))
print("path", os.path.exists(a), os.path.isfile(a), os.path.isdir(data), os.path.isfile(data),
      os.path.getsize(a), os.path.exists(a + ".nope"))
print("realpath", os.path.realpath(data + "/sub/../a.txt") == a, os.path.realpath(here + "//data/.") == data)
print("listdir", sorted(os.listdir(data)), sorted(n for n in os.listdir(here) if not n.endswith(".pyc")))
with os.scandir(data) as entries:
    print("scandir", sorted((e.name, e.is_dir(), e.is_file(), e.stat().st_size if e.is_file() else -1) for e in entries))
print("walk", [(os.path.relpath(d, data), sorted(ds), sorted(fs)) for d, ds, fs in os.walk(data)])
print("fwalk", sorted(os.path.relpath(d, data) for d, _, _, _ in os.fwalk(data)))
print("glob", sorted(os.path.relpath(p, data) for p in glob.glob(data + "/**/*.*", recursive=True)))
print("glob root", sorted(os.path.basename(p) for p in glob.glob(sys.executable + "/pkg/*.py")))
path = pathlib.Path(pkg.__file__).parent / "data"
print("pathlib", (path / "a.txt").read_text().split()[0], sorted(p.name for p in path.iterdir()),
      sorted(str(p.relative_to(path)) for p in path.glob("**/*.css")), (path / "a.txt").is_file(), path.is_dir())
target = tempfile.mkdtemp()
shutil.copy(a, target)
shutil.copytree(data, os.path.join(target, "tree"))
copied = os.path.join(target, "tree", "sub", "deeper", "c.css")
print("copy", open(os.path.join(target, "a.txt")).read().split()[-1], open(copied).read().strip(),
      stat.filemode(os.stat(copied).st_mode), stat.filemode(os.stat(os.path.join(target, "tree")).st_mode))
shutil.rmtree(target)
print("get_data", pkgutil.get_data("pkg", "data/sub/b.json"))
print("linecache", linecache.getline(pkg.helper.__file__, 2).strip())
print("listdir root", "pkg" in os.listdir(sys.executable), os.path.isfile(sys.executable))
print("listdir fd", sorted(os.listdir(os.open(data, os.O_RDONLY))))
"#;

const READ_EXPECTED: &[&str] = &[
    "prefix True",
    "text alpha ['beta', 'gamma']",
    "seek b'beta' 10",
    "readinto 5 b'alpha'",
    "fileio b'alpha\\nbeta\\ngamma\\n' rb",
    "mmap b'alpha' 17 11",
    "fstat 17 True",
    "os.open b'beta' 17",
    "stat -rw-r--r-- 17 True drwxr-xr-x",
    "access True False False True",
    "path True True True False 17 False",
    "realpath True True",
    "listdir ['a.txt', 'sub'] ['__init__.py', 'data', 'helper.py']",
    "scandir [('a.txt', False, True, 17), ('sub', True, False, -1)]",
    "walk [('.', ['sub'], ['a.txt']), ('sub', ['deeper'], ['b.json']), ('sub/deeper', [], ['c.css'])]",
    "fwalk ['.', 'sub', 'sub/deeper']",
    "glob ['a.txt', 'sub/b.json', 'sub/deeper/c.css']",
    "glob root ['__init__.py', 'helper.py']",
    "pathlib alpha ['a.txt', 'sub'] ['sub/deeper/c.css'] True True",
    "copy gamma body { color: red } -rw-r--r-- drwxr-xr-x",
    "get_data b'{\"b\": 2}\\n'",
    "linecache return 'helper line'",
    "listdir root True True",
    "listdir fd ['a.txt', 'sub']",
];

/// Writes, creations, renames and removals under the archive, and the kernel's errors for paths
/// that do not resolve: the error number and its name, one line each.
const ERRORS_PROBE: &str = r#"
import errno, os, shutil, sys, tempfile
import pkg
data = os.path.join(os.path.dirname(pkg.__file__), "data")
a = os.path.join(data, "a.txt")
outside = tempfile.mkdtemp()
def attempt(name, call):
    try:
        call()
        print(name, "ok")
    except OSError as error:
        print(name, errno.errorcode[error.errno])
attempt("open w", lambda: open(a, "w"))
attempt("open a", lambda: open(a, "a"))
attempt("open r+", lambda: open(a, "r+"))
attempt("open x existing", lambda: open(a, "x"))
attempt("open w new", lambda: open(data + "/new.txt", "w"))
attempt("open w new in missing dir", lambda: open(data + "/nope/new.txt", "w"))
attempt("os.open trunc", lambda: os.open(a, os.O_RDONLY | os.O_TRUNC))
attempt("open dir for writing", lambda: os.open(data, os.O_WRONLY))
attempt("open dir", lambda: open(data))
attempt("open missing", lambda: open(data + "/missing.txt"))
attempt("open through a file", lambda: open(a + "/x"))
attempt("open file as directory", lambda: os.open(a, os.O_RDONLY | os.O_DIRECTORY))
attempt("listdir file", lambda: os.listdir(a))
attempt("listdir missing", lambda: os.listdir(data + "/missing"))
attempt("stat trailing slash on file", lambda: os.stat(a + "/"))
attempt("stat above the root", lambda: os.stat(sys.executable + "/.."))
attempt("mkdir", lambda: os.mkdir(data + "/newdir"))
attempt("mkdir existing", lambda: os.mkdir(data + "/sub"))
attempt("makedirs exist_ok", lambda: os.makedirs(data + "/sub", exist_ok=True))
attempt("makedirs new", lambda: os.makedirs(data + "/x/y", exist_ok=True))
attempt("rmdir", lambda: os.rmdir(data + "/sub"))
attempt("remove", lambda: os.remove(a))
attempt("remove missing", lambda: os.remove(data + "/missing.txt"))
attempt("rename inside", lambda: os.rename(a, data + "/b.txt"))
attempt("rename out", lambda: os.rename(a, outside + "/a.txt"))
attempt("rename in", lambda: os.rename(outside, data + "/moved"))
attempt("replace", lambda: os.replace(a, a))
attempt("chmod", lambda: os.chmod(a, 0o600))
attempt("utime", lambda: os.utime(a))
attempt("truncate", lambda: os.truncate(a, 0))
attempt("symlink", lambda: os.symlink("/etc/hostname", data + "/link"))
attempt("link out", lambda: os.link(a, outside + "/hard"))
attempt("rmtree", lambda: shutil.rmtree(data))
attempt("move out", lambda: shutil.move(a, outside))
print("still there", open(a).read().split()[0], sorted(os.listdir(data)))
attempt("write to read descriptor", lambda: os.write(os.open(a, os.O_RDONLY), b"x"))
print("moved copy", sorted(os.listdir(outside)))
"#;

const ERRORS_EXPECTED: &[&str] = &[
    "open w EROFS",
    "open a EROFS",
    "open r+ EROFS",
    "open x existing EEXIST",
    "open w new EROFS",
    "open w new in missing dir ENOENT",
    "os.open trunc EROFS",
    "open dir for writing EISDIR",
    "open dir EISDIR",
    "open missing ENOENT",
    "open through a file ENOTDIR",
    "open file as directory ENOTDIR",
    "listdir file ENOTDIR",
    "listdir missing ENOENT",
    "stat trailing slash on file ENOTDIR",
    "stat above the root ENOTDIR",
    "mkdir EROFS",
    "mkdir existing EEXIST",
    "makedirs exist_ok ok",
    "makedirs new EROFS",
    "rmdir EROFS",
    "remove EROFS",
    "remove missing EROFS",
    "rename inside EROFS",
    "rename out EXDEV",
    "rename in EXDEV",
    "replace EROFS",
    "chmod EROFS",
    "utime EROFS",
    "truncate EROFS",
    "symlink EROFS",
    "link out EXDEV",
    "rmtree EROFS",
    "move out EROFS",
    "still there alpha ['a.txt', 'sub']",
    "write to read descriptor EBADF",
    "moved copy ['a.txt']",
];

/// The probe app, packed once.
fn app() -> &'static (Scratch, PathBuf) {
    static APP: OnceLock<(Scratch, PathBuf)> = OnceLock::new();
    APP.get_or_init(|| {
        let scratch = Scratch::new();
        let mut files = DATA.to_vec();
        files.push(("__main__.py", MAIN));
        files.push(("read_probe.py", READ_PROBE));
        files.push(("errors_probe.py", ERRORS_PROBE));
        let exe = scratch.packed_app(&files, &[]);
        (scratch, exe)
    })
}

/// Runs the probe module named by the first argument (or `-c CODE`).
const MAIN: &str = r#"
import runpy, sys
if sys.argv[1] == "-c":
    exec(sys.argv[2])
else:
    runpy.run_module(sys.argv[1], run_name="__main__")
"#;

fn probe(exe: &Path, module: &str) -> Finished {
    run(Command::new(exe).arg(module))
}

#[track_caller]
fn assert_lines(finished: &Finished, expected: &[&str]) {
    assert_eq!(finished.code, Some(0), "{finished:#?}");
    let lines: Vec<&str> = finished.stdout.lines().collect();
    for (index, expected) in expected.iter().enumerate() {
        assert_eq!(
            lines.get(index).copied(),
            Some(*expected),
            "line {index}:\n{}\n{}",
            finished.stdout,
            finished.stderr
        );
    }
    assert_eq!(lines.len(), expected.len(), "{}", finished.stdout);
}

#[test]
fn python_reads_the_packages_own_files_by_path() {
    let (_, exe) = app();
    assert_lines(&probe(exe, "read_probe"), READ_EXPECTED);
}

#[test]
fn writes_under_the_archive_fail_with_erofs_and_errors_are_the_kernels() {
    let (_, exe) = app();
    let before = std::fs::read(exe).expect("read the executable");
    assert_lines(&probe(exe, "errors_probe"), ERRORS_EXPECTED);
    assert!(
        std::fs::read(exe).expect("read the executable") == before,
        "the executable changed"
    );
}

#[test]
fn the_switch_off_leaves_archive_paths_to_the_kernel() {
    let (_, exe) = app();
    let finished = run(Command::new(exe)
        .args([
            "-c",
            "import os, pkg\nos.stat(os.path.dirname(pkg.__file__))",
        ])
        .env("PYFERRY_ARCHIVE_FS", "0"));
    assert_eq!(finished.code, Some(1), "{finished:#?}");
    assert!(
        finished.stderr.contains("NotADirectoryError: [Errno 20]"),
        "{}",
        finished.stderr
    );
}

/// An extension module in C that reads archive files through glibc as C libraries do:
/// `fopen`, `open` (also fortified, with flags the compiler cannot see), the `stat` family in
/// both ABIs (`stat64` since glibc 2.33, `__xstat64` & co. before, which manylinux wheels call),
/// `opendir`/`readdir`, `scandir`, `openat`/`fstatat` from a directory descriptor, `mmap`,
/// `realpath`, `access`.
const C_EXTENSION: &str = r#"
#define _GNU_SOURCE
#include <Python.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The pre-2.33 ABI: what a wheel built against older glibc headers calls for stat(). */
extern int __xstat64(int, const char *, struct stat64 *);
extern int __lxstat64(int, const char *, struct stat64 *);
extern int __fxstat64(int, int, struct stat64 *);
extern int __fxstatat64(int, int, const char *, struct stat64 *, int);
extern int __xmknod(int, const char *, mode_t, dev_t *);

static char out[8192];
static size_t used;
static void say(const char *format, ...) {
    va_list args;
    va_start(args, format);
    used += vsnprintf(out + used, sizeof out - used, format, args);
    va_end(args);
}

static PyObject *probe(PyObject *self, PyObject *arg) {
    const char *dir = PyUnicode_AsUTF8(arg);
    char path[PATH_MAX], line[64] = "";
    struct stat st;
    struct stat64 st64;
    used = 0;
    snprintf(path, sizeof path, "%s/a.txt", dir);

    FILE *file = fopen(path, "re");
    if (file && fgets(line, sizeof line, file)) line[strcspn(line, "\n")] = 0;
    say("fopen %s\n", file ? line : strerror(errno));
    if (file) fclose(file);

    volatile int flags = O_RDONLY;
    int fd = open(path, flags);
    ssize_t got = fd >= 0 ? read(fd, line, 5) : -1;
    line[got > 0 ? got : 0] = 0;
    say("open %s cloexec %d\n", line, fd >= 0 ? (fcntl(fd, F_GETFD) & FD_CLOEXEC) : -1);
    char *mapped = fd >= 0 ? mmap(NULL, 17, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    say("mmap %.4s\n", mapped == MAP_FAILED ? "fail" : mapped + 6);
    int result = fstat(fd, &st);
    say("fstat %d %lld\n", result, (long long)st.st_size);
    result = __fxstat64(1, fd, &st64);
    say("__fxstat64 %d %lld\n", result, (long long)st64.st_size);
    if (fd >= 0) close(fd);

    result = stat(path, &st);
    say("stat %d %d %lld\n", result, S_ISREG(st.st_mode), (long long)st.st_size);
    result = stat(dir, &st);
    say("stat dir %d %d\n", result, S_ISDIR(st.st_mode));
    result = __xstat64(1, path, &st64);
    say("__xstat64 %d %d %lld\n", result, S_ISREG(st64.st_mode), (long long)st64.st_size);
    result = __lxstat64(1, dir, &st64);
    say("__lxstat64 dir %d %d\n", result, S_ISDIR(st64.st_mode));
    result = __xstat64(1, "/nonexistent-pyferry", &st64);
    say("__xstat64 missing %d %s\n", result, strerrorname_np(errno));
    result = __xstat64(99, path, &st64);
    say("__xstat64 bad version %d %s\n", result, strerrorname_np(errno));

    DIR *listing = opendir(dir);
    say("readdir");
    struct dirent *entry;
    while (listing && (entry = readdir(listing))) say(" %s:%c", entry->d_name, entry->d_type == DT_DIR ? 'd' : 'f');
    say("\n");
    if (listing) {
        int dfd = dirfd(listing);
        int sub = openat(dfd, "sub/b.json", O_RDONLY);
        got = sub >= 0 ? read(sub, line, 8) : -1;
        line[got > 0 ? got : 0] = 0;
        say("openat %s\n", line);
        if (sub >= 0) close(sub);
        result = fstatat(dfd, "sub", &st, 0);
        say("fstatat %d %d\n", result, S_ISDIR(st.st_mode));
        result = __fxstatat64(1, dfd, "a.txt", &st64, 0);
        say("__fxstatat64 %d %lld\n", result, (long long)st64.st_size);
        closedir(listing);
    }

    struct dirent **names;
    int count = scandir(dir, &names, NULL, alphasort);
    say("scandir %d", count);
    for (int i = 0; i < count; i++) { say(" %s", names[i]->d_name); free(names[i]); }
    if (count >= 0) free(names);
    say("\n");

    char resolved[PATH_MAX], twisted[PATH_MAX];
    snprintf(twisted, sizeof twisted, "%s/sub/../a.txt", dir);
    say("realpath %d\n", realpath(twisted, resolved) && strcmp(resolved, path) == 0);
    errno = 0;
    int readable = access(path, R_OK), writable = access(path, W_OK);
    say("access %d %d %s\n", readable, writable, strerrorname_np(errno));
    errno = 0;
    FILE *written = fopen(path, "w");
    say("fopen w %s %s\n", written ? "opened" : "null", strerrorname_np(errno));
    char fifo[PATH_MAX];
    dev_t device = 0;
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    result = __xmknod(0, fifo, S_IFIFO | 0644, &device);
    say("__xmknod %d %s\n", result, strerrorname_np(errno));
    result = mkfifo(fifo, 0644);
    say("mkfifo %d %s\n", result, strerrorname_np(errno));
    return PyUnicode_FromString(out);
}

static PyMethodDef methods[] = {{"probe", probe, METH_O, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "cfs", NULL, -1, methods};
PyMODINIT_FUNC PyInit_cfs(void) { return PyModule_Create(&module); }
"#;

const C_EXPECTED: &[&str] = &[
    "fopen alpha",
    "open alpha cloexec 0",
    "mmap beta",
    "fstat 0 17",
    "__fxstat64 0 17",
    "stat 0 1 17",
    "stat dir 0 1",
    "__xstat64 0 1 17",
    "__lxstat64 dir 0 1",
    "__xstat64 missing -1 ENOENT",
    "__xstat64 bad version -1 EINVAL",
    "readdir .:d ..:d a.txt:f sub:d",
    "openat {\"b\": 2}",
    "fstatat 0 1",
    "__fxstatat64 0 17",
    "scandir 4 . .. a.txt sub",
    "realpath 1",
    "access 0 -1 EROFS",
    "fopen w null EROFS",
    "__xmknod -1 EROFS",
    "mkfifo -1 EROFS",
];

/// An extension module in C++: `std::ifstream` and `std::filesystem` on archive paths.
const CPP_EXTENSION: &str = r#"
#include <Python.h>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

static PyObject *probe(PyObject *self, PyObject *arg) {
    std::string dir = PyUnicode_AsUTF8(arg), out, line;
    std::ifstream stream(dir + "/a.txt");
    std::getline(stream, line);
    std::getline(stream, line);
    out += "ifstream " + line + "\n";
    std::error_code error;
    std::vector<std::string> names;
    for (auto &entry : std::filesystem::directory_iterator(dir, error))
        names.push_back(entry.path().filename().string() + (entry.is_directory() ? "/" : ""));
    std::sort(names.begin(), names.end());
    out += "directory_iterator";
    for (auto &name : names) out += " " + name;
    out += "\n";
    out += "file_size " + std::to_string(std::filesystem::file_size(dir + "/a.txt", error)) + "\n";
    out += "exists " + std::to_string(std::filesystem::exists(dir + "/sub/deeper/c.css")) + " " +
           std::to_string(std::filesystem::exists(dir + "/nope")) + "\n";
    std::ofstream written(dir + "/new.txt");
    out += "ofstream " + std::string(written.is_open() ? "open" : "failed") + "\n";
    return PyUnicode_FromString(out.c_str());
}

static PyMethodDef methods[] = {{"probe", probe, METH_O, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "cppfs", NULL, -1, methods};
PyMODINIT_FUNC PyInit_cppfs(void) { return PyModule_Create(&module); }
"#;

const CPP_EXPECTED: &[&str] = &[
    "ifstream beta",
    "directory_iterator a.txt sub/",
    "file_size 17",
    "exists 1 0",
    "ofstream failed",
];

/// Compiles `source` into extension module `pkg/NAME` of `app` with `compiler`.
fn compile_extension(compiler: &str, name: &str, source: &str, extra: &[&str], app: &Path) {
    let build = app.parent().expect("a parent").join("build");
    let file = if compiler == "g++" {
        format!("{name}.cpp")
    } else {
        format!("{name}.c")
    };
    write_tree(&build, &[(file.as_str(), source)]);
    let output = app.join(format!("pkg/{name}.cpython-311-x86_64-linux-gnu.so"));
    let finished = run(Command::new(compiler)
        .args([
            "-shared",
            "-fPIC",
            "-O2",
            "-D_FORTIFY_SOURCE=2",
            "-I/usr/include/python3.11",
        ])
        .args(extra)
        .arg("-o")
        .arg(&output)
        .arg(&file)
        .current_dir(&build));
    assert_eq!(finished.code, Some(0), "{compiler} {name}: {finished:#?}");
}

#[test]
fn c_and_cpp_extensions_read_archive_files_through_glibc() {
    let scratch = Scratch::new();
    let app = scratch.path("app");
    let mut files = DATA.to_vec();
    files.push((
        "__main__.py",
        "import os, pkg\nfrom pkg import cfs, cppfs\ndata = os.path.join(os.path.dirname(pkg.__file__), 'data')\nprint(cfs.probe(data), end='')\nprint(cppfs.probe(data), end='')\n",
    ));
    write_tree(&app, &files);
    compile_extension("gcc", "cfs", C_EXTENSION, &[], &app);
    compile_extension("g++", "cppfs", CPP_EXTENSION, &["-std=c++17"], &app);
    let exe = pack(&app, &scratch.path("cfs.bin"), &[]);
    let expected: Vec<&str> = C_EXPECTED.iter().chain(CPP_EXPECTED).copied().collect();
    assert_lines(&run(&mut Command::new(&exe)), &expected);
}

#[test]
fn the_launcher_exports_the_glibc_functions_it_serves() {
    let finished = run(Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(launcher()));
    assert_eq!(finished.code, Some(0), "{finished:#?}");
    let defined: Vec<&str> = finished
        .stdout
        .lines()
        .filter_map(|line| line.split_whitespace().last())
        .collect();
    for name in [
        "open",
        "open64",
        "openat",
        "openat64",
        "__open_2",
        "__open64_2",
        "__openat_2",
        "__openat64_2",
        "fopen",
        "fopen64",
        "freopen",
        "stat",
        "stat64",
        "lstat",
        "lstat64",
        "fstat",
        "fstat64",
        "fstatat",
        "fstatat64",
        "__xstat",
        "__xstat64",
        "__lxstat",
        "__lxstat64",
        "__fxstat",
        "__fxstat64",
        "__fxstatat",
        "__fxstatat64",
        "statx",
        "access",
        "faccessat",
        "opendir",
        "fdopendir",
        "readdir",
        "readdir64",
        "closedir",
        "dirfd",
        "rewinddir",
        "scandir",
        "readlink",
        "realpath",
        "dlopen",
        "mkdir",
        "unlink",
        "rename",
        "renameat",
        "rmdir",
        "chmod",
        "utimensat",
        "listxattr",
        "dup",
        "dup2",
        "fcntl",
    ] {
        assert!(defined.contains(&name), "`{name}` is not exported");
    }
}

/// The archive reached by other spellings of its path: relative to the working directory or to
/// a directory descriptor, through a symbolic link to the executable's directory or to the
/// executable, with `//` and `.`; a real directory elsewhere that is named like the executable
/// stays itself.
const SPELLINGS_PROBE: &str = r#"
import os, sys
directory, name = os.path.split(sys.executable)
inside = name + "/pkg/data/a.txt"
os.chdir(directory)
print("relative", open(inside).readline().strip(), os.path.isdir(name + "/pkg"))
os.chdir("elsewhere")
print("dotdot", open("../" + inside).readline().strip())
print("lookalike", open(inside).read().strip(), sorted(os.listdir(name)))
print("symlink", open(os.path.join(directory, "link", inside)).readline().strip(),
      open(os.path.join(directory, "bin", inside)).readline().strip())
print("spelled oddly", os.path.isfile("/" + directory + "//" + name + "/./pkg//data/../data/a.txt"))
fd = os.open(directory, os.O_RDONLY)
print("dir_fd", os.stat(inside, dir_fd=fd).st_size, os.stat("elsewhere/" + inside, dir_fd=fd).st_size)
print("itself", os.path.isfile(sys.executable), os.path.isdir(sys.executable + "/"))
"#;

#[test]
fn other_spellings_of_the_path_reach_the_archive_and_lookalikes_stay_real() {
    let (scratch, exe) = app();
    let directory = exe.parent().expect("a directory");
    let name = exe.file_name().expect("a name").to_string_lossy();
    let lookalike = scratch.path(&format!("elsewhere/{name}/pkg/data"));
    std::fs::create_dir_all(&lookalike).expect("mkdir");
    std::fs::write(lookalike.join("a.txt"), "a real file\n").expect("write");
    // A symbolic link to the executable's directory, and one named like it to the executable.
    let link = directory.join("link");
    if !link.exists() {
        std::os::unix::fs::symlink(directory, &link).expect("symlink");
    }
    let bin = directory.join("bin");
    if !bin.exists() {
        std::fs::create_dir(&bin).expect("mkdir");
        std::os::unix::fs::symlink(exe, bin.join(&*name)).expect("symlink");
    }
    let finished = run(Command::new(exe).args(["-c", SPELLINGS_PROBE]));
    assert_lines(
        &finished,
        &[
            "relative alpha True",
            "dotdot alpha",
            "lookalike a real file ['pkg']",
            "symlink alpha alpha",
            "spelled oddly True",
            "dir_fd 17 12",
            "itself True True",
        ],
    );
}

/// File operations on a real directory (given as the first argument): what they print must be
/// the same for the packed app and for `python3.11`.
const OUTSIDE_PROBE: &str = r#"
import errno, glob, os, shutil, stat, sys
root = sys.argv[-1]
def attempt(name, call):
    try:
        result = call()
        print(name, "ok", result if isinstance(result, (bool, int, str, list)) else "")
    except OSError as error:
        print(name, errno.errorcode[error.errno])
os.makedirs(os.path.join(root, "d/e"))
open(os.path.join(root, "d/f.txt"), "w").write("text")
os.symlink("f.txt", os.path.join(root, "d/link"))
attempt("stat", lambda: os.stat(os.path.join(root, "d/f.txt")).st_size)
attempt("lstat link", lambda: stat.S_ISLNK(os.lstat(os.path.join(root, "d/link")).st_mode))
attempt("readlink", lambda: os.readlink(os.path.join(root, "d/link")))
attempt("realpath", lambda: os.path.relpath(os.path.realpath(os.path.join(root, "d/link")), root))
attempt("through a file", lambda: os.stat(os.path.join(root, "d/f.txt/x")))
attempt("missing", lambda: open(os.path.join(root, "nope")))
attempt("open dir", lambda: open(os.path.join(root, "d")))
attempt("listdir file", lambda: os.listdir(os.path.join(root, "d/f.txt")))
attempt("listdir", lambda: sorted(os.listdir(os.path.join(root, "d"))))
attempt("scandir", lambda: sorted((e.name, e.is_dir(), e.is_symlink()) for e in os.scandir(os.path.join(root, "d"))).__str__())
attempt("walk", lambda: [(os.path.relpath(d, root), sorted(ds), sorted(fs)) for d, ds, fs in os.walk(root)].__str__())
attempt("fwalk", lambda: sorted(os.path.relpath(d, root) for d, _, _, _ in os.fwalk(root)))
attempt("glob", lambda: sorted(os.path.relpath(p, root) for p in glob.glob(root + "/**", recursive=True)))
attempt("access w", lambda: os.access(os.path.join(root, "d/f.txt"), os.W_OK))
attempt("chmod", lambda: os.chmod(os.path.join(root, "d/f.txt"), 0o600))
attempt("mode", lambda: stat.filemode(os.stat(os.path.join(root, "d/f.txt")).st_mode))
attempt("rename", lambda: os.rename(os.path.join(root, "d/f.txt"), os.path.join(root, "d/g.txt")))
attempt("copytree", lambda: shutil.copytree(os.path.join(root, "d"), os.path.join(root, "copy"), symlinks=True) and None)
attempt("mkdir existing", lambda: os.mkdir(os.path.join(root, "d")))
attempt("rmdir not empty", lambda: os.rmdir(os.path.join(root, "d")))
attempt("unlink", lambda: os.unlink(os.path.join(root, "d/g.txt")))
attempt("rmtree", lambda: shutil.rmtree(os.path.join(root, "copy")))
attempt("left", lambda: sorted(os.listdir(root)))
"#;

#[test]
fn paths_outside_the_archive_behave_as_for_python() {
    let (scratch, exe) = app();
    let outputs: Vec<Finished> = ["packed", "python"]
        .iter()
        .map(|kind| {
            let root = scratch.path(&format!("outside-{kind}"));
            std::fs::create_dir_all(&root).expect("mkdir");
            let mut command = if *kind == "packed" {
                let mut command = Command::new(exe);
                command.args(["-c", OUTSIDE_PROBE]);
                command
            } else {
                let mut command = Command::new("python3.11");
                command.args(["-I", "-c", OUTSIDE_PROBE]);
                command
            };
            run(command.arg(&root))
        })
        .collect();
    assert_eq!(outputs[0].code, Some(0), "{:#?}", outputs[0]);
    assert_eq!(outputs[0].stdout, outputs[1].stdout);
    assert!(
        outputs[0].stdout.contains("through a file ENOTDIR"),
        "{}",
        outputs[0].stdout
    );
}

/// Archive descriptors are real descriptors: a child process reads one as its standard input or
/// inherits it, duplicates describe the same file, forked children and threads open archive
/// files while others start processes.
const DESCRIPTORS_PROBE: &str = r#"
import os, subprocess, sys, threading
import pkg
a = os.path.join(os.path.dirname(pkg.__file__), "data", "a.txt")
with open(a, "rb") as file:
    print("stdin of a child", subprocess.run(["cat"], stdin=file, capture_output=True).stdout)
fd = os.open(a, os.O_RDONLY)
print("inherited", subprocess.run(["sh", "-c", f"cat <&{fd}"], pass_fds=[fd], capture_output=True).stdout)
duplicate = os.dup(fd)
os.dup2(fd, 100)
print("dup", os.fstat(duplicate).st_ino == os.stat(a).st_ino, os.fstat(100).st_ino == os.stat(a).st_ino)
os.close(fd)
replaced = os.open("/dev/null", os.O_RDONLY)
print("reused number", replaced == fd, os.fstat(replaced).st_ino != os.stat(a).st_ino)
pid = os.fork()
if pid == 0:
    os._exit(0 if open(a).read().startswith("alpha") else 3)
print("fork", os.waitpid(pid, 0)[1])
failures = []
def reader():
    for _ in range(200):
        if open(a).read() != "alpha\nbeta\ngamma\n":
            failures.append("read")
def starter():
    for _ in range(20):
        if subprocess.run(["true"]).returncode != 0:
            failures.append("child")
threads = [threading.Thread(target=reader) for _ in range(6)] + [threading.Thread(target=starter) for _ in range(2)]
for thread in threads: thread.start()
for thread in threads: thread.join()
print("threads", failures)
print("descriptors left", len(os.listdir("/proc/self/fd")) < 12)
"#;

#[test]
fn archive_descriptors_work_across_dup_fork_exec_and_threads() {
    let (_, exe) = app();
    assert_lines(
        &run(Command::new(exe).args(["-c", DESCRIPTORS_PROBE])),
        &[
            "stdin of a child b'alpha\\nbeta\\ngamma\\n'",
            "inherited b'alpha\\nbeta\\ngamma\\n'",
            "dup True True",
            "reused number True True",
            "fork 0",
            "threads []",
            "descriptors left True",
        ],
    );
}

#[test]
fn sqlite_reads_a_database_inside_the_archive() {
    let scratch = Scratch::new();
    let app = scratch.path("app");
    write_tree(&app, &[("pkg/__init__.py", ""), ("__main__.py", "import os, sqlite3, pkg\npath = os.path.join(os.path.dirname(pkg.__file__), 'data.db')\nconnection = sqlite3.connect(f'file:{path}?mode=ro', uri=True)\nprint(connection.execute('select name from t order by name').fetchall())\ntry:\n    connection.execute(\"insert into t values ('c')\")\nexcept sqlite3.OperationalError as error:\n    print(error)\n")]);
    let made = run(Command::new("python3.11").args([
        "-c",
        "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.execute('create table t (name text)')\nc.executemany('insert into t values (?)', [('a',), ('b',)])\nc.commit()\n",
    ]).arg(app.join("pkg/data.db")));
    assert_eq!(made.code, Some(0), "{made:#?}");
    let exe = pack(&app, &scratch.path("sqlite.bin"), &[]);
    assert_lines(
        &run(&mut Command::new(exe)),
        &["[('a',), ('b',)]", "attempt to write a readonly database"],
    );
}

/// A plain C library (32-bit file offsets: `stat`, `open`, `readdir`, not their `64` forms)
/// shipped inside a package and loaded by its path with `ctypes`: `dlopen` loads it from memory,
/// and the package is not extracted.
const PLAIN_LIBRARY: &str = r#"
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int plain_probe(const char *dir, char *out, int size) {
    char path[4096], line[32] = "";
    struct stat st;
    snprintf(path, sizeof path, "%s/a.txt", dir);
    int fd = open(path, O_RDONLY);
    int got = fd >= 0 ? read(fd, line, 5) : -1;
    line[got > 0 ? got : 0] = 0;
    if (fd >= 0) close(fd);
    int stat_result = stat(path, &st);
    int entries = 0;
    DIR *listing = opendir(dir);
    while (listing && readdir(listing)) entries++;
    if (listing) closedir(listing);
    FILE *file = fopen(path, "r");
    char first[32] = "";
    if (file) { fgets(first, sizeof first, file); fclose(file); }
    first[strcspn(first, "\n")] = 0;
    return snprintf(out, size, "open %s stat %d %ld entries %d fopen %s", line, stat_result, (long)st.st_size, entries, first);
}
"#;

#[test]
fn ctypes_loads_a_library_inside_the_archive_from_memory() {
    let scratch = Scratch::new();
    let app = scratch.path("app");
    let mut files = DATA.to_vec();
    files.push((
        "__main__.py",
        "import ctypes, os, sys, pkg\npath = os.path.join(os.path.dirname(pkg.__file__), 'lib', 'libplain.so')\nlibrary = ctypes.CDLL(path)\nout = ctypes.create_string_buffer(200)\nlibrary.plain_probe(os.path.join(os.path.dirname(pkg.__file__), 'data').encode(), out, 200)\nprint(out.value.decode())\nmaps = open('/proc/self/maps').read()\nprint('mapped from memory', path not in maps and 'libplain.so' in maps)\nprint('again', ctypes.CDLL(path)._handle == library._handle)\n",
    ));
    write_tree(&app, &files);
    let build = scratch.path("build");
    write_tree(&build, &[("plain.c", PLAIN_LIBRARY)]);
    std::fs::create_dir_all(app.join("pkg/lib")).expect("mkdir");
    let compiled = run(Command::new("gcc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(app.join("pkg/lib/libplain.so"))
        .arg("plain.c")
        .current_dir(&build));
    assert_eq!(compiled.code, Some(0), "{compiled:#?}");
    let exe = pack(&app, &scratch.path("plain.bin"), &[]);
    assert_lines(
        &run(&mut Command::new(exe)),
        &[
            "open alpha stat 0 17 entries 4 fopen alpha",
            "mapped from memory True",
            "again True",
        ],
    );
}
