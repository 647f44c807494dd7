//! The Netflix Hystrix wire format: one JSON object per command and per thread pool.
//!
//! The layout is that of `hystrix-serialization`'s `SerialHystrixDashboardData`: a
//! `HystrixCommand` event has 48 keys, a `HystrixThreadPool` event 17. Keys are written in
//! Java's order so a capture of ours diffs cleanly against one of Hystrix's.
//!
//! Two additions, which readers that do not know them ignore:
//! - `circuitBreakerState`: `CLOSED`, `OPEN`, `HALF_OPEN`, `FORCED_OPEN`, `FORCED_CLOSED`,
//!   `METRICS_ONLY` or `DISABLED`. `isCircuitBreakerOpen` keeps Hystrix's meaning (true while
//!   half-open), so this is where half-open shows.
//! - nothing else: every other value maps onto a Hystrix key.
//!
//! Bulkheads are reported as thread pools (Hystrix's semaphore isolation has no pool of its
//! own): the pool size is the bulkhead's cap and the active count its calls in flight.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::sse;
use breakwater_circuit_breaker::bulkhead::BulkheadSnapshot;
use breakwater_circuit_breaker::snapshot::Latency;
use breakwater_circuit_breaker::{CircuitBreakerConfig, Mode, Snapshot, State, Window};
use serde::Serialize;

/// `type` of a command event.
pub const COMMAND_TYPE: &str = "HystrixCommand";
/// `type` of a thread-pool event.
pub const THREAD_POOL_TYPE: &str = "HystrixThreadPool";

/// The extra key that tells half-open and forced states apart.
pub const STATE_KEY: &str = "circuitBreakerState";

/// The value of [`STATE_KEY`] for a snapshot.
pub fn state_name(snapshot: &Snapshot) -> &'static str {
    match snapshot.mode {
        Mode::ForcedOpen => "FORCED_OPEN",
        Mode::ForcedClosed => "FORCED_CLOSED",
        Mode::MetricsOnly => "METRICS_ONLY",
        Mode::Disabled => "DISABLED",
        Mode::Normal => match snapshot.state {
            State::Closed => "CLOSED",
            State::Open => "OPEN",
            State::HalfOpen => "HALF_OPEN",
        },
    }
}

/// Latency by percentile, in whole milliseconds, keyed as Hystrix keys them.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Percentiles {
    #[serde(rename = "0")]
    p0: u64,
    #[serde(rename = "25")]
    p25: u64,
    #[serde(rename = "50")]
    p50: u64,
    #[serde(rename = "75")]
    p75: u64,
    #[serde(rename = "90")]
    p90: u64,
    #[serde(rename = "95")]
    p95: u64,
    #[serde(rename = "99")]
    p99: u64,
    #[serde(rename = "99.5")]
    p99_5: u64,
    #[serde(rename = "100")]
    p100: u64,
}

impl Percentiles {
    fn of(latency: &Latency) -> Self {
        let at = |p: f64| latency.at(p).map_or(0, millis);
        Percentiles {
            p0: at(0.0),
            p25: at(25.0),
            p50: at(50.0),
            p75: at(75.0),
            p90: at(90.0),
            p95: at(95.0),
            p99: at(99.0),
            p99_5: at(99.5),
            p100: at(100.0),
        }
    }
}

/// A `HystrixCommand` event.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)] // the fields are Hystrix's keys; see the module docs
pub struct CommandEvent<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: &'a str,
    pub group: &'a str,
    pub current_time: u64,
    pub is_circuit_breaker_open: bool,
    pub error_percentage: u64,
    pub error_count: u64,
    pub request_count: u64,
    pub rolling_count_bad_requests: u64,
    pub rolling_count_collapsed_requests: u64,
    pub rolling_count_emit: u64,
    pub rolling_count_exceptions_thrown: u64,
    pub rolling_count_failure: u64,
    pub rolling_count_fallback_emit: u64,
    pub rolling_count_fallback_failure: u64,
    pub rolling_count_fallback_missing: u64,
    pub rolling_count_fallback_rejection: u64,
    pub rolling_count_fallback_success: u64,
    pub rolling_count_responses_from_cache: u64,
    pub rolling_count_semaphore_rejected: u64,
    pub rolling_count_short_circuited: u64,
    pub rolling_count_success: u64,
    pub rolling_count_thread_pool_rejected: u64,
    pub rolling_count_timeout: u64,
    pub current_concurrent_execution_count: u64,
    pub rolling_max_concurrent_execution_count: u64,
    #[serde(rename = "latencyExecute_mean")]
    pub latency_execute_mean: u64,
    pub latency_execute: Percentiles,
    #[serde(rename = "latencyTotal_mean")]
    pub latency_total_mean: u64,
    pub latency_total: Percentiles,
    #[serde(rename = "propertyValue_circuitBreakerRequestVolumeThreshold")]
    pub request_volume_threshold: u32,
    #[serde(rename = "propertyValue_circuitBreakerSleepWindowInMilliseconds")]
    pub sleep_window_ms: u64,
    #[serde(rename = "propertyValue_circuitBreakerErrorThresholdPercentage")]
    pub error_threshold_percentage: u8,
    #[serde(rename = "propertyValue_circuitBreakerForceOpen")]
    pub force_open: bool,
    #[serde(rename = "propertyValue_circuitBreakerForceClosed")]
    pub force_closed: bool,
    #[serde(rename = "propertyValue_circuitBreakerEnabled")]
    pub enabled: bool,
    #[serde(rename = "propertyValue_executionIsolationStrategy")]
    pub isolation_strategy: &'static str,
    #[serde(rename = "propertyValue_executionIsolationThreadTimeoutInMilliseconds")]
    pub thread_timeout_ms: u64,
    #[serde(rename = "propertyValue_executionTimeoutInMilliseconds")]
    pub timeout_ms: u64,
    #[serde(rename = "propertyValue_executionIsolationThreadInterruptOnTimeout")]
    pub interrupt_on_timeout: bool,
    #[serde(rename = "propertyValue_executionIsolationThreadPoolKeyOverride")]
    pub thread_pool_key_override: Option<&'a str>,
    #[serde(rename = "propertyValue_executionIsolationSemaphoreMaxConcurrentRequests")]
    pub semaphore_max_concurrent: u32,
    #[serde(rename = "propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests")]
    pub fallback_max_concurrent: u32,
    #[serde(rename = "propertyValue_metricsRollingStatisticalWindowInMilliseconds")]
    pub rolling_window_ms: u64,
    #[serde(rename = "propertyValue_requestCacheEnabled")]
    pub request_cache_enabled: bool,
    #[serde(rename = "propertyValue_requestLogEnabled")]
    pub request_log_enabled: bool,
    pub reporting_hosts: u32,
    pub thread_pool: &'a str,
    /// Breakwater's extra key, see [`STATE_KEY`].
    pub circuit_breaker_state: &'static str,
}

impl<'a> CommandEvent<'a> {
    /// The event for one breaker's snapshot.
    pub fn new(s: &'a Snapshot) -> Self {
        let c = &s.config;
        let rolling = &s.rolling;
        let timeout_ms = c.timeout.map_or(0, millis);
        CommandEvent {
            kind: COMMAND_TYPE,
            name: &s.name,
            group: &s.group,
            current_time: epoch_millis(s.taken_at),
            is_circuit_breaker_open: s.is_open_for_hystrix(),
            error_percentage: rolling.error_percentage(),
            error_count: rolling.errors(),
            request_count: rolling.requests(),
            rolling_count_bad_requests: rolling.bad_request,
            rolling_count_collapsed_requests: 0,
            rolling_count_emit: 0,
            rolling_count_exceptions_thrown: rolling.exceptions_thrown,
            rolling_count_failure: rolling.failure,
            rolling_count_fallback_emit: 0,
            rolling_count_fallback_failure: rolling.fallback_failure,
            rolling_count_fallback_missing: rolling.fallback_missing,
            rolling_count_fallback_rejection: rolling.fallback_rejection,
            rolling_count_fallback_success: rolling.fallback_success,
            rolling_count_responses_from_cache: 0,
            rolling_count_semaphore_rejected: rolling.rejected,
            rolling_count_short_circuited: rolling.short_circuited,
            rolling_count_success: rolling.success,
            rolling_count_thread_pool_rejected: 0,
            rolling_count_timeout: rolling.timeout,
            current_concurrent_execution_count: s.concurrent_calls,
            rolling_max_concurrent_execution_count: s.rolling_max_concurrent_calls,
            latency_execute_mean: millis(s.latency_execute.mean),
            latency_execute: Percentiles::of(&s.latency_execute),
            latency_total_mean: millis(s.latency_total.mean),
            latency_total: Percentiles::of(&s.latency_total),
            request_volume_threshold: c.request_volume_threshold,
            sleep_window_ms: millis(c.sleep_window),
            error_threshold_percentage: c.error_threshold_percentage,
            force_open: c.mode == Mode::ForcedOpen,
            force_closed: c.mode == Mode::ForcedClosed,
            enabled: !matches!(c.mode, Mode::MetricsOnly | Mode::Disabled),
            // Breakwater isolates with semaphores (bulkheads); there are no thread pools.
            isolation_strategy: "SEMAPHORE",
            thread_timeout_ms: timeout_ms,
            timeout_ms,
            // A timed-out call's future is dropped, which is what interrupting means here.
            interrupt_on_timeout: true,
            thread_pool_key_override: None,
            semaphore_max_concurrent: c.max_concurrent_calls,
            fallback_max_concurrent: c.fallback_max_concurrent_calls,
            rolling_window_ms: rolling_window_ms(c),
            request_cache_enabled: false,
            request_log_enabled: false,
            reporting_hosts: 1,
            thread_pool: &s.thread_pool,
            circuit_breaker_state: state_name(s),
        }
    }
}

/// A `HystrixThreadPool` event, made from a bulkhead.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)] // the fields are Hystrix's keys; see the module docs
pub struct ThreadPoolEvent<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: &'a str,
    pub current_time: u64,
    pub current_active_count: u64,
    pub current_completed_task_count: u64,
    pub current_core_pool_size: u64,
    pub current_largest_pool_size: u64,
    pub current_maximum_pool_size: u64,
    pub current_pool_size: u64,
    pub current_queue_size: u64,
    pub current_task_count: u64,
    pub rolling_count_threads_executed: u64,
    pub rolling_max_active_threads: u64,
    pub rolling_count_command_rejections: u64,
    #[serde(rename = "propertyValue_queueSizeRejectionThreshold")]
    pub queue_size_rejection_threshold: u64,
    #[serde(rename = "propertyValue_metricsRollingStatisticalWindowInMilliseconds")]
    pub rolling_window_ms: u64,
    pub reporting_hosts: u32,
}

impl<'a> ThreadPoolEvent<'a> {
    /// The event for one bulkhead's snapshot.
    pub fn new(b: &'a BulkheadSnapshot) -> Self {
        let max = u64::from(b.max_concurrent);
        ThreadPoolEvent {
            kind: THREAD_POOL_TYPE,
            name: &b.name,
            current_time: epoch_millis(b.taken_at),
            current_active_count: u64::from(b.active),
            current_completed_task_count: b.cumulative_executed,
            current_core_pool_size: max,
            current_largest_pool_size: b.rolling_max_active.max(u64::from(b.active)),
            current_maximum_pool_size: max,
            current_pool_size: max,
            // A bulkhead never queues: it rejects at once, like Hystrix's semaphores.
            current_queue_size: 0,
            current_task_count: b.cumulative_executed + u64::from(b.active),
            rolling_count_threads_executed: b.rolling_executed,
            rolling_max_active_threads: b.rolling_max_active,
            rolling_count_command_rejections: b.rolling_rejected,
            queue_size_rejection_threshold: 0,
            rolling_window_ms: millis(b.window),
            reporting_hosts: 1,
        }
    }
}

/// Appends `data: <json>\n\n` for every command and bulkhead to `out`; `ping: \n\n` when
/// there are none, as Hystrix's servlet does.
pub fn write_frame(commands: &[Snapshot], bulkheads: &[BulkheadSnapshot], out: &mut Vec<u8>) {
    let start = out.len();
    write_events(commands, bulkheads, out);
    if out.len() == start {
        out.extend_from_slice(sse::PING);
    }
}

/// Appends `data: <json>\n\n` for every command and bulkhead to `out` (nothing when there
/// are none).
pub fn write_events(commands: &[Snapshot], bulkheads: &[BulkheadSnapshot], out: &mut Vec<u8>) {
    for snapshot in commands {
        sse::write_data(&CommandEvent::new(snapshot), out);
    }
    for bulkhead in bulkheads {
        sse::write_data(&ThreadPoolEvent::new(bulkhead), out);
    }
}

fn rolling_window_ms(config: &CircuitBreakerConfig) -> u64 {
    match config.window {
        Window::Time { length, .. } => millis(length),
        // Count-based health still keeps Hystrix's 10 s time window for the stream.
        Window::Count { .. } => 10_000,
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

pub(crate) fn epoch_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, millis)
}
