//! Open connections and how they end at shutdown.
//!
//! At shutdown every connection finishes the request it is serving and closes.
//! A connection that has not begun its first request yet gets a moment to do
//! so: its client has just connected, and its request may already be on the
//! wire; closing it then would lose a request the client has every reason to
//! think was accepted (a fresh connection is not retried the way a reused
//! keep-alive connection is).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

/// How long a connection accepted just before shutdown may take to begin its
/// first request.
pub const FIRST_REQUEST_GRACE: Duration = Duration::from_millis(1000);

/// The open connections of one server and the shutdown signal they watch.
pub struct Connections {
    open: AtomicUsize,
    all_closed: Notify,
    stop: watch::Sender<bool>,
}

/// A connection's count of requests begun, shared with its service.
#[derive(Default)]
pub struct RequestsBegun {
    count: AtomicUsize,
    changed: Notify,
}

impl RequestsBegun {
    pub fn begin(&self) {
        // Only the first request matters to a shutdown waiting on it.
        if self.count.fetch_add(1, Ordering::Relaxed) == 0 {
            self.changed.notify_waiters();
        }
    }

    async fn first(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so a `begin` in between is not missed.
            changed.as_mut().enable();
            if self.count.load(Ordering::Relaxed) > 0 {
                return;
            }
            changed.await;
        }
    }
}

/// What [`Connections::serve`] needs of a connection: hyper's graceful shutdown.
pub trait GracefulConnection: Future + Send {
    fn graceful_shutdown(self: std::pin::Pin<&mut Self>);
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
    fn graceful_shutdown(self: std::pin::Pin<&mut Self>) {
        hyper_util::server::conn::auto::Connection::graceful_shutdown(self);
    }
}

impl Connections {
    pub fn new() -> Arc<Self> {
        Arc::new(Connections {
            open: AtomicUsize::new(0),
            all_closed: Notify::new(),
            stop: watch::channel(false).0,
        })
    }

    /// Serves one connection to its end, or at shutdown as described above.
    pub async fn serve<C>(self: Arc<Self>, connection: C, begun: Arc<RequestsBegun>)
    where
        C: GracefulConnection,
    {
        self.open.fetch_add(1, Ordering::AcqRel);
        let mut stop = self.stop.subscribe();
        tokio::pin!(connection);
        let stopping = async { stop.wait_for(|stopping| *stopping).await.is_ok() };
        let ended = tokio::select! {
            _ = connection.as_mut() => true,
            stopping = stopping => !stopping,
        };
        if !ended {
            let first = async {
                tokio::time::timeout(FIRST_REQUEST_GRACE, begun.first())
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
