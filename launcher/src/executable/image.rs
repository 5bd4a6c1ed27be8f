//! The launcher's view of its own executable file: opened through `/proc/self/exe` and mapped
//! read-only for the life of the process.
//!
//! The mapping is leaked on purpose: the importer hands out slices of it (stored bytecode, shared
//! libraries) until the process exits, and CPython may keep code objects alive just as long.
#![allow(unsafe_code)]

use std::fs::File;
use std::path::PathBuf;

use memmap2::Mmap;

/// The kernel's link to the running executable. FreeBSD (untested) has it when `procfs` is
/// mounted; without it start-up fails with a message saying so.
#[cfg(target_os = "freebsd")]
const SELF_EXE: &str = "/proc/curproc/file";
#[cfg(not(target_os = "freebsd"))]
const SELF_EXE: &str = "/proc/self/exe";

/// The running executable: where it is and its bytes.
pub struct ExecutableImage {
    /// The absolute path the kernel resolved for this process (`/proc/self/exe`).
    pub path: PathBuf,
    pub bytes: &'static [u8],
    /// A descriptor on the file, kept open for the life of the process.
    pub fd: std::os::fd::RawFd,
}

/// Why the executable could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(
        "cannot locate the running executable through `/proc/self/exe`: {0} (is /proc mounted?)"
    )]
    Locate(std::io::Error),
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ExecutableImage {
    /// Opens and maps the running executable.
    pub fn open() -> Result<ExecutableImage, ImageError> {
        let path = std::fs::read_link(SELF_EXE).map_err(ImageError::Locate)?;
        // Open the magic link itself rather than the path it names: the file may have been
        // replaced or deleted since exec, and only the link still reaches what is running.
        let file = File::open(SELF_EXE).map_err(|source| ImageError::Read {
            path: path.clone(),
            source,
        })?;
        // SAFETY: the map is read-only and private to this process. The file is the running
        // executable: the kernel refuses writes to it while it is executed (ETXTBSY), so the
        // mapped bytes cannot change under us; a truncation by another process would raise
        // SIGBUS, as it would for the executable's own text.
        let map = unsafe { Mmap::map(&file) }.map_err(|source| ImageError::Read {
            path: path.clone(),
            source,
        })?;
        let bytes: &'static [u8] = Box::leak(Box::new(map));
        let fd = std::os::fd::IntoRawFd::into_raw_fd(file);
        Ok(ExecutableImage { path, bytes, fd })
    }
}
