//! Open connections: their timeouts, and how they end at shutdown.
//!
//! Each connection is in one of three phases, and a watchdog closes it when a
//! phase lasts too long:
//! - *idle*, between a response and the first byte of the next request: closed
//!   gracefully after the keep-alive timeout;
//! - *reading a head*, from accept or from that first byte until the request
//!   head is complete: dropped after the header-read timeout (slow or silent
//!   clients hold no connection for long);
//! - *busy* serving requests: no timeout here.
//!
//! hyper has one timer for the first two together, so its own is off and this
//! one is used; the phases cost a few atomic operations per request. On HTTP/2
//! bytes arrive between requests for the connection itself (pings, window
//! updates), so there only a new stream ends idleness.
//!
//! At shutdown every connection finishes the request it is serving and closes.
//! A connection that has not begun its first request yet gets a moment to do
//! so: its client has just connected, and its request may already be on the
//! wire; closing it then would lose a request the client has every reason to
//! think was accepted (a fresh connection is not retried the way a reused
//! keep-alive connection is).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// How long a connection accepted just before shutdown may take to begin its
/// first request.
pub const FIRST_REQUEST_GRACE: Duration = Duration::from_millis(1000);

/// How often a connection's watchdog looks again, at most.
const MAX_RECHECK: Duration = Duration::from_secs(1);

/// How long an idle connection told to close may take to do so (an HTTP/2
/// client answering the server's last ping) before it is dropped.
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(5);

/// What an HTTP/2 connection begins with.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// How long each phase may last; `None`: for ever.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timeouts {
    pub keep_alive: Option<Duration>,
    pub header_read: Option<Duration>,
}

/// The open connections of one server and the shutdown signal they watch.
pub struct Connections {
    open: AtomicUsize,
    all_closed: Notify,
    stop: watch::Sender<bool>,
}

const IDLE: u8 = 0;
const READING_HEAD: u8 = 1;
const BUSY: u8 = 2;

/// What one connection is doing, shared by its reader, its service and its
/// watchdog.
pub struct Activity {
    opened: Instant,
    phase: AtomicU8,
    /// When the current phase began, in nanoseconds since `opened`.
    since: AtomicU64,
    /// Requests begun, and requests being served.
    begun: AtomicUsize,
    serving: AtomicUsize,
    first_begun: Notify,
    http2: AtomicBool,
}

/// Held by a request while it is served; marks the connection idle when the
/// last one ends (or is dropped because its client went away).
pub struct Serving(Arc<Activity>);

impl Drop for Serving {
    fn drop(&mut self) {
        let activity = &self.0;
        if activity.serving.fetch_sub(1, Ordering::Relaxed) == 1 {
            activity.enter(IDLE);
        }
    }
}

impl Activity {
    /// A connection just accepted: its first request head is awaited.
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            opened: Instant::now(),
            phase: AtomicU8::new(READING_HEAD),
            since: AtomicU64::new(0),
            begun: AtomicUsize::new(0),
            serving: AtomicUsize::new(0),
            first_begun: Notify::new(),
            http2: AtomicBool::new(false),
        })
    }

    fn enter(&self, phase: u8) {
        let elapsed = self.opened.elapsed().as_nanos() as u64;
        self.since.store(elapsed, Ordering::Relaxed);
        self.phase.store(phase, Ordering::Relaxed);
    }

    /// A request head was read and its service called.
    pub fn begin(self: &Arc<Self>) -> Serving {
        self.serving.fetch_add(1, Ordering::Relaxed);
        self.phase.store(BUSY, Ordering::Relaxed);
        // Only the first request matters to a shutdown waiting on it.
        if self.begun.fetch_add(1, Ordering::Relaxed) == 0 {
            self.first_begun.notify_waiters();
        }
        Serving(self.clone())
    }

    fn bytes_arrived(&self) {
        if self.phase.load(Ordering::Relaxed) == IDLE && !self.http2.load(Ordering::Relaxed) {
            self.enter(READING_HEAD);
        }
    }

    /// When the current phase runs out, if it can.
    fn deadline(&self, timeouts: &Timeouts) -> Option<Instant> {
        let limit = match self.phase.load(Ordering::Relaxed) {
            IDLE => timeouts.keep_alive?,
            READING_HEAD => timeouts.header_read?,
            _ => return None,
        };
        let since = Duration::from_nanos(self.since.load(Ordering::Relaxed));
        Some(self.opened + since + limit)
    }

    async fn first(&self) {
        loop {
            let changed = self.first_begun.notified();
            tokio::pin!(changed);
            // Registered before the check, so a `begin` in between is not missed.
            changed.as_mut().enable();
            if self.begun.load(Ordering::Relaxed) > 0 {
                return;
            }
            changed.await;
        }
    }
}

/// A connection's byte stream, telling its [`Activity`] when bytes arrive.
pub struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
    first_read: bool,
}

impl<S> Watched<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Watched {
            inner,
            activity,
            first_read: true,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            if self.first_read {
                self.first_read = false;
                if buf.filled()[before..].starts_with(H2_PREFACE) {
                    self.activity.http2.store(true, Ordering::Relaxed);
                }
            }
            self.activity.bytes_arrived();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What [`Connections::serve`] needs of a connection: hyper's graceful shutdown.
pub trait GracefulConnection: Future + Send {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S, E> GracefulConnection for hyper_util::server::conn::auto::Connection<'_, I, S, E>
where
    Self: Future + Send,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: http_body::Body + Send + 'static,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, S::ResBody>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper_util::server::conn::auto::Connection::graceful_shutdown(self);
    }
}

/// Why the watchdog stopped watching.
enum Ending {
    Closed,
    Idle,
    HeadTimedOut,
    ShuttingDown,
}

impl Connections {
    pub fn new() -> Arc<Self> {
        Arc::new(Connections {
            open: AtomicUsize::new(0),
            all_closed: Notify::new(),
            stop: watch::channel(false).0,
        })
    }

    /// How many connections are open.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Counts a connection just accepted, before its task runs, so that a
    /// shutdown starting in between waits for it.
    pub fn admit(&self) {
        self.open.fetch_add(1, Ordering::AcqRel);
    }

    /// Serves one [admitted](Self::admit) connection to its end: closed by its
    /// client, by a timeout, or at shutdown as described above.
    pub async fn serve<C>(
        self: Arc<Self>,
        connection: C,
        activity: Arc<Activity>,
        timeouts: Timeouts,
    ) where
        C: GracefulConnection,
    {
        let mut stop = self.stop.subscribe();
        tokio::pin!(connection);
        // Looking again at least this often catches every phase change before
        // the new phase's deadline, which is never nearer than this.
        let recheck = [timeouts.keep_alive, timeouts.header_read]
            .into_iter()
            .flatten()
            .filter(|t| !t.is_zero())
            .fold(MAX_RECHECK, Duration::min);
        let ending = loop {
            let next_look = Instant::now() + recheck;
            let wake = activity
                .deadline(&timeouts)
                .map_or(next_look, |deadline| deadline.min(next_look));
            let stopping = async { stop.wait_for(|stopping| *stopping).await.is_ok() };
            tokio::select! {
                _ = connection.as_mut() => break Ending::Closed,
                true = stopping => break Ending::ShuttingDown,
                () = tokio::time::sleep_until(wake) => {
                    match activity.deadline(&timeouts) {
                        Some(deadline) if deadline <= Instant::now() => {
                            break if activity.phase.load(Ordering::Relaxed) == IDLE {
                                Ending::Idle
                            } else {
                                Ending::HeadTimedOut
                            };
                        }
                        _ => continue,
                    }
                }
            }
        };
        match ending {
            Ending::Closed | Ending::HeadTimedOut => {}
            Ending::Idle => {
                // Between requests: hyper closes at once (or, on HTTP/2, tells
                // the client to go away and finishes what is open).
                connection.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(IDLE_CLOSE_GRACE, connection).await;
            }
            Ending::ShuttingDown => {
                let first = async {
                    tokio::time::timeout(FIRST_REQUEST_GRACE, activity.first())
                        .await
                        .ok();
                };
                let ended = tokio::select! {
                    _ = connection.as_mut() => true,
                    () = first => false,
                };
                if !ended {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        }
        if self.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.all_closed.notify_waiters();
        }
    }

    /// Tells every connection to finish and close; resolves when all have.
    pub async fn shut_down(&self) {
        let closed = self.all_closed.notified();
        tokio::pin!(closed);
        closed.as_mut().enable();
        self.stop.send_replace(true);
        if self.open.load(Ordering::Acquire) > 0 {
            closed.await;
        }
    }
}
