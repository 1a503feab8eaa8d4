//! The server: accepts connections on a listener it is given, serves them with
//! hyper-util's connection builder (HTTP/1.1 and HTTP/2), and shuts down
//! gracefully.
//!
//! The listener is bound by the caller, so that a socket bound once by a
//! supervisor, or handed in as a file descriptor, is served the same way.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::app::App;
use crate::connections::{Connections, RequestsBegun};

/// Connection settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// A client must send a complete request head within this time.
    pub header_read_timeout: Duration,
    /// After shutdown starts, in-flight requests get this long to finish.
    pub graceful_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            header_read_timeout: Duration::from_secs(30),
            graceful_timeout: Duration::from_secs(30),
        }
    }
}

/// How serving ended.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ServeReport {
    /// Requests still unanswered when the grace period ran out.
    pub cut_requests: usize,
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting
/// and lets open connections finish within the grace period.
pub async fn serve<F>(
    listener: TcpListener,
    app: Arc<App>,
    config: &ServerConfig,
    shutdown: F,
) -> ServeReport
where
    F: Future<Output = ()>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let connections = Connections::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Responses are small and written whole: send them now.
                    let _ = stream.set_nodelay(true);
                    let app = app.clone();
                    let builder = builder.clone();
                    let connections = connections.clone();
                    tokio::spawn(async move {
                        let begun = Arc::new(RequestsBegun::default());
                        let counted = begun.clone();
                        let service = service_fn(move |request| {
                            counted.begin();
                            let app = app.clone();
                            async move { Ok::<_, Infallible>(app.handle(request, Some(peer)).await) }
                        });
                        // A connection error (a client gone mid-request, a bad
                        // request head hyper already answered) ends only that
                        // connection.
                        let connection = builder.serve_connection(TokioIo::new(stream), service);
                        connections.serve(connection, begun).await;
                    });
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off briefly
                    // rather than spin, and keep serving.
                    eprintln!("spikard: accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    // New connections are refused from here on (when no other process holds
    // the socket); open ones finish what they serve.
    drop(listener);
    match tokio::time::timeout(config.graceful_timeout, connections.shut_down()).await {
        Ok(()) => ServeReport::default(),
        Err(_) => ServeReport {
            cut_requests: app.in_flight(),
        },
    }
}
