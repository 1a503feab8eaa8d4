//! The runtime's own answers to HTTP/1 requests that never reach a route: a
//! head hyper cannot parse (400, 414, 431), a version it does not speak (505),
//! and a head that does not arrive in time (408).
//!
//! hyper answers a head it cannot parse with a bare status line and no body,
//! and has no hook for it. Its answer is recognised on its way out (by
//! [`crate::activity::Watched`]) and replaced with an `application/problem+json`
//! one like every other refusal, and the refusal is kept for the access log.
//! The connection then closes the way nginx's lingering close does: the
//! answer, then the end of the server's side, then whatever the client still
//! sends is read and dropped for a moment, so that the kernel does not reset
//! the connection (losing the answer) over bytes nobody read.

use std::io::Write;
use std::time::Duration;

use http::{Method, StatusCode, Version};

use crate::problem::Problem;

/// How long a refused connection's client may go on sending before it is closed.
pub(crate) const LINGER: Duration = Duration::from_secs(2);

/// How much of a refused request's first line is kept (for the log and 505).
pub(crate) const LINE_KEPT: usize = 256;

/// hyper's own answers to a head it cannot parse, as it writes them.
const HYPER_ANSWERS: [(&[u8], StatusCode); 3] = [
    (b"HTTP/1.1 400 Bad Request\r\n", StatusCode::BAD_REQUEST),
    (b"HTTP/1.1 414 URI Too Long\r\n", StatusCode::URI_TOO_LONG),
    (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    ),
];

/// Whether `written` is hyper's own answer to a head it could not parse: one
/// of its status lines, then only `connection: close`, `content-length: 0` and
/// `date`, as hyper writes them. Its status if so.
pub(crate) fn hyper_answer(written: &[u8]) -> Option<StatusCode> {
    let (line, status) = HYPER_ANSWERS
        .iter()
        .find(|(line, _)| written.starts_with(line))?;
    let end = find(written, b"\r\n\r\n")?;
    let headers = written.get(line.len()..end)?;
    let hyper_shaped = headers.split(|&b| b == b'\n').all(|header| {
        let header = header.strip_suffix(b"\r").unwrap_or(header);
        header.eq_ignore_ascii_case(b"connection: close")
            || header.eq_ignore_ascii_case(b"content-length: 0")
            || (header.len() > 6 && header[..6].eq_ignore_ascii_case(b"date: "))
    });
    hyper_shaped.then_some(*status)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A request the runtime refused before any route saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub status: StatusCode,
    /// The first line of its head as it arrived (up to [`LINE_KEPT`] bytes).
    pub line: Vec<u8>,
}

impl Refused {
    /// `hyper_status` was hyper's answer to the head beginning with `line`; a
    /// 400 for a line that names an HTTP version other than 1.0 and 1.1 is a 505.
    pub(crate) fn by_hyper(hyper_status: StatusCode, line: &[u8]) -> Self {
        let status = match hyper_status {
            StatusCode::BAD_REQUEST if other_version(line).is_some() => {
                StatusCode::HTTP_VERSION_NOT_SUPPORTED
            }
            status => status,
        };
        Refused {
            status,
            line: line.to_vec(),
        }
    }

    /// A head that took longer than the header read timeout.
    pub(crate) fn late(line: &[u8]) -> Self {
        Refused {
            status: StatusCode::REQUEST_TIMEOUT,
            line: line.to_vec(),
        }
    }

    fn detail(&self, max_head_size: usize) -> String {
        match self.status {
            StatusCode::HTTP_VERSION_NOT_SUPPORTED => format!(
                "{} is not supported: this server speaks HTTP/1.0 and HTTP/1.1, and HTTP/2 \
                 to clients that begin with its connection preface",
                other_version(&self.line).unwrap_or("That version")
            ),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => format!(
                "The request head is larger than {max_head_size} bytes (spikard run \
                 --max-head-size), or has more than 100 header fields"
            ),
            StatusCode::URI_TOO_LONG => "The request target is too long".to_owned(),
            StatusCode::REQUEST_TIMEOUT => {
                "The request head did not arrive in time (spikard run --header-read-timeout)"
                    .to_owned()
            }
            _ => "The request is not valid HTTP/1.1: its request line or a header is malformed"
                .to_owned(),
        }
    }

    /// The whole answer, ready for the socket: problem+json, closing.
    pub(crate) fn answer(&self, max_head_size: usize) -> Vec<u8> {
        let body = Problem::new(self.status, self.detail(max_head_size)).body();
        let mut out = Vec::with_capacity(body.len() + 200);
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\ncontent-type: application/problem+json\r\nconnection: close\r\n\
             content-length: {}\r\ndate: {}\r\n\r\n",
            self.status.as_u16(),
            self.status.canonical_reason().unwrap_or("Error"),
            body.len(),
            httpdate::fmt_http_date(std::time::SystemTime::now()),
        );
        out.extend_from_slice(&body);
        out
    }

    /// Method, target and version for the access log, as far as the line
    /// shows them (`-` for what it does not).
    pub fn request_line(&self) -> (Method, String, Version) {
        let line = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
        let mut words = line.splitn(3, |&b| b == b' ');
        let method = words
            .next()
            .and_then(|m| Method::from_bytes(m).ok())
            .unwrap_or_else(|| Method::from_bytes(b"-").expect("'-' is a token"));
        let target = words.next().map_or_else(
            || "-".to_owned(),
            |t| String::from_utf8_lossy(t).into_owned(),
        );
        let version = match words.next() {
            Some(b"HTTP/1.0") => Version::HTTP_10,
            _ => Version::HTTP_11,
        };
        (method, target, version)
    }
}

/// The version a request line names, when it is `HTTP/d.d` but not 1.0 or 1.1.
fn other_version(line: &[u8]) -> Option<&str> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let version = line.rsplit(|&b| b == b' ').next()?;
    let shaped = version.len() == 8
        && version.starts_with(b"HTTP/")
        && version[5].is_ascii_digit()
        && version[6] == b'.'
        && version[7].is_ascii_digit();
    if !shaped || version == b"HTTP/1.0" || version == b"HTTP/1.1" {
        return None;
    }
    std::str::from_utf8(version).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_answers_are_told_from_an_apps() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(
            hyper_answer(hyper),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        let app = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(hyper_answer(app), None);
        let bare_app =
            b"HTTP/1.1 400 Bad Request\r\nset-cookie: a=b\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(hyper_answer(bare_app), None);
        assert_eq!(hyper_answer(b"HTTP/1.1 200 OK\r\n\r\n"), None);
        assert_eq!(hyper_answer(b"HTTP/1.1 400 Bad Request\r\n"), None);
    }

    #[test]
    fn an_http_2_line_in_text_is_505_and_says_so() {
        let refused = Refused::by_hyper(StatusCode::BAD_REQUEST, b"GET / HTTP/2.0\r");
        assert_eq!(refused.status, StatusCode::HTTP_VERSION_NOT_SUPPORTED);
        let answer = String::from_utf8(refused.answer(65536)).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 505 HTTP Version Not Supported\r\n"),
            "{answer}"
        );
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["status"], 505);
        assert!(problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("HTTP/2.0 is not supported"));
        let bad = Refused::by_hyper(StatusCode::BAD_REQUEST, b"GET / HTTX/1.1");
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn the_log_gets_what_the_line_shows() {
        let refused = Refused::late(b"POST /upload?x=1 HTTP/1.0\r");
        assert_eq!(
            refused.request_line(),
            (Method::POST, "/upload?x=1".to_owned(), Version::HTTP_10)
        );
        let garbage = Refused::by_hyper(StatusCode::BAD_REQUEST, b"\x01\x02");
        assert_eq!(garbage.request_line().0.as_str(), "-");
    }
}
