//! The Rust importer: a `sys.meta_path` finder and loader over the archive, and the
//! `sys.path_hooks` entry that serves path-based lookups (namespace packages, `pkgutil`) for
//! paths inside the executable.
//!
//! Modules get virtual paths under the executable (`/path/myapp/pkg/mod.py`) as `__file__`,
//! `__spec__.origin` and `co_filename`, so tracebacks, `linecache` and `inspect` name them the
//! way they would name a file of a zipapp, and fetch their source through `get_source`.

use std::collections::HashMap;
use std::sync::Mutex;

use pyo3::exceptions::{PyFileNotFoundError, PyImportError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple, PyType};

use crate::executable::context::ArchiveContext;
use crate::importer::bytecode;
use crate::importer::modules::{self, FoundModule};
use crate::importer::resources::ArchiveResourceReader;

/// The importable name of the application's `__main__.py`. Its `__spec__.name` is this, not
/// `__main__`, so that `multiprocessing`'s spawn and forkserver children re-import it (as
/// `__mp_main__`) and find the functions and classes it defines; `multiprocessing` skips a
/// main module named `__main__`.
pub const MAIN_ALIAS: &str = "__pyferry_main__";

static MODULE_SPEC: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static BUILTINS_EXEC: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static BUILTINS_COMPILE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static FIX_CO_FILENAME: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// An `ImportError` with `name` and `path` set, as `zipimport` raises them.
pub fn import_error(py: Python<'_>, message: String, name: &str, path: &str) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let kwargs = PyDict::new(py);
        kwargs.set_item("name", name)?;
        kwargs.set_item("path", path)?;
        let error = py
            .get_type::<PyImportError>()
            .call((message.clone(),), Some(&kwargs))?;
        Ok(PyErr::from_value(error))
    };
    build().unwrap_or_else(|error| error)
}

/// `__cached__` of a Python module, relative to the archive root: the shipped bytecode, or for
/// a module shipped as source only, where CPython would cache its bytecode
/// (`importlib.util.cache_from_source`). Extension modules have none.
fn cached_path(py: Python<'_>, found: &FoundModule) -> PyResult<Option<String>> {
    let FoundModule::Python {
        stem, has_bytecode, ..
    } = found
    else {
        return Ok(None);
    };
    if *has_bytecode {
        return Ok(Some(format!("{stem}.pyc")));
    }
    let sys = py.import("sys")?;
    let tag: String = sys
        .getattr("implementation")?
        .getattr("cache_tag")?
        .extract()?;
    let optimize: u32 = sys.getattr("flags")?.getattr("optimize")?.extract()?;
    let level = if optimize > 0 {
        format!(".opt-{optimize}")
    } else {
        String::new()
    };
    let (dir, file) = match stem.rsplit_once('/') {
        Some((dir, file)) => (format!("{dir}/"), file),
        None => (String::new(), stem.as_str()),
    };
    Ok(Some(format!("{dir}__pycache__/{file}.{tag}{level}.pyc")))
}

/// `importlib.machinery.ModuleSpec` (from the frozen bootstrap, available before main
/// initialization), looked up once.
pub fn module_spec_type(py: Python<'_>) -> PyResult<Bound<'_, PyType>> {
    MODULE_SPEC
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(
                py.import("_frozen_importlib")?
                    .getattr("ModuleSpec")?
                    .cast_into::<PyType>()?
                    .unbind(),
            )
        })
        .map(|module_spec| module_spec.bind(py).clone())
}

fn cached<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyAny>>,
    module: &str,
    attribute: &str,
) -> PyResult<Bound<'py, PyAny>> {
    cell.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import(module)?.getattr(attribute)?.unbind())
    })
    .map(|object| object.bind(py).clone())
}

/// The finder and loader for modules in the archive. One instance serves the whole process.
#[pyclass(frozen, module = "pyferry", name = "ArchiveImporter")]
pub struct ArchiveImporter {
    context: &'static ArchiveContext,
    /// Where each module found so far lives, so the loader methods that get only a module name
    /// (`get_code`, `get_source`...) use the location `find_spec` chose.
    found: Mutex<HashMap<String, FoundModule>>,
}

impl ArchiveImporter {
    pub fn new(context: &'static ArchiveContext) -> ArchiveImporter {
        ArchiveImporter {
            context,
            found: Mutex::new(HashMap::new()),
        }
    }

    fn remember(&self, fullname: &str, found: &FoundModule) {
        if let Ok(mut map) = self.found.lock() {
            map.insert(fullname.to_string(), found.clone());
        }
    }

    /// The location of `fullname`: where `find_spec` found it, else its canonical place
    /// (`a.b.c` in `a/b/`).
    fn locate(&self, py: Python<'_>, fullname: &str) -> PyResult<FoundModule> {
        if let Some(found) = self
            .found
            .lock()
            .ok()
            .and_then(|map| map.get(fullname).cloned())
        {
            return Ok(found);
        }
        let (parent, name) = match fullname.rsplit_once('.') {
            Some((parent, name)) => (parent.replace('.', "/"), name),
            None if fullname == MAIN_ALIAS => (String::new(), "__main__"),
            None => (String::new(), fullname),
        };
        modules::find_module(self.context.archive.index(), &parent, name).ok_or_else(|| {
            import_error(
                py,
                format!("no module named `{fullname}` in the application"),
                fullname,
                &self.context.root,
            )
        })
    }

    fn read_entry(
        &self,
        py: Python<'_>,
        relative: &str,
        fullname: &str,
    ) -> PyResult<pyferry_payload::EntryData<'static>> {
        match self.context.archive.read(relative) {
            Ok(Some(data)) => Ok(data),
            Ok(None) => Err(import_error(
                py,
                format!("`{relative}` is missing from the application"),
                fullname,
                &self.context.root,
            )),
            Err(error) => Err(import_error(
                py,
                format!(
                    "cannot read `{}`: {error}",
                    self.context.virtual_path(relative)
                ),
                fullname,
                &self.context.root,
            )),
        }
    }

    /// Builds the `ModuleSpec` for a module found in the archive.
    pub fn spec_for<'py>(
        slf: &Bound<'py, Self>,
        fullname: &str,
        found: &FoundModule,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = slf.py();
        let this = slf.get();
        let context = this.context;
        let module_spec = module_spec_type(py)?;
        let Some(origin) = found.origin() else {
            return Ok(None);
        };
        let loader: Bound<'py, PyAny> = match found {
            FoundModule::Extension { .. } => {
                crate::importer::extension_loader::ExtensionLoader::for_context(py, context)?
                    .into_any()
            }
            _ => slf.clone().into_any(),
        };
        let kwargs = PyDict::new(py);
        kwargs.set_item("origin", context.virtual_path(&origin))?;
        kwargs.set_item("is_package", found.package_dir().is_some())?;
        let spec = module_spec.call((fullname, loader), Some(&kwargs))?;
        spec.setattr("has_location", true)?;
        if let Some(cached) = cached_path(py, found)? {
            // Set now: computed lazily, it would need `importlib._bootstrap_external`, which
            // does not exist before the main phase of start-up (when `encodings` loads).
            spec.setattr("cached", context.virtual_path(&cached))?;
        }
        if let Some(dir) = found.package_dir() {
            spec.setattr(
                "submodule_search_locations",
                PyList::new(py, [context.virtual_path(dir)])?,
            )?;
        }
        this.remember(fullname, found);
        Ok(Some(spec))
    }

    /// Finds `fullname`'s last component in the archive directories among `search_dirs`.
    fn find_in_dirs(&self, fullname: &str, search_dirs: &[String]) -> Option<FoundModule> {
        let name = match fullname {
            MAIN_ALIAS => "__main__",
            _ => fullname.rsplit('.').next().unwrap_or(fullname),
        };
        let index = self.context.archive.index();
        search_dirs
            .iter()
            .find_map(|dir| modules::find_module(index, dir, name))
    }

    /// The spec of a package that needs real files: extracted to the cache, then found there
    /// by CPython's own `PathFinder` (so its submodules and extensions load from disk).
    fn extracted_spec<'py>(slf: &Bound<'py, Self>, fullname: &str) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let context = slf.get().context;
        let directory = crate::importer::extract::materialize(context, fullname).map_err(|error| {
            import_error(
                py,
                format!(
                    "cannot import `{fullname}`: it needs real files and cannot be extracted ({error}); hint: set {} to a private writable directory",
                    crate::importer::extract::CACHE_DIR_VARIABLE
                ),
                fullname,
                &context.root,
            )
        })?;
        let spec = py
            .import("importlib.machinery")?
            .getattr("PathFinder")?
            .call_method1(
                "find_spec",
                (fullname, vec![directory.to_string_lossy().into_owned()]),
            )?;
        if spec.is_none() {
            return Err(import_error(
                py,
                format!(
                    "`{fullname}` is not in its extracted copy `{}`",
                    directory.display()
                ),
                fullname,
                &context.root,
            ));
        }
        Ok(spec)
    }

    pub fn context(&self) -> &'static ArchiveContext {
        self.context
    }

    /// The archive directories a top-level import searches: the entries of `sys.path` inside
    /// the archive, in order, up to the first entry outside it (`PathFinder`, which comes after
    /// this finder, goes on from there in `sys.path`'s order and reaches later archive entries
    /// through the path hook). An application's `sys.path` is the executable alone; a package
    /// may put one of its own directories first (OpenCV's loader puts `cv2/` before the archive
    /// root, to import its binary `cv2` instead of itself).
    fn top_level_dirs(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let Ok(path) = py.import("sys")?.getattr("path") else {
            return Ok(vec![String::new()]);
        };
        let mut dirs = Vec::new();
        for entry in path.try_iter()? {
            let entry = entry?;
            // `PathFinder` skips entries that are not text or bytes; bytes are never ours.
            let Ok(text) = entry.cast::<PyString>() else {
                if entry.is_instance_of::<PyBytes>() {
                    break;
                }
                continue;
            };
            match self.context.relative_path(text.to_str()?) {
                Some(relative) => dirs.push(relative.to_string()),
                None => break,
            }
        }
        Ok(dirs)
    }
}

#[pymethods]
impl ArchiveImporter {
    /// `MetaPathFinder.find_spec`. Namespace portions are left to `PathFinder` (which reaches
    /// them through the path hook) so that they get a real `_NamespacePath`.
    #[pyo3(signature = (fullname, path=None, target=None))]
    fn find_spec<'py>(
        slf: &Bound<'py, Self>,
        fullname: &str,
        path: Option<&Bound<'py, PyAny>>,
        target: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let _ = target;
        let this = slf.get();
        let search_dirs: Vec<String> = match path {
            None => this.top_level_dirs(slf.py())?,
            Some(path) if path.is_none() => this.top_level_dirs(slf.py())?,
            Some(path) => {
                let mut dirs = Vec::new();
                for entry in path.try_iter()? {
                    if let Ok(entry) = entry?.cast_into::<PyString>() {
                        if let Some(relative) = this.context.relative_path(entry.to_str()?) {
                            dirs.push(relative.to_string());
                        }
                    }
                }
                dirs
            }
        };
        if path.is_none_or(|path| path.is_none())
            && this
                .context
                .archive
                .manifest()
                .extract
                .iter()
                .any(|name| name == fullname)
        {
            return Self::extracted_spec(slf, fullname).map(Some);
        }
        match this.find_in_dirs(fullname, &search_dirs) {
            None | Some(FoundModule::Namespace { .. }) => Ok(None),
            Some(found) => {
                if !fullname.contains('.') && found.package_dir().is_some() {
                    crate::native::prefetch::prefetch_package(this.context, fullname);
                }
                Self::spec_for(slf, fullname, &found)
            }
        }
    }

    fn invalidate_caches(&self) {
        if let Ok(mut map) = self.found.lock() {
            map.clear();
        }
    }

    /// The default module creation.
    fn create_module(&self, spec: &Bound<'_, PyAny>) -> Option<Py<PyAny>> {
        let _ = spec;
        None
    }

    fn exec_module(&self, module: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = module.py();
        let name: String = module.getattr("__spec__")?.getattr("name")?.extract()?;
        let code = self.get_code(py, &name)?;
        if code.is_none() {
            return Err(import_error(
                py,
                format!("cannot load `{name}`: no code"),
                &name,
                &self.context.root,
            ));
        }
        let _span = tracing::trace_span!("import", module = %name).entered();
        let exec = cached(py, &BUILTINS_EXEC, "builtins", "exec")?;
        exec.call1((code, module.getattr("__dict__")?))?;
        if name == "linecache" {
            crate::importer::linecache::extend(module, self.context)?;
        }
        Ok(())
    }

    /// The module's code object: the shipped bytecode when there is one, else compiled from the
    /// shipped source. `co_filename` is the module's virtual source path.
    fn get_code<'py>(&self, py: Python<'py>, fullname: &str) -> PyResult<Bound<'py, PyAny>> {
        let FoundModule::Python {
            stem,
            has_source,
            has_bytecode,
            ..
        } = self.locate(py, fullname)?
        else {
            return Ok(py.None().into_bound(py));
        };
        let source_path = self.context.virtual_path(&format!("{stem}.py"));
        if has_bytecode {
            let pyc_name = format!("{stem}.pyc");
            let pyc = self.read_entry(py, &pyc_name, fullname)?;
            let code = bytecode::load_pyc(py, &pyc, &self.context.virtual_path(&pyc_name))?;
            let fix = cached(py, &FIX_CO_FILENAME, "_imp", "_fix_co_filename")?;
            fix.call1((&code, &source_path))?;
            return Ok(code);
        }
        if has_source {
            let source = self.read_entry(py, &format!("{stem}.py"), fullname)?;
            let compile = cached(py, &BUILTINS_COMPILE, "builtins", "compile")?;
            let kwargs = PyDict::new(py);
            kwargs.set_item("dont_inherit", true)?;
            return compile.call(
                (PyBytes::new(py, &source), source_path, "exec"),
                Some(&kwargs),
            );
        }
        Ok(py.None().into_bound(py))
    }

    /// The module's source text, or `None` when only bytecode was shipped.
    fn get_source<'py>(
        &self,
        py: Python<'py>,
        fullname: &str,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let found = self.locate(py, fullname)?;
        let FoundModule::Python {
            stem,
            has_source: true,
            ..
        } = found
        else {
            return Ok(None);
        };
        let source = self.read_entry(py, &format!("{stem}.py"), fullname)?;
        let decode = py
            .import("importlib._bootstrap_external")?
            .getattr("decode_source")?;
        decode.call1((PyBytes::new(py, &source),)).map(Some)
    }

    fn is_package(&self, py: Python<'_>, fullname: &str) -> PyResult<bool> {
        Ok(self.locate(py, fullname)?.package_dir().is_some())
    }

    fn get_filename(&self, py: Python<'_>, fullname: &str) -> PyResult<String> {
        let found = self.locate(py, fullname)?;
        found
            .origin()
            .map(|origin| self.context.virtual_path(&origin))
            .ok_or_else(|| {
                import_error(
                    py,
                    format!("`{fullname}` has no file"),
                    fullname,
                    &self.context.root,
                )
            })
    }

    /// `ResourceLoader.get_data`: the bytes of a file inside the archive, by virtual path.
    fn get_data<'py>(&self, py: Python<'py>, path: &str) -> PyResult<Bound<'py, PyBytes>> {
        let not_found = || {
            PyFileNotFoundError::new_err((
                libc::ENOENT,
                "No such file or directory",
                path.to_string(),
            ))
        };
        let relative = self.context.relative_path(path).ok_or_else(not_found)?;
        match self.context.archive.read(relative) {
            Ok(Some(data)) => Ok(PyBytes::new(py, &data)),
            Ok(None) => Err(not_found()),
            Err(error) => Err(pyo3::exceptions::PyOSError::new_err(format!(
                "{path}: {error}"
            ))),
        }
    }

    /// The `importlib.resources` reader of a package in the archive.
    fn get_resource_reader(
        &self,
        py: Python<'_>,
        fullname: &str,
    ) -> PyResult<Option<ArchiveResourceReader>> {
        let Ok(found) = self.locate(py, fullname) else {
            return Ok(None);
        };
        Ok(found
            .package_dir()
            .map(|dir| ArchiveResourceReader::new(self.context, dir.to_string())))
    }

    /// The `sys.path_hooks` entry: a path-entry finder for paths inside the executable. Raising
    /// `ImportError` for other paths lets the next hook try.
    fn path_hook(slf: &Bound<'_, Self>, path: &Bound<'_, PyAny>) -> PyResult<ArchivePathFinder> {
        let py = slf.py();
        let text: String = path.extract().unwrap_or_default();
        match slf.get().context.relative_path(&text) {
            Some(relative) => Ok(ArchivePathFinder {
                importer: slf.clone().unbind(),
                dir: relative.to_string(),
            }),
            None => Err(import_error(
                py,
                "not a path inside this application".to_string(),
                "",
                &text,
            )),
        }
    }

    fn __repr__(&self) -> String {
        format!("<pyferry.ArchiveImporter for {:?}>", self.context.root)
    }
}

/// A path-entry finder for one directory of the archive (what `zipimporter` is for a zip path).
#[pyclass(frozen, module = "pyferry", name = "ArchivePathFinder")]
pub struct ArchivePathFinder {
    importer: Py<ArchiveImporter>,
    dir: String,
}

#[pymethods]
impl ArchivePathFinder {
    #[pyo3(signature = (fullname, target=None))]
    fn find_spec<'py>(
        &self,
        py: Python<'py>,
        fullname: &str,
        target: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let _ = target;
        let importer = self.importer.bind(py);
        let found = importer
            .get()
            .find_in_dirs(fullname, std::slice::from_ref(&self.dir));
        match found {
            None => Ok(None),
            Some(FoundModule::Namespace { dir }) => {
                // A namespace portion: no loader, one search location; `PathFinder` combines the
                // portions into a `_NamespacePath`.
                let module_spec = module_spec_type(py)?;
                let spec = module_spec.call1((fullname, py.None()))?;
                let context = importer.get().context();
                spec.setattr(
                    "submodule_search_locations",
                    PyList::new(py, [context.virtual_path(&dir)])?,
                )?;
                Ok(Some(spec))
            }
            Some(found) => ArchiveImporter::spec_for(importer, fullname, &found),
        }
    }

    fn invalidate_caches(&self) {}

    /// What `pkgutil.iter_modules` asks a path-entry finder for.
    #[pyo3(signature = (prefix=""))]
    fn iter_modules<'py>(&self, py: Python<'py>, prefix: &str) -> PyResult<Bound<'py, PyList>> {
        let context = self.importer.bind(py).get().context();
        let listed = modules::iter_modules(context.archive.index(), &self.dir);
        let items = listed
            .into_iter()
            .map(|(name, is_package)| {
                PyTuple::new(
                    py,
                    [
                        format!("{prefix}{name}").into_pyobject(py)?.into_any(),
                        is_package.into_pyobject(py)?.to_owned().into_any(),
                    ],
                )
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let context = self.importer.bind(py).get().context();
        format!(
            "<pyferry.ArchivePathFinder for {:?}>",
            context.virtual_path(&self.dir)
        )
    }
}
