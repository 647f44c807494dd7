//! Where a setting came from: the kind of source (which is also its layer, in precedence
//! order) and, within it, the file and line, the variable or the table row.

use std::fmt;

/// A layer of settings. Lower layers are overridden by higher ones:
/// runtime override > DynamoDB > environment > file > the default in code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SourceKind {
    /// Set in this process with [`ConfigStore::set_override`](crate::ConfigStore::set_override).
    Override,
    /// A row of the DynamoDB table.
    DynamoDb,
    /// An environment variable.
    Env,
    /// A properties file.
    File,
}

impl SourceKind {
    pub(crate) const ALL: [SourceKind; 4] = [
        SourceKind::Override,
        SourceKind::DynamoDb,
        SourceKind::Env,
        SourceKind::File,
    ];

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceKind::Override => "runtime override",
            SourceKind::DynamoDb => "DynamoDB",
            SourceKind::Env => "environment",
            SourceKind::File => "file",
        })
    }
}

/// A setting's text and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced {
    /// The text.
    pub value: String,
    /// Where it came from.
    pub origin: Origin,
}

/// Where a value came from, for messages that let an operator find it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The kind of source, which is also its layer.
    pub kind: SourceKind,
    /// Within the layer: the table and scope of a DynamoDB row, the file and line, the
    /// environment variable.
    pub detail: String,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{} ({})", self.kind, self.detail)
        }
    }
}
