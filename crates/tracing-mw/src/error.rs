//! The error of a header that cannot be used.

/// A propagation header that was refused, and why. Its value is never included: header
/// values may carry personal data and must not reach logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("header {header}: {reason}")]
pub struct HeaderError {
    /// The header's name.
    pub header: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl HeaderError {
    pub(crate) fn new(header: &'static str, reason: impl Into<String>) -> Self {
        HeaderError {
            header,
            reason: reason.into(),
        }
    }
}
