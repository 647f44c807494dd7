//! W3C `baggage`: application key-values that travel with the request.

use std::borrow::Cow;
use std::sync::Arc;

use percent_encoding::percent_decode_str;

use crate::error::HeaderError;

/// Most members kept (the spec asks to propagate at least 64).
pub const MAX_MEMBERS: usize = 64;
/// Most bytes of header kept (the spec asks to propagate at least 8192).
pub const MAX_BYTES: usize = 8192;

/// A parsed `baggage` header: `(key, value, properties)` entries, in order.
///
/// Kept as the validated header text (members trimmed and separated by `,`), so passing it
/// on is a reference-count increment and a copy; values are percent-decoded when read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Baggage(Option<Arc<str>>);

fn split_member(member: &str) -> Option<(&str, &str, &str)> {
    let (pair, properties) = member.split_once(';').unwrap_or((member, ""));
    let (key, value) = pair.split_once('=')?;
    Some((key.trim(), value.trim(), properties.trim()))
}

fn token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

impl Baggage {
    /// Parses the header's value. A header over [`MAX_BYTES`] or with more than
    /// [`MAX_MEMBERS`] members is refused whole, as is a member that is not
    /// `token=value[;properties]` or whose value does not percent-decode to UTF-8.
    pub fn parse(value: &str) -> Result<Self, HeaderError> {
        let bad = |reason: String| Err(HeaderError::new("baggage", reason));
        if value.len() > MAX_BYTES {
            return bad(format!("longer than {MAX_BYTES} bytes"));
        }
        let mut count = 0;
        let mut normalized = true;
        for (i, raw) in value.split(',').enumerate() {
            let member = raw.trim();
            if member.len() != raw.len() || member.is_empty() {
                normalized = false;
            }
            if member.is_empty() {
                continue;
            }
            let Some((key, val, _)) = split_member(member) else {
                return bad(format!("member {i} has no '='"));
            };
            if !token(key) {
                return bad(format!("member {i}: the key is not a token"));
            }
            if percent_decode_str(val).decode_utf8().is_err() {
                return bad(format!("member {i}: the value does not decode to UTF-8"));
            }
            if count == MAX_MEMBERS {
                return bad(format!("more than {MAX_MEMBERS} members"));
            }
            count += 1;
        }
        if count == 0 {
            return Ok(Baggage(None));
        }
        if normalized {
            return Ok(Baggage(Some(Arc::from(value))));
        }
        let joined = value
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .collect::<Vec<_>>()
            .join(",");
        Ok(Baggage(Some(Arc::from(joined))))
    }

    /// The entries: `(key, value percent-decoded, properties)`.
    pub fn entries(&self) -> impl Iterator<Item = (&str, Cow<'_, str>, &str)> {
        self.0
            .as_deref()
            .unwrap_or("")
            .split(',')
            .filter_map(split_member)
            .map(|(k, v, p)| {
                let decoded = percent_decode_str(v)
                    .decode_utf8()
                    .unwrap_or(Cow::Borrowed(v));
                (k, decoded, p)
            })
    }

    /// The value of `key`, percent-decoded.
    pub fn get(&self, key: &str) -> Option<Cow<'_, str>> {
        self.entries().find(|(k, ..)| *k == key).map(|(_, v, _)| v)
    }

    /// True with no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The header value (at most [`MAX_BYTES`]: longer headers are refused when read).
    pub fn to_header(&self) -> &str {
        self.0.as_deref().unwrap_or("")
    }
}
