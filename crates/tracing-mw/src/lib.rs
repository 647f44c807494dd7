//! Trace-context propagation for Tower services, OpenTelemetry export and log correlation.
//!
//! - [`ServerLayer`] reads the caller's context from the request, opens a `tracing` span with
//!   OpenTelemetry's HTTP server fields whose OpenTelemetry parent is the caller, answers with
//!   the request id, and gives handler code a [`RequestContext`] (request extensions, or
//!   [`RequestContext::current`] anywhere under the span, spawned instrumented tasks included).
//! - [`ClientLayer`] opens a client span for each outgoing call and writes the context into it
//!   (W3C `traceparent`/`tracestate`, `baggage`, optionally B3, and `x-request-id`).
//! - `init` (feature `otlp`) sets up `tracing-subscriber` + `tracing-opentelemetry` +
//!   `opentelemetry-otlp` (gRPC or HTTP) from the standard `OTEL_*` variables, with JSON log
//!   lines that carry `trace_id` and `span_id`.
//!
//! The header parsers apply the specifications strictly (the OpenTelemetry SDK's own
//! `traceparent` parser accepts malformed ids; these do not), each refusing bad input with a
//! [`HeaderError`] that says what is wrong without repeating the value:
//!
//! - [`TraceParent`] (W3C `traceparent`) and [`TraceState`] (W3C `tracestate`, 32 members,
//!   512 characters sent, truncation by the spec's rule);
//! - [`Baggage`] (W3C `baggage`, 64 members, 8192 bytes);
//! - [`B3`] (Zipkin, single and multi-header);
//! - [`RequestId`] (`X-Request-Id`) and [`AmznTraceId`] (`X-Amzn-Trace-Id`).
//!
//! An invalid `traceparent` starts a new trace (and its `tracestate` is dropped); an invalid
//! or missing request id is replaced by a new one; header values over 8 KiB are ignored.
//!
//! ```
//! use breakwater_tracing_mw::{ClientLayer, Formats, RequestContext, ServerLayer};
//! use http::{Request, Response};
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // Outgoing calls carry the context of the request being served.
//! let downstream = ClientLayer::new(Formats::default()).layer(service_fn(
//!     |call: Request<()>| async move {
//!         assert!(call.headers().contains_key("traceparent"));
//!         Ok::<_, std::convert::Infallible>(Response::new(()))
//!     },
//! ));
//! let service = ServerLayer::new(Formats::default()).layer(service_fn(move |req: Request<()>| {
//!     let downstream = downstream.clone();
//!     async move {
//!         let context = req.extensions().get::<RequestContext>().unwrap().clone();
//!         downstream.oneshot(Request::new(())).await?;
//!         Ok::<_, std::convert::Infallible>(Response::new(context.trace_id.to_string()))
//!     }
//! }));
//! let request = Request::get("/orders")
//!     .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
//!     .body(())
//!     .unwrap();
//! let response = service.oneshot(request).await.unwrap();
//! assert_eq!(response.body(), "4bf92f3577b34da6a3ce929d0e0e4736");
//! assert!(response.headers().contains_key("x-request-id"));
//! # }
//! ```

//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `otlp` | off | `init`: the subscriber, the OpenTelemetry SDK and OTLP export (tonic, hyper). Without it the crate needs only `opentelemetry`'s API and `tracing-opentelemetry`: the layers still set OpenTelemetry parents, for whichever subscriber the program installs. |

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod b3;
pub mod baggage;
pub mod context;
pub mod error;
pub mod extract;
pub mod header;
#[cfg(feature = "otlp")]
pub mod init;
pub mod layer;
pub mod request_id;
pub mod tracestate;

pub use b3::{B3, Sampling};
pub use baggage::Baggage;
pub use context::{SpanId, TraceFlags, TraceId, TraceParent};
pub use error::HeaderError;
pub use extract::{B3Form, Extracted, Formats, Outgoing, RemoteParent, extract, inject};
#[cfg(feature = "otlp")]
pub use init::{TelemetryGuard, init};
pub use layer::{
    ClientFuture, ClientLayer, ClientService, RequestContext, ServerFuture, ServerLayer,
    ServerService,
};
pub use request_id::{AmznTraceId, RequestId};
pub use tracestate::TraceState;
