//! Instances from DNS (feature `dns`): [`DnsDiscover`] resolves a name's A and AAAA records
//! into a list of endpoints, `address:port` each, and follows it: it resolves again when the
//! records' TTL runs out (no sooner than [`DnsConfig::min_refresh`], no later than
//! [`DnsConfig::max_refresh`]), like Envoy's `STRICT_DNS` clusters.
//!
//! A failed lookup (no answer in time, SERVFAIL, NXDOMAIN, no records) keeps the last list
//! that resolved, and tries again after a back-off growing from `min_refresh` to
//! `max_refresh`; a name that never resolved has no instances (calls fail with the balancer's
//! no-instances error after its start-up wait). Lists are bounded by
//! [`DnsConfig::max_records`].
//!
//! ```no_run
//! use breakwater_balance::dns::{DnsConfig, DnsDiscover, DnsResolver};
//! use breakwater_balance::{BalanceConfig, Balancer};
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let resolver = DnsResolver::system()?; // /etc/resolv.conf
//! let list = DnsDiscover::spawn(&resolver, DnsConfig::new("payments.internal", 8080));
//! let make = |_: &breakwater_balance::Endpoint| {
//!     tower::service_fn(|()| async { Ok::<_, std::io::Error>(()) })
//! };
//! let payments = Balancer::fixed("payments", list, make, BalanceConfig::default())?;
//! # let _ = payments; Ok(()) }
//! ```

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use breakwater_backoff::Backoff;
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfigGroup, ResolverConfig, ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::{ResolveError, TokioResolver};
use tokio::sync::watch;

use crate::Endpoint;

/// How long one lookup may take, per attempt (two attempts per name server).
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// A DNS resolver shared by the names it follows (hickory-resolver, with its cache).
#[derive(Clone)]
pub struct DnsResolver(Arc<TokioResolver>);

impl std::fmt::Debug for DnsResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsResolver").finish_non_exhaustive()
    }
}

fn set_options(opts: &mut ResolverOpts) {
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    opts.timeout = LOOKUP_TIMEOUT;
    opts.attempts = 2;
}

impl DnsResolver {
    /// The system's resolver settings (`/etc/resolv.conf` on Unix).
    pub fn system() -> Result<Self, ResolveError> {
        let mut builder = TokioResolver::builder_tokio()?;
        set_options(builder.options_mut());
        Ok(DnsResolver(Arc::new(builder.build())))
    }

    /// Asks these name servers (UDP, then TCP for truncated answers), and nothing else.
    pub fn with_name_servers(servers: &[SocketAddr]) -> Self {
        let mut group = NameServerConfigGroup::new();
        for server in servers {
            group.merge(NameServerConfigGroup::from_ips_clear(
                &[server.ip()],
                server.port(),
                true,
            ));
        }
        let config = ResolverConfig::from_parts(None, vec![], group);
        let resolver =
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                .with_options({
                    let mut opts = ResolverOpts::default();
                    set_options(&mut opts);
                    opts
                })
                .build();
        DnsResolver(Arc::new(resolver))
    }

    /// The A and AAAA addresses of `name`, and how long they are good for.
    pub async fn lookup(&self, name: &str) -> Result<(Vec<IpAddr>, Duration), ResolveError> {
        let found = self.0.lookup_ip(name).await?;
        let ttl = found
            .valid_until()
            .saturating_duration_since(std::time::Instant::now());
        Ok((found.iter().collect(), ttl))
    }
}

/// What [`DnsDiscover`] follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// The name whose A and AAAA records are the instances.
    pub name: String,
    /// The port every instance listens on.
    pub port: u16,
    /// Shortest wait between lookups, whatever the TTL (1 s).
    pub min_refresh: Duration,
    /// Longest wait between lookups, whatever the TTL (30 s).
    pub max_refresh: Duration,
    /// Most instances taken from one answer (256); the rest are left out, logged.
    pub max_records: usize,
}

impl DnsConfig {
    /// `name:port` with the default refresh and bound.
    pub fn new(name: impl Into<String>, port: u16) -> Self {
        DnsConfig {
            name: name.into(),
            port,
            min_refresh: Duration::from_secs(1),
            max_refresh: Duration::from_secs(30),
            max_records: 256,
        }
    }
}

/// Follows a name's records into a list of endpoints.
#[derive(Debug)]
pub struct DnsDiscover;

impl DnsDiscover {
    /// Starts following `config.name` on the current Tokio runtime; the returned list feeds
    /// [`StaticDiscover`](crate::StaticDiscover) or [`Balancer::fixed`](crate::Balancer::fixed).
    /// The task ends when every receiver of the list is dropped.
    pub fn spawn(resolver: &DnsResolver, config: DnsConfig) -> watch::Receiver<Vec<Endpoint>> {
        let (sender, list) = watch::channel(Vec::new());
        tokio::spawn(follow(resolver.clone(), config, sender));
        list
    }
}

/// The endpoints of `addresses`: sorted, without repeats, at most `max`.
fn endpoints(addresses: Vec<IpAddr>, port: u16, max: usize) -> Vec<Endpoint> {
    let mut addresses = addresses;
    addresses.sort();
    addresses.dedup();
    addresses.truncate(max);
    addresses
        .into_iter()
        .map(|ip| {
            let id = SocketAddr::new(ip, port).to_string();
            Endpoint::new(id, ip.to_string(), port)
        })
        .collect()
}

async fn follow(resolver: DnsResolver, config: DnsConfig, sender: watch::Sender<Vec<Endpoint>>) {
    let backoff = Backoff::exponential(config.max_refresh);
    let mut failures = 0u32;
    loop {
        let wait = match resolver.lookup(&config.name).await {
            Ok((addresses, ttl)) if !addresses.is_empty() => {
                failures = 0;
                if addresses.len() > config.max_records {
                    tracing::warn!(name = %config.name, records = addresses.len(), kept = config.max_records, "more DNS records than instances allowed; the rest are left out");
                }
                let list = endpoints(addresses, config.port, config.max_records);
                sender.send_if_modified(|current| {
                    let changed = *current != list;
                    if changed {
                        tracing::info!(name = %config.name, instances = list.len(), "DNS records changed");
                        *current = list;
                    }
                    changed
                });
                ttl.clamp(config.min_refresh, config.max_refresh)
            }
            result => {
                let error = match result {
                    Ok(_) => "no A or AAAA records".to_owned(),
                    Err(error) => error.to_string(),
                };
                tracing::warn!(name = %config.name, %error, kept = sender.borrow().len(), "DNS lookup failed; the last instances stay");
                failures = failures.saturating_add(1);
                backoff.delay(config.min_refresh, failures - 1)
            }
        };
        tokio::select! {
            _ = sender.closed() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_sorted_bounded_endpoints() {
        let v6: IpAddr = "::1".parse().unwrap();
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        let list = endpoints(vec![v6, v4, v6], 8080, 256);
        let ids: Vec<&str> = list.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["127.0.0.1:8080", "[::1]:8080"]);
        assert_eq!(list[1].authority(), "[::1]:8080");
        assert_eq!(endpoints(vec![v6, v4], 80, 1).len(), 1);
    }
}
