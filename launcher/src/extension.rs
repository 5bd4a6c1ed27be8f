//! Loading extension modules (and the shared libraries they need) from memory.
//!
//! An extension found in the archive gets this loader. `create_module` first loads, from memory,
//! the libraries the packer recorded as its dependencies (dependencies first), then copies the
//! extension into a memory file and hands `/proc/self/fd/N` to `_imp.create_dynamic`, exactly
//! what CPython's `ExtensionFileLoader` does with a path on disk. `__file__` is then set to the
//! virtual path inside the executable.

use std::collections::HashMap;
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

use crate::context::ArchiveContext;
use crate::finder::import_error;
use crate::{dynamic_loader, memfd};

static LOADER: PyOnceLock<Py<ExtensionLoader>> = PyOnceLock::new();

/// Archive paths of shared objects already in memory, with the `/proc/self/fd/N` path of each.
static LOADED: Mutex<Option<HashMap<String, String>>> = Mutex::new(None);

fn loaded_path(name: &str) -> Option<String> {
    LOADED.lock().ok()?.as_ref()?.get(name).cloned()
}

fn mark_loaded(name: &str, path: String) {
    if let Ok(mut loaded) = LOADED.lock() {
        loaded
            .get_or_insert_with(HashMap::new)
            .insert(name.to_string(), path);
    }
}

/// Copies archive entry `name` into a memory file (without a copy through user space when the
/// entry is stored) and returns the path `dlopen` takes.
fn to_memory(context: &ArchiveContext, name: &str) -> Result<String, String> {
    let archive = &context.archive;
    let file = match archive.stored_range(name) {
        Some(range) => {
            let bytes = &context.image[range.clone()];
            memfd::load(name, context.image_fd, range.start as u64, bytes)
        }
        None => {
            let data = archive
                .read(name)
                .map_err(|error| error.to_string())?
                .ok_or_else(|| format!("`{name}` is missing from the application"))?;
            memfd::load_bytes(name, &data)
        }
    };
    let file = file.map_err(|error| error.to_string())?;
    tracing::debug!(name, backing = %file.backing, path = %file.proc_path(), "in memory");
    Ok(file.proc_path())
}

/// Loads the libraries `name` needs, dependencies first, each once.
fn load_dependencies(context: &ArchiveContext, name: &str, depth: usize) -> Result<(), String> {
    let Some(needed) = context.archive.manifest().shared_libraries.get(name) else {
        return Ok(());
    };
    if depth > 64 {
        return Err(format!(
            "library dependencies of `{name}` nest too deep (a cycle?)"
        ));
    }
    for library in needed {
        if loaded_path(library).is_some() {
            continue;
        }
        load_dependencies(context, library, depth + 1)?;
        let path = to_memory(context, library)?;
        dynamic_loader::open_library(&path)
            .map_err(|error| format!("cannot load `{library}` (needed by `{name}`): {error}"))?;
        tracing::debug!(
            library,
            needed_by = name,
            "vendored library loaded from memory"
        );
        mark_loaded(library, path);
    }
    Ok(())
}

/// The loader of extension modules in the archive. One instance serves every extension.
#[pyclass(frozen, module = "pyferry", name = "ExtensionLoader")]
pub struct ExtensionLoader {
    context: &'static ArchiveContext,
}

impl ExtensionLoader {
    pub fn for_context<'py>(
        py: Python<'py>,
        context: &'static ArchiveContext,
    ) -> PyResult<Bound<'py, ExtensionLoader>> {
        LOADER
            .get_or_try_init(py, || Py::new(py, ExtensionLoader { context }))
            .map(|loader| loader.bind(py).clone())
    }
}

#[pymethods]
impl ExtensionLoader {
    fn create_module<'py>(
        slf: &Bound<'py, Self>,
        spec: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let context = slf.get().context;
        let name: String = spec.getattr("name")?.extract()?;
        let origin: String = spec.getattr("origin")?.extract()?;
        let fail = |message: String| import_error(py, message, &name, &origin);
        let relative = context
            .relative_path(&origin)
            .ok_or_else(|| fail(format!("`{origin}` is not inside this application")))?;
        let span = tracing::debug_span!("extension", module = %name).entered();
        load_dependencies(context, relative, 0)
            .map_err(|error| fail(format!("cannot import `{name}`: {error}")))?;
        let fd_path = match loaded_path(relative) {
            Some(path) => path,
            None => {
                let path = to_memory(context, relative)
                    .map_err(|error| fail(format!("cannot import `{name}`: {error}")))?;
                mark_loaded(relative, path.clone());
                path
            }
        };
        // `create_dynamic` reads the spec's `name` and `origin`: give it a copy whose origin is
        // the memory file.
        let kwargs = PyDict::new(py);
        kwargs.set_item("origin", &fd_path)?;
        let memory_spec = py
            .import("_frozen_importlib")?
            .getattr("ModuleSpec")?
            .call((&name, slf), Some(&kwargs))?;
        let module = py
            .import("_imp")?
            .getattr("create_dynamic")?
            .call1((memory_spec,))?;
        // Single-phase modules get `__file__` from the path they were loaded from.
        if module.hasattr("__file__")? {
            module.setattr("__file__", &origin)?;
        }
        drop(span);
        Ok(module)
    }

    fn exec_module(&self, module: &Bound<'_, PyAny>) -> PyResult<()> {
        module
            .py()
            .import("_imp")?
            .getattr("exec_dynamic")?
            .call1((module,))?;
        Ok(())
    }

    #[pyo3(signature = (fullname))]
    fn get_code(&self, py: Python<'_>, fullname: &str) -> Py<PyAny> {
        let _ = fullname;
        py.None()
    }

    #[pyo3(signature = (fullname))]
    fn get_source(&self, py: Python<'_>, fullname: &str) -> Py<PyAny> {
        let _ = fullname;
        py.None()
    }

    fn __repr__(&self) -> String {
        format!("<pyferry.ExtensionLoader for {:?}>", self.context.root)
    }
}
