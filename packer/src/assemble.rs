//! Writing an executable file: the launcher's bytes (or a pyz's `#!` line), then the payload
//! zip, into a temporary file beside the output that is renamed over it only once complete.

use std::io::{Cursor, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use pyferry_payload::{Compression, Manifest, PayloadWriter};
use zip::ZipArchive;

/// Where an entry's contents come from.
#[derive(Debug)]
pub enum Contents {
    Bytes(Vec<u8>),
    File(PathBuf),
    /// Copied raw (still compressed) from the runtime's zip, under the same name.
    Runtime,
}

/// One entry of the archive to write.
#[derive(Debug)]
pub struct PlannedEntry {
    pub name: String,
    pub contents: Contents,
}

/// How an entry is stored. By default shared objects and bytecode are stored uncompressed,
/// so that shared objects are copied into memory straight from the file (`sendfile`, no
/// inflating) and bytecode is read without inflating (the launcher unmarshals it in place; a
/// pyz's importer reads it with one `pread`: deflated bytecode cost a clirich pyz 9% of its
/// start, docs/pyz.md); everything else is deflated. `compress_all` (`--compress`) deflates
/// everything: a file about a third the size, paid for at every start by inflating what is
/// imported.
pub fn compression_for(name: &str, compress_all: bool) -> Compression {
    if !compress_all && (pyferry_payload::is_shared_object(name) || name.ends_with(".pyc")) {
        Compression::Stored
    } else {
        Compression::Deflated
    }
}

/// Checks that `output` can be written: not a directory, in an existing directory.
pub fn check_output(output: &Path) -> Result<PathBuf> {
    if output.is_dir() {
        bail!(
            "`{}` is a directory; give the path of the executable to write",
            output.display()
        );
    }
    let parent = directory_of(output);
    if !parent.is_dir() {
        bail!(
            "cannot write `{}`: directory `{}` does not exist",
            output.display(),
            parent.display()
        );
    }
    Ok(parent)
}

/// The directory `path` is in (`.` for a bare file name).
pub fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A temporary `.NAME.XXXXXX.partial` in `parent`, the directory of `output`, to be renamed
/// over `output` once complete (an atomic replacement).
pub fn partial_file_beside(
    output: &Path,
    parent: &Path,
) -> std::io::Result<tempfile::NamedTempFile> {
    let file_name = output
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".partial")
        .tempfile_in(parent)
}

/// The SOURCE_DATE_EPOCH of the environment, for reproducible timestamps.
pub fn source_date_epoch() -> Option<u64> {
    std::env::var("SOURCE_DATE_EPOCH").ok()?.trim().parse().ok()
}

/// Writes `prefix ++ zip(entries sorted by name, manifest last)` to `output` atomically and
/// makes it executable. `prefix` is the launcher, or a pyz's `#!` line. Returns the size
/// written.
pub fn write_executable(
    output: &Path,
    prefix: &[u8],
    mut entries: Vec<PlannedEntry>,
    runtime_zip: Option<&ZipArchive<Cursor<&[u8]>>>,
    manifest: &Manifest,
    compress_all: bool,
) -> Result<u64> {
    let parent = check_output(output)?;
    entries.sort_by(|left, right| left.name.cmp(&right.name));
    if let Some(pair) = entries.windows(2).find(|pair| pair[0].name == pair[1].name) {
        bail!("two files would be packed as `{}`", pair[0].name);
    }
    let mut temporary = partial_file_beside(output, &parent)
        .with_context(|| format!("cannot create a temporary file in `{}`", parent.display()))?;
    let write_error = || format!("cannot write `{}`", temporary_display(output));
    temporary.write_all(prefix).with_context(write_error)?;
    let mut writer = PayloadWriter::new(temporary.as_file_mut(), source_date_epoch())
        .with_context(write_error)?;
    let mut runtime_zip = runtime_zip.cloned();
    for entry in &entries {
        let result = match &entry.contents {
            Contents::Bytes(bytes) => writer.add(
                &entry.name,
                bytes,
                compression_for(&entry.name, compress_all),
            ),
            Contents::File(path) => {
                let bytes = fs_err::read(path)?;
                writer.add(
                    &entry.name,
                    &bytes,
                    compression_for(&entry.name, compress_all),
                )
            }
            Contents::Runtime => match runtime_zip.as_mut() {
                Some(zip) if compress_all => {
                    let mut contents = Vec::new();
                    std::io::Read::read_to_end(&mut zip.by_name(&entry.name)?, &mut contents)?;
                    writer.add(&entry.name, &contents, Compression::Deflated)
                }
                Some(zip) => writer.copy_raw(zip, &entry.name),
                None => bail!(
                    "internal error: `{}` planned from a runtime that is not open",
                    entry.name
                ),
            },
        };
        result.with_context(|| format!("cannot pack `{}`", entry.name))?;
    }
    writer.finish(manifest).with_context(write_error)?;
    let size = temporary
        .as_file()
        .metadata()
        .map(|metadata| metadata.len())
        .unwrap_or(0);
    temporary
        .as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o755))
        .with_context(write_error)?;
    temporary
        .persist(output)
        .map_err(|error| error.error)
        .with_context(|| format!("cannot replace `{}`", output.display()))?;
    Ok(size)
}

fn temporary_display(output: &Path) -> String {
    output.display().to_string()
}
