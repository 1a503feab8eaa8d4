//! The request pipeline: match the route, extract and validate parameters and
//! body, call the handler, and turn every failure into a problem response.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;

use http::request::Parts;
use http::{Method, Request, Response, StatusCode};

use crate::access_log::{AccessLog, AccessRecord};
use crate::body::{self, Parsed};
use crate::conformance::{self, Target};
use crate::framing;
use crate::handler::{Fallback, HandlerFuture, InvalidRequest, RequestData, ResponseBody};
use crate::notice::Notice;
use crate::params::{self, RawInputs};
use crate::problem::{allow_list, Problem};
use crate::refusal::Refused;
use crate::remote::{ProxyTrust, Remote};
use crate::router::{Lookup, Router};
use crate::stages::{self, Stage, StageTimes};
use crate::stats::StageStats;
use crate::timing::Timing;

/// Request handling settings.
#[derive(Clone, Debug)]
pub struct AppConfig {
    /// Largest accepted request body, in bytes; larger ones get 413.
    pub max_body_size: usize,
    /// Show handler faults (tracebacks, panic messages) in 500 responses.
    pub debug: bool,
    /// Believe proxy headers from these peers (`None`: take peers as they are).
    pub proxy: Option<ProxyTrust>,
    /// A request body may pause at most this long (`None`: for ever).
    pub body_stall: Option<Duration>,
    /// Send each request's stage times in a `Server-Timing` header.
    pub server_timing: bool,
    /// Show each request's stage times in its access line.
    pub access_log_stages: bool,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            max_body_size: 10 * 1024 * 1024,
            debug: false,
            proxy: None,
            body_stall: Some(Duration::from_secs(10)),
            server_timing: false,
            access_log_stages: false,
        }
    }
}

/// The status logged for a request whose client left before the answer.
pub(crate) const CLIENT_CLOSED_REQUEST: u16 = 499;

/// One request from its head to the end of its response: counted in flight,
/// and logged once, when it ends — written whole, cut, or dropped because its
/// client left before the answer.
pub struct Exchange {
    app: Arc<App>,
    /// Its record, and when its head was complete ([`stages::now`]).
    logged: Option<(AccessRecord, u64)>,
    /// Its response has no body to write (a HEAD request, a 204, 205 or 304), so
    /// none can be cut.
    bodiless: bool,
}

impl Exchange {
    fn begin(app: Arc<App>, record: Option<AccessRecord>, head: bool) -> Self {
        app.in_flight.fetch_add(1, Ordering::Relaxed);
        Exchange {
            // Timed from the complete head, whether or not stages are timed.
            logged: record.map(|record| (record, stages::now())),
            app,
            bodiless: head,
        }
    }

    /// Answered with `response`, which took `times`: they go in its
    /// `Server-Timing` header and access line when the app shows them.
    fn answered(&mut self, response: &mut Response<ResponseBody>, times: Option<StageTimes>) {
        let status = response.status();
        self.bodiless |= status.is_informational() || framing::has_no_body(status);
        let config = &self.app.config;
        if let Some((record, _)) = &mut self.logged {
            record.status = status.as_u16();
            if config.access_log_stages {
                record.stages = times.map(Box::new);
            }
        }
        if let Some(notice) = &self.app.notice {
            notice.apply(response.headers_mut());
        }
        if let (Some(times), true) = (times, config.server_timing) {
            // SAFETY: `server_timing` writes only visible ASCII and spaces.
            let value =
                unsafe { http::HeaderValue::from_maybe_shared_unchecked(times.server_timing()) };
            response.headers_mut().append(&SERVER_TIMING, value);
        }
    }

    /// Its response was not written whole.
    pub fn cut(&mut self) {
        if let Some((record, _)) = &mut self.logged {
            record.cut = !self.bodiless;
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let app = &*self.app;
        app.in_flight.fetch_sub(1, Ordering::Relaxed);
        app.served.fetch_add(1, Ordering::Relaxed);
        if let (Some((mut record, started)), Some(log)) = (self.logged.take(), &app.access_log) {
            record.duration = Duration::from_nanos(stages::now().saturating_sub(started));
            log.record(record);
        }
    }
}

static SERVER_TIMING: http::HeaderName = http::HeaderName::from_static("server-timing");

/// Routes plus settings: everything needed to answer a request.
pub struct App {
    router: Router,
    config: AppConfig,
    in_flight: AtomicUsize,
    served: AtomicU64,
    fallback: Option<Arc<dyn Fallback>>,
    access_log: Option<Arc<AccessLog>>,
    stats: Option<Arc<StageStats>>,
    notice: Option<Arc<Notice>>,
    /// Shutting down: HTTP/1 responses say `Connection: close`.
    draining: AtomicBool,
}

impl App {
    pub fn new(router: Router, config: AppConfig) -> Self {
        App {
            router,
            config,
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            fallback: None,
            access_log: None,
            stats: None,
            notice: None,
            draining: AtomicBool::new(false),
        }
    }

    /// Shutdown has begun: every response from now on closes its HTTP/1
    /// connection, and says so.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Adds the header `notice` holds, while it holds one, to every response.
    pub fn with_notice(mut self, notice: Arc<Notice>) -> Self {
        self.notice = Some(notice);
        self
    }

    /// Records every request's stage times in `stats`, made for this app's
    /// router (`StageStats::new(router.templates())`).
    pub fn with_stats(mut self, stats: Arc<StageStats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Whether requests are timed: their stage times are shown or counted
    /// somewhere. The caller passes when each request began to
    /// [`App::handle`] only then, so that an untimed app reads no clock.
    pub fn timed(&self) -> bool {
        self.stats.is_some() || self.config.server_timing || self.config.access_log_stages
    }

    /// Records every answered request in `log`.
    pub fn with_access_log(mut self, log: Arc<AccessLog>) -> Self {
        self.access_log = Some(log);
        self
    }

    /// Lets `fallback` answer requests no route takes.
    pub fn with_fallback(mut self, fallback: Arc<dyn Fallback>) -> Self {
        self.fallback = Some(fallback);
        self
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    pub fn config(&self) -> &AppConfig {
        &self.config
    }

    /// Requests answered so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Logs a request the runtime refused before any route saw it (see
    /// [`crate::refusal`]).
    pub fn refused(&self, peer: Option<SocketAddr>, refused: &Refused, took: Duration) {
        let Some(log) = &self.access_log else {
            return;
        };
        let (method, target, version) = refused.request_line();
        log.record(AccessRecord {
            client: Remote::direct(peer).client,
            method,
            target,
            version,
            status: refused.status.as_u16(),
            cut: false,
            duration: took,
            stages: None,
        });
    }

    /// Requests being answered right now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Answers one request from `peer` (`None`: a connection without an
    /// address, such as a Unix socket) that `began` at the first byte of its
    /// head (`None` when the app is not [timed](App::timed)), and gives the
    /// exchange that ends when the response has been written. Never fails: a
    /// panic anywhere below becomes a 500.
    pub async fn handle<B>(
        self: Arc<Self>,
        request: Request<B>,
        peer: Option<SocketAddr>,
        began: Option<u64>,
    ) -> (Response<ResponseBody>, Exchange)
    where
        B: http_body::Body<Data = Bytes> + Unpin + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let remote = match &self.config.proxy {
            Some(trust) => trust.resolve(peer, request.headers()),
            None => Remote::direct(peer),
        };
        let record = self.access_log.is_some().then(|| AccessRecord {
            client: remote.client.clone(),
            method: request.method().clone(),
            target: request.uri().path_and_query().map_or_else(
                || request.uri().path().to_owned(),
                |pq| pq.as_str().to_owned(),
            ),
            version: request.version(),
            // Kept if the client leaves before the answer (nginx's code for it).
            status: CLIENT_CLOSED_REQUEST,
            cut: false,
            duration: Duration::ZERO,
            stages: None,
        });
        let head = request.method() == Method::HEAD;
        let http1 = request.version() < http::Version::HTTP_2;
        let mut exchange = Exchange::begin(self, record, head);
        let app = &*exchange.app;
        let mut timing = Timing::new(began, app.stats.as_deref());
        let outcome = AssertUnwindSafe(app.dispatch(request, remote, &mut timing))
            .catch_unwind()
            .await;
        let mut response = match outcome {
            Ok(response) => response,
            // The panic hook has already printed the message and location.
            Err(panic) => {
                Problem::internal(app.config.debug.then(|| panic_message(&*panic))).into_response()
            }
        };
        let times = timing.answered(response.status().as_u16());
        drop(timing);
        exchange.answered(&mut response, times);
        if http1 && exchange.app.draining.load(Ordering::Relaxed) {
            // Shutting down: the client learns this connection closes after
            // this response, rather than by a reset of its next request.
            response.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        (response, exchange)
    }

    async fn dispatch<B>(
        &self,
        request: Request<B>,
        remote: Remote,
        timing: &mut Timing<'_>,
    ) -> Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Unpin + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut request = request;
        match conformance::check(&mut request) {
            Ok(Target::Path) => {}
            Ok(Target::Server) => {
                timing.lap(Stage::Parse);
                return options_response(&self.router.methods());
            }
            Err(problem) => {
                timing.lap(Stage::Parse);
                return problem.into_response();
            }
        }
        let (head, body) = request.into_parts();
        let (route, path_values) = match self.router.lookup(&head.method, head.uri.path()) {
            Lookup::Found { route, path_values } => (route, path_values),
            Lookup::Options(allowed) => {
                timing.lap(Stage::Parse);
                return options_response(&allowed);
            }
            Lookup::MethodNotAllowed(allowed) => {
                timing.lap(Stage::Parse);
                return self
                    .unrouted(
                        head,
                        remote,
                        StatusCode::METHOD_NOT_ALLOWED,
                        &allowed,
                        timing,
                    )
                    .await;
            }
            Lookup::NotFound => {
                timing.lap(Stage::Parse);
                return self
                    .unrouted(head, remote, StatusCode::NOT_FOUND, &[], timing)
                    .await;
            }
        };
        timing.matched(route.index);
        let (limit, stall) = (self.config.max_body_size, self.config.body_stall);
        // In blocks: a local whose scope spans a later await takes room in
        // every request's future, moved or not.
        let (body, raw_body, checked) = {
            let read = match &route.body {
                Some(spec) => match spec.read(&head.headers, body, limit, stall).await {
                    Ok(Some(read)) => Ok((Some(read.parsed), Some(read.raw), read.checked)),
                    Ok(None) => Ok((None, None, None)),
                    Err(problem) => Err(problem),
                },
                None if route.wants_request => body::read_raw(&head.headers, body, limit, stall)
                    .await
                    .map(|raw| (None, Some(raw), None)),
                None => Ok((None, None, None)),
            };
            match read {
                Ok(read) => read,
                // Refused while reading (too large, not JSON, stalled): parsed no further.
                Err(problem) => {
                    timing.lap(Stage::Parse);
                    return problem.into_response();
                }
            }
        };
        let mut errors = Vec::new();
        let mut omitted = 0;
        let mut args = Vec::with_capacity(route.params.len());
        {
            // After the body, so that what was found is not held while it arrives.
            let inputs = RawInputs {
                path: &path_values,
                query: head.uri.query(),
                headers: &head.headers,
            };
            let found = params::extract(&route.params, &inputs);
            timing.lap(Stage::Parse);
            if route.params.is_empty() && route.body.is_none() {
                timing.skip(Stage::Validate);
            } else {
                omitted += params::validate(&route.params, found, &mut args, &mut errors);
                match (&route.body, checked) {
                    // A large body was checked where it was parsed.
                    (Some(_), Some((found, more))) => {
                        errors.extend(found);
                        omitted += more;
                    }
                    (Some(spec), None) => {
                        let value = body.as_ref().and_then(Parsed::as_value);
                        omitted += spec.validate(value, &mut errors);
                    }
                    (None, _) => {}
                }
                timing.lap(Stage::Validate);
            }
        }
        if !errors.is_empty() {
            let path_params = path_params(&route.path_names, &path_values);
            let invalid = InvalidRequest {
                head,
                remote,
                path_params,
                body,
                errors,
            };
            return match route.handler.invalid(invalid) {
                Ok(answer) => self.answer(answer, timing).await,
                Err(errors) => Problem::validation(errors, omitted).into_response(),
            };
        }
        let path_params = if route.wants_request {
            path_params(&route.path_names, &path_values)
        } else {
            Vec::new()
        };
        let request = RequestData {
            args,
            body,
            raw_body,
            path_params,
            head,
            remote,
            timed: timing.timed(),
        };
        self.answer(route.handler.call(request), timing).await
    }

    /// A request no route takes: the app's fallback, or the standard problem.
    async fn unrouted(
        &self,
        head: Parts,
        remote: Remote,
        status: StatusCode,
        allowed: &[Method],
        timing: &mut Timing<'_>,
    ) -> Response<ResponseBody> {
        let problem = if status == StatusCode::METHOD_NOT_ALLOWED {
            Problem::method_not_allowed(&head.method, allowed)
        } else {
            Problem::not_found(head.uri.path())
        };
        match &self.fallback {
            Some(fallback) => match fallback.answer(head, remote, status, allowed) {
                Some(answer) => self.answer(answer, timing).await,
                None => problem.into_response(),
            },
            None => problem.into_response(),
        }
    }

    async fn answer(
        &self,
        handled: HandlerFuture,
        timing: &mut Timing<'_>,
    ) -> Response<ResponseBody> {
        let answer = handled.await;
        timing.handled(answer.laps);
        match answer.result {
            Ok(response) => response,
            Err(error) => {
                Problem::internal(error.detail.filter(|_| self.config.debug)).into_response()
            }
        }
    }
}

/// Path parameters by name, percent-decoded as the handler's own parameters are.
fn path_params(names: &[String], values: &[&str]) -> Vec<(String, String)> {
    names
        .iter()
        .zip(values)
        .map(|(name, value)| {
            let decoded = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
            (name.clone(), decoded.into_owned())
        })
        .collect()
}

/// The answer to OPTIONS on a path without an OPTIONS route: what it allows.
fn options_response(allowed: &[http::Method]) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::new(Bytes::new()));
    *response.status_mut() = http::StatusCode::NO_CONTENT;
    if let Ok(value) = http::HeaderValue::from_str(&allow_list(allowed)) {
        response.headers_mut().insert(http::header::ALLOW, value);
    }
    response
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message");
    format!("panic in the runtime: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::{json_response, HandlerError, RequestData};
    use crate::params::{ParamSource, ParamSpec, Scalar};
    use crate::router::{RouteSpec, RouterBuilder};
    use http::{Method, StatusCode};
    use http_body_util::{BodyExt, Full};
    use serde_json::{json, Value};
    use std::sync::Arc;

    fn app(debug: bool) -> Arc<App> {
        let mut routes = RouterBuilder::new();
        let get = |path: &str| RouteSpec {
            method: Method::GET,
            path: path.into(),
            params: vec![],
            body: None,
            wants_request: false,
        };
        routes
            .route(
                get("/panic"),
                Arc::new(|_: RequestData| async { panic!("the handler blew up") }),
            )
            .unwrap();
        routes
            .route(
                get("/fails"),
                Arc::new(|_: RequestData| async {
                    Err(HandlerError {
                        detail: Some("Traceback: boom".into()),
                    })
                }),
            )
            .unwrap();
        let mut echo = get("/echo/{n:int}");
        echo.params.push(ParamSpec {
            name: "n".into(),
            source: ParamSource::Path,
            key: "n".into(),
            scalar: Scalar::Int,
            list: false,
            required: true,
            schema: None,
        });
        routes
            .route(
                echo,
                Arc::new(|request: RequestData| async move {
                    let body = serde_json::to_vec(&request.args).unwrap();
                    Ok(json_response(StatusCode::OK, body.into()))
                }),
            )
            .unwrap();
        Arc::new(App::new(
            routes.build().unwrap(),
            AppConfig {
                debug,
                ..AppConfig::default()
            },
        ))
    }

    async fn call(app: &Arc<App>, path: &str) -> (StatusCode, Value) {
        let request = Request::get(path)
            .header(http::header::HOST, "test")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (response, _) = app.clone().handle(request, None, None).await;
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn a_panicking_handler_is_a_500_and_the_app_keeps_answering() {
        let app = app(false);
        let (status, body) = call(&app, "/panic").await;
        assert_eq!(status, 500);
        assert!(!body["detail"].as_str().unwrap().contains("blew up"));
        let (status, body) = call(&app, "/echo/7").await;
        assert_eq!((status, body), (StatusCode::OK, json!([7])));
        assert_eq!(app.in_flight(), 0);
    }

    #[tokio::test]
    async fn fault_details_are_shown_only_in_debug_mode() {
        let (_, quiet) = call(&app(false), "/fails").await;
        assert!(!quiet["detail"].as_str().unwrap().contains("Traceback"));
        let (_, loud) = call(&app(true), "/panic").await;
        assert!(loud["detail"].as_str().unwrap().contains("blew up"));
        let (status, loud) = call(&app(true), "/fails").await;
        assert_eq!(status, 500);
        assert_eq!(loud["detail"], "Traceback: boom");
    }

    #[tokio::test]
    async fn parameters_reach_the_handler_coerced() {
        let (status, body) = call(&app(false), "/echo/12").await;
        assert_eq!((status, body), (StatusCode::OK, json!([12])));
        let (status, body) = call(&app(false), "/echo/x").await;
        assert_eq!(status, 422);
        assert_eq!(body["errors"][0]["loc"], json!(["path", "n"]));
    }
}
