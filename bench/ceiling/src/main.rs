//! `spikard-ceiling [HOST:PORT]`: the three benchmark routes served by
//! spikard-http with Rust handlers on one thread — the same router, parameter
//! coercion and JSON Schema validation as spikard, no Python.

use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::{json, Value};
use spikard_http::{
    json_response, App, AppConfig, BodySpec, HandlerError, ParamSource, ParamSpec, RequestData,
    RouteSpec, RouterBuilder, Scalar, ServerConfig,
};

type Reply = Result<http::Response<spikard_http::ResponseBody>, HandlerError>;

fn reply(value: &Value) -> Reply {
    let bytes = serde_json::to_vec(value).map_err(|e| HandlerError {
        detail: Some(e.to_string()),
    })?;
    Ok(json_response(StatusCode::OK, bytes.into()))
}

fn param(name: &str, source: ParamSource, scalar: Scalar, required: bool) -> ParamSpec {
    ParamSpec {
        name: name.into(),
        source,
        key: name.into(),
        scalar,
        list: false,
        required,
        schema: None,
    }
}

/// The same schema msgspec derives for `Item(name: str, price: float, tags: list[str])`.
fn item_schema() -> Value {
    json!({
        "$ref": "#/$defs/Item",
        "$defs": {"Item": {
            "title": "Item",
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "price": {"type": "number"},
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["name", "price", "tags"]
        }}
    })
}

fn routes() -> Result<RouterBuilder, String> {
    let mut routes = RouterBuilder::new();
    let hello = Bytes::from_static(br#"{"message":"Hello"}"#);
    routes.route(
        RouteSpec {
            method: Method::GET,
            path: "/hello".into(),
            params: vec![],
            body: None,
            wants_request: false,
        },
        Arc::new(move |_: RequestData| {
            let body = hello.clone();
            async move { Ok(json_response(StatusCode::OK, body)) }
        }),
    )?;
    routes.route(
        RouteSpec {
            method: Method::GET,
            path: "/items/{item_id:int}".into(),
            params: vec![
                param("item_id", ParamSource::Path, Scalar::Int, true),
                param("q", ParamSource::Query, Scalar::Str, false),
            ],
            body: None,
            wants_request: false,
        },
        Arc::new(|mut request: RequestData| async move {
            let q = request.args.pop().flatten().unwrap_or(Value::Null);
            let item_id = request.args.pop().flatten().unwrap_or(Value::Null);
            reply(&json!({"item_id": item_id, "q": q}))
        }),
    )?;
    routes.route(
        RouteSpec {
            method: Method::POST,
            path: "/items".into(),
            params: vec![],
            body: Some(BodySpec {
                schema: Some(item_schema()),
                required: true,
            }),
            wants_request: false,
        },
        Arc::new(|request: RequestData| async move {
            reply(request.body.as_ref().unwrap_or(&Value::Null))
        }),
    )?;
    Ok(routes)
}

use bytes::Bytes;

fn main() {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8000".to_owned());
    let router = match routes().and_then(RouterBuilder::build) {
        Ok(router) => router,
        Err(error) => {
            eprintln!("spikard-ceiling: {error}");
            std::process::exit(1);
        }
    };
    let app = Arc::new(App::new(router, AppConfig::default()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(&address).await {
            Ok(listener) => listener,
            Err(error) => {
                eprintln!("spikard-ceiling: cannot listen on {address}: {error}");
                std::process::exit(1);
            }
        };
        eprintln!("spikard-ceiling: serving on http://{address}");
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        spikard_http::serve(listener, app, &ServerConfig::default(), shutdown).await;
    });
}
