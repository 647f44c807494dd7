//! The DynamoDB layer: scans the table, keeps for each key the most specific row that
//! applies to this instance, and follows changes by polling one version item.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::config::{Config, Layer, Sourced};
use crate::error::{Origin, SourceError};
use crate::table::{GLOBAL_SCOPE, Row, Scope, VERSION_ITEM_KEY};

/// Where a newly followed shard is read from.
#[derive(Debug, Clone, Copy)]
enum ShardStart {
    Latest,
    Beginning,
}

/// Reads settings from a DynamoDB table (layout: [`crate::table`]) into a [`Config`]'s
/// DynamoDB layer.
///
/// Change detection polls: every `poll_interval` (default 5 s) it reads the version item with
/// one consistent `GetItem`, and scans (paginated) only when the version moved, plus a full
/// scan every `full_refresh` (default 5 min) for writers that do not bump the version. When
/// DynamoDB cannot be reached, the last values stay, polls back off (doubling, up to 10x the
/// interval) and the gauge `breakwater_config_staleness_seconds` says how old they are.
#[derive(Debug, Clone)]
pub struct DynamoDbSource {
    /// One load at a time, so an older scan never replaces a newer one.
    loading: std::sync::Arc<tokio::sync::Mutex<()>>,
    streams: Option<aws_sdk_dynamodbstreams::Client>,
    client: Client,
    table: String,
    scope: Scope,
    poll_interval: Duration,
    full_refresh: Duration,
}

impl DynamoDbSource {
    /// Reads `table` with `client`, as an instance with no scope (global rows only).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoDbSource {
            loading: Default::default(),
            streams: None,
            client,
            table: table.into(),
            scope: Scope::default(),
            poll_interval: Duration::from_secs(5),
            full_refresh: Duration::from_secs(300),
        }
    }

    /// This instance's scope: rows for other scopes are left out, and the most specific
    /// matching row wins.
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// Follows the table's DynamoDB Stream (when it has one) with this client: each change
    /// is applied as soon as its stream record is read (about every 100 ms), instead of at
    /// the next poll. Polling continues as a safety net.
    pub fn streams(mut self, client: aws_sdk_dynamodbstreams::Client) -> Self {
        self.streams = Some(client);
        self
    }

    /// How often the version item is read. Default 5 s.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(10));
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
            .map_err(|e| self.error(aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
        Ok(out
            .item()
            .and_then(|item| match item.get("version") {
                Some(AttributeValue::N(n)) => n.parse().ok(),
                _ => None,
            })
            .unwrap_or(0))
    }

    /// Scans the table and replaces the DynamoDB layer; returns how many keys apply.
    /// Malformed rows are logged (with their key where known) and left out.
    pub async fn load(&self, config: &Config) -> Result<usize, SourceError> {
        let _loading = self.loading.lock().await;
        let mut best: HashMap<String, Row> = HashMap::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.error(aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
            for item in out.items() {
                if matches!(item.get("key"), Some(AttributeValue::S(k)) if k.starts_with("__breakwater__/"))
                {
                    continue;
                }
                let row = match Row::from_item(item) {
                    Ok(row) => row,
                    Err(reason) => {
                        tracing::warn!(table = %self.table, %reason, "config row left out");
                        continue;
                    }
                };
                // A tombstone removes its own row only: broader rows still apply.
                if row.value.is_none() || !self.scope.admits(&row.scope) {
                    continue;
                }
                let wins = best
                    .get(&row.key)
                    .is_none_or(|b| row.scope.specificity() > b.scope.specificity());
                if wins {
                    best.insert(row.key.clone(), row);
                }
            }
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        let layer: HashMap<String, Sourced> = best
            .into_values()
            .filter_map(|row| {
                let value = row.value?; // a tombstone: the key is deleted
                let origin = Origin {
                    layer: Layer::DynamoDb,
                    detail: format!(
                        "table {}, scope {}, version {}",
                        self.table, row.scope, row.version
                    ),
                };
                Some((row.key, Sourced { value, origin }))
            })
            .collect();
        let count = layer.len();
        config.replace_layer(Layer::DynamoDb, layer);
        Ok(count)
    }

    /// Loads once, then follows changes in a task on the current Tokio runtime until the
    /// handle is aborted. The first load's error is returned (and nothing is spawned) so a
    /// service can decide whether to start without its table.
    ///
    /// With [`streams`](Self::streams) set and a stream on the table, the stream is followed
    /// in the same task as the polling.
    pub async fn start(self, config: Config) -> Result<tokio::task::JoinHandle<()>, SourceError> {
        let version = self.version().await?;
        let stream_arn = match &self.streams {
            Some(_) => self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| self.error(aws_sdk_dynamodb::error::DisplayErrorContext(e)))?
                .table()
                .and_then(|t| t.latest_stream_arn())
                .map(str::to_owned),
            None => None,
        };
        // Stream positions are taken before the first load, so no write falls in between.
        let mut iterators = HashMap::new();
        if let (Some(arn), Some(streams)) = (&stream_arn, &self.streams) {
            self.open_shards(streams, arn, &mut iterators, ShardStart::Latest)
                .await
                .map_err(|e| self.error(e))?;
        }
        self.load(&config).await?;
        let source = self.clone();
        let streamed = config.clone();
        Ok(tokio::spawn(async move {
            match stream_arn {
                Some(arn) => {
                    tokio::join!(
                        source.follow(config, version),
                        self.follow_stream(streamed, arn, iterators)
                    );
                }
                None => source.follow(config, version).await,
            }
        }))
    }

    /// Adds an iterator for every open shard not followed yet.
    async fn open_shards(
        &self,
        streams: &aws_sdk_dynamodbstreams::Client,
        arn: &str,
        iterators: &mut HashMap<String, Option<String>>,
        start: ShardStart,
    ) -> Result<(), String> {
        use aws_sdk_dynamodbstreams::types::ShardIteratorType;
        let out = streams
            .describe_stream()
            .stream_arn(arn)
            .send()
            .await
            .map_err(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(e).to_string())?;
        for shard in out
            .stream_description()
            .map(|d| d.shards())
            .unwrap_or_default()
        {
            let Some(id) = shard.shard_id() else { continue };
            let open = shard
                .sequence_number_range()
                .is_none_or(|r| r.ending_sequence_number().is_none());
            if open && !iterators.contains_key(id) {
                let kind = match start {
                    ShardStart::Latest => ShardIteratorType::Latest,
                    // Shards that appear later are read from their start: nothing is missed.
                    ShardStart::Beginning => ShardIteratorType::TrimHorizon,
                };
                let it = streams
                    .get_shard_iterator()
                    .stream_arn(arn)
                    .shard_id(id)
                    .shard_iterator_type(kind)
                    .send()
                    .await
                    .map_err(|e| {
                        aws_sdk_dynamodbstreams::error::DisplayErrorContext(e).to_string()
                    })?;
                iterators.insert(id.to_owned(), it.shard_iterator().map(str::to_owned));
            }
        }
        Ok(())
    }

    /// Reads every open shard of the stream; any record means the table changed, and the
    /// layer is reloaded.
    async fn follow_stream(
        self,
        config: Config,
        arn: String,
        mut iterators: HashMap<String, Option<String>>,
    ) {
        let Some(streams) = self.streams.clone() else {
            return;
        };
        let mut described = Some(Instant::now());
        loop {
            let result: Result<bool, String> = async {
                // New shards appear as the stream splits; look for them now and then.
                if described.is_none_or(|d| d.elapsed() >= Duration::from_secs(10)) {
                    self.open_shards(&streams, &arn, &mut iterators, ShardStart::Beginning)
                        .await?;
                    described = Some(Instant::now());
                }
                let mut changed = false;
                for iterator in iterators.values_mut() {
                    let Some(current) = iterator.clone() else {
                        continue;
                    };
                    let out = streams
                        .get_records()
                        .shard_iterator(current)
                        .send()
                        .await
                        .map_err(|e| {
                            aws_sdk_dynamodbstreams::error::DisplayErrorContext(e).to_string()
                        })?;
                    changed |= !out.records().is_empty();
                    *iterator = out.next_shard_iterator().map(str::to_owned);
                }
                iterators.retain(|_, it| it.is_some());
                Ok(changed)
            }
            .await;
            match result {
                Ok(true) => {
                    if let Err(error) = self.load(&config).await {
                        tracing::warn!(%error, "reload after a stream record failed; polling will retry");
                    }
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(table = %self.table, %error, "reading the table's stream failed; polling continues");
                    // Iterators may have expired: start over, and reload so nothing is lost.
                    iterators.clear();
                    described = None;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if let Err(error) = self.load(&config).await {
                        tracing::warn!(%error, "reload failed; polling will retry");
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn follow(self, config: Config, mut seen: u64) {
        let mut last_ok = Instant::now();
        let mut last_scan = Instant::now();
        let mut failures: u32 = 0;
        let staleness = metrics::gauge!(
            "breakwater_config_staleness_seconds",
            "source" => "dynamodb",
            "table" => self.table.clone()
        );
        loop {
            let backoff = self
                .poll_interval
                .saturating_mul(2u32.saturating_pow(failures).min(10));
            tokio::time::sleep(backoff).await;
            let result = async {
                let version = self.version().await?;
                if version != seen || last_scan.elapsed() >= self.full_refresh {
                    self.load(&config).await?;
                    last_scan = Instant::now();
                }
                Ok::<_, SourceError>(version)
            }
            .await;
            match result {
                Ok(version) => {
                    seen = version;
                    last_ok = Instant::now();
                    failures = 0;
                }
                Err(error) => {
                    failures = (failures + 1).min(4);
                    metrics::counter!("breakwater_config_poll_errors_total", "source" => "dynamodb")
                        .increment(1);
                    tracing::warn!(%error, stale_for = ?last_ok.elapsed(), "config poll failed; last values stay");
                }
            }
            staleness.set(last_ok.elapsed().as_secs_f64());
        }
    }
}
