//! The sources that fill the layers of a [`ConfigStore`](crate::ConfigStore): the environment, a
//! properties file, and a DynamoDB table (polled, or pushed by its DynamoDB Stream).
//! Runtime overrides need no source: [`ConfigStore::set_override`](crate::ConfigStore::set_override).

#[cfg(feature = "dynamodb")]
pub(crate) mod calls;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod env;
pub mod file;
#[cfg(feature = "dynamodb")]
mod streams;
