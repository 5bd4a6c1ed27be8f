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

/// Computes the seal of a finished file and writes it into the placeholder. The file is read
/// in chunks (an application can be gigabytes).
pub fn seal<F: Read + Write + Seek>(file: &mut F) -> std::io::Result<()> {
    let missing = || std::io::Error::other("the zip has no seal placeholder");
    let len = file.seek(SeekFrom::End(0))?;
    // The file ends with the end record (22 bytes) and its comment, the placeholder.
    let tail_len = 22 + placeholder().len() as u64;
    let hashed_len = len.checked_sub(tail_len).ok_or_else(missing)?;
    let mut tail = vec![0u8; tail_len as usize];
    file.seek(SeekFrom::Start(hashed_len))?;
    file.read_exact(&mut tail)?;
    if parts(&tail).map(|(hashed, _)| hashed.len()) != Some(0) {
        return Err(missing());
    }
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = Sha256::new();
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = hashed_len;
    while left > 0 {
        let want = left.min(chunk.len() as u64) as usize;
        file.read_exact(&mut chunk[..want])?;
        hasher.update(&chunk[..want]);
        left -= want as u64;
    }
    let digest = hex(&hasher.finalize());
    file.seek(SeekFrom::Start(len - 64))?;
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
