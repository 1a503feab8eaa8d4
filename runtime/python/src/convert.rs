//! The one place values cross the boundary: validated JSON values become
//! handler arguments, and handler results become responses. No JSON text is
//! made on the way in; results are serialised straight to bytes by msgspec.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Response, StatusCode};
use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};
use serde_json::Value;
use spikard_http::{json_response, RequestData, ResponseBody};

use crate::bridge::Bridge;
use crate::plan::{ArgPlan, HandlerPlan};

/// A converter rejected a value that passed the JSON Schema (a rule only the
/// Python type can check).
pub struct ArgRejected<'a> {
    pub arg: &'a ArgPlan,
    pub error: PyErr,
}

fn arg_value<'py>(
    py: Python<'py>,
    plan: &ArgPlan,
    value: Option<&Value>,
) -> PyResult<Bound<'py, PyAny>> {
    match value {
        None => Ok(plan.default.bind(py).clone()),
        Some(value) => {
            let object = pythonize::pythonize(py, value)
                .map_err(|e| PyValueError::new_err(e.to_string()))?;
            match &plan.converter {
                Some(convert) => convert.bind(py).call1((object,)),
                None => Ok(object),
            }
        }
    }
}

/// The argument values of one call, in the order of the plan's keyword names.
pub fn build_args<'py, 'a>(
    py: Python<'py>,
    plan: &'a HandlerPlan,
    request: &RequestData,
) -> Result<Vec<Bound<'py, PyAny>>, ArgRejected<'a>> {
    let mut values = Vec::with_capacity(plan.args.len() + 1);
    for (arg, value) in plan.args.iter().zip(&request.args) {
        values
            .push(arg_value(py, arg, value.as_ref()).map_err(|error| ArgRejected { arg, error })?);
    }
    if let Some(body) = &plan.body {
        values.push(
            arg_value(py, body, request.body.as_ref().map(|body| &body.value))
                .map_err(|error| ArgRejected { arg: body, error })?,
        );
    }
    Ok(values)
}

/// `callable(**dict(zip(names, values)))`, through vectorcall: no dict is built.
pub fn call_with_keywords<'py>(
    py: Python<'py>,
    callable: &Bound<'py, PyAny>,
    values: &[Bound<'py, PyAny>],
    names: &Bound<'py, PyTuple>,
) -> PyResult<Bound<'py, PyAny>> {
    debug_assert_eq!(values.len(), names.len());
    // One spare slot in front lets the callee reuse the array (ARGUMENTS_OFFSET).
    let mut stack: Vec<*mut ffi::PyObject> = Vec::with_capacity(values.len() + 1);
    stack.push(std::ptr::null_mut());
    stack.extend(values.iter().map(Bound::as_ptr));
    let names = if values.is_empty() {
        std::ptr::null_mut()
    } else {
        names.as_ptr()
    };
    // SAFETY: `stack[1..]` holds `values.len()` borrowed live objects, named by
    // the same number of strings in `names`; nothing is passed positionally.
    unsafe {
        let result = ffi::PyObject_Vectorcall(
            callable.as_ptr(),
            stack.as_ptr().add(1),
            ffi::PY_VECTORCALL_ARGUMENTS_OFFSET,
            names,
        );
        Bound::from_owned_ptr_or_err(py, result)
    }
}

/// The same keywords as a dict (for the thread pool's `submit`).
pub fn keywords_dict<'py>(
    py: Python<'py>,
    values: &[Bound<'py, PyAny>],
    names: &Bound<'py, PyTuple>,
) -> PyResult<Bound<'py, PyDict>> {
    let kwargs = PyDict::new(py);
    for (name, value) in names.iter().zip(values) {
        kwargs.set_item(name, value)?;
    }
    Ok(kwargs)
}

/// A handler's return value as a response: a `spikard.Response` as given,
/// anything else as JSON with the route's status.
pub fn into_response(
    py: Python<'_>,
    bridge: &Bridge,
    status: StatusCode,
    result: &Bound<'_, PyAny>,
) -> PyResult<Response<ResponseBody>> {
    if result.is_instance(bridge.ctx.response_type.bind(py))? {
        return explicit_response(py, result);
    }
    let encoded = bridge.ctx.encode.bind(py).call1((result,))?;
    let bytes = encoded.cast::<PyBytes>()?;
    Ok(json_response(
        status,
        Bytes::copy_from_slice(bytes.as_bytes()),
    ))
}

fn explicit_response(
    py: Python<'_>,
    result: &Bound<'_, PyAny>,
) -> PyResult<Response<ResponseBody>> {
    let status: u16 = result
        .getattr(pyo3::intern!(py, "status_code"))?
        .extract()?;
    let body = result.getattr(pyo3::intern!(py, "body"))?;
    let body = body.cast::<PyBytes>()?;
    let mut response = Response::new(ResponseBody::new(Bytes::copy_from_slice(body.as_bytes())));
    *response.status_mut() = StatusCode::from_u16(status)
        .map_err(|_| PyValueError::new_err(format!("{status} is not an HTTP status code")))?;
    let headers: Vec<(String, String)> = result
        .getattr(pyo3::intern!(py, "raw_headers"))?
        .extract()?;
    let map = response.headers_mut();
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| PyValueError::new_err(format!("'{name}' is not a valid header name")))?;
        let value = HeaderValue::from_str(&value).map_err(|_| {
            PyValueError::new_err(format!("the value of header '{name}' is not valid"))
        })?;
        map.append(name, value);
    }
    Ok(response)
}
