//! [`ClientBuilder`]: how a [`Client`] is set up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use breakwater_balance::{BalanceConfig, Endpoint};
use breakwater_circuit_breaker::CircuitBreakerRegistry;
use breakwater_discovery::EurekaClient;
use breakwater_tracing_mw::Formats;
use tokio::sync::watch;

use crate::client::{Client, Inner};
use crate::config::{CallConfig, CallConfigError};
use crate::error::Error;
use crate::metrics::Counters;
use crate::retry::Retries;
use crate::transport::{ConnectTimeout, Transports};
use crate::upstream::budget;

/// The environment variable prefix of instance lists:
/// `BREAKWATER_SERVICE_PAYMENTS=10.0.0.1:8080,10.0.0.2:8080` for `service://payments`, or
/// `BREAKWATER_SERVICE_PAYMENTS=dns:payments.internal:8080` for a name's A and AAAA records
/// (feature `dns`).
pub const ENV_PREFIX: &str = "BREAKWATER_SERVICE_";

/// The environment variable naming the DNS servers `dns:` sources ask
/// (`127.0.0.1:53,[::1]:53`); without it, the system's (`/etc/resolv.conf`).
pub const ENV_DNS_SERVERS: &str = "BREAKWATER_DNS_SERVERS";

/// Where a service's instances come from, as configured.
#[derive(Debug, Clone)]
pub(crate) enum Listed {
    /// `host:port` items.
    Static(Vec<Endpoint>),
    /// `dns:NAME:PORT`: the name's records.
    Dns { name: String, port: u16 },
}

/// Reads a list setting: `dns:NAME:PORT`, or `host:port` items.
pub(crate) fn parse_source<S: AsRef<str>>(
    service: &str,
    items: impl IntoIterator<Item = S>,
) -> Result<Listed, Error> {
    let items: Vec<S> = items.into_iter().collect();
    let first = items.first().map(|i| i.as_ref().trim()).unwrap_or("");
    let Some(rest) = first.strip_prefix("dns:") else {
        return parse_list(service, items).map(Listed::Static);
    };
    let bad = |reason: &str| {
        Error::builder(
            format!("service://{service}"),
            format!("{first:?}: {reason} (expected dns:NAME:PORT)"),
        )
    };
    if items.len() > 1 {
        return Err(bad("a dns: source is one name"));
    }
    let (name, port) = rest.rsplit_once(':').ok_or_else(|| bad("no port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| bad("the port is not a number below 65536"))?;
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid {
        return Err(bad("the name is not a DNS name"));
    }
    Ok(Listed::Dns {
        name: name.to_owned(),
        port,
    })
}

/// Answers a failed call to a service: given the failure, an answer to return instead, or
/// `None` to return the failure. See [`ClientBuilder::fallback`].
pub type Fallback = Arc<dyn Fn(&Error) -> Option<http::Response<bytes::Bytes>> + Send + Sync>;

/// Sets up a [`Client`].
pub struct ClientBuilder {
    fallbacks: HashMap<String, Fallback>,
    connect_timeout: Duration,
    pool_idle_timeout: Duration,
    pool_max_idle_per_host: usize,
    formats: Formats,
    eureka: Option<EurekaClient>,
    registry: CircuitBreakerRegistry,
    lists: HashMap<String, Listed>,
    dns_servers: Option<Vec<std::net::SocketAddr>>,
    defaults: CallConfig,
    configs: HashMap<String, CallConfig>,
    balance: BalanceConfig,
    read_env: bool,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            fallbacks: HashMap::new(),
            connect_timeout: Duration::from_secs(1),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 32,
            formats: Formats::default(),
            eureka: None,
            registry: CircuitBreakerRegistry::global().clone(),
            lists: HashMap::new(),
            dns_servers: None,
            defaults: CallConfig::default(),
            configs: HashMap::new(),
            balance: BalanceConfig::default(),
            read_env: true,
        }
    }
}

/// The key of a service in the maps: names are case-insensitive (Eureka's are upper case).
pub(crate) fn key(service: &str) -> std::borrow::Cow<'_, str> {
    if service.bytes().any(|b| b.is_ascii_uppercase()) {
        service.to_ascii_lowercase().into()
    } else {
        service.into()
    }
}

/// Reads `host:port` items into endpoints with ids `host:port` (blank items are skipped).
pub(crate) fn parse_list<S: AsRef<str>>(
    service: &str,
    items: impl IntoIterator<Item = S>,
) -> Result<Vec<Endpoint>, Error> {
    let mut endpoints = Vec::new();
    for item in items {
        let item = item.as_ref().trim();
        if item.is_empty() {
            continue;
        }
        let bad = |reason: &str| {
            Error::builder(
                format!("service://{service}"),
                format!("instance {item:?}: {reason} (expected host:port)"),
            )
        };
        let (host, port) = item.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| bad("the port is not a number below 65536"))?;
        let bracketed = host.starts_with('[') && host.ends_with(']');
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if host.contains(':') && !bracketed {
            return Err(bad(
                "an IPv6 address goes in brackets, and a dns: source alone",
            ));
        }
        endpoints.push(Endpoint::new(item, host, port));
    }
    Ok(endpoints)
}

impl ClientBuilder {
    /// Finds services that have no static list in this Eureka client's view (by application
    /// name or VIP address).
    pub fn eureka(mut self, client: EurekaClient) -> Self {
        self.eureka = Some(client);
        self
    }

    /// The instances of `service`: `host:port` items (a list that can change at run time
    /// with [`Client::set_instances`]), or one `dns:NAME:PORT` item for the name's A and
    /// AAAA records (feature `dns`). Overrides Eureka for that service.
    pub fn instances<I, S>(mut self, service: &str, instances: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let listed = parse_source(service, instances)?;
        self.lists.insert(key(service).into_owned(), listed);
        Ok(self)
    }

    /// The DNS servers `dns:` sources ask (the system's by default, or those of
    /// `BREAKWATER_DNS_SERVERS`).
    pub fn dns_servers(mut self, servers: impl IntoIterator<Item = std::net::SocketAddr>) -> Self {
        self.dns_servers = Some(servers.into_iter().collect());
        self
    }

    /// Whether to read `BREAKWATER_SERVICE_<NAME>` lists from the environment (on by
    /// default; a list given with [`instances`](Self::instances) wins).
    pub fn read_env(mut self, read: bool) -> Self {
        self.read_env = read;
        self
    }

    /// The registry the services' breakers live in (the process-wide one by default, which the
    /// stream dashboard shows).
    pub fn breaker_registry(mut self, registry: CircuitBreakerRegistry) -> Self {
        self.registry = registry;
        self
    }

    /// The call settings of every service without its own.
    pub fn call_config(mut self, config: CallConfig) -> Result<Self, CallConfigError> {
        config.validate()?;
        self.defaults = config;
        Ok(self)
    }

    /// The call settings of one service.
    pub fn service_config(
        mut self,
        service: &str,
        config: CallConfig,
    ) -> Result<Self, CallConfigError> {
        config.validate()?;
        self.configs.insert(key(service).into_owned(), config);
        Ok(self)
    }

    /// A fallback for `service` (Hystrix's `getFallback`): calls that fail without an answer
    /// (the breaker open, the bulkhead full, the deadline passed, no instance, the retries
    /// spent on connection errors or resets) get `fallback`'s answer instead, marked
    /// [`Response::is_fallback`](crate::Response::is_fallback). An answer the service gave,
    /// even a 503, is returned as it is. Fallbacks count in the breaker's statistics
    /// (`fallback_success`, `fallback_failure`, `fallback_rejection` on the Hystrix stream) and
    /// are capped by its `fallback_max_concurrent_calls`.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), breakwater_client::Error> {
    /// let client = breakwater_client::Client::builder()
    ///     .fallback("recommendations", |_failure| {
    ///         Some(http::Response::new(r#"["bestsellers"]"#.into()))
    ///     })
    ///     .build()?;
    /// # let _ = client; Ok(()) }
    /// ```
    pub fn fallback(
        mut self,
        service: &str,
        fallback: impl Fn(&Error) -> Option<http::Response<bytes::Bytes>> + Send + Sync + 'static,
    ) -> Self {
        self.fallbacks
            .insert(key(service).into_owned(), Arc::new(fallback));
        self
    }

    /// The balancers' settings (ejection, panic threshold, zones, weights).
    pub fn balance_config(mut self, config: BalanceConfig) -> Self {
        self.balance = config;
        self
    }

    /// How long a connection may take to open (Ribbon `ConnectTimeout`): for plain URLs, and
    /// services whose [`CallConfig::connect_timeout`] is unset. Default 1 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The trace-context formats written into every request (W3C by default).
    pub fn trace_formats(mut self, formats: Formats) -> Self {
        self.formats = formats;
        self
    }

    /// The client. Reads the environment lists now (when asked).
    pub fn build(mut self) -> Result<Client, Error> {
        if self.read_env {
            for (name, value) in std::env::vars() {
                if name == ENV_DNS_SERVERS && self.dns_servers.is_none() {
                    let servers = value
                        .split(',')
                        .filter(|s| !s.trim().is_empty())
                        .map(|s| s.trim().parse())
                        .collect::<Result<Vec<std::net::SocketAddr>, _>>()
                        .map_err(|e| {
                            Error::builder(
                                format!("${name}"),
                                format!("{value:?}: {e} (expected ip:port items)"),
                            )
                        })?;
                    self.dns_servers = Some(servers);
                    continue;
                }
                let Some(service) = name.strip_prefix(ENV_PREFIX) else {
                    continue;
                };
                let service = service.to_ascii_lowercase().replace('_', "-");
                if let std::collections::hash_map::Entry::Vacant(slot) = self.lists.entry(service) {
                    let listed = parse_source(slot.key(), value.split(','))
                        .map_err(|e| Error::builder(format!("${name}"), e.to_string()))?;
                    slot.insert(listed);
                }
            }
        }
        let transports = Transports::new(
            self.pool_idle_timeout,
            self.pool_max_idle_per_host,
            self.formats,
        );
        let direct_pool = transports.pool(ConnectTimeout::new(self.connect_timeout));
        let direct_counters = Arc::new(Counters::default());
        let direct = Arc::new(ArcSwap::from_pointee(Retries {
            budget: budget(&self.defaults),
            config: Arc::new(self.defaults.clone()),
            breaker: None,
            counters: direct_counters.clone(),
        }));
        let mut lists = HashMap::new();
        let mut dns = HashMap::new();
        for (service, listed) in self.lists {
            match listed {
                Listed::Static(list) => {
                    lists.insert(service, watch::channel(list).0);
                }
                Listed::Dns { name, port } => {
                    dns.insert(service, (name, port));
                }
            }
        }
        Ok(Client {
            inner: Arc::new(Inner {
                transports,
                connect_timeout: self.connect_timeout,
                direct_pool,
                hooks: Mutex::default(),
                fallbacks: self.fallbacks,
                durations: Arc::default(),
                eureka: self.eureka,
                registry: self.registry,
                lists: Mutex::new(lists),
                dns: Mutex::new(dns),
                dns_servers: self.dns_servers,
                #[cfg(feature = "dns")]
                dns_resolver: std::sync::OnceLock::new(),
                upstreams: Mutex::default(),
                defaults: self.defaults,
                configs: Mutex::new(self.configs),
                balance: self.balance,
                direct,
                direct_counters,
            }),
        })
    }
}
