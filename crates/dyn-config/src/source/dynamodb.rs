//! The DynamoDB layer: reads the table (layout: [`crate::table`]), keeps for each key the
//! most specific row that applies to this instance, and follows changes, pushed by the
//! table's DynamoDB Stream when it has one, else by polling one version item.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::query::QueryError;
use aws_sdk_dynamodb::types::{AttributeValue, KeyType};

pub use super::calls::call_timeouts;
use super::calls::{backoff, bounded};
use super::streams::{StreamError, StreamFollower};
use crate::error::SourceError;
use crate::metrics::{POLL_ERRORS_TOTAL, RELOADS_TOTAL, STALENESS_SECONDS, STREAM_ERRORS_TOTAL};
use crate::origin::{Origin, SourceKind, Sourced};
use crate::store::ConfigStore;
use crate::table::{GLOBAL_SCOPE, INTERNAL_PREFIX, Row, Scope, VERSION_ITEM_KEY, rows_of_key};

/// Reads settings from a DynamoDB table into a [`ConfigStore`]'s DynamoDB layer.
///
/// Change detection:
/// - **Polling** (always on): every `poll_interval` (default 5 s) one consistent `GetItem` of
///   the version item; the table is scanned (paginated) only when the version moved, and in
///   full every `full_refresh` (default 5 min) for writers that do not bump the version. A
///   table without the `scope` sort key (Archaius's plain `key`/`value` table) has no
///   version item and is scanned at every poll.
/// - **DynamoDB Streams** (with [`streams`](Self::streams) and a stream on the table): the
///   stream is read every `stream_interval` (default 250 ms) and each changed key is read
///   again with one `Query`. Polling stays as a safety net (set it to e.g. 60 s). AWS advises
///   at most two readers per shard, so a large fleet should poll (or relay the stream).
///
/// When DynamoDB cannot be reached the last values stay, polls back off (doubling with
/// jitter, up to 10x the interval) and the gauge `breakwater_config_staleness_seconds` says
/// how old the values are: the age of the last successful read of the table (a poll's
/// `GetItem` of the version item or scan, or a stream read whose changed keys were all read
/// again), updated every second while the source runs. A stream read that found no change
/// does not read the table, so with Streams and a long poll interval the gauge also climbs up
/// to about the poll interval in quiet times; alert on more than that.
///
/// A throttled stream read (`LimitExceededException`, `ProvisionedThroughputExceeded`, ...)
/// backs off and reads again from the same positions; any other stream error (trimmed data,
/// an expired iterator, the stream gone, DynamoDB unreachable) opens the stream again from
/// its end and reloads the whole table once to cover the gap.
///
/// ```no_run
/// use std::time::Duration;
/// use breakwater_dyn_config::{ConfigStore, DynamoDbSource, Scope};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let aws = aws_config::load_from_env().await;
/// let config = ConfigStore::from_env();
/// let _task = DynamoDbSource::new(aws_sdk_dynamodb::Client::new(&aws), "breakwater-config")
///     .scope(Scope { app: Some("orders".into()), ..Scope::default() })
///     .streams(aws_sdk_dynamodbstreams::Client::new(&aws))
///     .poll_interval(Duration::from_secs(30))
///     .start(config.clone())
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DynamoDbSource {
    /// One (re)load at a time, so an older read never replaces a newer one.
    loading: Arc<tokio::sync::Mutex<()>>,
    streams: Option<aws_sdk_dynamodbstreams::Client>,
    client: Client,
    table: String,
    scope: Scope,
    poll_interval: Duration,
    stream_interval: Duration,
    full_refresh: Duration,
}

/// What the first load found out.
struct Started {
    /// The version item's version (`None`: the table has no version item).
    version: Option<u64>,
    follower: Option<(StreamFollower, aws_sdk_dynamodbstreams::Client, String)>,
}

/// How often the staleness gauge is set from the age of the last successful read.
const STALENESS_TICK: Duration = Duration::from_secs(1);

/// State shared by the poller, the stream reader and the staleness ticker.
struct Shared {
    /// When the table was last read successfully.
    last_ok: Mutex<Instant>,
    staleness: metrics::Gauge,
}

impl Shared {
    /// The table was just read successfully.
    fn ok(&self) {
        *self.last_ok.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.staleness.set(0.0);
    }

    /// The age of the last successful read, also published on the gauge.
    fn stale_for(&self) -> Duration {
        let age = self
            .last_ok
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed();
        self.staleness.set(age.as_secs_f64());
        age
    }

    /// Publishes the age every `period`, forever: run it inside the source's task (not a
    /// task of its own), so it stops when that task ends or is aborted.
    async fn publish_staleness(&self, period: Duration) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.stale_for();
        }
    }
}

impl DynamoDbSource {
    /// Reads `table` with `client`, as an instance with no scope (global rows only).
    ///
    /// A client with no operation timeout of its own gets [`call_timeouts`]: one hung call
    /// must not stop every later poll.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoDbSource {
            loading: Arc::default(),
            streams: None,
            client: bounded(client),
            table: table.into(),
            scope: Scope::default(),
            poll_interval: Duration::from_secs(5),
            stream_interval: Duration::from_millis(250),
            full_refresh: Duration::from_secs(300),
        }
    }

    /// This instance's scope: rows for other scopes are left out, and the most specific
    /// matching row wins.
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// Follows the table's DynamoDB Stream (when it has one) with this client, so changes
    /// arrive within about `stream_interval` instead of at the next poll.
    pub fn streams(mut self, client: aws_sdk_dynamodbstreams::Client) -> Self {
        let client = match client
            .config()
            .timeout_config()
            .and_then(|t| t.operation_timeout())
        {
            Some(_) => client,
            None => aws_sdk_dynamodbstreams::Client::from_conf(
                client
                    .config()
                    .to_builder()
                    .timeout_config(call_timeouts())
                    .build(),
            ),
        };
        self.streams = Some(client);
        self
    }

    /// How often the version item is read. Default 5 s.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// How often the stream is read. Default 250 ms (AWS throttles above a few reads per
    /// second per shard).
    pub fn stream_interval(mut self, interval: Duration) -> Self {
        self.stream_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// How often the whole table is scanned even when the version did not move. Default 5 min.
    pub fn full_refresh(mut self, interval: Duration) -> Self {
        self.full_refresh = interval;
        self
    }

    fn error(&self, reason: impl std::fmt::Display) -> SourceError {
        SourceError::DynamoDb {
            table: self.table.clone(),
            reason: reason.to_string(),
        }
    }

    /// The version item's version (`0` when it does not exist yet).
    pub async fn version(&self) -> Result<u64, SourceError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("key", AttributeValue::S(VERSION_ITEM_KEY.into()))
            .key("scope", AttributeValue::S(GLOBAL_SCOPE.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error(DisplayErrorContext(e)))?;
        Ok(out
            .item()
            .and_then(|item| match item.get("version") {
                Some(AttributeValue::N(n)) => n.parse().ok(),
                _ => None,
            })
            .unwrap_or(0))
    }

    /// Keeps `row` in `best` if it applies to this instance and is the most specific so far.
    /// Malformed items are logged (with their key where known) and left out.
    fn consider(&self, best: &mut HashMap<String, Row>, item: &HashMap<String, AttributeValue>) {
        if matches!(item.get("key"), Some(AttributeValue::S(k)) if k.starts_with(INTERNAL_PREFIX)) {
            return; // the version item and other bookkeeping
        }
        let row = match Row::from_item(item) {
            Ok(row) => row,
            Err(reason) => {
                tracing::warn!(table = %self.table, %reason, "config row left out");
                return;
            }
        };
        if self.scope.prefers(&row, best.get(&row.key)) {
            best.insert(row.key.clone(), row);
        }
    }

    fn sourced(&self, row: Row) -> Option<(String, Sourced)> {
        let value = row.value?; // tombstones were left out already
        let origin = Origin {
            kind: SourceKind::DynamoDb,
            detail: format!(
                "table {}, scope {}, version {}",
                self.table, row.scope, row.version
            ),
        };
        Some((row.key, Sourced { value, origin }))
    }

    /// Scans the table (paginated) and replaces the DynamoDB layer; returns how many keys
    /// apply to this instance.
    pub async fn load(&self, config: &ConfigStore) -> Result<usize, SourceError> {
        let _loading = self.loading.lock().await;
        let mut best: HashMap<String, Row> = HashMap::new();
        let mut items = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = items
            .try_next()
            .await
            .map_err(|e| self.error(DisplayErrorContext(e)))?
        {
            self.consider(&mut best, &item);
        }
        let layer: HashMap<String, Sourced> = best
            .into_values()
            .filter_map(|row| self.sourced(row))
            .collect();
        let count = layer.len();
        config.replace_layer(SourceKind::DynamoDb, layer);
        Ok(count)
    }

    /// Reads every row of one key (one `Query`, paginated) and updates that key of the
    /// DynamoDB layer.
    pub async fn load_key(&self, config: &ConfigStore, key: &str) -> Result<(), SourceError> {
        self.query_key(config, key)
            .await
            .map_err(|e| self.error(DisplayErrorContext(e)))
    }

    /// [`load_key`](Self::load_key) with the SDK's error, so the stream reader can tell
    /// throttling from other failures.
    async fn query_key(
        &self,
        config: &ConfigStore,
        key: &str,
    ) -> Result<(), SdkError<QueryError, HttpResponse>> {
        let _loading = self.loading.lock().await;
        let mut best: HashMap<String, Row> = HashMap::new();
        let mut items = rows_of_key(&self.client, &self.table, key).send();
        while let Some(item) = items.try_next().await? {
            self.consider(&mut best, &item);
        }
        let sourced = best.remove(key).and_then(|row| self.sourced(row));
        config.set(SourceKind::DynamoDb, key, sourced.map(|(_, s)| s));
        Ok(())
    }

    /// Loads once, then follows changes in a task on the current Tokio runtime until the
    /// handle is aborted. The first load's error is returned (and nothing is spawned) so a
    /// service can decide whether to start without its table.
    ///
    /// With [`streams`](Self::streams) set and a stream on the table, the stream reader is in
    /// place before the first load, so no write after `start` returns can be missed.
    pub async fn start(
        self,
        config: ConfigStore,
    ) -> Result<tokio::task::JoinHandle<()>, SourceError> {
        let shared = Arc::new(self.shared());
        let started = self.connect(&config).await?;
        shared.ok();
        Ok(tokio::spawn(async move {
            let ticker = shared.clone();
            // Both loop until the task is aborted, which drops them together.
            tokio::select! {
                () = self.run(config, started, shared) => {}
                () = ticker.publish_staleness(STALENESS_TICK) => {}
            }
        }))
    }

    /// Like [`start`](Self::start), but never fails: the first load is retried in the
    /// background (backing off like a failed poll) while the service runs on its other
    /// layers, so a service can boot while DynamoDB is down. Staleness counts from this
    /// call until the first load succeeds.
    ///
    /// ```no_run
    /// # async fn run(client: aws_sdk_dynamodb::Client) {
    /// use breakwater_dyn_config::{ConfigStore, DynamoDbSource};
    ///
    /// let config = ConfigStore::from_env(); // env, file and code defaults serve meanwhile
    /// let _task = DynamoDbSource::new(client, "breakwater-config").spawn(config.clone());
    /// # }
    /// ```
    pub fn spawn(self, config: ConfigStore) -> tokio::task::JoinHandle<()> {
        let shared = Arc::new(self.shared());
        let ticker = shared.clone();
        let work = async move {
            let errors = metrics::counter!(
                POLL_ERRORS_TOTAL,
                "source" => "dynamodb",
                "table" => self.table.clone()
            );
            let mut failures = 0;
            let started = loop {
                match self.connect(&config).await {
                    Ok(started) => break started,
                    Err(error) => {
                        failures = (failures + 1).min(4);
                        errors.increment(1);
                        let stale_for = shared.stale_for();
                        tracing::warn!(%error, ?stale_for, "config table not loaded yet; running on the other layers");
                        tokio::time::sleep(backoff(self.poll_interval, failures)).await;
                    }
                }
            };
            shared.ok();
            self.run(config, started, shared).await
        };
        tokio::spawn(async move {
            // Both loop until the task is aborted, which drops them together.
            tokio::select! {
                () = work => {}
                () = ticker.publish_staleness(STALENESS_TICK) => {}
            }
        })
    }

    fn shared(&self) -> Shared {
        Shared {
            last_ok: Mutex::new(Instant::now()),
            staleness: metrics::gauge!(
                STALENESS_SECONDS,
                "source" => "dynamodb",
                "table" => self.table.clone()
            ),
        }
    }

    /// Describes the table, takes stream positions, then loads (in that order, so no write
    /// falls in between).
    async fn connect(&self, config: &ConfigStore) -> Result<Started, SourceError> {
        let described = self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| self.error(DisplayErrorContext(e)))?;
        let table = described.table();
        // Archaius's plain key/value table has no sort key, so no version item either.
        let versioned = table.is_some_and(|t| {
            t.key_schema()
                .iter()
                .any(|k| k.key_type() == &KeyType::Range && k.attribute_name() == "scope")
        });
        let stream_arn = table
            .and_then(|t| t.latest_stream_arn())
            .filter(|_| {
                table
                    .and_then(|t| t.stream_specification())
                    .is_some_and(|s| s.stream_enabled())
            })
            .map(str::to_owned);
        let version = if versioned {
            Some(self.version().await?)
        } else {
            None
        };
        let follower = match (&self.streams, stream_arn) {
            (Some(client), Some(arn)) => Some((
                StreamFollower::open(client.clone(), arn.clone())
                    .await
                    .map_err(|e| self.error(format!("its stream: {}", e.message)))?,
                client.clone(),
                arn,
            )),
            _ => None,
        };
        self.load(config).await?;
        Ok(Started { version, follower })
    }

    async fn run(self, config: ConfigStore, started: Started, shared: Arc<Shared>) {
        match started.follower {
            Some((follower, client, arn)) => {
                tokio::join!(
                    self.poll(&config, started.version, &shared),
                    self.follow_stream(&config, follower, client, arn, &shared)
                );
            }
            None => self.poll(&config, started.version, &shared).await,
        }
    }

    fn reloaded(&self, trigger: &'static str) {
        metrics::counter!(RELOADS_TOTAL, "table" => self.table.clone(), "trigger" => trigger)
            .increment(1);
    }

    async fn poll(&self, config: &ConfigStore, mut seen: Option<u64>, shared: &Shared) {
        let mut last_scan = Instant::now();
        let mut failures: u32 = 0;
        let errors = metrics::counter!(
            POLL_ERRORS_TOTAL,
            "source" => "dynamodb",
            "table" => self.table.clone()
        );
        loop {
            tokio::time::sleep(backoff(self.poll_interval, failures)).await;
            let result = async {
                let version = match seen {
                    Some(_) => Some(self.version().await?),
                    None => None,
                };
                let refresh = last_scan.elapsed() >= self.full_refresh;
                if version.is_none() || version != seen || refresh {
                    self.load(config).await?;
                    last_scan = Instant::now();
                    self.reloaded(if refresh { "refresh" } else { "poll" });
                }
                Ok::<_, SourceError>(version)
            }
            .await;
            match result {
                Ok(version) => {
                    seen = version;
                    failures = 0;
                    shared.ok();
                }
                Err(error) => {
                    failures = (failures + 1).min(4);
                    errors.increment(1);
                    let stale_for = shared.stale_for();
                    tracing::warn!(%error, ?stale_for, "config poll failed; last values stay");
                }
            }
        }
    }

    async fn follow_stream(
        &self,
        config: &ConfigStore,
        mut follower: StreamFollower,
        client: aws_sdk_dynamodbstreams::Client,
        arn: String,
        shared: &Shared,
    ) {
        let errors = metrics::counter!(STREAM_ERRORS_TOTAL, "table" => self.table.clone());
        let mut failures: u32 = 0;
        // After an error that loses the stream positions the stream is opened again from its
        // end: reload everything once to cover what was written in between. A throttled read
        // keeps its positions (and the keys it had found) and is simply retried later.
        let mut reload_all = false;
        loop {
            tokio::time::sleep(backoff(self.stream_interval, failures)).await;
            let result: Result<(), StreamError> = async {
                if reload_all {
                    follower = StreamFollower::open(client.clone(), arn.clone()).await?;
                    self.load(config)
                        .await
                        .map_err(|e| StreamError::lost(e.to_string()))?;
                    shared.ok();
                    self.reloaded("stream");
                    reload_all = false;
                }
                let keys: Vec<String> = follower
                    .changed_keys()
                    .await?
                    .into_iter()
                    .filter(|key| !key.starts_with(INTERNAL_PREFIX))
                    .collect();
                for (i, key) in keys.iter().enumerate() {
                    if let Err(error) = self.query_key(config, key).await {
                        // Not read yet: read them again next time.
                        follower.requeue(keys[i..].iter().cloned());
                        return Err(StreamError::from_sdk(
                            &error,
                            self.error(DisplayErrorContext(&error)).to_string(),
                        ));
                    }
                    self.reloaded("stream");
                }
                // A stream read that found nothing did not read the table: it says nothing
                // about whether the table can be read.
                if !keys.is_empty() {
                    shared.ok();
                }
                Ok(())
            }
            .await;
            match result {
                Ok(()) => failures = 0,
                Err(error) => {
                    failures = (failures + 1).min(4);
                    errors.increment(1);
                    if error.throttled() {
                        tracing::warn!(table = %self.table, error = %error.message, "reading the table's stream was throttled; backing off");
                    } else {
                        reload_all = true;
                        tracing::warn!(table = %self.table, error = %error.message, "reading the table's stream failed; polling continues");
                    }
                }
            }
        }
    }
}
