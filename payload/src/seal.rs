//! The seal: a SHA-256 over every byte of the file before the zip's end record, kept in the end
//! record's comment (`pyferry-sha256:<hex>`). With the per-entry hashes of `.pyferry/RECORD` it
//! lets `pyferry verify` detect any changed byte: a changed entry is named through `RECORD`,
//! any other change (launcher, headers, central directory) through the seal, and a change in
//! the end record breaks parsing or the seal itself.

use std::io::{Read, Seek, SeekFrom, Write};

use sha2::{Digest, Sha256};

use crate::central_directory;

/// What the zip comment starts with.
pub const SEAL_PREFIX: &str = "pyferry-sha256:";

/// The comment written before the seal is computed.
pub fn placeholder() -> String {
    format!("{SEAL_PREFIX}{}", "0".repeat(64))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The hashed range (everything before the end record) and the seal's hex digits, if `bytes`
/// ends with a sealed zip.
fn parts(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = central_directory::find_end_record(bytes)?;
    let comment = bytes.get(end + 22..)?;
    let digits = comment.strip_prefix(SEAL_PREFIX.as_bytes())?;
    (digits.len() == 64).then_some((&bytes[..end], digits))
}

/// Computes the seal of a finished file and writes it into the placeholder.
pub fn seal<F: Read + Write + Seek>(file: &mut F) -> std::io::Result<()> {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut bytes)?;
    let (hashed, _) =
        parts(&bytes).ok_or_else(|| std::io::Error::other("the zip has no seal placeholder"))?;
    let digest = hex(&Sha256::digest(hashed));
    file.seek(SeekFrom::Start((bytes.len() - 64) as u64))?;
    file.write_all(digest.as_bytes())?;
    file.seek(SeekFrom::End(0))?;
    Ok(())
}

/// How a file's seal compares with its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealCheck {
    Intact,
    Broken,
    Missing,
}

pub fn check(bytes: &[u8]) -> SealCheck {
    match parts(bytes) {
        None => SealCheck::Missing,
        Some((hashed, digits)) if hex(&Sha256::digest(hashed)).as_bytes() == digits => {
            SealCheck::Intact
        }
        Some(_) => SealCheck::Broken,
    }
}

/// Hex SHA-256 of `bytes`, as `RECORD` writes it.
pub fn digest(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}
