//! The language-agnostic handler interface: what a binding (Python, or native
//! Rust in the benchmark ceiling) implements to answer a matched, validated
//! request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::Response;
use http_body_util::Full;
use serde_json::Value;

use crate::body::Parsed;
use crate::problem::FieldError;
use crate::remote::Remote;
use crate::stages::HandlerLaps;

/// The body type of every response the core writes.
pub type ResponseBody = Full<Bytes>;

/// A request that matched a route and passed validation.
#[derive(Debug)]
pub struct RequestData {
    /// One entry per declared parameter, in declaration order: the coerced,
    /// validated value, or `None` for an optional parameter that was not sent.
    pub args: Vec<Option<Value>>,
    /// The parsed, validated JSON body, if the route declares one and it was
    /// sent: a large one as a compact [`Document`](crate::document::Document).
    pub body: Option<Parsed>,
    /// The body's bytes as received, when the route declares a body or wants
    /// the request.
    pub raw_body: Option<Bytes>,
    /// Every path parameter as received (name, text), when the route wants the request.
    pub path_params: Vec<(String, String)>,
    /// Method, URI and headers as received.
    pub head: Parts,
    /// Where the request came from (behind a trusted proxy, what it reported).
    pub remote: Remote,
    /// The stages are timed: the handler laps its own ([`Answer::laps`]).
    pub timed: bool,
}

/// One of an HTTP/2 connection's handler slots, found in a request's
/// extensions (`head.extensions.get::<Arc<StreamSlot>>()`): held for as long as
/// its handler runs. A binding whose handler may outlive its request (one whose
/// client reset the stream) keeps a clone until the handler really ends, so a
/// client resetting streams as fast as it opens them cannot keep more handlers
/// at work than the connection's stream limit.
#[derive(Debug)]
pub struct StreamSlot(pub tokio::sync::OwnedSemaphorePermit);

/// Answers requests no route takes (404, or 405 with the allowed methods) when
/// the binding's app answers them itself; `None` gives the standard problem.
pub trait Fallback: Send + Sync + 'static {
    fn answer(
        &self,
        head: Parts,
        remote: Remote,
        status: http::StatusCode,
        allowed: &[http::Method],
    ) -> Option<HandlerFuture>;
}

/// A request that failed validation, with what was read of it.
#[derive(Debug)]
pub struct InvalidRequest {
    pub head: Parts,
    pub remote: Remote,
    pub path_params: Vec<(String, String)>,
    /// The parsed body, when it was JSON (whether or not it passed its schema).
    pub body: Option<Parsed>,
    pub errors: Vec<FieldError>,
}

/// A handler that failed; it becomes a 500 problem. `detail` is shown to the
/// client only in debug mode; the binding reports the full fault on stderr.
#[derive(Debug, Default)]
pub struct HandlerError {
    pub detail: Option<String>,
}

/// A handler's response, or the fault that becomes a 500.
pub type HandlerResult = Result<Response<ResponseBody>, HandlerError>;

/// What a handler gives back: its result, and when its stages ended.
#[derive(Debug)]
pub struct Answer {
    pub result: HandlerResult,
    pub laps: HandlerLaps,
}

impl From<HandlerResult> for Answer {
    /// An answer without laps: the whole call counts as `handler`.
    fn from(result: HandlerResult) -> Self {
        Answer {
            result,
            laps: HandlerLaps::default(),
        }
    }
}

/// A handler's answer: in hand at once (most calls; no allocation), or a
/// future of it (a handler that suspended).
pub enum HandlerFuture {
    Ready(Option<Answer>),
    Pending(Pin<Box<dyn Future<Output = Answer> + Send>>),
}

impl HandlerFuture {
    pub fn ready(answer: Answer) -> Self {
        HandlerFuture::Ready(Some(answer))
    }

    pub fn pending(answer: impl Future<Output = Answer> + Send + 'static) -> Self {
        HandlerFuture::Pending(Box::pin(answer))
    }
}

impl Future for HandlerFuture {
    type Output = Answer;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer> {
        match self.get_mut() {
            HandlerFuture::Ready(answer) => {
                Poll::Ready(answer.take().expect("a handler's answer is taken once"))
            }
            HandlerFuture::Pending(answer) => answer.as_mut().poll(cx),
        }
    }
}

pub trait Handler: Send + Sync + 'static {
    fn call(&self, request: RequestData) -> HandlerFuture;

    /// A request for this route failed validation. A binding whose app answers
    /// such requests itself returns its answer; giving the errors back (the
    /// default) answers with the standard 422 problem.
    fn invalid(&self, request: InvalidRequest) -> Result<HandlerFuture, Vec<FieldError>> {
        Err(request.errors)
    }
}

impl<F, Fut> Handler for F
where
    F: Fn(RequestData) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    fn call(&self, request: RequestData) -> HandlerFuture {
        let called = self(request);
        HandlerFuture::pending(async move { Answer::from(called.await) })
    }
}

/// A JSON response from already-serialised bytes.
pub fn json_response(status: http::StatusCode, body: Bytes) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
