//! One-call set-up of logging and trace export.
//!
//! [`init`] (or [`Telemetry`] for the settings) installs, as the global defaults:
//!
//! - a `tracing-subscriber` registry with an `EnvFilter` (`RUST_LOG`, else `info`);
//! - log lines on standard output, one JSON object per line by default, each carrying the
//!   `trace_id` and `span_id` of the span it was written in;
//! - `tracing-opentelemetry`, so every `tracing` span is an OpenTelemetry span with real ids;
//! - an OpenTelemetry SDK tracer provider whose batch processor sends spans through
//!   `opentelemetry-otlp` (gRPC or HTTP/protobuf), configured by the standard environment:
//!   `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`,
//!   `..._PROTOCOL` (`grpc` or `http/protobuf`, the default), `..._HEADERS`, `..._TIMEOUT`,
//!   `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_BSP_*`, and `OTEL_TRACES_EXPORTER=none` or
//!   `OTEL_SDK_DISABLED=true` to keep ids and logs but export nothing.
//!
//! The returned [`TelemetryGuard`] flushes the spans still queued when it is shut down; call
//! [`TelemetryGuard::shutdown`] before the process exits.
//!
//! Nothing from request headers or bodies is logged: the [`ServerLayer`](crate::ServerLayer)
//! span holds the method, the path (without the query) and the validated request id, and log
//! values are JSON-escaped (text output strips terminal escape sequences).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // In main, inside the Tokio runtime (the exporter runs on it):
//! let telemetry = breakwater_tracing_mw::init::Telemetry::new()
//!     .service_name("checkout") // OTEL_SERVICE_NAME wins when set
//!     .install()?;
//! tracing::info!("ready"); // {"timestamp":…,"level":"INFO","message":"ready",…}
//! // … serve …
//! telemetry.shutdown().await?; // sends what is still queued
//! # Ok(()) }
//! ```

mod span_fields;

use std::fmt;
use std::io;

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Installs logging and trace export with the settings of [`Telemetry::new`]: export as the
/// `OTEL_*` environment says, JSON log lines on standard output, `RUST_LOG` or `info`.
///
/// Call it once, inside the Tokio runtime.
pub fn init() -> Result<TelemetryGuard, InitError> {
    Telemetry::new().install()
}

/// Where spans go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Export {
    /// As the environment says: nothing when `OTEL_SDK_DISABLED=true` or
    /// `OTEL_TRACES_EXPORTER=none`, else OTLP with `OTEL_EXPORTER_OTLP_*` (HTTP/protobuf to
    /// `http://localhost:4318` unless told otherwise).
    #[default]
    FromEnv,
    /// OTLP with this protocol; the endpoint when given, else from the environment.
    Otlp {
        /// gRPC or HTTP/protobuf.
        protocol: Protocol,
        /// Collector URL, e.g. `http://127.0.0.1:4317` (gRPC) or `http://127.0.0.1:4318`
        /// (HTTP; `/v1/traces` is appended).
        endpoint: Option<String>,
    },
    /// No export: spans still get OpenTelemetry ids (so logs and propagation carry them).
    Off,
}

/// OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (tonic).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (hyper).
    HttpProtobuf,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One JSON object per line with the event's fields, its span's fields, `trace_id` and
    /// `span_id`.
    #[default]
    Json,
    /// Human-readable text, ending in `trace_id=… span_id=…` inside a span.
    Text,
}

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A setting (named) has a value this crate does not support.
    #[error("{setting}: {reason}")]
    Setting {
        /// The environment variable or builder setting.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The OTLP exporter could not be built.
    #[error("OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// The exporter needs a Tokio runtime, and this was called outside one.
    #[error("telemetry must be set up inside a Tokio runtime (the exporter runs on it)")]
    NoRuntime,
    /// A global subscriber was already installed.
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Why the final flush failed.
#[derive(Debug, thiserror::Error)]
#[error("flushing spans on shutdown: {0}")]
pub struct ShutdownError(String);

/// Settings for [`Telemetry::install`] and [`Telemetry::build`].
pub struct Telemetry {
    service_name: Option<String>,
    export: Export,
    log_format: LogFormat,
    filter: Option<String>,
    writer: BoxMakeWriter,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("service_name", &self.service_name)
            .field("export", &self.export)
            .field("log_format", &self.log_format)
            .field("filter", &self.filter)
            .finish_non_exhaustive()
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

/// Directives applied under the user's filter: the exporter's own plumbing is noisy at info.
const QUIET_DEPENDENCIES: &[&str] = &[
    "opentelemetry=warn",
    "opentelemetry_sdk=warn",
    "opentelemetry_otlp=warn",
    "h2=warn",
    "hyper=warn",
    "hyper_util=warn",
    "tonic=warn",
    "tower=warn",
];

impl Telemetry {
    /// Export from the environment, JSON logs to standard output, filter from `RUST_LOG`
    /// (else `info`).
    pub fn new() -> Self {
        Telemetry {
            service_name: None,
            export: Export::FromEnv,
            log_format: LogFormat::Json,
            filter: None,
            writer: BoxMakeWriter::new(io::stdout),
        }
    }

    /// The service name used when neither `OTEL_SERVICE_NAME` nor a `service.name` in
    /// `OTEL_RESOURCE_ATTRIBUTES` is set (those win, so operators can rename a deployment).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Where spans go. Default [`Export::FromEnv`].
    pub fn export(mut self, export: Export) -> Self {
        self.export = export;
        self
    }

    /// How log lines look. Default [`LogFormat::Json`].
    pub fn log_format(mut self, format: LogFormat) -> Self {
        self.log_format = format;
        self
    }

    /// `EnvFilter` directives to use instead of `RUST_LOG`, e.g. `"info,my_crate=debug"`.
    pub fn filter(mut self, directives: impl Into<String>) -> Self {
        self.filter = Some(directives.into());
        self
    }

    /// Where log lines go instead of standard output.
    pub fn log_writer<W>(mut self, writer: W) -> Self
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        self.writer = BoxMakeWriter::new(writer);
        self
    }

    /// Builds the subscriber and the tracer provider without installing either globally
    /// (for tests, or to add layers of your own with `tracing::subscriber::set_default`).
    pub fn build(
        self,
    ) -> Result<(Box<dyn Subscriber + Send + Sync + 'static>, TelemetryGuard), InitError> {
        let provider = tracer_provider(&self.export, self.service_name.as_deref())?;
        let tracer = provider.tracer("breakwater-tracing-mw");
        let filter = env_filter(self.filter.as_deref())?;
        // The filter chooses log lines; spans at info and above are always exported (and so
        // carry ids), whatever RUST_LOG says about logging.
        // No thread or busy/idle-time attributes: a request's task moves between threads, and
        // neither is an OpenTelemetry HTTP convention; timing them reads the clock on every
        // enter and exit of every span.
        let otel = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
        let logs = match self.log_format {
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .event_format(WithTraceIds {
                    inner: tracing_subscriber::fmt::format()
                        .json()
                        .flatten_event(true)
                        .with_current_span(true)
                        .with_span_list(false),
                    json: true,
                })
                .fmt_fields(span_fields::AppendJsonFields)
                .with_writer(self.writer)
                .with_filter(filter)
                .boxed(),
            LogFormat::Text => tracing_subscriber::fmt::layer()
                .event_format(WithTraceIds {
                    inner: tracing_subscriber::fmt::format().with_ansi(false),
                    json: false,
                })
                .with_ansi(false)
                .with_writer(self.writer)
                .with_filter(filter)
                .boxed(),
        };
        let subscriber = tracing_subscriber::registry().with(otel).with(logs);
        Ok((
            Box::new(subscriber),
            TelemetryGuard {
                provider: Some(provider),
            },
        ))
    }

    /// Builds and installs as the process's global subscriber, tracer provider and
    /// propagator (W3C trace context + baggage, for other OpenTelemetry libraries).
    pub fn install(self) -> Result<TelemetryGuard, InitError> {
        let (subscriber, guard) = self.build()?;
        tracing::subscriber::set_global_default(subscriber)
            .map_err(|_| InitError::AlreadyInstalled)?;
        if let Some(provider) = &guard.provider {
            opentelemetry::global::set_tracer_provider(provider.clone());
        }
        opentelemetry::global::set_text_map_propagator(
            opentelemetry::propagation::TextMapCompositePropagator::new(vec![
                Box::new(opentelemetry_sdk::propagation::TraceContextPropagator::new()),
                Box::new(opentelemetry_sdk::propagation::BaggagePropagator::new()),
            ]),
        );
        Ok(guard)
    }
}

fn env_filter(directives: Option<&str>) -> Result<EnvFilter, InitError> {
    let (setting, user) = match directives {
        Some(d) => ("filter", d.to_owned()),
        None => (
            "RUST_LOG",
            std::env::var("RUST_LOG")
                .ok()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| "info".to_owned()),
        ),
    };
    // Ours first, so the user's directives for the same targets win.
    let all = QUIET_DEPENDENCIES
        .iter()
        .copied()
        .chain(std::iter::once(user.as_str()))
        .filter(|d| !d.is_empty())
        .collect::<Vec<_>>()
        .join(",");
    EnvFilter::builder()
        .parse(all)
        .map_err(|e| InitError::Setting {
            setting,
            reason: e.to_string(),
        })
}

fn env_flag(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
}

/// An OTLP exporter to build: the protocol (else from the environment) and endpoint.
type OtlpChoice = (Option<Protocol>, Option<String>);

/// Export settings with the environment applied; `None` exports nothing.
fn resolve(export: &Export) -> Result<Option<OtlpChoice>, InitError> {
    match export {
        Export::Off => Ok(None),
        Export::Otlp { protocol, endpoint } => Ok(Some((Some(*protocol), endpoint.clone()))),
        Export::FromEnv => {
            if env_flag("OTEL_SDK_DISABLED").as_deref() == Some("true") {
                return Ok(None);
            }
            match env_flag("OTEL_TRACES_EXPORTER").as_deref() {
                None | Some("otlp") => Ok(Some((None, None))),
                Some("none") => Ok(None),
                Some(other) => Err(InitError::Setting {
                    setting: "OTEL_TRACES_EXPORTER",
                    reason: format!("`{other}` is not supported (use `otlp` or `none`)"),
                }),
            }
        }
    }
}

/// The resource: the SDK's detectors (`OTEL_RESOURCE_ATTRIBUTES`, ...), then the service
/// name by the spec's precedence: `OTEL_SERVICE_NAME`, else `service.name` in
/// `OTEL_RESOURCE_ATTRIBUTES`, else the name given in code.
fn resource(service_name: Option<&str>) -> Resource {
    let builder = Resource::builder();
    if let Ok(name) = std::env::var("OTEL_SERVICE_NAME")
        && !name.trim().is_empty()
    {
        // Applied last: the attributes detector would otherwise overwrite it.
        return builder.with_service_name(name.trim().to_owned()).build();
    }
    let in_attributes = std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| {
        v.split(',').any(|kv| {
            kv.split_once('=')
                .is_some_and(|(k, _)| k.trim() == "service.name")
        })
    });
    match service_name {
        Some(name) if !in_attributes => builder.with_service_name(name.to_owned()).build(),
        _ => builder.build(),
    }
}

fn tracer_provider(
    export: &Export,
    service_name: Option<&str>,
) -> Result<SdkTracerProvider, InitError> {
    let builder = SdkTracerProvider::builder().with_resource(resource(service_name));
    let Some((protocol, endpoint)) = resolve(export)? else {
        return Ok(builder.build());
    };
    // The exporters' HTTP and gRPC clients run on Tokio, so the batch processor does too.
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(InitError::NoRuntime);
    }
    use opentelemetry_otlp::{SpanExporter, WithExportConfig};
    let exporter = match (protocol, endpoint) {
        (None, _) => SpanExporter::builder().build()?,
        (Some(Protocol::Grpc), None) => SpanExporter::builder().with_tonic().build()?,
        (Some(Protocol::Grpc), Some(url)) => SpanExporter::builder()
            .with_tonic()
            .with_endpoint(url)
            .build()?,
        (Some(Protocol::HttpProtobuf), endpoint) => {
            let http = SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
            match endpoint {
                // As with OTEL_EXPORTER_OTLP_ENDPOINT, the signal's path goes after the base.
                Some(url) => http
                    .with_endpoint(format!("{}/v1/traces", url.trim_end_matches('/')))
                    .build()?,
                None => http.build()?,
            }
        }
    };
    let processor =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .build();
    Ok(builder.with_span_processor(processor).build())
}

/// Keeps the tracer provider; flushes and shuts it down.
#[derive(Debug)]
#[must_use = "dropping the guard shuts the exporter down; keep it for the life of the program"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// The tracer provider, to create OpenTelemetry tracers directly.
    pub fn tracer_provider(&self) -> Option<&SdkTracerProvider> {
        self.provider.as_ref()
    }

    /// Sends the spans still queued and stops the exporter. Waits on a blocking thread so the
    /// runtime (which runs the exporter) stays free, on any runtime flavour.
    pub async fn shutdown(mut self) -> Result<(), ShutdownError> {
        let Some(provider) = self.provider.take() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || provider.shutdown())
            .await
            .map_err(|e| ShutdownError(e.to_string()))?
            .map_err(|e| ShutdownError(e.to_string()))
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let Some(provider) = self.provider.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                let _ = tokio::task::block_in_place(|| provider.shutdown());
            }
            // Waiting here would block the only thread the exporter can run on: let a thread
            // wait instead, and flush as far as the runtime lives.
            Ok(_) => {
                std::thread::spawn(move || provider.shutdown());
            }
            Err(_) => {
                let _ = provider.shutdown();
            }
        }
    }
}

/// Wraps an event format and appends the OpenTelemetry ids of the event's span.
struct WithTraceIds<F> {
    inner: F,
    json: bool,
}

thread_local! {
    static LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        // tracing-opentelemetry makes an entered span's context the current OpenTelemetry
        // context, so this is the span the event was written in (events given an explicit
        // parent other than the current span get the current span's ids).
        let ids = ctx
            .parent_span()
            .map(|_| {
                opentelemetry::Context::current()
                    .span()
                    .span_context()
                    .clone()
            })
            .filter(|sc| sc.is_valid());
        let Some(ids) = ids else {
            return self.inner.format_event(ctx, writer, event);
        };
        // Format into a reused buffer, then add the ids before the line's end.
        LINE.with(|line| {
            let mut line = match line.try_borrow_mut() {
                Ok(line) => line,
                // Re-entered (an event logged while formatting): write without ids.
                Err(_) => return self.inner.format_event(ctx, writer.by_ref(), event),
            };
            line.clear();
            self.inner
                .format_event(ctx, Writer::new(&mut *line), event)?;
            let body = line.trim_end_matches('\n');
            if self.json && body.ends_with('}') {
                let open = &body[..body.len() - 1];
                let comma = if open.ends_with('{') { "" } else { "," };
                writeln!(
                    writer,
                    "{open}{comma}\"trace_id\":\"{}\",\"span_id\":\"{}\"}}",
                    ids.trace_id(),
                    ids.span_id()
                )
            } else {
                writeln!(
                    writer,
                    "{body} trace_id={} span_id={}",
                    ids.trace_id(),
                    ids.span_id()
                )
            }
        })
    }
}
