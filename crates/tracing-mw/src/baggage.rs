//! W3C `baggage`: application key-values that travel with the request.

use std::borrow::Cow;

use http::HeaderValue;
use percent_encoding::percent_decode_str;

use crate::tracestate::{normal_form, split_at_byte, split_list};

use crate::error::HeaderError;

/// Most members kept (the spec asks to propagate at least 64).
pub const MAX_MEMBERS: usize = 64;
/// Most bytes of header kept (the spec asks to propagate at least 8192).
pub const MAX_BYTES: usize = 8192;

/// A parsed `baggage` header: `(key, value, properties)` entries, in order.
///
/// Kept as the validated header value (members trimmed and separated by `,`): read from a
/// request and passed on without copying; values are percent-decoded when read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Baggage(Option<HeaderValue>);

fn split_member(member: &str) -> Option<(&str, &str, &str)> {
    let (pair, properties) = split_at_byte(member, b';').unwrap_or((member, ""));
    let (key, value) = split_at_byte(pair, b'=')?;
    Some((key.trim(), value.trim(), properties.trim()))
}

/// W3C `baggage-octet`: visible ASCII except `"`, `,`, `;` and `\` (anything else must be
/// percent-encoded).
fn value_ok(value: &str) -> bool {
    value
        .bytes()
        .all(|c| matches!(c, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e))
}

/// Member properties: `;`-separated `key` or `key=value`, keys tokens, values baggage-octets.
fn properties_ok(properties: &str) -> bool {
    properties.is_empty()
        || split_list(properties, b';').all(|p| {
            let p = p.trim();
            match split_at_byte(p, b'=') {
                Some((k, v)) => token(k.trim()) && value_ok(v.trim()),
                None => token(p),
            }
        })
}

/// Checks a whole baggage list; `Ok(true)` when it is already in normal form.
fn validate(value: &str) -> Result<bool, HeaderError> {
    let bad = |reason: String| Err(HeaderError::new("baggage", reason));
    if value.len() > MAX_BYTES {
        return bad(format!("longer than {MAX_BYTES} bytes"));
    }
    let mut count = 0;
    let mut normalized = true;
    for (i, raw) in split_list(value, b',').enumerate() {
        let member = raw.trim();
        if member.len() != raw.len() || member.is_empty() {
            normalized = false;
        }
        if member.is_empty() {
            continue;
        }
        let Some((key, val, properties)) = split_member(member) else {
            return bad(format!("member {i} has no '='"));
        };
        if !token(key) {
            return bad(format!("member {i}: the key is not a token"));
        }
        if !value_ok(val) {
            return bad(format!(
                "member {i}: the value has characters that must be percent-encoded"
            ));
        }
        if !properties_ok(properties) {
            return bad(format!(
                "member {i}: a property is not `key` or `key=value`"
            ));
        }
        // Only escaped values need decoding to be checked: the rest is already UTF-8.
        if val.as_bytes().contains(&b'%') && percent_decode_str(val).decode_utf8().is_err() {
            return bad(format!("member {i}: the value does not decode to UTF-8"));
        }
        if count == MAX_MEMBERS {
            return bad(format!("more than {MAX_MEMBERS} members"));
        }
        count += 1;
    }
    Ok(normalized && count > 0)
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
        if validate(value)? {
            return Ok(Baggage(HeaderValue::from_str(value).ok()));
        }
        Ok(Baggage(normal_form(value, str::trim)))
    }

    /// Parses one header line as received, keeping the caller's bytes when they are already
    /// in normal form.
    pub fn from_header(value: &HeaderValue) -> Result<Self, HeaderError> {
        let text = value
            .to_str()
            .map_err(|_| HeaderError::new("baggage", "not visible ASCII"))?;
        if validate(text)? {
            return Ok(Baggage(Some(value.clone())));
        }
        Ok(Baggage(normal_form(text, str::trim)))
    }

    fn text(&self) -> &str {
        self.0
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The entries: `(key, value percent-decoded, properties)`.
    pub fn entries(&self) -> impl Iterator<Item = (&str, Cow<'_, str>, &str)> {
        split_list(self.text(), b',')
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
        self.text()
    }

    /// The value to send: the received bytes.
    pub(crate) fn header_value(&self) -> Option<HeaderValue> {
        self.0.clone()
    }
}
