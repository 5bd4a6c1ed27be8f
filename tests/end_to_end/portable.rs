//! The portable runtime (docs/runtime.md): the launcher and `pyferry` need glibc 2.17 and
//! nothing beyond glibc's own libraries, are position-independent, export the C API (and the
//! archive filesystem's entry points) but none of the C libraries built into them, take their
//! maths from glibc's libm; and packed applications run on other glibcs than the build
//! machine's: Debian 11's 2.31 (the oldest release the registry serves) and Debian 13's 2.41,
//! each a chroot holding that release's libc6 and nothing of Python.

use std::path::{Path, PathBuf};
use std::process::Command;

use pyferry_tests::{debian_root, is_root, launcher, pyferry, run, Finished, Scratch};

use crate::native::natives_app;

/// glibc's own libraries: all a pyferry binary may need.
const GLIBC_LIBRARIES: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "libutil.so.1",
    "ld-linux-x86-64.so.2",
];

/// The newest `GLIBC_2.N` that `file`'s dynamic symbols need.
fn glibc_need(file: &Path) -> u32 {
    let dump = run(Command::new("objdump").arg("-T").arg(file)).success();
    dump.stdout
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter_map(|word| word.strip_prefix("GLIBC_2."))
        .filter_map(|minor| minor.parse::<u32>().ok())
        .max()
        .expect("a dynamically linked executable needs glibc")
}

#[test]
fn launcher_and_pyferry_need_only_glibc_2_17_and_are_position_independent() {
    for file in [launcher(), pyferry()] {
        assert!(
            glibc_need(&file) <= 17,
            "{} needs GLIBC_2.{}",
            file.display(),
            glibc_need(&file)
        );
        let dynamic = run(Command::new("readelf").arg("-d").arg(&file)).success();
        for line in dynamic
            .stdout
            .lines()
            .filter(|line| line.contains("(NEEDED)"))
        {
            let library = line
                .split('[')
                .nth(1)
                .and_then(|rest| rest.split(']').next())
                .unwrap_or_default();
            assert!(
                GLIBC_LIBRARIES.contains(&library),
                "{} needs {library}",
                file.display()
            );
        }
        let header = run(Command::new("readelf").arg("-h").arg(&file)).success();
        assert!(
            header
                .stdout
                .lines()
                .any(|line| line.trim_start().starts_with("Type:") && line.contains("DYN")),
            "{} is not a PIE:\n{}",
            file.display(),
            header.stdout
        );
    }
}

#[test]
fn the_c_api_is_exported_the_c_libraries_are_not_and_maths_come_from_glibc() {
    let dynamic = run(Command::new("nm").arg("-D").arg(launcher())).success();
    let defined: std::collections::HashSet<&str> = dynamic
        .stdout
        .lines()
        .filter(|line| !line.trim_start().starts_with('U') && !line.contains(" U "))
        .filter_map(|line| line.split_whitespace().last())
        .map(|name| name.split('@').next().unwrap_or(name))
        .collect();
    let undefined: std::collections::HashSet<&str> = dynamic
        .stdout
        .lines()
        .filter(|line| line.contains(" U "))
        .filter_map(|line| line.split_whitespace().last())
        .map(|name| name.split('@').next().unwrap_or(name))
        .collect();
    // What extension modules link against: every Py*/_Py* name Debian's libpython3.11.so
    // exports (an independent list of the C API of CPython 3.11).
    let shared = run(Command::new("nm").args([
        "-D",
        "--defined-only",
        "/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0",
    ]))
    .success();
    let api: Vec<&str> = shared
        .stdout
        .lines()
        .filter_map(|line| line.split_whitespace().last())
        .filter(|name| name.starts_with("Py") || name.starts_with("_Py"))
        .collect();
    assert!(api.len() > 1000);
    let missing: Vec<&&str> = api
        .iter()
        .filter(|name| !defined.contains(**name))
        .collect();
    assert!(missing.is_empty(), "C API not exported: {missing:?}");
    // The C libraries built in must never interpose on a wheel's own copies.
    for private in [
        "SSL_new",
        "EVP_DigestInit_ex",
        "sqlite3_open",
        "inflate",
        "XML_ParserCreate",
        "lzma_code",
        "BZ2_bzCompress",
        "ffi_call",
        "uuid_generate_time",
        "initscr",
    ] {
        assert!(!defined.contains(private), "`{private}` is exported");
    }
    // libm's functions come from glibc, not from zig's compiler_rt (whose `log` is wrong for
    // subnormal inputs).
    for function in ["log", "exp", "pow", "sin"] {
        assert!(
            undefined.contains(function) && !defined.contains(function),
            "`{function}` does not come from glibc's libm"
        );
    }
    let scratch = Scratch::new();
    let app = scratch.packed_app(
        &[(
            "__main__.py",
            "import math\nprint(math.log(1e-308), math.exp(-745.0), math.sin(1e-300))\n",
        )],
        &[],
    );
    assert_eq!(
        run(&mut Command::new(&app)).success().stdout,
        "-709.1962086421661 5e-324 1e-300\n"
    );
}

/// Runs `/NAME ARGS` in `root` (a private mount namespace with `/proc` mounted), where NAME is
/// a copy of `app` removed afterwards.
fn run_in_debian_root(root: &Path, app: &Path, args: &str) -> Finished {
    let name = format!("pyferry-test-{}.bin", std::process::id());
    let inside = root.join(&name);
    std::fs::copy(app, &inside).expect("copy the app into the root");
    let zoneinfo = root.join("usr/share/zoneinfo");
    std::fs::create_dir_all(&zoneinfo).expect("create usr/share/zoneinfo");
    if !zoneinfo.join("UTC").exists() {
        std::fs::copy("/usr/share/zoneinfo/UTC", zoneinfo.join("UTC")).expect("copy UTC");
    }
    let script = format!(
        "mount -t proc proc {root}/proc && exec chroot {root} /{name} {args}",
        root = root.display()
    );
    let finished = run(Command::new("unshare")
        .args(["--mount", "--fork", "sh", "-c", &script])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"));
    let _ = std::fs::remove_file(&inside);
    finished
}

/// A hello app that also says which glibc it runs on.
fn hello_app(scratch: &Scratch) -> PathBuf {
    scratch.packed_app(
        &[(
            "__main__.py",
            "import platform, ssl, sqlite3\nprint('hi', *platform.libc_ver(), ssl.OPENSSL_VERSION.split()[0], sqlite3.sqlite_version_info >= (3, 40))\n",
        )],
        &[],
    )
}

/// The natives app's numpy and stdlib checks, as a glibc-only chroot of that Debian release
/// runs them.
fn check_release(suite: &str, packages: &[&str], glibc: &str) {
    let root = debian_root(suite, packages);
    let scratch = Scratch::new();
    let hello = run_in_debian_root(&root, &hello_app(&scratch), "");
    assert_eq!(hello.code, Some(0), "{suite}: {hello:#?}");
    assert_eq!(hello.stdout, format!("hi glibc {glibc} OpenSSL True\n"));
    let natives = run_in_debian_root(&root, natives_app(), "numpy stdlib");
    assert_eq!(natives.code, Some(0), "{suite}: {natives:#?}");
    let lines: Vec<&str> = natives.stdout.lines().collect();
    assert_eq!(lines[0], "det 10.0", "{suite}");
    assert_eq!(lines[4], "random [89, 773, 654, 438]", "{suite}");
    assert_eq!(
        &lines[8..],
        &crate::native::STDLIB_EXPECTED[1..],
        "{suite}: {}",
        natives.stdout
    );
}

#[test]
fn apps_run_on_debian_11_glibc_2_31() {
    if !is_root() {
        eprintln!("skipped: the chroot test needs root");
        return;
    }
    check_release("bullseye", &["libc6", "libstdc++6", "zlib1g"], "2.31");
}

#[test]
fn apps_run_on_debian_13_glibc_2_41() {
    if !is_root() {
        eprintln!("skipped: the chroot test needs root");
        return;
    }
    // The same root as the pyz tests' (trixie's python3.13 is never run here).
    check_release("trixie", &["python3.13", "libstdc++6"], "2.41");
}

/// A certificate authority and a server certificate for 127.0.0.1 signed by it, made with the
/// host's `openssl` in `dir`: (`ca.pem`, `server.pem`, `server.key`).
fn test_authority(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = |args: &[&str]| {
        run(Command::new("openssl").args(args).current_dir(dir)).success();
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=pyferry test CA",
        "-days",
        "2",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.join("san.cnf"), "subjectAltName=IP:127.0.0.1\n").expect("write san.cnf");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// An HTTPS server on 127.0.0.1 (the host's python3), killed on drop.
struct TlsServer {
    child: std::process::Child,
    port: u16,
}

impl TlsServer {
    fn start(certificate: &Path, key: &Path) -> TlsServer {
        use std::io::BufRead;
        let code = format!(
            "import http.server, ssl, sys\n\
             server = http.server.HTTPServer(('127.0.0.1', 0), http.server.SimpleHTTPRequestHandler)\n\
             context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
             context.load_cert_chain({certificate:?}, {key:?})\n\
             server.socket = context.wrap_socket(server.socket, server_side=True)\n\
             print(server.server_address[1], flush=True)\n\
             server.serve_forever()\n",
            certificate = certificate.display().to_string(),
            key = key.display().to_string(),
        );
        let mut child = Command::new("python3")
            .args(["-c", &code])
            .current_dir(certificate.parent().expect("a directory"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the HTTPS server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("read the port");
        let port = line.trim().parse().expect("the server prints its port");
        TlsServer { child, port }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ca_certificates_are_found_on_debian_and_rhel_layouts_or_named_when_missing() {
    if !is_root() {
        eprintln!("skipped: the chroot test needs root");
        return;
    }
    let scratch = Scratch::new();
    let certificates = scratch.path("certificates");
    std::fs::create_dir_all(&certificates).expect("mkdir");
    let (ca, server_certificate, server_key) = test_authority(&certificates);
    let server = TlsServer::start(&server_certificate, &server_key);
    let app = scratch.packed_app(
        &[(
            "__main__.py",
            &format!(
                "import os, ssl, urllib.request\n\
                 try:\n    \
                     status = urllib.request.urlopen('https://127.0.0.1:{port}/').status\n\
                 except OSError as error:\n    \
                     status = type(getattr(error, 'reason', error)).__name__\n\
                 print(status, os.environ.get('SSL_CERT_FILE'))\n",
                port = server.port
            ),
        )],
        &[],
    );
    let layouts: [(&str, &[&str], &str); 3] = [
        // Debian and Ubuntu: the bundle plus hash links in OpenSSL's default directory.
        (
            "debian",
            &["etc/ssl/certs/ca-certificates.crt"],
            "200 None\n",
        ),
        // RHEL, Fedora, Amazon Linux: one bundle elsewhere, found by the launcher.
        (
            "rhel",
            &["etc/pki/tls/certs/ca-bundle.crt"],
            "200 /etc/pki/tls/certs/ca-bundle.crt\n",
        ),
        // Nothing: verification fails, and PYFERRY_INFO names what was tried.
        ("none", &[], "SSLCertVerificationError None\n"),
    ];
    for (layout, bundles, expected) in layouts {
        let root = scratch.path(layout);
        crate::chroot::glibc_root(&root, &[]);
        std::fs::copy(&app, root.join("app.bin")).expect("copy the app");
        for bundle in bundles {
            let path = root.join(bundle);
            std::fs::create_dir_all(path.parent().expect("a directory")).expect("mkdir");
            std::fs::copy(&ca, &path).expect("copy the CA");
        }
        if layout == "debian" {
            run(Command::new("openssl")
                .arg("rehash")
                .arg(root.join("etc/ssl/certs")))
            .success();
        }
        let finished = crate::chroot::run_in_root(&root, "");
        assert_eq!(finished.code, Some(0), "{layout}: {finished:#?}");
        assert_eq!(finished.stdout, expected, "{layout}");
    }
    let info = crate::chroot::run_in_root_with(&scratch.path("none"), "", &[("PYFERRY_INFO", "1")]);
    assert!(
        info.stdout
            .contains("CA certificates:  none found (tried /etc/ssl/cert.pem, /etc/ssl/certs/ca-certificates.crt, /etc/pki/tls/certs/ca-bundle.crt"),
        "{}",
        info.stdout
    );
}
