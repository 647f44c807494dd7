//! Reading a table's DynamoDB Stream: which keys changed since the last read.
//!
//! Shards open when the follower starts are read from their latest record on; shards that
//! appear later (the stream splits them every few hours on AWS) are read from their start, so
//! nothing written after the follower started is missed.
//!
//! Errors come in two kinds ([`StreamError`]): a throttled request leaves every position and
//! every key found so far in place, so the caller backs off and reads again; any other error
//! (trimmed data, an expired iterator, the stream gone, DynamoDB unreachable) may have lost
//! positions, so the caller drops the follower, opens a new one and reloads the whole layer
//! to cover the gap.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::{Duration, Instant};

use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodbstreams::operation::describe_stream::DescribeStreamError;
use aws_sdk_dynamodbstreams::operation::get_records::GetRecordsError;
use aws_sdk_dynamodbstreams::operation::get_shard_iterator::GetShardIteratorError;
use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};

/// How often the shard list is read again, to find shards that split off.
const DESCRIBE_EVERY: Duration = Duration::from_secs(10);

/// Error codes that mean "too many requests, slow down": the request did nothing, so it can
/// be made again later as it was.
const THROTTLING_CODES: &[&str] = &[
    "LimitExceededException",
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
];

fn throttling_code(code: Option<&str>) -> bool {
    code.is_some_and(|code| THROTTLING_CODES.contains(&code))
}

/// Whether a service error is throttling (by its modelled variant, else by its code).
pub(crate) trait Throttling: ProvideErrorMetadata {
    fn throttled(&self) -> bool {
        throttling_code(self.code())
    }
}

impl Throttling for GetRecordsError {
    fn throttled(&self) -> bool {
        matches!(self, GetRecordsError::LimitExceededException(_)) || throttling_code(self.code())
    }
}

// No throttling variant is modelled for these, but AWS may still answer with one.
impl Throttling for GetShardIteratorError {}
impl Throttling for DescribeStreamError {}

impl Throttling for aws_sdk_dynamodb::operation::query::QueryError {
    fn throttled(&self) -> bool {
        use aws_sdk_dynamodb::operation::query::QueryError;
        matches!(
            self,
            QueryError::ProvisionedThroughputExceededException(_)
                | QueryError::RequestLimitExceeded(_)
                | QueryError::ThrottlingException(_)
        ) || throttling_code(self.code())
    }
}

/// What went wrong reading the stream, and whether the positions survived it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamErrorKind {
    /// Throttled: nothing was lost; back off and read again.
    Throttled,
    /// Anything else: positions may be lost; open the stream again and reload.
    Lost,
}

#[derive(Debug)]
pub(crate) struct StreamError {
    pub(crate) kind: StreamErrorKind,
    pub(crate) message: String,
}

impl StreamError {
    pub(crate) fn lost(message: String) -> Self {
        StreamError {
            kind: StreamErrorKind::Lost,
            message,
        }
    }

    /// Classifies an SDK error: only a service error that is throttling is `Throttled`
    /// (timeouts, unreachable endpoints and other failures are `Lost`).
    pub(crate) fn from_sdk<E: Throttling, R>(error: &SdkError<E, R>, message: String) -> Self {
        let kind = match error.as_service_error() {
            Some(e) if e.throttled() => StreamErrorKind::Throttled,
            _ => StreamErrorKind::Lost,
        };
        StreamError { kind, message }
    }

    pub(crate) fn throttled(&self) -> bool {
        self.kind == StreamErrorKind::Throttled
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn classify<E, R>(error: SdkError<E, R>) -> StreamError
where
    E: Throttling + std::error::Error + 'static,
    R: fmt::Debug,
{
    let message = DisplayErrorContext(&error).to_string();
    StreamError::from_sdk(&error, message)
}

pub(crate) struct StreamFollower {
    client: Client,
    arn: String,
    /// Open shards and their next iterator.
    iterators: HashMap<String, String>,
    /// Every shard opened (or passed over) so far, closed ones included, so a shard is opened
    /// once.
    known: HashSet<String>,
    described: Instant,
    /// Keys read from the stream and not yet handed out (kept across a throttled read).
    pending: HashSet<String>,
}

impl StreamFollower {
    /// Positions a reader at the end of every open shard: records from now on.
    pub(crate) async fn open(client: Client, arn: String) -> Result<Self, StreamError> {
        let mut follower = StreamFollower {
            client,
            arn,
            iterators: HashMap::new(),
            known: HashSet::new(),
            described: Instant::now(),
            pending: HashSet::new(),
        };
        follower.discover(ShardIteratorType::Latest).await?;
        Ok(follower)
    }

    /// Reads the shard list (paginated) and opens every open shard not seen before at `from`.
    async fn discover(&mut self, from: ShardIteratorType) -> Result<(), StreamError> {
        let mut start: Option<String> = None;
        loop {
            let out = self
                .client
                .describe_stream()
                .stream_arn(&self.arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(classify)?;
            let Some(description) = out.stream_description() else {
                break;
            };
            for shard in description.shards() {
                let Some(id) = shard.shard_id() else { continue };
                if self.known.contains(id) {
                    continue;
                }
                let closed = shard
                    .sequence_number_range()
                    .is_some_and(|r| r.ending_sequence_number().is_some());
                // A closed shard seen at start holds only records from before it; one seen
                // later may hold records written since, so it is read from its start.
                if closed && from == ShardIteratorType::Latest {
                    self.known.insert(id.to_owned());
                    continue;
                }
                // Known only once opened: a throttled `GetShardIterator` is tried again at
                // the next discovery.
                let out = self
                    .client
                    .get_shard_iterator()
                    .stream_arn(&self.arn)
                    .shard_id(id)
                    .shard_iterator_type(from.clone())
                    .send()
                    .await
                    .map_err(classify)?;
                if let Some(iterator) = out.shard_iterator() {
                    self.iterators.insert(id.to_owned(), iterator.to_owned());
                }
                self.known.insert(id.to_owned());
            }
            match description.last_evaluated_shard_id() {
                Some(id) => start = Some(id.to_owned()),
                None => break,
            }
        }
        self.described = Instant::now();
        Ok(())
    }

    /// The keys (`key` attribute) of every record since the last call (and those handed
    /// back with [`requeue`](Self::requeue)). After an error, the keys read so far stay for
    /// the next call, and each shard stays at its position.
    pub(crate) async fn changed_keys(&mut self) -> Result<HashSet<String>, StreamError> {
        if self.described.elapsed() >= DESCRIBE_EVERY {
            self.discover(ShardIteratorType::TrimHorizon).await?;
        }
        let mut closed = Vec::new();
        let mut result = Ok(());
        for (shard, iterator) in &mut self.iterators {
            let out = match self
                .client
                .get_records()
                .shard_iterator(iterator.as_str())
                .send()
                .await
            {
                Ok(out) => out,
                Err(error) => {
                    result = Err(classify(error));
                    break;
                }
            };
            for record in out.records() {
                let key = record
                    .dynamodb()
                    .and_then(|r| r.keys())
                    .and_then(|k| k.get("key"));
                if let Some(AttributeValue::S(key)) = key {
                    self.pending.insert(key.clone());
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
        result?;
        Ok(std::mem::take(&mut self.pending))
    }

    /// Hands keys back (they could not be read from the table): the next
    /// [`changed_keys`](Self::changed_keys) returns them again.
    pub(crate) fn requeue(&mut self, keys: impl IntoIterator<Item = String>) {
        self.pending.extend(keys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodbstreams::config::http::HttpResponse;
    use aws_sdk_dynamodbstreams::error::ErrorMetadata;
    use aws_sdk_dynamodbstreams::types::error::{
        ExpiredIteratorException, InternalServerError, LimitExceededException,
        ResourceNotFoundException, TrimmedDataAccessException,
    };

    fn coded(code: &str) -> ErrorMetadata {
        ErrorMetadata::builder().code(code).message("test").build()
    }

    #[test]
    fn throttling_is_told_apart_from_lost_positions() {
        let limit =
            GetRecordsError::LimitExceededException(LimitExceededException::builder().build());
        assert!(limit.throttled(), "modelled LimitExceededException");
        for lost in [
            GetRecordsError::TrimmedDataAccessException(
                TrimmedDataAccessException::builder().build(),
            ),
            GetRecordsError::ExpiredIteratorException(ExpiredIteratorException::builder().build()),
            GetRecordsError::ResourceNotFoundException(
                ResourceNotFoundException::builder().build(),
            ),
            GetRecordsError::InternalServerError(InternalServerError::builder().build()),
            GetRecordsError::generic(coded("TrimmedDataAccessException")),
            GetRecordsError::generic(ErrorMetadata::builder().build()),
        ] {
            assert!(!lost.throttled(), "{lost:?}");
        }
        // Unmodelled throttling answers, by their code.
        for code in [
            "LimitExceededException",
            "ProvisionedThroughputExceededException",
            "ThrottlingException",
            "RequestLimitExceeded",
        ] {
            assert!(GetRecordsError::generic(coded(code)).throttled(), "{code}");
            assert!(
                GetShardIteratorError::generic(coded(code)).throttled(),
                "{code}"
            );
            assert!(
                DescribeStreamError::generic(coded(code)).throttled(),
                "{code}"
            );
        }
        assert!(!GetShardIteratorError::generic(coded("TrimmedDataAccessException")).throttled());
        assert!(!DescribeStreamError::generic(coded("ResourceNotFoundException")).throttled());

        use aws_sdk_dynamodb::operation::query::QueryError;
        use aws_sdk_dynamodb::types::error as ddb;
        assert!(
            QueryError::ProvisionedThroughputExceededException(
                ddb::ProvisionedThroughputExceededException::builder().build()
            )
            .throttled()
        );
        assert!(
            QueryError::RequestLimitExceeded(ddb::RequestLimitExceeded::builder().build())
                .throttled()
        );
        assert!(
            !QueryError::ResourceNotFoundException(
                ddb::ResourceNotFoundException::builder().build()
            )
            .throttled()
        );
    }

    #[test]
    fn only_a_throttled_service_error_keeps_the_positions() {
        // Not a service error at all (e.g. the endpoint timed out): positions may be lost.
        let timeout = SdkError::<GetRecordsError, HttpResponse>::timeout_error("slow");
        let error = StreamError::from_sdk(&timeout, "slow".into());
        assert_eq!(error.kind, StreamErrorKind::Lost);
        assert!(!error.throttled());
        assert_eq!(StreamError::lost("x".into()).kind, StreamErrorKind::Lost);
        // Service errors (the raw response does not matter here).
        let limit =
            GetRecordsError::LimitExceededException(LimitExceededException::builder().build());
        let throttled = SdkError::<_, ()>::service_error(limit, ());
        assert!(StreamError::from_sdk(&throttled, String::new()).throttled());
        let trimmed = GetRecordsError::TrimmedDataAccessException(
            TrimmedDataAccessException::builder().build(),
        );
        let trimmed = SdkError::<_, ()>::service_error(trimmed, ());
        assert_eq!(
            StreamError::from_sdk(&trimmed, String::new()).kind,
            StreamErrorKind::Lost
        );
    }
}
