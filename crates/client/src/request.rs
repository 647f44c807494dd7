//! [`RequestBuilder`]: a request being put together, reqwest's way.

use std::time::Duration;

use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Uri};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;

use crate::body::Body;
use crate::client::{Client, UrlWithoutQuery};
use crate::error::{Error, ErrorKind};
use crate::response::Response;
use crate::retry::RetryNonIdempotent;

/// What a query value keeps unescaped (RFC 3986 unreserved characters).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A request being built; [`send`](Self::send) it. Errors in the parts (a bad URL or header)
/// come out of `send`, naming the URL.
#[derive(Debug)]
pub struct RequestBuilder {
    client: Client,
    url: String,
    request: Result<Request<Body>, Error>,
    timeout: Option<Duration>,
}

impl RequestBuilder {
    pub(crate) fn new(client: Client, method: Method, url: &str) -> Self {
        let request = match url.parse::<Uri>() {
            Ok(uri) if uri.scheme().is_some() && uri.authority().is_some() => {
                let mut request = Request::new(Body::empty());
                *request.method_mut() = method;
                *request.uri_mut() = uri;
                // The context of the request being served, taken here, on the caller's task:
                // it stays with the request wherever its attempts run (a `tower::Buffer`'s
                // worker, a hedge), with or without a tracing subscriber.
                if let Some(context) = breakwater_tracing_mw::RequestContext::current() {
                    request.extensions_mut().insert(context);
                }
                Ok(request)
            }
            Ok(_) => Err(Error::new(ErrorKind::InvalidUrl, url)
                .with_source("expected scheme://host/path (http, https or service)")),
            Err(e) => Err(Error::new(ErrorKind::InvalidUrl, url).with_source(e)),
        };
        let url = match &request {
            Ok(request) => UrlWithoutQuery(request.uri()).to_string(),
            Err(_) => url.to_owned(),
        };
        RequestBuilder {
            client,
            url,
            request,
            timeout: None,
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Request<Body>, &str) -> Result<(), Error>) -> Self {
        if let Ok(request) = &mut self.request
            && let Err(e) = f(request, &self.url)
        {
            self.request = Err(e);
        }
        self
    }

    /// Adds a header.
    pub fn header<K, V>(self, name: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: Into<http::Error>,
    {
        self.with(|request, url| {
            let name = HeaderName::try_from(name).map_err(|e| Error::builder(url, e.into()))?;
            let value = HeaderValue::try_from(value)
                .map_err(|e| Error::builder(url, format!("header {name}: {}", e.into())))?;
            request.headers_mut().append(name, value);
            Ok(())
        })
    }

    /// Adds every header of `headers`.
    pub fn headers(self, headers: HeaderMap) -> Self {
        self.with(|request, _| {
            request.headers_mut().extend(headers);
            Ok(())
        })
    }

    /// `Authorization: Bearer <token>`, marked sensitive (kept out of logs).
    pub fn bearer_auth(self, token: impl std::fmt::Display) -> Self {
        self.with(|request, url| {
            let mut value = HeaderValue::try_from(format!("Bearer {token}"))
                .map_err(|_| Error::builder(url, "the bearer token is not a valid header value"))?;
            value.set_sensitive(true);
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, value);
            Ok(())
        })
    }

    /// Appends `name=value` pairs to the query, percent-encoded.
    pub fn query<K: AsRef<str>, V: AsRef<str>>(self, pairs: &[(K, V)]) -> Self {
        self.with(|request, url| {
            let uri = request.uri();
            let mut query = uri.query().unwrap_or("").to_owned();
            for (k, v) in pairs {
                if !query.is_empty() {
                    query.push('&');
                }
                query.extend(utf8_percent_encode(k.as_ref(), QUERY_VALUE));
                query.push('=');
                query.extend(utf8_percent_encode(v.as_ref(), QUERY_VALUE));
            }
            let path_and_query = format!("{}?{query}", uri.path());
            let mut parts = uri.clone().into_parts();
            parts.path_and_query =
                Some(path_and_query.parse().map_err(|e| Error::builder(url, e))?);
            *request.uri_mut() = Uri::from_parts(parts).map_err(|e| Error::builder(url, e))?;
            Ok(())
        })
    }

    /// The body.
    pub fn body(self, body: impl Into<Body>) -> Self {
        self.with(|request, _| {
            *request.body_mut() = body.into();
            Ok(())
        })
    }

    /// A JSON body, with `Content-Type: application/json` unless one is set.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Self {
        self.with(|request, url| {
            let bytes = serde_json::to_vec(value).map_err(|e| Error::builder(url, e))?;
            *request.body_mut() = bytes.into();
            request
                .headers_mut()
                .entry(CONTENT_TYPE)
                .or_insert(HeaderValue::from_static("application/json"));
            Ok(())
        })
    }

    /// The deadline of the whole call, every attempt included (by default the service
    /// breaker's timeout; for a plain URL, none).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Bounds the deadline to `limit` (fan-out's shared deadline).
    pub(crate) fn timeout_at_most(mut self, limit: Duration) -> Self {
        self.timeout = Some(self.timeout.map_or(limit, |t| t.min(limit)));
        self
    }

    /// Lets a POST or PATCH be retried (as an `Idempotency-Key` header would).
    pub fn retry_non_idempotent(self) -> Self {
        self.with(|request, _| {
            request.extensions_mut().insert(RetryNonIdempotent);
            Ok(())
        })
    }

    /// The URL, without its query.
    pub fn target(&self) -> String {
        self.url.clone()
    }

    /// The `http` request, for the tower face.
    pub fn build(self) -> Result<Request<Body>, Error> {
        self.request
    }

    /// Sends it.
    pub async fn send(self) -> Result<Response, Error> {
        let RequestBuilder {
            client,
            url,
            request,
            timeout,
        } = self;
        let request = request?;
        let limit = client.body_limit(request.uri());
        let response = client.execute(request, timeout).await?;
        Ok(Response::new(response, url, limit))
    }
}
