//! The pyferry archive format, shared by the packer (which writes it) and the launcher (which
//! reads it at start-up).
//!
//! A pyferry application is `launcher ELF ++ standard zip`; a pyz is `#!` line `++` standard
//! zip. The zip is found from the end of the file (its end-of-central-directory record), so the
//! part in front never has to know its own size. Inside the zip, [`manifest::MANIFEST_PATH`] says what the payload is and how to
//! start it; everything else is the Python import tree (standard library and site-packages at the
//! root). `docs/format.md` is the specification; this crate is its only implementation.
//!
//! This crate holds no `unsafe` and knows nothing about CPython: it deals in bytes and names.

pub mod archive;
pub mod central_directory;
pub mod index;
pub mod manifest;
pub mod ranges;
pub mod record;
pub mod seal;
pub mod writer;

pub use archive::{Archive, ArchiveError, EntryData};
pub use index::{EntryIndex, EntryKind, NameSpan};
pub use manifest::{
    EntryPoint, GlibcFloor, LoadPlan, Manifest, ManifestError, PayloadKind, Tags, FORMAT_VERSION,
    MANIFEST_PATH,
};
pub use writer::{Compression, PayloadWriter};

/// The software bill of materials of a packed file (CycloneDX 1.6 JSON), written by the packer
/// and covered by `.pyferry/RECORD` like every entry; nothing at run time reads it.
pub const SBOM_PATH: &str = ".pyferry/sbom.cdx.json";

/// Whether archive entry `name` is a shared object: an extension module (`*.so`) or a
/// versioned library (`libfoo.so.1.2`).
pub fn is_shared_object(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    base.ends_with(".so") || base.contains(".so.")
}

/// Where the data of a stored shared object starts in the file: a multiple of this (the page
/// size of x86_64 and of most Linux systems), so that the launcher can map the object's
/// read-only segments straight from the executable (docs/format.md).
pub const SHARED_OBJECT_ALIGNMENT: u16 = 4096;
