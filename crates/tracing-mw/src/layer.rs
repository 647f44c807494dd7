//! The server-side and client-side Tower layers.
//!
//! [`ServerLayer`] reads the caller's context, opens a `tracing` span with OpenTelemetry's
//! HTTP server fields, makes it the OpenTelemetry parent of that span, and hands handler code
//! a [`RequestContext`] (in the request's extensions, and through
//! [`RequestContext::current`] anywhere under the span). [`ClientLayer`] writes the current
//! context into outgoing requests: the current span is the callee's parent.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use opentelemetry::trace::{
    SpanContext, TraceContextExt, TraceFlags as OtelFlags, TraceState as OtelTraceState,
};
use tower::{Layer, Service};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::baggage::Baggage;
use crate::context::{SpanId, TraceFlags, TraceId};
use crate::extract::{Formats, Outgoing, RemoteParent, extract, inject};
use crate::header::names::X_REQUEST_ID;
use crate::request_id::RequestId;
use crate::tracestate::TraceState;

/// The context of the request being served: what handler code (and logs) need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// The trace this request belongs to (the caller's, or new).
    pub trace_id: TraceId,
    /// This service's span for the request.
    pub span_id: SpanId,
    /// The caller's span, when the request came with a context.
    pub parent_span_id: Option<SpanId>,
    /// Sampled and random bits.
    pub flags: TraceFlags,
    /// W3C tracestate to pass on.
    pub trace_state: TraceState,
    /// Baggage to pass on.
    pub baggage: Baggage,
    /// The request id (the caller's when valid, else a new one).
    pub request_id: RequestId,
}

impl RequestContext {
    /// The context of the request being served: on the task serving it (whatever the
    /// subscriber), and in tasks spawned with `.instrument(span)` under its span when the
    /// OpenTelemetry layer is installed.
    pub fn current() -> Option<RequestContext> {
        if SERVED.is_set() {
            return Some(SERVED.with(RequestContext::clone));
        }
        Self::from_current_span()
    }

    /// The context found through the current span (tasks instrumented with a served span).
    fn from_current_span() -> Option<RequestContext> {
        let span = tracing::Span::current();
        if span.is_disabled() {
            return None;
        }
        span.context()
            .get::<Slot>()
            .and_then(|slot| slot.0.get().cloned())
    }
}

scoped_tls::scoped_thread_local! {
    /// The context of the request whose handler this thread is running right now: lent for
    /// the duration of a call or poll, so reading it copies nothing.
    static SERVED: RequestContext
}

/// Runs `f` with `context` as the served one (the previous one comes back after, even on
/// unwind).
fn with_served<R>(context: &RequestContext, f: impl FnOnce() -> R) -> R {
    SERVED.set(context, f)
}

pin_project_lite::pin_project! {
    /// The handler's future, polled with its request's context as the served one.
    struct WithServed<F> {
        #[pin]
        inner: F,
        context: RequestContext,
    }
}

impl<F: Future> Future for WithServed<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let inner = this.inner;
        with_served(this.context, || inner.poll(cx))
    }
}

/// The protocol version as OpenTelemetry's HTTP conventions write it (`1.1`, `2`).
fn protocol_version(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// `scheme://host[:port]/path` of a URI: no credentials, no query (it often carries personal
/// data).
struct UrlWithoutQuery<'a>(&'a http::Uri);

impl std::fmt::Display for UrlWithoutQuery<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let uri = self.0;
        // Host and port only: the authority may carry `user:password@`.
        write!(
            f,
            "{}://{}",
            uri.scheme_str().unwrap_or("http"),
            uri.host().unwrap_or("")
        )?;
        if let Some(port) = uri.port_u16() {
            write!(f, ":{port}")?;
        }
        f.write_str(uri.path())
    }
}

/// Where the served request's context lives in the OpenTelemetry context of its span. The
/// span's parent must be set before its ids are known, so the slot is filled afterwards.
#[derive(Debug, Clone, Default)]
struct Slot(Arc<std::sync::OnceLock<RequestContext>>);

fn to_otel(trace_id: TraceId, span_id: SpanId, flags: TraceFlags, ts: &TraceState) -> SpanContext {
    let state = OtelTraceState::from_key_value(ts.members()).unwrap_or_default();
    SpanContext::new(
        opentelemetry::trace::TraceId::from_bytes(trace_id.to_bytes()),
        opentelemetry::trace::SpanId::from_bytes(span_id.to_bytes()),
        OtelFlags::new(flags.to_byte()),
        true,
        state,
    )
}

/// Reads the caller's context on the way in. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct ServerLayer {
    formats: Arc<Formats>,
}

impl ServerLayer {
    /// Reads (and answers with) the given formats.
    pub fn new(formats: Formats) -> Self {
        ServerLayer {
            formats: Arc::new(formats),
        }
    }
}

impl<S> Layer<S> for ServerLayer {
    type Service = ServerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerService {
            inner,
            formats: self.formats.clone(),
        }
    }
}

/// The service [`ServerLayer`] makes.
#[derive(Debug, Clone)]
pub struct ServerService<S> {
    inner: S,
    formats: Arc<Formats>,
}

impl<S, B, RB> Service<Request<B>> for ServerService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: std::fmt::Display,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = ServerFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let extracted = extract(request.headers(), &self.formats);
        for refused in &extracted.refused {
            // The header's name and the reason only: values may carry personal data.
            tracing::debug!(header = refused.header, reason = %refused.reason, "propagation header refused");
        }
        let request_id = extracted.request_id.unwrap_or_else(RequestId::generate);
        // Header values are reference-counted: each clone and drop is an atomic operation,
        // so the values below are moved where they can be, not cloned.
        let echo = self
            .formats
            .request_id
            .then(|| request_id.as_header().clone());
        let method = request.method().clone();
        let span = tracing::info_span!(
            "HTTP request",
            otel.name = %method,
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            http.request.method = %method,
            url.path = %request.uri().path(),
            url.scheme = request.uri().scheme_str().unwrap_or("http"),
            network.protocol.version = protocol_version(request.version()),
            http.response.status_code = tracing::field::Empty,
            request_id = %request_id,
        );
        let parent: Option<&RemoteParent> = extracted.parent.as_ref();
        let fallback = || {
            (
                parent.map_or_else(TraceId::random, |p| p.trace_id),
                SpanId::random(),
                parent.map_or_else(
                    || TraceFlags::default().with_sampled(extracted.sampled.unwrap_or(true)),
                    |p| p.flags,
                ),
            )
        };
        // With no subscriber interested in the span, there is no OpenTelemetry work to do.
        let mut slot = None;
        let (trace_id, span_id, flags) = if span.is_disabled() {
            fallback()
        } else {
            let mut otel_parent = opentelemetry::Context::new();
            if let Some(p) = parent {
                otel_parent = otel_parent.with_remote_span_context(to_otel(
                    p.trace_id,
                    p.span_id,
                    p.flags,
                    &p.trace_state,
                ));
            } else if extracted.sampled == Some(false) {
                // The caller said "do not sample" without ids: an unsampled parent makes the
                // SDK's parent-based sampler drop this trace (nothing of it is exported).
                otel_parent = otel_parent.with_remote_span_context(to_otel(
                    TraceId::random(),
                    SpanId::random(),
                    TraceFlags::default(),
                    &TraceState::default(),
                ));
            }
            let filled_later = Slot::default();
            let _ = span.set_parent(otel_parent.with_value(filled_later.clone()));
            slot = Some(filled_later);
            // Our span's ids, from OpenTelemetry when its layer is installed; else our own.
            let own = span.context().span().span_context().clone();
            if own.is_valid() {
                (
                    TraceId::from_bytes(own.trace_id().to_bytes()).unwrap_or_else(TraceId::random),
                    SpanId::from_bytes(own.span_id().to_bytes()).unwrap_or_else(SpanId::random),
                    TraceFlags::from_byte(own.trace_flags().to_u8()),
                )
            } else {
                fallback()
            }
        };
        let (parent_span_id, trace_state) = match extracted.parent {
            Some(p) => (Some(p.span_id), p.trace_state),
            None => (None, TraceState::default()),
        };
        let context = RequestContext {
            trace_id,
            span_id,
            parent_span_id,
            flags,
            trace_state,
            baggage: extracted.baggage,
            request_id,
        };
        // Children of the span (and tasks instrumented with it) find the context there.
        if let Some(slot) = slot {
            let _ = slot.0.set(context.clone());
        }
        request.extensions_mut().insert(context.clone());
        let future = {
            let _entered = span.enter();
            with_served(&context, || self.inner.call(request))
        };
        let future = WithServed {
            inner: future,
            context,
        };
        ServerFuture {
            inner: future,
            span,
            echo,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`ServerService`]: the handler, inside the request's span and with its
    /// context as the served one; records the status and echoes the request id.
    pub struct ServerFuture<F> {
        #[pin]
        inner: WithServed<F>,
        span: tracing::Span,
        echo: Option<http::HeaderValue>,
    }
}

impl<F, RB, E> Future for ServerFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: std::fmt::Display,
{
    type Output = Result<Response<RB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let mut result = std::task::ready!(this.inner.poll(cx));
        match &mut result {
            Ok(response) => {
                let status = response.status();
                this.span
                    .record("http.response.status_code", status.as_u16());
                if status.is_server_error() {
                    this.span.record("otel.status_code", "ERROR");
                }
                if let Some(id) = this.echo.take() {
                    response.headers_mut().insert(X_REQUEST_ID.clone(), id);
                }
            }
            Err(error) => {
                this.span.record("otel.status_code", "ERROR");
                tracing::debug!(%error, "request failed");
            }
        }
        Poll::Ready(result)
    }
}

/// Writes the current context into outgoing requests. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct ClientLayer {
    formats: Arc<Formats>,
}

impl ClientLayer {
    /// Writes the given formats.
    pub fn new(formats: Formats) -> Self {
        ClientLayer {
            formats: Arc::new(formats),
        }
    }
}

impl<S> Layer<S> for ClientLayer {
    type Service = ClientService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientService {
            inner,
            formats: self.formats.clone(),
        }
    }
}

/// The service [`ClientLayer`] makes.
#[derive(Debug, Clone)]
pub struct ClientService<S> {
    inner: S,
    formats: Arc<Formats>,
}

impl<S, B, RB> Service<Request<B>> for ClientService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: std::fmt::Display,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = ClientFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let method = request.method().clone();
        let uri = request.uri();
        let span = tracing::info_span!(
            "HTTP request",
            otel.name = %method,
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            http.request.method = %method,
            server.address = uri.host().unwrap_or(""),
            server.port = uri.port_u16().or_else(|| match uri.scheme_str() {
                Some("https") => Some(443),
                _ => Some(80),
            }),
            url.full = %UrlWithoutQuery(uri),
            http.response.status_code = tracing::field::Empty,
        );
        let current = if span.is_disabled() {
            opentelemetry::trace::SpanContext::empty_context()
        } else {
            span.context().span().span_context().clone()
        };
        // The served request's context is read in place on this thread (no copy per call);
        // elsewhere it is found through the span or the request's extensions.
        let formats = &*self.formats;
        if SERVED.is_set() {
            SERVED.with(|served| {
                write_context(request.headers_mut(), &current, Some(served), formats)
            });
        } else {
            let served = RequestContext::from_current_span()
                .or_else(|| request.extensions().get::<RequestContext>().cloned());
            write_context(request.headers_mut(), &current, served.as_ref(), formats);
        }
        let inner = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        ClientFuture { inner, span }
    }
}

/// Writes the callee's context: its parent is the call's span when OpenTelemetry knows it
/// (else the served request's span); tracestate, baggage and request id are the served
/// request's.
fn write_context(
    headers: &mut http::HeaderMap,
    current: &SpanContext,
    served: Option<&RequestContext>,
    formats: &Formats,
) {
    let ids = if current.is_valid() {
        TraceId::from_bytes(current.trace_id().to_bytes())
            .zip(SpanId::from_bytes(current.span_id().to_bytes()))
            .map(|(t, s)| (t, s, TraceFlags::from_byte(current.trace_flags().to_u8())))
    } else {
        served.map(|s| (s.trace_id, s.span_id, s.flags))
    };
    let Some((trace_id, span_id, flags)) = ids else {
        return;
    };
    let (empty_state, empty_baggage) = (TraceState::default(), Baggage::default());
    let outgoing = Outgoing {
        trace_id,
        span_id,
        flags,
        trace_state: served.map_or(&empty_state, |s| &s.trace_state),
        baggage: served.map_or(&empty_baggage, |s| &s.baggage),
        request_id: served.map(|s| &s.request_id),
    };
    inject(headers, &outgoing, formats);
}

pin_project_lite::pin_project! {
    /// The future of [`ClientService`]: the call, inside its client span.
    pub struct ClientFuture<F> {
        #[pin]
        inner: F,
        span: tracing::Span,
    }
}

impl<F, RB, E> Future for ClientFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: std::fmt::Display,
{
    type Output = Result<Response<RB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let result = std::task::ready!(this.inner.poll(cx));
        match &result {
            Ok(response) => {
                let status = response.status();
                this.span
                    .record("http.response.status_code", status.as_u16());
                // For a client, 4xx is a failed call too (OpenTelemetry HTTP conventions).
                if status.is_client_error() || status.is_server_error() {
                    this.span.record("otel.status_code", "ERROR");
                }
            }
            Err(error) => {
                this.span.record("otel.status_code", "ERROR");
                tracing::debug!(%error, "call failed");
            }
        }
        Poll::Ready(result)
    }
}
