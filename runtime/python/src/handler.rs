//! `PythonHandler`: the core's `Handler` for a Python endpoint.

use std::sync::Arc;

use http::Response;
use pyo3::prelude::*;
use spikard_http::{
    Answer, FieldError, Handler, HandlerError, HandlerFuture, HandlerLaps, InvalidRequest,
    LocSegment, Parsed, Problem, RequestData, ResponseBody, StreamSlot,
};
use tokio::sync::oneshot;

use crate::bridge::{Bridge, Finished, Started};
use crate::building::Building;
use crate::convert::{build_args, into_response, request_object, RequestParts};
use crate::failures::{
    fault, ready, ready_with, rejection_errors, run_error_handler, validation_answer,
};
use crate::plan::HandlerPlan;
use crate::values::{MadeBody, Numbers, PyBody};

#[derive(Clone)]
pub struct PythonHandler {
    plan: Arc<HandlerPlan>,
    bridge: Arc<Bridge>,
}

/// How starting a handler ended.
enum Outcome {
    Ready(Response<ResponseBody>),
    /// Suspended or in the thread pool; with the `response` it may amend.
    Wait(oneshot::Receiver<Finished>, Option<Py<PyAny>>),
    /// The handler raised: an exception handler may still answer.
    Raised(PyErr),
    /// A Python type refused a value that passed its schema.
    Invalid(Vec<FieldError>),
}

impl PythonHandler {
    pub fn new(plan: HandlerPlan, bridge: Arc<Bridge>) -> Self {
        PythonHandler {
            plan: Arc::new(plan),
            bridge,
        }
    }

    /// Builds the arguments, calls the endpoint and takes its first step,
    /// lapping `ffi` and (unless it suspended) `handler` when the request is timed.
    fn start(
        &self,
        py: Python<'_>,
        request: &RequestData,
        made: Option<&MadeBody>,
        laps: &mut HandlerLaps,
    ) -> Result<Outcome, HandlerError> {
        let (bridge, plan) = (&self.bridge, &self.plan);
        let built = build_args(py, bridge, plan, request, made);
        lap(&mut laps.ffi, request.timed);
        let args = match built {
            Ok(args) => args,
            Err(rejected) if rejected.loc.is_empty() => {
                return Err(fault(py, bridge, &plan.label, rejected.error))
            }
            Err(rejected) => {
                let errors = rejection_errors(py, bridge, rejected.loc, &rejected.error);
                return Ok(Outcome::Invalid(errors));
            }
        };
        let kwnames = plan.kwnames.bind(py);
        let (endpoint, timed) = (&plan.endpoint, request.timed);
        let slot = request.head.extensions.get::<Arc<StreamSlot>>().cloned();
        let started = if plan.is_async {
            bridge.start_async(py, endpoint, &args.values, kwnames, timed, slot)
        } else {
            bridge.start_sync(py, endpoint, &args.values, kwnames, timed, slot)
        };
        if !matches!(started, Ok(Started::Pending(_))) {
            lap(&mut laps.handler, request.timed);
        }
        let sub = args.sub_response.as_ref();
        Ok(match started {
            Ok(Started::Done(value)) => match into_response(py, bridge, plan, &value, sub) {
                Ok(response) => Outcome::Ready(response),
                Err(error) => return Err(fault(py, bridge, &plan.label, error)),
            },
            Ok(Started::Pending(receiver)) => {
                Outcome::Wait(receiver, args.sub_response.map(Bound::unbind))
            }
            Err(error) => Outcome::Raised(error),
        })
    }
}

/// Marks a stage's end now, when the request is timed.
fn lap(at: &mut u64, timed: bool) {
    if timed {
        *at = spikard_http::stages::now();
    }
}

/// `answer` with the laps of the handler that led to it (an exception handler
/// answering for the endpoint reports none of its own).
fn with_laps(answer: HandlerFuture, laps: HandlerLaps) -> HandlerFuture {
    HandlerFuture::pending(async move {
        Answer {
            laps,
            ..answer.await
        }
    })
}

/// Takes the result of a finished task or future and answers with it; the
/// handler's exception, if it raised.
fn finish(
    py: Python<'_>,
    bridge: &Bridge,
    plan: &HandlerPlan,
    finished: Py<PyAny>,
    sub: Option<Py<PyAny>>,
) -> Result<Result<Response<ResponseBody>, HandlerError>, PyErr> {
    let value = finished
        .bind(py)
        .call_method0(pyo3::intern!(py, "result"))?;
    let sub = sub.map(|s| s.into_bound(py));
    Ok(into_response(py, bridge, plan, &value, sub.as_ref())
        .map_err(|error| fault(py, bridge, &plan.label, error)))
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
    let decided = bridge
        .answers
        .for_exception
        .bind(py)
        .call1((error.value(py),));
    let handler = match decided {
        Ok(decision) if decision.is_none() => {
            return ready(Err(fault(py, bridge, &plan.label, error)))
        }
        Ok(decision)
            if decision
                .is_instance(bridge.answers.response_type.bind(py))
                .unwrap_or(false) =>
        {
            let answer = into_response(py, bridge, plan, &decision, None);
            return ready(answer.map_err(|e| fault(py, bridge, &plan.label, e)));
        }
        Ok(handler) => handler,
        Err(decide_error) => {
            fault(py, bridge, &plan.label, decide_error);
            return ready(Err(fault(py, bridge, &plan.label, error)));
        }
    };
    let made = request_object(py, bridge, RequestParts::of(request));
    match made {
        Ok(request) => run_error_handler(py, bridge, &plan.label, handler, request),
        Err(made_error) => ready(Err(fault(py, bridge, &plan.label, made_error))),
    }
}

/// Values made per step when a large body becomes Python objects: about a
/// millisecond's work, after which other requests get the serving thread.
const BODY_STEP: usize = 20_000;

impl PythonHandler {
    /// A large body (a [`Document`](spikard_http::Document)) made into Python
    /// objects a step at a time, other requests served in between; then
    /// answered as usual. A value Python cannot hold (a number beyond a float)
    /// is the client's error, as for any body.
    fn call_with_document(&self, mut request: RequestData) -> HandlerFuture {
        let this = self.clone();
        HandlerFuture::pending(async move {
            let made = {
                let Some(Parsed::Document(document)) = &request.body else {
                    unreachable!("called for a document")
                };
                let numbers = this
                    .plan
                    .body
                    .as_ref()
                    .map_or(Numbers::AsWritten, |arg| arg.numbers);
                let mut building = Building::new(document.root(), numbers);
                loop {
                    match Python::attach(|py| building.step(py, BODY_STEP)) {
                        Ok(Some(object)) => break Ok(object),
                        Ok(None) => tokio::task::yield_now().await,
                        Err(error) => break Err(error),
                    }
                }
            };
            // The objects hold what the handler needs: the document goes now.
            request.body = None;
            match made {
                Ok(object) => this.answer(request, Some(MadeBody::new(object))).await,
                Err(error) => {
                    // Located at the body, embedded or not (as where a small
                    // body's value fails, for a body parameter).
                    let loc = [LocSegment::Key("body".into())];
                    let errors =
                        Python::attach(|py| rejection_errors(py, &this.bridge, &loc, &error));
                    this.answer_invalid(&request, None, errors, HandlerLaps::default())
                        .await
                }
            }
        })
    }

    /// Calls the endpoint; `made` is the body as Python objects, if large.
    fn answer(&self, request: RequestData, made: Option<MadeBody>) -> HandlerFuture {
        let (bridge, plan) = (&self.bridge, &self.plan);
        let mut laps = HandlerLaps::default();
        let started =
            Python::attach(
                |py| match self.start(py, &request, made.as_ref(), &mut laps) {
                    // Boxed: the exception's answer is rare, and large beside an outcome.
                    Ok(Outcome::Raised(error)) => {
                        Err(Box::new(on_exception(py, bridge, plan, error, &request)))
                    }
                    other => Ok(other),
                },
            );
        let outcome = match started {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(error)) => return ready_with(Err(error), laps),
            Err(answer) => return with_laps(*answer, laps),
        };
        match outcome {
            Outcome::Ready(response) => ready_with(Ok(response), laps),
            Outcome::Raised(_) => unreachable!("answered by on_exception above"),
            Outcome::Invalid(errors) => self.answer_invalid(&request, made.as_ref(), errors, laps),
            Outcome::Wait(receiver, sub) => {
                let bridge = bridge.clone();
                let plan = plan.clone();
                HandlerFuture::pending(async move {
                    let Ok(Finished {
                        object: finished,
                        at,
                    }) = receiver.await
                    else {
                        let detail =
                            format!("{}: the handler's task ended without an answer", plan.label);
                        let result = Err(HandlerError {
                            detail: Some(detail),
                        });
                        lap(&mut laps.handler, request.timed);
                        return Answer { result, laps };
                    };
                    laps.handler = at;
                    let next = Python::attach(|py| {
                        finish(py, &bridge, &plan, finished, sub).map_err(|error| {
                            Box::new(on_exception(py, &bridge, &plan, error, &request))
                        })
                    });
                    let result = match next {
                        Ok(result) => result,
                        Err(handled) => (*handled).await.result,
                    };
                    Answer { result, laps }
                })
            }
        }
    }

    /// A Python type refused a value that passed its schema: the app's
    /// validation handler, or the problem.
    fn answer_invalid(
        &self,
        request: &RequestData,
        made: Option<&MadeBody>,
        errors: Vec<FieldError>,
        laps: HandlerLaps,
    ) -> HandlerFuture {
        let body = PyBody::of(request.body.as_ref(), made);
        let parts = RequestParts::of(request);
        match validation_answer(&self.bridge, &self.plan.label, parts, body, errors) {
            Ok(answer) => with_laps(answer, laps),
            Err(errors) => ready_with(Ok(Problem::validation(errors, 0).into_response()), laps),
        }
    }
}

impl Handler for PythonHandler {
    fn call(&self, request: RequestData) -> HandlerFuture {
        if matches!(request.body, Some(Parsed::Document(_))) {
            return self.call_with_document(request);
        }
        self.answer(request, None)
    }

    fn invalid(&self, request: InvalidRequest) -> Result<HandlerFuture, Vec<FieldError>> {
        let parts = RequestParts {
            head: &request.head,
            remote: &request.remote,
            raw_body: None,
            path_params: &request.path_params,
        };
        validation_answer(
            &self.bridge,
            &self.plan.label,
            parts,
            PyBody::of(request.body.as_ref(), None),
            request.errors,
        )
    }
}
