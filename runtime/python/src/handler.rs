//! `PythonHandler`: the core's `Handler` for a Python endpoint.

use std::sync::Arc;

use http::request::Parts;
use http::Response;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};
use serde_json::Value;
use spikard_http::{
    FieldError, Handler, HandlerError, HandlerFuture, LocSegment, Problem, RequestData,
    ResponseBody,
};
use tokio::sync::oneshot;

use crate::bridge::{Bridge, Started};
use crate::convert::{build_args, into_response, request_object, ArgRejected};
use crate::plan::HandlerPlan;
use crate::values::to_python;

pub struct PythonHandler {
    plan: Arc<HandlerPlan>,
    bridge: Arc<Bridge>,
}

/// How starting a handler ended.
enum Outcome {
    Ready(Response<ResponseBody>),
    /// Suspended or in the thread pool; with the `response` it may amend.
    Wait(oneshot::Receiver<Py<PyAny>>, Option<Py<PyAny>>),
    /// The handler raised: an exception handler may still answer.
    Raised(PyErr),
}

type Answer = Result<Response<ResponseBody>, HandlerError>;

impl PythonHandler {
    pub fn new(plan: HandlerPlan, bridge: Arc<Bridge>) -> Self {
        PythonHandler {
            plan: Arc::new(plan),
            bridge,
        }
    }

    /// Builds the arguments, calls the endpoint and takes its first step.
    fn start(&self, py: Python<'_>, request: &RequestData) -> Result<Outcome, HandlerError> {
        let args = match build_args(py, &self.bridge, &self.plan, request) {
            Ok(args) => args,
            Err(rejected) if rejected.loc.is_empty() => {
                return Err(fault(py, &self.bridge, &self.plan, rejected.error))
            }
            Err(rejected) => return Ok(Outcome::Ready(rejection(py, &self.bridge, rejected))),
        };
        let kwnames = self.plan.kwnames.bind(py);
        let started = if self.plan.is_async {
            self.bridge
                .start_async(py, &self.plan.endpoint, &args.values, kwnames)
        } else {
            self.bridge
                .start_sync(py, &self.plan.endpoint, &args.values, kwnames)
        };
        let sub = args.sub_response.as_ref();
        Ok(match started {
            Ok(Started::Done(value)) => {
                match into_response(py, &self.bridge, &self.plan, &value, sub) {
                    Ok(response) => Outcome::Ready(response),
                    Err(error) => return Err(fault(py, &self.bridge, &self.plan, error)),
                }
            }
            Ok(Started::Pending(receiver)) => {
                Outcome::Wait(receiver, args.sub_response.map(Bound::unbind))
            }
            Err(error) => Outcome::Raised(error),
        })
    }
}

/// Takes the result of a finished task or future and answers with it.
fn finish(
    py: Python<'_>,
    bridge: &Bridge,
    plan: &HandlerPlan,
    finished: Py<PyAny>,
    sub: Option<Py<PyAny>>,
) -> Result<Answer, PyErr> {
    let value = finished
        .bind(py)
        .call_method0(pyo3::intern!(py, "result"))?;
    let sub = sub.map(|s| s.into_bound(py));
    Ok(into_response(py, bridge, plan, &value, sub.as_ref())
        .map_err(|error| fault(py, bridge, plan, error)))
}

/// Reports a handler fault through `spikard.error`; the text goes into the 500
/// only in debug mode.
fn fault(py: Python<'_>, bridge: &Bridge, plan: &HandlerPlan, error: PyErr) -> HandlerError {
    // Carries the traceback along, for the report.
    let exception = error.into_value(py);
    let detail = bridge
        .ctx
        .report_error
        .bind(py)
        .call1((exception.bind(py), plan.label.as_str()))
        .and_then(|text| text.extract::<String>())
        .unwrap_or_else(|report_failed| {
            PyErr::from_value(exception.bind(py).clone().into_any()).print(py);
            report_failed.print(py);
            format!("{}: {}", plan.label, exception.bind(py))
        });
    HandlerError {
        detail: Some(detail),
    }
}

/// A value that passed the schema but that the annotated type refused: a 422
/// with one entry per failing field, located under the argument.
fn rejection(py: Python<'_>, bridge: &Bridge, rejected: ArgRejected<'_>) -> Response<ResponseBody> {
    let loc: Vec<Value> = rejected
        .loc
        .iter()
        .map(|segment| serde_json::to_value(segment).unwrap_or(Value::Null))
        .collect();
    let errors = to_python(py, &Value::Array(loc))
        .and_then(|loc| {
            bridge
                .ctx
                .rejection_errors
                .bind(py)
                .call1((rejected.error.value(py), loc))
        })
        .and_then(|errors| {
            pythonize::depythonize::<Value>(&errors)
                .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))
        })
        .map(|errors| field_errors(&errors))
        .unwrap_or_default();
    let errors = if errors.is_empty() {
        vec![FieldError {
            loc: rejected.loc.to_vec(),
            msg: rejected.error.value(py).to_string(),
            kind: "value_error".into(),
            input: None,
        }]
    } else {
        errors
    };
    Problem::validation(errors).into_response()
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
                .map(|loc| {
                    loc.iter()
                        .map(|step| match step {
                            Value::Number(n) => n
                                .as_u64()
                                .map(|i| LocSegment::Index(i as usize))
                                .unwrap_or_else(|| LocSegment::Key(n.to_string())),
                            Value::String(s) => LocSegment::Key(s.clone()),
                            other => LocSegment::Key(other.to_string()),
                        })
                        .collect()
                })
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

/// Runs `callable(request=…)` (an exception handler, bound to its exception)
/// through the bridge and answers with the `Response` it returns.
fn run_error_handler(
    py: Python<'_>,
    bridge: &Arc<Bridge>,
    plan: &Arc<HandlerPlan>,
    callable: Bound<'_, PyAny>,
    request: Bound<'_, PyAny>,
) -> HandlerFuture {
    let names = PyTuple::new(py, [PyString::intern(py, "request")]);
    let started =
        names.and_then(|names| bridge.start_async(py, &callable.unbind(), &[request], &names));
    let answered = match started {
        Ok(Started::Done(value)) => into_response(py, bridge, plan, &value, None),
        Ok(Started::Pending(receiver)) => {
            let bridge = bridge.clone();
            let plan = plan.clone();
            return Box::pin(async move {
                let finished = receiver.await.map_err(|_| HandlerError {
                    detail: Some(format!(
                        "{}: the exception handler ended without an answer",
                        plan.label
                    )),
                })?;
                Python::attach(|py| {
                    finish(py, &bridge, &plan, finished, None)
                        .unwrap_or_else(|error| Err(fault(py, &bridge, &plan, error)))
                })
            });
        }
        Err(error) => Err(error),
    };
    let answer = answered.map_err(|error| fault(py, bridge, plan, error));
    Box::pin(std::future::ready(answer))
}

/// A handler raised: the app's exception handler for it, the problem of an
/// `HTTPException`, or a fault (500).
fn on_exception(
    py: Python<'_>,
    bridge: &Arc<Bridge>,
    plan: &Arc<HandlerPlan>,
    error: PyErr,
    request: &RequestData,
) -> HandlerFuture {
    let decided = bridge.ctx.for_exception.bind(py).call1((error.value(py),));
    let answer = match decided {
        Ok(decision) if decision.is_none() => Err(fault(py, bridge, plan, error)),
        Ok(decision)
            if decision
                .is_instance(bridge.ctx.response_type.bind(py))
                .unwrap_or(false) =>
        {
            into_response(py, bridge, plan, &decision, None).map_err(|e| fault(py, bridge, plan, e))
        }
        Ok(handler) => {
            let made = request_object(
                py,
                bridge,
                &request.head,
                request.raw_body.as_ref(),
                &request.path_params,
            );
            return match made {
                Ok(request) => run_error_handler(py, bridge, plan, handler, request),
                Err(made_error) => {
                    Box::pin(std::future::ready(Err(fault(py, bridge, plan, made_error))))
                }
            };
        }
        Err(decide_error) => {
            decide_error.print(py);
            Err(fault(py, bridge, plan, error))
        }
    };
    Box::pin(std::future::ready(answer))
}

impl Handler for PythonHandler {
    fn call(&self, request: RequestData) -> HandlerFuture {
        let started = Python::attach(|py| match self.start(py, &request) {
            Ok(Outcome::Raised(error)) => {
                Err(on_exception(py, &self.bridge, &self.plan, error, &request))
            }
            other => Ok(other),
        });
        match started {
            Ok(Ok(Outcome::Ready(response))) => Box::pin(std::future::ready(Ok(response))),
            Ok(Err(error)) => Box::pin(std::future::ready(Err(error))),
            Err(answer) => answer,
            Ok(Ok(Outcome::Raised(_))) => unreachable!("handled above"),
            Ok(Ok(Outcome::Wait(receiver, sub))) => {
                let bridge = self.bridge.clone();
                let plan = self.plan.clone();
                Box::pin(async move {
                    let finished = receiver.await.map_err(|_| HandlerError {
                        detail: Some(format!(
                            "{}: the handler's task ended without an answer",
                            plan.label
                        )),
                    })?;
                    let next = Python::attach(|py| {
                        finish(py, &bridge, &plan, finished, sub)
                            .map_err(|error| on_exception(py, &bridge, &plan, error, &request))
                    });
                    match next {
                        Ok(answer) => answer,
                        Err(handled) => handled.await,
                    }
                })
            }
        }
    }

    fn invalid(&self, head: Parts, errors: &[FieldError]) -> Option<HandlerFuture> {
        let handler = self.bridge.ctx.validation_error_handler.as_ref()?;
        Some(Python::attach(|py| {
            let errors = serde_json::to_value(errors).unwrap_or(Value::Null);
            let made = to_python(py, &errors)
                .and_then(|errors| handler.bind(py).call1((errors,)))
                .and_then(|bound| {
                    let request = request_object(py, &self.bridge, &head, None, &[])?;
                    Ok((bound, request))
                });
            match made {
                Ok((bound, request)) => {
                    run_error_handler(py, &self.bridge, &self.plan, bound, request)
                }
                Err(error) => Box::pin(std::future::ready(Err(fault(
                    py,
                    &self.bridge,
                    &self.plan,
                    error,
                )))),
            }
        }))
    }
}
