//! The one place values cross the boundary: validated JSON values become
//! handler arguments, and handler results become responses. No JSON text is
//! made on the way in; results are serialised straight to bytes by msgspec.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Response, StatusCode};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
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

fn set_arg(
    py: Python<'_>,
    kwargs: &Bound<'_, PyDict>,
    plan: &ArgPlan,
    value: Option<&Value>,
) -> PyResult<()> {
    let name = plan.name.bind(py);
    match value {
        None => kwargs.set_item(name, plan.default.bind(py)),
        Some(value) => {
            let object = pythonize::pythonize(py, value)
                .map_err(|e| PyValueError::new_err(e.to_string()))?;
            match &plan.converter {
                Some(convert) => kwargs.set_item(name, convert.bind(py).call1((object,))?),
                None => kwargs.set_item(name, object),
            }
        }
    }
}

/// The keyword arguments of one call.
pub fn build_kwargs<'py, 'a>(
    py: Python<'py>,
    plan: &'a HandlerPlan,
    request: &RequestData,
) -> Result<Bound<'py, PyDict>, ArgRejected<'a>> {
    let kwargs = PyDict::new(py);
    for (arg, value) in plan.args.iter().zip(&request.args) {
        set_arg(py, &kwargs, arg, value.as_ref()).map_err(|error| ArgRejected { arg, error })?;
    }
    if let Some(body) = &plan.body {
        set_arg(py, &kwargs, body, request.body.as_ref())
            .map_err(|error| ArgRejected { arg: body, error })?;
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
