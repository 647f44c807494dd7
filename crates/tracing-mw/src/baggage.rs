//! W3C `baggage`: application key-values that travel with the request.

use std::borrow::Cow;

use http::HeaderValue;
use percent_encoding::percent_decode_str;

use crate::header;
use crate::tracestate::{byte_table, normal_form, split_at_byte, split_list, trim_ows};

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
    Some((trim_ows(key), trim_ows(value), trim_ows(properties)))
}

const OCTET: [bool; 256] =
    byte_table!(|c| matches!(c, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e));
const TOKEN: [bool; 256] = byte_table!(|c| {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
});

/// W3C `baggage-octet`: visible ASCII except `"`, `,`, `;` and `\` (anything else must be
/// percent-encoded).
fn value_ok(value: &str) -> bool {
    value.bytes().all(|c| OCTET[c as usize])
}

/// Member properties: `;`-separated `key` or `key=value`, keys tokens, values baggage-octets.
fn properties_ok(properties: &str) -> bool {
    properties.is_empty()
        || split_list(properties, b';').all(|p| {
            let p = trim_ows(p);
            match split_at_byte(p, b'=') {
                Some((k, v)) => token(trim_ows(k)) && value_ok(trim_ows(v)),
                None => token(p),
            }
        })
}

/// One pass over a plain list (`key=value` members of tokens and baggage-octets, no white
/// space, properties or percent escapes): true only when [`validate`] would answer
/// `Ok(true)`; anything else goes through [`validate`], which also words the errors.
fn valid_and_plain(b: &[u8]) -> bool {
    if b.len() > MAX_BYTES {
        return false;
    }
    let (mut count, mut i) = (0, 0);
    loop {
        let start = i;
        while i < b.len() && TOKEN[b[i] as usize] && b[i] != b'%' {
            i += 1;
        }
        if i == start || i == b.len() || b[i] != b'=' {
            return false;
        }
        i += 1;
        while i < b.len() && OCTET[b[i] as usize] && b[i] != b'%' {
            i += 1;
        }
        count += 1;
        if count > MAX_MEMBERS {
            return false;
        }
        if i == b.len() {
            return true;
        }
        if b[i] != b',' {
            return false; // a property, an escape, white space or a bad byte
        }
        i += 1;
        if i == b.len() {
            return false; // an empty last member
        }
    }
}

/// Checks a whole baggage list; `Ok(true)` when it is already in normal form.
fn validate(value: &str) -> Result<bool, HeaderError> {
    let bad = |reason: String| Err(HeaderError::new(header::BAGGAGE, reason));
    if value.len() > MAX_BYTES {
        return bad(format!("longer than {MAX_BYTES} bytes"));
    }
    let mut count = 0;
    let mut normalized = true;
    for (i, raw) in split_list(value, b',').enumerate() {
        let member = trim_ows(raw);
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
    !s.is_empty() && s.bytes().all(|c| TOKEN[c as usize])
}

impl Baggage {
    /// Parses the header's value. A header over [`MAX_BYTES`] or with more than
    /// [`MAX_MEMBERS`] members is refused whole, as is a member that is not
    /// `token=value[;properties]` or whose value does not percent-decode to UTF-8.
    pub fn parse(value: &str) -> Result<Self, HeaderError> {
        if validate(value)? {
            return Ok(Baggage(HeaderValue::from_str(value).ok()));
        }
        Ok(Baggage(normal_form(value, trim_ows)))
    }

    /// Parses one header line as received, keeping the caller's bytes when they are already
    /// in normal form.
    pub fn from_header(value: &HeaderValue) -> Result<Self, HeaderError> {
        if valid_and_plain(value.as_bytes()) {
            return Ok(Baggage(Some(value.clone())));
        }
        let text = value
            .to_str()
            .map_err(|_| HeaderError::new(header::BAGGAGE, "not visible ASCII"))?;
        if validate(text)? {
            return Ok(Baggage(Some(value.clone())));
        }
        Ok(Baggage(normal_form(text, trim_ows)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]

        /// The one-pass check never says yes where the full one does not.
        #[test]
        fn the_fast_path_is_never_wrong(s in "[a-zA-Z0-9=,;% !#'*+.^_|~-]{0,80}") {
            if valid_and_plain(s.as_bytes()) {
                prop_assert_eq!(validate(&s), Ok(true), "{:?}", s);
            }
        }

        /// And it takes the plain lists services send.
        #[test]
        fn the_fast_path_takes_plain_lists(
            members in proptest::collection::vec(("[a-zA-Z0-9_.-]{1,12}", "[a-zA-Z0-9_.:/-]{0,20}"), 1..8)
        ) {
            let text = members.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
            prop_assert!(valid_and_plain(text.as_bytes()), "{:?}", text);
            prop_assert_eq!(validate(&text), Ok(true));
        }
    }
}
