//! Open connections: their timeouts, and how they end at shutdown.
//!
//! A watchdog beside each connection ends it when a phase lasts too long (see
//! [`crate::watchdog`]): an idle connection is closed gracefully after the
//! keep-alive timeout; one whose request head is slow, or whose response makes
//! no progress for the write timeout, is dropped (slow or silent clients hold
//! no connection for long). A handler at work has no limit here.
//!
//! hyper has one timer for idle time and head reads together, and none for
//! writes, so its own is off and this one is used; the phases cost a few
//! atomic operations per request. On HTTP/2 bytes arrive between requests for
//! the connection itself (pings, window updates), so there only a new stream
//! ends idleness.
//!
//! At shutdown every connection finishes the request it is serving and closes.
//! An HTTP/1 connection between requests (or before its first) is not closed
//! at once: its client may be sending its next request right now, and a close
//! crossing it on the wire loses that request (a reset, which clients other
//! than browsers do not retry). It gets a moment to begin one, which is
//! answered with `Connection: close`; only a connection that stays quiet
//! through that moment is closed idle. (HTTP/2 needs none of this: its
//! GOAWAY tells the client which streams were taken.)

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::activity::{Activity, Phase};
use crate::refusal::LINGER;
use crate::watchdog::{Expired, Timeouts, Watch};

/// How long a connection between requests at shutdown may take to begin its
/// next (or first) one.
pub const NEXT_REQUEST_GRACE: Duration = Duration::from_millis(1000);

/// How long a 408 may take to be written, beyond the lingering after it.
const HEAD_ANSWER_GRACE: Duration = Duration::from_secs(1);

/// How long an idle connection told to close may take to do so (an HTTP/2
/// client answering the server's last ping) before it is dropped.
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The open connections of one server and the shutdown signal they watch.
pub struct Connections {
    open: AtomicUsize,
    all_closed: Notify,
    stop: watch::Sender<bool>,
    /// Rung when a client waits at the connection limit; `wanted` idle
    /// connections may close to make room for it.
    reclaim: Notify,
    wanted: AtomicUsize,
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

/// How a connection's watch ended.
enum Ending {
    Closed,
    Expired(Expired),
    ShuttingDown,
}

/// Polls `connection` until it ends or its watchdog ends it; an idle one also
/// ends (as [`Expired::Idle`]) when it is claimed to make room for a client
/// waiting at the connection limit.
async fn watched<C: Future>(
    mut connection: Pin<&mut C>,
    activity: &Activity,
    watch: &mut Watch,
    connections: &Connections,
) -> Option<Expired> {
    loop {
        let wake = match watch.look(activity, Instant::now()) {
            Ok(wake) => wake,
            Err(expired) => return Some(expired),
        };
        tokio::select! {
            _ = connection.as_mut() => return None,
            () = tokio::time::sleep_until(wake) => {
                if activity.phase() == Phase::Busy && !activity.http2() && activity.client_reset() {
                    return Some(Expired::Gone);
                }
            }
            () = connections.reclaim.notified() => {
                if activity.phase() == Phase::Idle && connections.claim() {
                    return Some(Expired::Idle);
                }
            }
        }
    }
}

impl Connections {
    pub fn new() -> Arc<Self> {
        Arc::new(Connections {
            open: AtomicUsize::new(0),
            all_closed: Notify::new(),
            stop: watch::channel(false).0,
            reclaim: Notify::new(),
            wanted: AtomicUsize::new(0),
        })
    }

    /// A client waits at the connection limit: one idle connection (between
    /// requests) closes, gracefully, to make room for it.
    pub fn reclaim_idle(&self) {
        self.wanted.store(1, Ordering::Release);
        self.reclaim.notify_waiters();
    }

    /// Whether this idle connection is the one to close (at most `wanted` are).
    fn claim(&self) -> bool {
        self.wanted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| w.checked_sub(1))
            .is_ok()
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
        let mut watch = Watch::new(timeouts);
        let ending = tokio::select! {
            expired = watched(connection.as_mut(), &activity, &mut watch, &self) => {
                expired.map_or(Ending::Closed, Ending::Expired)
            }
            Ok(_) = stop.wait_for(|stopping| *stopping) => Ending::ShuttingDown,
        };
        let expired = match ending {
            Ending::Closed => None,
            Ending::Expired(expired) => Some(expired),
            Ending::ShuttingDown => {
                let begun = activity.begun();
                // A handler at work: its response is not begun, and hyper
                // marks it `Connection: close`. A response already on its way
                // went out as keep-alive: the client may send another
                // request on it, which is the one to close with.
                let quiet = match activity.phase() {
                    Phase::Busy => false,
                    // GOAWAY closes an HTTP/2 connection without a race.
                    Phase::Idle | Phase::ReadingHead | Phase::Writing => {
                        !(activity.http2() && begun > 0)
                    }
                };
                let next = async {
                    if quiet {
                        tokio::time::timeout(NEXT_REQUEST_GRACE, activity.request_after(begun))
                            .await
                            .ok();
                    }
                };
                let ended = tokio::select! {
                    _ = connection.as_mut() => true,
                    () = next => false,
                };
                if ended {
                    None
                } else {
                    // hyper finishes what it serves and closes; the watchdog
                    // still cuts a stalled write or a slow head meanwhile.
                    connection.as_mut().graceful_shutdown();
                    watched(connection.as_mut(), &activity, &mut watch, &self).await
                }
            }
        };
        if expired == Some(Expired::Head) && !activity.http2() {
            // The client gets its 408 (if any of the head arrived) and a
            // moment to read it before the connection is dropped.
            activity.expire_head();
            let _ = tokio::time::timeout(LINGER + HEAD_ANSWER_GRACE, connection.as_mut()).await;
        }
        if expired == Some(Expired::Idle) {
            // Between requests: hyper closes at once (or, on HTTP/2, tells the
            // client to go away and finishes what is open). Nothing written is
            // lost: the watchdog never finds a connection idle while output is
            // pending, and hyper flushes before it shuts the socket down.
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(IDLE_CLOSE_GRACE, connection).await;
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
