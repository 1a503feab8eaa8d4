//! The request pipeline: match the route, extract and validate parameters and
//! body, call the handler, and turn every failure into a problem response.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt;

use http::request::Parts;
use http::{Method, Request, Response, StatusCode};

use crate::access_log::{AccessLog, AccessRecord};
use crate::body;
use crate::handler::{Fallback, HandlerFuture, InvalidRequest, RequestData, ResponseBody};
use crate::params::{self, RawInputs};
use crate::problem::{allow_list, Problem};
use crate::remote::{ProxyTrust, Remote};
use crate::router::{Lookup, Router};

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
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            max_body_size: 10 * 1024 * 1024,
            debug: false,
            proxy: None,
            body_stall: Some(Duration::from_secs(10)),
        }
    }
}

/// The status logged for a request whose client left before the answer.
const CLIENT_CLOSED_REQUEST: u16 = 499;

/// One request being handled: counted in flight, and logged, until it ends,
/// answered or dropped because its client went away.
struct Handling<'a> {
    app: &'a App,
    logged: Option<(&'a AccessLog, AccessRecord, Instant)>,
}

impl<'a> Handling<'a> {
    fn begin(app: &'a App, logged: Option<(&'a AccessLog, AccessRecord)>) -> Self {
        app.in_flight.fetch_add(1, Ordering::Relaxed);
        Handling {
            app,
            logged: logged.map(|(log, record)| (log, record, Instant::now())),
        }
    }

    fn answered(&mut self, status: StatusCode) {
        if let Some((_, record, _)) = &mut self.logged {
            record.status = status.as_u16();
        }
    }
}

impl Drop for Handling<'_> {
    fn drop(&mut self) {
        self.app.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.app.served.fetch_add(1, Ordering::Relaxed);
        if let Some((log, mut record, started)) = self.logged.take() {
            record.duration = started.elapsed();
            log.record(record);
        }
    }
}

/// Routes plus settings: everything needed to answer a request.
pub struct App {
    router: Router,
    config: AppConfig,
    in_flight: AtomicUsize,
    served: AtomicU64,
    fallback: Option<Arc<dyn Fallback>>,
    access_log: Option<Arc<AccessLog>>,
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
        }
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

    /// Requests being answered right now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Answers one request from `peer` (`None`: a connection without an
    /// address, such as a Unix socket). Never fails: a panic anywhere below
    /// becomes a 500.
    pub async fn handle<B>(
        &self,
        request: Request<B>,
        peer: Option<SocketAddr>,
    ) -> Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let remote = match &self.config.proxy {
            Some(trust) => trust.resolve(peer, request.headers()),
            None => Remote::direct(peer),
        };
        let logged = self.access_log.as_deref().map(|log| {
            let record = AccessRecord {
                client: remote.client.clone(),
                method: request.method().clone(),
                target: request.uri().path_and_query().map_or_else(
                    || request.uri().path().to_owned(),
                    |pq| pq.as_str().to_owned(),
                ),
                version: request.version(),
                // Kept if the client leaves before the answer (nginx's code for it).
                status: CLIENT_CLOSED_REQUEST,
                duration: Duration::ZERO,
            };
            (log, record)
        });
        let mut handling = Handling::begin(self, logged);
        let outcome = AssertUnwindSafe(self.dispatch(request, remote))
            .catch_unwind()
            .await;
        let response = match outcome {
            Ok(response) => response,
            // The panic hook has already printed the message and location.
            Err(panic) => {
                Problem::internal(self.config.debug.then(|| panic_message(&*panic))).into_response()
            }
        };
        handling.answered(response.status());
        response
    }

    async fn dispatch<B>(&self, request: Request<B>, remote: Remote) -> Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (head, body) = request.into_parts();
        let mut errors = Vec::new();
        let (route, mut args, path_values) = match self.router.lookup(&head.method, head.uri.path())
        {
            Lookup::Found { route, path_values } => {
                let mut args = Vec::with_capacity(route.params.len());
                let inputs = RawInputs {
                    path: &path_values,
                    query: head.uri.query(),
                    headers: &head.headers,
                };
                params::extract(&route.params, &inputs, &mut args, &mut errors);
                (route, args, path_values)
            }
            Lookup::Options(allowed) => return options_response(&allowed),
            Lookup::MethodNotAllowed(allowed) => {
                return self
                    .unrouted(head, remote, StatusCode::METHOD_NOT_ALLOWED, &allowed)
                    .await
            }
            Lookup::NotFound => {
                return self
                    .unrouted(head, remote, StatusCode::NOT_FOUND, &[])
                    .await
            }
        };
        let (limit, stall) = (self.config.max_body_size, self.config.body_stall);
        let (body, raw_body) = match &route.body {
            Some(spec) => match spec
                .read(&head.headers, body, limit, stall, &mut errors)
                .await
            {
                Ok(Some(read)) => (Some(read.value), Some(read.raw)),
                Ok(None) => (None, None),
                Err(problem) => return problem.into_response(),
            },
            None if route.wants_request => {
                match body::read_raw(&head.headers, body, limit, stall).await {
                    Ok(raw) => (None, Some(raw)),
                    Err(problem) => return problem.into_response(),
                }
            }
            None => (None, None),
        };
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
                Ok(answer) => self.answer(answer).await,
                Err(errors) => Problem::validation(errors).into_response(),
            };
        }
        args.shrink_to_fit();
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
        };
        self.answer(route.handler.call(request)).await
    }

    /// A request no route takes: the app's fallback, or the standard problem.
    async fn unrouted(
        &self,
        head: Parts,
        remote: Remote,
        status: StatusCode,
        allowed: &[Method],
    ) -> Response<ResponseBody> {
        let problem = if status == StatusCode::METHOD_NOT_ALLOWED {
            Problem::method_not_allowed(&head.method, allowed)
        } else {
            Problem::not_found(head.uri.path())
        };
        match &self.fallback {
            Some(fallback) => match fallback.answer(head, remote, status, allowed) {
                Some(answer) => self.answer(answer).await,
                None => problem.into_response(),
            },
            None => problem.into_response(),
        }
    }

    async fn answer(&self, handled: HandlerFuture) -> Response<ResponseBody> {
        match handled.await {
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

    fn app(debug: bool) -> App {
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
        App::new(
            routes.build().unwrap(),
            AppConfig {
                debug,
                ..AppConfig::default()
            },
        )
    }

    async fn call(app: &App, path: &str) -> (StatusCode, Value) {
        let request = Request::get(path).body(Full::new(Bytes::new())).unwrap();
        let response = app.handle(request, None).await;
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
