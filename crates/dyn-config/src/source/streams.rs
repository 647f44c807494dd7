//! Reading a table's DynamoDB Stream: which keys changed since the last read.
//!
//! Shards open when the follower starts are read from their latest record on; shards that
//! appear later (the stream splits them every few hours on AWS) are read from their start, so
//! nothing written after the follower started is missed. Any error drops the follower; the
//! caller opens a new one and reloads the whole layer to cover the gap.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::error::DisplayErrorContext;
use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};

/// How often the shard list is read again, to find shards that split off.
const DESCRIBE_EVERY: Duration = Duration::from_secs(10);

pub(crate) struct StreamFollower {
    client: Client,
    arn: String,
    /// Open shards and their next iterator.
    iterators: HashMap<String, String>,
    /// Every shard seen so far (closed ones included), so a shard is opened once.
    known: HashSet<String>,
    described: Instant,
}

fn text(e: impl std::error::Error) -> String {
    DisplayErrorContext(e).to_string()
}

impl StreamFollower {
    /// Positions a reader at the end of every open shard: records from now on.
    pub(crate) async fn open(client: Client, arn: String) -> Result<Self, String> {
        let mut follower = StreamFollower {
            client,
            arn,
            iterators: HashMap::new(),
            known: HashSet::new(),
            described: Instant::now(),
        };
        follower.discover(ShardIteratorType::Latest).await?;
        Ok(follower)
    }

    /// Reads the shard list (paginated) and opens every open shard not seen before at `from`.
    async fn discover(&mut self, from: ShardIteratorType) -> Result<(), String> {
        let mut start: Option<String> = None;
        loop {
            let out = self
                .client
                .describe_stream()
                .stream_arn(&self.arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(text)?;
            let Some(description) = out.stream_description() else {
                break;
            };
            for shard in description.shards() {
                let Some(id) = shard.shard_id() else { continue };
                if !self.known.insert(id.to_owned()) {
                    continue;
                }
                let closed = shard
                    .sequence_number_range()
                    .is_some_and(|r| r.ending_sequence_number().is_some());
                // A closed shard seen at start holds only records from before it; one seen
                // later may hold records written since, so it is read from its start.
                if closed && from == ShardIteratorType::Latest {
                    continue;
                }
                let out = self
                    .client
                    .get_shard_iterator()
                    .stream_arn(&self.arn)
                    .shard_id(id)
                    .shard_iterator_type(from.clone())
                    .send()
                    .await
                    .map_err(text)?;
                if let Some(iterator) = out.shard_iterator() {
                    self.iterators.insert(id.to_owned(), iterator.to_owned());
                }
            }
            match description.last_evaluated_shard_id() {
                Some(id) => start = Some(id.to_owned()),
                None => break,
            }
        }
        self.described = Instant::now();
        Ok(())
    }

    /// The keys (`key` attribute) of every record since the last call.
    pub(crate) async fn changed_keys(&mut self) -> Result<HashSet<String>, String> {
        if self.described.elapsed() >= DESCRIBE_EVERY {
            self.discover(ShardIteratorType::TrimHorizon).await?;
        }
        let mut keys = HashSet::new();
        let mut closed = Vec::new();
        for (shard, iterator) in &mut self.iterators {
            let out = self
                .client
                .get_records()
                .shard_iterator(iterator.as_str())
                .send()
                .await
                .map_err(text)?;
            for record in out.records() {
                let key = record
                    .dynamodb()
                    .and_then(|r| r.keys())
                    .and_then(|k| k.get("key"));
                if let Some(AttributeValue::S(key)) = key {
                    keys.insert(key.clone());
                }
            }
            match out.next_shard_iterator() {
                Some(next) => *iterator = next.to_owned(),
                None => closed.push(shard.clone()), // the shard is closed and read to its end
            }
        }
        for shard in closed {
            self.iterators.remove(&shard);
        }
        Ok(keys)
    }
}
