//! `GET /proxy.stream?origin=<url>`: relays an upstream event stream, as the stock Netflix
//! Hystrix Dashboard's `ProxyStreamServlet` does (its monitor page always connects through
//! it). Unlike the servlet, only origins on an allow-list are relayed, so the endpoint is no
//! open proxy.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::serve::ConnectionHandle;
use breakwater_server::ConnectionLimit;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::stream::Refusal;

/// How long the upstream gets to answer with its headers.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);

/// How many upstream chunks may wait for a slow client (a chunk is at most one read of the
/// upstream connection, so this bounds what one client holds to a few hundred KiB).
const RELAY_QUEUE: usize = 16;

/// The paths the proxy relays by default: a path must end with one of them.
pub const STREAM_PATHS: [&str; 2] = ["/hystrix.stream", "/turbine.stream"];

/// The origins the proxy may connect to: `host:port` entries, or `host:*` for any port; and
/// the stream paths it relays from them (by default those ending in [`STREAM_PATHS`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginAllowList {
    /// (host, port or any, whether the caller's `authorization` parameter may be sent).
    entries: Vec<(String, Option<u16>, bool)>,
    paths: Vec<String>,
}

impl Default for OriginAllowList {
    fn default() -> Self {
        OriginAllowList {
            entries: Vec::new(),
            paths: STREAM_PATHS.iter().map(|p| p.to_string()).collect(),
        }
    }
}

impl OriginAllowList {
    /// An empty list: the proxy refuses every origin.
    pub fn new() -> Self {
        Self::default()
    }

    /// The path endings relayed instead of [`STREAM_PATHS`] (e.g. `/actuator/hystrix.stream`).
    pub fn stream_paths(mut self, paths: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.paths = paths.into_iter().map(Into::into).collect();
        self
    }

    /// Adds `host:port`, `host:*`, or a URL (its host and port are taken). The caller's
    /// `authorization` parameter is never sent there: see
    /// [`allow_with_credentials`](Self::allow_with_credentials).
    pub fn allow(self, entry: &str) -> Result<Self, String> {
        self.add(entry, false)
    }

    /// [`allow`](Self::allow), and the `authorization` parameter of a caller (the stock
    /// dashboard's way to reach a secured stream) is sent on to that origin.
    pub fn allow_with_credentials(self, entry: &str) -> Result<Self, String> {
        self.add(entry, true)
    }

    fn add(mut self, entry: &str, credentials: bool) -> Result<Self, String> {
        let entry = entry.trim();
        let bare = entry
            .split_once("://")
            .map_or(entry, |(_, rest)| rest)
            .split('/')
            .next()
            .unwrap_or("");
        let (host, port) = match bare.strip_prefix('[') {
            // An IPv6 literal: `[::1]:9000`.
            Some(rest) => match rest.split_once(']') {
                Some((ip, tail)) => (&bare[..ip.len() + 2], tail.strip_prefix(':')),
                None => return Err(format!("proxy allow-list entry {entry:?}: unclosed '['")),
            },
            None => match bare.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (bare, None),
            },
        };
        let port = match port {
            None => Some(default_port(entry)),
            Some("*") => None,
            Some(port) => Some(port.parse::<u16>().map_err(|_| {
                format!("proxy allow-list entry {entry:?}: port {port:?} is not a number")
            })?),
        };
        if host.is_empty() {
            return Err(format!("proxy allow-list entry {entry:?}: no host"));
        }
        self.entries
            .push((host.to_ascii_lowercase(), port, credentials));
        Ok(self)
    }

    fn entry(&self, uri: &Uri) -> Option<&(String, Option<u16>, bool)> {
        let host = uri.host()?;
        let port = uri.port_u16().unwrap_or(80);
        self.entries
            .iter()
            .find(|(h, p, _)| h.eq_ignore_ascii_case(host) && p.is_none_or(|p| p == port))
    }

    /// True when `uri`'s host and port are on the list.
    pub fn allows(&self, uri: &Uri) -> bool {
        self.entry(uri).is_some()
    }

    /// True when credentials may be sent to `uri`'s origin.
    pub fn sends_credentials_to(&self, uri: &Uri) -> bool {
        self.entry(uri)
            .is_some_and(|(_, _, credentials)| *credentials)
    }

    /// True when `uri`'s path is one of the stream paths.
    pub fn is_stream_path(&self, uri: &Uri) -> bool {
        let path = uri.path();
        self.paths.iter().any(|p| path.ends_with(p.as_str()))
    }

    /// True when nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn default_port(entry: &str) -> u16 {
    if entry.starts_with("https://") {
        443
    } else {
        80
    }
}

pub(crate) type HttpClient = Client<HttpConnector, Empty<Bytes>>;

pub(crate) fn http_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(UPSTREAM_TIMEOUT));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

fn refuse(status: StatusCode, message: String) -> Refusal {
    tracing::info!(%status, %message, "proxy.stream refused");
    (status, message + "\n")
}

/// The upstream URL the servlet would build: `http://` added when the origin has no scheme,
/// `delay` passed on.
pub(crate) fn upstream_url(query: &HashMap<String, String>) -> Result<Uri, Refusal> {
    let origin = query.get("origin").map(|s| s.trim()).unwrap_or("");
    if origin.is_empty() {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "Required parameter 'origin' missing. Example: 127.0.0.1:8080/hystrix.stream"
                .to_owned(),
        ));
    }
    let mut url = String::with_capacity(origin.len() + 16);
    if !origin.starts_with("http") {
        url.push_str("http://");
    }
    url.push_str(origin);
    if let Some(delay) = query.get("delay") {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("delay=");
        url.extend(utf8_percent_encode(delay, QUERY_VALUE));
    }
    let uri: Uri = url.parse().map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            format!("parameter 'origin': {origin:?} is not a URL ({e})"),
        )
    })?;
    match uri.scheme_str() {
        Some("http") => Ok(uri),
        Some(other) => Err(refuse(
            StatusCode::BAD_REQUEST,
            format!("parameter 'origin': scheme {other:?} is not supported; use http"),
        )),
        None => Err(refuse(
            StatusCode::BAD_REQUEST,
            format!("parameter 'origin': {origin:?} has no host"),
        )),
    }
}

/// Everything but RFC 3986's unreserved characters is encoded in a query value.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub(crate) async fn relay(
    client: &HttpClient,
    allow: &OriginAllowList,
    connections: &ConnectionLimit,
    stall_timeout: Duration,
    query: HashMap<String, String>,
    connection: Option<ConnectionHandle>,
    counting: &crate::metrics::Counting,
) -> Response {
    let uri = match upstream_url(&query) {
        Ok(uri) => uri,
        Err(refusal) => return refusal.into_response(),
    };
    if !allow.allows(&uri) {
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "origin {}:{} is not on this proxy's allow-list",
                uri.host().unwrap_or(""),
                uri.port_u16().unwrap_or(80)
            ),
        )
        .into_response();
    }
    if !allow.is_stream_path(&uri) {
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "path {:?} of {} is not a stream path this proxy relays",
                uri.path(),
                uri.host().unwrap_or("")
            ),
        )
        .into_response();
    }
    if query.contains_key("authorization") && !allow.sends_credentials_to(&uri) {
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "parameter 'authorization': this proxy sends no credentials to {}:{}",
                uri.host().unwrap_or(""),
                uri.port_u16().unwrap_or(80)
            ),
        )
        .into_response();
    }
    let permit = match crate::stream::admit(connections) {
        Ok(permit) => permit,
        Err(refusal) => return refusal.into_response(),
    };
    let mut request = http::Request::get(uri.clone())
        .header(header::ACCEPT, "text/event-stream")
        .body(Empty::new())
        .expect("a GET with a parsed URI is a valid request");
    if let Some(authorization) = query.get("authorization") {
        match HeaderValue::from_str(authorization) {
            Ok(value) => {
                request.headers_mut().insert(header::AUTHORIZATION, value);
            }
            Err(_) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "parameter 'authorization': not a valid header value".to_owned(),
                )
                .into_response();
            }
        }
    }
    let upstream = match tokio::time::timeout(UPSTREAM_TIMEOUT, client.request(request)).await {
        Ok(Ok(upstream)) => upstream,
        Ok(Err(error)) => {
            return refuse(
                StatusCode::BAD_GATEWAY,
                format!("failed opening connection to {uri}: {error}"),
            )
            .into_response();
        }
        Err(_) => {
            return refuse(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "{uri} did not answer within {} s",
                    UPSTREAM_TIMEOUT.as_secs()
                ),
            )
            .into_response();
        }
    };
    if upstream.status() != StatusCode::OK {
        return refuse(
            StatusCode::BAD_GATEWAY,
            format!("{uri} answered {}", upstream.status()),
        )
        .into_response();
    }
    let content_type = upstream
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("text/event-stream")
    {
        return refuse(
            StatusCode::BAD_GATEWAY,
            format!("{uri} answered {content_type:?}, not an event stream"),
        )
        .into_response();
    }
    let (parts, mut body) = upstream.into_parts();
    // Relayed through a bounded queue, as our own streams are: a client that stops reading
    // holds at most RELAY_QUEUE chunks and is cut off after the stall timeout, which frees
    // its slot and the upstream connection (an upstream that never cuts off slow readers,
    // as Java Hystrix's servlet, would otherwise keep both for good).
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(RELAY_QUEUE);
    let counting = counting.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let _open = counting.opened();
        loop {
            let data = tokio::select! {
                frame = body.frame() => match frame {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => data,
                        Err(_) => continue,
                    },
                    Some(Err(error)) => {
                        tracing::info!(%uri, %error, "proxied stream failed");
                        return;
                    }
                    None => return,
                },
                _ = tx.closed() => return,
            };
            let len = data.len();
            match tokio::time::timeout(stall_timeout, tx.send(data)).await {
                Ok(Ok(())) => counting.sent(len),
                Ok(Err(_)) => return,
                Err(_) => {
                    counting.cut_off();
                    tracing::info!(%uri, "disconnecting a proxy.stream client that stopped reading");
                    if let Some(connection) = &connection {
                        connection.close();
                    }
                    return;
                }
            }
        }
    });
    let relayed = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|data| data.map(Ok::<_, std::convert::Infallible>))
    });
    let mut response = Response::new(Body::from_stream(relayed));
    // Only what describes the stream comes back: no cookies, no headers of the upstream's
    // own (which the dashboard's origin would otherwise lend its name to).
    for name in [
        header::CONTENT_TYPE,
        header::CACHE_CONTROL,
        header::PRAGMA,
        header::EXPIRES,
    ] {
        for value in parts.headers.get_all(&name) {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_entries() {
        let list = OriginAllowList::new()
            .allow("127.0.0.1:8080")
            .unwrap()
            .allow("metrics.internal:*")
            .unwrap()
            .allow("http://[::1]:9000/hystrix.stream")
            .unwrap()
            .allow("plainhost")
            .unwrap();
        let ok = |u: &str| list.allows(&u.parse().unwrap());
        assert!(ok("http://127.0.0.1:8080/hystrix.stream"));
        assert!(!ok("http://127.0.0.1:8081/hystrix.stream"));
        assert!(ok("http://METRICS.internal:1234/x"));
        assert!(ok("http://[::1]:9000/hystrix.stream"));
        assert!(ok("http://plainhost/hystrix.stream"));
        assert!(!ok("http://plainhost:81/"));
        assert!(!ok("http://169.254.169.254/latest/meta-data"));
        assert!(OriginAllowList::new().allow("host:port").is_err());
        assert!(OriginAllowList::new().allow(":80").is_err());
    }

    #[test]
    fn upstream_url_is_built_like_the_servlet() {
        let q = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        let uri = upstream_url(&q(&[
            ("origin", "127.0.0.1:9/hystrix.stream"),
            ("delay", "250"),
        ]))
        .unwrap();
        assert_eq!(
            uri.to_string(),
            "http://127.0.0.1:9/hystrix.stream?delay=250"
        );
        let uri = upstream_url(&q(&[("origin", "http://h:1/s?x=1"), ("delay", "1 0")])).unwrap();
        assert_eq!(uri.to_string(), "http://h:1/s?x=1&delay=1%200");
        assert_eq!(
            upstream_url(&q(&[])).unwrap_err().0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            upstream_url(&q(&[("origin", "https://h/s")]))
                .unwrap_err()
                .0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            upstream_url(&q(&[("origin", "h h")])).unwrap_err().0,
            StatusCode::BAD_REQUEST
        );
    }
}
