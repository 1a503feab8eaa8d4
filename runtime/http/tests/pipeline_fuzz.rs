//! A fuzz target for the whole request pipeline on the stable toolchain: hostile
//! requests (heads built from hostile parts, framed bodies of arbitrary bytes or
//! JSON) go over a real socket through hyper, the conformance checks, routing,
//! extraction, validation and problems. Every one must get a well-formed answer
//! (a problem+json for every refusal, never a 500), and the server must go on
//! answering normal requests. `PROPTEST_CASES` sets how many (CI runs the
//! default, 256, in a few seconds).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::{Method, StatusCode};
use proptest::prelude::*;
use serde_json::{json, Value};
use spikard_http::{
    json_response, App, AppConfig, BodySpec, ParamSource, ParamSpec, Parsed, RequestData,
    RouteSpec, RouterBuilder, Scalar, ServerConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Routes with path and query parameters, a validated body, and the request.
fn app() -> App {
    let mut routes = RouterBuilder::new();
    let echo = |request: RequestData| async move {
        let parsed = request.body.map(Parsed::into_value);
        let body = json!({"args": request.args, "body": parsed});
        Ok(json_response(StatusCode::OK, body.to_string().into()))
    };
    let param = |name: &str, source: ParamSource, scalar: Scalar, required: bool| ParamSpec {
        name: name.into(),
        source,
        key: name.into(),
        scalar,
        list: false,
        required,
        schema: None,
    };
    let item = RouteSpec {
        method: Method::GET,
        path: "/items/{n:int}".into(),
        params: vec![
            param("n", ParamSource::Path, Scalar::Int, true),
            param("q", ParamSource::Query, Scalar::Str, false),
        ],
        body: None,
        wants_request: false,
    };
    routes.route(item, Arc::new(echo)).unwrap();
    let order = RouteSpec {
        method: Method::POST,
        path: "/orders/{name}".into(),
        params: vec![param("name", ParamSource::Path, Scalar::Str, true)],
        body: Some(BodySpec {
            schema: Some(json!({
                "type": "object",
                "properties": {
                    "id": {"type": "integer", "minimum": 1},
                    "lines": {"type": "array", "items": {"type": "object",
                        "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
                        "required": ["sku", "qty"]}}
                },
                "required": ["id", "lines"]
            })),
            required: true,
        }),
        wants_request: false,
    };
    routes.route(order, Arc::new(echo)).unwrap();
    let raw = RouteSpec {
        method: Method::PUT,
        path: "/raw".into(),
        params: vec![],
        body: None,
        wants_request: true,
    };
    routes.route(raw, Arc::new(echo)).unwrap();
    let config = AppConfig {
        max_body_size: 4096,
        body_stall: Some(Duration::from_millis(200)),
        ..AppConfig::default()
    };
    App::new(routes.build().unwrap(), config)
}

/// The server every case talks to, on a runtime of its own, and the runtime the
/// cases use.
fn server() -> &'static (u16, tokio::runtime::Runtime) {
    static SERVER: OnceLock<(u16, tokio::runtime::Runtime)> = OnceLock::new();
    SERVER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        let config = ServerConfig {
            header_read_timeout: Some(Duration::from_millis(300)),
            max_head_size: 8192,
            ..ServerConfig::default()
        };
        runtime.spawn(async move {
            spikard_http::serve(listener, Arc::new(app()), &config, std::future::pending()).await;
        });
        (port, runtime)
    })
}

/// Sends `request` and reads until the server closes or a whole response is in:
/// `(status, headers, body)`, or `None` if it closed without a word.
async fn exchange(port: u16, request: &[u8]) -> Option<(u16, String, Vec<u8>)> {
    // A HEAD answer has no body whatever its Content-Length says.
    let bodiless = request.starts_with(b"HEAD ");
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await;
        // A read error (a reset after a refusal) ends the answer like a close.
        let n: usize = read
            .expect("an answer or a close within 5 s")
            .unwrap_or_default();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&chunk[..n]);
        if let Some(whole) = whole_response(&got, bodiless) {
            return Some(whole);
        }
    }
    whole_response(&got, bodiless).or_else(|| {
        assert!(
            got.is_empty(),
            "a partial answer: {:?}",
            String::from_utf8_lossy(&got)
        );
        None
    })
}

fn whole_response(got: &[u8], bodiless: bool) -> Option<(u16, String, Vec<u8>)> {
    let end = got.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&got[..end]).to_string();
    let status: u16 = head.get(9..12)?.parse().ok()?;
    if status == 100 {
        return whole_response(&got[end + 4..], bodiless);
    }
    if bodiless {
        return Some((status, head, Vec::new()));
    }
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let body = got.get(end + 4..end + 4 + length)?.to_vec();
    Some((status, head, body))
}

fn method() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"GET".to_vec()),
        Just(b"POST".to_vec()),
        Just(b"PUT".to_vec()),
        Just(b"HEAD".to_vec()),
        Just(b"OPTIONS".to_vec()),
        Just(b"CONNECT".to_vec()),
        Just(b"DELETE".to_vec()),
        "[A-Z]{1,8}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..6),
    ]
}

fn target() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"/items/7?q=x".to_vec()),
        Just(b"/items/-1".to_vec()),
        Just(b"/items/notanint".to_vec()),
        Just(b"/orders/a%2Fb".to_vec()),
        Just(b"/orders/ok".to_vec()),
        Just(b"/raw".to_vec()),
        Just(b"*".to_vec()),
        Just(b"http://example.com/items/3".to_vec()),
        Just(b"example.com:443".to_vec()),
        "/[a-z%0-9/?=&.]{0,40}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..40),
    ]
}

fn version() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => Just(b"HTTP/1.1".to_vec()),
        1 => Just(b"HTTP/1.0".to_vec()),
        1 => Just(b"HTTP/2.0".to_vec()),
        1 => Just(b"HTTP/9.9".to_vec()),
        1 => Just(b"HTTX/1.1".to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..10),
    ]
}

fn header() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"Host: example.com".to_vec()),
        Just(b"Host: evil.com/x?y#".to_vec()),
        Just(b"Host: a:99999".to_vec()),
        Just(b"Content-Type: application/json".to_vec()),
        Just(b"Content-Type: text/plain".to_vec()),
        Just(b"Transfer-Encoding: gzip, chunked".to_vec()),
        Just(b"Transfer-Encoding: chunked, chunked".to_vec()),
        Just(b"Content-Length: 99999999".to_vec()),
        Just(b"Content-Length: -1".to_vec()),
        Just(b"Expect: 100-continue".to_vec()),
        Just(b"X-Forwarded-For: \"><script>".to_vec()),
        "[A-Za-z-]{1,12}: [ -~]{0,40}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..30),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[ -~]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,5}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        (
            1i64..5,
            prop::collection::vec(("[a-z]{0,4}", any::<i32>()), 0..150)
        )
            .prop_map(|(id, lines)| {
                let lines: Vec<Value> = lines
                    .into_iter()
                    .map(|(sku, qty)| {
                        if qty % 3 == 0 {
                            json!({"qty": sku})
                        } else {
                            json!({"sku": sku, "qty": qty})
                        }
                    })
                    .collect();
                serde_json::to_vec(&json!({"id": id, "lines": lines})).unwrap()
            }),
        prop::collection::vec(any::<u8>(), 0..300),
    ]
}

/// A request: its line, headers, and its body framed by Content-Length or chunked.
fn request() -> impl Strategy<Value = Vec<u8>> {
    (
        method(),
        target(),
        version(),
        prop::collection::vec(header(), 0..6),
        body(),
        any::<bool>(),
    )
        .prop_map(|(method, target, version, headers, body, chunked)| {
            let mut out = Vec::new();
            out.extend_from_slice(&method);
            out.push(b' ');
            out.extend_from_slice(&target);
            out.push(b' ');
            out.extend_from_slice(&version);
            out.extend_from_slice(b"\r\n");
            for header in &headers {
                out.extend_from_slice(header);
                out.extend_from_slice(b"\r\n");
            }
            if chunked {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                if !body.is_empty() {
                    out.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
                    out.extend_from_slice(&body);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
            } else {
                out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
                out.extend_from_slice(&body);
            }
            out
        })
}

fn check_answer(request: &[u8], answer: Option<(u16, String, Vec<u8>)>) {
    let shown = || {
        String::from_utf8_lossy(request)
            .chars()
            .take(300)
            .collect::<String>()
    };
    let Some((status, head, body)) = answer else {
        // Only a head that is not HTTP/1 at all, or one cut off, may get no answer.
        return;
    };
    assert_ne!(status, 500, "a 500 for {:?}", shown());
    let head_request = request.starts_with(b"HEAD ");
    if status >= 400 && !head_request {
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/problem+json"),
            "a refusal that is not a problem: {head} for {:?}",
            shown()
        );
        let problem: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("a problem that is not JSON ({e}) for {:?}", shown()));
        assert_eq!(problem["status"], status, "{problem}");
        assert!(
            problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{problem}"
        );
        if let Some(errors) = problem["errors"].as_array() {
            assert!(!errors.is_empty() && errors.len() <= 100, "{problem}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_request_gets_a_well_formed_answer(request in request()) {
        let (port, runtime) = server();
        let answer = runtime.block_on(exchange(*port, &request));
        check_answer(&request, answer);
        let normal = runtime.block_on(exchange(*port, b"GET /items/1 HTTP/1.1\r\nHost: t\r\n\r\n"));
        prop_assert_eq!(normal.map(|a| a.0), Some(200));
    }
}
