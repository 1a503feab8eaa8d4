//! Where a request came from, as the application sees it: the connection's peer,
//! or, behind a trusted proxy, the client and scheme the proxy reports in
//! `Forwarded` (RFC 7239) or `X-Forwarded-For` / `X-Forwarded-Proto`.
//!
//! Trust follows uvicorn's `--forwarded-allow-ips`: the headers count only when
//! the connection's peer is trusted (a Unix socket's peer, which has no
//! address, only with `*`). Each proxy appends the address it received from,
//! so the list is walked from the right past trusted proxies; the first
//! untrusted address is the client. When every address is trusted, the
//! leftmost is. `X-Forwarded-*` is read first, as uvicorn does; `Forwarded`
//! only when neither `X-Forwarded-For` nor `X-Forwarded-Proto` is present (a
//! proxy that sets one family must clear the other, or clients can send it).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::header::FORWARDED;
use http::{HeaderMap, HeaderName};
use ipnet::IpNet;

// Named once: looking a header up by a `&str` parses the name every time.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The client of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientAddr {
    /// The connection's peer.
    Socket(SocketAddr),
    /// The host a trusted proxy named (an address, or an RFC 7239 token such
    /// as `unknown`); proxies give no port.
    Named(Arc<str>),
}

impl ClientAddr {
    /// Host and port (0 when a proxy named the client).
    pub fn host_port(&self) -> (String, u16) {
        match self {
            ClientAddr::Socket(addr) => (addr.ip().to_string(), addr.port()),
            ClientAddr::Named(host) => (host.to_string(), 0),
        }
    }
}

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientAddr::Socket(addr) => write!(f, "{addr}"),
            ClientAddr::Named(host) => f.write_str(host),
        }
    }
}

/// The URL scheme the client used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scheme {
    #[default]
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    fn parse(value: &str) -> Option<Scheme> {
        let value = value.trim();
        if value.eq_ignore_ascii_case("https") || value.eq_ignore_ascii_case("wss") {
            Some(Scheme::Https)
        } else if value.eq_ignore_ascii_case("http") || value.eq_ignore_ascii_case("ws") {
            Some(Scheme::Http)
        } else {
            None
        }
    }
}

/// Where a request came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Remote {
    /// `None` on a connection without an address (a Unix socket) that no proxy
    /// header named a client for.
    pub client: Option<ClientAddr>,
    pub scheme: Scheme,
}

impl Remote {
    /// The connection's peer, as it is.
    pub fn direct(peer: Option<SocketAddr>) -> Self {
        Remote {
            client: peer.map(ClientAddr::Socket),
            scheme: Scheme::Http,
        }
    }
}

/// The proxies whose headers are believed (`--forwarded-allow-ips`).
#[derive(Clone, Debug, Default)]
pub struct ProxyTrust {
    everyone: bool,
    networks: Vec<IpNet>,
    /// Entries that are not addresses, matched as written (RFC 7239 obfuscated
    /// identifiers, `unknown`).
    literals: Vec<String>,
}

impl ProxyTrust {
    /// Parses a comma-separated list of addresses, networks (`10.0.0.0/8`),
    /// literals, or `*` for everyone.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut trust = ProxyTrust::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                trust.everyone = true;
            } else if let Ok(net) = entry.parse::<IpNet>() {
                trust.networks.push(net);
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                trust.networks.push(IpNet::from(ip));
            } else if entry
                .split_once('/')
                .is_some_and(|(ip, _)| ip.parse::<IpAddr>().is_ok())
            {
                return Err(format!("'{entry}' is not an IP network"));
            } else {
                trust.literals.push(entry.to_owned());
            }
        }
        Ok(trust)
    }

    fn trusts_ip(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.everyone || self.networks.iter().any(|net| net.contains(&ip))
    }

    fn trusts_host(&self, host: &str) -> bool {
        if self.everyone {
            return true;
        }
        match host.parse::<IpAddr>() {
            Ok(ip) => self.trusts_ip(ip),
            Err(_) => self.literals.iter().any(|l| l == host),
        }
    }

    /// Where a request arriving from `peer` with `headers` came from.
    pub fn resolve(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Remote {
        let direct = Remote::direct(peer);
        let trusted_peer = match peer {
            Some(addr) => self.trusts_ip(addr.ip()),
            None => self.everyone,
        };
        if !trusted_peer {
            return direct;
        }
        if headers.contains_key(&X_FORWARDED_FOR) || headers.contains_key(&X_FORWARDED_PROTO) {
            self.via_x_forwarded(direct, headers)
        } else if headers.contains_key(FORWARDED) {
            self.via_forwarded(direct, headers)
        } else {
            direct
        }
    }

    /// Index of the client in `hosts` (ordered as proxies appended them).
    fn client_index<S: AsRef<str>>(&self, hosts: &[S]) -> Option<usize> {
        if hosts.is_empty() {
            return None;
        }
        let untrusted = (0..hosts.len())
            .rev()
            .find(|&i| !self.trusts_host(hosts[i].as_ref()));
        Some(untrusted.unwrap_or(0))
    }

    fn via_x_forwarded(&self, mut remote: Remote, headers: &HeaderMap) -> Remote {
        let hosts = list_values(headers, &X_FORWARDED_FOR);
        let protos = list_values(headers, &X_FORWARDED_PROTO);
        let chosen = self.client_index(&hosts);
        if let Some(i) = chosen {
            remote.client = Some(ClientAddr::Named(client_host(&hosts[i])));
        }
        // Each proxy may append the scheme it received: the one beside the
        // client is the client's; when the lists do not line up, the last.
        let proto = match chosen {
            Some(i) if protos.len() == hosts.len() => protos.get(i),
            _ => protos.last(),
        };
        if let Some(scheme) = proto.and_then(|p| Scheme::parse(p)) {
            remote.scheme = scheme;
        }
        remote
    }

    fn via_forwarded(&self, mut remote: Remote, headers: &HeaderMap) -> Remote {
        let elements: Vec<ForwardedElement> = headers
            .get_all(FORWARDED)
            .iter()
            .flat_map(|v| parse_forwarded(&String::from_utf8_lossy(v.as_bytes())))
            .collect();
        let hosts: Vec<&str> = elements
            .iter()
            .map(|e| e.client.as_deref().unwrap_or("unknown"))
            .collect();
        if let Some(i) = self.client_index(&hosts) {
            if elements[i].client.is_some() {
                remote.client = Some(ClientAddr::Named(client_host(hosts[i])));
            }
            if let Some(scheme) = elements[i].proto.as_deref().and_then(Scheme::parse) {
                remote.scheme = scheme;
            }
        }
        remote
    }
}

/// The client a proxy named, as the application and the log see it: an IP
/// address (written canonically, without a port), `unknown`, or an RFC 7239
/// obfuscated identifier (`_hidden`). Anything else (a name, a path, bytes a
/// client forged into the header) is `unknown`: it would otherwise reach
/// `request.client` and the access log as it was sent.
fn client_host(item: &str) -> Arc<str> {
    let host = node_host(item);
    if let Ok(ip) = host.parse::<IpAddr>() {
        return canonical(ip).to_string().into();
    }
    let obfuscated = host.len() > 1
        && host.starts_with('_')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if obfuscated {
        host.into()
    } else {
        "unknown".into()
    }
}

/// IPv4 peers on a dual-stack socket arrive as `::ffff:a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The comma-separated items of every `name` header line, in order. Bytes
/// that are not UTF-8 spoil only their own item (a proxy appends its peer to
/// whatever the client sent on the same line).
fn list_values(headers: &HeaderMap, name: &HeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(',')
                .map(|item| item.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|item| !item.is_empty())
        .collect()
}

/// One proxy's element of a `Forwarded` header.
#[derive(Debug, Default, PartialEq)]
struct ForwardedElement {
    /// The `for=` node without its port or IPv6 brackets.
    client: Option<String>,
    proto: Option<String>,
}

/// Splits on `sep` outside quoted strings.
fn split_unquoted(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_forwarded(value: &str) -> Vec<ForwardedElement> {
    split_unquoted(value, ',')
        .into_iter()
        .map(|element| {
            let mut parsed = ForwardedElement::default();
            for pair in split_unquoted(element, ';') {
                let Some((key, value)) = pair.split_once('=') else {
                    continue;
                };
                let value = unquote(value.trim());
                match key.trim().to_ascii_lowercase().as_str() {
                    "for" => parsed.client = Some(node_host(&value).to_owned()),
                    "proto" => parsed.proto = Some(value),
                    _ => {}
                }
            }
            parsed
        })
        .collect()
}

fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => value.to_owned(),
    }
}

/// `192.0.2.1:8080` → `192.0.2.1`; `[2001:db8::1]:443` → `2001:db8::1`; an
/// IPv6 address sent without its brackets is kept whole.
fn node_host(node: &str) -> &str {
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    if node.matches(':').count() > 1 {
        return node;
    }
    match node.split_once(':') {
        Some((host, _port)) => host,
        None => node,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn peer(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().unwrap(), 5000))
    }

    fn named(host: &str) -> Option<ClientAddr> {
        Some(ClientAddr::Named(host.into()))
    }

    #[test]
    fn untrusted_peer_is_taken_as_it_is() {
        let trust = ProxyTrust::parse("127.0.0.1").unwrap();
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
        ]);
        assert_eq!(
            trust.resolve(peer("10.0.0.1"), &h),
            Remote::direct(peer("10.0.0.1"))
        );
    }

    #[test]
    fn walks_from_the_right_past_trusted_proxies() {
        let trust = ProxyTrust::parse("127.0.0.1, 10.0.0.0/8").unwrap();
        let h = headers(&[("x-forwarded-for", "198.51.100.1, 203.0.113.7, 10.1.2.3")]);
        let remote = trust.resolve(peer("127.0.0.1"), &h);
        assert_eq!(remote.client, named("203.0.113.7"));
        assert_eq!(remote.scheme, Scheme::Http);
        // Every address trusted: the leftmost.
        let h = headers(&[("x-forwarded-for", "10.0.0.5, 10.1.2.3")]);
        assert_eq!(
            trust.resolve(peer("127.0.0.1"), &h).client,
            named("10.0.0.5")
        );
        // Split over several header lines.
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-for", "10.1.2.3"),
        ]);
        assert_eq!(
            trust.resolve(peer("127.0.0.1"), &h).client,
            named("203.0.113.7")
        );
    }

    #[test]
    fn everyone_trusted_takes_the_leftmost() {
        let trust = ProxyTrust::parse("*").unwrap();
        let h = headers(&[("x-forwarded-for", "198.51.100.1, 203.0.113.7")]);
        assert_eq!(
            trust.resolve(peer("8.8.8.8"), &h).client,
            named("198.51.100.1")
        );
    }

    #[test]
    fn scheme_via_x_forwarded_proto() {
        let trust = ProxyTrust::parse("127.0.0.1").unwrap();
        let h = headers(&[("x-forwarded-proto", "HTTPS")]);
        let remote = trust.resolve(peer("127.0.0.1"), &h);
        assert_eq!(remote.scheme, Scheme::Https);
        assert_eq!(remote.client, Remote::direct(peer("127.0.0.1")).client);
        let h = headers(&[("x-forwarded-proto", "gopher")]);
        assert_eq!(trust.resolve(peer("127.0.0.1"), &h).scheme, Scheme::Http);
    }

    #[test]
    fn forwarded_header_is_parsed_when_no_x_forwarded_header_is_sent() {
        let trust = ProxyTrust::parse("127.0.0.1,10.0.0.0/8").unwrap();
        let forwarded = (
            "forwarded",
            r#"for="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.2;proto=http"#,
        );
        let remote = trust.resolve(peer("127.0.0.1"), &headers(&[forwarded]));
        assert_eq!(remote.client, named("2001:db8:cafe::17"));
        assert_eq!(remote.scheme, Scheme::Https);
        let h = headers(&[("forwarded", "for=192.0.2.60:8080;by=203.0.113.43")]);
        assert_eq!(
            trust.resolve(peer("127.0.0.1"), &h).client,
            named("192.0.2.60")
        );
        let h = headers(&[("forwarded", "for=2001:db8::1")]);
        assert_eq!(
            trust.resolve(peer("127.0.0.1"), &h).client,
            named("2001:db8::1")
        );
        // A proxy that sets X-Forwarded-For wins over a Forwarded its client sent.
        let h = headers(&[forwarded, ("x-forwarded-for", "1.1.1.1")]);
        let remote = trust.resolve(peer("127.0.0.1"), &h);
        assert_eq!(
            (remote.client, remote.scheme),
            (named("1.1.1.1"), Scheme::Http)
        );
    }

    #[test]
    fn bytes_that_are_not_text_spoil_only_their_item() {
        let trust = ProxyTrust::parse("127.0.0.1").unwrap();
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"\xff, 127.0.0.1").unwrap(),
        );
        let client = trust.resolve(peer("127.0.0.1"), &h).client;
        assert_eq!(client, named("unknown"));
    }

    #[test]
    fn only_addresses_and_rfc7239_tokens_name_a_client() {
        let trust = ProxyTrust::parse("127.0.0.1").unwrap();
        let client = |value: &str| {
            let h = headers(&[("x-forwarded-for", value)]);
            trust.resolve(peer("127.0.0.1"), &h).client
        };
        assert_eq!(client("203.0.113.7:5123"), named("203.0.113.7"));
        assert_eq!(client("[2001:DB8::1]:443"), named("2001:db8::1"));
        assert_eq!(client("::ffff:192.0.2.1"), named("192.0.2.1"));
        assert_eq!(client("_hidden-proxy.1"), named("_hidden-proxy.1"));
        assert_eq!(client("unknown"), named("unknown"));
        for forged in [
            "evil.com",
            "1.2.3.4\" - \"GET /admin",
            "_",
            "_bad token",
            "<script>",
        ] {
            assert_eq!(client(forged), named("unknown"), "{forged}");
        }
        let h = headers(&[("forwarded", r#"for="\"x\" y""#)]);
        assert_eq!(
            trust.resolve(peer("127.0.0.1"), &h).client,
            named("unknown")
        );
    }

    #[test]
    fn unix_socket_peers_are_trusted_only_with_a_star() {
        let h = headers(&[("x-forwarded-for", "203.0.113.7")]);
        let loopback = ProxyTrust::parse("127.0.0.1").unwrap();
        assert_eq!(loopback.resolve(None, &h), Remote::default());
        let everyone = ProxyTrust::parse("*").unwrap();
        assert_eq!(everyone.resolve(None, &h).client, named("203.0.113.7"));
    }

    #[test]
    fn mapped_ipv4_peer_matches_ipv4_entries() {
        let trust = ProxyTrust::parse("127.0.0.1").unwrap();
        let h = headers(&[("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(
            trust.resolve(peer("::ffff:127.0.0.1"), &h).client,
            named("203.0.113.7")
        );
    }

    #[test]
    fn bad_networks_are_refused() {
        assert!(ProxyTrust::parse("10.0.0.0/99").is_err());
        assert!(ProxyTrust::parse("127.0.0.1, unix:/run/app.sock").is_ok());
    }
}
