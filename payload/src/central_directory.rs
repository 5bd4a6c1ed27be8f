//! Reading a zip's central directory in place: entry names are borrowed from the file's bytes,
//! nothing is copied, and every offset and count is checked against the file's size before it
//! is used (the launcher parses this before anything else, on every start).
//!
//! Supports what pyferry writes and what standard tools write: stored and deflated entries,
//! zip64 records, offsets that are absolute or relative to a prepended executable.

use std::io::Read;

/// One file of the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    pub name: &'a str,
    pub method: u16,
    pub crc32: u32,
    pub compressed_size: u64,
    pub size: u64,
    /// Absolute offset of the entry's local header in the file.
    pub header_offset: u64,
}

/// Compression methods.
pub const STORED: u16 = 0;
pub const DEFLATED: u16 = 8;

const END_RECORD_LEN: usize = 22;
const END_SIGNATURE: u32 = 0x0605_4b50;
const ZIP64_LOCATOR_SIGNATURE: u32 = 0x0706_4b50;
const ZIP64_END_SIGNATURE: u32 = 0x0606_4b50;
const CENTRAL_SIGNATURE: u32 = 0x0201_4b50;
const LOCAL_SIGNATURE: u32 = 0x0403_4b50;
/// Length of a central header before its name.
pub const CENTRAL_HEADER_LEN: usize = 46;
const LOCAL_HEADER_LEN: usize = 30;

/// The parsed central directory.
#[derive(Debug)]
pub struct CentralDirectory<'a> {
    pub entries: Vec<Entry<'a>>,
    /// Absolute offset where the central directory starts.
    pub start: u64,
}

/// Where the central directory lies in the file, as the end records say, checked against the
/// file's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Absolute offset of the first central header.
    pub start: u64,
    /// Absolute offset just past the last central header (where the end records begin).
    pub end: u64,
    /// Number of central headers the end record announces.
    pub count: u64,
    /// What to add to a recorded offset to make it absolute: 0, or the size of what was
    /// prepended to the zip after it was written.
    shift: u64,
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// Where the end-of-central-directory record is: searched backwards over the last 64 KiB + 22
/// bytes, accepting a signature only when the record's comment ends exactly at the end of file.
pub fn find_end_record(bytes: &[u8]) -> Option<usize> {
    let last = bytes.len().checked_sub(END_RECORD_LEN)?;
    let first = last.saturating_sub(u16::MAX as usize);
    (first..=last).rev().find(|&position| {
        u32_at(bytes, position) == Some(END_SIGNATURE)
            && u16_at(bytes, position + 20).map(usize::from)
                == Some(bytes.len() - position - END_RECORD_LEN)
    })
}

/// Reads the end records (and the zip64 ones when present) of the zip at the end of `bytes`.
/// The error says what is wrong.
pub fn locate(bytes: &[u8]) -> Result<Bounds, String> {
    let end = find_end_record(bytes).ok_or("no end of central directory record")?;
    let disk = u16_at(bytes, end + 4).unwrap_or(1);
    let directory_disk = u16_at(bytes, end + 6).unwrap_or(1);
    if disk != 0 || directory_disk != 0 {
        return Err("multi-disk archives are not supported".into());
    }
    let mut count = u64::from(u16_at(bytes, end + 10).unwrap_or(0));
    let mut size = u64::from(u32_at(bytes, end + 12).unwrap_or(0));
    let mut recorded_start = u64::from(u32_at(bytes, end + 16).unwrap_or(0));
    // Where the directory really ends: at the zip64 end record when there is one.
    let mut directory_end = end as u64;
    let needs_zip64 = count == 0xffff || size == 0xffff_ffff || recorded_start == 0xffff_ffff;
    if end >= 20 && u32_at(bytes, end - 20) == Some(ZIP64_LOCATOR_SIGNATURE) {
        let record = u64_at(bytes, end - 12).ok_or("truncated zip64 locator")?;
        // The record's own offset may be relative too: it sits right before the locator.
        let record_at = (end - 20)
            .checked_sub(56)
            .filter(|&at| u32_at(bytes, at) == Some(ZIP64_END_SIGNATURE))
            .or_else(|| {
                usize::try_from(record)
                    .ok()
                    .filter(|&at| u32_at(bytes, at) == Some(ZIP64_END_SIGNATURE))
            })
            .ok_or("the zip64 end of central directory record is missing")?;
        count = u64_at(bytes, record_at + 32).ok_or("truncated zip64 record")?;
        size = u64_at(bytes, record_at + 40).ok_or("truncated zip64 record")?;
        recorded_start = u64_at(bytes, record_at + 48).ok_or("truncated zip64 record")?;
        directory_end = record_at as u64;
    } else if needs_zip64 {
        return Err("the zip64 end of central directory locator is missing".into());
    }
    let start = directory_end
        .checked_sub(size)
        .ok_or("the central directory is larger than the file")?;
    // Offsets are absolute (shift 0) or relative to where the zip starts (shift = prefix).
    let shift = start
        .checked_sub(recorded_start)
        .ok_or("the central directory lies before its recorded offset")?;
    if count > size / CENTRAL_HEADER_LEN as u64 {
        return Err(format!(
            "{count} entries cannot fit in a {size}-byte central directory"
        ));
    }
    Ok(Bounds {
        start,
        end: directory_end,
        count,
        shift,
    })
}

/// The name of the central header at absolute offset `at` and the offset of the next header,
/// checking only what walking the directory needs: the signature, and that the header with its
/// name, extra field and comment ends inside the directory. (The quick pass over every header
/// at start-up; [`parse_header`] reads and checks the rest when the entry is used.)
pub fn header_name<'a>(
    bytes: &'a [u8],
    bounds: &Bounds,
    at: usize,
) -> Result<(&'a [u8], usize), &'static str> {
    let end = bounds.end as usize;
    let fixed = bytes
        .get(at..at + CENTRAL_HEADER_LEN)
        .filter(|_| at + CENTRAL_HEADER_LEN <= end)
        .ok_or("bad header signature")?;
    if u32_at(fixed, 0) != Some(CENTRAL_SIGNATURE) {
        return Err("bad header signature");
    }
    let field = |offset: usize| usize::from(u16_at(fixed, offset).unwrap_or_default());
    let name_len = field(28);
    let name_start = at + CENTRAL_HEADER_LEN;
    let next = name_start + name_len + field(30) + field(32);
    if next > end {
        return Err("runs past the end of the central directory");
    }
    Ok((&bytes[name_start..name_start + name_len], next))
}

/// Parses the central header at absolute offset `at` into an [`Entry`], with every field
/// checked, and returns it with the offset of the next header.
pub fn parse_header<'a>(
    bytes: &'a [u8],
    bounds: &Bounds,
    at: usize,
) -> Result<(Entry<'a>, usize), String> {
    let (name, next) = header_name(bytes, bounds, at)?;
    let name = std::str::from_utf8(name).map_err(|_| "the name is not UTF-8")?;
    let truncated = || "truncated".to_string();
    let method = u16_at(bytes, at + 10).ok_or_else(truncated)?;
    let crc32 = u32_at(bytes, at + 16).ok_or_else(truncated)?;
    let mut compressed_size = u64::from(u32_at(bytes, at + 20).ok_or_else(truncated)?);
    let mut uncompressed = u64::from(u32_at(bytes, at + 24).ok_or_else(truncated)?);
    let extra_len = usize::from(u16_at(bytes, at + 30).ok_or_else(truncated)?);
    let mut header_offset = u64::from(u32_at(bytes, at + 42).ok_or_else(truncated)?);
    let extra_start = at + CENTRAL_HEADER_LEN + name.len();
    // zip64: the extra field holds, in this order, each value whose 32-bit field is full.
    let mut extra = &bytes[extra_start..extra_start + extra_len];
    while extra.len() >= 4 {
        let id = u16_at(extra, 0).unwrap_or(0);
        let len = usize::from(u16_at(extra, 2).unwrap_or(0));
        let body = extra.get(4..4 + len).ok_or("truncated extra field")?;
        if id == 0x0001 {
            let mut values = body
                .chunks_exact(8)
                .map(|chunk| u64::from_le_bytes(chunk.try_into().unwrap_or_default()));
            for field in [&mut uncompressed, &mut compressed_size, &mut header_offset] {
                if *field == 0xffff_ffff {
                    *field = values.next().ok_or("truncated zip64 extra field")?;
                }
            }
        }
        extra = &extra[4 + len..];
    }
    let header_offset = header_offset
        .checked_add(bounds.shift)
        .filter(|offset| *offset < bounds.start)
        .ok_or("its data lies outside the archive")?;
    let entry = Entry {
        name,
        method,
        crc32,
        compressed_size,
        size: uncompressed,
        header_offset,
    };
    Ok((entry, next))
}

/// Parses the whole central directory of the zip at the end of `bytes`, every header checked.
/// The error says what is wrong.
pub fn read(bytes: &[u8]) -> Result<CentralDirectory<'_>, String> {
    let bounds = locate(bytes)?;
    let mut entries = Vec::with_capacity(bounds.count as usize);
    let mut at = bounds.start as usize;
    for index in 0..bounds.count {
        let (entry, next) = parse_header(bytes, &bounds, at)
            .map_err(|error| format!("central directory entry {index}: {error}"))?;
        entries.push(entry);
        at = next;
    }
    Ok(CentralDirectory {
        entries,
        start: bounds.start,
    })
}

/// Where an entry's data starts and ends, from its local header.
pub fn data_range(
    bytes: &[u8],
    entry: &Entry<'_>,
    directory_start: u64,
) -> Result<std::ops::Range<usize>, String> {
    let header = entry.header_offset as usize;
    if u32_at(bytes, header) != Some(LOCAL_SIGNATURE) {
        return Err("bad local header signature".into());
    }
    let name_len = usize::from(u16_at(bytes, header + 26).ok_or("truncated local header")?);
    let extra_len = usize::from(u16_at(bytes, header + 28).ok_or("truncated local header")?);
    // The local header must describe the same entry as the central one (as Python's `zipfile`
    // checks the name): a damaged offset that lands on another entry's header would otherwise
    // hand out the wrong bytes, e.g. the first part of another shared library, which the
    // dynamic loader maps past its end (SIGBUS).
    let name_start = header + LOCAL_HEADER_LEN;
    if bytes.get(name_start..name_start + name_len) != Some(entry.name.as_bytes()) {
        return Err("its local header names another entry".into());
    }
    if u16_at(bytes, header + 8) != Some(entry.method) {
        return Err("its local header has another compression method".into());
    }
    // Sizes are in the local header unless a data descriptor follows the data (flag bit 3) or
    // they are in a zip64 extra field (0xffffffff).
    let flags = u16_at(bytes, header + 6).ok_or("truncated local header")?;
    let local_compressed = u32_at(bytes, header + 18).ok_or("truncated local header")?;
    if flags & 0x0008 == 0
        && local_compressed != 0xffff_ffff
        && u64::from(local_compressed) != entry.compressed_size
    {
        return Err("its local header has another compressed size".into());
    }
    let start = name_start + name_len + extra_len;
    let end = (start as u64)
        .checked_add(entry.compressed_size)
        .filter(|end| *end <= directory_start)
        .ok_or("its data lies outside the archive")?;
    Ok(start..end as usize)
}

/// Deflate cannot expand data more than this: its cheapest code, a 258-byte match, still costs
/// two bits. An entry claiming more than this many bytes per compressed byte is lying.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// The uncompressed contents of an entry whose compressed bytes are `data`, checked against the
/// recorded size and CRC-32. `limit` bounds the size (a guard against zip bombs). Memory is
/// reserved once, for the recorded size, and only after the size is known to be possible: a
/// stream that inflates past it is stopped at the first extra byte.
pub fn inflate(entry: &Entry<'_>, data: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    let claimed = |why: String| {
        format!(
            "it claims to inflate to {} bytes from {}, {why}",
            entry.size,
            data.len()
        )
    };
    if entry.size > limit {
        return Err(claimed(format!("more than the {limit}-byte limit")));
    }
    let possible = match entry.method {
        DEFLATED => (data.len() as u64)
            .saturating_mul(MAX_DEFLATE_RATIO)
            .saturating_add(64),
        STORED => data.len() as u64,
        method => return Err(format!("unsupported compression method {method}")),
    };
    if entry.size > possible {
        return Err(claimed(match entry.method {
            DEFLATED => "more than deflate can produce".to_string(),
            _ => "but it is stored".to_string(),
        }));
    }
    let mut contents = Vec::new();
    contents
        .try_reserve_exact(entry.size as usize)
        .map_err(|_| format!("cannot allocate {} bytes to inflate it", entry.size))?;
    match entry.method {
        DEFLATED => {
            let mut decoder = flate2::read::DeflateDecoder::new(data);
            (&mut decoder)
                .take(entry.size)
                .read_to_end(&mut contents)
                .map_err(|error| format!("cannot inflate: {error}"))?;
            let mut extra = [0u8; 1];
            if contents.len() as u64 == entry.size
                && decoder
                    .read(&mut extra)
                    .map_err(|error| format!("cannot inflate: {error}"))?
                    != 0
            {
                return Err(format!(
                    "it inflates to more than the {} bytes recorded",
                    entry.size
                ));
            }
        }
        _ => contents.extend_from_slice(data),
    }
    if contents.len() as u64 != entry.size {
        return Err(format!(
            "inflates to {} bytes, not the {} recorded",
            contents.len(),
            entry.size
        ));
    }
    if crc32fast::hash(&contents) != entry.crc32 {
        return Err("CRC-32 mismatch".into());
    }
    Ok(contents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};
    use zip::write::SimpleFileOptions;

    fn zip_with(prefix: &[u8], zip64: bool) -> Vec<u8> {
        let mut cursor = Cursor::new(prefix.to_vec());
        cursor.set_position(prefix.len() as u64);
        let mut writer = zip::ZipWriter::new(cursor);
        let options = SimpleFileOptions::default().large_file(zip64);
        writer
            .start_file(
                "a/b.py",
                options.compression_method(zip::CompressionMethod::Deflated),
            )
            .unwrap();
        writer.write_all(&b"print('x')\n".repeat(50)).unwrap();
        writer
            .start_file(
                "c.so",
                options.compression_method(zip::CompressionMethod::Stored),
            )
            .unwrap();
        writer.write_all(b"\x7fELF....").unwrap();
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn reads_what_the_zip_crate_writes_behind_a_prefix() {
        for zip64 in [false, true] {
            let bytes = zip_with(b"launcher bytes", zip64);
            let directory = read(&bytes).unwrap();
            assert_eq!(directory.entries.len(), 2);
            let python = directory.entries[0];
            assert_eq!(python.name, "a/b.py");
            let range = data_range(&bytes, &python, directory.start).unwrap();
            assert_eq!(
                inflate(&python, &bytes[range], 1 << 20).unwrap(),
                b"print('x')\n".repeat(50)
            );
            let library = directory.entries[1];
            let range = data_range(&bytes, &library, directory.start).unwrap();
            assert_eq!(&bytes[range], b"\x7fELF....");
            assert_eq!(python.header_offset, 14, "absolute offset past the prefix");
        }
    }

    #[test]
    fn relative_offsets_are_shifted() {
        let zip = zip_with(b"", false);
        let mut bytes = b"0123456789".to_vec();
        bytes.extend_from_slice(&zip);
        let directory = read(&bytes).unwrap();
        assert_eq!(directory.entries[0].header_offset, 10);
        let range = data_range(&bytes, &directory.entries[1], directory.start).unwrap();
        assert_eq!(&bytes[range], b"\x7fELF....");
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let bytes = zip_with(b"prefix", false);
        let end = find_end_record(&bytes).unwrap();
        for position in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[position] ^= 0xff;
            if let Ok(directory) = read(&damaged) {
                for entry in &directory.entries {
                    if let Ok(range) = data_range(&damaged, entry, directory.start) {
                        let _ = inflate(entry, &damaged[range], 1 << 20);
                    }
                }
            }
        }
        for cut in 0..bytes.len() {
            assert!(read(&bytes[..cut]).is_err() || cut > end);
        }
    }

    #[test]
    fn a_bad_crc_is_caught() {
        let bytes = zip_with(b"", false);
        let directory = read(&bytes).unwrap();
        let mut entry = directory.entries[0];
        entry.crc32 ^= 1;
        let range = data_range(&bytes, &entry, directory.start).unwrap();
        assert!(inflate(&entry, &bytes[range], 1 << 20)
            .unwrap_err()
            .contains("CRC"));
    }
}
