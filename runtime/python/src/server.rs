//! `Server`: serves route plans on a listening socket (TCP or Unix) handed in
//! as a file descriptor, on the calling thread, until `shutdown()` or a stop
//! signal.

use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use spikard_http::{
    AccessLog, App, AppConfig, Notice, Peers, ProxyTrust, RouterBuilder, ServerConfig, StageStats,
};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, Notify};

use crate::access;

use crate::bridge::{drive_loop, Bridge, ServeContext};
use crate::failures::PythonFallback;
use crate::handler::PythonHandler;
use crate::plan::RoutePlan;
use crate::stats;

/// `spikard._server.ServeOptions`
#[derive(FromPyObject)]
pub struct ServeOptions {
    pub debug: bool,
    pub max_body_size: usize,
    pub graceful_timeout: f64,
    /// Seconds for a request head to arrive (0: no limit).
    pub header_read_timeout: f64,
    /// Seconds an idle keep-alive connection stays open (0: no keep-alive).
    pub keep_alive: f64,
    /// Seconds a response being written may make no progress (0: no limit).
    pub write_timeout: f64,
    /// Open connections at most (0: no limit).
    pub max_connections: usize,
    /// Bytes a request head may take at most (431 past it).
    pub max_head_size: usize,
    /// After this many requests, `on_max_requests` is called (0: never).
    pub max_requests: u64,
    /// Record each request for `context.write_access`.
    pub access_log: bool,
    /// Believe `Forwarded` / `X-Forwarded-*` from `forwarded_allow_ips`.
    pub proxy_headers: bool,
    pub forwarded_allow_ips: String,
    /// The supervisor's table of connections per worker (a memory file), and
    /// this worker's slot in it; -1 when the socket is not shared.
    pub peers_fd: RawFd,
    pub peer_slot: usize,
    /// Send each request's stage times in a `Server-Timing` header.
    pub server_timing: bool,
    /// Record stage statistics for `spikard.stats`.
    pub stage_stats: bool,
    /// Show each request's stage times in its access line.
    pub access_log_stages: bool,
    /// Keep the statistics in a file in this directory, for the supervisor
    /// ("": in this process only).
    pub stats_dir: String,
}

impl ServeOptions {
    fn server_config(&self, warn: Py<PyAny>) -> PyResult<ServerConfig> {
        let seconds = |s: f64| (s > 0.0).then(|| Duration::from_secs_f64(s));
        let peers = if self.peers_fd >= 0 {
            let table = std::fs::File::from(duplicate(self.peers_fd)?);
            let peers = Peers::open(&table, self.peer_slot)
                .map_err(|e| PyOSError::new_err(format!("the workers' table: {e}")))?;
            Some(Arc::new(peers))
        } else {
            None
        };
        Ok(ServerConfig {
            peers,
            header_read_timeout: seconds(self.header_read_timeout),
            keep_alive: Some(seconds(self.keep_alive).unwrap_or(Duration::ZERO)),
            write_timeout: seconds(self.write_timeout),
            max_connections: self.max_connections,
            max_head_size: self.max_head_size,
            graceful_timeout: Duration::from_secs_f64(self.graceful_timeout),
            warn: Arc::new(move |message| {
                Python::attach(|py| {
                    if let Err(error) = warn.call1(py, (message,)) {
                        error.print(py);
                    }
                })
            }),
        })
    }
}

/// The listening socket, before the runtime that will poll it exists.
enum StdListener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

#[pyclass(module = "spikard._spikard", frozen)]
pub struct Server {
    stop: Arc<Notify>,
    notice: Arc<Notice>,
}

const SIGINT: u8 = 2;
const SIGTERM: u8 = 15;

fn duplicate(fd: RawFd) -> PyResult<OwnedFd> {
    // The caller keeps its own descriptor; we serve on a duplicate.
    unsafe { BorrowedFd::borrow_raw(fd) }
        .try_clone_to_owned()
        .map_err(|e| PyOSError::new_err(format!("file descriptor {fd}: {e}")))
}

/// Counts SIGINT/SIGTERM as Python's signal wake-up descriptor reports them.
async fn count_stop_signals(fd: OwnedFd, count: watch::Sender<usize>) {
    let stream = std::os::unix::net::UnixStream::from(fd);
    let stream = match stream
        .set_nonblocking(true)
        .and_then(|()| tokio::net::UnixStream::from_std(stream))
    {
        Ok(stream) => stream,
        Err(error) => {
            eprintln!("spikard: cannot watch for signals: {error}");
            return;
        }
    };
    let mut buffer = [0u8; 64];
    loop {
        if stream.readable().await.is_err() {
            return;
        }
        match stream.try_read(&mut buffer) {
            Ok(0) => return,
            Ok(n) => {
                let stops = buffer[..n]
                    .iter()
                    .filter(|&&s| s == SIGINT || s == SIGTERM)
                    .count();
                if stops > 0 {
                    count.send_modify(|c| *c += stops);
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// Calls `callback` once `app` has answered `limit` requests.
async fn report_request_limit(app: Arc<App>, limit: u64, callback: Py<PyAny>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while app.served() < limit {
        tick.tick().await;
    }
    Python::attach(|py| {
        if let Err(error) = callback.call0(py) {
            error.print(py);
        }
    });
}

async fn reached(mut count: watch::Receiver<usize>, at_least: usize) {
    if count.wait_for(|c| *c >= at_least).await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[pymethods]
impl Server {
    #[new]
    fn new() -> Self {
        Server {
            stop: Arc::new(Notify::new()),
            notice: Arc::new(Notice::default()),
        }
    }

    /// Serves on the listening socket `fd` (a Unix socket when `unix`), which it
    /// takes over (and closes as soon as shutdown starts), until `shutdown()` is called or, when
    /// `signal_fd` is given (the read end of Python's signal wake-up
    /// descriptor), SIGINT/SIGTERM arrives; a second one stops at once. `ready`
    /// is called once connections are being accepted, `on_max_requests` once
    /// `options.max_requests` requests have been answered. Returns how many
    /// requests were cut short.
    #[pyo3(signature = (routes, fd, context, options, signal_fd=None, ready=None, on_max_requests=None, unix=false))]
    #[allow(clippy::too_many_arguments)]
    fn serve(
        &self,
        py: Python<'_>,
        routes: Vec<RoutePlan>,
        fd: RawFd,
        context: ServeContext,
        options: ServeOptions,
        signal_fd: Option<RawFd>,
        ready: Option<Py<PyAny>>,
        on_max_requests: Option<Py<PyAny>>,
        unix: bool,
    ) -> PyResult<usize> {
        // SAFETY: the caller hands the descriptor over (`socket.detach()`); from
        // here on it is ours alone, and closed when this owner is dropped.
        let listener_fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let listener = if unix {
            let listener = std::os::unix::net::UnixListener::from(listener_fd);
            listener.set_nonblocking(true)?;
            StdListener::Unix(listener)
        } else {
            let listener = std::net::TcpListener::from(listener_fd);
            listener.set_nonblocking(true)?;
            StdListener::Tcp(listener)
        };
        let proxy = options
            .proxy_headers
            .then(|| ProxyTrust::parse(&options.forwarded_allow_ips))
            .transpose()
            .map_err(|e| PyValueError::new_err(format!("forwarded_allow_ips: {e}")))?;
        let ServeContext {
            bridge: asyncio,
            answers,
            log,
        } = context;
        let config = options.server_config(log.warn.clone_ref(py))?;
        let access_sink = access::AccessSink {
            console: log.access_console,
            records: log.write_access,
        };
        let access_task_sink = access_sink.clone_ref(py);
        let selector_fd: RawFd = asyncio
            .event_loop
            .bind(py)
            .call_method0("selector_fd")?
            .extract()?;
        let bridge = Arc::new(Bridge::new(py, asyncio, answers, log.warn)?);
        let mut builder = RouterBuilder::new();
        for plan in &routes {
            let (spec, handler) = plan.split(py)?;
            builder
                .route(spec, Arc::new(PythonHandler::new(handler, bridge.clone())))
                .map_err(PyValueError::new_err)?;
        }
        let router = builder.build().map_err(PyValueError::new_err)?;
        let mut app = App::new(
            router,
            AppConfig {
                max_body_size: options.max_body_size,
                debug: options.debug,
                proxy,
                body_stall: (options.header_read_timeout > 0.0)
                    .then(|| Duration::from_secs_f64(options.header_read_timeout)),
                server_timing: options.server_timing,
                access_log_stages: options.access_log_stages,
            },
        );
        if options.stage_stats {
            let templates = app.router().templates().to_vec();
            let recorded = if options.stats_dir.is_empty() {
                StageStats::new(templates)
            } else {
                StageStats::create(&stats::own_file(options.stats_dir.as_ref()), templates)
            }
            .map_err(|e| PyOSError::new_err(format!("cannot map the statistics: {e}")))?;
            let recorded = Arc::new(recorded);
            stats::publish(recorded.clone());
            app = app.with_stats(recorded);
        }
        let access_log = options
            .access_log
            .then(|| Arc::new(AccessLog::new(access::BATCH)));
        if let Some(log) = &access_log {
            app = app.with_access_log(log.clone());
        }
        if bridge.answers.for_status.is_some() {
            app = app.with_fallback(Arc::new(PythonFallback {
                bridge: bridge.clone(),
            }));
        }
        let app = Arc::new(app.with_notice(self.notice.clone()));
        let signals = signal_fd.map(duplicate).transpose()?;
        crate::alloc::give_freed_memory_back();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| PyOSError::new_err(format!("cannot start the runtime: {e}")))?;
        let stop = self.stop.clone();
        let cut = py.detach(move || {
            runtime.block_on(async move {
                tokio::spawn(drive_loop(bridge, selector_fd));
                if let Some(log) = &access_log {
                    tokio::spawn(access::keep_writing(log.clone(), access_task_sink));
                }
                if let (Some(callback), limit @ 1..) = (on_max_requests, options.max_requests) {
                    tokio::spawn(report_request_limit(app.clone(), limit, callback));
                }
                if let Some(ready) = ready {
                    Python::attach(|py| ready.call0(py).map(drop))
                        .map_err(std::io::Error::other)?;
                }
                let (count, counted) = watch::channel(0usize);
                if let Some(fd) = signals {
                    tokio::spawn(count_stop_signals(fd, count));
                }
                let first = reached(counted.clone(), 1);
                let shutdown = async move {
                    tokio::select! {
                        () = stop.notified() => {}
                        () = first => {}
                    }
                };
                let in_flight = app.clone();
                let served = async move {
                    let report = match listener {
                        StdListener::Tcp(l) => {
                            let l = TcpListener::from_std(l)?;
                            spikard_http::serve(l, app, &config, shutdown).await
                        }
                        StdListener::Unix(l) => {
                            let l = UnixListener::from_std(l)?;
                            spikard_http::serve(l, app, &config, shutdown).await
                        }
                    };
                    Ok::<_, std::io::Error>(report.cut_requests)
                };
                let cut = tokio::select! {
                    cut = served => cut,
                    () = reached(counted, 2) => Ok(in_flight.in_flight()),
                };
                // Nothing answered goes unlogged.
                if let Some(log) = &access_log {
                    access::flush(log, &access_sink);
                }
                cut
            })
        })?;
        Ok(cut)
    }

    /// Stops serving: no new connections; in-flight requests finish within the grace period.
    fn shutdown(&self) {
        self.stop.notify_one();
    }

    /// From now on every response carries the header `name: value`, replacing
    /// any set before; `value=None` stops it. Callable from any thread, while
    /// serving or before.
    #[pyo3(signature = (name, value))]
    fn set_notice(&self, name: &str, value: Option<&str>) -> PyResult<()> {
        let header = value
            .map(|value| {
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| PyValueError::new_err(format!("not a header name: {name:?}")))?;
                let value = HeaderValue::from_str(value)
                    .map_err(|_| PyValueError::new_err(format!("not a header value: {value:?}")))?;
                Ok::<_, PyErr>((name, value))
            })
            .transpose()?;
        self.notice.set(header);
        Ok(())
    }
}
