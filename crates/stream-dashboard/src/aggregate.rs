//! Turbine-style aggregation: follow the streams of many instances and merge them into one.
//!
//! The rules are Turbine's: events are grouped by `(type, name)`; numbers are summed and
//! maps of numbers (latency percentiles) summed key by key; strings, booleans and every
//! `propertyValue_*` are counted per value, collapsing to the single value when all hosts
//! agree, else becoming `{"value": hosts, ...}`; `reportingHosts` is the number of hosts
//! reporting. When an instance's stream ends, its last values leave the sums.
//!
//! Two departures, both so the merged event stays meaningful: `currentTime` is the newest
//! of the hosts' times rather than their sum, and `errorPercentage` is recomputed from the
//! summed `errorCount` and `requestCount` rather than summed.
//!
//! Events of [extensions](crate::extension) (any `type` not starting `Hystrix`) are not
//! merged: each instance's pass on with a `source` field naming it. The aggregator asks every
//! upstream for them (`?extensions=all` is added to a URL that does not say).
//!
//! An upstream that sends an event we cannot read (not JSON, no `type` or `name`) has that
//! event skipped with a logged error naming the instance and line; its other events and the
//! last good values keep serving.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use breakwater_backoff::Backoff;
use bytes::Bytes;
use http::{StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::task::JoinHandle;

use crate::extension::{self, Extensions};
pub use crate::merge::merge;
use crate::proxy::{HttpClient, http_client};
use crate::sse::{self, SseParser};

/// Most distinct `(type, name)` events kept per instance; more are refused.
pub const MAX_EVENTS_PER_INSTANCE: usize = 20_000;
/// An upstream that sends nothing (not even a ping) for this long is reconnected.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The first wait before reconnecting to a lost instance; it doubles up to `RECONNECT_MAX`.
const RECONNECT_START: Duration = Duration::from_millis(500);
const RECONNECT_MAX: Duration = Duration::from_secs(30);

type Event = Arc<Map<String, Value>>;

/// One upstream stream and what it last said.
#[derive(Debug)]
struct Instance {
    url: Uri,
    /// `url` asking for every extension's events too.
    request_url: Uri,
    label: String,
    state: Mutex<InstanceState>,
}

#[derive(Debug, Default)]
struct InstanceState {
    connected: bool,
    events: BTreeMap<(String, String), Event>,
    last_error: Option<String>,
    accepted: u64,
    rejected: u64,
}

/// What is known about one followed instance.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InstanceStatus {
    /// `host:port` of its stream.
    pub label: String,
    /// Its stream URL.
    pub url: String,
    /// Whether its stream is open now.
    pub connected: bool,
    /// Distinct events (commands and thread pools) it reports.
    pub events: usize,
    /// Events read since start.
    pub accepted: u64,
    /// Events refused since start (unreadable, or past the cap).
    pub rejected: u64,
    /// The last problem with its stream, if any.
    pub last_error: Option<String>,
}

/// Follows instance streams and merges them. Cloning shares it; the followers stop when the
/// last clone is dropped.
#[derive(Debug, Clone)]
pub struct Aggregator {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    instances: Vec<Arc<Instance>>,
    followers: Vec<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for follower in &self.followers {
            follower.abort();
        }
    }
}

impl Aggregator {
    /// Starts following each stream URL (`http://host:port/hystrix.stream`). Call from within
    /// a Tokio runtime.
    pub fn spawn(urls: impl IntoIterator<Item = Uri>) -> Self {
        let client = http_client();
        let instances: Vec<Arc<Instance>> = urls
            .into_iter()
            .map(|url| {
                let label = url
                    .authority()
                    .map_or_else(|| url.to_string(), |a| a.to_string());
                Arc::new(Instance {
                    request_url: with_extensions(&url),
                    url,
                    label,
                    state: Mutex::default(),
                })
            })
            .collect();
        let followers = instances
            .iter()
            .map(|instance| tokio::spawn(follow(instance.clone(), client.clone())))
            .collect();
        Aggregator {
            inner: Arc::new(Inner {
                instances,
                followers,
            }),
        }
    }

    /// The instances followed, in the order given.
    pub fn instances(&self) -> Vec<InstanceStatus> {
        self.inner
            .instances
            .iter()
            .map(|i| {
                let state = lock(&i.state);
                InstanceStatus {
                    label: i.label.clone(),
                    url: i.url.to_string(),
                    connected: state.connected,
                    events: state.events.len(),
                    accepted: state.accepted,
                    rejected: state.rejected,
                    last_error: state.last_error.clone(),
                }
            })
            .collect()
    }

    /// The merged Hystrix events of every connected instance, one per `(type, name)`.
    pub fn merged(&self) -> Vec<Map<String, Value>> {
        let mut groups: BTreeMap<(String, String), Vec<Event>> = BTreeMap::new();
        for instance in &self.inner.instances {
            let state = lock(&instance.state);
            for (key, event) in &state.events {
                if extension::is_hystrix(&key.0) {
                    groups.entry(key.clone()).or_default().push(event.clone());
                }
            }
        }
        groups
            .values()
            .map(|events| {
                let refs: Vec<&Map<String, Value>> = events.iter().map(|e| &**e).collect();
                merge(&refs)
            })
            .collect()
    }

    /// The extension events of every connected instance that `selection` asks for, unmerged,
    /// each with `source` set to its instance's label.
    pub fn extension_events(&self, selection: &Extensions) -> Vec<Map<String, Value>> {
        let mut events = Vec::new();
        for instance in &self.inner.instances {
            let state = lock(&instance.state);
            for ((kind, _), event) in &state.events {
                if !extension::is_hystrix(kind) && selection.includes(kind) {
                    let mut event = (**event).clone();
                    event.insert("source".to_owned(), Value::from(instance.label.as_str()));
                    events.push(event);
                }
            }
        }
        events
    }

    /// The last events of instance `index` as it sent them, or `None` past the end.
    pub fn instance_events(&self, index: usize) -> Option<Vec<Event>> {
        let instance = self.inner.instances.get(index)?;
        Some(lock(&instance.state).events.values().cloned().collect())
    }

    pub(crate) fn write_merged_frame(&self, selection: &Extensions, out: &mut Vec<u8>) {
        let merged = self.merged();
        let extensions = self.extension_events(selection);
        sse::write_frame(merged.iter().chain(&extensions), out);
    }

    pub(crate) fn write_instance_frame(
        &self,
        index: usize,
        selection: &Extensions,
        out: &mut Vec<u8>,
    ) {
        let events = self.instance_events(index).unwrap_or_default();
        let wanted =
            events
                .iter()
                .map(|e| &**e)
                .filter(|e| match e.get("type").and_then(Value::as_str) {
                    Some(kind) => extension::is_hystrix(kind) || selection.includes(kind),
                    None => false,
                });
        sse::write_frame(wanted, out);
    }

    /// Reads one event of instance `index` (its `data` text) as its follower would.
    #[doc(hidden)]
    pub fn ingest(&self, index: usize, data: &str) -> Result<(), String> {
        let instance = self
            .inner
            .instances
            .get(index)
            .ok_or_else(|| format!("no instance {index}"))?;
        ingest(instance, data, 0)
    }
}

/// `url` with `extensions=all` added to its query, unless it already says which.
fn with_extensions(url: &Uri) -> Uri {
    let Some(path_and_query) = url.path_and_query() else {
        return url.clone();
    };
    let query = path_and_query.query().unwrap_or("");
    let asks = query
        .split('&')
        .any(|pair| pair.split('=').next() == Some(extension::QUERY));
    if asks {
        return url.clone();
    }
    let separator = if query.is_empty() { "" } else { "&" };
    let changed = format!(
        "{}?{query}{separator}{}=all",
        path_and_query.path(),
        extension::QUERY
    );
    let mut parts = url.clone().into_parts();
    match changed.parse() {
        Ok(changed) => {
            parts.path_and_query = Some(changed);
            Uri::from_parts(parts).unwrap_or_else(|_| url.clone())
        }
        Err(_) => url.clone(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Parses one upstream event and stores it as the instance's latest for its key.
fn ingest(instance: &Instance, data: &str, line: u64) -> Result<(), String> {
    let result = parse_event(data);
    let mut state = lock(&instance.state);
    let outcome = match result {
        Ok((key, event, delete)) => {
            if delete {
                state.events.remove(&key);
                Ok(())
            } else if state.events.len() >= MAX_EVENTS_PER_INSTANCE
                && !state.events.contains_key(&key)
            {
                Err(format!(
                    "more than {MAX_EVENTS_PER_INSTANCE} distinct events; {:?} {:?} refused",
                    key.0, key.1
                ))
            } else {
                state.events.insert(key, Arc::new(event));
                Ok(())
            }
        }
        Err(reason) => Err(reason),
    };
    match &outcome {
        Ok(()) => state.accepted += 1,
        Err(reason) => {
            state.rejected += 1;
            let message = format!("{} line {line}: {reason}", instance.url);
            // Log the first refusals and then one in a thousand, so a broken upstream cannot
            // flood the log.
            if state.rejected <= 10 || state.rejected.is_multiple_of(1000) {
                tracing::warn!(instance = %instance.url, line, %reason, rejected = state.rejected, "event refused");
            }
            state.last_error = Some(message);
        }
    }
    outcome
}

type ParsedEvent = ((String, String), Map<String, Value>, bool);

fn parse_event(data: &str) -> Result<ParsedEvent, String> {
    let value: Value = serde_json::from_str(data).map_err(|e| format!("event is not JSON: {e}"))?;
    let Value::Object(event) = value else {
        return Err("event is not a JSON object".to_owned());
    };
    let field = |name: &str| match event.get(name) {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 1024 => Ok(s.clone()),
        Some(_) => Err(format!("event field {name:?} is not a non-empty string")),
        None => Err(format!("event has no {name:?} field")),
    };
    let key = (field("type")?, field("name")?);
    let delete = matches!(event.get("deleteData"), Some(Value::String(s)) if s == "true")
        || matches!(event.get("deleteData"), Some(Value::Bool(true)));
    Ok((key, event, delete))
}

/// Follows one instance's stream for as long as the aggregator lives.
async fn follow(instance: Arc<Instance>, client: HttpClient) {
    // Jitter, so that a dashboard following many instances of one that restarted does not
    // reconnect to all of them in step.
    let backoff = Backoff::exponential(RECONNECT_MAX).with_jitter(0.2);
    let mut failures = 0u32;
    loop {
        let error = match read_stream(&instance, &client, &mut failures).await {
            Ok(()) => "stream ended".to_owned(),
            Err(error) => error,
        };
        {
            let mut state = lock(&instance.state);
            if state.connected {
                tracing::info!(instance = %instance.url, %error, "instance stream lost; its values leave the sums");
            }
            state.connected = false;
            // Subtract the instance: its last values no longer count.
            state.events.clear();
            state.last_error = Some(error);
        }
        tokio::time::sleep(backoff.delay(RECONNECT_START, failures)).await;
        failures = failures.saturating_add(1);
    }
}

async fn read_stream(
    instance: &Instance,
    client: &HttpClient,
    failures: &mut u32,
) -> Result<(), String> {
    let request = http::Request::get(instance.request_url.clone())
        .header(header::ACCEPT, "text/event-stream")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(CONNECT_TIMEOUT, client.request(request))
        .await
        .map_err(|_| format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()))?
        .map_err(|e| format!("cannot connect: {e}"))?;
    if response.status() != StatusCode::OK {
        return Err(format!("answered {}", response.status()));
    }
    {
        let mut state = lock(&instance.state);
        state.connected = true;
        state.last_error = None;
    }
    *failures = 0;
    tracing::info!(instance = %instance.url, "following instance stream");
    let mut body = response.into_body();
    let mut parser = SseParser::new();
    loop {
        let frame = match tokio::time::timeout(IDLE_TIMEOUT, body.frame()).await {
            Err(_) => return Err(format!("nothing received for {} s", IDLE_TIMEOUT.as_secs())),
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => return Err(format!("read failed: {e}")),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(bytes) = frame.into_data() else {
            continue;
        };
        let events = parser.feed(&bytes).map_err(|e| e.to_string())?;
        for event in events {
            // A refused event is logged and counted; the stream goes on.
            let _ = ingest(instance, &event.data, event.line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn upstreams_are_asked_for_every_extension_unless_the_url_says() {
        let asked = |url: &str| with_extensions(&url.parse().unwrap()).to_string();
        assert_eq!(
            asked("http://10.0.0.1:8080/hystrix.stream"),
            "http://10.0.0.1:8080/hystrix.stream?extensions=all"
        );
        assert_eq!(
            asked("http://h/hystrix.stream?delay=1000"),
            "http://h/hystrix.stream?delay=1000&extensions=all"
        );
        assert_eq!(
            asked("http://h/hystrix.stream?extensions="),
            "http://h/hystrix.stream?extensions="
        );
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn turbine_rules() {
        let a = obj(json!({
            "type": "HystrixCommand", "name": "c", "group": "g", "currentTime": 10,
            "isCircuitBreakerOpen": false, "errorPercentage": 50, "errorCount": 1,
            "requestCount": 2, "latencyExecute": {"50": 4, "99.5": 8},
            "propertyValue_circuitBreakerRequestVolumeThreshold": 20,
            "circuitBreakerState": "CLOSED", "reportingHosts": 1
        }));
        let b = obj(json!({
            "type": "HystrixCommand", "name": "c", "group": "g", "currentTime": 12,
            "isCircuitBreakerOpen": true, "errorPercentage": 100, "errorCount": 8,
            "requestCount": 8, "latencyExecute": {"50": 6, "99.5": 10},
            "propertyValue_circuitBreakerRequestVolumeThreshold": 20,
            "circuitBreakerState": "OPEN", "reportingHosts": 1
        }));
        let m = merge(&[&a, &b]);
        assert_eq!(m["currentTime"], json!(12));
        assert_eq!(m["group"], json!("g"));
        assert_eq!(m["isCircuitBreakerOpen"], json!({"false": 1, "true": 1}));
        assert_eq!(m["circuitBreakerState"], json!({"CLOSED": 1, "OPEN": 1}));
        assert_eq!(m["errorCount"], json!(9));
        assert_eq!(m["requestCount"], json!(10));
        assert_eq!(m["errorPercentage"], json!(90));
        assert_eq!(m["latencyExecute"], json!({"50": 10, "99.5": 18}));
        assert_eq!(
            m["propertyValue_circuitBreakerRequestVolumeThreshold"],
            json!(20)
        );
        assert_eq!(m["reportingHosts"], json!(2));

        // An upstream aggregator's counts merge with single values.
        let m2 = merge(&[&m, &a]);
        assert_eq!(m2["isCircuitBreakerOpen"], json!({"false": 2, "true": 1}));
        assert_eq!(m2["reportingHosts"], json!(3));
        assert_eq!(
            m2["propertyValue_circuitBreakerRequestVolumeThreshold"],
            json!(20)
        );
        let one = merge(&[&a]);
        assert_eq!(one, {
            let mut a = a.clone();
            a.insert("errorPercentage".into(), json!(50));
            a
        });
    }

    #[test]
    fn unreadable_events_are_refused_by_name() {
        for (data, what) in [
            ("{", "not JSON"),
            ("[1]", "not a JSON object"),
            ("{\"name\":\"x\"}", "no \"type\""),
            (
                "{\"type\":\"HystrixCommand\",\"name\":7}",
                "\"name\" is not",
            ),
        ] {
            let err = parse_event(data).unwrap_err();
            assert!(err.contains(what), "{data}: {err}");
        }
    }
}
