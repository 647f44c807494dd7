//! The Hystrix wire format, key by key: our events against the key list of
//! `SerialHystrixDashboardData` and against a stream written by Java Hystrix.

use std::collections::BTreeMap;
use std::time::Duration;

use breakwater_circuit_breaker::error::BoxError;
use breakwater_circuit_breaker::{
    CircuitBreaker, CircuitBreakerConfig, CircuitBreakerLayer, CircuitBreakerRegistry, Clock, Mode,
};
use breakwater_stream_dashboard::hystrix::write_frame;
use serde_json::{Map, Value};
use tower::{Layer, ServiceExt, service_fn};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Int,
    Bool,
    Percentiles,
    StrOrNull,
}

use Kind::*;

const COMMAND_KEYS: [(&str, Kind); 48] = [
    ("type", Str),
    ("name", Str),
    ("group", Str),
    ("currentTime", Int),
    ("isCircuitBreakerOpen", Bool),
    ("errorPercentage", Int),
    ("errorCount", Int),
    ("requestCount", Int),
    ("rollingCountBadRequests", Int),
    ("rollingCountCollapsedRequests", Int),
    ("rollingCountEmit", Int),
    ("rollingCountExceptionsThrown", Int),
    ("rollingCountFailure", Int),
    ("rollingCountFallbackEmit", Int),
    ("rollingCountFallbackFailure", Int),
    ("rollingCountFallbackMissing", Int),
    ("rollingCountFallbackRejection", Int),
    ("rollingCountFallbackSuccess", Int),
    ("rollingCountResponsesFromCache", Int),
    ("rollingCountSemaphoreRejected", Int),
    ("rollingCountShortCircuited", Int),
    ("rollingCountSuccess", Int),
    ("rollingCountThreadPoolRejected", Int),
    ("rollingCountTimeout", Int),
    ("currentConcurrentExecutionCount", Int),
    ("rollingMaxConcurrentExecutionCount", Int),
    ("latencyExecute_mean", Int),
    ("latencyExecute", Percentiles),
    ("latencyTotal_mean", Int),
    ("latencyTotal", Percentiles),
    ("propertyValue_circuitBreakerRequestVolumeThreshold", Int),
    ("propertyValue_circuitBreakerSleepWindowInMilliseconds", Int),
    ("propertyValue_circuitBreakerErrorThresholdPercentage", Int),
    ("propertyValue_circuitBreakerForceOpen", Bool),
    ("propertyValue_circuitBreakerForceClosed", Bool),
    ("propertyValue_circuitBreakerEnabled", Bool),
    ("propertyValue_executionIsolationStrategy", Str),
    (
        "propertyValue_executionIsolationThreadTimeoutInMilliseconds",
        Int,
    ),
    ("propertyValue_executionTimeoutInMilliseconds", Int),
    (
        "propertyValue_executionIsolationThreadInterruptOnTimeout",
        Bool,
    ),
    (
        "propertyValue_executionIsolationThreadPoolKeyOverride",
        StrOrNull,
    ),
    (
        "propertyValue_executionIsolationSemaphoreMaxConcurrentRequests",
        Int,
    ),
    (
        "propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests",
        Int,
    ),
    (
        "propertyValue_metricsRollingStatisticalWindowInMilliseconds",
        Int,
    ),
    ("propertyValue_requestCacheEnabled", Bool),
    ("propertyValue_requestLogEnabled", Bool),
    ("reportingHosts", Int),
    ("threadPool", Str),
];

const THREAD_POOL_KEYS: [&str; 17] = [
    "type",
    "name",
    "currentTime",
    "currentActiveCount",
    "currentCompletedTaskCount",
    "currentCorePoolSize",
    "currentLargestPoolSize",
    "currentMaximumPoolSize",
    "currentPoolSize",
    "currentQueueSize",
    "currentTaskCount",
    "rollingCountThreadsExecuted",
    "rollingMaxActiveThreads",
    "rollingCountCommandRejections",
    "propertyValue_queueSizeRejectionThreshold",
    "propertyValue_metricsRollingStatisticalWindowInMilliseconds",
    "reportingHosts",
];

const PERCENTILE_KEYS: [&str; 9] = ["0", "25", "50", "75", "90", "95", "99", "99.5", "100"];

fn kind_of(v: &Value) -> Option<Kind> {
    Some(match v {
        Value::String(_) => Str,
        Value::Number(n) if n.is_u64() || n.is_i64() => Int,
        Value::Bool(_) => Bool,
        Value::Null => StrOrNull,
        Value::Object(m) => {
            let keys: Vec<&str> = m.keys().map(String::as_str).collect();
            let mut want = PERCENTILE_KEYS.to_vec();
            want.sort();
            let mut got = keys.clone();
            got.sort();
            if got == want && m.values().all(|v| v.is_u64()) {
                Percentiles
            } else {
                return None;
            }
        }
        _ => return None,
    })
}

fn fits(kind: Kind, v: &Value) -> bool {
    match (kind, kind_of(v)) {
        (StrOrNull, Some(Str | StrOrNull)) => true,
        (want, Some(got)) => want == got,
        _ => false,
    }
}

fn frame(registry: &CircuitBreakerRegistry) -> Vec<Map<String, Value>> {
    let mut out = Vec::new();
    write_frame(
        &registry.snapshot(),
        &registry.bulkhead_snapshots(),
        &mut out,
    );
    let text = String::from_utf8(out).unwrap();
    let mut parser = breakwater_stream_dashboard::sse::SseParser::new();
    parser
        .feed(text.as_bytes())
        .unwrap()
        .into_iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect()
}

fn command<'a>(events: &'a [Map<String, Value>], name: &str) -> &'a Map<String, Value> {
    events
        .iter()
        .find(|e| e["type"] == "HystrixCommand" && e["name"] == name)
        .unwrap_or_else(|| panic!("no command {name} in {events:?}"))
}

async fn call(breaker: &CircuitBreaker, ok: bool) -> Result<(), BoxError> {
    let service = CircuitBreakerLayer::new(breaker).layer(service_fn(move |_: ()| async move {
        if ok {
            Ok(())
        } else {
            Err::<(), BoxError>("boom".into())
        }
    }));
    service.oneshot(()).await
}

fn setup() -> (
    CircuitBreakerRegistry,
    CircuitBreaker,
    breakwater_circuit_breaker::clock::ManualClock,
) {
    let (clock, hand) = Clock::manual();
    let registry = CircuitBreakerRegistry::with_clock(clock);
    let config = CircuitBreakerConfig {
        request_volume_threshold: 4,
        error_threshold_percentage: 40,
        sleep_window: Duration::from_millis(3000),
        timeout: Some(Duration::from_millis(250)),
        max_concurrent_calls: 7,
        fallback_max_concurrent_calls: 3,
        ..CircuitBreakerConfig::default()
    };
    let breaker = registry
        .register(
            CircuitBreaker::builder("payments")
                .group("billing")
                .thread_pool("billing-pool")
                .config(config),
        )
        .unwrap();
    (registry, breaker, hand)
}

#[tokio::test]
async fn command_event_has_the_48_keys_with_hystrix_types_and_our_values() {
    let (registry, breaker, hand) = setup();
    let _bulkhead = registry.bulkhead("billing-pool");
    for ok in [true, true, true, false, false] {
        let _ = call(&breaker, ok).await;
        hand.advance(Duration::from_millis(10));
    }
    // 2 failures in 5 calls = 40 %: tripped. The next call is short-circuited.
    assert!(call(&breaker, true).await.is_err());

    let events = frame(&registry);
    let c = command(&events, "payments");
    for (key, kind) in COMMAND_KEYS {
        let value = c.get(key).unwrap_or_else(|| panic!("key {key} missing"));
        assert!(fits(kind, value), "key {key}: {value} is not {kind:?}");
    }
    let extra: Vec<&String> = c
        .keys()
        .filter(|k| !COMMAND_KEYS.iter().any(|(name, _)| name == k))
        .collect();
    assert_eq!(extra, ["circuitBreakerState"], "only one key of our own");

    let expect = [
        ("type", Value::from("HystrixCommand")),
        ("name", "payments".into()),
        ("group", "billing".into()),
        ("threadPool", "billing-pool".into()),
        ("isCircuitBreakerOpen", true.into()),
        ("circuitBreakerState", "OPEN".into()),
        ("requestCount", 5.into()),
        ("errorCount", 2.into()),
        ("errorPercentage", 40.into()),
        ("rollingCountSuccess", 3.into()),
        ("rollingCountFailure", 2.into()),
        ("rollingCountShortCircuited", 1.into()),
        ("rollingCountTimeout", 0.into()),
        ("rollingCountSemaphoreRejected", 0.into()),
        ("rollingCountBadRequests", 0.into()),
        ("currentConcurrentExecutionCount", 0.into()),
        ("reportingHosts", 1.into()),
        (
            "propertyValue_circuitBreakerRequestVolumeThreshold",
            4.into(),
        ),
        (
            "propertyValue_circuitBreakerErrorThresholdPercentage",
            40.into(),
        ),
        (
            "propertyValue_circuitBreakerSleepWindowInMilliseconds",
            3000.into(),
        ),
        ("propertyValue_circuitBreakerForceOpen", false.into()),
        ("propertyValue_circuitBreakerForceClosed", false.into()),
        ("propertyValue_circuitBreakerEnabled", true.into()),
        (
            "propertyValue_executionIsolationStrategy",
            "SEMAPHORE".into(),
        ),
        (
            "propertyValue_executionIsolationThreadTimeoutInMilliseconds",
            250.into(),
        ),
        ("propertyValue_executionTimeoutInMilliseconds", 250.into()),
        (
            "propertyValue_executionIsolationThreadPoolKeyOverride",
            Value::Null,
        ),
        (
            "propertyValue_executionIsolationSemaphoreMaxConcurrentRequests",
            7.into(),
        ),
        (
            "propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests",
            3.into(),
        ),
        (
            "propertyValue_metricsRollingStatisticalWindowInMilliseconds",
            10000.into(),
        ),
    ];
    for (key, value) in expect {
        assert_eq!(c[key], value, "key {key}");
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let t = c["currentTime"].as_u64().unwrap();
    assert!(
        t <= now_ms && now_ms - t < 60_000,
        "currentTime is epoch ms"
    );

    let pool = events
        .iter()
        .find(|e| e["type"] == "HystrixThreadPool")
        .expect("a thread-pool event per bulkhead");
    let mut keys: Vec<&str> = pool.keys().map(String::as_str).collect();
    keys.sort();
    let mut want = THREAD_POOL_KEYS.to_vec();
    want.sort();
    assert_eq!(keys, want);
    assert_eq!(pool["name"], "billing-pool");
    for key in THREAD_POOL_KEYS
        .iter()
        .filter(|k| !matches!(**k, "type" | "name"))
    {
        assert!(pool[*key].is_u64(), "{key} is an integer");
    }
}

#[tokio::test]
async fn half_open_and_forced_states_show_in_the_extra_key_only() {
    let (registry, breaker, hand) = setup();
    breaker.trip();
    hand.advance(Duration::from_millis(3001));
    // A trial call in flight: half-open.
    let (release, wait) = tokio::sync::oneshot::channel::<()>();
    let service = CircuitBreakerLayer::new(&breaker).layer(service_fn(
        |wait: tokio::sync::oneshot::Receiver<()>| async move {
            let _ = wait.await;
            Ok::<_, BoxError>(())
        },
    ));
    let trial = tokio::spawn(service.oneshot(wait));
    tokio::task::yield_now().await;
    let c = command(&frame(&registry), "payments").clone();
    assert_eq!(c["circuitBreakerState"], "HALF_OPEN");
    assert_eq!(
        c["isCircuitBreakerOpen"], true,
        "Hystrix reports half-open as open"
    );
    assert_eq!(c["currentConcurrentExecutionCount"], 1);
    release.send(()).unwrap();
    trial.await.unwrap().unwrap();
    let c = command(&frame(&registry), "payments").clone();
    assert_eq!(c["circuitBreakerState"], "CLOSED");
    assert_eq!(c["isCircuitBreakerOpen"], false);

    for (mode, state, open, force_open, force_closed, enabled) in [
        (Mode::ForcedOpen, "FORCED_OPEN", true, true, false, true),
        (
            Mode::ForcedClosed,
            "FORCED_CLOSED",
            false,
            false,
            true,
            true,
        ),
        (
            Mode::MetricsOnly,
            "METRICS_ONLY",
            false,
            false,
            false,
            false,
        ),
        (Mode::Disabled, "DISABLED", false, false, false, false),
    ] {
        breaker.update(|c| c.mode = mode).unwrap();
        let c = command(&frame(&registry), "payments").clone();
        assert_eq!(c["circuitBreakerState"], state);
        assert_eq!(c["isCircuitBreakerOpen"], open, "{state}");
        assert_eq!(
            c["propertyValue_circuitBreakerForceOpen"], force_open,
            "{state}"
        );
        assert_eq!(
            c["propertyValue_circuitBreakerForceClosed"], force_closed,
            "{state}"
        );
        assert_eq!(c["propertyValue_circuitBreakerEnabled"], enabled, "{state}");
    }
}

/// Every key of every event Java Hystrix wrote in the fixture is in ours, with the same JSON
/// type; a reader of Hystrix's stream finds nothing missing in ours.
#[tokio::test]
async fn our_events_carry_every_key_java_hystrix_writes() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/hystrix/netflix-dashboard-sample.stream"
    );
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("fixture {path} must be readable: {e}"));
    let mut parser = breakwater_stream_dashboard::sse::SseParser::new();
    let java: Vec<Map<String, Value>> = parser
        .feed(text.as_bytes())
        .unwrap()
        .into_iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    assert!(java.len() > 100, "the fixture holds hundreds of events");

    let (registry, breaker, _hand) = setup();
    let _ = call(&breaker, true).await;
    let _bulkhead = registry.bulkhead("billing-pool");
    let ours = frame(&registry);
    let mut checked = BTreeMap::new();
    for event in &java {
        let kind = event["type"].as_str().unwrap();
        let mine = ours
            .iter()
            .find(|e| e["type"] == kind)
            .unwrap_or_else(|| panic!("we write no {kind} events"));
        for (key, value) in event {
            let theirs = kind_of(value);
            let ours = mine
                .get(key)
                .unwrap_or_else(|| panic!("{kind} key {key} missing"));
            let compatible = theirs == kind_of(ours)
                || (key == "propertyValue_executionIsolationThreadPoolKeyOverride"
                    && matches!(kind_of(ours), Some(StrOrNull | Str)));
            assert!(
                compatible,
                "{kind} key {key}: Java wrote {value}, we write {ours}"
            );
            *checked.entry(kind.to_owned()).or_insert(0) += 1;
        }
    }
    assert!(checked["HystrixCommand"] > 1000 && checked["HystrixThreadPool"] > 100);
}
