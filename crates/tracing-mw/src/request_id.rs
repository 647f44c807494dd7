//! `X-Request-Id`: kept when valid, made when absent or invalid; and AWS `X-Amzn-Trace-Id`.

use http::HeaderValue;

use crate::context::{SpanId, TraceId, encode_hex};
use crate::error::HeaderError;
use crate::header;

/// Longest request id kept.
pub const MAX_REQUEST_ID: usize = 200;

/// A request id of 1 to 200 characters of `[A-Za-z0-9+/=_-]`.
///
/// Kept as a header value, so echoing it and passing it on shares the caller's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(HeaderValue);

fn valid(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_REQUEST_ID
        && value
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=' | b'_' | b'-'))
}

fn refused() -> HeaderError {
    HeaderError::new(
        header::X_REQUEST_ID,
        format!("not 1 to {MAX_REQUEST_ID} characters of [A-Za-z0-9+/=_-]"),
    )
}

impl RequestId {
    /// Checks a caller's id.
    pub fn parse(value: &str) -> Result<Self, HeaderError> {
        if !valid(value.as_bytes()) {
            return Err(refused());
        }
        HeaderValue::from_str(value)
            .map(RequestId)
            .map_err(|_| refused())
    }

    /// Checks a caller's id as received (no copy).
    pub fn from_header(value: &HeaderValue) -> Result<Self, HeaderError> {
        if valid(value.as_bytes()) {
            Ok(RequestId(value.clone()))
        } else {
            Err(refused())
        }
    }

    /// A new random id (32 hex digits).
    pub fn generate() -> Self {
        let mut hex = [0u8; 32];
        encode_hex(&TraceId::random().to_bytes(), &mut hex);
        RequestId(HeaderValue::from_bytes(&hex).expect("hex digits are a valid header value"))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        // Only the characters checked above ever get in.
        self.0.to_str().unwrap_or_default()
    }

    /// The id as a header value.
    pub fn as_header(&self) -> &HeaderValue {
        &self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an `X-Amzn-Trace-Id` header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AmznTraceId {
    /// `Root=1-{8 hex epoch}-{24 hex}` as a 16-byte trace id (epoch then the 24 digits).
    pub trace_id: TraceId,
    /// `Parent=`, if sent.
    pub parent_id: Option<SpanId>,
    /// `Sampled=1` / `0`, if sent.
    pub sampled: Option<bool>,
}

impl AmznTraceId {
    /// Parses `Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1`.
    pub fn parse(value: &str) -> Result<Self, HeaderError> {
        let bad = |reason: &str| Err(HeaderError::new(header::X_AMZN_TRACE_ID, reason));
        let (mut root, mut parent, mut sampled) = (None, None, None);
        for field in value.split(';') {
            let Some((k, v)) = field.trim().split_once('=') else {
                continue;
            };
            match k {
                "Root" => root = Some(v),
                "Parent" => parent = Some(v),
                "Sampled" => sampled = Some(v),
                _ => {}
            }
        }
        let Some(root) = root else {
            return bad("no Root field");
        };
        let parts: Vec<&str> = root.split('-').collect();
        if parts.len() != 3 || parts[0] != "1" || parts[1].len() != 8 || parts[2].len() != 24 {
            return bad("Root is not 1-{8 hex}-{24 hex}");
        }
        let Some(trace_id) = TraceId::from_hex(&format!("{}{}", parts[1], parts[2])) else {
            return bad("Root is not lowercase hex, or is zero");
        };
        let parent_id = match parent {
            Some(p) => match SpanId::from_hex(p) {
                Some(p) => Some(p),
                None => return bad("Parent is not 16 lowercase hex digits"),
            },
            None => None,
        };
        let sampled = match sampled {
            Some("1") => Some(true),
            Some("0") => Some(false),
            Some("?") | None => None,
            Some(_) => return bad("Sampled is not 1, 0 or ?"),
        };
        Ok(AmznTraceId {
            trace_id,
            parent_id,
            sampled,
        })
    }
}
