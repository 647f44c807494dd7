//! Errors.

use crate::origin::Origin;

/// A value that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config key `{key}`: {reason} (value from {origin})")]
pub struct InvalidValue {
    /// The property's key.
    pub key: String,
    /// Where the value came from.
    pub origin: Origin,
    /// What is wrong with it.
    pub reason: String,
}

/// A source that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A file could not be read or has a malformed line.
    #[error("{path}:{line}: {reason}")]
    File {
        /// The file.
        path: String,
        /// The line (1-based; 0 when the file itself could not be read).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// DynamoDB answered with an error or could not be reached.
    #[error("DynamoDB table `{table}`: {reason}")]
    DynamoDb {
        /// The table.
        table: String,
        /// What went wrong.
        reason: String,
    },
}
