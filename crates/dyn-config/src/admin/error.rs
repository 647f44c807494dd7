//! Why a write (or a read of the operator tools) did not happen, in a line a person can act on.

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Somebody else wrote the key since the version this write expected.
    #[error(
        "`{key}` ({scope}) is at version {current} (last written by {by} at {at}), not {expected}: read it again and retry"
    )]
    Conflict {
        /// The key.
        key: String,
        /// The scope.
        scope: String,
        /// The version this write expected.
        expected: u64,
        /// The version the table has.
        current: u64,
        /// Who wrote it.
        by: String,
        /// When.
        at: String,
    },
    /// The value fails the key's validation.
    #[error("`{key}`: {reason}; nothing was written")]
    Invalid {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// No such version in the key's history.
    #[error("`{key}` ({scope}) has no version {version} in its history")]
    NoSuchVersion {
        /// The key.
        key: String,
        /// The scope.
        scope: String,
        /// The version asked for.
        version: u64,
    },
    /// DynamoDB refused or could not be reached: one line a person can act on; the SDK's
    /// whole account of it in `detail`.
    #[error("DynamoDB {}: {message}", code.as_deref().unwrap_or("call failed"))]
    DynamoDb {
        /// The AWS error code (`ResourceNotFoundException`, `AccessDeniedException`...), when
        /// DynamoDB answered; `None` when it could not be reached or did not answer in time.
        code: Option<String>,
        /// What went wrong, in a line.
        message: String,
        /// The SDK's full description (several lines; for `--verbose`).
        detail: String,
    },
}

impl WriteError {
    /// A word for the kind of error: `invalid`, `conflict`, `not-found`, `unreachable` (no
    /// answer from DynamoDB) or `dynamodb` (DynamoDB answered with an error).
    pub fn kind(&self) -> &'static str {
        match self {
            WriteError::Invalid { .. } => "invalid",
            WriteError::Conflict { .. } => "conflict",
            WriteError::NoSuchVersion { .. } => "not-found",
            WriteError::DynamoDb { code: None, .. } => "unreachable",
            WriteError::DynamoDb { .. } => "dynamodb",
        }
    }

    /// The SDK's full account of a DynamoDB error (empty for the others).
    pub fn detail(&self) -> &str {
        match self {
            WriteError::DynamoDb { detail, .. } => detail,
            _ => "",
        }
    }
}

/// A request that could not be put together (a required part missing: a bug, not input).
pub(super) fn built(e: aws_sdk_dynamodb::error::BuildError) -> WriteError {
    WriteError::DynamoDb {
        code: None,
        message: format!("the request could not be built: {e}"),
        detail: String::new(),
    }
}

pub(super) fn dynamo<E, R>(e: aws_sdk_dynamodb::error::SdkError<E, R>) -> WriteError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_dynamodb::error::SdkError;
    let (code, message) = match &e {
        SdkError::ServiceError(service) => {
            let err = service.err();
            (
                err.code().map(str::to_owned),
                err.message().unwrap_or("no message").to_owned(),
            )
        }
        SdkError::TimeoutError(_) => (None, "no answer in time".to_owned()),
        SdkError::DispatchFailure(failure) => (
            None,
            if failure.is_timeout() {
                "no answer in time".to_owned()
            } else if failure.is_io() {
                "could not connect".to_owned()
            } else {
                "the request could not be sent".to_owned()
            },
        ),
        SdkError::ResponseError(_) => (None, "the answer could not be read".to_owned()),
        _ => (None, "the request could not be built".to_owned()),
    };
    WriteError::DynamoDb {
        code,
        message,
        detail: aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
    }
}
