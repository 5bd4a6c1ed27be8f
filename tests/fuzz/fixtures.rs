//! The files the fuzz tests damage: a small synthetic payload, its zip64 twin, a real packed
//! app, and crafted archives (bombs, duplicates, path traversal names, foreign files).

use std::io::Cursor;
use std::sync::OnceLock;

use pyferry_payload::{Compression, EntryPoint, Manifest, PayloadWriter, FORMAT_VERSION};
use pyferry_tests::damage::{self, RawEntry, ZipWriter};
use pyferry_tests::{launcher, pip_install, Scratch};

/// What the real app prints.
pub const HELLO_OUTPUT: &str = "hello 42\n";

/// The wheel the real app packs: an extension module (`zmq.backend.cython._zmq`) that needs a
/// vendored library (`pyzmq.libs/libzmq`), which needs another (`libsodium`): the standard
/// library's own extension modules are built into the launcher, so the shared objects damage
/// aims at come from a real wheel, as `pyferry pack` writes them.
pub const WHEEL: &str = "pyzmq==27.3.0";

/// The extension module and the libraries it loads, as archive names.
pub const EXTENSION: &str = "zmq/backend/cython/_zmq.cpython-311-x86_64-linux-gnu.so";
pub const LIBZMQ: &str = "pyzmq.libs/libzmq-2f02442c.so.5.2.5";
pub const LIBSODIUM: &str = "pyzmq.libs/libsodium-6c8f8377.so.26.4.0";

/// The real app: a module and the extension module of [`WHEEL`] with its two libraries.
pub struct App {
    pub bytes: Vec<u8>,
    _scratch: Scratch,
}

fn pack_hello(value: u32) -> App {
    let scratch = Scratch::new();
    pip_install(&scratch.path("app"), &[WHEEL]);
    let path = scratch.packed_app(
        &[
            (
                "__main__.py",
                "import mod\nfrom zmq.backend.cython import _zmq\nprint('hello', mod.VALUE)\n",
            ),
            ("mod.py", &format!("VALUE = {value}\n")),
        ],
        &[],
    );
    let bytes = std::fs::read(&path).expect("read the packed app");
    App {
        bytes,
        _scratch: scratch,
    }
}

pub fn hello() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| pack_hello(42))
}

/// The same app with `VALUE = 43`, for duplicate entries that differ.
pub fn hello_43() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| pack_hello(43))
}

/// The bare launcher's bytes (an ELF with no payload).
pub fn launcher_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| std::fs::read(launcher()).expect("read the launcher"))
}

/// 64 bytes of ELF header whose section table "ends" at byte 64: an executable of 64 bytes.
pub fn fake_elf() -> Vec<u8> {
    let mut elf = vec![0u8; 64];
    elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
    elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
    elf[0x3c..0x3e].copy_from_slice(&1u16.to_le_bytes());
    elf
}

pub fn manifest() -> Manifest {
    Manifest {
        format_version: FORMAT_VERSION,
        pyferry_version: "0.0.0".into(),
        python_version: "3.11".into(),
        entry_point: EntryPoint::parse("__main__").expect("entry point"),
        shared_libraries: [(
            "pkg/ext.so".to_string(),
            vec!["pkg.libs/libdep.so.1".to_string()],
        )]
        .into(),
        ..Manifest::default()
    }
}

/// A small payload written by pyferry's own writer: sources (deflated), bytecode and shared
/// objects (stored), data, a namespace directory and the manifest.
pub fn synthetic() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let mut output = Cursor::new(fake_elf());
        output.set_position(64);
        let mut writer = PayloadWriter::new(output, None).expect("writer");
        let source = "import pkg\nprint('hi')\n".repeat(20);
        let entries: &[(&str, &[u8], Compression)] = &[
            ("__main__.py", source.as_bytes(), Compression::Deflated),
            (
                "__main__.pyc",
                b"\xa7\r\r\n\x03\0\0\0bytecode",
                Compression::Stored,
            ),
            ("pkg/__init__.py", b"", Compression::Deflated),
            ("pkg/ext.so", &[0x7f; 4096], Compression::Stored),
            ("pkg.libs/libdep.so.1", &[0x45; 2048], Compression::Stored),
            ("pkg/data/table.txt", &[b'x'; 65536], Compression::Deflated),
            ("ns/sub/mod.py", b"X = 1\n", Compression::Deflated),
        ];
        for (name, contents, compression) in entries {
            writer.add(name, contents, *compression).expect("add");
        }
        writer.finish(&manifest()).expect("finish").into_inner()
    })
}

/// `synthetic()` rewritten with zip64 records for every entry and a zip64 end record.
pub fn synthetic_zip64() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| damage::rewrite(synthetic(), &fake_elf(), true, damage::copy_entry))
}

/// Crafted payloads (`fake_elf()` in front), each with what the reader must say about it.
pub struct Crafted {
    pub name: &'static str,
    pub bytes: Vec<u8>,
}

fn small_zip(zip64: bool, build: impl FnOnce(&mut ZipWriter)) -> Vec<u8> {
    let mut writer = ZipWriter::new(fake_elf(), zip64);
    build(&mut writer);
    writer.finish()
}

fn manifest_json() -> Vec<u8> {
    manifest().to_json()
}

/// A deflate stream of `len` zeros: about a thousandth of `len`.
pub fn zeros_deflated(len: usize) -> Vec<u8> {
    damage::deflate(&vec![0u8; len])
}

/// Every crafted archive, built once.
pub fn crafted() -> &'static [Crafted] {
    static ALL: OnceLock<Vec<Crafted>> = OnceLock::new();
    ALL.get_or_init(build_crafted)
}

fn build_crafted() -> Vec<Crafted> {
    let manifest = manifest_json();
    let bomb = zeros_deflated(16 << 20);
    let bomb_crc = crc32fast::hash(&vec![0u8; 16 << 20]);
    let mut all = vec![
        Crafted {
            name: "a bomb whose headers claim 100 bytes",
            bytes: small_zip(false, |zip| {
                zip.add_raw(&RawEntry {
                    name: b"bomb.py",
                    method: 8,
                    crc32: 0,
                    data: &bomb,
                    size: 100,
                });
                zip.add_stored(pyferry_payload::MANIFEST_PATH, &manifest);
            }),
        },
        Crafted {
            name: "a bomb whose headers claim 1 TiB (zip64)",
            bytes: small_zip(true, |zip| {
                zip.add_raw(&RawEntry {
                    name: b"bomb.py",
                    method: 8,
                    crc32: bomb_crc,
                    data: &bomb,
                    size: 1 << 40,
                });
                zip.add_stored(pyferry_payload::MANIFEST_PATH, &manifest);
            }),
        },
        Crafted {
            name: "1 GiB claimed from 1 KiB of deflate",
            bytes: small_zip(false, |zip| {
                zip.add_raw(&RawEntry {
                    name: b"bomb.py",
                    method: 8,
                    crc32: 0,
                    data: &bomb[..1024],
                    size: 1 << 30,
                });
                zip.add_stored(pyferry_payload::MANIFEST_PATH, &manifest);
            }),
        },
        Crafted {
            name: "a manifest that inflates to 20 MiB (valid JSON)",
            bytes: small_zip(false, |zip| {
                let mut padded = manifest.clone();
                padded.truncate(padded.len() - 2); // the closing "}\n"
                padded.extend(std::iter::repeat_n(b' ', 20 << 20));
                padded.extend_from_slice(b"}\n");
                zip.add_deflated(pyferry_payload::MANIFEST_PATH, &padded);
            }),
        },
        Crafted {
            name: "10,000 entries sharing one local header",
            bytes: small_zip(false, |zip| {
                let data = damage::deflate(b"X = 1\n");
                let entry = RawEntry {
                    name: b"overlap/0.py",
                    method: 8,
                    crc32: crc32fast::hash(b"X = 1\n"),
                    data: &data,
                    size: 6,
                };
                let offset = zip.add_raw(&entry);
                for index in 1..10_000 {
                    let name = format!("overlap/{index}.py");
                    zip.add_central(
                        &RawEntry {
                            name: name.as_bytes(),
                            ..entry.clone()
                        },
                        offset,
                    );
                }
                zip.add_stored(pyferry_payload::MANIFEST_PATH, &manifest);
            }),
        },
        Crafted {
            name: "duplicate names",
            bytes: small_zip(false, |zip| {
                zip.add_deflated("mod.py", b"VALUE = 1\n");
                zip.add_deflated("mod.py", b"VALUE = 2\n");
                zip.add_stored(pyferry_payload::MANIFEST_PATH, &manifest);
                zip.add_stored(pyferry_payload::MANIFEST_PATH, b"{\"format_version\": 99}");
            }),
        },
        Crafted {
            name: "path traversal and odd names",
            bytes: small_zip(false, |zip| {
                for name in TRAVERSAL_NAMES {
                    zip.add_deflated(name, b"print('escaped')\n");
                }
                zip.add_stored(pyferry_payload::MANIFEST_PATH, &manifest);
            }),
        },
        Crafted {
            name: "a name of 65,535 bytes",
            bytes: small_zip(false, |zip| {
                zip.add_stored(&"n".repeat(65_535), b"x");
                zip.add_stored(pyferry_payload::MANIFEST_PATH, &manifest);
            }),
        },
        Crafted {
            name: "no manifest, only sources",
            bytes: small_zip(false, |zip| {
                zip.add_deflated("__main__.py", b"print(1)\n");
            }),
        },
    ];
    all.push(Crafted {
        name: "an empty zip",
        bytes: small_zip(false, |_| {}),
    });
    all
}

/// Names no tool should ever act on as paths: they must stay inert.
pub const TRAVERSAL_NAMES: &[&str] = &[
    "../../pyferry-escaped.py",
    "/tmp/pyferry-absolute.py",
    "a/../../../pyferry-up.py",
    "..",
    ".",
    "./dot.py",
    "a//b.py",
    "back\\..\\..\\slash.py",
    "nul\0byte.py",
    "",
    "dir/",
    "trailing/..",
];
