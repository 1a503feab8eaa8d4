//! What HTTP itself requires of a request before any route sees it, where hyper
//! leaves the check to the server: the request target's form, the `Host` header
//! (RFC 9112 §3.2), and `Transfer-Encoding` (RFC 9112 §6.1).
//!
//! A request that passes leaves here with one `Host` header holding its
//! effective authority: the authority of an absolute-form target or of HTTP/2's
//! `:authority` when there is one. That is what `request.url` is built from.

use http::header::{HOST, TRANSFER_ENCODING};
use http::{HeaderValue, Method, Request, StatusCode, Version};

use crate::problem::Problem;

/// What a request's target asks for, once it conforms.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// A path (origin-form, or the path of an absolute-form target).
    Path,
    /// `OPTIONS *`: the server as a whole.
    Server,
}

/// Checks `request` and gives it its effective `Host`; a [`Problem`] for one that
/// does not conform.
pub(crate) fn check<B>(request: &mut Request<B>) -> Result<Target, Problem> {
    let target = target_form(request)?;
    check_transfer_encoding(request)?;
    settle_host(request)?;
    Ok(target)
}

fn target_form<B>(request: &Request<B>) -> Result<Target, Problem> {
    let (method, uri) = (request.method(), request.uri());
    if method == Method::CONNECT {
        return Err(Problem::new(
            StatusCode::NOT_IMPLEMENTED,
            "CONNECT is not supported: this server is not a proxy".to_owned(),
        ));
    }
    if uri.path() == "*" && uri.authority().is_none() {
        return match *method {
            Method::OPTIONS => Ok(Target::Server),
            _ => Err(Problem::bad_request(format!(
                "The target '*' is only for OPTIONS, not {method}"
            ))),
        };
    }
    if uri.authority().is_some() && uri.scheme().is_none() {
        // authority-form (`example.com:443`): only CONNECT, refused above.
        return Err(Problem::bad_request(format!(
            "The target '{uri}' is a host, which only CONNECT may ask for; send a path"
        )));
    }
    if let Some(scheme) = uri.scheme_str() {
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return Err(Problem::bad_request(format!(
                "The target's scheme '{scheme}' is not http or https"
            )));
        }
    }
    if !uri.path().starts_with('/') {
        return Err(Problem::bad_request(format!(
            "The target '{uri}' does not begin with '/'"
        )));
    }
    Ok(Target::Path)
}

/// `Transfer-Encoding` other than exactly `chunked` is refused with 501, and
/// the connection closes: hyper reads `gzip, chunked` as chunked, and a coding
/// it cannot undo would reach the app as if it were the body. (One beside
/// `Content-Length`, the shape of request smuggling, hyper reads as chunked,
/// dropping the length, and closes the connection after it.)
fn check_transfer_encoding<B>(request: &Request<B>) -> Result<(), Problem> {
    let headers = request.headers();
    let mut codings = headers.get_all(TRANSFER_ENCODING).iter();
    let Some(first) = codings.next() else {
        return Ok(());
    };
    if request.version() >= Version::HTTP_2 {
        return Err(Problem::bad_request(
            "Transfer-Encoding is not allowed in HTTP/2".to_owned(),
        ));
    }
    let exactly_chunked = codings.next().is_none()
        && first
            .as_bytes()
            .trim_ascii()
            .eq_ignore_ascii_case(b"chunked");
    if !exactly_chunked {
        let sent = String::from_utf8_lossy(first.as_bytes()).into_owned();
        return Err(Problem::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("Transfer-Encoding '{sent}' is not supported: only 'chunked' is"),
        )
        .closing());
    }
    Ok(())
}

/// Exactly one valid `Host` on HTTP/1.1 (at most one on HTTP/1.0); an HTTP/2
/// `Host` must name the `:authority`. Afterwards `Host` holds the effective
/// authority.
fn settle_host<B>(request: &mut Request<B>) -> Result<(), Problem> {
    let mut hosts = request.headers().get_all(HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(Problem::bad_request(
            "The request has more than one Host header".to_owned(),
        ));
    }
    let host = match host {
        Some(value) => Some(check_host(value)?),
        // Even with an absolute-form target (RFC 9112 §3.2).
        None if request.version() == Version::HTTP_11 => {
            return Err(Problem::bad_request(
                "An HTTP/1.1 request must have a Host header".to_owned(),
            ));
        }
        None => None,
    };
    let Some(authority) = request.uri().authority().cloned() else {
        return Ok(());
    };
    if authority.as_str().contains('@') {
        return Err(Problem::bad_request(
            "The target's authority may not hold user information".to_owned(),
        ));
    }
    if let Some(host) = host {
        if host.eq_ignore_ascii_case(authority.as_str().as_bytes()) {
            return Ok(());
        }
        if request.version() >= Version::HTTP_2 {
            return Err(Problem::bad_request(format!(
                "The Host header '{}' names another server than :authority '{authority}'",
                String::from_utf8_lossy(host)
            )));
        }
    }
    // HTTP/1.1's absolute form wins over Host (RFC 9112 §3.2.2); HTTP/2's
    // :authority is the host.
    if let Ok(value) = HeaderValue::from_str(authority.as_str()) {
        request.headers_mut().insert(HOST, value);
    }
    Ok(())
}

/// A `Host` value, checked to be `uri-host [":" port]` and nothing more (RFC
/// 3986 §3.2.2), byte by byte: this runs on every request.
fn check_host(value: &HeaderValue) -> Result<&[u8], Problem> {
    let bytes = value.as_bytes();
    let (host, port) = match bytes.first() {
        Some(b'[') => {
            let close = bytes.iter().position(|&b| b == b']').unwrap_or(0);
            let literal = &bytes[1..close.max(1)];
            let ip_literal = close > 1
                && literal
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
            let rest = &bytes[close + 1..];
            match (ip_literal, rest.split_first()) {
                (true, None) => (true, &b""[..]),
                (true, Some((b':', port))) => (true, port),
                _ => (false, &b""[..]),
            }
        }
        Some(_) => {
            let (name, port) = match bytes.iter().rposition(|&b| b == b':') {
                Some(colon) => (&bytes[..colon], &bytes[colon + 1..]),
                None => (bytes, &b""[..]),
            };
            (
                !name.is_empty() && name.iter().all(|&b| REG_NAME[usize::from(b)]),
                port,
            )
        }
        None => (false, &b""[..]),
    };
    let port_ok = port.is_empty()
        || (port.len() <= 5
            && port.iter().all(u8::is_ascii_digit)
            && port.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')) <= 65535);
    if host && port_ok {
        Ok(bytes)
    } else {
        Err(Problem::bad_request(format!(
            "The Host header '{}' is not a host name or address with an optional port",
            String::from_utf8_lossy(bytes).escape_debug()
        )))
    }
}

/// The bytes of a `reg-name` or IPv4 address: unreserved, sub-delims and `%`.
const REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        version: Version,
        method: Method,
        target: &str,
        headers: &[(&str, &[u8])],
    ) -> Request<()> {
        let mut builder = Request::builder()
            .version(version)
            .method(method)
            .uri(target);
        for (name, value) in headers {
            builder = builder.header(*name, HeaderValue::from_bytes(value).unwrap());
        }
        builder.body(()).unwrap()
    }

    fn status(mut request: Request<()>) -> Result<(Target, Option<String>), u16> {
        match check(&mut request) {
            Ok(target) => Ok((
                target,
                request
                    .headers()
                    .get(HOST)
                    .map(|h| h.to_str().unwrap().to_owned()),
            )),
            Err(problem) => Err(problem.status().as_u16()),
        }
    }

    const H11: Version = Version::HTTP_11;

    #[test]
    fn host_rules_of_http_1_1() {
        let get = |headers: &[(&str, &[u8])]| status(request(H11, Method::GET, "/a", headers));
        assert_eq!(
            get(&[("host", b"example.com:8080")]),
            Ok((Target::Path, Some("example.com:8080".into())))
        );
        assert_eq!(get(&[("host", b"[::1]:80")]).map(|r| r.0), Ok(Target::Path));
        assert_eq!(get(&[]), Err(400));
        assert_eq!(get(&[("host", b"a"), ("host", b"a")]), Err(400));
        for bad in [
            &b"evil.com/x?y#"[..],
            b"",
            b"a b",
            b"user@host",
            b"h:port",
            b"\xff",
        ] {
            assert_eq!(get(&[("host", bad)]), Err(400), "{bad:?}");
        }
        // HTTP/1.0 may leave it out.
        assert_eq!(
            status(request(Version::HTTP_10, Method::GET, "/a", &[])),
            Ok((Target::Path, None))
        );
    }

    #[test]
    fn the_authority_of_the_target_is_the_host() {
        let absolute = request(
            H11,
            Method::GET,
            "http://real.example/a?b",
            &[("host", b"other")],
        );
        assert_eq!(
            status(absolute),
            Ok((Target::Path, Some("real.example".into())))
        );
        let h2 = request(Version::HTTP_2, Method::GET, "https://h2.example/a", &[]);
        assert_eq!(status(h2), Ok((Target::Path, Some("h2.example".into()))));
        let h2_other = request(
            Version::HTTP_2,
            Method::GET,
            "https://h2.example/a",
            &[("host", b"evil")],
        );
        assert_eq!(status(h2_other), Err(400));
        let userinfo = request(H11, Method::GET, "http://u@h/a", &[("host", b"h")]);
        assert_eq!(status(userinfo), Err(400));
        let gopher = request(H11, Method::GET, "gopher://h/a", &[("host", b"h")]);
        assert_eq!(status(gopher), Err(400));
    }

    #[test]
    fn targets_that_are_not_paths() {
        let host: &[(&str, &[u8])] = &[("host", b"h")];
        assert_eq!(
            status(request(H11, Method::CONNECT, "h:443", host)),
            Err(501)
        );
        assert_eq!(status(request(H11, Method::GET, "h:443", host)), Err(400));
        assert_eq!(
            status(request(H11, Method::OPTIONS, "*", host)).map(|r| r.0),
            Ok(Target::Server)
        );
        assert_eq!(status(request(H11, Method::GET, "*", host)), Err(400));
    }

    #[test]
    fn transfer_encoding_is_exactly_chunked() {
        let post = |headers: &[(&str, &[u8])]| {
            let mut all = vec![("host", &b"h"[..])];
            all.extend_from_slice(headers);
            status(request(H11, Method::POST, "/a", &all))
        };
        assert!(post(&[("transfer-encoding", b"Chunked")]).is_ok());
        assert_eq!(post(&[("transfer-encoding", b"gzip, chunked")]), Err(501));
        assert_eq!(
            post(&[("transfer-encoding", b"chunked, chunked")]),
            Err(501)
        );
        assert_eq!(
            post(&[
                ("transfer-encoding", b"chunked"),
                ("transfer-encoding", b"chunked")
            ]),
            Err(501)
        );
    }
}
