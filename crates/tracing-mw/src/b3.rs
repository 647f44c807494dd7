//! Zipkin B3 propagation, single (`b3`) and multi-header (`X-B3-*`) forms.

use crate::context::{SpanId, TraceId};
use crate::error::HeaderError;
use crate::header;

/// B3's sampling decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sampling {
    /// `1`: sampled.
    Accept,
    /// `0`: not sampled.
    Deny,
    /// `d` / `X-B3-Flags: 1`: debug (sampled, and forced).
    Debug,
    /// Absent: the receiver decides.
    Defer,
}

/// What B3 headers carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct B3 {
    /// The trace and span; `None` for a sampling-only header (`b3: 0`).
    pub ids: Option<(TraceId, SpanId)>,
    /// The caller's parent span, if sent.
    pub parent_span_id: Option<SpanId>,
    /// The sampling decision.
    pub sampling: Sampling,
}

fn sampling(s: &str, header: &'static str) -> Result<Sampling, HeaderError> {
    match s {
        "1" | "true" => Ok(Sampling::Accept),
        "0" | "false" => Ok(Sampling::Deny),
        "d" => Ok(Sampling::Debug),
        _ => Err(HeaderError::new(header, "sampling state is not 1, 0 or d")),
    }
}

impl B3 {
    /// Parses the single header: `{traceid}-{spanid}[-{1|0|d}[-{parentspanid}]]`, or a lone
    /// sampling state.
    pub fn parse_single(value: &str) -> Result<Self, HeaderError> {
        let bad = |reason: &str| Err(HeaderError::new(header::B3, reason));
        let parts: Vec<&str> = value.trim().split('-').collect();
        if parts.len() == 1 {
            return Ok(B3 {
                ids: None,
                parent_span_id: None,
                sampling: sampling(parts[0], header::B3)?,
            });
        }
        if parts.len() > 4 {
            return bad("more than 4 fields");
        }
        let Some(trace_id) = TraceId::from_hex(parts[0]) else {
            return bad("trace id is not 16 or 32 lowercase hex digits, or is zero");
        };
        let Some(span_id) = SpanId::from_hex(parts[1]) else {
            return bad("span id is not 16 lowercase hex digits, or is zero");
        };
        let sampling = match parts.get(2) {
            Some(s) => sampling(s, header::B3)?,
            None => Sampling::Defer,
        };
        let parent_span_id = match parts.get(3) {
            Some(p) => Some(SpanId::from_hex(p).ok_or_else(|| {
                HeaderError::new(
                    header::B3,
                    "parent span id is not 16 lowercase hex digits, or is zero",
                )
            })?),
            None => None,
        };
        Ok(B3 {
            ids: Some((trace_id, span_id)),
            parent_span_id,
            sampling,
        })
    }

    /// Parses the multi-header form from `(name, value)` lookups of `X-B3-TraceId`,
    /// `X-B3-SpanId`, `X-B3-ParentSpanId`, `X-B3-Sampled` and `X-B3-Flags`.
    pub fn parse_multi(
        trace_id: Option<&str>,
        span_id: Option<&str>,
        parent_span_id: Option<&str>,
        sampled: Option<&str>,
        flags: Option<&str>,
    ) -> Result<Self, HeaderError> {
        let sampling = if flags.map(str::trim) == Some("1") {
            Sampling::Debug
        } else {
            match sampled.map(str::trim) {
                Some(s) => sampling(s, header::X_B3_SAMPLED)?,
                None => Sampling::Defer,
            }
        };
        let ids = match (trace_id, span_id) {
            (Some(t), Some(s)) => Some((
                TraceId::from_hex(t.trim()).ok_or_else(|| {
                    HeaderError::new(
                        header::X_B3_TRACEID,
                        "not 16 or 32 lowercase hex digits, or zero",
                    )
                })?,
                SpanId::from_hex(s.trim()).ok_or_else(|| {
                    HeaderError::new(header::X_B3_SPANID, "not 16 lowercase hex digits, or zero")
                })?,
            )),
            (None, None) => None,
            (Some(_), None) => {
                return Err(HeaderError::new(
                    header::X_B3_SPANID,
                    "missing beside X-B3-TraceId",
                ));
            }
            (None, Some(_)) => {
                return Err(HeaderError::new(
                    header::X_B3_TRACEID,
                    "missing beside X-B3-SpanId",
                ));
            }
        };
        let parent_span_id = match parent_span_id {
            Some(p) => Some(SpanId::from_hex(p.trim()).ok_or_else(|| {
                HeaderError::new(
                    header::X_B3_PARENTSPANID,
                    "not 16 lowercase hex digits, or zero",
                )
            })?),
            None => None,
        };
        Ok(B3 {
            ids,
            parent_span_id,
            sampling,
        })
    }

    /// The single-header value.
    pub fn to_single(&self) -> String {
        let state = match self.sampling {
            Sampling::Accept => Some("1"),
            Sampling::Deny => Some("0"),
            Sampling::Debug => Some("d"),
            Sampling::Defer => None,
        };
        match (self.ids, state) {
            (None, Some(state)) => state.to_owned(),
            (None, None) => String::new(),
            (Some((t, s)), state) => {
                let mut out = format!("{t}-{s}");
                if let Some(state) = state {
                    out.push('-');
                    out.push_str(state);
                    if let Some(p) = self.parent_span_id {
                        out.push('-');
                        out.push_str(&p.to_string());
                    }
                }
                out
            }
        }
    }
}
