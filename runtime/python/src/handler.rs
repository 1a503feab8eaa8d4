//! `PythonHandler`: the core's `Handler` for a Python endpoint.

use std::sync::Arc;

use http::Response;
use pyo3::prelude::*;
use spikard_http::{
    FieldError, Handler, HandlerError, HandlerFuture, Problem, RequestData, ResponseBody,
};
use tokio::sync::oneshot;

use crate::bridge::{Bridge, Started};
use crate::convert::{build_args, into_response, ArgRejected};
use crate::plan::HandlerPlan;

pub struct PythonHandler {
    plan: Arc<HandlerPlan>,
    bridge: Arc<Bridge>,
}

enum Outcome {
    Ready(Response<ResponseBody>),
    Wait(oneshot::Receiver<Py<PyAny>>),
}

impl PythonHandler {
    pub fn new(plan: HandlerPlan, bridge: Arc<Bridge>) -> Self {
        PythonHandler {
            plan: Arc::new(plan),
            bridge,
        }
    }

    /// Builds the arguments, calls the endpoint and takes its first step.
    fn start(&self, py: Python<'_>, request: &RequestData) -> Result<Outcome, HandlerError> {
        let values = match build_args(py, &self.plan, request) {
            Ok(values) => values,
            Err(rejected) => return Ok(Outcome::Ready(rejection(py, rejected))),
        };
        let kwnames = self.plan.kwnames.bind(py);
        let started = if self.plan.is_async {
            self.bridge
                .start_async(py, &self.plan.endpoint, &values, kwnames)
        } else {
            self.bridge
                .start_sync(py, &self.plan.endpoint, &values, kwnames)
        };
        match started {
            Ok(Started::Done(value)) => into_response(py, &self.bridge, self.plan.status, &value)
                .map(Outcome::Ready)
                .map_err(|error| fault(py, &self.bridge, &self.plan, error)),
            Ok(Started::Pending(receiver)) => Ok(Outcome::Wait(receiver)),
            Err(error) => Err(fault(py, &self.bridge, &self.plan, error)),
        }
    }
}

/// Takes the result of a finished task or future and answers with it.
fn finish(
    py: Python<'_>,
    bridge: &Bridge,
    plan: &HandlerPlan,
    finished: Py<PyAny>,
) -> Result<Response<ResponseBody>, HandlerError> {
    finished
        .bind(py)
        .call_method0(pyo3::intern!(py, "result"))
        .and_then(|value| into_response(py, bridge, plan.status, &value))
        .map_err(|error| fault(py, bridge, plan, error))
}

/// Reports a handler fault on stderr; the text goes into the 500 only in debug mode.
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

/// A value that passed the schema but that the annotated type refused.
fn rejection(py: Python<'_>, rejected: ArgRejected<'_>) -> Response<ResponseBody> {
    let msg = rejected
        .error
        .value(py)
        .str()
        .map(|s| s.to_string())
        .unwrap_or_else(|_| "Invalid value".to_owned());
    Problem::validation(vec![FieldError {
        loc: rejected.arg.loc.clone(),
        msg,
        kind: "value_error",
        input: None,
    }])
    .into_response()
}

impl Handler for PythonHandler {
    fn call(&self, request: RequestData) -> HandlerFuture {
        match Python::attach(|py| self.start(py, &request)) {
            Ok(Outcome::Ready(response)) => Box::pin(std::future::ready(Ok(response))),
            Err(error) => Box::pin(std::future::ready(Err(error))),
            Ok(Outcome::Wait(receiver)) => {
                let bridge = self.bridge.clone();
                let plan = self.plan.clone();
                Box::pin(async move {
                    match receiver.await {
                        Ok(finished) => Python::attach(|py| finish(py, &bridge, &plan, finished)),
                        Err(_) => Err(HandlerError {
                            detail: Some(format!(
                                "{}: the handler's task ended without an answer",
                                plan.label
                            )),
                        }),
                    }
                })
            }
        }
    }
}
