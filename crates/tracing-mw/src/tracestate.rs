//! W3C `tracestate`: vendor entries that travel with the trace, with the spec's limits.

use std::borrow::Cow;
use std::sync::Arc;

use crate::error::HeaderError;

/// Most members a tracestate may hold.
pub const MAX_MEMBERS: usize = 32;
/// What we send at most; longer lists are truncated by the spec's rule.
pub const MAX_HEADER_LEN: usize = 512;

/// A parsed `tracestate`: `key=value` members, leftmost first.
///
/// Kept as the validated header text (members separated by `,`, empty members and optional
/// white space removed), so passing it on is a reference-count increment and a copy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TraceState(Option<Arc<str>>);

fn simple_key(key: &str) -> bool {
    let b = key.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|&c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'*' | b'/')
        })
}

fn valid_key(key: &str) -> bool {
    match key.split_once('@') {
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
        && b.iter()
            .all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
        && b[b.len() - 1] != b' '
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn split_members(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split(',').filter_map(|m| m.split_once('='))
}

impl TraceState {
    /// Parses the header's value (several header lines are joined with `,` first). Empty
    /// members are allowed and skipped; anything else invalid refuses the whole header.
    pub fn parse(value: &str) -> Result<Self, HeaderError> {
        let bad = |reason: String| Err(HeaderError::new("tracestate", reason));
        let mut count = 0;
        let mut normalized = true;
        for (i, raw) in value.split(',').enumerate() {
            let member = raw.trim_matches(is_ows);
            if member.len() != raw.len() || member.is_empty() {
                normalized = false;
            }
            if member.is_empty() {
                continue;
            }
            let Some((key, val)) = member.split_once('=') else {
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
            let earlier = value.split(',').take(i).map(|m| m.trim_matches(is_ows));
            if earlier
                .filter_map(|m| m.split_once('='))
                .any(|(k, _)| k == key)
            {
                return bad(format!("member {i}: duplicate key"));
            }
            if count == MAX_MEMBERS {
                return bad(format!("more than {MAX_MEMBERS} members"));
            }
            count += 1;
        }
        if count == 0 {
            return Ok(TraceState(None));
        }
        if normalized {
            return Ok(TraceState(Some(Arc::from(value))));
        }
        let joined = value
            .split(',')
            .map(|m| m.trim_matches(is_ows))
            .filter(|m| !m.is_empty())
            .collect::<Vec<_>>()
            .join(",");
        Ok(TraceState(Some(Arc::from(joined))))
    }

    /// The members `(key, value)`, leftmost first.
    pub fn members(&self) -> impl Iterator<Item = (&str, &str)> {
        split_members(self.0.as_deref().unwrap_or(""))
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
                "tracestate",
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
        self.0 = Some(Arc::from(members.join(",")));
        Ok(())
    }

    /// The header value, at most [`MAX_HEADER_LEN`] characters: when too long, members over
    /// 128 characters are dropped first, then members from the right.
    pub fn to_header(&self) -> Cow<'_, str> {
        let text = self.0.as_deref().unwrap_or("");
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
}
