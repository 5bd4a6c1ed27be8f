//! The pyferry archive format, shared by the packer (which writes it) and the launcher (which
//! reads it at start-up).
//!
//! A pyferry application is `launcher ELF ++ standard zip`. The zip is found from the end of the
//! file (its end-of-central-directory record), so the executable part in front never has to know
//! its own size. Inside the zip, [`manifest::MANIFEST_PATH`] says what the payload is and how to
//! start it; everything else is the Python import tree (standard library and site-packages at the
//! root). `docs/format.md` is the specification; this crate is its only implementation.
//!
//! This crate holds no `unsafe` and knows nothing about CPython: it deals in bytes and names.

pub mod archive;
pub mod central_directory;
pub mod index;
pub mod manifest;
pub mod record;
pub mod seal;
pub mod writer;

pub use archive::{Archive, ArchiveError, EntryData};
pub use index::{EntryIndex, EntryKind, NameSpan};
pub use manifest::{
    EntryPoint, Manifest, ManifestError, PayloadKind, FORMAT_VERSION, MANIFEST_PATH,
};
pub use writer::{Compression, PayloadWriter};
