//! The server: accepts connections on a listener it is given (TCP or a Unix
//! socket), serves them with hyper-util's connection builder (HTTP/1.1 and
//! HTTP/2) within a limit on open connections, and shuts down gracefully.
//!
//! The listener is bound by the caller, so that a socket bound once by a
//! supervisor, or handed in as a file descriptor, is served the same way.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::activity::{Activity, Watched};
use crate::app::App;
use crate::connections::Connections;
use crate::delivery::Delivery;
use crate::handler::StreamSlot;
use crate::peers::{Peers, HEARTBEAT};
use crate::watchdog::Timeouts;

/// Says something worth an operator's attention (the binding logs it).
pub type Warn = Arc<dyn Fn(String) + Send + Sync>;

/// Connection settings.
#[derive(Clone)]
pub struct ServerConfig {
    /// A client must send a complete request head within this time of
    /// connecting, or of the first byte of a later request (`None`: no limit).
    pub header_read_timeout: Option<Duration>,
    /// An idle keep-alive connection is closed after this time; zero closes
    /// every connection after one response (`None`: never).
    pub keep_alive: Option<Duration>,
    /// A response being written may make no progress for this long before
    /// its connection is dropped; timed between writes, not over the whole
    /// response (`None`: no limit).
    pub write_timeout: Option<Duration>,
    /// At most this many connections are open at once; past it, new ones wait
    /// in the listen queue (0: no limit).
    pub max_connections: usize,
    /// The most bytes a request head may take (HTTP/1's read buffer, HTTP/2's
    /// header list): a larger one is refused with 431. At least 8 KiB.
    pub max_head_size: usize,
    /// After shutdown starts, in-flight requests get this long to finish.
    pub graceful_timeout: Duration,
    /// The other processes accepting from the same socket, to share connections with.
    pub peers: Option<Arc<Peers>>,
    pub warn: Warn,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            header_read_timeout: Some(Duration::from_secs(10)),
            keep_alive: Some(Duration::from_secs(5)),
            write_timeout: Some(Duration::from_secs(60)),
            max_connections: 0,
            max_head_size: DEFAULT_MAX_HEAD_SIZE,
            graceful_timeout: Duration::from_secs(30),
            peers: None,
            warn: Arc::new(|message| eprintln!("spikard: {message}")),
        }
    }
}

/// How serving ended.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ServeReport {
    /// Requests still unanswered when the grace period ran out.
    pub cut_requests: usize,
}

/// A listening socket the server accepts from.
pub trait Listener: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + AsRawFd + Unpin + Send + 'static;
    /// The next connection and its peer's address, if it has one.
    fn accept(&self)
        -> impl Future<Output = io::Result<(Self::Stream, Option<SocketAddr>)>> + Send;
}

impl Listener for TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept(&self) -> io::Result<(Self::Stream, Option<SocketAddr>)> {
        let (stream, peer) = TcpListener::accept(self).await?;
        // Responses are small and written whole: send them now.
        let _ = stream.set_nodelay(true);
        Ok((stream, Some(peer)))
    }
}

impl Listener for UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept(&self) -> io::Result<(Self::Stream, Option<SocketAddr>)> {
        let (stream, _) = UnixListener::accept(self).await?;
        Ok((stream, None))
    }
}

/// The default bound on a request head: 64 KiB, as nginx's large header
/// buffers allow (hyper's own is about 400 KB per connection).
pub const DEFAULT_MAX_HEAD_SIZE: usize = 64 * 1024;
/// hyper's smallest read buffer.
pub const MIN_MAX_HEAD_SIZE: usize = 8 * 1024;

/// An HTTP/2 connection's streams open at once, and handlers at work at once
/// (see [`StreamSlot`]).
pub const MAX_STREAMS: usize = 100;

/// How often a full connection table is reported while it stays full.
const FULL_REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// How long a process ahead of its peers waits, at most, before accepting anyway
/// (a peer may be too busy to accept), and in which steps it looks again.
const MAX_DEFERRAL: Duration = Duration::from_millis(5);
const DEFERRAL_STEP: Duration = Duration::from_millis(1);

/// How often an idle connection is asked again to make room, while a client
/// that arrived at the connection limit waits.
const RECLAIM_RETRY: Duration = Duration::from_millis(50);

/// What each accepted connection is served with.
struct Spawner {
    app: Arc<App>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    connections: Arc<Connections>,
    peers: Option<Arc<Peers>>,
    timeouts: Timeouts,
    max_head_size: usize,
}

impl Spawner {
    /// Serves `stream` on a task of its own, holding `slot` (of
    /// `--max-connections`) until it closes.
    fn spawn<S>(&self, stream: S, peer: Option<SocketAddr>, slot: OwnedSemaphorePermit)
    where
        S: AsyncRead + AsyncWrite + AsRawFd + Unpin + Send + 'static,
    {
        let connections = self.connections.clone();
        connections.admit();
        let peers = self.peers.clone();
        if let Some(peers) = &peers {
            peers.publish(connections.open());
        }
        let app = self.app.clone();
        let builder = self.builder.clone();
        let (timeouts, max_head_size) = (self.timeouts, self.max_head_size);
        tokio::spawn(async move {
            let activity = Activity::with_timing(app.timed());
            activity.watch_socket(stream.as_raw_fd());
            let service = service(app.clone(), activity.clone(), peer);
            // A connection error (a client gone mid-request, a bad request head
            // answered already) ends only that connection.
            let watched = Watched::new(stream, activity.clone()).with_max_head_size(max_head_size);
            let connection = builder.serve_connection(TokioIo::new(watched), service);
            connections
                .clone()
                .serve(connection, activity.clone(), timeouts)
                .await;
            if let Some((refused, took)) = activity.take_refused() {
                app.refused(peer, &refused, took);
            }
            drop(slot);
            if let Some(peers) = peers {
                peers.publish(connections.open());
            }
        });
    }
}

/// One connection's service: each request handled by `app`, its response
/// wrapped so that it counts as served once written. On HTTP/2 each request
/// holds one of the connection's [`MAX_STREAMS`] handler slots.
fn service(
    app: Arc<App>,
    activity: Arc<Activity>,
    peer: Option<SocketAddr>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = http::Response<Delivery>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<Delivery>, Infallible>> + Send,
> + Clone {
    let slots = Arc::new(Semaphore::new(MAX_STREAMS));
    service_fn(move |mut request: Request<Incoming>| {
        let began = app.timed().then(|| activity.request_began());
        let serving = activity.begin();
        let app = app.clone();
        // Only HTTP/2 requests take a slot (an HTTP/1 connection serves one at a time).
        let slots = (request.version() == http::Version::HTTP_2).then(|| slots.clone());
        async move {
            if let Some(slots) = slots {
                let slot = slots.acquire_owned().await.expect("never closed");
                request.extensions_mut().insert(Arc::new(StreamSlot(slot)));
            }
            let (response, exchange) = app.handle(request, peer, began).await;
            // The request is served when its response has been written, not
            // when it is ready.
            Ok::<_, Infallible>(Delivery::wrap(response, exchange, serving))
        }
    })
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting
/// and lets open connections finish within the grace period.
pub async fn serve<L, F>(
    listener: L,
    app: Arc<App>,
    config: &ServerConfig,
    shutdown: F,
) -> ServeReport
where
    L: Listener,
    F: Future<Output = ()>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let keep_alive = config.keep_alive != Some(Duration::ZERO);
    builder
        .http1()
        .timer(TokioTimer::new())
        // The connection watchdog times head reads and idle time apart.
        .header_read_timeout(None)
        .keep_alive(keep_alive)
        // A client that shuts down its sending side after a complete request
        // (`nc -N`, some proxies) still gets its answer; hyper then reads
        // nothing while a handler works, so the watchdog looks for a client
        // that reset the connection (`Activity::client_reset`).
        .half_close(true)
        .max_buf_size(config.max_head_size.max(MIN_MAX_HEAD_SIZE));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS as u32)
        .max_header_list_size(u32::try_from(config.max_head_size).unwrap_or(u32::MAX));
    let builder = Arc::new(builder);
    let timeouts = Timeouts {
        keep_alive: config.keep_alive,
        header_read: config.header_read_timeout,
        write: config.write_timeout,
    };
    let limit = match config.max_connections {
        0 => Semaphore::MAX_PERMITS,
        n => n.min(Semaphore::MAX_PERMITS),
    };
    let slots = Arc::new(Semaphore::new(limit));
    let mut reported_full: Option<Instant> = None;
    let connections = Connections::new();
    let heartbeat = config.peers.clone().map(|peers| {
        peers.beat();
        peers.publish(0);
        // On this thread: a thread blocked by a handler stops beating, and its
        // peers stop waiting for it.
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                peers.beat();
            }
        })
    });
    let spawner = Spawner {
        app: app.clone(),
        builder,
        connections: connections.clone(),
        peers: config.peers.clone(),
        timeouts,
        max_head_size: config.max_head_size,
    };
    tokio::pin!(shutdown);
    'serving: loop {
        // Past the limit, connections wait in the kernel's listen queue (or are
        // taken by another worker sharing the socket) until one closes here.
        let (slot, arrived) = match slots.clone().try_acquire_owned() {
            Ok(slot) => (slot, None),
            Err(_) => {
                if reported_full.is_none_or(|at| at.elapsed() >= FULL_REPORT_INTERVAL) {
                    reported_full = Some(Instant::now());
                    (config.warn)(format!(
                        "{limit} connections are open, the limit (--max-connections); \
                         idle keep-alive connections are closed to make room for new \
                         clients, which otherwise wait until one closes"
                    ));
                }
                tokio::select! {
                    slot = slots.clone().acquire_owned() => (slot.expect("the semaphore is never closed"), None),
                    // A client arrived while full: it is taken, and an idle
                    // connection is asked to close to make room for it (one at a
                    // time, again until a slot frees).
                    accepted = listener.accept() => {
                        let slot = loop {
                            connections.reclaim_idle();
                            tokio::select! {
                                slot = slots.clone().acquire_owned() => break slot.expect("the semaphore is never closed"),
                                () = tokio::time::sleep(RECLAIM_RETRY) => {}
                                () = &mut shutdown => break 'serving,
                            }
                        };
                        (slot, Some(accepted))
                    }
                    () = &mut shutdown => break,
                }
            }
        };
        let accepted = match arrived {
            Some(accepted) => accepted,
            None => {
                if let Some(peers) = &config.peers {
                    let mut waited = Duration::ZERO;
                    while waited < MAX_DEFERRAL && peers.ahead_of_a_peer(connections.open()) {
                        tokio::select! {
                            () = tokio::time::sleep(DEFERRAL_STEP) => waited += DEFERRAL_STEP,
                            () = &mut shutdown => break 'serving,
                        }
                    }
                }
                tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = &mut shutdown => break,
                }
            }
        };
        match accepted {
            Ok((stream, peer)) => spawner.spawn(stream, peer, slot),
            Err(error) => {
                // Out of file descriptors and the like: back off briefly
                // rather than spin, and keep serving.
                (config.warn)(format!("accepting a connection failed: {error}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    if let Some(heartbeat) = heartbeat {
        heartbeat.abort();
    }
    if let Some(peers) = &config.peers {
        peers.withdraw();
    }
    // New connections are refused from here on (when no other process holds
    // the socket); open ones finish what they serve.
    drop(listener);
    app.drain();
    match tokio::time::timeout(config.graceful_timeout, connections.shut_down()).await {
        Ok(()) => ServeReport::default(),
        Err(_) => ServeReport {
            cut_requests: app.in_flight(),
        },
    }
}
