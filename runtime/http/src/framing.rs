//! The runtime owns how a response is framed on the wire; a handler chooses its
//! status, headers and body, not its framing.
//!
//! hyper trusts a `Content-Length` or `Transfer-Encoding` it finds among a
//! response's headers: a wrong length leaves bytes on a keep-alive connection that
//! the next response's reader takes as its own, and both together give an empty
//! reply. So before a handler's response is sent:
//! - its status must be a final HTTP status, 200–599 (`999` or a `1xx` is a fault);
//! - 204, 205 and 304 answers carry no body (RFC 9110 §15.3.5, §15.3.6, §15.4.5);
//! - a `Content-Length` is dropped when it states the body's length (the runtime
//!   sends the same) and is a fault when it does not, or is not a number; on a
//!   204, 205 or 304 it is dropped unchecked (a 304 may state the length of the
//!   representation it stands for);
//! - hop-by-hop headers (`Connection`, `Keep-Alive`, `Proxy-Connection`,
//!   `Transfer-Encoding`, `TE`, `Trailer`, `Upgrade`; RFC 9110 §7.6.1) are dropped:
//!   they describe one connection, which is the runtime's, and HTTP/2 forbids them.

use std::fmt;

use http::header::{self, HeaderName};
use http::{HeaderMap, StatusCode};

/// Headers that describe the connection, not the response.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// A response the runtime refuses to send (it answers 500 instead).
#[derive(Debug, PartialEq, Eq)]
pub enum FramingError {
    /// Not a final HTTP status.
    Status(u16),
    /// A `Content-Length` that is not the body's length.
    Length { stated: String, actual: usize },
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FramingError::Status(status) => write!(
                f,
                "the response's status {status} is not a final HTTP status (200-599)"
            ),
            FramingError::Length { stated, actual } => write!(
                f,
                "the response sets Content-Length: {stated}, but its body is {actual} bytes; \
                 leave Content-Length out, the runtime sets it"
            ),
        }
    }
}

impl std::error::Error for FramingError {}

/// The status a handler chose, if it is one the runtime sends.
pub fn final_status(status: u16) -> Result<StatusCode, FramingError> {
    match StatusCode::from_u16(status) {
        Ok(code) if (200..=599).contains(&status) => Ok(code),
        _ => Err(FramingError::Status(status)),
    }
}

/// Whether answers with this status carry no body.
pub fn has_no_body(status: StatusCode) -> bool {
    matches!(status.as_u16(), 204 | 205 | 304)
}

/// Takes the framing out of a handler's headers for a body of `body_len` bytes, or
/// for a status that carries none (`None`: a 304's `Content-Length` may state the
/// length of the representation it stands for, RFC 9110 §8.6, so it is not checked,
/// only dropped). Returns the hop-by-hop headers it dropped (for a warning), or why
/// the response cannot be sent.
pub fn strip_framing(
    headers: &mut HeaderMap,
    body_len: Option<usize>,
) -> Result<Vec<HeaderName>, FramingError> {
    if let Some(body_len) = body_len {
        for stated in headers.get_all(header::CONTENT_LENGTH) {
            let agrees = stated
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<usize>().ok())
                == Some(body_len);
            if !agrees {
                return Err(FramingError::Length {
                    stated: String::from_utf8_lossy(stated.as_bytes()).into_owned(),
                    actual: body_len,
                });
            }
        }
    }
    headers.remove(header::CONTENT_LENGTH);
    let mut dropped = Vec::new();
    for name in HOP_BY_HOP {
        if headers.remove(&name).is_some() {
            dropped.push(name);
        }
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn only_final_statuses_are_sent() {
        assert_eq!(final_status(200), Ok(StatusCode::OK));
        assert_eq!(final_status(599).map(|s| s.as_u16()), Ok(599));
        for refused in [0, 99, 100, 101, 199, 600, 999, 1000] {
            assert_eq!(final_status(refused), Err(FramingError::Status(refused)));
        }
    }

    #[test]
    fn no_content_reset_content_and_not_modified_carry_no_body() {
        let statuses = [204, 205, 304, 200, 206, 404];
        let bodiless: Vec<bool> = statuses
            .iter()
            .map(|s| has_no_body(StatusCode::from_u16(*s).unwrap()))
            .collect();
        assert_eq!(bodiless, [true, true, true, false, false, false]);
    }

    #[test]
    fn a_content_length_that_states_the_body_is_dropped() {
        let mut map = headers(&[("content-length", "5"), ("x-kept", "1")]);
        assert_eq!(strip_framing(&mut map, Some(5)), Ok(vec![]));
        assert!(map.get("content-length").is_none());
        assert_eq!(map["x-kept"], "1");
    }

    #[test]
    fn a_content_length_that_disagrees_or_is_not_a_number_is_refused() {
        for (stated, actual) in [("4", 5), ("abc", 5), ("-5", 5), ("", 0)] {
            let mut map = HeaderMap::new();
            map.insert("content-length", HeaderValue::from_str(stated).unwrap());
            let refused = strip_framing(&mut map, Some(actual)).unwrap_err();
            assert_eq!(
                refused,
                FramingError::Length {
                    stated: stated.into(),
                    actual
                }
            );
        }
        // Two that disagree with each other cannot both be right.
        let mut twice = headers(&[("content-length", "5"), ("content-length", "6")]);
        assert!(strip_framing(&mut twice, Some(5)).is_err());
    }

    #[test]
    fn a_bodiless_status_drops_a_content_length_unchecked() {
        // A 304 may state the length of the representation it stands for.
        let mut map = headers(&[("content-length", "1234")]);
        assert_eq!(strip_framing(&mut map, None), Ok(vec![]));
        assert!(map.is_empty());
    }

    #[test]
    fn hop_by_hop_headers_are_dropped_and_named() {
        let mut map = headers(&[
            ("transfer-encoding", "chunked"),
            ("connection", "close"),
            ("keep-alive", "timeout=5"),
            ("upgrade", "h2c"),
            ("x-kept", "1"),
        ]);
        let dropped = strip_framing(&mut map, Some(3)).unwrap();
        assert_eq!(
            dropped,
            [
                header::CONNECTION,
                HeaderName::from_static("keep-alive"),
                header::TRANSFER_ENCODING,
                header::UPGRADE
            ]
        );
        assert_eq!(map.len(), 1);
    }
}
