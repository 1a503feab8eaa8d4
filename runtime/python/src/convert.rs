//! The one place values cross the boundary: validated JSON values become
//! handler arguments, and handler results become responses. No JSON text is
//! made on the way in; results are serialised straight to bytes by msgspec.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::request::Parts;
use http::HeaderMap;
use http::Response;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet, PyString,
    PyTuple,
};
use serde_json::Value;

use spikard_http::{
    framing, json_response, ClientAddr, LocSegment, Remote, RequestData, ResponseBody,
};

use crate::bridge::Bridge;
use crate::plan::HandlerPlan;
use crate::values::{to_python_as, MadeBody, Numbers, PyBody};

/// A converter rejected a value that passed the JSON Schema (a rule only the
/// Python type can check).
pub struct ArgRejected<'a> {
    pub loc: &'a [LocSegment],
    pub error: PyErr,
}

fn arg_value<'py>(
    py: Python<'py>,
    default: &Py<PyAny>,
    converter: Option<&Py<PyAny>>,
    value: Option<&Value>,
    numbers: Numbers,
) -> PyResult<Bound<'py, PyAny>> {
    let object = value
        .map(|value| to_python_as(py, value, numbers))
        .transpose()?;
    arg_object(py, default, converter, object)
}

fn arg_object<'py>(
    py: Python<'py>,
    default: &Py<PyAny>,
    converter: Option<&Py<PyAny>>,
    object: Option<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    match (object, converter) {
        (None, _) => Ok(default.bind(py).clone()),
        // A JSON null passed its schema: the value of an `X | None`, unconverted.
        (Some(object), _) if object.is_none() => Ok(object),
        (Some(object), Some(convert)) => convert.bind(py).call1((object,)),
        (Some(object), None) => Ok(object),
    }
}

/// The arguments of one call, in the order of the plan's keyword names.
pub struct Args<'py> {
    pub values: Vec<Bound<'py, PyAny>>,
    /// The `response: Response` the handler may amend, if it takes one.
    pub sub_response: Option<Bound<'py, PyAny>>,
}

/// The arguments of `plan`'s call for `request`; `made` is its body as Python
/// objects when it was large (see [`crate::building::Building`]).
pub fn build_args<'py, 'a>(
    py: Python<'py>,
    bridge: &Bridge,
    plan: &'a HandlerPlan,
    request: &RequestData,
    made: Option<&MadeBody>,
) -> Result<Args<'py>, ArgRejected<'a>> {
    let mut values = Vec::with_capacity(plan.args.len() + 3);
    for (arg, value) in plan.args.iter().zip(&request.args) {
        let made = arg_value(
            py,
            &arg.default,
            arg.converter.as_ref(),
            value.as_ref(),
            arg.numbers,
        );
        values.push(made.map_err(|error| ArgRejected {
            loc: &arg.loc,
            error,
        })?);
    }
    let body = PyBody::of(request.body.as_ref(), made);
    if let Some(PyBody::Document(_)) = body {
        let error = PyRuntimeError::new_err("a large body was not made into objects");
        return Err(ArgRejected { loc: &[], error });
    }
    if let Some(arg) = &plan.body {
        let (default, converter) = (&arg.default, arg.converter.as_ref());
        let made = match &body {
            Some(PyBody::Made(object)) => {
                arg_object(py, default, converter, Some(object.bind(py).clone()))
            }
            Some(PyBody::Json(value)) => {
                arg_value(py, default, converter, Some(value), arg.numbers)
            }
            _ => arg_value(py, default, converter, None, arg.numbers),
        };
        values.push(made.map_err(|error| ArgRejected {
            loc: &arg.loc,
            error,
        })?);
    }
    for (key, field) in &plan.body_fields {
        let (default, converter) = (&field.default, field.converter.as_ref());
        let made = match &body {
            Some(PyBody::Made(object)) => object
                .bind(py)
                .cast::<PyDict>()
                .map_err(PyErr::from)
                .and_then(|dict| dict.get_item(key))
                .and_then(|found| arg_object(py, default, converter, found)),
            Some(PyBody::Json(value)) => {
                arg_value(py, default, converter, value.get(key), field.numbers)
            }
            _ => arg_value(py, default, converter, None, field.numbers),
        };
        values.push(made.map_err(|error| ArgRejected {
            loc: &field.loc,
            error,
        })?);
    }
    // Failing to build these is the runtime's fault, not the client's.
    let fault = |error: PyErr| ArgRejected { loc: &[], error };
    if plan.wants_request {
        values.push(request_object(py, bridge, RequestParts::of(request)).map_err(fault)?);
    }
    let sub_response = if plan.wants_response {
        let sub = bridge
            .answers
            .new_sub_response
            .bind(py)
            .call0()
            .map_err(fault)?;
        values.push(sub.clone());
        Some(sub)
    } else {
        None
    };
    Ok(Args {
        values,
        sub_response,
    })
}

/// What a `spikard.Request` is made from.
pub struct RequestParts<'a> {
    pub head: &'a Parts,
    pub remote: &'a Remote,
    pub raw_body: Option<&'a Bytes>,
    pub path_params: &'a [(String, String)],
}

impl<'a> RequestParts<'a> {
    pub fn of(request: &'a RequestData) -> Self {
        RequestParts {
            head: &request.head,
            remote: &request.remote,
            raw_body: request.raw_body.as_ref(),
            path_params: &request.path_params,
        }
    }
}

/// A `spikard.Request` for a handler that takes one (or an exception handler).
pub fn request_object<'py>(
    py: Python<'py>,
    bridge: &Bridge,
    parts: RequestParts<'_>,
) -> PyResult<Bound<'py, PyAny>> {
    let RequestParts {
        head,
        remote,
        raw_body,
        path_params,
    } = parts;
    let headers = PyList::empty(py);
    for (name, value) in &head.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        headers.append((name.as_str(), value.as_ref()))?;
    }
    let client = remote.client.as_ref().map(ClientAddr::host_port);
    let params = PyDict::new(py);
    for (name, value) in path_params {
        params.set_item(name, value)?;
    }
    let body = raw_body.map(|bytes| PyBytes::new(py, bytes));
    bridge.answers.request_type.bind(py).call1((
        head.method.as_str(),
        head.uri.path(),
        head.uri.query().unwrap_or(""),
        headers,
        client,
        body,
        params,
        bridge.answers.app.bind(py),
        remote.scheme.as_str(),
        bridge.answers.root_path.bind(py),
    ))
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
/// anything else as JSON (through the route's response model) with the route's
/// status. With a `response` parameter, what the handler set on it is added.
pub fn into_response(
    py: Python<'_>,
    bridge: &Bridge,
    plan: &HandlerPlan,
    result: &Bound<'_, PyAny>,
    sub_response: Option<&Bound<'_, PyAny>>,
) -> PyResult<Response<ResponseBody>> {
    if let Some(sub) = sub_response {
        let serialize = plan.serialize.as_ref().map(|s| s.bind(py));
        let merged = bridge.answers.finish_response.bind(py).call1((
            result,
            sub,
            plan.status.as_u16(),
            serialize,
        ))?;
        return explicit_response(py, bridge, &plan.label, &merged);
    }
    if result.is_instance(bridge.answers.response_type.bind(py))? {
        return explicit_response(py, bridge, &plan.label, result);
    }
    let converted;
    let already_model = plan
        .model_type
        .as_ref()
        .is_some_and(|model| result.get_type().is(model.bind(py)));
    let value = match &plan.serialize {
        Some(serialize) if !already_model => {
            converted = serialize.bind(py).call1((result,))?;
            &converted
        }
        _ => result,
    };
    if framing::has_no_body(plan.status) {
        let mut response = Response::new(ResponseBody::new(Bytes::new()));
        *response.status_mut() = plan.status;
        return Ok(response);
    }
    let encode = if plan.may_hold_bytes && contains_bytes(value, 0) {
        &bridge.answers.encode_json
    } else {
        &bridge.answers.encode
    };
    let encoded = encode.bind(py).call1((value,))?;
    let bytes = encoded.cast::<PyBytes>()?;
    Ok(json_response(
        plan.status,
        Bytes::copy_from_slice(bytes.as_bytes()),
    ))
}

/// Whether a result holds `bytes` anywhere msgspec would send them as base64
/// (FastAPI sends them as text): builtin containers and msgspec Structs are
/// searched, a few levels deep. Most results hold none and skip the slow path.
fn contains_bytes(value: &Bound<'_, PyAny>, depth: u8) -> bool {
    if depth > 8 {
        return true; // deep: let the general path decide
    }
    if value.is_exact_instance_of::<PyString>()
        || value.is_exact_instance_of::<PyInt>()
        || value.is_exact_instance_of::<PyFloat>()
        || value.is_exact_instance_of::<PyBool>()
        || value.is_none()
    {
        return false;
    }
    if value.is_instance_of::<PyBytes>() || value.is_instance_of::<PyByteArray>() {
        return true;
    }
    if let Ok(dict) = value.cast::<PyDict>() {
        return dict.iter().any(|(key, item)| {
            contains_bytes(&key, depth + 1) || contains_bytes(&item, depth + 1)
        });
    }
    if let Ok(list) = value.cast::<PyList>() {
        return list.iter().any(|item| contains_bytes(&item, depth + 1));
    }
    if let Ok(tuple) = value.cast::<PyTuple>() {
        return tuple.iter().any(|item| contains_bytes(&item, depth + 1));
    }
    if value.is_instance_of::<PySet>() || value.is_instance_of::<PyFrozenSet>() {
        return value
            .try_iter()
            .map(|mut items| items.any(|item| item.is_ok_and(|i| contains_bytes(&i, depth + 1))))
            .unwrap_or(true);
    }
    // A msgspec Struct (or dataclass): its fields, by name.
    let py = value.py();
    for marker in [
        intern!(py, "__struct_fields__"),
        intern!(py, "__dataclass_fields__"),
    ] {
        if let Ok(fields) = value.get_type().getattr(marker) {
            let Ok(names) = fields.try_iter() else {
                return true;
            };
            return names.into_iter().any(|name| {
                name.and_then(|name| value.getattr(name.cast::<PyString>()?))
                    .is_ok_and(|item| contains_bytes(&item, depth + 1))
            });
        }
    }
    false
}

/// A `spikard.Response` as the runtime sends it: its status, headers and body,
/// framed by the runtime (`spikard_http::framing`). A response that cannot be sent
/// as given is an error (the caller's 500 fault); hop-by-hop headers it sets are
/// dropped, with a warning the first time per route.
pub fn explicit_response(
    py: Python<'_>,
    bridge: &Bridge,
    label: &str,
    result: &Bound<'_, PyAny>,
) -> PyResult<Response<ResponseBody>> {
    let status: u16 = result.getattr(intern!(py, "status_code"))?.extract()?;
    let status = framing::final_status(status).map_err(framing_error)?;
    let bodiless = framing::has_no_body(status);
    let body = if bodiless {
        Bytes::new()
    } else {
        let body = result.getattr(intern!(py, "body"))?;
        Bytes::copy_from_slice(body.cast::<PyBytes>()?.as_bytes())
    };
    let headers: Vec<(String, String)> = result.getattr(intern!(py, "raw_headers"))?.extract()?;
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| PyValueError::new_err(format!("'{name}' is not a valid header name")))?;
        let value = HeaderValue::from_str(&value).map_err(|_| {
            PyValueError::new_err(format!("the value of header '{name}' is not valid"))
        })?;
        map.append(name, value);
    }
    let length = (!bodiless).then_some(body.len());
    let dropped = framing::strip_framing(&mut map, length).map_err(framing_error)?;
    if !dropped.is_empty() {
        warn_dropped_once(py, bridge, label, &dropped);
    }
    let mut response = Response::new(ResponseBody::new(body));
    *response.status_mut() = status;
    *response.headers_mut() = map;
    Ok(response)
}

fn framing_error(error: framing::FramingError) -> PyErr {
    PyValueError::new_err(error.to_string())
}

/// Says once per route and header that a handler's hop-by-hop header was dropped:
/// a handler doing so does it on every response, and one line tells its author.
fn warn_dropped_once(py: Python<'_>, bridge: &Bridge, label: &str, dropped: &[HeaderName]) {
    for name in dropped {
        if !bridge.first_warning(label, name) {
            continue;
        }
        let message = format!(
            "{label}: the response's {name} header was dropped: it describes the connection, \
             which the runtime frames itself (said once per route)"
        );
        if let Err(error) = bridge.warn.call1(py, (message,)) {
            error.print(py);
        }
    }
}
