//! FreeBSD (written, compiled by `make check-freebsd`, never run): creating an extension module
//! from a memory file's descriptor, with no path at all.
//!
//! FreeBSD has no `/proc/self/fd`, and `/dev/fd/N` names only the standard streams unless
//! `fdescfs` is mounted, so CPython's `_imp.create_dynamic` (which `dlopen`s a path) cannot be
//! used. This module does what it does, from the descriptor: `fdlopen`, look up
//! `PyInit_<name>` (`PyInitU_<punycode>` for a non-ASCII name), call it with the package
//! context set, then either build the module from the returned definition (multi-phase
//! initialization; `_imp.exec_dynamic` executes it later, as for any extension) or register
//! the single-phase module the way CPython does (`__file__`, the extensions cache).
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};

use pyo3::exceptions::{PyImportError, PySystemError};
use pyo3::ffi;
use pyo3::prelude::*;

extern "C" {
    /// `<dlfcn.h>`: `dlopen` of an open descriptor.
    fn fdlopen(fd: c_int, mode: c_int) -> *mut c_void;
    /// CPython 3.11: the full name single-phase modules are created under (`modsupport.h`).
    static mut _Py_PackageContext: *const c_char;
    /// CPython 3.11 (`cpython/import.h`): records a single-phase module in the extensions cache
    /// and in `sys.modules`, as `_imp.create_dynamic` does.
    fn _PyImport_FixupExtensionObject(
        module: *mut ffi::PyObject,
        name: *mut ffi::PyObject,
        filename: *mut ffi::PyObject,
        modules: *mut ffi::PyObject,
    ) -> c_int;
}

/// The symbol that initializes module `name` (its last component): `PyInit_x`, or for a
/// non-ASCII name `PyInitU_` and its punycode with `-` as `_` (PEP 489).
fn init_symbol(py: Python<'_>, name: &str) -> PyResult<CString> {
    let short = name.rsplit('.').next().unwrap_or(name);
    let symbol = if short.is_ascii() {
        format!("PyInit_{short}")
    } else {
        let encoded: Vec<u8> = pyo3::types::PyString::new(py, short)
            .call_method1("encode", ("punycode",))?
            .extract()?;
        format!(
            "PyInitU_{}",
            String::from_utf8_lossy(&encoded).replace('-', "_")
        )
    };
    CString::new(symbol).map_err(|_| PyImportError::new_err(format!("bad module name {name:?}")))
}

/// Creates extension module `spec.name` from the shared object open on `fd`; `origin` is its
/// path inside the executable (`__file__`).
pub fn create_module<'py>(
    py: Python<'py>,
    spec: &Bound<'py, PyAny>,
    fd: c_int,
    origin: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let name: String = spec.getattr("name")?.extract()?;
    let flags: c_int = py
        .import("sys")?
        .call_method0("getdlopenflags")?
        .extract()?;
    // SAFETY: `fd` is a memory file this process never closes; the handle is never closed.
    let handle = unsafe { fdlopen(fd, flags) };
    if handle.is_null() {
        // SAFETY: `dlerror` returns NULL or a thread-local C string, copied at once.
        let message = unsafe {
            let error = libc::dlerror();
            if error.is_null() {
                "fdlopen failed".to_string()
            } else {
                CStr::from_ptr(error).to_string_lossy().into_owned()
            }
        };
        return Err(PyImportError::new_err(format!("{origin}: {message}")));
    }
    let symbol = init_symbol(py, &name)?;
    // SAFETY: `handle` is a live handle and `symbol` a C string.
    let init = unsafe { libc::dlsym(handle, symbol.as_ptr()) };
    if init.is_null() {
        return Err(PyImportError::new_err(format!(
            "dynamic module does not define module export function ({})",
            symbol.to_string_lossy()
        )));
    }
    // SAFETY: a module's export function has this signature (PEP 489).
    let init: extern "C" fn() -> *mut ffi::PyObject = unsafe { std::mem::transmute(init) };
    let full_name = CString::new(name.as_str())
        .map_err(|_| PyImportError::new_err(format!("bad module name {name:?}")))?;
    // SAFETY: we hold the GIL; the package context is restored right after the call, as
    // CPython's loader does, and `full_name` outlives the call.
    let module = unsafe {
        let previous = _Py_PackageContext;
        _Py_PackageContext = full_name.as_ptr();
        let module = init();
        _Py_PackageContext = previous;
        module
    };
    // SAFETY: `module` is a new reference or NULL; every pointer below is checked first.
    unsafe {
        if module.is_null() {
            return Err(PyErr::take(py).unwrap_or_else(|| {
                PySystemError::new_err(format!(
                    "initialization of {name} failed without raising an exception"
                ))
            }));
        }
        let module = Bound::from_owned_ptr(py, module);
        if let Some(error) = PyErr::take(py) {
            drop(error);
            return Err(PySystemError::new_err(format!(
                "initialization of {name} raised unreported exception"
            )));
        }
        if ffi::PyObject_TypeCheck(
            module.as_ptr(),
            std::ptr::addr_of_mut!(ffi::PyModuleDef_Type),
        ) != 0
        {
            // Multi-phase: the result is a definition.
            let created = ffi::PyModule_FromDefAndSpec(
                module.as_ptr() as *mut ffi::PyModuleDef,
                spec.as_ptr(),
            );
            return Bound::from_owned_ptr_or_err(py, created);
        }
        // Single-phase.
        if ffi::PyModule_Check(module.as_ptr()) != 0 {
            let definition = ffi::PyModule_GetDef(module.as_ptr());
            if definition.is_null() {
                return Err(PySystemError::new_err(format!(
                    "initialization of {name} did not return an extension module"
                )));
            }
            (*definition).m_base.m_init = Some(init);
        }
        let file = pyo3::types::PyString::new(py, origin);
        if module.setattr("__file__", &file).is_err() {
            let _ = PyErr::take(py);
        }
        let name_object = pyo3::types::PyString::new(py, &name);
        let modules = ffi::PyImport_GetModuleDict();
        if _PyImport_FixupExtensionObject(
            module.as_ptr(),
            name_object.as_ptr(),
            file.as_ptr(),
            modules,
        ) < 0
        {
            return Err(PyErr::fetch(py));
        }
        Ok(module)
    }
}
