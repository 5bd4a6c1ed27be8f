//! Every environment variable the launcher reads, in one place.
//!
//! The application owns its command line, so the launcher's own switches are environment
//! variables, all named `PYFERRY_*`. Python's own variables (`PYTHONPATH`, `PYTHONHOME`...) are
//! never read: the interpreter is isolated. `RUST_LOG` belongs to the user and is ignored too.

use std::env;

/// Turns on the launcher's diagnostics on stderr: `error`, `warn`, `info`, `debug`, `trace`, or
/// any `tracing` filter directive. Unset: the launcher prints nothing of its own.
pub const LOG: &str = "PYFERRY_LOG";

/// Chooses how the interpreter starts: `multi-phase` (the default: the Rust importer serves
/// the standard library from the first import on) or `single-phase` (CPython's `zipimport` reads
/// the standard library during start-up, then the Rust importer takes over).
pub const INIT: &str = "PYFERRY_INIT";

/// How CPython is initialised; see [`INIT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitMode {
    MultiPhase,
    SinglePhase,
}

/// Reads [`INIT`]. An unknown value is an error naming the accepted ones.
pub fn init_mode() -> Result<InitMode, String> {
    match env::var(INIT).as_deref() {
        Err(_) | Ok("") | Ok("multi-phase") => Ok(InitMode::MultiPhase),
        Ok("single-phase") => Ok(InitMode::SinglePhase),
        Ok(other) => Err(format!(
            "{INIT}={other:?} is not a start-up mode; use `multi-phase` or `single-phase`"
        )),
    }
}

/// The log filter from [`LOG`], if logging is on.
pub fn log_filter() -> Option<String> {
    env::var(LOG).ok().filter(|value| !value.is_empty())
}

/// Restricts how shared objects are put in memory, to test each fallback: `auto` (default),
/// `memfd` (skip the `MFD_NOEXEC_SEAL` attempt), `tmpfile` (skip `memfd_create`), `none` (no
/// way at all: extension imports fail with the list of what was tried).
pub const MEMFD: &str = "PYFERRY_MEMFD";

/// What [`MEMFD`] allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryFilePolicy {
    Auto,
    MemfdOnly,
    TmpFileOnly,
    Nothing,
}

impl MemoryFilePolicy {
    pub fn allows_memfd(self) -> bool {
        matches!(self, MemoryFilePolicy::Auto | MemoryFilePolicy::MemfdOnly)
    }

    #[cfg_attr(target_os = "freebsd", allow(dead_code))]
    pub fn allows_tmpfile(self) -> bool {
        matches!(self, MemoryFilePolicy::Auto | MemoryFilePolicy::TmpFileOnly)
    }
}

/// Reads [`MEMFD`]; an unknown value means `auto`, with a debug message.
pub fn memory_file_policy() -> MemoryFilePolicy {
    match env::var(MEMFD).as_deref() {
        Err(_) | Ok("") | Ok("auto") => MemoryFilePolicy::Auto,
        Ok("memfd") => MemoryFilePolicy::MemfdOnly,
        Ok("tmpfile") => MemoryFilePolicy::TmpFileOnly,
        Ok("none") => MemoryFilePolicy::Nothing,
        Ok(other) => {
            tracing::warn!(
                "{MEMFD}={other:?} is not one of auto, memfd, tmpfile, none; using auto"
            );
            MemoryFilePolicy::Auto
        }
    }
}

/// `0` turns off prefetching: putting a package's native libraries in memory on a background
/// thread as soon as the package is first imported.
pub const PREFETCH: &str = "PYFERRY_PREFETCH";

pub fn prefetch_enabled() -> bool {
    env::var(PREFETCH).map_or(true, |value| value != "0")
}

/// `0` keeps every page of a loaded shared object in its memory file, instead of mapping its
/// read-only segments from the executable once it is loaded (`page_sharing.rs`): for tools that
/// should see only the memory file's name on the object's code.
pub const SHARE_PAGES: &str = "PYFERRY_SHARE_PAGES";

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub fn share_pages_enabled() -> bool {
    env::var(SHARE_PAGES).map_or(true, |value| value != "0")
}

/// `1` puts shared objects in a private tmpfs with huge pages before trying `memfd_create`
/// (`memfd.rs`): filling and freeing them is several times faster where the host's memfds use
/// small pages; needs `CAP_SYS_ADMIN`, and falls back to the usual order without it.
pub const HUGE_PAGES: &str = "PYFERRY_HUGE_PAGES";

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub fn huge_pages_requested() -> bool {
    env::var(HUGE_PAGES).is_ok_and(|value| value == "1")
}

/// `1` runs the embedded interpreter with python's command line instead of the application
/// (see `command_line.rs` for every way to get there); `0` runs the application whatever the
/// command line looks like. Child processes inherit it.
pub const PYTHON_MODE: &str = "PYFERRY_PYTHON";

/// What [`PYTHON_MODE`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PythonModeRequest {
    /// Unset (or any other value): the launcher decides from the command line.
    Decide,
    Interpreter,
    Application,
}

pub fn python_mode_request() -> PythonModeRequest {
    match env::var(PYTHON_MODE).as_deref() {
        Ok("1") => PythonModeRequest::Interpreter,
        Ok("0") => PythonModeRequest::Application,
        _ => PythonModeRequest::Decide,
    }
}

/// Set by the launcher for its children, never by hand: which pyferry applications the process
/// descends from and how many times each ran as the application above it (`lineage.rs`).
pub const ANCESTRY: &str = "PYFERRY_ANCESTRY";

pub fn ancestry() -> Option<String> {
    env::var(ANCESTRY).ok()
}

/// How many runs of one application may be nested in each other (the application starting
/// itself, which starts itself...) before the launcher refuses to go deeper: a safety net
/// against an application multiplying itself without end. Default [`DEFAULT_MAX_NESTING`].
pub const MAX_NESTING: &str = "PYFERRY_MAX_NESTING";

pub const DEFAULT_MAX_NESTING: u32 = 4;

pub fn max_nesting() -> u32 {
    env::var(MAX_NESTING)
        .ok()
        .and_then(|value| value.parse().ok())
        .filter(|limit| *limit > 0)
        .unwrap_or(DEFAULT_MAX_NESTING)
}

/// `1` prints what the launcher knows about itself and this host (runtime and Python versions,
/// build id, entry point, which way of loading shared objects works here) and exits: the first
/// thing to paste into a bug report. An environment variable, so it cannot clash with the
/// application's own options.
pub const INFO: &str = "PYFERRY_INFO";

pub fn info_requested() -> bool {
    env::var(INFO).is_ok_and(|value| value == "1")
}

/// `0` turns off the archive filesystem (`archive_fs`): paths under the executable's own path
/// then reach the kernel, which answers `ENOTDIR` as without pyferry. For diagnosis only.
pub const ARCHIVE_FS: &str = "PYFERRY_ARCHIVE_FS";

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub fn archive_fs_enabled() -> bool {
    env::var(ARCHIVE_FS).map_or(true, |value| value != "0")
}

/// OpenSSL's own variables for where CA certificates are. The launcher sets `SSL_CERT_FILE`
/// itself when neither is set and OpenSSL's defaults find nothing (`interpreter/certificates.rs`).
pub const SSL_CERT_FILE: &str = "SSL_CERT_FILE";
pub const SSL_CERT_DIR: &str = "SSL_CERT_DIR";

pub fn ssl_certificates_set_by_user() -> bool {
    [SSL_CERT_FILE, SSL_CERT_DIR]
        .iter()
        .any(|name| env::var_os(name).is_some_and(|value| !value.is_empty()))
}
