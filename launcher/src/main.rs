//! `pyferry-launcher`: the executable part of every pyferry application.
//!
//! Boot sequence (docs/architecture.md tells it at length):
//! 1. [`image`]: map our own executable through `/proc/self/exe`;
//! 2. `pyferry_payload::Archive`: find the zip at its end, check the manifest, index entries;
//! 3. [`interpreter`]: pre-initialize (UTF-8, isolated) and initialize CPython's core;
//! 4. [`importer::finder`]: put the Rust importer on `sys.meta_path`, then finish
//!    initialization, so that `encodings` and everything after come from the archive; add the
//!    path hook;
//! 5. [`runner`]: run the entry point and exit with python's exit status.
//!
//! The folders are layers, each using only those below it: [`executable`] and [`environment`]
//! at the bottom, then [`native`] (shared objects from memory), [`importer`], [`interpreter`].

#[cfg(target_os = "linux")]
mod archive_fs;
mod environment;
mod executable;
mod importer;
mod info;
mod interpreter;
mod native;

use std::ffi::OsString;
use std::process::ExitCode;

use pyo3::prelude::*;
use pyo3::types::PyList;

use pyferry_payload::{Archive, ArchiveError};

use crate::environment::InitMode;
use crate::executable::context::ArchiveContext;
use crate::executable::image;
use crate::importer::finder::ArchiveImporter;
use crate::interpreter::command_line::{self, LaunchMode};
use crate::interpreter::runner::{self, Outcome};
use crate::native::{limits, prefetch};

/// The Python this launcher embeds (`major.minor`); payloads built for another are refused.
pub const PYTHON_VERSION: &str = "3.11";

/// Exit status for the launcher's own errors, before any Python code ran.
const BOOT_FAILURE: u8 = 2;

/// A start-up failure, printed as one line.
#[derive(Debug, thiserror::Error)]
enum BootError {
    #[error("{0}")]
    Environment(String),
    #[error(transparent)]
    Image(#[from] image::ImageError),
    #[error("no application is appended to {0}; build one with `pyferry pack`")]
    NoPayload(String),
    #[error("{path}: {source}")]
    Payload { path: String, source: ArchiveError },
    #[error("{path}: the application was built for Python {built_for}, but this launcher embeds Python {PYTHON_VERSION}; rebuild it with a matching pyferry")]
    PythonMismatch { path: String, built_for: String },
    #[error(transparent)]
    Interpreter(#[from] interpreter::InitError),
    #[error("cannot install the importer: {0}")]
    Importer(String),
    #[error("{path}: cannot load the UTF-8 codec that Python starts with ({reason})")]
    Codecs { path: String, reason: String },
    #[error(transparent)]
    Recursion(#[from] interpreter::lineage::RecursionError),
    #[error("{path} was started as `{name}`, which is none of its scripts ({available}); hint: link it under one of those names (`ln -s {path} NAME`)")]
    UnknownScript {
        path: String,
        name: String,
        available: String,
    },
}

/// The entry point to run: the script named like the executable's `argv[0]` when the app packs
/// several (`--all-scripts`), else the manifest's entry point.
fn chosen_entry_point<'a>(
    context: &'a ArchiveContext,
    argv: &[OsString],
) -> Result<&'a pyferry_payload::EntryPoint, BootError> {
    let manifest = context.archive.manifest();
    let name = argv
        .first()
        .and_then(|argument| std::path::Path::new(argument).file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(entry) = manifest.scripts.get(&name) {
        return Ok(entry);
    }
    if manifest.entry_point.module.is_empty() {
        return Err(BootError::UnknownScript {
            path: context.root.clone(),
            name,
            available: manifest
                .scripts
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(&manifest.entry_point)
}

/// Standard error for the launcher's own log lines, ignoring write failures: a closed or full
/// stderr must not turn diagnostics into a panic (tracing's writer would).
struct LossyStderr;

impl std::io::Write for LossyStderr {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_logging() {
    let Some(filter) = environment::log_filter() else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("debug"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LossyStderr)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn open_archive() -> Result<&'static ArchiveContext, BootError> {
    let _span = tracing::info_span!("open_archive").entered();
    let image = image::ExecutableImage::open()?;
    let root = image.path.to_string_lossy().into_owned();
    let archive = Archive::parse(image.bytes).map_err(|source| match source {
        ArchiveError::NoPayload => BootError::NoPayload(root.clone()),
        source => BootError::Payload {
            path: root.clone(),
            source,
        },
    })?;
    let manifest = archive.manifest();
    if manifest.python_version != PYTHON_VERSION {
        return Err(BootError::PythonMismatch {
            path: root,
            built_for: manifest.python_version.clone(),
        });
    }
    tracing::debug!(
        entries = archive.index().len(),
        payload_start = archive.payload_start(),
        build_id = %manifest.build_id,
        "payload found"
    );
    Ok(Box::leak(Box::new(ArchiveContext {
        archive,
        root,
        image: image.bytes,
        image_fd: image.fd,
    })))
}

/// Puts the importer on `sys.meta_path` just before `PathFinder` (after the built-in and frozen
/// importers), or at the end while `PathFinder` is not installed yet.
fn install_meta_path(py: Python<'_>, importer: &Bound<'_, ArchiveImporter>) -> PyResult<()> {
    let meta_path = py
        .import("sys")?
        .getattr("meta_path")?
        .cast_into::<PyList>()?;
    let mut position = meta_path.len();
    for (index, finder) in meta_path.iter().enumerate() {
        if finder
            .getattr("__name__")
            .is_ok_and(|name| name.to_string() == "PathFinder")
        {
            position = index;
            break;
        }
    }
    meta_path.insert(position, importer)
}

/// Makes `PathFinder` use the importer for the executable's own `sys.path` entry from the first
/// path-based lookup on, before the path hook is installed: main initialization imports `site`
/// in interpreter mode, and `site`'s lookup of `sitecustomize` would otherwise build a
/// `zipimporter`, which reads the whole central directory in Python (3 ms).
fn prime_path_importer_cache(
    py: Python<'_>,
    importer: &Bound<'_, ArchiveImporter>,
    root: &str,
) -> PyResult<()> {
    let finder = importer.call_method1("path_hook", (root,))?;
    py.import("sys")?
        .getattr("path_importer_cache")?
        .set_item(root, finder)
}

/// Makes path-based lookups of paths inside the executable use the importer, never
/// `zipimporter` (which would re-read the zip in Python).
fn install_path_hook(py: Python<'_>, importer: &Bound<'_, ArchiveImporter>) -> PyResult<()> {
    let sys = py.import("sys")?;
    let hooks = sys.getattr("path_hooks")?.cast_into::<PyList>()?;
    hooks.insert(0, importer.getattr("path_hook")?)?;
    sys.getattr("path_importer_cache")?.call_method0("clear")?;
    Ok(())
}

/// What `site` would add that scripts rely on (`exit()`, `quit()`, `help()`), without importing
/// `site` itself, and the excepthook that shows source lines.
fn install_builtins(py: Python<'_>) -> PyResult<()> {
    let builtins = py.import("builtins")?;
    let site_builtins = py.import("_sitebuiltins")?;
    let quitter = site_builtins.getattr("Quitter")?;
    builtins.setattr("exit", quitter.call1(("exit", "Ctrl-D (i.e. EOF)"))?)?;
    builtins.setattr("quit", quitter.call1(("quit", "Ctrl-D (i.e. EOF)"))?)?;
    builtins.setattr("help", site_builtins.getattr("_Helper")?.call0()?)?;
    py.import("sys")?
        .setattr("excepthook", wrap_pyfunction!(runner::excepthook, py)?)?;
    Ok(())
}

/// Loads `encodings` and the UTF-8 codec from the archive before CPython's main phase asks for
/// them: when they are damaged, CPython would print its whole path configuration (twenty
/// lines) before failing; this way the failure is one line naming the entry and the cause.
/// Costs nothing when they are intact: CPython finds the codec cached.
fn load_codecs(py: Python<'_>) -> PyResult<()> {
    let lookup = py.import("codecs")?.call_method1("lookup", ("utf-8",));
    if let Err(error) = lookup {
        // `encodings` turns a failed import of the codec's module into "unknown encoding":
        // import it directly for the error that names the entry.
        py.import("encodings.utf_8")?;
        return Err(error);
    }
    Ok(())
}

/// How a start ended, seen from `main`.
enum Finished {
    /// The application ran; the interpreter still has to be finalized.
    Ran(Outcome),
    /// CPython's own `main` ran and finalized (interpreter mode): exit with its status.
    Finalized(i32),
}

fn boot() -> Result<Finished, BootError> {
    init_logging();
    let mode = environment::init_mode().map_err(BootError::Environment)?;
    let context = open_archive()?;
    #[cfg(target_os = "linux")]
    archive_fs::install(context, environment::archive_fs_enabled());
    limits::ensure_descriptors(context).map_err(BootError::Environment)?;
    let argv: Vec<OsString> = std::env::args_os().collect();
    if environment::info_requested() {
        info::print(context, &argv);
        return Ok(Finished::Finalized(0));
    }
    let lineage =
        interpreter::lineage::Lineage::from_environment(&context.archive.manifest().build_id);
    let launch = command_line::launch_mode(&argv, &lineage);
    if launch == LaunchMode::App {
        lineage.check_depth(&context.root)?;
    }
    // Before any other thread exists (the prefetch thread starts below): OpenSSL's CA bundle
    // on hosts where its defaults find none, and, for children started by the application or
    // by its python children, the marker and the count.
    interpreter::certificates::configure();
    std::env::set_var(
        environment::ANCESTRY,
        lineage.value_for_children(launch == LaunchMode::App),
    );
    let entry_point = match launch {
        LaunchMode::App => {
            let entry_point = chosen_entry_point(context, &argv)?;
            prefetch::prefetch_for_entry_point(context, entry_point);
            Some(entry_point)
        }
        LaunchMode::Interpreter => None,
    };
    let settings = interpreter::InterpreterSettings {
        executable: std::path::Path::new(&context.root),
        argv: &argv,
        mode,
        launch,
        inherit_python_env: context.archive.manifest().inherit_python_env,
    };
    {
        let _span = tracing::info_span!("initialize", ?mode, ?launch).entered();
        interpreter::pre_initialize(&settings)?;
        interpreter::initialize(&settings)?;
    }
    let importer_error = |error: PyErr| BootError::Importer(error.to_string());
    let outcome = interpreter::with_python(|py| -> Result<Option<Outcome>, BootError> {
        let importer = Bound::new(py, ArchiveImporter::new(context)).map_err(importer_error)?;
        install_meta_path(py, &importer).map_err(importer_error)?;
        prime_path_importer_cache(py, &importer, &context.root).map_err(importer_error)?;
        if mode == InitMode::MultiPhase {
            let _span = tracing::info_span!("initialize_main").entered();
            load_codecs(py).map_err(|error| BootError::Codecs {
                path: context.root.clone(),
                reason: runner::describe_error(py, &error),
            })?;
            interpreter::initialize_main()?;
        }
        install_path_hook(py, &importer).map_err(importer_error)?;
        install_builtins(py).map_err(importer_error)?;
        let Some(entry_point) = entry_point else {
            return Ok(None);
        };
        let _span = tracing::info_span!("run", entry_point = %entry_point).entered();
        Ok(Some(runner::run(py, &importer, entry_point)))
    })?;
    Ok(match outcome {
        Some(outcome) => Finished::Ran(outcome),
        None => Finished::Finalized(interpreter::run_main()),
    })
}

fn main() -> ExitCode {
    match boot() {
        Ok(Finished::Finalized(status)) => ExitCode::from(status as u8),
        Err(BootError::Interpreter(interpreter::InitError::Exit(status))) => {
            ExitCode::from(status as u8)
        }
        Ok(Finished::Ran(outcome)) => {
            // Like python: a failure to flush the standard streams at exit turns into 120.
            let flushed = interpreter::finalize();
            match outcome {
                Outcome::Interrupted => interpreter::exit_by_sigint(),
                Outcome::Exit(_) if !flushed => ExitCode::from(120),
                Outcome::Exit(status) => ExitCode::from(status as u8),
            }
        }
        Err(error @ BootError::Recursion(_)) => {
            // Exit 1, not the launcher's 2: a parent that checks its child's status sees an
            // ordinary failure.
            eprintln!("pyferry: error: {error}");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("pyferry: error: {error}");
            ExitCode::from(BOOT_FAILURE)
        }
    }
}
