//! Writing a payload: a deterministic zip appended to whatever the output already holds (the
//! launcher), ending with the manifest.
//!
//! Offsets in the zip are absolute file offsets (the zip is written after the launcher bytes), so
//! `unzip -l ./myapp` reads it without complaint and readers need no prefix detection. Every entry
//! gets the same timestamp and permissions, so the same inputs in the same order give the same
//! bytes.

use std::io::{Read, Seek, Write};

use crate::record::{self, RecordLine, LAUNCHER, RECORD_PATH};
use crate::seal;

use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipArchive, ZipWriter};

use crate::manifest::{Manifest, MANIFEST_PATH};

/// How an entry is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Uncompressed: the launcher uses the bytes in place (shared libraries, hot bytecode).
    Stored,
    Deflated,
}

/// Writes a payload zip after the current position of `output`.
pub struct PayloadWriter<W: Read + Write + Seek> {
    zip: ZipWriter<W>,
    timestamp: DateTime,
    identity: Sha256,
    record: Vec<RecordLine>,
}

impl<W: Read + Write + Seek> PayloadWriter<W> {
    /// Starts a zip at the current end of `output`, whose existing bytes (the launcher, or
    /// nothing) are recorded in `RECORD` as `<launcher>`. `epoch_seconds` (from
    /// `SOURCE_DATE_EPOCH`) sets every entry's timestamp; without it, 1980-01-01, the earliest a
    /// zip can say.
    pub fn new(mut output: W, epoch_seconds: Option<u64>) -> std::io::Result<Self> {
        let mut prefix = Vec::new();
        output.seek(std::io::SeekFrom::Start(0))?;
        output.read_to_end(&mut prefix)?;
        output.seek(std::io::SeekFrom::End(0))?;
        Ok(PayloadWriter {
            zip: ZipWriter::new(output),
            timestamp: timestamp_for(epoch_seconds),
            identity: Sha256::new(),
            record: vec![RecordLine {
                name: LAUNCHER.to_string(),
                sha256: seal::digest(&prefix),
                size: prefix.len() as u64,
            }],
        })
    }

    fn options(&self, compression: Compression) -> SimpleFileOptions {
        let (method, level) = match compression {
            Compression::Stored => (CompressionMethod::Stored, None),
            Compression::Deflated => (CompressionMethod::Deflated, Some(6)),
        };
        SimpleFileOptions::default()
            .compression_method(method)
            .compression_level(level)
            .last_modified_time(self.timestamp)
            .unix_permissions(0o644)
            .large_file(false)
    }

    fn record_identity(&mut self, name: &str, crc32: u32, size: u64) {
        self.identity.update((name.len() as u64).to_le_bytes());
        self.identity.update(name.as_bytes());
        self.identity.update(crc32.to_le_bytes());
        self.identity.update(size.to_le_bytes());
    }

    /// Adds file `name` with `contents`.
    pub fn add(
        &mut self,
        name: &str,
        contents: &[u8],
        compression: Compression,
    ) -> zip::result::ZipResult<()> {
        let mut options = self.options(compression);
        if contents.len() as u64 >= u32::MAX as u64 {
            options = options.large_file(true);
        }
        if compression == Compression::Stored && crate::is_shared_object(name) {
            options = options.with_alignment(crate::SHARED_OBJECT_ALIGNMENT);
        }
        self.zip.start_file(name, options)?;
        self.zip.write_all(contents)?;
        let crc = crc32(contents);
        self.record_identity(name, crc, contents.len() as u64);
        self.record.push(RecordLine {
            name: name.to_string(),
            sha256: seal::digest(contents),
            size: contents.len() as u64,
        });
        Ok(())
    }

    /// Copies entry `name` of `source` without recompressing it.
    pub fn copy_raw<R: Read + Seek>(
        &mut self,
        source: &mut ZipArchive<R>,
        name: &str,
    ) -> zip::result::ZipResult<()> {
        let mut file = source.by_name_with_options(name, Default::default())?;
        let (crc, size) = (file.crc32(), file.size());
        let stored = file.compression() == CompressionMethod::Stored;
        let mut contents = Vec::with_capacity(size as usize);
        file.read_to_end(&mut contents)?;
        drop(file);
        if stored && crate::is_shared_object(name) {
            // Written anew (the same bytes, stored) to be page-aligned at its new offset.
            return self.add(name, &contents, Compression::Stored);
        }
        self.record.push(RecordLine {
            name: name.to_string(),
            sha256: seal::digest(&contents),
            size,
        });
        let raw = source.by_index_raw(
            source
                .index_for_name(name)
                .ok_or(zip::result::ZipError::FileNotFound)?,
        )?;
        self.zip.raw_copy_file(raw)?;
        self.record_identity(name, crc, size);
        Ok(())
    }

    /// Writes the manifest (with `build_id` filled in from everything added), the `RECORD`, the
    /// central directory and the seal, and returns the output.
    pub fn finish(mut self, manifest: &Manifest) -> zip::result::ZipResult<W> {
        let mut manifest = manifest.clone();
        manifest.build_id = self
            .identity
            .clone()
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        let manifest_json = manifest.to_json();
        let options = self.options(Compression::Stored);
        self.zip.start_file(MANIFEST_PATH, options)?;
        self.zip.write_all(&manifest_json)?;
        self.record.push(RecordLine {
            name: MANIFEST_PATH.to_string(),
            sha256: seal::digest(&manifest_json),
            size: manifest_json.len() as u64,
        });
        let options = self.options(Compression::Deflated);
        self.zip.start_file(RECORD_PATH, options)?;
        self.zip
            .write_all(record::format(&self.record).as_bytes())?;
        self.zip.set_comment(seal::placeholder())?;
        let mut output = self.zip.finish()?;
        seal::seal(&mut output)?;
        Ok(output)
    }
}

fn timestamp_for(epoch_seconds: Option<u64>) -> DateTime {
    const EARLIEST: (u16, u8, u8) = (1980, 1, 1);
    let Some(seconds) = epoch_seconds else {
        return DateTime::from_date_and_time(EARLIEST.0, EARLIEST.1, EARLIEST.2, 0, 0, 0)
            .unwrap_or_default();
    };
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let of_day = seconds % 86_400;
    let year = year.clamp(1980, 2107) as u16;
    DateTime::from_date_and_time(
        year,
        month,
        day,
        (of_day / 3600) as u8,
        (of_day / 60 % 60) as u8,
        (of_day % 60) as u8,
    )
    .unwrap_or_default()
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day) (Howard Hinnant's
/// well-known `civil_from_days` algorithm).
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u8;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u8;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(bytes);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn stored_shared_objects_start_on_a_page() {
        let mut writer =
            PayloadWriter::new(std::io::Cursor::new(b"launcher".to_vec()), None).unwrap();
        writer
            .add("a.py", b"x = 1\n", Compression::Deflated)
            .unwrap();
        writer
            .add(
                "pkg/m.cpython-311-x86_64-linux-gnu.so",
                b"\x7fELF one",
                Compression::Stored,
            )
            .unwrap();
        writer
            .add("pkg.libs/libz.so.1.2", b"\x7fELF two", Compression::Stored)
            .unwrap();
        let bytes = writer.finish(&test_manifest()).unwrap().into_inner();
        let archive = crate::Archive::parse(&bytes).unwrap();
        for name in [
            "pkg/m.cpython-311-x86_64-linux-gnu.so",
            "pkg.libs/libz.so.1.2",
        ] {
            let range = archive.stored_range(name).unwrap();
            assert_eq!(
                range.start % usize::from(crate::SHARED_OBJECT_ALIGNMENT),
                0,
                "{name}"
            );
            assert!(bytes[range].starts_with(b"\x7fELF"));
        }
    }

    fn test_manifest() -> Manifest {
        Manifest {
            format_version: crate::FORMAT_VERSION,
            kind: crate::PayloadKind::App,
            pyferry_version: "0".into(),
            python_version: "3.11".into(),
            build_id: String::new(),
            entry_point: crate::EntryPoint::parse("a").unwrap(),
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

    #[test]
    fn same_input_same_bytes() {
        let write = || {
            let mut writer =
                PayloadWriter::new(std::io::Cursor::new(Vec::new()), Some(1_700_000_000)).unwrap();
            writer
                .add("a.py", b"x = 1\n", Compression::Deflated)
                .unwrap();
            writer.add("b.so", b"\x7fELF", Compression::Stored).unwrap();
            writer.finish(&test_manifest()).unwrap().into_inner()
        };
        assert_eq!(write(), write());
    }
}
