//! Trace-context propagation for Tower services.
//!
//! Header parsers that apply the specifications strictly (the OpenTelemetry SDK's own
//! `traceparent` parser accepts malformed ids; these do not), each refusing bad input with a
//! [`HeaderError`] that says what is wrong without repeating the value:
//!
//! - [`TraceParent`] (W3C `traceparent`) and [`TraceState`] (W3C `tracestate`, 32 members,
//!   512 characters sent, truncation by the spec's rule);
//! - [`Baggage`] (W3C `baggage`, 64 members, 8192 bytes);
//! - [`B3`] (Zipkin, single and multi-header);
//! - [`RequestId`] (`X-Request-Id`) and [`AmznTraceId`] (`X-Amzn-Trace-Id`).
//!
//! Status: the parsers are done; the server and client layers, the OpenTelemetry export and
//! log correlation are being built (issue 5).

#![warn(missing_docs)]

pub mod b3;
pub mod baggage;
pub mod context;
pub mod error;
pub mod extract;
pub mod init;
pub mod layer;
pub mod request_id;
pub mod tracestate;

pub use b3::{B3, Sampling};
pub use baggage::Baggage;
pub use context::{SpanId, TraceFlags, TraceId, TraceParent};
pub use error::HeaderError;
pub use extract::{B3Form, Extracted, Formats, Outgoing, RemoteParent, extract, inject};
pub use init::{TelemetryGuard, init};
pub use layer::{
    ClientFuture, ClientLayer, ClientService, RequestContext, ServerLayer, ServerService,
};
pub use request_id::{AmznTraceId, RequestId};
pub use tracestate::TraceState;
