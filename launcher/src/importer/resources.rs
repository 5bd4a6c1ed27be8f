//! `importlib.resources` over the archive: a resource reader for packages and a `Traversable`
//! that behaves like `zipfile.Path`, answered from the entry index instead of re-reading the zip.

use pyo3::exceptions::{
    PyFileNotFoundError, PyIsADirectoryError, PyNotADirectoryError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

use crate::executable::context::ArchiveContext;
use pyferry_payload::EntryKind;

/// `importlib.resources.abc.TraversableResources` for one package directory.
#[pyclass(frozen, module = "pyferry", name = "ArchiveResourceReader")]
pub struct ArchiveResourceReader {
    context: &'static ArchiveContext,
    dir: String,
}

impl ArchiveResourceReader {
    pub fn new(context: &'static ArchiveContext, dir: String) -> ArchiveResourceReader {
        ArchiveResourceReader { context, dir }
    }

    fn child(&self, name: &str) -> ArchiveTraversable {
        ArchiveTraversable::new(self.context, &self.dir).joined(name)
    }
}

#[pymethods]
impl ArchiveResourceReader {
    /// The package's directory: a `pathlib.Path` at its virtual path when the archive
    /// filesystem serves such paths (then `as_file` hands it out as it is, with no copy), else
    /// an [`ArchiveTraversable`].
    fn files<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if paths_are_served() {
            return py
                .import("pathlib")?
                .getattr("Path")?
                .call1((self.context.virtual_path(&self.dir),));
        }
        Ok(Bound::new(py, ArchiveTraversable::new(self.context, &self.dir))?.into_any())
    }

    fn open_resource<'py>(&self, py: Python<'py>, resource: &str) -> PyResult<Bound<'py, PyAny>> {
        self.child(resource)
            .open(py, "rb", &PyTuple::empty(py), None)
    }

    /// The resource's virtual path when the archive filesystem serves it; otherwise resources
    /// have no path and `importlib.resources.as_file` copies them out.
    fn resource_path(&self, resource: &str) -> PyResult<String> {
        if paths_are_served() {
            return Ok(self.child(resource).__str__());
        }
        Err(PyFileNotFoundError::new_err(format!(
            "`{resource}` is inside the application archive and has no file-system path"
        )))
    }

    fn is_resource(&self, name: &str) -> bool {
        self.child(name).kind() == Some(EntryKind::File)
    }

    fn contents(&self) -> Vec<String> {
        self.context
            .archive
            .index()
            .children(&self.dir)
            .into_iter()
            .map(|(name, _)| name.to_string())
            .collect()
    }
}

/// Whether virtual paths are real paths in this process: the archive filesystem serves them.
fn paths_are_served() -> bool {
    #[cfg(target_os = "linux")]
    return crate::archive_fs::serving();
    #[cfg(not(target_os = "linux"))]
    return false;
}

/// A file or directory inside the archive (`importlib.resources.abc.Traversable`).
#[pyclass(frozen, module = "pyferry", name = "ArchivePath")]
#[derive(Clone)]
pub struct ArchiveTraversable {
    context: &'static ArchiveContext,
    /// Archive path, no trailing slash; `""` is the archive root.
    relative: String,
}

impl ArchiveTraversable {
    fn new(context: &'static ArchiveContext, relative: &str) -> ArchiveTraversable {
        ArchiveTraversable {
            context,
            relative: relative.trim_end_matches('/').to_string(),
        }
    }

    /// This path joined with `child`, which may hold several `/`-separated parts, `.` and `..`.
    fn joined(&self, child: &str) -> ArchiveTraversable {
        let mut parts: Vec<&str> = self
            .relative
            .split('/')
            .filter(|part| !part.is_empty())
            .collect();
        for part in child.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                part => parts.push(part),
            }
        }
        ArchiveTraversable::new(self.context, &parts.join("/"))
    }

    fn kind(&self) -> Option<EntryKind> {
        self.context.archive.index().kind(&self.relative)
    }

    fn read(&self) -> PyResult<std::borrow::Cow<'static, [u8]>> {
        if self.kind() == Some(EntryKind::Directory) {
            return Err(PyIsADirectoryError::new_err(self.__str__()));
        }
        match self.context.archive.read(&self.relative) {
            Ok(Some(data)) => Ok(data),
            Ok(None) => Err(PyFileNotFoundError::new_err((
                libc::ENOENT,
                "No such file or directory",
                self.__str__(),
            ))),
            Err(error) => Err(pyo3::exceptions::PyOSError::new_err(format!(
                "{}: {error}",
                self.__str__()
            ))),
        }
    }
}

#[pymethods]
impl ArchiveTraversable {
    #[getter]
    fn name(&self) -> String {
        match self.relative.rsplit_once('/') {
            Some((_, name)) => name.to_string(),
            None if self.relative.is_empty() => self
                .context
                .root
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string(),
            None => self.relative.clone(),
        }
    }

    #[getter]
    fn suffix(&self) -> String {
        let name = self.name();
        match name.rfind('.') {
            Some(position) if position > 0 => name[position..].to_string(),
            _ => String::new(),
        }
    }

    #[getter]
    fn stem(&self) -> String {
        let name = self.name();
        let suffix = self.suffix();
        name[..name.len() - suffix.len()].to_string()
    }

    #[getter]
    fn parent(&self) -> ArchiveTraversable {
        self.joined("..")
    }

    fn iterdir(&self) -> PyResult<Vec<ArchiveTraversable>> {
        if self.kind() != Some(EntryKind::Directory) {
            return Err(PyNotADirectoryError::new_err(self.__str__()));
        }
        Ok(self
            .context
            .archive
            .index()
            .children(&self.relative)
            .into_iter()
            .map(|(name, _)| self.joined(name))
            .collect())
    }

    fn is_dir(&self) -> bool {
        self.kind() == Some(EntryKind::Directory)
    }

    fn is_file(&self) -> bool {
        self.kind() == Some(EntryKind::File)
    }

    fn exists(&self) -> bool {
        self.kind().is_some()
    }

    #[pyo3(signature = (*descendants))]
    fn joinpath(&self, descendants: Vec<String>) -> ArchiveTraversable {
        descendants
            .iter()
            .fold(self.clone(), |path, child| path.joined(child))
    }

    fn __truediv__(&self, child: &str) -> ArchiveTraversable {
        self.joined(child)
    }

    fn read_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.read()?))
    }

    #[pyo3(signature = (encoding=None, errors=None))]
    fn read_text<'py>(
        &self,
        py: Python<'py>,
        encoding: Option<&str>,
        errors: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let data = PyBytes::new(py, &self.read()?);
        data.call_method1(
            "decode",
            (encoding.unwrap_or("utf-8"), errors.unwrap_or("strict")),
        )
    }

    /// Opens the file for reading, in binary (`rb`) or text mode (`r`, with `io.TextIOWrapper`'s
    /// arguments). The archive is read-only: any writing mode is a `ValueError`.
    #[pyo3(signature = (mode="r", *args, **kwargs))]
    fn open<'py>(
        &self,
        py: Python<'py>,
        mode: &str,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if mode.contains(['w', 'a', 'x', '+']) {
            return Err(PyValueError::new_err(format!(
                "`{}` is inside the application archive and cannot be opened with mode {mode:?}",
                self.__str__()
            )));
        }
        let io = py.import("io")?;
        let stream = io
            .getattr("BytesIO")?
            .call1((PyBytes::new(py, &self.read()?),))?;
        if mode.contains('b') {
            return Ok(stream);
        }
        let mut positional = vec![stream];
        positional.extend(args.iter());
        io.getattr("TextIOWrapper")?
            .call(PyTuple::new(py, positional)?, kwargs)
    }

    fn __str__(&self) -> String {
        self.context.virtual_path(&self.relative)
    }

    fn __repr__(&self) -> String {
        format!("ArchivePath({:?})", self.__str__())
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<ArchiveTraversable>()
            .map(|other| other.get().relative == self.relative)
            .unwrap_or(false)
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.relative.hash(&mut hasher);
        hasher.finish()
    }
}
