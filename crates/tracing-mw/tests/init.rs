//! The one-call set-up: settings errors name the setting, log lines carry the ids and keep
//! hostile values on one line. (Export itself is tested against a real receiver in
//! `interop.rs`.)

use std::sync::{Arc, Mutex};

use breakwater_tracing_mw::init::{Export, InitError, LogFormat, Telemetry};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// Each line as JSON; a line that is not JSON fails the test.
fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

fn telemetry(format: LogFormat, logs: &Captured) -> Telemetry {
    let logs = logs.clone();
    Telemetry::new()
        .export(Export::Off)
        .log_format(format)
        .filter("info")
        .log_writer(move || logs.clone())
}

/// A value as an attacker would send it in a header: quotes, a newline, a terminal escape.
const HOSTILE: &str = "x\"}\n{\"level\":\"ERROR\u{1b}[31m";

#[tokio::test]
async fn json_lines_carry_ids_and_stay_one_object_per_line() {
    let logs = Captured::default();
    let (subscriber, guard) = telemetry(LogFormat::Json, &logs).build().unwrap();
    let (trace_id, span_id) = tracing::subscriber::with_default(subscriber, || {
        tracing::info!("outside any span");
        let span = tracing::info_span!("work", user_agent = HOSTILE);
        let _entered = span.enter();
        tracing::info!(value = HOSTILE, "inside");
        let cx = opentelemetry::Context::current();
        let sc = opentelemetry::trace::TraceContextExt::span(&cx)
            .span_context()
            .clone();
        (sc.trace_id().to_string(), sc.span_id().to_string())
    });
    guard.shutdown().await.unwrap();

    let text = logs.text();
    let lines = json_lines(&text);
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["message"], "outside any span");
    assert!(lines[0].get("trace_id").is_none(), "no ids outside spans");
    assert_eq!(lines[1]["message"], "inside");
    assert_eq!(lines[1]["value"], HOSTILE, "the value survives, escaped");
    assert_eq!(lines[1]["trace_id"], trace_id.as_str());
    assert_eq!(lines[1]["span_id"], span_id.as_str());
    assert_ne!(trace_id, "00000000000000000000000000000000");
}

#[tokio::test]
async fn json_lines_carry_the_spans_fields_including_ones_recorded_later() {
    let logs = Captured::default();
    let (subscriber, guard) = telemetry(LogFormat::Json, &logs).build().unwrap();
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!(
            "HTTP request",
            http.request.method = "GET",
            url.path = HOSTILE,
            retries = 3u64,
            cached = false,
            r#type = ?Some(1.5),
            http.response.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let _entered = span.enter();
        tracing::info!("before");
        span.record("http.response.status_code", 503u16);
        span.record("otel.status_code", "ERROR");
        tracing::info!("after");
        let empty = tracing::info_span!("nothing at first", late = tracing::field::Empty);
        let _inner = empty.enter();
        empty.record("late", "value");
        tracing::info!("in the empty one");
    });
    guard.shutdown().await.unwrap();
    let text = logs.text();
    let lines = json_lines(&text);
    assert_eq!(lines.len(), 3, "{text}");
    let before = &lines[0]["span"];
    assert_eq!(before["name"], "HTTP request", "{text}");
    assert_eq!(before["http.request.method"], "GET");
    assert_eq!(before["url.path"], HOSTILE, "escaped and intact");
    assert_eq!(before["retries"], 3);
    assert_eq!(before["cached"], false);
    assert_eq!(before["type"], "Some(1.5)");
    assert!(before.get("http.response.status_code").is_none());
    let after = &lines[1]["span"];
    assert_eq!(after["http.response.status_code"], 503, "{text}");
    assert_eq!(after["otel.status_code"], "ERROR");
    assert_eq!(after["url.path"], HOSTILE);
    assert_eq!(lines[2]["span"]["late"], "value", "{text}");
}

#[tokio::test]
async fn text_lines_end_with_ids_and_strip_terminal_escapes() {
    let logs = Captured::default();
    let (subscriber, guard) = telemetry(LogFormat::Text, &logs).build().unwrap();
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("work");
        let _entered = span.enter();
        tracing::info!(value = HOSTILE, "inside");
    });
    guard.shutdown().await.unwrap();
    let text = logs.text();
    assert!(
        !text.contains('\u{1b}'),
        "terminal escapes reach the log: {text:?}"
    );
    let last = text.lines().last().unwrap();
    let ids = last
        .rsplit_once(" trace_id=")
        .unwrap_or_else(|| panic!("{last}"))
        .1;
    let (trace, span) = ids.split_once(" span_id=").unwrap();
    assert_eq!(trace.len(), 32, "{last}");
    assert_eq!(span.len(), 16, "{last}");
}

#[test]
fn settings_errors_name_the_setting() {
    let error = Telemetry::new()
        .export(Export::Off)
        .filter("info,[[[")
        .build()
        .err()
        .expect("a broken filter is refused");
    assert!(
        matches!(
            error,
            InitError::Setting {
                setting: "filter",
                ..
            }
        ),
        "{error}"
    );

    // The exporter runs on Tokio: asking for one outside a runtime is an error, not a panic.
    let error = Telemetry::new()
        .export(Export::Otlp {
            protocol: breakwater_tracing_mw::init::Protocol::Grpc,
            endpoint: Some("http://127.0.0.1:4317".into()),
        })
        .build()
        .err()
        .expect("no runtime");
    assert!(matches!(error, InitError::NoRuntime), "{error}");

    // SAFETY: this test binary's only test touching the environment; the others never read
    // OTEL_TRACES_EXPORTER (they set `Export::Off`).
    unsafe { std::env::set_var("OTEL_TRACES_EXPORTER", "zipkin") };
    let error = Telemetry::new()
        .build()
        .err()
        .expect("an unsupported exporter is refused");
    unsafe { std::env::remove_var("OTEL_TRACES_EXPORTER") };
    let message = error.to_string();
    assert!(
        message.contains("OTEL_TRACES_EXPORTER") && message.contains("zipkin"),
        "{message}"
    );
}
