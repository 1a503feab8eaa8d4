//! Answers to requests that went wrong: handler faults (500), values the
//! Python type refused (422), the app's own exception handlers, and the app's
//! handlers for requests no route takes.

use std::sync::Arc;

use http::request::Parts;
use http::{Method, StatusCode};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};
use serde_json::Value;
use spikard_http::{
    Answer, Fallback, FieldError, HandlerError, HandlerFuture, HandlerLaps, HandlerResult,
    LocSegment, Remote,
};

use crate::bridge::{Bridge, Started};
use crate::convert::{explicit_response, request_object, RequestParts};
use crate::values::{to_python, PyBody};

/// Reports a fault through `spikard.error`; its text goes into the 500 only in
/// debug mode.
pub fn fault(py: Python<'_>, bridge: &Bridge, label: &str, error: PyErr) -> HandlerError {
    // Carries the traceback along, for the report.
    let exception = error.into_value(py);
    let detail = bridge
        .answers
        .report_error
        .bind(py)
        .call1((exception.bind(py), label))
        .and_then(|text| text.extract::<String>())
        .unwrap_or_else(|report_failed| {
            PyErr::from_value(exception.bind(py).clone().into_any()).print(py);
            report_failed.print(py);
            format!("{label}: {}", exception.bind(py))
        });
    HandlerError {
        detail: Some(detail),
    }
}

/// A value that passed the schema but that the annotated type refused, as one
/// field error per failing field, located under the argument (`loc`).
pub fn rejection_errors(
    py: Python<'_>,
    bridge: &Bridge,
    loc: &[LocSegment],
    error: &PyErr,
) -> Vec<FieldError> {
    let prefix: Vec<Value> = loc
        .iter()
        .map(|segment| serde_json::to_value(segment).unwrap_or(Value::Null))
        .collect();
    let errors = to_python(py, &Value::Array(prefix))
        .and_then(|prefix| {
            bridge
                .answers
                .rejection_errors
                .bind(py)
                .call1((error.value(py), prefix))
        })
        .and_then(|errors| {
            pythonize::depythonize::<Value>(&errors)
                .map_err(|e| PyValueError::new_err(e.to_string()))
        })
        .map(|errors| field_errors(&errors))
        .unwrap_or_default();
    if errors.is_empty() {
        return vec![FieldError {
            loc: loc.to_vec(),
            msg: error.value(py).to_string(),
            kind: "value_error".into(),
            input: None,
        }];
    }
    errors
}

/// `[{"loc": [...], "msg": ..., "type": ..., "input": ...}]` as field errors.
fn field_errors(errors: &Value) -> Vec<FieldError> {
    let Some(items) = errors.as_array() else {
        return Vec::new();
    };
    items
        .iter()
        .map(|item| FieldError {
            loc: item["loc"]
                .as_array()
                .map(|loc| loc.iter().map(loc_segment).collect())
                .unwrap_or_default(),
            msg: item["msg"].as_str().unwrap_or("Invalid value").to_owned(),
            kind: item["type"]
                .as_str()
                .unwrap_or("value_error")
                .to_owned()
                .into(),
            input: item.get("input").filter(|v| !v.is_null()).cloned(),
        })
        .collect()
}

fn loc_segment(step: &Value) -> LocSegment {
    match step {
        Value::Number(n) => n
            .as_u64()
            .and_then(|i| usize::try_from(i).ok())
            .map(LocSegment::Index)
            .unwrap_or_else(|| LocSegment::Key(n.to_string())),
        Value::String(s) => LocSegment::Key(s.clone()),
        other => LocSegment::Key(other.to_string()),
    }
}

/// Runs `callable(request=…)` — an app's exception handler bound to its
/// exception — through the bridge, and answers with the `Response` it returns.
pub fn run_error_handler(
    py: Python<'_>,
    bridge: &Arc<Bridge>,
    label: &Arc<str>,
    callable: Bound<'_, PyAny>,
    request: Bound<'_, PyAny>,
) -> HandlerFuture {
    let names = PyTuple::new(py, [PyString::intern(py, "request")]);
    let started =
        // Untimed: an exception handler's time is its request's `response` stage.
        names.and_then(|names| {
            bridge.start_async(py, &callable.unbind(), &[request], &names, false, None)
        });
    let answered = match started {
        Ok(Started::Done(value)) => explicit_response(py, bridge, label, &value),
        Ok(Started::Pending(receiver)) => {
            let bridge = bridge.clone();
            let label = label.clone();
            return HandlerFuture::pending(async move {
                let result = match receiver.await {
                    Ok(finished) => Python::attach(|py| {
                        finished
                            .object
                            .bind(py)
                            .call_method0(pyo3::intern!(py, "result"))
                            .and_then(|value| explicit_response(py, &bridge, &label, &value))
                            .map_err(|error| fault(py, &bridge, &label, error))
                    }),
                    Err(_) => Err(HandlerError {
                        detail: Some(format!(
                            "{label}: the exception handler ended without an answer"
                        )),
                    }),
                };
                Answer::from(result)
            });
        }
        Err(error) => Err(error),
    };
    ready(answered.map_err(|error| fault(py, bridge, label, error)))
}

/// An app's handler for `RequestValidationError`, for a request that failed
/// validation (in Rust, or in a Python type); the errors back when the app has
/// none.
pub fn validation_answer(
    bridge: &Arc<Bridge>,
    label: &Arc<str>,
    parts: RequestParts<'_>,
    body: Option<PyBody<'_>>,
    errors: Vec<FieldError>,
) -> Result<HandlerFuture, Vec<FieldError>> {
    let Some(handler) = bridge.answers.validation_error_handler.as_ref() else {
        return Err(errors);
    };
    Ok(Python::attach(|py| {
        let listed = serde_json::to_value(&errors).unwrap_or(Value::Null);
        let made = to_python(py, &listed).and_then(|listed| {
            // A body Python cannot hold (a number beyond a float) is not passed.
            let body = body.and_then(|b| b.to_python(py).ok());
            let bound = handler.bind(py).call1((listed, body))?;
            let request = request_object(py, bridge, parts)?;
            Ok((bound, request))
        });
        match made {
            Ok((bound, request)) => run_error_handler(py, bridge, label, bound, request),
            Err(error) => ready(Err(fault(py, bridge, label, error))),
        }
    }))
}

/// The app's handlers for requests no route takes (`@app.exception_handler(404)`).
pub struct PythonFallback {
    pub bridge: Arc<Bridge>,
}

impl Fallback for PythonFallback {
    fn answer(
        &self,
        head: Parts,
        remote: Remote,
        status: StatusCode,
        allowed: &[Method],
    ) -> Option<HandlerFuture> {
        let label: Arc<str> = Arc::from(format!("{} {} ({status})", head.method, head.uri.path()));
        Python::attach(|py| {
            let allowed: Vec<&str> = allowed.iter().map(Method::as_str).collect();
            let for_status = self.bridge.answers.for_status.as_ref()?;
            let decided = for_status.bind(py).call1((status.as_u16(), allowed));
            let handler = match decided {
                Ok(handler) if handler.is_none() => return None,
                Ok(handler) => handler,
                Err(error) => {
                    fault(py, &self.bridge, &label, error);
                    return None;
                }
            };
            let parts = RequestParts {
                head: &head,
                remote: &remote,
                raw_body: None,
                path_params: &[],
            };
            Some(match request_object(py, &self.bridge, parts) {
                Ok(request) => run_error_handler(py, &self.bridge, &label, handler, request),
                Err(error) => ready(Err(fault(py, &self.bridge, &label, error))),
            })
        })
    }
}

/// An answer already in hand.
pub fn ready(result: HandlerResult) -> HandlerFuture {
    ready_with(result, HandlerLaps::default())
}

/// An answer already in hand, with the laps of the handler that made it.
pub fn ready_with(result: HandlerResult, laps: HandlerLaps) -> HandlerFuture {
    HandlerFuture::ready(Answer { result, laps })
}
