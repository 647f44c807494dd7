//! The failover transport under the Eureka client: several server URLs, the last one that
//! answered preferred, failing ones quarantined until most are, as Java's
//! `RetryableEurekaHttpClient` does; every answer read through a size limit.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::{EurekaClientConfig, EurekaClientError};
use crate::wire;

struct Server {
    base: Uri,
    authorization: Option<String>,
}

pub(super) struct Transport {
    servers: Vec<Server>,
    http: Client<HttpConnector, Full<Bytes>>,
    state: Mutex<(usize, Vec<bool>)>, // (preferred server, quarantined)
    timeout: Duration,
    tries: usize,
}

impl Transport {
    pub(super) fn new(config: &EurekaClientConfig) -> Result<Self, EurekaClientError> {
        use base64::Engine as _;
        let mut servers = Vec::new();
        for url in &config.service_urls {
            let bad = |reason: &str| EurekaClientError::BadUrl {
                url: url.clone(),
                reason: reason.to_owned(),
            };
            let uri: Uri = url
                .parse()
                .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
            if uri.scheme_str() != Some("http") {
                return Err(bad("only http:// is supported"));
            }
            let authority = uri.authority().ok_or_else(|| bad("no host"))?.as_str();
            let (userinfo, host) = match authority.rsplit_once('@') {
                Some((userinfo, host)) => (Some(userinfo), host),
                None => (None, authority),
            };
            let authorization = userinfo.map(|u| {
                let decoded: Vec<u8> = percent_decode_str(u).collect();
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(decoded)
                )
            });
            let mut path = uri.path().to_owned();
            if !path.ends_with('/') {
                path.push('/');
            }
            let base: Uri = format!("http://{host}{path}")
                .parse()
                .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
            servers.push(Server {
                base,
                authorization,
            });
        }
        if servers.is_empty() {
            return Err(EurekaClientError::BadUrl {
                url: String::new(),
                reason: "no service URL given".to_owned(),
            });
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.request_timeout));
        let n = servers.len();
        Ok(Transport {
            servers,
            http: Client::builder(TokioExecutor::new()).build(connector),
            state: Mutex::new((0, vec![false; n])),
            timeout: config.request_timeout,
            tries: config.tries.max(1),
        })
    }

    /// Sends to the preferred server, failing over to others. 5xx and transport errors move
    /// on; any other answer is returned.
    pub(super) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(StatusCode, Bytes), EurekaClientError> {
        let order: Vec<usize> = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let n = self.servers.len();
            // Lift the quarantine once most servers are in it.
            if state.1.iter().filter(|q| **q).count() * 3 >= n * 2 {
                state.1.iter_mut().for_each(|q| *q = false);
            }
            (0..n)
                .map(|k| (state.0 + k) % n)
                .filter(|&i| !state.1[i])
                .collect()
        };
        let mut errors = Vec::new();
        for &i in order.iter().take(self.tries) {
            let server = &self.servers[i];
            let uri: Uri = match format!("{}{}", server.base, path).parse() {
                Ok(uri) => uri,
                Err(e) => {
                    return Err(EurekaClientError::BadUrl {
                        url: path.to_owned(),
                        reason: format!("{e}"),
                    });
                }
            };
            let url = uri.to_string();
            let mut request = Request::builder()
                .method(method.clone())
                .uri(uri)
                .header(header::ACCEPT, "application/json");
            if let Some(auth) = &server.authorization {
                request = request.header(header::AUTHORIZATION, auth);
            }
            let request = match &body {
                Some(b) => request
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(b.clone()))),
                None => request.body(Full::new(Bytes::new())),
            }
            .expect("a request of valid parts");
            let outcome = tokio::time::timeout(self.timeout, async {
                let response = self
                    .http
                    .request(request)
                    .await
                    .map_err(|e| Failure::Transport(e.to_string()))?;
                let status = response.status();
                // Refuse an announced oversized answer before reading any of it, and cut
                // an unannounced one off at the limit.
                let announced = response
                    .headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                if announced.is_some_and(|n| n > wire::MAX_DOCUMENT as u64) {
                    return Err(Failure::TooLarge);
                }
                let bytes = Limited::new(response.into_body(), wire::MAX_DOCUMENT)
                    .collect()
                    .await
                    .map_err(|e| {
                        if e.downcast_ref::<LengthLimitError>().is_some() {
                            Failure::TooLarge
                        } else {
                            Failure::Transport(e.to_string())
                        }
                    })?
                    .to_bytes();
                Ok((status, bytes))
            })
            .await
            .unwrap_or_else(|_| {
                Err(Failure::Transport(format!(
                    "no answer within {:?}",
                    self.timeout
                )))
            });
            match outcome {
                Ok((status, bytes)) if !status.is_server_error() => {
                    let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                    state.0 = i;
                    state.1[i] = false;
                    return Ok((status, bytes));
                }
                // The server answered, but with more than any registry document: another
                // server would not do better, and reading its answer too would double the cost.
                Err(Failure::TooLarge) => {
                    tracing::warn!(%url, limit = wire::MAX_DOCUMENT, "Eureka answer too large; refused");
                    return Err(EurekaClientError::TooLarge {
                        url,
                        limit: wire::MAX_DOCUMENT,
                    });
                }
                Ok((status, _)) => errors.push(format!("{}: {status}", server.base)),
                Err(Failure::Transport(e)) => errors.push(format!("{}: {e}", server.base)),
            }
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.1[i] = true;
            tracing::warn!(server = %server.base, error = %errors.last().map_or("", |e| e), "Eureka server quarantined");
        }
        Err(EurekaClientError::Unavailable(errors.join("; ")))
    }
}

/// Why one try of a request failed.
enum Failure {
    /// Not connected, no (complete) answer, timed out.
    Transport(String),
    /// The answer is longer than [`wire::MAX_DOCUMENT`].
    TooLarge,
}

/// Everything but RFC 3986's unreserved characters is encoded in a query component.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A path segment keeps `:` and `@` too (allowed in segments and common in instance ids).
const SEGMENT: &AsciiSet = &COMPONENT.remove(b':').remove(b'@');

/// Percent-encodes one path segment, so `/`, `?`, `#`, `%`, `;`, spaces and non-ASCII stay
/// inside the segment.
pub(super) fn segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// Percent-encodes a query component.
pub(super) fn encode(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(segment("host:svc/1 a"), "host:svc%2F1%20a");
        assert_eq!(segment("a?b#c%d;e+f&g=h"), "a%3Fb%23c%25d%3Be%2Bf%26g%3Dh");
        assert_eq!(segment("ü"), "%C3%BC");
        assert_eq!(segment("ORDERS-1.a_b~c@d"), "ORDERS-1.a_b~c@d");
        assert_eq!(encode("a:b@c"), "a%3Ab%40c");
    }
}
