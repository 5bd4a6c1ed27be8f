//! `pyferry verify FILE`: checks every entry, and the launcher, against the hashes recorded at
//! pack time, and every other byte against the seal; names the first mismatch.

use anyhow::{bail, Result};
use pyferry_payload::record::{self, LAUNCHER, RECORD_PATH};
use pyferry_payload::seal::{self, SealCheck};

use crate::cli::VerifyArgs;
use crate::commands::inspect;

/// A verification that found a difference: exit status 1 (bad input is 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Mismatch(pub String);

pub fn verify(args: &VerifyArgs) -> Result<()> {
    let path = &args.file;
    let bytes = inspect::open(path)?;
    let archive = inspect::parse(path, &bytes)?;
    let Some(text) = archive.read(RECORD_PATH).ok().flatten() else {
        bail!("`{}` has no `{RECORD_PATH}`: it was not packed by this pyferry, or the record was removed", path.display());
    };
    let lines = record::parse(&String::from_utf8_lossy(&text)).map_err(|error| {
        Mismatch(format!(
            "`{}`: `{RECORD_PATH}` is damaged ({error})",
            path.display()
        ))
    })?;
    let recorded: std::collections::BTreeSet<&str> =
        lines.iter().map(|line| line.name.as_str()).collect();
    for line in &lines {
        let contents = if line.name == LAUNCHER {
            Some(std::borrow::Cow::Borrowed(
                &bytes[..archive.payload_start() as usize],
            ))
        } else {
            match archive.read(&line.name) {
                Ok(contents) => contents,
                Err(error) => return Err(Mismatch(format!("`{}`: {error}", path.display())).into()),
            }
        };
        let Some(contents) = contents else {
            return Err(
                Mismatch(format!("`{}`: `{}` is missing", path.display(), line.name)).into(),
            );
        };
        if contents.len() as u64 != line.size || seal::digest(&contents) != line.sha256 {
            return Err(Mismatch(format!(
                "`{}`: `{}` differs from what was packed",
                path.display(),
                line.name
            ))
            .into());
        }
    }
    if let Some(extra) = archive
        .index()
        .names()
        .find(|name| *name != RECORD_PATH && !recorded.contains(name))
    {
        return Err(Mismatch(format!(
            "`{}`: `{extra}` was not in the application when it was packed",
            path.display()
        ))
        .into());
    }
    match seal::check(&bytes) {
        SealCheck::Intact => {}
        SealCheck::Broken => {
            return Err(Mismatch(format!(
                "`{}`: the zip's headers or central directory differ from what was packed (the seal does not match)",
                path.display()
            ))
            .into())
        }
        SealCheck::Missing => return Err(Mismatch(format!("`{}`: the seal is missing from the zip's end record", path.display())).into()),
    }
    let prefix = match archive.manifest().kind {
        pyferry_payload::PayloadKind::Pyz => "the `#!` line",
        _ => "the launcher",
    };
    println!(
        "{}: ok, {prefix} and {} entries match what was packed (build id {})",
        path.display(),
        lines.len() - 1,
        archive.manifest().build_id
    );
    Ok(())
}
