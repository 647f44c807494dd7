//! The names of every header this crate reads or writes, spelled once: as text (for
//! messages, [`HeaderError::header`](crate::HeaderError)) and as `HeaderName`s built at compile
//! time (looking a header up by `&str` parses the name on every call).

/// `traceparent`.
pub const TRACEPARENT: &str = "traceparent";
/// `tracestate`.
pub const TRACESTATE: &str = "tracestate";
/// `baggage`.
pub const BAGGAGE: &str = "baggage";
/// `x-request-id`.
pub const X_REQUEST_ID: &str = "x-request-id";
/// `b3`.
pub const B3: &str = "b3";
/// `x-b3-traceid`.
pub const X_B3_TRACEID: &str = "x-b3-traceid";
/// `x-b3-spanid`.
pub const X_B3_SPANID: &str = "x-b3-spanid";
/// `x-b3-parentspanid`.
pub const X_B3_PARENTSPANID: &str = "x-b3-parentspanid";
/// `x-b3-sampled`.
pub const X_B3_SAMPLED: &str = "x-b3-sampled";
/// `x-b3-flags`.
pub const X_B3_FLAGS: &str = "x-b3-flags";
/// `x-amzn-trace-id`.
pub const X_AMZN_TRACE_ID: &str = "x-amzn-trace-id";

/// The same names as `HeaderName`s.
pub(crate) mod names {
    use http::HeaderName;

    pub(crate) static TRACEPARENT: HeaderName = HeaderName::from_static(super::TRACEPARENT);
    pub(crate) static TRACESTATE: HeaderName = HeaderName::from_static(super::TRACESTATE);
    pub(crate) static BAGGAGE: HeaderName = HeaderName::from_static(super::BAGGAGE);
    pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static(super::X_REQUEST_ID);
    pub(crate) static B3_SINGLE: HeaderName = HeaderName::from_static(super::B3);
    pub(crate) static X_B3_TRACEID: HeaderName = HeaderName::from_static(super::X_B3_TRACEID);
    pub(crate) static X_B3_SPANID: HeaderName = HeaderName::from_static(super::X_B3_SPANID);
    pub(crate) static X_B3_PARENTSPANID: HeaderName =
        HeaderName::from_static(super::X_B3_PARENTSPANID);
    pub(crate) static X_B3_SAMPLED: HeaderName = HeaderName::from_static(super::X_B3_SAMPLED);
    pub(crate) static X_B3_FLAGS: HeaderName = HeaderName::from_static(super::X_B3_FLAGS);
}
