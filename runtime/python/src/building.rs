//! A large body's [`Document`](spikard_http::Document) made into Python
//! objects a step at a time, so that the serving thread answers other requests
//! in between (a million numbers take tens of milliseconds in one go).

use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyList, PyString};
use spikard_http::document::{Items, Members};
use spikard_http::{DocumentNode, DocumentView};

use crate::values::{digits_to_python, float_to_python, Numbers};

/// A document being made into Python objects: each [`Building::step`] makes
/// at most a budget of values.
pub struct Building<'d> {
    root: Option<DocumentNode<'d>>,
    numbers: Numbers,
    /// The containers being filled, innermost last.
    stack: Vec<Filling<'d>>,
}

impl Drop for Building<'_> {
    /// Objects of a build cut short (its request gone, or a value refused)
    /// are let go of at once, with the GIL (see `values::MadeBody`).
    fn drop(&mut self) {
        if !self.stack.is_empty() {
            Python::attach(|_| self.stack.clear());
        }
    }
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
                // Out of the collector's sight until full (see `into_object`):
                // `gc.get_objects()` must never hand out a list with holes.
                // SAFETY: a list just made, tracked; tracked again once full.
                unsafe { ffi::PyObject_GC_UnTrack(list.as_ptr().cast()) };
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
            Source::Array { list, .. } => {
                // SAFETY: untracked when made (`begin`), every place now filled.
                unsafe { ffi::PyObject_GC_Track(list.as_ptr().cast()) };
                list.into_bound(py).into_any()
            }
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

    /// The whole object, made in one go.
    pub fn make_all<'py>(mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let made = self.step(py, usize::MAX)?;
        Ok(made.expect("every value made").into_bound(py))
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
        DocumentView::Digits(text) => digits_to_python(py, text, numbers)?,
        DocumentView::Str(text) => PyString::new(py, text).into_any(),
        DocumentView::Array(_) | DocumentView::Object(_) => unreachable!("made by Building"),
    })
}
