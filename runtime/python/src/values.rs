//! Validated JSON values as Python objects, built directly.
//!
//! Numbers keep their received text (serde_json's `arbitrary_precision`), so an
//! integer beyond 64 bits becomes the exact Python `int` rather than a rounded
//! float. That is also why this is not `pythonize`: it would see the number's
//! private representation instead of a number.

use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyList, PyString};
use serde_json::{Number, Value};

pub fn to_python<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(flag) => flag.into_pyobject(py)?.to_owned().into_any(),
        Value::Number(number) => number_to_python(py, number)?,
        Value::String(text) => PyString::new(py, text).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_python(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(entries) => {
            let dict = PyDict::new(py);
            for (key, item) in entries {
                dict.set_item(PyString::new(py, key), to_python(py, item)?)?;
            }
            dict.into_any()
        }
    })
}

fn number_to_python<'py>(py: Python<'py>, number: &Number) -> PyResult<Bound<'py, PyAny>> {
    if let Some(int) = number.as_i64() {
        return Ok(int.into_pyobject(py)?.into_any());
    }
    if let Some(int) = number.as_u64() {
        return Ok(int.into_pyobject(py)?.into_any());
    }
    let text = number.as_str();
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return big_int(py, text);
    }
    match number.as_f64() {
        Some(float) if float.is_finite() => Ok(PyFloat::new(py, float).into_any()),
        _ => Err(PyValueError::new_err(format!(
            "the number {text} is out of range for a float"
        ))),
    }
}

/// An integer literal too large for 64 bits, exactly.
fn big_int<'py>(py: Python<'py>, digits: &str) -> PyResult<Bound<'py, PyAny>> {
    let text = std::ffi::CString::new(digits)
        .map_err(|_| PyValueError::new_err("a number with a NUL byte"))?;
    // SAFETY: `text` is a NUL-terminated string of ASCII digits that lives
    // across the call; the result is a new reference or NULL with an exception.
    unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyLong_FromString(text.as_ptr(), std::ptr::null_mut(), 10),
        )
    }
}
