//! The client's settings and errors.

use std::time::Duration;

use crate::wire;

/// Settings of a client (Java client defaults).
#[derive(Debug, Clone)]
pub struct EurekaClientConfig {
    /// Eureka server base URLs, e.g. `http://user:pass@eureka-1:8761/eureka/`.
    pub service_urls: Vec<String>,
    /// Time between heartbeats (30 s).
    pub renewal_interval: Duration,
    /// Lease duration asked of the server (90 s).
    pub lease_duration: Duration,
    /// Time between registry fetches (30 s).
    pub registry_fetch_interval: Duration,
    /// Longest back-off, as a multiple of the interval (10).
    pub max_backoff_multiplier: u32,
    /// Timeout of one request (5 s).
    pub request_timeout: Duration,
    /// Tries per request across servers (3).
    pub tries: usize,
    /// This client's zone, for [`EurekaClient::instances`](super::EurekaClient::instances). `None`: the zone of the client's
    /// own instance ([`Instance::zone`](crate::wire::Instance::zone): Amazon's `availability-zone`, else metadata `zone`);
    /// no preference when it has none.
    pub zone: Option<String>,
    /// Give only UP instances (on).
    pub filter_only_up: bool,
    /// A fetch that would empty the view, or lose more than half its instances, is taken only
    /// when this many fetches in a row say so (3): a registry that restarted empty is not
    /// believed at once, a real scale-in still goes through. 0 or 1: believe every fetch.
    pub drop_confirmations: u32,
}

impl Default for EurekaClientConfig {
    fn default() -> Self {
        EurekaClientConfig {
            service_urls: vec!["http://127.0.0.1:8761/eureka/".to_owned()],
            renewal_interval: Duration::from_secs(30),
            lease_duration: Duration::from_secs(90),
            registry_fetch_interval: Duration::from_secs(30),
            max_backoff_multiplier: 10,
            request_timeout: Duration::from_secs(5),
            tries: 3,
            zone: None,
            filter_only_up: true,
            drop_confirmations: 3,
        }
    }
}

/// Why a request to the Eureka servers failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EurekaClientError {
    /// A service URL is not an http URL.
    #[error("service URL {url:?}: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// No server could be reached (or all answered 5xx).
    #[error("no Eureka server answered: {0}")]
    Unavailable(String),
    /// A server answered with an unexpected status.
    #[error("{method} {path} answered {status}: {body}")]
    Status {
        /// The method.
        method: String,
        /// The path.
        path: String,
        /// The status.
        status: u16,
        /// The first part of the answer.
        body: String,
    },
    /// A registry document could not be read.
    #[error("unreadable registry document: {0}")]
    Document(#[from] wire::WireError),
    /// A server's answer was longer than a registry document may be; it was refused while
    /// being read.
    #[error(
        "{url} answered more than {limit} bytes (the largest registry document accepted); answer refused"
    )]
    TooLarge {
        /// The request's URL.
        url: String,
        /// The limit, [`wire::MAX_DOCUMENT`].
        limit: usize,
    },
    /// The operation needs an instance and the client registers none.
    #[error("this client registers no instance")]
    NoInstance,
}
