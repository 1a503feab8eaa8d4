//! The server over real sockets: connection timeouts, the connection limit,
//! Unix sockets, the access log, proxy headers, and responses written whole
//! or cut.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use spikard_http::{
    json_response, AccessLog, AccessRecord, App, AppConfig, ClientAddr, ProxyTrust, RequestData,
    ResponseBody, RouteSpec, RouterBuilder, ServerConfig,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UnixListener, UnixStream};
use tokio::sync::oneshot;

const GET_WHO: &[u8] = b"GET /who?x=1 HTTP/1.1\r\nHost: test\r\n\r\n";
const GET_BIG: &[u8] = b"GET /big HTTP/1.1\r\nHost: test\r\n\r\n";

/// The body of `/big`: more than loopback's socket buffers hold.
const BIG: usize = 16 * 1024 * 1024;

fn app() -> App {
    app_with(AppConfig::default())
}

/// One route, `/who`, answering with the client and scheme it was given.
fn app_with(config: AppConfig) -> App {
    let mut routes = RouterBuilder::new();
    let spec = RouteSpec {
        method: Method::GET,
        path: "/who".into(),
        params: vec![],
        body: None,
        wants_request: false,
    };
    let who = |request: RequestData| async move {
        let client = request.remote.client.map(|c| c.to_string());
        let body = serde_json::json!({"client": client, "scheme": request.remote.scheme.as_str()});
        Ok(json_response(StatusCode::OK, body.to_string().into()))
    };
    routes.route(spec, Arc::new(who)).unwrap();
    let big = Bytes::from((0..BIG).map(|i| i as u8).collect::<Vec<u8>>());
    let spec = RouteSpec {
        method: Method::GET,
        path: "/big".into(),
        params: vec![],
        body: None,
        wants_request: false,
    };
    let big = move |_: RequestData| {
        let body = big.clone();
        async move { Ok(http::Response::new(ResponseBody::new(body))) }
    };
    routes.route(spec, Arc::new(big)).unwrap();
    App::new(routes.build().unwrap(), config)
}

fn config(keep_alive: f64, header_read: f64, max_connections: usize) -> ServerConfig {
    ServerConfig {
        keep_alive: Some(Duration::from_secs_f64(keep_alive)),
        header_read_timeout: Some(Duration::from_secs_f64(header_read)),
        max_connections,
        ..ServerConfig::default()
    }
}

/// Serves `app` on a loopback port until the returned sender is dropped.
async fn serve_tcp(app: App, config: ServerConfig) -> (u16, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        spikard_http::serve(listener, Arc::new(app), &config, shutdown).await;
    });
    (port, stop)
}

/// Reads one response (headers and a Content-Length body).
async fn response<S: AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        assert!(n > 0, "closed before a whole response");
        buffer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buffer).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if buffer.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

/// How long until the server closes `stream`.
async fn closed_after<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> Duration {
    let start = Instant::now();
    let mut chunk = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("still open after 5 s"),
        }
    }
}

#[tokio::test]
async fn idle_connections_close_after_the_keep_alive_timeout() {
    let (port, _stop) = serve_tcp(app(), config(0.3, 2.0, 0)).await;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(GET_WHO).await.unwrap();
    assert!(response(&mut stream).await.starts_with("HTTP/1.1 200"));
    // Still open within the timeout: a second request is served.
    tokio::time::sleep(Duration::from_millis(150)).await;
    stream.write_all(GET_WHO).await.unwrap();
    assert!(response(&mut stream).await.starts_with("HTTP/1.1 200"));
    let closed = closed_after(&mut stream).await;
    assert!(
        closed >= Duration::from_millis(250),
        "closed after {closed:?}"
    );
    assert!(
        closed < Duration::from_millis(1500),
        "closed after {closed:?}"
    );
}

#[tokio::test]
async fn slow_or_silent_request_heads_are_dropped() {
    let (port, _stop) = serve_tcp(app(), config(5.0, 0.4, 0)).await;
    // Silent from the start.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let closed = closed_after(&mut silent).await;
    assert!(
        closed >= Duration::from_millis(350) && closed < Duration::from_millis(1500),
        "{closed:?}"
    );
    // Half a head, then nothing.
    let mut partial = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    partial.write_all(b"GET /who HTTP/1.1\r\n").await.unwrap();
    let closed = closed_after(&mut partial).await;
    assert!(
        closed >= Duration::from_millis(350) && closed < Duration::from_millis(1500),
        "{closed:?}"
    );
    // A later request's head is timed from its first byte, not from the last
    // response: a keep-alive connection idle longer than the head timeout
    // (but shorter than keep-alive) still serves its next request.
    let mut kept = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    kept.write_all(GET_WHO).await.unwrap();
    response(&mut kept).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    kept.write_all(GET_WHO).await.unwrap();
    assert!(response(&mut kept).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn connections_past_the_limit_wait_for_a_free_slot() {
    let (port, _stop) = serve_tcp(app(), config(5.0, 5.0, 1)).await;
    // Busy writing a response its client does not read: not idle, so kept.
    let mut first = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    first.write_all(GET_BIG).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut second = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    second.write_all(GET_WHO).await.unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(300), second.read(&mut byte)).await;
    assert!(
        early.is_err(),
        "the second connection was served past the limit"
    );
    drop(first);
    assert!(response(&mut second).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn at_the_limit_an_idle_connection_makes_room_for_a_new_client() {
    let (port, _stop) = serve_tcp(app(), config(5.0, 5.0, 1)).await;
    let mut idle = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    idle.write_all(GET_WHO).await.unwrap();
    response(&mut idle).await;
    let started = Instant::now();
    let mut new = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    new.write_all(GET_WHO).await.unwrap();
    assert!(response(&mut new).await.starts_with("HTTP/1.1 200"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The idle one was closed for it.
    assert!(closed_after(&mut idle).await < Duration::from_secs(1));
}

#[tokio::test]
async fn unix_sockets_serve_and_log_requests() {
    let dir = std::env::temp_dir().join(format!("spikard-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("app.sock");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let log = Arc::new(AccessLog::new(16));
    let app = Arc::new(app().with_access_log(log.clone()));
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        spikard_http::serve(listener, app, &ServerConfig::default(), shutdown).await
    });
    let mut stream = UnixStream::connect(&path).await.unwrap();
    stream.write_all(GET_WHO).await.unwrap();
    let answer = response(&mut stream).await;
    assert!(answer.contains(r#""client":null"#), "{answer}");
    drop(stream);
    drop(stop);
    assert_eq!(served.await.unwrap().cut_requests, 0);
    let records = log.take();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, 200);
    assert_eq!(records[0].target, "/who?x=1");
    assert_eq!(records[0].method, Method::GET);
    assert_eq!(records[0].client, None);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn trusted_proxies_name_the_client_and_scheme() {
    let trusting = app_with(AppConfig {
        proxy: Some(ProxyTrust::parse("127.0.0.1").unwrap()),
        ..AppConfig::default()
    });
    let log = Arc::new(AccessLog::new(16));
    let (port, _stop) = serve_tcp(
        trusting.with_access_log(log.clone()),
        ServerConfig::default(),
    )
    .await;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream
        .write_all(b"GET /who HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 203.0.113.7, 127.0.0.1\r\nX-Forwarded-Proto: https\r\n\r\n")
        .await
        .unwrap();
    let answer = response(&mut stream).await;
    assert!(answer.contains(r#""client":"203.0.113.7""#), "{answer}");
    assert!(answer.contains(r#""scheme":"https""#), "{answer}");
    assert_eq!(
        log.take()[0].client,
        Some(ClientAddr::Named("203.0.113.7".into()))
    );
}

/// A loopback connection that holds at most `window` bytes it has not read yet.
async fn small_window(port: u16, window: u32) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(window).unwrap();
    socket.connect(([127, 0, 0, 1], port).into()).await.unwrap()
}

/// The first record `log` gets within 10 s.
async fn first_record(log: &AccessLog) -> AccessRecord {
    for _ in 0..1000 {
        if let Some(record) = log.take().into_iter().next() {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no access record within 10 s");
}

#[tokio::test]
async fn a_slow_reader_gets_the_whole_response_and_it_is_logged_when_written() {
    let log = Arc::new(AccessLog::new(16));
    let config = ServerConfig {
        keep_alive: Some(Duration::from_millis(200)),
        write_timeout: Some(Duration::from_secs(1)),
        ..ServerConfig::default()
    };
    let (port, _stop) = serve_tcp(app().with_access_log(log.clone()), config).await;
    let mut stream = small_window(port, 256 * 1024).await;
    stream.write_all(GET_BIG).await.unwrap();
    let started = Instant::now();
    let mut received = Vec::with_capacity(BIG + 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut whole = None;
    while whole.is_none_or(|whole| received.len() < whole) {
        // About 5 MB/s: the transfer lasts far longer than keep-alive and the
        // write timeout, the pauses between the server's writes do not (the
        // kernel lets it write again once half its send buffer, at most 2 MB
        // here, has drained).
        let ahead = Duration::from_secs_f64(received.len() as f64 / 5e6);
        if let Some(wait) = ahead.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("data within 5 s")
            .unwrap();
        assert!(
            n > 0,
            "closed after {} bytes, {:?}",
            received.len(),
            started.elapsed()
        );
        received.extend_from_slice(&chunk[..n]);
        if whole.is_none() {
            let head = &received[..received.len().min(4096)];
            whole = head
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|end| end + 4 + BIG);
        }
    }
    assert!(received.starts_with(b"HTTP/1.1 200"));
    let body = &received[received.len() - BIG..];
    assert!(body.iter().enumerate().all(|(i, &b)| b == i as u8));
    assert!(
        started.elapsed() > Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let record = first_record(&log).await;
    assert_eq!((record.status, record.cut), (200, false));
    // Logged when the last bytes went out, not when the handler answered.
    assert!(record.duration > Duration::from_secs(1), "{record:?}");
    assert!(log.take().is_empty(), "logged once");
}

#[tokio::test]
async fn a_reader_that_stops_is_cut_after_the_write_timeout() {
    let log = Arc::new(AccessLog::new(16));
    let config = ServerConfig {
        write_timeout: Some(Duration::from_millis(300)),
        ..ServerConfig::default()
    };
    let (port, _stop) = serve_tcp(app().with_access_log(log.clone()), config).await;
    let mut stream = small_window(port, 16 * 1024).await;
    stream.write_all(GET_BIG).await.unwrap();
    let record = first_record(&log).await;
    assert_eq!((record.status, record.cut), (200, true));
    assert!(
        record.duration >= Duration::from_millis(300)
            && record.duration < Duration::from_millis(1500),
        "{record:?}"
    );
    // Closed: what the kernel held comes, then the end, short of the whole.
    let mut received = 0;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received += n,
            Err(_) => panic!("still open after 5 s"),
        }
    }
    assert!(received < BIG, "{received}");
}
