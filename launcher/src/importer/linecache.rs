//! Source lines for callers that give `linecache` a file name only.
//!
//! Tracebacks pass a module's globals to `linecache`, which then asks the module's loader for
//! its source. CPython's C `warnings` code does not: it calls `linecache.getline(filename,
//! lineno)` alone, which can only read real files, so a warning raised in a packed module would
//! show no source line. When `linecache` is imported from the archive, its `updatecache` is
//! wrapped: a name under the executable that the original cannot read is read from the archive.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::executable::context::ArchiveContext;

static ORIGINAL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static CONTEXT: std::sync::OnceLock<&'static ArchiveContext> = std::sync::OnceLock::new();

/// `linecache.updatecache` with the archive as a fallback.
#[pyfunction]
#[pyo3(signature = (filename, module_globals=None))]
fn updatecache<'py>(
    py: Python<'py>,
    filename: &Bound<'py, PyAny>,
    module_globals: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let original = ORIGINAL
        .get(py)
        .ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("linecache hook not set up"))?
        .bind(py);
    let lines = original.call1((filename, module_globals))?;
    if lines.len().unwrap_or(0) > 0 {
        return Ok(lines);
    }
    let (Ok(name), Some(context)) = (filename.extract::<String>(), CONTEXT.get()) else {
        return Ok(lines);
    };
    let Some(relative) = context
        .relative_path(&name)
        .filter(|relative| relative.ends_with(".py"))
    else {
        return Ok(lines);
    };
    let Ok(Some(source)) = context.archive.read(relative) else {
        return Ok(lines);
    };
    let text = py
        .import("importlib._bootstrap_external")?
        .getattr("decode_source")?
        .call1((PyBytes::new(py, &source),))?;
    let split = text
        .call_method1("splitlines", (true,))?
        .cast_into::<PyList>()?;
    // As linecache itself does: the last line always ends with a newline.
    if let Some(last) = split.len().checked_sub(1) {
        let line: String = split.get_item(last)?.extract()?;
        if !line.ends_with('\n') {
            split.set_item(last, format!("{line}\n"))?;
        }
    }
    let entry = PyTuple::new(
        py,
        [
            text.len()?.into_pyobject(py)?.into_any(),
            py.None().into_bound(py),
            split.clone().into_any(),
            filename.clone(),
        ],
    )?;
    py.import("linecache")?
        .getattr("cache")?
        .set_item(filename, entry)?;
    Ok(split.into_any())
}

/// Wraps `linecache.updatecache` in the freshly executed `linecache` module.
pub fn extend(module: &Bound<'_, PyAny>, context: &'static ArchiveContext) -> PyResult<()> {
    let py = module.py();
    let _ = CONTEXT.set(context);
    let original = module.getattr("updatecache")?;
    let _ = ORIGINAL.set(py, original.unbind());
    module.setattr("updatecache", wrap_pyfunction!(updatecache, py)?)
}
