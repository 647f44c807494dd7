//! The sources that fill the layers of a [`Config`](crate::Config): the environment, a
//! properties file, and a DynamoDB table (polled, or pushed by its DynamoDB Stream).
//! Runtime overrides need no source: [`Config::set_override`](crate::Config::set_override).

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod env;
pub mod file;
#[cfg(feature = "dynamodb")]
mod streams;
