//! [`Response`]: an answer, with reqwest's readers for its body, each bounded.

use bytes::Bytes;
use http::{HeaderMap, StatusCode, Version};
use http_body_util::{BodyExt, Limited};
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind};
use crate::response_body::ResponseBody;

/// An answer. Its body is read at most once, up to the service's
/// [`max_response_bytes`](crate::CallConfig::max_response_bytes).
#[derive(Debug)]
pub struct Response {
    inner: http::Response<ResponseBody>,
    url: String,
    limit: usize,
}

impl Response {
    pub(crate) fn new(inner: http::Response<ResponseBody>, url: String, limit: usize) -> Self {
        Response { inner, url, limit }
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.inner.status()
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        self.inner.headers()
    }

    /// The HTTP version.
    pub fn version(&self) -> Version {
        self.inner.version()
    }

    /// The URL asked for (without its query).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `Content-Length`, when the answer gave one.
    pub fn content_length(&self) -> Option<u64> {
        self.headers()
            .get(http::header::CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .parse()
            .ok()
    }

    /// This response if its status is not 4xx or 5xx; else an [`ErrorKind::Status`] error.
    pub fn error_for_status(self) -> Result<Self, Error> {
        let status = self.status();
        if status.is_client_error() || status.is_server_error() {
            return Err(Error::new(ErrorKind::Status(status), self.url));
        }
        Ok(self)
    }

    /// The whole body.
    pub async fn bytes(self) -> Result<Bytes, Error> {
        let too_large = |url: String, limit: usize| {
            Error::new(ErrorKind::BodyTooLarge, url)
                .with_source(format!("more than {limit} bytes (max_response_bytes)"))
        };
        if self.content_length().is_some_and(|n| n > self.limit as u64) {
            return Err(too_large(self.url, self.limit));
        }
        let Response { inner, url, limit } = self;
        match Limited::new(inner.into_body(), limit).collect().await {
            Ok(body) => Ok(body.to_bytes()),
            Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                Err(too_large(url, limit))
            }
            Err(error) => Err(Error::new(ErrorKind::Body, url).with_source(error)),
        }
    }

    /// The body as text (invalid UTF-8 replaced, as reqwest does).
    pub async fn text(self) -> Result<String, Error> {
        let bytes = self.bytes().await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The body as JSON.
    pub async fn json<T: DeserializeOwned>(self) -> Result<T, Error> {
        let url = self.url.clone();
        let bytes = self.bytes().await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::new(ErrorKind::Decode, url).with_source(e))
    }

    /// Whether the service's [fallback](crate::ClientBuilder::fallback) made this answer
    /// (the call itself failed).
    pub fn is_fallback(&self) -> bool {
        self.inner.extensions().get::<FromFallback>().is_some()
    }

    /// The `http` response, body unread.
    pub fn into_http(self) -> http::Response<ResponseBody> {
        self.inner
    }
}

/// Marks an answer a fallback made.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FromFallback;
