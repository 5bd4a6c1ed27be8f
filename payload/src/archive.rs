//! Reading a payload: find the zip at the end of an executable, check its manifest, index its
//! entries, and hand out entry contents.
//!
//! Everything works on one byte slice (the launcher maps its own executable; the packer and
//! `pyferry inspect` read a file), so stored entries are returned without a copy.

use std::borrow::Cow;
use std::ops::Range;

use crate::central_directory::{self, CentralDirectory, Entry};
use crate::index::EntryIndex;
use crate::manifest::{Manifest, ManifestError, MANIFEST_PATH};

/// The most a single entry may inflate to. Guards against a zip bomb in a damaged file; the
/// largest real shared library seen in a wheel is well under this.
const MAX_ENTRY_SIZE: u64 = 2 << 30;

/// Why a file is not a usable payload. Each variant is phrased to complete the sentence
/// "`PATH`: ...".
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("no application is appended to it")]
    NoPayload,
    #[error("the appended application is truncated or corrupted ({0})")]
    Corrupt(String),
    #[error("the appended zip has no pyferry manifest (`{MANIFEST_PATH}`)")]
    NoManifest,
    #[error("{0}")]
    Manifest(#[from] ManifestError),
    #[error("entry `{name}` cannot be read ({reason})")]
    Entry { name: String, reason: String },
}

/// The contents of one entry: borrowed from the file when stored, inflated otherwise.
pub type EntryData<'a> = Cow<'a, [u8]>;

/// A parsed payload over the bytes of the whole file.
pub struct Archive<'a> {
    bytes: &'a [u8],
    directory: CentralDirectory<'a>,
    index: EntryIndex<'a>,
    manifest: Manifest,
}

impl<'a> Archive<'a> {
    /// Parses the payload at the end of `bytes` (a whole executable, or a bare zip).
    pub fn parse(bytes: &'a [u8]) -> Result<Archive<'a>, ArchiveError> {
        if central_directory::find_end_record(bytes).is_none() {
            // An ELF file that ends where its section headers end carries nothing; anything
            // longer lost its tail (a truncated copy or download).
            return Err(match elf_image_len(bytes) {
                Some(image_len) if (bytes.len() as u64) > image_len => ArchiveError::Corrupt(
                    "no end of central directory record at the end of the file".into(),
                ),
                _ => ArchiveError::NoPayload,
            });
        }
        let directory = central_directory::read(bytes).map_err(ArchiveError::Corrupt)?;
        let index = EntryIndex::new(
            directory
                .entries
                .iter()
                .enumerate()
                .map(|(position, entry)| (entry.name, position)),
        );
        let mut archive = Archive {
            bytes,
            directory,
            index,
            manifest: Manifest::default(),
        };
        let manifest_bytes = archive
            .read(MANIFEST_PATH)?
            .ok_or(ArchiveError::NoManifest)?;
        archive.manifest = Manifest::from_json(&manifest_bytes)?;
        Ok(archive)
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn index(&self) -> &EntryIndex<'a> {
        &self.index
    }

    /// The bytes of the whole file.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Offset in the file where the zip starts: the size of the executable in front of it
    /// (the first local header, or the central directory of an empty zip).
    pub fn payload_start(&self) -> u64 {
        self.directory
            .entries
            .iter()
            .map(|entry| entry.header_offset)
            .min()
            .unwrap_or(self.directory.start)
    }

    fn entry(&self, name: &str) -> Option<&Entry<'a>> {
        self.directory.entries.get(self.index.position(name)?)
    }

    /// The contents of file `name`, or `None` when there is no such file.
    pub fn read(&self, name: &str) -> Result<Option<EntryData<'a>>, ArchiveError> {
        let Some(entry) = self.entry(name) else {
            return Ok(None);
        };
        let entry_error = |reason: String| ArchiveError::Entry {
            name: name.to_string(),
            reason,
        };
        let range = central_directory::data_range(self.bytes, entry, self.directory.start)
            .map_err(entry_error)?;
        let bytes: &'a [u8] = self.bytes;
        if entry.method == central_directory::STORED && entry.compressed_size == entry.size {
            return Ok(Some(Cow::Borrowed(&bytes[range])));
        }
        central_directory::inflate(entry, &bytes[range], MAX_ENTRY_SIZE)
            .map(|contents| Some(Cow::Owned(contents)))
            .map_err(entry_error)
    }

    /// Where the bytes of a stored (uncompressed) file lie in the file, for zero-copy use.
    /// `None` when the file is absent or compressed.
    pub fn stored_range(&self, name: &str) -> Option<Range<usize>> {
        let entry = self.entry(name)?;
        if entry.method != central_directory::STORED || entry.compressed_size != entry.size {
            return None;
        }
        central_directory::data_range(self.bytes, entry, self.directory.start).ok()
    }

    /// The uncompressed size of file `name`.
    pub fn size(&self, name: &str) -> Option<u64> {
        self.entry(name).map(|entry| entry.size)
    }
}

/// The length of a 64-bit little-endian ELF image as its headers describe it (the section header
/// table comes last in files written by a linker), or `None` when `bytes` is no such ELF.
pub fn elf_image_len(bytes: &[u8]) -> Option<u64> {
    if bytes.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let read_u64 = |at: usize| Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
    let read_u16 = |at: usize| Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
    let section_headers = read_u64(0x28)?;
    let entry_size = u64::from(read_u16(0x3a)?);
    let entry_count = u64::from(read_u16(0x3c)?);
    section_headers.checked_add(entry_size.checked_mul(entry_count)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Compression, EntryPoint, PayloadKind, PayloadWriter, FORMAT_VERSION};
    use std::io::Read;

    fn manifest() -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            kind: PayloadKind::App,
            pyferry_version: "0.1.0".into(),
            python_version: "3.11".into(),
            build_id: String::new(),
            entry_point: EntryPoint::parse("app").unwrap(),
            shared_libraries: Default::default(),
            scripts: Default::default(),
            distributions: Default::default(),
        }
    }

    fn build(prefix: &[u8]) -> Vec<u8> {
        let mut file = tempfile::tempfile().unwrap();
        use std::io::{Seek, Write};
        file.write_all(prefix).unwrap();
        let mut writer = PayloadWriter::new(file, None).unwrap();
        writer
            .add("app.py", b"print('hi')\n", Compression::Deflated)
            .unwrap();
        writer
            .add("lib/x.so", &[7u8; 300], Compression::Stored)
            .unwrap();
        let mut file = writer.finish(&manifest()).unwrap();
        let mut bytes = Vec::new();
        file.rewind().unwrap();
        file.read_to_end(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn reads_entries_behind_a_prefix() {
        let bytes = build(b"#!not an elf\n");
        let archive = Archive::parse(&bytes).unwrap();
        assert_eq!(archive.manifest().entry_point.module, "app");
        assert_eq!(
            archive.read("app.py").unwrap().unwrap().as_ref(),
            b"print('hi')\n"
        );
        let range = archive.stored_range("lib/x.so").unwrap();
        assert_eq!(&bytes[range], &[7u8; 300][..]);
        assert!(archive.stored_range("app.py").is_none());
        assert!(archive.read("missing").unwrap().is_none());
        assert_eq!(
            archive.payload_start(),
            13,
            "the zip starts after the prefix"
        );
    }

    #[test]
    fn file_without_zip_has_no_payload() {
        assert!(matches!(
            Archive::parse(b"just some bytes"),
            Err(ArchiveError::NoPayload)
        ));
    }

    #[test]
    fn truncated_zip_is_corrupt_not_missing() {
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        let bytes = build(&elf);
        // The fake ELF header says the image is 0 bytes long, so anything after it is payload.
        let truncated = &bytes[..bytes.len() - 10];
        assert!(matches!(
            Archive::parse(truncated),
            Err(ArchiveError::Corrupt(_))
        ));
    }

    #[test]
    fn zip_without_manifest_is_refused() {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        writer
            .start_file("a.py", zip::write::SimpleFileOptions::default())
            .unwrap();
        let bytes = writer.finish().unwrap().into_inner();
        assert!(matches!(
            Archive::parse(&bytes),
            Err(ArchiveError::NoManifest)
        ));
    }
}
