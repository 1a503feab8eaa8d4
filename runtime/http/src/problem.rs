//! RFC 9457 problem details: the one place where an error becomes a response.
//!
//! Every answer the framework makes by itself — no route, wrong method, body too
//! large, wrong media type, malformed JSON, failed validation, a handler fault —
//! is built here, so all of them share one shape (`application/problem+json`).

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ALLOW, CONNECTION, CONTENT_TYPE};
use http::{Response, StatusCode};
use serde::Serialize;
use serde_json::Value;

use crate::handler::ResponseBody;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// One step of a field's location: an object key or an array index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum LocSegment {
    Key(String),
    Index(usize),
}

impl From<&str> for LocSegment {
    fn from(key: &str) -> Self {
        LocSegment::Key(key.to_owned())
    }
}

impl From<usize> for LocSegment {
    fn from(index: usize) -> Self {
        LocSegment::Index(index)
    }
}

/// One failing input field, in the shape FastAPI users know:
/// `{"loc": ["query", "limit"], "msg": "...", "type": "int_parsing", "input": "x"}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldError {
    pub loc: Vec<LocSegment>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: Cow<'static, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
}

impl FieldError {
    /// A required input that was not sent.
    pub fn missing(loc: Vec<LocSegment>) -> Self {
        FieldError {
            loc,
            msg: "Field required".to_owned(),
            kind: "missing".into(),
            input: None,
        }
    }
}

/// `GET, HEAD, OPTIONS`: the value of an `Allow` header.
pub(crate) fn allow_list(allowed: &[http::Method]) -> String {
    allowed
        .iter()
        .map(http::Method::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A problem to answer with.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    detail: Option<String>,
    errors: Vec<FieldError>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [FieldError],
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<Option<String>>) -> Self {
        Problem {
            status,
            detail: detail.into(),
            errors: Vec::new(),
            headers: Vec::new(),
        }
    }

    pub fn not_found(path: &str) -> Self {
        Problem::new(StatusCode::NOT_FOUND, format!("No route matches {path}"))
    }

    pub fn method_not_allowed(method: &http::Method, allowed: &[http::Method]) -> Self {
        let list = allow_list(allowed);
        let mut problem = Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("Method {method} is not allowed here; allowed: {list}"),
        );
        if let Ok(value) = HeaderValue::from_str(&list) {
            problem.headers.push((ALLOW, value));
        }
        problem
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("The request body is larger than the limit of {limit} bytes"),
        )
    }

    /// Asks the client to close the connection after this answer (for a
    /// request whose body was not read to the end).
    /// The request did not arrive in time (its body stalled).
    pub fn request_timeout() -> Self {
        Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "The request body stopped arriving".to_owned(),
        )
    }

    pub fn closing(mut self) -> Self {
        self.headers
            .push((CONNECTION, HeaderValue::from_static("close")));
        self
    }

    pub fn unsupported_media_type(got: &str) -> Self {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Expected a JSON body (application/json), got content type '{got}'"),
        )
    }

    pub fn malformed_json(error: &serde_json::Error) -> Self {
        Problem::new(
            StatusCode::BAD_REQUEST,
            format!("The request body is not valid JSON: {error}"),
        )
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, detail.into())
    }

    /// 422 with every failing field listed at once, up to
    /// [`MAX_ERRORS`](crate::validation::MAX_ERRORS); `omitted` more were
    /// found but not listed (the detail gives the total).
    pub fn validation(mut errors: Vec<FieldError>, omitted: usize) -> Self {
        let limit = crate::validation::MAX_ERRORS;
        let total = errors.len() + omitted;
        errors.truncate(limit);
        let detail = match total {
            1 => "1 validation error".to_owned(),
            n if n > errors.len() => {
                format!(
                    "{n} validation errors (the first {} are listed)",
                    errors.len()
                )
            }
            n => format!("{n} validation errors"),
        };
        Problem {
            errors,
            ..Problem::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
        }
    }

    /// A fault on our side; `detail` is only given in debug mode.
    pub fn internal(detail: Option<String>) -> Self {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            detail.or_else(|| Some("The server failed to handle this request".to_owned())),
        )
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// The JSON document.
    pub fn body(&self) -> Vec<u8> {
        let body = ProblemBody {
            kind: "about:blank",
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: self.detail.as_deref(),
            errors: &self.errors,
        };
        // Serialising plain strings, numbers and JSON values cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }

    pub fn into_response(self) -> Response<ResponseBody> {
        let bytes = self.body();
        let mut response = Response::new(ResponseBody::new(Bytes::from(bytes)));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_json(response: Response<ResponseBody>) -> Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn validation_problem_lists_every_field() {
        let errors = vec![
            FieldError::missing(vec!["body".into(), "price".into()]),
            FieldError {
                loc: vec!["query".into(), "tags".into(), 1.into()],
                msg: "Input should be a valid integer".into(),
                kind: "int_parsing".into(),
                input: Some(Value::from("x")),
            },
        ];
        let response = Problem::validation(errors, 0).into_response();
        assert_eq!(response.status(), 422);
        assert_eq!(response.headers()[CONTENT_TYPE], PROBLEM_JSON);
        let json = body_json(response).await;
        assert_eq!(json["type"], "about:blank");
        assert_eq!(json["title"], "Unprocessable Entity");
        assert_eq!(json["status"], 422);
        assert_eq!(json["detail"], "2 validation errors");
        assert_eq!(
            json["errors"][0]["loc"],
            serde_json::json!(["body", "price"])
        );
        assert_eq!(json["errors"][0]["type"], "missing");
        assert!(json["errors"][0].get("input").is_none());
        assert_eq!(
            json["errors"][1]["loc"],
            serde_json::json!(["query", "tags", 1])
        );
        assert_eq!(json["errors"][1]["input"], "x");
    }

    #[tokio::test]
    async fn method_not_allowed_carries_allow_header() {
        let response = Problem::method_not_allowed(
            &http::Method::PUT,
            &[http::Method::GET, http::Method::POST],
        )
        .into_response();
        assert_eq!(response.status(), 405);
        assert_eq!(response.headers()[ALLOW], "GET, POST");
        let json = body_json(response).await;
        assert!(json.get("errors").is_none());
    }
}
