//! [`Error`]: what went wrong with a call, naming the URL or the service.

use std::fmt;
use std::time::Duration;

use breakwater_circuit_breaker::error::{BoxError, CircuitOpen, Elapsed, Rejected};
use http::StatusCode;

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The URL could not be read.
    InvalidUrl,
    /// The URL's scheme is not `http`, `https` or `service`.
    UnsupportedScheme,
    /// A header, method or body given to the builder is not valid.
    Builder,
    /// Nothing says where the service is: no instance list and no Eureka client.
    UnknownService,
    /// Discovery knows no instance of the service (after the balancer's start-up wait).
    NoInstances,
    /// The service's breaker is open: the call was not made.
    CircuitOpen,
    /// The service's bulkhead is full: the call was not made.
    Rejected,
    /// The call's deadline passed (over all attempts).
    Timeout,
    /// No connection could be made.
    Connect,
    /// The request failed after it was sent (a reset, a closed connection, a protocol error).
    Request,
    /// The response body is larger than the limit.
    BodyTooLarge,
    /// The response body could not be read.
    Body,
    /// The response body is not the JSON asked for.
    Decode,
    /// The response has an error status ([`Response::error_for_status`](crate::Response::error_for_status)).
    Status(StatusCode),
}

/// A failed call: its kind, the URL or service it was for, how many attempts were made and, when
/// a retry was possible but not made, why.
pub struct Error {
    kind: ErrorKind,
    target: String,
    attempts: u32,
    not_retried: Option<&'static str>,
    source: Option<BoxError>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, target: impl Into<String>) -> Self {
        Error {
            kind,
            target: target.into(),
            attempts: 0,
            not_retried: None,
            source: None,
        }
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    pub(crate) fn builder(target: impl Into<String>, reason: impl Into<BoxError>) -> Self {
        Error::new(ErrorKind::Builder, target).with_source(reason)
    }

    /// Reads what the stack answered: the breaker's refusals and timeouts, the balancer's
    /// "no instances", a transport error, each with what [`AttemptError`] adds.
    pub(crate) fn from_stack(target: &str, error: BoxError) -> Self {
        // A fallback that gave no answer hands the failure back as it was.
        let error = match error.downcast::<Error>() {
            Ok(error) => return *error,
            Err(error) => error,
        };
        let error = match error.downcast::<AttemptError>() {
            Ok(attempt) => {
                let AttemptError {
                    attempts,
                    not_retried,
                    source,
                } = *attempt;
                let mut e = Error::from_stack(target, source);
                e.attempts = attempts;
                e.not_retried = not_retried;
                return e;
            }
            Err(error) => error,
        };
        let kind = if error.is::<CircuitOpen>() {
            ErrorKind::CircuitOpen
        } else if error.is::<Rejected>()
            || error.is::<breakwater_circuit_breaker::error::FallbackRejected>()
        {
            ErrorKind::Rejected
        } else if error.is::<Elapsed>() || error.is::<tokio::time::error::Elapsed>() {
            ErrorKind::Timeout
        } else if error.is::<breakwater_balance::NoInstances>() {
            ErrorKind::NoInstances
        } else if crate::retry::not_sent(&*error) {
            ErrorKind::Connect
        } else {
            ErrorKind::Request
        };
        Error::new(kind, target).with_source(error)
    }

    pub(crate) fn timeout(target: &str, after: Duration, attempts: u32) -> Self {
        let mut e = Error::new(ErrorKind::Timeout, target)
            .with_source(format!("no answer within {} ms", after.as_millis()));
        e.attempts = attempts;
        e
    }

    /// What kind of failure it is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The URL, or `service://NAME` for a service.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Attempts made (0 when none was: a bad URL, an open breaker).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Why the last failure was not retried, when a retry would otherwise have been made
    /// (`"the body cannot be replayed"`, `"retry budget exhausted"`, ...).
    pub fn not_retried(&self) -> Option<&'static str> {
        self.not_retried
    }

    /// Whether the deadline passed.
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }

    /// Whether no connection could be made.
    pub fn is_connect(&self) -> bool {
        self.kind == ErrorKind::Connect
    }

    /// The status, for [`ErrorKind::Status`].
    pub fn status(&self) -> Option<StatusCode> {
        match self.kind {
            ErrorKind::Status(status) => Some(status),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::InvalidUrl => "invalid URL",
            ErrorKind::UnsupportedScheme => "unsupported URL scheme (http, https or service)",
            ErrorKind::Builder => "invalid request",
            ErrorKind::UnknownService => {
                "unknown service: no instance list and no Eureka client for it"
            }
            ErrorKind::NoInstances => "no instance of the service",
            ErrorKind::CircuitOpen => "the service's circuit breaker is open",
            ErrorKind::Rejected => "the service's bulkhead is full",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Connect => "cannot connect",
            ErrorKind::Request => "request failed",
            ErrorKind::BodyTooLarge => "response body too large",
            ErrorKind::Body => "cannot read the response body",
            ErrorKind::Decode => "response body is not the JSON expected",
            ErrorKind::Status(status) => return write!(f, "{} answered {status}", self.target),
        };
        write!(f, "{what} ({})", self.target)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        if self.attempts > 1 {
            write!(f, "; after {} attempts", self.attempts)?;
        }
        if let Some(reason) = self.not_retried {
            write!(f, "; not retried: {reason}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("target", &self.target)
            .field("attempts", &self.attempts)
            .field("not_retried", &self.not_retried)
            .field("source", &self.source)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// The last attempt's error, with the attempts made and why it was not retried; what the
/// retry loop gives the layers above it (a `BoxError`, as tower layers pass errors).
#[derive(Debug)]
pub(crate) struct AttemptError {
    pub(crate) attempts: u32,
    pub(crate) not_retried: Option<&'static str>,
    pub(crate) source: BoxError,
}

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (after {} attempts)", self.source, self.attempts)
    }
}

impl std::error::Error for AttemptError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}
