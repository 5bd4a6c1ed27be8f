//! Starting and stopping CPython through its C configuration API (`PyPreConfig`, `PyConfig`).
//!
//! pyo3's `auto-initialize` cannot be used with a static libpython, and the launcher needs a
//! configuration pyo3 would not give anyway: isolated mode, UTF-8 mode, the archive as the only
//! `sys.path` entry, and (by default) multi-phase start-up so that the Rust importer is in place
//! before `encodings` is imported. This module is the only place that calls the configuration
//! API; it is small on purpose, every `unsafe` block states its invariant.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, OsString};
use std::os::raw::{c_char, c_int};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;

use pyo3::ffi;
use pyo3::Python;

use crate::environment::InitMode;
use crate::interpreter::command_line::LaunchMode;

extern "C" {
    /// Finishes a start-up begun with `PyConfig._init_main = 0`. Private API of CPython 3.8 to
    /// 3.13; pyo3-ffi has no binding.
    fn _Py_InitializeMain() -> ffi::PyStatus;
}

/// A failed start-up step, as CPython reported it.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("the Python interpreter failed to start: {0}")]
    Status(String),
    /// CPython finished during configuration (`-V`, `--help`, a bad option in interpreter
    /// mode): it printed what it had to say; exit with this status.
    #[error("exit status {0}")]
    Exit(i32),
    #[error("argument {0} contains a NUL byte")]
    NulInArgument(usize),
}

/// What the interpreter is configured from.
pub struct InterpreterSettings<'a> {
    /// Absolute path of the application: `sys.executable`, and the only `sys.path` entry.
    pub executable: &'a Path,
    /// The command line exactly as the process received it (`sys.argv`).
    pub argv: &'a [OsString],
    pub mode: InitMode,
    pub launch: LaunchMode,
    /// Read `PYTHON*` environment variables (packed with `--inherit-python-env`).
    pub inherit_python_env: bool,
}

fn status_result(status: ffi::PyStatus) -> Result<(), InitError> {
    // SAFETY: `PyStatus_Exception` only reads the plain struct it is given by value.
    if unsafe { ffi::PyStatus_Exception(status) } == 0 {
        return Ok(());
    }
    let text = |pointer: *const c_char| {
        if pointer.is_null() {
            None
        } else {
            // SAFETY: CPython fills `func` and `err_msg` with pointers to static C strings.
            Some(
                unsafe { CStr::from_ptr(pointer) }
                    .to_string_lossy()
                    .into_owned(),
            )
        }
    };
    if status._type == ffi::_PyStatus_TYPE::_PyStatus_TYPE_EXIT {
        return Err(InitError::Exit(status.exitcode));
    }
    let message = match (text(status.func), text(status.err_msg)) {
        (Some(function), Some(message)) => format!("{function}: {message}"),
        (None, Some(message)) => message,
        _ if status._type == ffi::_PyStatus_TYPE::_PyStatus_TYPE_EXIT => {
            format!("exited with status {}", status.exitcode)
        }
        _ => "unknown error".to_string(),
    };
    Err(InitError::Status(message))
}

fn c_string(bytes: &[u8], argument: usize) -> Result<CString, InitError> {
    CString::new(bytes).map_err(|_| InitError::NulInArgument(argument))
}

/// Pre-initializes the runtime: isolated, and UTF-8 mode so that stdio and file names are UTF-8
/// whatever the host's locale (an isolated pre-config would otherwise pick ASCII under `C`).
/// In interpreter mode python's command line is parsed here too, for the options that act
/// before the configuration (`-X dev`, `-X utf8`, `-I`, `-E`).
pub fn pre_initialize(settings: &InterpreterSettings<'_>) -> Result<(), InitError> {
    let mut preconfig = std::mem::MaybeUninit::<ffi::PyPreConfig>::uninit();
    // SAFETY: `PyPreConfig_InitIsolatedConfig` fully initializes the struct it is pointed at.
    let mut preconfig = unsafe {
        ffi::PyPreConfig_InitIsolatedConfig(preconfig.as_mut_ptr());
        preconfig.assume_init()
    };
    preconfig.utf8_mode = 1;
    if settings.inherit_python_env {
        preconfig.isolated = 0;
        preconfig.use_environment = 1;
    }
    if settings.launch != LaunchMode::Interpreter {
        // SAFETY: the pre-config was initialized above; pre-initialization happens once,
        // before any other Python API call.
        return status_result(unsafe { ffi::Py_PreInitialize(&preconfig) });
    }
    preconfig.parse_argv = 1;
    // Unset, so that `-X dev` decides (the isolated pre-config says 0).
    preconfig.dev_mode = -1;
    let arguments = settings
        .argv
        .iter()
        .enumerate()
        .map(|(index, argument)| c_string(argument.as_bytes(), index))
        .collect::<Result<Vec<CString>, InitError>>()?;
    let mut pointers: Vec<*mut c_char> = arguments
        .iter()
        .map(|argument| argument.as_ptr().cast_mut())
        .collect();
    // SAFETY: as above; `pointers` holds `argc` valid C strings that outlive the call, and
    // CPython only reads them (it copies what it keeps).
    status_result(unsafe {
        ffi::Py_PreInitializeFromBytesArgs(
            &preconfig,
            pointers.len() as ffi::Py_ssize_t,
            pointers.as_mut_ptr(),
        )
    })
}

/// Owns a `PyConfig` and clears it on every path out.
struct Config(ffi::PyConfig);

impl Drop for Config {
    fn drop(&mut self) {
        // SAFETY: the config was initialized by `PyConfig_InitIsolatedConfig`; clearing frees
        // the strings CPython allocated for it and is valid after a failed initialization too.
        unsafe { ffi::PyConfig_Clear(&mut self.0) };
    }
}

/// The `wchar_t *` members of `PyConfig` the launcher sets.
#[derive(Debug, Clone, Copy)]
enum StringField {
    ProgramName,
    Executable,
    BaseExecutable,
    Home,
    Prefix,
    BasePrefix,
    ExecPrefix,
    BaseExecPrefix,
    StdlibDir,
}

impl Config {
    fn set_string(&mut self, field: StringField, value: &CStr) -> Result<(), InitError> {
        let config: *mut ffi::PyConfig = &raw mut self.0;
        // SAFETY: `config` points at our initialized config and `&raw mut` takes a member's
        // address without creating a reference; CPython decodes `value` (a valid C string that
        // outlives the call) into a new string and frees the member's previous value.
        status_result(unsafe {
            let member = match field {
                StringField::ProgramName => &raw mut (*config).program_name,
                StringField::Executable => &raw mut (*config).executable,
                StringField::BaseExecutable => &raw mut (*config).base_executable,
                StringField::Home => &raw mut (*config).home,
                StringField::Prefix => &raw mut (*config).prefix,
                StringField::BasePrefix => &raw mut (*config).base_prefix,
                StringField::ExecPrefix => &raw mut (*config).exec_prefix,
                StringField::BaseExecPrefix => &raw mut (*config).base_exec_prefix,
                StringField::StdlibDir => &raw mut (*config).stdlib_dir,
            };
            ffi::PyConfig_SetBytesString(config, member, value.as_ptr())
        })
    }
}

/// Initializes CPython. With [`InitMode::MultiPhase`] only the core is initialized: the caller
/// installs its importer and then calls [`initialize_main`].
pub fn initialize(settings: &InterpreterSettings<'_>) -> Result<(), InitError> {
    let mut raw = std::mem::MaybeUninit::<ffi::PyConfig>::uninit();
    // SAFETY: `PyConfig_InitIsolatedConfig` fully initializes the struct it is pointed at.
    let mut config = Config(unsafe {
        ffi::PyConfig_InitIsolatedConfig(raw.as_mut_ptr());
        raw.assume_init()
    });
    let fields = &mut config.0;
    fields.site_import = 0;
    fields.write_bytecode = 0;
    fields.pathconfig_warnings = 0;
    fields.install_signal_handlers = 1;
    fields.configure_c_stdio = 1;
    fields.parse_argv = 0;
    fields.use_frozen_modules = 1;
    fields._init_main = c_int::from(settings.mode == InitMode::SinglePhase);
    if settings.inherit_python_env {
        fields.isolated = 0;
        fields.use_environment = 1;
        fields.safe_path = 1;
        fields.user_site_directory = 0;
    }
    if settings.launch == LaunchMode::Interpreter {
        // python's command line, over the packed `sys.path`: CPython parses the options
        // itself, and is not isolated unless asked (`-I`), though the environment stays out.
        fields.parse_argv = 1;
        fields.isolated = 0;
        fields.safe_path = 0;
        fields.site_import = 1;
        // Unset, so that `-X dev` (read by the pre-configuration) turns it on.
        fields.dev_mode = -1;
    }

    let executable = c_string(settings.executable.as_os_str().as_bytes(), 0)?;
    // The application is its own installation: prefixes and the standard library directory
    // are the executable, so nothing derived from them can name a real directory on the host.
    // `home` being set also stops CPython from looking for a `pyvenv.cfg` next to the file.
    let path_fields = [
        StringField::Executable,
        StringField::BaseExecutable,
        StringField::Home,
        StringField::Prefix,
        StringField::BasePrefix,
        StringField::ExecPrefix,
        StringField::BaseExecPrefix,
        StringField::StdlibDir,
    ];
    for field in path_fields {
        config.set_string(field, &executable)?;
    }
    let program_name = settings
        .argv
        .first()
        .map(|argument| c_string(argument.as_bytes(), 0))
        .transpose()?
        .unwrap_or_else(|| executable.clone());
    config.set_string(StringField::ProgramName, &program_name)?;

    let arguments: Vec<CString> = settings
        .argv
        .iter()
        .enumerate()
        .map(|(position, argument)| c_string(argument.as_bytes(), position))
        .collect::<Result<_, _>>()?;
    let mut pointers: Vec<*const c_char> =
        arguments.iter().map(|argument| argument.as_ptr()).collect();
    // SAFETY: `pointers` holds `arguments.len()` valid NUL-terminated strings that outlive the
    // call; CPython copies them (decoding as the file system encoding) and never writes to them.
    status_result(unsafe {
        ffi::PyConfig_SetBytesArgv(
            &mut config.0,
            pointers.len() as ffi::Py_ssize_t,
            pointers.as_mut_ptr(),
        )
    })?;

    // SAFETY: decoding after pre-initialization uses the UTF-8 mode set there; the returned
    // buffer is owned by us and freed right after CPython copied it into the list.
    unsafe {
        let wide = ffi::Py_DecodeLocale(executable.as_ptr(), ptr::null_mut());
        if wide.is_null() {
            return Err(InitError::Status(format!(
                "cannot decode the path {executable:?}"
            )));
        }
        let appended = ffi::PyWideStringList_Append(&mut config.0.module_search_paths, wide);
        ffi::PyMem_RawFree(wide.cast());
        status_result(appended)?;
    }
    config.0.module_search_paths_set = 1;

    // SAFETY: the config is fully set up; initialization happens once per process.
    status_result(unsafe { ffi::Py_InitializeFromConfig(&config.0) })
}

/// Completes a multi-phase start-up: imports `encodings`, sets up `sys.stdout` & co., installs
/// signal handlers and the path-based importers.
pub fn initialize_main() -> Result<(), InitError> {
    // SAFETY: called once, after a successful core initialization with `_init_main = 0`, on the
    // thread that holds the GIL.
    status_result(unsafe { _Py_InitializeMain() })
}

/// Runs what python's command line asked for (`-c`, `-m`, a script, stdin, the REPL), prints
/// an uncaught exception, finalizes, and returns python's exit status.
pub fn run_main() -> i32 {
    // SAFETY: called once on the main thread after a complete initialization with
    // `parse_argv = 1`; it finalizes the interpreter itself, after which no Python API is used.
    unsafe { ffi::Py_RunMain() }
}

/// Runs `body` with the GIL token. The launcher's main thread holds the GIL from
/// initialization until [`finalize`]; pyo3's `Python::attach` refuses to run in the window
/// between core and main initialization (`Py_IsInitialized()` is still 0 there).
pub fn with_python<R>(body: impl for<'py> FnOnce(Python<'py>) -> R) -> R {
    // SAFETY: only called on the main thread between `initialize` and `finalize`, where that
    // thread's state is current and holds the GIL.
    body(unsafe { Python::assume_attached() })
}

/// Finalizes the interpreter: runs `atexit` handlers, flushes and closes the standard streams.
/// Returns `false` when flushing failed (Python then exits with status 120).
pub fn finalize() -> bool {
    // SAFETY: called once on the main thread, holding the GIL, after the last Python call.
    unsafe { ffi::Py_FinalizeEx() == 0 }
}

/// Exits the process the way Python does after an unhandled `KeyboardInterrupt`: killed by
/// SIGINT, so that a calling shell sees the interrupt (status 130) and stops too.
pub fn exit_by_sigint() -> ! {
    // SAFETY: restoring the default disposition and raising a signal at ourselves are plain
    // syscalls with no memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        libc::kill(libc::getpid(), libc::SIGINT);
    }
    std::process::exit(130)
}
