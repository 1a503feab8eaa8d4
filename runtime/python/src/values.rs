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
use spikard_http::document::{Items, Members};
use spikard_http::{DocumentNode, DocumentView};

/// A request body on its way to Python: parsed JSON, or objects already made
/// (a large body, see [`Building`]).
pub enum PyBody<'a> {
    Json(&'a Value),
    Made(&'a Py<PyAny>),
}

impl PyBody<'_> {
    pub fn to_python<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self {
            PyBody::Json(value) => to_python(py, value),
            PyBody::Made(object) => Ok(object.bind(py).clone()),
        }
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
    let text = number.as_str();
    // Written with a fraction or an exponent: a float, parsed once (each
    // `as_*` of an arbitrary-precision number parses its text again).
    let integer = !text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'));
    if integer && numbers != Numbers::Floats {
        if let Some(int) = number.as_i64() {
            return Ok(int.into_pyobject(py)?.into_any());
        }
        if let Some(int) = number.as_u64() {
            return Ok(int.into_pyobject(py)?.into_any());
        }
        return big_int(py, text);
    }
    match number.as_f64() {
        Some(float) if float.is_finite() => float_to_python(py, float, numbers),
        _ => Err(out_of_range(text)),
    }
}

/// A finite float: an `int` where ints are wanted (the schema made it integral).
fn float_to_python(py: Python<'_>, float: f64, numbers: Numbers) -> PyResult<Bound<'_, PyAny>> {
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

/// A large body's [`Document`](spikard_http::Document) made into Python
/// objects a step at a time: each [`Building::step`] makes at most a budget of
/// values, so that the serving thread answers other requests in between (a
/// million numbers take tens of milliseconds in one go).
pub struct Building<'d> {
    root: Option<DocumentNode<'d>>,
    numbers: Numbers,
    /// The containers being filled, innermost last.
    stack: Vec<Filling<'d>>,
}

/// A container being filled, and the key it goes under in the object holding
/// it (`None` in an array, or at the top).
struct Filling<'d> {
    source: Source<'d>,
    key: Option<&'d str>,
}

/// A container being filled and what is left to put in it.
enum Source<'d> {
    /// A list made at its array's length (neither over-allocated nor grown),
    /// with the index of its next empty place.
    Array {
        items: Items<'d>,
        list: Py<PyList>,
        next: ffi::Py_ssize_t,
    },
    Object {
        members: Members<'d>,
        dict: Py<PyDict>,
    },
}

impl<'d> Filling<'d> {
    fn begin(
        py: Python<'_>,
        node: DocumentNode<'d>,
        key: Option<&'d str>,
    ) -> PyResult<Option<Self>> {
        let source = match node.view() {
            DocumentView::Array(items) => {
                let len = ffi::Py_ssize_t::try_from(items.len())
                    .map_err(|_| PyValueError::new_err("too many items"))?;
                // SAFETY: a new reference or NULL with an exception. Its empty
                // places are NULL, which CPython's list deallocation and
                // traversal allow; each is set once, in order, before the list
                // is handed to Python code.
                let list = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyList_New(len))? };
                Source::Array {
                    items,
                    list: list.cast_into::<PyList>()?.unbind(),
                    next: 0,
                }
            }
            DocumentView::Object(members) => Source::Object {
                members,
                dict: PyDict::new(py).unbind(),
            },
            _ => return Ok(None),
        };
        Ok(Some(Filling { source, key }))
    }

    /// The next value to make, and its key in an object.
    fn next(&mut self) -> Option<(Option<&'d str>, DocumentNode<'d>)> {
        match &mut self.source {
            Source::Array { items, .. } => items.next().map(|item| (None, item)),
            Source::Object { members, .. } => members.next().map(|(key, item)| (Some(key), item)),
        }
    }

    /// Puts `made` in the next place, or under `key`.
    fn put(&mut self, py: Python<'_>, key: Option<&str>, made: Bound<'_, PyAny>) -> PyResult<()> {
        match &mut self.source {
            Source::Array { list, next, .. } => {
                // SAFETY: the list has a place per item of its array and each
                // item is put once, in order, so `next` is in the list and
                // empty; PyList_SET_ITEM takes over the reference to `made`.
                unsafe { ffi::PyList_SET_ITEM(list.as_ptr(), *next, made.into_ptr()) };
                *next += 1;
                Ok(())
            }
            Source::Object { dict, .. } => {
                let key = PyString::new(py, key.unwrap_or_default());
                dict.bind(py).set_item(key, made)
            }
        }
    }

    fn into_object(self, py: Python<'_>) -> Bound<'_, PyAny> {
        match self.source {
            Source::Array { list, .. } => list.into_bound(py).into_any(),
            Source::Object { dict, .. } => dict.into_bound(py).into_any(),
        }
    }
}

impl<'d> Building<'d> {
    pub fn new(root: DocumentNode<'d>, numbers: Numbers) -> Self {
        Building {
            root: Some(root),
            numbers,
            stack: Vec::new(),
        }
    }

    /// Makes up to `budget` more values; the whole object once it is done.
    pub fn step(&mut self, py: Python<'_>, budget: usize) -> PyResult<Option<Py<PyAny>>> {
        if let Some(root) = self.root.take() {
            match Filling::begin(py, root, None)? {
                Some(filling) => self.stack.push(filling),
                None => {
                    return Ok(Some(
                        scalar_to_python(py, root.view(), self.numbers)?.unbind(),
                    ))
                }
            }
        }
        for _ in 0..budget {
            let Some(top) = self.stack.last_mut() else {
                break;
            };
            match top.next() {
                Some((key, item)) => match Filling::begin(py, item, key)? {
                    Some(filling) => self.stack.push(filling),
                    None => top.put(py, key, scalar_to_python(py, item.view(), self.numbers)?)?,
                },
                None => {
                    let full = self.stack.pop().expect("a container being filled");
                    let key = full.key;
                    let object = full.into_object(py);
                    match self.stack.last_mut() {
                        Some(parent) => parent.put(py, key, object)?,
                        None => return Ok(Some(object.unbind())),
                    }
                }
            }
        }
        Ok(None)
    }
}

fn scalar_to_python<'py>(
    py: Python<'py>,
    view: DocumentView<'_>,
    numbers: Numbers,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(match view {
        DocumentView::Null => py.None().into_bound(py),
        DocumentView::Bool(flag) => flag.into_pyobject(py)?.to_owned().into_any(),
        DocumentView::Int(int) if numbers == Numbers::Floats => {
            PyFloat::new(py, int as f64).into_any()
        }
        DocumentView::UInt(int) if numbers == Numbers::Floats => {
            PyFloat::new(py, int as f64).into_any()
        }
        DocumentView::Int(int) => int.into_pyobject(py)?.into_any(),
        DocumentView::UInt(int) => int.into_pyobject(py)?.into_any(),
        DocumentView::Float(float) => float_to_python(py, float, numbers)?,
        DocumentView::Digits(text) => {
            let integer = !text.contains(['.', 'e', 'E']);
            match text.parse::<f64>() {
                _ if integer && numbers != Numbers::Floats => big_int(py, text)?,
                Ok(float) if float.is_finite() => float_to_python(py, float, numbers)?,
                _ => return Err(out_of_range(text)),
            }
        }
        DocumentView::Str(text) => PyString::new(py, text).into_any(),
        DocumentView::Array(_) | DocumentView::Object(_) => unreachable!("made by Building"),
    })
}
