//! Turning `.pyc` bytes from the archive into code objects, through CPython's marshal C API
//! directly on the mapped bytes (no intermediate `bytes` object).
#![allow(unsafe_code)]

use std::os::raw::c_char;

use pyo3::exceptions::PyImportError;
use pyo3::prelude::*;
use pyo3::{ffi, PyErr};

/// Size of the `.pyc` header: magic, flags, and either a source hash or mtime and size.
const HEADER_LEN: usize = 16;

/// CPython 3.11's bytecode magic number (`importlib.util.MAGIC_NUMBER`: 3495, then `\r\n`).
const MAGIC_NUMBER_3_11: [u8; 4] = [0xa7, 0x0d, 0x0d, 0x0a];

/// The magic number of this interpreter's bytecode, as the first four bytes of a `.pyc`.
/// CPython reads it from `importlib._bootstrap_external`, which exists only once the main phase
/// of start-up has begun; `encodings` loads before that, and gets the 3.11 constant (the end-to-end
/// tests load bytecode compiled by CPython itself through both paths).
fn magic_number(_py: Python<'_>) -> [u8; 4] {
    // SAFETY: we hold the GIL (`_py`). `PyImport_GetMagicNumber` returns -1 with an exception
    // set when `_bootstrap_external` is not there yet; that exception is cleared right away.
    let magic = unsafe { ffi::PyImport_GetMagicNumber() };
    if magic == -1 {
        // SAFETY: as above, with the GIL held.
        unsafe { ffi::PyErr_Clear() };
        return MAGIC_NUMBER_3_11;
    }
    (magic as u32).to_le_bytes()
}

/// Unmarshals the code object of a `.pyc` file's contents. `name` is used in the error when
/// the file was compiled for another Python.
pub fn load_pyc<'py>(py: Python<'py>, pyc: &[u8], name: &str) -> PyResult<Bound<'py, PyAny>> {
    if pyc.len() < HEADER_LEN || pyc[..4] != magic_number(py) {
        return Err(PyErr::new::<PyImportError, _>(format!(
            "bad magic number in `{name}`: the bytecode was compiled for another Python version"
        )));
    }
    let body = &pyc[HEADER_LEN..];
    // SAFETY: we hold the GIL (`py`); `body` is valid for `body.len()` bytes during the call and
    // CPython copies what it needs. The result is a new reference or NULL with an exception set,
    // which `from_owned_ptr_or_err` turns into the matching `PyResult`.
    unsafe {
        let object = ffi::PyMarshal_ReadObjectFromString(
            body.as_ptr().cast::<c_char>(),
            body.len() as ffi::Py_ssize_t,
        );
        Bound::from_owned_ptr_or_err(py, object)
    }
}
