//! Eureka's wire format: the instance, application and registry documents as Eureka servers
//! write and accept them, in JSON and XML.
//!
//! Reading is tolerant in the ways real servers differ: a single instance or application as an
//! object instead of an array, ports as `{"$":8080,"@enabled":"true"}` or with the number as a
//! string, numbers and booleans as strings, `versions__delta` as a number,
//! `{"@class":"java.util.Collections$EmptyMap"}` metadata, `overriddenStatus` or
//! `overriddenstatus`. XML is read into the same shape as JSON first (attributes become
//! `@name`, text beside attributes `$`), so one reader serves both. Anything that cannot be
//! read is a [`WireError`] that names the path of the offending field.
//!
//! Writing follows current servers: JSON with numeric ports, string timestamps and both
//! spellings of the overridden status; XML with attributes where Eureka puts them. Both are
//! written in one pass, without building a tree first.

mod model;
mod read;
mod write;
mod xml;

pub use model::*;
pub use read::*;
pub use write::*;
pub use xml::MAX_XML_DEPTH;

/// A document that cannot be read, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct WireError {
    /// Where, as `applications.application[1].instance[0].port`.
    pub path: String,
    /// What is wrong there.
    pub reason: String,
}

fn err<T>(path: &str, reason: impl Into<String>) -> Result<T, WireError> {
    Err(WireError {
        path: path.to_owned(),
        reason: reason.into(),
    })
}
