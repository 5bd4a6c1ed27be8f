//! Reading a payload: find the zip at the end of an executable, check its manifest, index its
//! entries, and hand out entry contents.
//!
//! Everything works on one byte slice (the launcher maps its own executable; the packer and
//! `pyferry inspect` read a file), so stored entries are returned without a copy.

use std::borrow::Cow;
use std::ops::Range;

use crate::central_directory::{self, Bounds, Entry, CENTRAL_HEADER_LEN};
use crate::index::{EntryIndex, NameSpan};
use crate::manifest::{Manifest, ManifestError, MANIFEST_PATH};

/// The most a single entry may inflate to. Guards against a zip bomb in a damaged file; the
/// largest real shared library seen in a wheel is well under this.
const MAX_ENTRY_SIZE: u64 = 2 << 30;

/// The largest manifest read. Real ones are a few KiB (tens for an app with thousands of shared
/// libraries); the launcher reads it before anything else, so a damaged size must not make it
/// inflate gigabytes.
const MAX_MANIFEST_SIZE: u64 = 16 << 20;

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
    #[error("entry `{}` cannot be read ({reason})", printable(name))]
    Entry { name: String, reason: String },
}

/// `name` with control characters escaped (`\n`, `\u{1b}`...): a name from a damaged or
/// crafted file must not split an error message over lines or drive the terminal.
pub fn printable(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The contents of one entry: borrowed from the file when stored, inflated otherwise.
pub type EntryData<'a> = Cow<'a, [u8]>;

/// A parsed payload over the bytes of the whole file.
pub struct Archive<'a> {
    bytes: &'a [u8],
    bounds: Bounds,
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
        let bounds = central_directory::locate(bytes).map_err(ArchiveError::Corrupt)?;
        let index = index_names(bytes, &bounds)?;
        let mut archive = Archive {
            bytes,
            bounds,
            index,
            manifest: Manifest::default(),
        };
        if let Some(size) = archive
            .size(MANIFEST_PATH)
            .filter(|size| *size > MAX_MANIFEST_SIZE)
        {
            return Err(ArchiveError::Entry {
                name: MANIFEST_PATH.to_string(),
                reason: format!(
                    "the manifest is {size} bytes, more than the {MAX_MANIFEST_SIZE} a manifest may be"
                ),
            });
        }
        let manifest_bytes = archive
            .read(MANIFEST_PATH)?
            .ok_or(ArchiveError::NoManifest)?;
        archive.manifest = Manifest::from_json(&manifest_bytes)?;
        check_printed_fields(&archive.manifest)?;
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
    /// (the first local header, or the central directory of an empty zip). Reads every central
    /// header: for tools, not for start-up.
    pub fn payload_start(&self) -> u64 {
        let mut start = self.bounds.start;
        let mut at = self.bounds.start as usize;
        for _ in 0..self.bounds.count {
            let Ok((entry, next)) = central_directory::parse_header(self.bytes, &self.bounds, at)
            else {
                break;
            };
            start = start.min(entry.header_offset);
            at = next;
        }
        start
    }

    /// The central-directory entry of file `name`, parsed and checked now.
    fn entry(&self, name: &str) -> Result<Option<Entry<'a>>, ArchiveError> {
        let Some(name_at) = self.index.position(name) else {
            return Ok(None);
        };
        let header = self.bounds.start as usize + name_at as usize - CENTRAL_HEADER_LEN;
        central_directory::parse_header(self.bytes, &self.bounds, header)
            .map(|(entry, _)| Some(entry))
            .map_err(|reason| ArchiveError::Entry {
                name: name.to_string(),
                reason,
            })
    }

    /// The contents of file `name`, or `None` when there is no such file.
    pub fn read(&self, name: &str) -> Result<Option<EntryData<'a>>, ArchiveError> {
        let Some(entry) = self.entry(name)? else {
            return Ok(None);
        };
        let entry_error = |reason: String| ArchiveError::Entry {
            name: name.to_string(),
            reason,
        };
        let range = central_directory::data_range(self.bytes, &entry, self.bounds.start)
            .map_err(entry_error)?;
        let bytes: &'a [u8] = self.bytes;
        if entry.method == central_directory::STORED && entry.compressed_size == entry.size {
            // Checked like an inflated entry: damaged bytecode handed to `marshal` can crash
            // the interpreter. (CRC-32 runs at tens of GB/s: 20 µs for what `hello` reads.)
            let data = &bytes[range];
            if crc32fast::hash(data) != entry.crc32 {
                return Err(entry_error("CRC-32 mismatch".into()));
            }
            return Ok(Some(Cow::Borrowed(data)));
        }
        central_directory::inflate(&entry, &bytes[range], MAX_ENTRY_SIZE)
            .map(|contents| Some(Cow::Owned(contents)))
            .map_err(entry_error)
    }

    /// Where the bytes of a stored (uncompressed) file lie in the file, for zero-copy use.
    /// `None` when the file is absent, compressed or its headers are damaged. The bytes are
    /// not checked against the CRC-32 (shared libraries are copied by the kernel and never seen;
    /// checking 38 MB of numpy libraries would cost every start a millisecond or more):
    /// `pyferry verify` checks them.
    pub fn stored_range(&self, name: &str) -> Option<Range<usize>> {
        let entry = self.entry(name).ok()??;
        if entry.method != central_directory::STORED || entry.compressed_size != entry.size {
            return None;
        }
        central_directory::data_range(self.bytes, &entry, self.bounds.start).ok()
    }

    /// The uncompressed size of file `name`.
    pub fn size(&self, name: &str) -> Option<u64> {
        self.entry(name).ok()?.map(|entry| entry.size)
    }
}

/// One quick pass over the central directory: where each name is, nothing copied. Only the
/// headers' signatures and lengths are checked here; the rest of a header is checked when its
/// entry is used.
fn index_names<'a>(bytes: &'a [u8], bounds: &Bounds) -> Result<EntryIndex<'a>, ArchiveError> {
    let start = bounds.start as usize;
    let directory = &bytes[start..bounds.end as usize];
    if u32::try_from(directory.len()).is_err() {
        return Err(ArchiveError::Corrupt(format!(
            "a {}-byte central directory is larger than the 4 GiB supported",
            directory.len()
        )));
    }
    let mut spans = Vec::with_capacity(bounds.count as usize);
    let mut at = start;
    for position in 0..bounds.count {
        let (name, next) = central_directory::header_name(bytes, bounds, at).map_err(|error| {
            ArchiveError::Corrupt(format!("central directory entry {position}: {error}"))
        })?;
        spans.push(NameSpan {
            at: (at + CENTRAL_HEADER_LEN - start) as u32,
            len: name.len() as u16,
        });
        at = next;
    }
    Ok(EntryIndex::new(Cow::Borrowed(directory), spans))
}

/// Refuses manifest values that the launcher prints in its messages and that a damaged or
/// crafted file could fill with line breaks or terminal escapes: the Python version must be
/// `MAJOR.MINOR`, tags letters, digits, `_` and `.`, script names must hold no control characters.
fn check_printed_fields(manifest: &Manifest) -> Result<(), ManifestError> {
    let invalid = |message: String| {
        ManifestError::Invalid(<serde_json::Error as serde::de::Error>::custom(message))
    };
    let version = &manifest.python_version;
    let is_number = |part: &str| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit());
    if !matches!(version.split_once('.'), Some((major, minor)) if is_number(major) && is_number(minor))
    {
        return Err(invalid(format!(
            "`python_version` is \"{}\", not MAJOR.MINOR",
            printable(version)
        )));
    }
    if let Some(tags) = &manifest.tags {
        if let Some(tag) = [&tags.interpreter, &tags.platform].into_iter().find(|tag| {
            tag.is_empty()
                || tag
                    .chars()
                    .any(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        }) {
            return Err(invalid(format!(
                "the tag \"{}\" is not a wheel tag",
                printable(tag)
            )));
        }
    }
    if let Some(name) = manifest
        .scripts
        .keys()
        .find(|name| name.chars().any(char::is_control))
    {
        return Err(invalid(format!(
            "the script name \"{}\" holds control characters",
            printable(name)
        )));
    }
    Ok(())
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
            load_plans: Default::default(),
            scripts: Default::default(),
            distributions: Default::default(),
            glibc_floor: None,
            inherit_python_env: false,
            extract: Vec::new(),
            needed_names: Default::default(),
            tags: None,
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
