//! Validated JSON values as Python objects, built directly.
//!
//! Numbers keep their received text (serde_json's `arbitrary_precision`), so an
//! integer beyond 64 bits becomes the exact Python `int` rather than a rounded
//! float. That is also why this is not `pythonize`: it would see the number's
//! private representation instead of a number.

use std::mem::ManuallyDrop;

use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyList, PyString};
use serde_json::{Number, Value};
use spikard_http::{Document, Parsed};

use crate::building::Building;

/// A request body on its way to Python: parsed JSON, or objects already made
/// (a large body, see [`Building`]).
pub enum PyBody<'a> {
    Json(&'a Value),
    Document(&'a Document),
    Made(&'a Py<PyAny>),
}

impl<'a> PyBody<'a> {
    /// The body of a request: its objects when they were made, else as parsed.
    pub fn of(parsed: Option<&'a Parsed>, made: Option<&'a MadeBody>) -> Option<Self> {
        if let Some(made) = made {
            return Some(PyBody::Made(&made.0));
        }
        Some(match parsed? {
            Parsed::Value(value) => PyBody::Json(value),
            Parsed::Document(document) => PyBody::Document(document),
        })
    }

    pub fn to_python<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self {
            PyBody::Json(value) => to_python(py, value),
            // All at once: only for an app's validation handler (rare).
            PyBody::Document(document) => {
                Building::new(document.root(), Numbers::AsWritten).make_all(py)
            }
            PyBody::Made(object) => Ok(object.bind(py).clone()),
        }
    }
}

/// A large body made into Python objects ([`Building`]), let go of with the
/// GIL when dropped: a `Py` dropped without it is only let go of the next time
/// the GIL is taken, and the body would stay in memory until the next request.
pub struct MadeBody(ManuallyDrop<Py<PyAny>>);

impl MadeBody {
    pub fn new(object: Py<PyAny>) -> Self {
        MadeBody(ManuallyDrop::new(object))
    }
}

impl Drop for MadeBody {
    fn drop(&mut self) {
        // SAFETY: dropped once, here; the field is not used afterwards.
        Python::attach(|_| unsafe { ManuallyDrop::drop(&mut self.0) });
    }
}

/// How a body's JSON numbers become Python numbers: as written (`2` an int,
/// `2.0` a float), or every one as the body's annotated number type (`float`,
/// `list[float]`, `dict[str, int]`, ...), so that no conversion pass in Python
/// copies the body again. For `Ints` the schema has already required every
/// number to be integral (`2.0` and `1e2` are 2 and 100, as in pydantic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Numbers {
    #[default]
    AsWritten,
    Floats,
    Ints,
}

impl Numbers {
    /// `BodyPlan.numbers` (`spikard/_plan.py`): `None`, `"float"` or `"int"`.
    pub fn named(name: Option<&str>) -> PyResult<Self> {
        match name {
            None => Ok(Numbers::AsWritten),
            Some("float") => Ok(Numbers::Floats),
            Some("int") => Ok(Numbers::Ints),
            Some(other) => Err(PyValueError::new_err(format!(
                "unknown numbers mode {other:?} (expected None, 'int' or 'float')"
            ))),
        }
    }
}

pub fn to_python<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    to_python_as(py, value, Numbers::AsWritten)
}

pub fn to_python_as<'py>(
    py: Python<'py>,
    value: &Value,
    numbers: Numbers,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(flag) => flag.into_pyobject(py)?.to_owned().into_any(),
        Value::Number(number) => number_to_python(py, number, numbers)?,
        Value::String(text) => PyString::new(py, text).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_python_as(py, item, numbers)?)?;
            }
            list.into_any()
        }
        Value::Object(entries) => {
            let dict = PyDict::new(py);
            for (key, item) in entries {
                dict.set_item(PyString::new(py, key), to_python_as(py, item, numbers)?)?;
            }
            dict.into_any()
        }
    })
}

fn number_to_python<'py>(
    py: Python<'py>,
    number: &Number,
    numbers: Numbers,
) -> PyResult<Bound<'py, PyAny>> {
    digits_to_python(py, number.as_str(), numbers)
}

/// A JSON number from its text, parsed once: an `int` unless written with a
/// fraction or an exponent (as Python's `json` reads it), or as `numbers` wants.
pub(crate) fn digits_to_python<'py>(
    py: Python<'py>,
    text: &str,
    numbers: Numbers,
) -> PyResult<Bound<'py, PyAny>> {
    let integer = !text.contains(['.', 'e', 'E']);
    if integer && numbers != Numbers::Floats {
        if let Ok(int) = text.parse::<i64>() {
            return Ok(int.into_pyobject(py)?.into_any());
        }
        if let Ok(int) = text.parse::<u64>() {
            return Ok(int.into_pyobject(py)?.into_any());
        }
        return big_int(py, text);
    }
    match text.parse::<f64>() {
        Ok(float) if float.is_finite() => float_to_python(py, float, numbers),
        _ => Err(out_of_range(text)),
    }
}

/// A finite float: an `int` where ints are wanted (the schema made it integral).
pub(crate) fn float_to_python(
    py: Python<'_>,
    float: f64,
    numbers: Numbers,
) -> PyResult<Bound<'_, PyAny>> {
    if numbers != Numbers::Ints {
        return Ok(PyFloat::new(py, float).into_any());
    }
    // SAFETY: a new reference or NULL with an exception.
    unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyLong_FromDouble(float)) }
}

fn out_of_range(text: &str) -> PyErr {
    PyValueError::new_err(format!("the number {text} is out of range for a float"))
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
