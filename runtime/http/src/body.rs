//! JSON request bodies: media type, size limit, parsing and validation.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, EXPECT};
use http::HeaderMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use http_body_util::BodyExt;
use serde_json::Value;

use crate::document::Document;
use crate::problem::{FieldError, LocSegment, Problem};
use crate::validation::Schema;

/// A route's JSON body as a binding declares it.
#[derive(Clone, Debug)]
pub struct BodySpec {
    /// The JSON Schema the parsed body must satisfy (`None`: any JSON).
    pub schema: Option<Value>,
    pub required: bool,
}

/// A body read as JSON: the parsed value and the bytes as received, and, for
/// a large one, the outcome of its check (see [`CompiledBody::validate`]).
#[derive(Debug)]
pub(crate) struct JsonBody {
    pub parsed: Parsed,
    pub raw: Bytes,
    pub checked: Option<(Vec<FieldError>, usize)>,
}

/// A parsed JSON body: a `Value`, or for a large valid one a compact
/// [`Document`] (a `Value` of a 10 MB body of numbers takes 200 MB).
#[derive(Debug)]
pub enum Parsed {
    Value(Value),
    Document(Document),
}

impl Parsed {
    /// The body as a `Value`, for the paths that need one (an invalid request).
    pub fn into_value(self) -> Value {
        match self {
            Parsed::Value(value) => value,
            Parsed::Document(document) => document.to_value(),
        }
    }

    pub fn as_value(&self) -> Option<&Value> {
        match self {
            Parsed::Value(value) => Some(value),
            Parsed::Document(_) => None,
        }
    }
}

/// A body at least this large is parsed and checked on a blocking thread, so
/// that the serving thread goes on serving other requests meanwhile.
pub(crate) const OFF_THREAD: usize = 256 * 1024;

/// How long after a large body was read the allocator is asked to give free
/// memory back to the system (by then its request is usually done).
const TRIM_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct CompiledBody {
    schema: Option<Schema>,
    required: bool,
}

impl CompiledBody {
    pub fn compile(spec: &BodySpec) -> Result<Self, String> {
        let schema = match &spec.schema {
            Some(schema) => {
                Some(Schema::compile(schema).map_err(|e| format!("request body: {e}"))?)
            }
            None => None,
        };
        Ok(CompiledBody {
            schema,
            required: spec.required,
        })
    }

    /// The parse pass: reads and parses the body, at most `limit` bytes,
    /// pausing at most `stall` between chunks. `Ok(None)`: no body was sent; a
    /// request that cannot be read as JSON at all is a [`Problem`].
    pub async fn read<B>(
        self: &Arc<Self>,
        headers: &HeaderMap,
        body: B,
        limit: usize,
        stall: Option<Duration>,
    ) -> Result<Option<JsonBody>, Problem>
    where
        B: http_body::Body<Data = Bytes> + Unpin + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        check_media_type(headers)?;
        let bytes = read_limited(headers, body, limit, stall).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        if bytes.len() < OFF_THREAD {
            let value: Value =
                serde_json::from_slice(&bytes).map_err(|e| Problem::malformed_json(&e))?;
            return Ok(Some(JsonBody {
                parsed: Parsed::Value(value),
                raw: bytes,
                checked: None,
            }));
        }
        let (this, raw) = (self.clone(), bytes.clone());
        let parsed = tokio::task::spawn_blocking(move || this.parse_large(&raw)).await;
        give_memory_back_soon();
        let (parsed, checked) = parsed.map_err(|_| Problem::internal(None))??;
        Ok(Some(JsonBody {
            parsed,
            raw: bytes,
            checked: Some(checked),
        }))
    }

    /// A large body, parsed into a [`Document`] and checked in place; made a
    /// `Value` only when it fails its schema (for the errors) or may repeat a
    /// key (which a `Value` keeps once, as for a small body).
    fn parse_large(&self, raw: &[u8]) -> Result<(Parsed, (Vec<FieldError>, usize)), Problem> {
        let malformed = |error: serde_json::Error| Problem::malformed_json(&error);
        let value = if raw.len() <= Document::MAX_INPUT {
            let document = Document::parse(raw).map_err(malformed)?;
            let schema = self.schema.as_ref();
            let accepted = || schema.is_none_or(|schema| schema.accepts(&document) == Some(true));
            if !document.may_repeat_keys() && accepted() {
                return Ok((Parsed::Document(document), (Vec::new(), 0)));
            }
            document.to_value()
        } else {
            serde_json::from_slice(raw).map_err(malformed)?
        };
        let mut errors = Vec::new();
        let omitted = self.validate(Some(&value), &mut errors);
        Ok((Parsed::Value(value), (errors, omitted)))
    }

    /// The validate pass: a required body was sent, and what was sent
    /// satisfies the schema; errors are appended to `errors` (see
    /// [`Schema::check`](crate::validation::Schema::check)), and how many more
    /// were not is returned.
    pub fn validate(&self, body: Option<&Value>, errors: &mut Vec<FieldError>) -> usize {
        let loc = [LocSegment::Key("body".into())];
        match (body, &self.schema) {
            (None, _) if self.required => {
                errors.push(FieldError::missing(loc.to_vec()));
                0
            }
            (Some(value), Some(schema)) => schema.check(value, &loc, errors),
            _ => 0,
        }
    }
}

/// A body read as bytes, whatever its media type (for handlers that read the
/// request themselves).
pub(crate) async fn read_raw<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
    stall: Option<Duration>,
) -> Result<Bytes, Problem>
where
    B: http_body::Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    read_limited(headers, body, limit, stall).await
}

/// How much of an oversized body is read and thrown away after answering 413,
/// and for how long, so that a client which sends its whole body before reading
/// the answer gets the 413 rather than a reset connection.
const DRAIN_MAX_BYTES: usize = 64 * 1024 * 1024;
const DRAIN_MAX_TIME: Duration = Duration::from_secs(3);

/// Collects the body, up to `limit` bytes: one whose `Content-Length` is over
/// it is refused before any of it is read, and a chunked one when it passes it.
/// A client that stops sending for `stall` gets 408 and the connection is
/// closed: it would otherwise hold its connection, and a handler, for ever.
async fn read_limited<B>(
    headers: &HeaderMap,
    mut body: B,
    limit: usize,
    stall: Option<Duration>,
) -> Result<Bytes, Problem>
where
    B: http_body::Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if declared_length(headers).is_some_and(|len| len > limit) {
        // Refused before a byte is read: a client waiting for `100 Continue`
        // was not sent one, and sends nothing more.
        let drain = !expects_continue(headers);
        return Err(too_large(body, limit, drain));
    }
    let mut first: Option<Bytes> = None;
    let mut rest: Vec<u8> = Vec::new();
    // Room for what the client declared, once a second chunk comes: the body
    // is then copied once rather than grown by doubling.
    let room = declared_length(headers).unwrap_or(0);
    let mut total = 0usize;
    loop {
        // A body already received (most are, with their head) needs no timer.
        let next = match body.frame().now_or_never() {
            Some(next) => next,
            None => match stall {
                Some(stall) => tokio::time::timeout(stall, body.frame())
                    .await
                    .map_err(|_| Problem::request_timeout().closing())?,
                None => body.frame().await,
            },
        };
        let Some(frame) = next else {
            break;
        };
        let frame = frame.map_err(|e| {
            Problem::bad_request(format!("Failed to read the request body: {}", e.into()))
        })?;
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        total += chunk.len();
        if total > limit {
            // Reading began (and sent any `100 Continue`): the client is sending.
            return Err(too_large(body, limit, true));
        }
        match &first {
            // Most bodies arrive in one chunk: keep it without copying.
            None => first = Some(chunk),
            Some(head) => {
                if rest.is_empty() {
                    rest.reserve_exact(room.max(head.len() + chunk.len()));
                    rest.extend_from_slice(head);
                }
                rest.extend_from_slice(&chunk);
            }
        }
    }
    Ok(if rest.is_empty() {
        first.unwrap_or_default()
    } else {
        Bytes::from(rest)
    })
}

/// 413, answered at once, and the connection closes after it. With `drain`,
/// the rest of the body is read and thrown away meanwhile (within bounds), so
/// that a client sending all of it before reading gets the answer rather than
/// a reset; without, it is dropped unread.
fn too_large<B>(body: B, limit: usize, drain_rest: bool) -> Problem
where
    B: http_body::Body<Data = Bytes> + Unpin + Send + 'static,
{
    if drain_rest {
        tokio::spawn(drain(body));
    }
    Problem::payload_too_large(limit).closing()
}

/// The client waits for `100 Continue` before it sends its body (hyper sends
/// that only when the body is first read).
fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Reads and discards what is left of a body, within a bound of bytes and time.
async fn drain<B>(mut body: B)
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    let mut left = DRAIN_MAX_BYTES;
    let _ = tokio::time::timeout(DRAIN_MAX_TIME, async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(chunk) = frame.into_data() {
                left = left.saturating_sub(chunk.len());
                if left == 0 {
                    break;
                }
            }
        }
    })
    .await;
}

fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Parsing a large body leaves many small blocks free in the allocator's heap,
/// which it keeps: a second after such a body (once, however many arrive), they
/// are given back to the system (glibc's `malloc_trim`, on a blocking thread).
fn give_memory_back_soon() {
    static SCHEDULED: AtomicBool = AtomicBool::new(false);
    if SCHEDULED.swap(true, Ordering::Relaxed) {
        return;
    }
    tokio::spawn(async {
        tokio::time::sleep(TRIM_AFTER).await;
        SCHEDULED.store(false, Ordering::Relaxed);
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        let _ = tokio::task::spawn_blocking(|| {
            // SAFETY: malloc_trim only returns free pages to the system.
            unsafe { libc::malloc_trim(0) };
        })
        .await;
    });
}

/// A JSON route accepts `application/json` and `application/*+json` with any
/// parameters; a body without a content type is read as JSON.
fn check_media_type(headers: &HeaderMap) -> Result<(), Problem> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    match text.parse::<mime::Mime>() {
        Ok(mime)
            if mime.type_() == mime::APPLICATION
                && (mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON)) =>
        {
            Ok(())
        }
        _ => Err(Problem::unsupported_media_type(&text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use serde_json::json;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    async fn read(
        spec: BodySpec,
        hdrs: HeaderMap,
        body: &'static str,
        limit: usize,
    ) -> (Result<Option<Value>, Problem>, Vec<FieldError>) {
        let body_spec = Arc::new(CompiledBody::compile(&spec).unwrap());
        let mut errors = Vec::new();
        let result = body_spec
            .read(
                &hdrs,
                Full::new(Bytes::from_static(body.as_bytes())),
                limit,
                None,
            )
            .await
            .map(|body| body.map(|body| body.parsed.into_value()));
        if let Ok(value) = &result {
            body_spec.validate(value.as_ref(), &mut errors);
        }
        (result, errors)
    }

    fn any_required() -> BodySpec {
        BodySpec {
            schema: None,
            required: true,
        }
    }

    #[tokio::test]
    async fn json_media_types_are_accepted() {
        for ct in [
            "application/json",
            "application/json; charset=utf-8",
            "application/problem+json",
            "Application/JSON",
        ] {
            let (result, _) = read(
                any_required(),
                headers(&[("content-type", ct)]),
                "{\"a\":1}",
                100,
            )
            .await;
            assert_eq!(result.unwrap(), Some(json!({"a": 1})), "{ct}");
        }
        let (result, _) = read(any_required(), HeaderMap::new(), "[1]", 100).await;
        assert_eq!(result.unwrap(), Some(json!([1])));
    }

    #[tokio::test]
    async fn other_media_types_are_415() {
        for ct in ["text/plain", "application/x-www-form-urlencoded", "jsonish"] {
            let (result, _) =
                read(any_required(), headers(&[("content-type", ct)]), "{}", 100).await;
            assert_eq!(result.unwrap_err().status(), 415, "{ct}");
        }
    }

    #[tokio::test]
    async fn malformed_json_is_400_and_oversize_is_413() {
        let (result, _) = read(any_required(), HeaderMap::new(), "{\"a\":", 100).await;
        assert_eq!(result.unwrap_err().status(), 400);
        let (result, _) = read(any_required(), HeaderMap::new(), "[1,2,3,4,5,6,7,8,9]", 8).await;
        assert_eq!(result.unwrap_err().status(), 413);
        // A declared length far past the limit is refused without reading.
        let (result, _) = read(
            any_required(),
            headers(&[("content-length", "500000000")]),
            "[]",
            8,
        )
        .await;
        let response = result.unwrap_err().into_response();
        assert_eq!(response.status(), 413);
        assert_eq!(response.headers()[http::header::CONNECTION], "close");
    }

    #[tokio::test]
    async fn bodies_arriving_in_several_chunks_are_joined() {
        let spec = Arc::new(CompiledBody::compile(&any_required()).unwrap());
        let chunks: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> =
            ["[1,", "2,", "3]"]
                .into_iter()
                .map(|c| Ok(http_body::Frame::data(Bytes::from_static(c.as_bytes()))))
                .collect();
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(chunks));
        let body = spec
            .read(&HeaderMap::new(), body, 100, None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(body.parsed.into_value(), json!([1, 2, 3]));
        assert_eq!(body.raw, Bytes::from_static(b"[1,2,3]"));
    }

    #[tokio::test]
    async fn missing_body_is_a_field_error_only_when_required() {
        let (result, errors) = read(any_required(), HeaderMap::new(), "", 100).await;
        assert_eq!(result.unwrap(), None);
        assert_eq!(errors, vec![FieldError::missing(vec!["body".into()])]);
        let (result, errors) = read(
            BodySpec {
                schema: None,
                required: false,
            },
            HeaderMap::new(),
            "",
            100,
        )
        .await;
        assert_eq!(result.unwrap(), None);
        assert!(errors.is_empty());
    }

    #[tokio::test]
    async fn schema_errors_are_located_under_body() {
        let spec = BodySpec {
            schema: Some(
                json!({"type": "object", "properties": {"price": {"type": "number"}}, "required": ["price"]}),
            ),
            required: true,
        };
        let (result, errors) = read(spec, HeaderMap::new(), "{\"price\": \"1\"}", 100).await;
        assert!(result.unwrap().is_some());
        assert_eq!(errors.len(), 1);
        assert_eq!(
            serde_json::to_value(&errors[0].loc).unwrap(),
            json!(["body", "price"])
        );
    }
}
