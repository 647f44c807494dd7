//! W3C `baggage`: application key-values that travel with the request.

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use crate::error::HeaderError;

/// Most members kept (the spec asks to propagate at least 64).
pub const MAX_MEMBERS: usize = 64;
/// Most bytes of header kept (the spec asks to propagate at least 8192).
pub const MAX_BYTES: usize = 8192;

/// A parsed `baggage` header: `(key, value, properties)`, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Baggage(Vec<(String, String, String)>);

fn token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

// What must be escaped in a baggage value: controls, space, and `"`, `,`, `;`, `\`, `%`.
const VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b';')
    .add(b'\\')
    .add(b'%');

impl Baggage {
    /// Parses the header's value. A header over [`MAX_BYTES`] or with more than
    /// [`MAX_MEMBERS`] members is refused whole, as is a member that is not
    /// `token=value[;properties]` or whose value does not percent-decode to UTF-8.
    pub fn parse(value: &str) -> Result<Self, HeaderError> {
        let bad = |reason: String| Err(HeaderError::new("baggage", reason));
        if value.len() > MAX_BYTES {
            return bad(format!("longer than {MAX_BYTES} bytes"));
        }
        let mut members = Vec::new();
        for (i, member) in value.split(',').enumerate() {
            let member = member.trim();
            if member.is_empty() {
                continue;
            }
            let (pair, properties) = member.split_once(';').unwrap_or((member, ""));
            let Some((key, val)) = pair.split_once('=') else {
                return bad(format!("member {i} has no '='"));
            };
            let key = key.trim();
            if !token(key) {
                return bad(format!("member {i}: the key is not a token"));
            }
            let Ok(decoded) = percent_decode_str(val.trim()).decode_utf8() else {
                return bad(format!("member {i}: the value does not decode to UTF-8"));
            };
            if members.len() == MAX_MEMBERS {
                return bad(format!("more than {MAX_MEMBERS} members"));
            }
            members.push((
                key.to_owned(),
                decoded.into_owned(),
                properties.trim().to_owned(),
            ));
        }
        Ok(Baggage(members))
    }

    /// The entries: `(key, value, properties)`.
    pub fn entries(&self) -> &[(String, String, String)] {
        &self.0
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, ..)| k == key)
            .map(|(_, v, _)| v.as_str())
    }

    /// True with no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The header value, values percent-encoded; members that would take it over
    /// [`MAX_BYTES`] are left out.
    pub fn to_header(&self) -> String {
        let mut out = String::new();
        for (k, v, props) in &self.0 {
            let mut member = format!("{k}={}", utf8_percent_encode(v, VALUE));
            if !props.is_empty() {
                member.push(';');
                member.push_str(props);
            }
            let extra = member.len() + usize::from(!out.is_empty());
            if out.len() + extra > MAX_BYTES {
                continue;
            }
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(&member);
        }
        out
    }
}
