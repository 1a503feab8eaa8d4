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
    let text = number.as_str();
    // Written with a fraction or an exponent: a float, parsed once (each
    // `as_*` of an arbitrary-precision number parses its text again).
    let integer = !text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'));
    if integer {
        if let Some(int) = number.as_i64() {
            return Ok(int.into_pyobject(py)?.into_any());
        }
        if let Some(int) = number.as_u64() {
            return Ok(int.into_pyobject(py)?.into_any());
        }
        return big_int(py, text);
    }
    match number.as_f64() {
        Some(float) if float.is_finite() => Ok(PyFloat::new(py, float).into_any()),
        _ => Err(out_of_range(text)),
    }
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
    /// The containers being filled, innermost last.
    stack: Vec<Filling<'d>>,
}

/// A container being filled, and the key it goes under in the object holding
/// it (`None` in an array, or at the top).
struct Filling<'d> {
    source: Source<'d>,
    object: Py<PyAny>,
    key: Option<&'d str>,
    /// Places of a list filled so far.
    filled: usize,
}

/// What is left to put in a container.
enum Source<'d> {
    Array(Items<'d>),
    Object(Members<'d>),
}

impl<'d> Building<'d> {
    pub fn new(root: DocumentNode<'d>) -> Self {
        Building {
            root: Some(root),
            stack: Vec::new(),
        }
    }

    /// Makes up to `budget` more values; the whole object once it is done.
    pub fn step(&mut self, py: Python<'_>, budget: usize) -> PyResult<Option<Py<PyAny>>> {
        if let Some(root) = self.root.take() {
            if let Some(done) = self.enter(py, root, None)? {
                return Ok(Some(done));
            }
        }
        for _ in 0..budget {
            let Some(top) = self.stack.last_mut() else {
                break;
            };
            let next = match &mut top.source {
                Source::Array(items) => items.next().map(|item| (None, item)),
                Source::Object(members) => members.next().map(|(key, item)| (Some(key), item)),
            };
            match next {
                Some((key, item)) => {
                    if let Some(made) = self.enter(py, item, key)? {
                        let parent = self.stack.last_mut().expect("its container");
                        attach(py, parent, key, made.into_bound(py))?;
                    }
                }
                None => {
                    let full = self.stack.pop().expect("a container being filled");
                    match self.stack.last_mut() {
                        Some(parent) => attach(py, parent, full.key, full.object.into_bound(py))?,
                        None => return Ok(Some(full.object)),
                    }
                }
            }
        }
        Ok(None)
    }

    /// A scalar, made at once; or a container, begun (filled by later steps).
    fn enter(
        &mut self,
        py: Python<'_>,
        node: DocumentNode<'d>,
        key: Option<&'d str>,
    ) -> PyResult<Option<Py<PyAny>>> {
        let (source, object) = match node.view() {
            DocumentView::Array(items) => {
                let list = new_list(py, items.len())?;
                (Source::Array(items), list)
            }
            DocumentView::Object(members) => (Source::Object(members), PyDict::new(py).into_any()),
            scalar => return Ok(Some(scalar_to_python(py, scalar)?.unbind())),
        };
        self.stack.push(Filling {
            source,
            object: object.unbind(),
            key,
            filled: 0,
        });
        Ok(None)
    }
}

fn scalar_to_python<'py>(py: Python<'py>, view: DocumentView<'_>) -> PyResult<Bound<'py, PyAny>> {
    Ok(match view {
        DocumentView::Null => py.None().into_bound(py),
        DocumentView::Bool(flag) => flag.into_pyobject(py)?.to_owned().into_any(),
        DocumentView::Int(int) => int.into_pyobject(py)?.into_any(),
        DocumentView::UInt(int) => int.into_pyobject(py)?.into_any(),
        DocumentView::Float(float) => PyFloat::new(py, float).into_any(),
        DocumentView::Digits(text) if !text.contains(['.', 'e', 'E']) => big_int(py, text)?,
        DocumentView::Digits(text) => return Err(out_of_range(text)),
        DocumentView::Str(text) => PyString::new(py, text).into_any(),
        DocumentView::Array(_) | DocumentView::Object(_) => unreachable!("made by Building"),
    })
}

/// A list of `len` empty places, filled in order by [`attach`]: made at its
/// length, a large array's list is neither over-allocated nor grown.
fn new_list(py: Python<'_>, len: usize) -> PyResult<Bound<'_, PyAny>> {
    let len =
        ffi::Py_ssize_t::try_from(len).map_err(|_| PyValueError::new_err("too many items"))?;
    // SAFETY: a new reference or NULL with an exception; its empty places are
    // NULL, which CPython's list deallocation and traversal allow, and each is
    // set once, in order, before the list is handed to Python code.
    unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyList_New(len)) }
}

/// Puts `made` in the container `parent` fills: in its next place, or under `key`.
fn attach(
    py: Python<'_>,
    parent: &mut Filling<'_>,
    key: Option<&str>,
    made: Bound<'_, PyAny>,
) -> PyResult<()> {
    let object = parent.object.bind(py);
    if let Some(key) = key {
        return object
            .cast::<PyDict>()?
            .set_item(PyString::new(py, key), made);
    }
    let list = object.cast::<PyList>()?;
    let place = parent.filled;
    if place >= list.len() {
        return Err(PyValueError::new_err("more items than the array holds"));
    }
    // SAFETY: `place` is within the list and still empty (places are filled
    // once, in order); PyList_SetItem steals the reference to `made`.
    unsafe {
        ffi::PyList_SetItem(list.as_ptr(), place as ffi::Py_ssize_t, made.into_ptr());
    }
    parent.filled += 1;
    Ok(())
}
