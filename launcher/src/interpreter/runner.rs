//! Running the application's entry point once the interpreter is up, and turning how it ended
//! into an exit status the way `python` does.

use pyo3::exceptions::{PyKeyboardInterrupt, PySystemExit};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use pyferry_payload::EntryPoint;

use crate::importer::finder::ArchiveImporter;

/// How the application ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Exit(i32),
    /// An unhandled `KeyboardInterrupt`: the process dies by SIGINT, as python's does.
    Interrupted,
}

/// Runs `entry` and reports how it ended. Python-level failures are printed the way `python`
/// prints them; they never escape as Rust errors.
pub fn run(py: Python<'_>, importer: &Bound<'_, ArchiveImporter>, entry: &EntryPoint) -> Outcome {
    let result = match &entry.function {
        Some(function) => call_function(py, &entry.module, function),
        None => run_module_as_main(py, importer, &entry.module).map(|()| py.None().into_bound(py)),
    };
    // As python does after running code: flush the standard streams, ignoring failures (a
    // closed pipe is reported once, by the exception itself).
    flush_standard_streams(py);
    match result {
        Ok(value) if entry.function.is_some() => Outcome::Exit(exit_status_of(py, &value)),
        Ok(_) => Outcome::Exit(0),
        Err(error) => outcome_of_error(py, error),
    }
}

/// `import module; sys.exit(module.function())`, the console-script contract.
fn call_function<'py>(
    py: Python<'py>,
    module: &str,
    function: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let mut target = py.import(module)?.into_any();
    for attribute in function.split('.') {
        target = target.getattr(attribute)?;
    }
    target.call0()
}

/// What `python -m module` does, minus `runpy`'s frames in tracebacks: find the module's spec
/// (a package runs its `__main__`), then execute its code in the `__main__` module.
fn run_module_as_main(
    py: Python<'_>,
    importer: &Bound<'_, ArchiveImporter>,
    module: &str,
) -> PyResult<()> {
    let find = |name: &str| -> PyResult<Option<Bound<'_, PyAny>>> {
        let spec = if name == "__main__" {
            // `importlib.util.find_spec("__main__")` would return the running `__main__`; the
            // file is found under its alias instead (see `MAIN_ALIAS`).
            importer.call_method1("find_spec", (crate::importer::finder::MAIN_ALIAS,))?
        } else {
            py.import("importlib.util")?
                .getattr("find_spec")?
                .call1((name,))?
        };
        Ok((!spec.is_none()).then_some(spec))
    };
    let not_found = |name: &str| {
        pyo3::exceptions::PyImportError::new_err(format!(
            "the entry point module `{name}` is not in the application"
        ))
    };
    let mut spec = find(module)?.ok_or_else(|| not_found(module))?;
    if !spec.getattr("submodule_search_locations")?.is_none() {
        let main_name = format!("{module}.__main__");
        spec = find(&main_name)?.ok_or_else(|| {
            pyo3::exceptions::PyImportError::new_err(format!(
                "`{module}` is a package and has no `__main__` module to run"
            ))
        })?;
    }
    let loader = spec.getattr("loader")?;
    let code = loader.call_method1("get_code", (spec.getattr("name")?,))?;
    let main_module = py.import("sys")?.getattr("modules")?.get_item("__main__")?;
    let globals = main_module.getattr("__dict__")?.cast_into::<PyDict>()?;
    globals.set_item("__file__", spec.getattr("origin")?)?;
    globals.set_item("__loader__", &loader)?;
    globals.set_item("__package__", spec.getattr("parent")?)?;
    globals.set_item("__cached__", py.None())?;
    globals.set_item("__spec__", &spec)?;
    py.import("builtins")?
        .getattr("exec")?
        .call1((code, &globals))?;
    Ok(())
}

/// The exit status for the value of `SystemExit.code` or a console script's return value:
/// `None` is 0, an integer is itself, anything else is printed to stderr and gives 1.
fn exit_status_of(py: Python<'_>, value: &Bound<'_, PyAny>) -> i32 {
    if value.is_none() {
        return 0;
    }
    if let Ok(status) = value.extract::<i64>() {
        return status as i32;
    }
    let printed = (|| -> PyResult<()> {
        let stderr = py.import("sys")?.getattr("stderr")?;
        stderr.call_method1("write", (format!("{}\n", value.str()?),))?;
        stderr.call_method0("flush")?;
        Ok(())
    })();
    if printed.is_err() {
        eprintln!("{value}");
    }
    1
}

fn flush_standard_streams(py: Python<'_>) {
    for name in ["stderr", "stdout"] {
        if let Ok(stream) = py.import("sys").and_then(|sys| sys.getattr(name)) {
            let _ = stream.call_method0("flush");
        }
    }
}

fn outcome_of_error(py: Python<'_>, error: PyErr) -> Outcome {
    if error.is_instance_of::<PySystemExit>(py) {
        let code = error.value(py).getattr("code");
        return Outcome::Exit(match code {
            Ok(code) => exit_status_of(py, &code),
            Err(_) => 1,
        });
    }
    let interrupted = error.is_instance_of::<PyKeyboardInterrupt>(py);
    print_exception(py, error);
    if interrupted {
        Outcome::Interrupted
    } else {
        Outcome::Exit(1)
    }
}

/// Prints an uncaught exception through `sys.excepthook`, as `python` does; if the hook itself
/// fails, CPython's own display prints both.
fn print_exception(py: Python<'_>, error: PyErr) {
    let value = error.value(py).clone();
    let hook_result = (|| -> PyResult<()> {
        let hook = py.import("sys")?.getattr("excepthook")?;
        hook.call1((value.get_type(), &value, error.traceback(py)))?;
        Ok(())
    })();
    if let Err(hook_error) = hook_result {
        hook_error.display(py);
        error.display(py);
    }
}

/// The default `sys.excepthook` of a packed application: `traceback.print_exception`, which
/// finds source lines through the loader (CPython 3.11's built-in hook only reads real files).
#[pyfunction]
#[pyo3(signature = (exception_type, value, traceback))]
pub fn excepthook(
    py: Python<'_>,
    exception_type: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
    traceback: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let printed = py.import("traceback").and_then(|module| {
        module
            .getattr("print_exception")?
            .call1((exception_type, value, traceback))
    });
    if printed.is_err() {
        py.import("sys")?
            .getattr("__excepthook__")?
            .call1((exception_type, value, traceback))?;
    }
    Ok(())
}

/// `TypeName: message` of a Python exception, for a one-line error. (pyo3's `Display` for
/// `PyErr` attaches to the interpreter, which it refuses before the main phase of start-up.)
pub fn describe_error(py: Python<'_>, error: &PyErr) -> String {
    let type_name = error
        .get_type(py)
        .name()
        .map(|name| name.to_string())
        .unwrap_or_else(|_| "Exception".to_string());
    match error.value(py).str() {
        Ok(message) if !message.to_string_lossy().is_empty() => {
            format!("{type_name}: {}", message.to_string_lossy())
        }
        _ => type_name,
    }
}
