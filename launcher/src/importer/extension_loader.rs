//! The loader of extension modules found in the archive.
//!
//! `create_module` has the native layer put the extension in a memory file and load, from
//! memory, the libraries the packer recorded as its dependencies (`native::shared_objects`),
//! then hands `/proc/self/fd/N` to `_imp.create_dynamic`, exactly what CPython's
//! `ExtensionFileLoader` does with a path on disk. `__file__` is then set to the virtual path
//! inside the executable.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

use crate::executable::context::ArchiveContext;
use crate::importer::finder::{import_error, module_spec_type};
use crate::native::shared_objects;

static LOADER: PyOnceLock<Py<ExtensionLoader>> = PyOnceLock::new();

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
        // The GIL is released while libraries load: a prefetch thread may still be copying them.
        let fd_path = py
            .detach(|| shared_objects::prepare(context, relative))
            .map_err(|error| fail(format!("cannot import `{name}`: {error}")))?;
        // Loaded here first (CPython's `dlopen` then finds it) so that its read-only pages can
        // be shared before anything forks.
        #[cfg(target_os = "linux")]
        if crate::native::page_sharing::enabled() {
            let flags: libc::c_int = py
                .import("sys")?
                .call_method0("getdlopenflags")?
                .extract()?;
            shared_objects::load_early(context, relative, &fd_path, flags)
                .map_err(|error| fail(format!("cannot import `{name}`: {error}")))?;
        }
        // FreeBSD (untested): no path reaches a memory file without fdescfs; create the module
        // from the descriptor.
        #[cfg(target_os = "freebsd")]
        {
            let fd = crate::native::memfd::descriptor_of(&fd_path).map_err(fail)?;
            let module = crate::native::fd_extension::create_module(py, spec, fd, &origin)
                .map_err(|error| fail(error.value(py).to_string()))?;
            drop(span);
            return Ok(module);
        }
        // `create_dynamic` reads the spec's `name` and `origin`: give it a copy whose origin is
        // the memory file.
        #[cfg_attr(target_os = "freebsd", allow(unreachable_code))]
        let kwargs = PyDict::new(py);
        kwargs.set_item("origin", &fd_path)?;
        let memory_spec = module_spec_type(py)?.call((&name, slf), Some(&kwargs))?;
        // `dlopen`'s errors name the memory file: name the archive entry instead.
        let module = py
            .import("_imp")?
            .getattr("create_dynamic")?
            .call1((memory_spec,))
            .map_err(|error| fail(error.value(py).to_string().replace(&fd_path, &origin)))?;
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
