//! W3C `tracestate`: vendor entries that travel with the trace, with the spec's limits.

use std::borrow::Cow;

use http::HeaderValue;

use crate::error::HeaderError;
use crate::header;

/// Most members a tracestate may hold.
pub const MAX_MEMBERS: usize = 32;
/// What we send at most; longer lists are truncated by the spec's rule.
pub const MAX_HEADER_LEN: usize = 512;

/// A parsed `tracestate`: `key=value` members, leftmost first.
///
/// Kept as the validated header value (members separated by `,`, empty members and optional
/// white space removed): read from a request and passed on without copying.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TraceState(Option<HeaderValue>);

/// A table of the bytes a condition holds for: one load per byte in the hot loops below.
macro_rules! byte_table {
    (|$c:ident| $allowed:expr) => {{
        let mut table = [false; 256];
        let mut i = 0;
        while i < 256 {
            let $c = i as u8;
            table[i] = $allowed;
            i += 1;
        }
        table
    }};
}
pub(crate) use byte_table;

const KEY_CHAR: [bool; 256] = byte_table!(|c| {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'*' | b'/')
});
const VALUE_CHAR: [bool; 256] = byte_table!(|c| c >= 0x20 && c <= 0x7e && c != b',' && c != b'=');

fn simple_key(key: &str) -> bool {
    let b = key.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|&c| KEY_CHAR[c as usize])
}

fn valid_key(key: &str) -> bool {
    match split_at_byte(key, b'@') {
        // Multi-tenant `tenant@system`: tenant up to 241, system up to 14 characters.
        Some((tenant, system)) => {
            tenant.len() <= 241
                && system.len() <= 14
                && simple_key(tenant)
                && simple_key(system)
                && system.as_bytes()[0].is_ascii_lowercase()
        }
        None => simple_key(key),
    }
}

fn valid_value(value: &str) -> bool {
    let b = value.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && b.iter().all(|&c| VALUE_CHAR[c as usize])
        && b[b.len() - 1] != b' '
}

/// Trims optional white space (space and tab; a header value holds no other ASCII white
/// space that `trim_ascii` would also take).
pub(crate) fn trim_ows(member: &str) -> &str {
    member.trim_ascii()
}

/// `s` split at the first `byte` (an ASCII byte, so both halves are `str`).
pub(crate) fn split_at_byte(s: &str, byte: u8) -> Option<(&str, &str)> {
    let i = s.bytes().position(|b| b == byte)?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

/// The list's items split at ASCII `sep` (faster than `str::split` with a `char`).
pub(crate) fn split_list(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let current = rest?;
        match split_at_byte(current, sep) {
            Some((item, tail)) => {
                rest = Some(tail);
                Some(item)
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

fn split_members(text: &str) -> impl Iterator<Item = (&str, &str)> {
    split_list(text, b',').filter_map(|m| split_at_byte(m, b'='))
}

/// One pass over a header already in normal form (no white space around members, no empty
/// members): true only when [`validate`] would answer `Ok(true)`; false sends the header
/// through [`validate`], which also words the errors. Works on bytes, so no separate
/// visible-ASCII check is needed (every byte it accepts is visible ASCII or a space).
fn valid_and_normal(b: &[u8]) -> bool {
    let mut keys: [&[u8]; MAX_MEMBERS] = [&[]; MAX_MEMBERS];
    let (mut count, mut i) = (0, 0);
    loop {
        let start = i;
        let mut at = None;
        while i < b.len() && b[i] != b'=' {
            match b[i] {
                b'@' if at.is_none() => at = Some(i),
                c if KEY_CHAR[c as usize] => {}
                _ => return false,
            }
            i += 1;
        }
        if i == b.len() {
            return false;
        }
        let key = &b[start..i];
        let first_ok = |part: &[u8]| {
            part.first()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        };
        let key_ok = match at {
            Some(at) => {
                let (tenant, system) = (&b[start..at], &b[at + 1..i]);
                first_ok(tenant)
                    && tenant.len() <= 241
                    && system.first().is_some_and(u8::is_ascii_lowercase)
                    && system.len() <= 14
            }
            None => first_ok(key) && key.len() <= 256,
        };
        i += 1;
        let value_start = i;
        while i < b.len() && b[i] != b',' {
            if !VALUE_CHAR[b[i] as usize] {
                return false;
            }
            i += 1;
        }
        let value = &b[value_start..i];
        if !key_ok
            || value.is_empty()
            || value.len() > 256
            || value.last() == Some(&b' ')
            || count == MAX_MEMBERS
            || keys[..count].contains(&key)
        {
            return false;
        }
        keys[count] = key;
        count += 1;
        if i == b.len() {
            return true;
        }
        i += 1; // the ','
        if i == b.len() {
            return false; // an empty last member
        }
    }
}

/// Checks a whole tracestate list; `Ok(true)` when it is already in normal form.
fn validate(value: &str) -> Result<bool, HeaderError> {
    let bad = |reason: String| Err(HeaderError::new(header::TRACESTATE, reason));
    let mut keys: [&str; MAX_MEMBERS] = [""; MAX_MEMBERS];
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
        let Some((key, val)) = split_at_byte(member, b'=') else {
            return bad(format!("member {i} has no '='"));
        };
        if !valid_key(key) {
            return bad(format!("member {i}: the key is not a valid tracestate key"));
        }
        if !valid_value(val) {
            return bad(format!(
                "member {i}: the value is not a valid tracestate value"
            ));
        }
        if count == MAX_MEMBERS {
            return bad(format!("more than {MAX_MEMBERS} members"));
        }
        if keys[..count].contains(&key) {
            return bad(format!("member {i}: duplicate key"));
        }
        keys[count] = key;
        count += 1;
    }
    Ok(normalized && count > 0)
}

/// A validated list in normal form: members trimmed by `trim`, empty ones dropped, joined
/// with `,`; `None` when nothing is left. Shared by tracestate and baggage.
pub(crate) fn normal_form(value: &str, trim: fn(&str) -> &str) -> Option<HeaderValue> {
    let joined = split_list(value, b',')
        .map(trim)
        .filter(|m| !m.is_empty())
        .collect::<Vec<_>>()
        .join(",");
    (!joined.is_empty())
        .then(|| HeaderValue::from_str(&joined).ok())
        .flatten()
}

impl TraceState {
    /// Parses the header's value (several header lines are joined with `,` first). Empty
    /// members are allowed and skipped; anything else invalid refuses the whole header.
    pub fn parse(value: &str) -> Result<Self, HeaderError> {
        if validate(value)? {
            return Ok(TraceState(HeaderValue::from_str(value).ok()));
        }
        Ok(TraceState(normal_form(value, trim_ows)))
    }

    /// Parses one header line as received, keeping the caller's bytes when they are already
    /// in normal form.
    pub fn from_header(value: &HeaderValue) -> Result<Self, HeaderError> {
        if valid_and_normal(value.as_bytes()) {
            return Ok(TraceState(Some(value.clone())));
        }
        let text = value
            .to_str()
            .map_err(|_| HeaderError::new(header::TRACESTATE, "not visible ASCII"))?;
        if validate(text)? {
            return Ok(TraceState(Some(value.clone())));
        }
        Ok(TraceState(normal_form(text, trim_ows)))
    }

    fn text(&self) -> &str {
        self.0
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The members `(key, value)`, leftmost first.
    pub fn members(&self) -> impl Iterator<Item = (&str, &str)> {
        split_members(self.text())
    }

    /// True with no members.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.members().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Sets `key` (a modified key moves to the front, as the spec asks); an invalid key or
    /// value is refused and nothing changes.
    pub fn insert(&mut self, key: &str, value: &str) -> Result<(), HeaderError> {
        if !valid_key(key) || !valid_value(value) {
            return Err(HeaderError::new(
                header::TRACESTATE,
                "invalid key or value to insert",
            ));
        }
        let mut members = vec![format!("{key}={value}")];
        members.extend(
            self.members()
                .filter(|(k, _)| *k != key)
                .take(MAX_MEMBERS - 1)
                .map(|(k, v)| format!("{k}={v}")),
        );
        self.0 = HeaderValue::from_str(&members.join(",")).ok();
        Ok(())
    }

    /// The header value, at most [`MAX_HEADER_LEN`] characters: when too long, members over
    /// 128 characters are dropped first, then members from the right.
    pub fn to_header(&self) -> Cow<'_, str> {
        let text = self.text();
        if text.len() <= MAX_HEADER_LEN {
            return Cow::Borrowed(text);
        }
        let len = |members: &[(&str, &str)]| {
            members
                .iter()
                .map(|(k, v)| k.len() + v.len() + 1)
                .sum::<usize>()
                + members.len().saturating_sub(1)
        };
        let mut kept: Vec<(&str, &str)> = self.members().collect();
        // A member is `key=value`: over 128 characters means key + value >= 128.
        kept.retain(|(k, v)| k.len() + v.len() < 128);
        while len(&kept) > MAX_HEADER_LEN {
            kept.pop();
        }
        Cow::Owned(
            kept.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        )
    }

    /// The value to send (the received bytes when within [`MAX_HEADER_LEN`]).
    pub(crate) fn header_value(&self) -> Option<HeaderValue> {
        let value = self.0.as_ref()?;
        if value.len() <= MAX_HEADER_LEN {
            return Some(value.clone());
        }
        HeaderValue::from_str(&self.to_header()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]

        /// The one-pass check says yes exactly when the full one says "valid, normal form".
        #[test]
        fn the_fast_path_agrees_with_validate(s in "[a-z0-9=,@ _*/~-]{0,80}") {
            prop_assert_eq!(valid_and_normal(s.as_bytes()), validate(&s) == Ok(true), "{:?}", s);
        }

        #[test]
        fn the_fast_path_takes_valid_lists(
            members in proptest::collection::vec(("[a-z][a-z0-9_*/-]{0,12}(@[a-z][a-z0-9]{0,5})?", "[a-z0-9!#&*+./:;<>?_~-][a-z0-9 !#&*+./:;<>?_~-]{0,20}[a-z0-9!#&*+./:;<>?_~-]"), 1..5)
        ) {
            let text = members.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
            prop_assert_eq!(valid_and_normal(text.as_bytes()), validate(&text) == Ok(true), "{:?}", text);
        }
    }
}
