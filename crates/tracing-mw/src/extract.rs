//! Reading and writing every supported header on an `http::HeaderMap`.

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::b3::{B3, Sampling};
use crate::baggage::Baggage;
use crate::context::{SpanId, TraceFlags, TraceId, TraceParent};
use crate::error::HeaderError;
use crate::request_id::{AmznTraceId, RequestId};
use crate::tracestate::TraceState;

use crate::header as name;
use crate::header::names::*;

/// The longest header value read; longer ones are ignored (and reported).
pub const MAX_HEADER_BYTES: usize = 8192;

/// Which formats to read and write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formats {
    /// W3C `traceparent` + `tracestate` (read and written).
    pub w3c: bool,
    /// W3C `baggage` (read and written).
    pub baggage: bool,
    /// Zipkin B3 read (single and multi); written when `b3_inject` says so.
    pub b3: bool,
    /// Which B3 form to write, if any.
    pub b3_inject: Option<B3Form>,
    /// `X-Amzn-Trace-Id` read (never written).
    pub amzn: bool,
    /// `X-Request-Id` read, generated when absent or invalid, written on responses and calls.
    pub request_id: bool,
}

/// A B3 form to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum B3Form {
    /// The `b3` header.
    Single,
    /// The `X-B3-*` headers.
    Multi,
}

impl Default for Formats {
    /// Read W3C, baggage, B3 and request ids; write W3C, baggage and request ids.
    fn default() -> Self {
        Formats {
            w3c: true,
            baggage: true,
            b3: true,
            b3_inject: None,
            amzn: false,
            request_id: true,
        }
    }
}

/// The caller's trace context, as read from one of the formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteParent {
    /// The trace.
    pub trace_id: TraceId,
    /// The caller's span.
    pub span_id: SpanId,
    /// Sampled and random bits.
    pub flags: TraceFlags,
    /// W3C tracestate (empty unless it came with a valid traceparent).
    pub trace_state: TraceState,
    /// The format it came in.
    pub source: &'static str,
}

/// Everything read from a request's headers.
#[derive(Debug, Clone, Default)]
pub struct Extracted {
    /// The caller's context; `None` starts a new trace.
    pub parent: Option<RemoteParent>,
    /// The caller's baggage.
    pub baggage: Baggage,
    /// The caller's request id, if valid.
    pub request_id: Option<RequestId>,
    /// Headers that were present but refused (their values are not kept).
    pub refused: Vec<HeaderError>,
    /// A sampling decision sent without ids (`b3: 0`, `b3: d`, `X-B3-Sampled` alone): the
    /// new trace follows it.
    pub sampled: Option<bool>,
}

/// How often a header came, and its value when once.
#[derive(Debug, Default, Clone, Copy)]
enum Lines<'a> {
    #[default]
    Absent,
    One(&'a HeaderValue),
    Many,
}

impl<'a> Lines<'a> {
    /// The value of a header that may come once; `None` when absent, and when sent more
    /// than once (refused, by `name`).
    fn once(self, name: &'static str, refused: &mut Vec<HeaderError>) -> Option<&'a HeaderValue> {
        match self {
            Lines::Absent => None,
            Lines::One(value) => Some(value),
            Lines::Many => {
                refused.push(HeaderError::new(name, "sent more than once"));
                None
            }
        }
    }
}

/// Every header read here, found in one pass over the map: a look-up per name would hash
/// each name (present or not) and probe the table, four to ten times per request.
#[derive(Debug, Default)]
struct Found<'a> {
    traceparent: Lines<'a>,
    tracestate: Lines<'a>,
    baggage: Lines<'a>,
    request_id: Lines<'a>,
    b3: Lines<'a>,
    b3_trace_id: Lines<'a>,
    b3_span_id: Lines<'a>,
    b3_parent_span_id: Lines<'a>,
    b3_sampled: Lines<'a>,
    b3_flags: Lines<'a>,
    amzn: Lines<'a>,
}

impl<'a> Found<'a> {
    fn scan(headers: &'a HeaderMap) -> Self {
        let mut found = Found::default();
        for (name, value) in headers {
            let lines = match name.as_str() {
                name::TRACEPARENT => &mut found.traceparent,
                name::TRACESTATE => &mut found.tracestate,
                name::BAGGAGE => &mut found.baggage,
                name::X_REQUEST_ID => &mut found.request_id,
                name::B3 => &mut found.b3,
                name::X_B3_TRACEID => &mut found.b3_trace_id,
                name::X_B3_SPANID => &mut found.b3_span_id,
                name::X_B3_PARENTSPANID => &mut found.b3_parent_span_id,
                name::X_B3_SAMPLED => &mut found.b3_sampled,
                name::X_B3_FLAGS => &mut found.b3_flags,
                name::X_AMZN_TRACE_ID => &mut found.amzn,
                _ => continue,
            };
            *lines = match *lines {
                Lines::Absent => Lines::One(value),
                _ => Lines::Many,
            };
        }
        found
    }
}

/// The text of a header that may come once; `None` when absent or refused.
fn one<'a>(
    lines: Lines<'a>,
    name: &'static str,
    refused: &mut Vec<HeaderError>,
) -> Option<&'a str> {
    let value = lines.once(name, refused)?;
    text(value, name, refused)
}

fn text<'a>(
    value: &'a HeaderValue,
    name: &'static str,
    refused: &mut Vec<HeaderError>,
) -> Option<&'a str> {
    if value.len() > MAX_HEADER_BYTES {
        refused.push(HeaderError::new(
            name,
            format!("longer than {MAX_HEADER_BYTES} bytes; ignored"),
        ));
        return None;
    }
    match value.to_str() {
        Ok(s) => Some(s),
        Err(_) => {
            refused.push(HeaderError::new(name, "not visible ASCII"));
            None
        }
    }
}

/// Reads a list header: one line as received (kept without copying when valid), several
/// lines joined with `,` first. `None` when absent or unreadable (reported in `refused`).
fn list<T>(
    headers: &HeaderMap,
    lines: Lines<'_>,
    header: &'static HeaderName,
    refused: &mut Vec<HeaderError>,
    from_header: fn(&HeaderValue) -> Result<T, HeaderError>,
    parse: fn(&str) -> Result<T, HeaderError>,
) -> Option<T> {
    let name = header.as_str();
    let result = match lines {
        Lines::Absent => return None,
        // `from_header` checks the bytes itself: only the length is checked here.
        Lines::One(value) if value.len() > MAX_HEADER_BYTES => {
            text(value, name, refused)?;
            return None;
        }
        Lines::One(value) => from_header(value),
        Lines::Many => {
            let mut joined = String::new();
            for value in headers.get_all(header) {
                if !joined.is_empty() {
                    joined.push(',');
                }
                joined.push_str(text(value, name, refused)?);
                if joined.len() > MAX_HEADER_BYTES {
                    refused.push(HeaderError::new(
                        name,
                        format!("longer than {MAX_HEADER_BYTES} bytes; ignored"),
                    ));
                    return None;
                }
            }
            parse(&joined)
        }
    };
    result.map_err(|e| refused.push(e)).ok()
}

/// The `traceparent` header parsed, when there is exactly one readable line of it.
fn traceparent(
    lines: Lines<'_>,
    refused: &mut Vec<HeaderError>,
) -> Option<Result<TraceParent, HeaderError>> {
    let value = lines.once(name::TRACEPARENT, refused)?;
    // The common form straight from the bytes; anything else the long way, which also says
    // what is wrong.
    match TraceParent::parse_version_00(value.as_bytes()) {
        Some(tp) => Some(Ok(tp)),
        None => text(value, name::TRACEPARENT, refused).map(TraceParent::parse),
    }
}

/// Reads the request's context in the configured formats. Precedence: `traceparent`, then
/// `b3`, then `X-B3-*`, then `X-Amzn-Trace-Id`. An invalid `traceparent` starts a new trace
/// (later formats are not consulted for it) and its `tracestate` is dropped.
pub fn extract(headers: &HeaderMap, formats: &Formats) -> Extracted {
    let found = Found::scan(headers);
    let mut out = Extracted::default();
    let refused = &mut out.refused;
    let mut decided = false;
    if formats.w3c && !matches!(found.traceparent, Lines::Absent) {
        decided = true;
        match traceparent(found.traceparent, refused) {
            Some(Ok(tp)) => {
                let trace_state = list(
                    headers,
                    found.tracestate,
                    &TRACESTATE,
                    refused,
                    TraceState::from_header,
                    TraceState::parse,
                )
                .unwrap_or_default();
                out.parent = Some(RemoteParent {
                    trace_id: tp.trace_id,
                    span_id: tp.parent_id,
                    flags: tp.flags,
                    trace_state,
                    source: name::TRACEPARENT,
                });
            }
            Some(Err(e)) => refused.push(e),
            // Sent more than once: refused above.
            None => {}
        }
    }
    if !decided && formats.b3 {
        let single = one(found.b3, name::B3, refused).map(B3::parse_single);
        let b3 = match single {
            Some(result) => Some(result),
            None => {
                let t = one(found.b3_trace_id, name::X_B3_TRACEID, refused);
                let s = one(found.b3_span_id, name::X_B3_SPANID, refused);
                let p = one(found.b3_parent_span_id, name::X_B3_PARENTSPANID, refused);
                let sampled = one(found.b3_sampled, name::X_B3_SAMPLED, refused);
                let f = one(found.b3_flags, name::X_B3_FLAGS, refused);
                (t.is_some() || s.is_some() || sampled.is_some() || f.is_some())
                    .then(|| B3::parse_multi(t, s, p, sampled, f))
            }
        };
        match b3 {
            Some(Ok(B3 {
                ids: Some((trace_id, span_id)),
                sampling,
                ..
            })) => {
                decided = true;
                let sampled = matches!(sampling, Sampling::Accept | Sampling::Debug);
                out.parent = Some(RemoteParent {
                    trace_id,
                    span_id,
                    flags: TraceFlags::default().with_sampled(sampled),
                    trace_state: TraceState::default(),
                    source: name::B3,
                });
            }
            Some(Ok(B3 { sampling, .. })) => {
                out.sampled = match sampling {
                    Sampling::Deny => Some(false),
                    Sampling::Accept | Sampling::Debug => Some(true),
                    Sampling::Defer => None,
                };
            }
            Some(Err(e)) => refused.push(e),
            None => {}
        }
    }
    if !decided
        && formats.amzn
        && let Some(value) = one(found.amzn, name::X_AMZN_TRACE_ID, refused)
    {
        match AmznTraceId::parse(value) {
            Ok(AmznTraceId {
                trace_id,
                parent_id: Some(span_id),
                sampled,
            }) => {
                out.parent = Some(RemoteParent {
                    trace_id,
                    span_id,
                    flags: TraceFlags::default().with_sampled(sampled.unwrap_or(false)),
                    trace_state: TraceState::default(),
                    source: name::X_AMZN_TRACE_ID,
                });
            }
            Ok(_) => {}
            Err(e) => refused.push(e),
        }
    }
    if formats.baggage
        && let Some(baggage) = list(
            headers,
            found.baggage,
            &BAGGAGE,
            refused,
            Baggage::from_header,
            Baggage::parse,
        )
    {
        out.baggage = baggage;
    }
    if formats.request_id
        && let Some(value) = found.request_id.once(name::X_REQUEST_ID, refused)
    {
        match RequestId::from_header(value) {
            Ok(id) => out.request_id = Some(id),
            Err(e) => refused.push(e),
        }
    }
    out
}

/// What an outgoing call carries.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    /// The trace.
    pub trace_id: TraceId,
    /// The span making the call: the callee's parent.
    pub span_id: SpanId,
    /// The flags.
    pub flags: TraceFlags,
    /// W3C tracestate to pass on.
    pub trace_state: &'a TraceState,
    /// Baggage to pass on.
    pub baggage: &'a Baggage,
    /// The request id to pass on.
    pub request_id: Option<&'a RequestId>,
}

fn set(headers: &mut HeaderMap, name: &HeaderName, value: &[u8]) {
    // Every value written here is built from validated parts, so it is a valid header value.
    if let Ok(value) = HeaderValue::from_bytes(value) {
        headers.insert(name.clone(), value);
    }
}

/// Writes the context in the configured formats, replacing any such headers already set.
pub fn inject(headers: &mut HeaderMap, out: &Outgoing<'_>, formats: &Formats) {
    if formats.w3c {
        let tp = TraceParent {
            trace_id: out.trace_id,
            parent_id: out.span_id,
            flags: out.flags,
        };
        set(headers, &TRACEPARENT, &tp.to_header_bytes());
        match out.trace_state.header_value() {
            Some(value) => headers.insert(TRACESTATE.clone(), value),
            None => headers.remove(&TRACESTATE),
        };
    }
    if let Some(form) = formats.b3_inject {
        // A caller's B3 headers copied onto this request must not mix with ours.
        for name in [
            &B3_SINGLE,
            &X_B3_TRACEID,
            &X_B3_SPANID,
            &X_B3_PARENTSPANID,
            &X_B3_SAMPLED,
            &X_B3_FLAGS,
        ] {
            headers.remove(name);
        }
        {
            let sampling = if out.flags.is_sampled() {
                Sampling::Accept
            } else {
                Sampling::Deny
            };
            let b3 = B3 {
                ids: Some((out.trace_id, out.span_id)),
                parent_span_id: None,
                sampling,
            };
            match form {
                B3Form::Single => set(headers, &B3_SINGLE, b3.to_single().as_bytes()),
                B3Form::Multi => {
                    set(headers, &X_B3_TRACEID, out.trace_id.to_string().as_bytes());
                    set(headers, &X_B3_SPANID, out.span_id.to_string().as_bytes());
                    let sampled: &[u8] = if out.flags.is_sampled() { b"1" } else { b"0" };
                    set(headers, &X_B3_SAMPLED, sampled);
                }
            }
        }
    }
    // As for B3 above: a caller's headers copied onto this request are not passed on as ours
    // (`insert` replaces every earlier value of the name).
    if formats.baggage {
        match out.baggage.header_value() {
            Some(value) => headers.insert(BAGGAGE.clone(), value),
            None => headers.remove(&BAGGAGE),
        };
    }
    if formats.request_id {
        match out.request_id {
            Some(id) => headers.insert(X_REQUEST_ID.clone(), id.as_header().clone()),
            None => headers.remove(&X_REQUEST_ID),
        };
    }
}
