//! `spikard-ceiling [HOST:PORT]`: the benchmark routes (every workload of
//! bench/workloads.json) served by spikard-http with Rust handlers on one
//! thread — the same router, parameter coercion and JSON Schema validation as
//! spikard, no Python. `/sync` runs on tokio's blocking pool (as spikard runs a
//! plain `def` on its thread pool) and `/sleep` sleeps 1 ms on the runtime.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{json, Value};
use spikard_http::{
    json_response, App, AppConfig, BodySpec, HandlerError, ParamSource, ParamSpec, Parsed,
    RequestData, RouteSpec, RouterBuilder, Scalar, ServerConfig,
};

type Reply = Result<http::Response<spikard_http::ResponseBody>, HandlerError>;

/// The request's body as a `Value` (a large one arrives as a document).
fn body_value(request: RequestData) -> Value {
    request.body.map_or(Value::Null, Parsed::into_value)
}

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

/// The same schema pydantic derives for `Order` (name `min_length=1`, price
/// `gt=0`, quantity `ge=1`).
fn order_schema() -> Value {
    json!({
        "title": "Order",
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "price": {"type": "number", "exclusiveMinimum": 0},
            "quantity": {"type": "integer", "minimum": 1}
        },
        "required": ["name", "price", "quantity"]
    })
}

/// The same schema msgspec derives for `BulkOrder` (bench/apps/spikard_app.py).
fn bulk_order_schema() -> Value {
    json!({
        "$ref": "#/$defs/BulkOrder",
        "$defs": {
            "BulkOrder": {
                "title": "BulkOrder",
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "customer": {"$ref": "#/$defs/Customer"},
                    "lines": {"type": "array", "items": {"$ref": "#/$defs/Line"}},
                    "notes": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": null}
                },
                "required": ["id", "customer", "lines"]
            },
            "Customer": {
                "title": "Customer",
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "email": {"type": "string"},
                    "address": {"$ref": "#/$defs/Address"}
                },
                "required": ["name", "email", "address"]
            },
            "Address": {
                "title": "Address",
                "type": "object",
                "properties": {
                    "street": {"type": "string"},
                    "city": {"type": "string"},
                    "postcode": {"type": "string"},
                    "country": {"type": "string"}
                },
                "required": ["street", "city", "postcode", "country"]
            },
            "Line": {
                "title": "Line",
                "type": "object",
                "properties": {
                    "sku": {"type": "string"},
                    "name": {"type": "string"},
                    "quantity": {"type": "integer"},
                    "price_cents": {"type": "integer"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "options": {"type": "object", "additionalProperties": {"type": "string"}}
                },
                "required": ["sku", "name", "quantity", "price_cents", "tags", "options"]
            }
        }
    })
}

/// `{"id", "lines", "units", "total_cents"}` of a bulk order that passed its schema.
fn bulk_summary(order: &Value) -> Value {
    let lines = order["lines"].as_array().map_or(&[][..], Vec::as_slice);
    let (units, total_cents) = lines.iter().fold((0_i64, 0_i64), |(units, total), line| {
        let quantity = line["quantity"].as_i64().unwrap_or(0);
        let price = line["price_cents"].as_i64().unwrap_or(0);
        (units + quantity, total + quantity * price)
    });
    json!({
        "id": order["id"],
        "lines": lines.len(),
        "units": units,
        "total_cents": total_cents
    })
}

fn get(path: &str) -> RouteSpec {
    RouteSpec {
        method: Method::GET,
        path: path.into(),
        params: vec![],
        body: None,
        wants_request: false,
    }
}

fn post(path: &str, schema: Value) -> RouteSpec {
    RouteSpec {
        method: Method::POST,
        path: path.into(),
        params: vec![],
        body: Some(BodySpec {
            schema: Some(schema),
            required: true,
        }),
        wants_request: false,
    }
}

fn routes() -> Result<RouterBuilder, String> {
    let mut routes = RouterBuilder::new();
    let hello = Bytes::from_static(br#"{"message":"Hello"}"#);
    routes.route(
        get("/hello"),
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
        post("/items", item_schema()),
        Arc::new(|request: RequestData| async move { reply(&body_value(request)) }),
    )?;
    routes.route(
        post("/orders", order_schema()),
        Arc::new(|request: RequestData| async move { reply(&body_value(request)) }),
    )?;
    routes.route(
        post("/orders/bulk", bulk_order_schema()),
        Arc::new(|request: RequestData| async move { reply(&bulk_summary(&body_value(request))) }),
    )?;
    routes.route(
        get("/sync"),
        Arc::new(|_: RequestData| async {
            let body = tokio::task::spawn_blocking(|| json!({"message": "Hello from a thread"}))
                .await
                .map_err(|e| HandlerError {
                    detail: Some(e.to_string()),
                })?;
            reply(&body)
        }),
    )?;
    routes.route(
        get("/sleep"),
        Arc::new(|_: RequestData| async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            reply(&json!({"slept_ms": 1}))
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
