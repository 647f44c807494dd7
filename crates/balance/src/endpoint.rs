//! [`Endpoint`]: one instance as the balancer sees it.

use breakwater_discovery::Instance;

/// One instance to send requests to: where it is, its zone and weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The instance id (Eureka's `instanceId`), the key of its changes.
    pub id: String,
    /// The address to connect to: the instance's IP address, else its host name.
    pub host: String,
    /// The port.
    pub port: u16,
    /// Whether that is the secure (TLS) port.
    pub secure: bool,
    /// Its zone, when known (Eureka zone metadata or the AWS availability zone).
    pub zone: Option<String>,
    /// Its share of traffic relative to the others (Eureka metadata `weight`, 1 by default;
    /// 1 to 1,000).
    pub weight: u32,
}

/// The largest weight taken from metadata.
pub const MAX_WEIGHT: u32 = 1_000;

impl Endpoint {
    /// An endpoint of weight 1 in no zone.
    pub fn new(id: impl Into<String>, host: impl Into<String>, port: u16) -> Self {
        Endpoint {
            id: id.into(),
            host: host.into(),
            port,
            secure: false,
            zone: None,
            weight: 1,
        }
    }

    /// `host:port` (`[v6]:port` for an IPv6 address).
    pub fn authority(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The endpoint of a registered instance, or why it cannot be one (no address, no
    /// enabled port). The secure port is preferred when it is enabled; a `weight` metadata
    /// value that is not a whole number from 1 counts as 1, and more than [`MAX_WEIGHT`] as
    /// that.
    pub fn from_instance(instance: &Instance) -> Result<Self, String> {
        let host = [instance.ip_addr.trim(), instance.host_name.trim()]
            .into_iter()
            .find(|h| !h.is_empty())
            .ok_or_else(|| format!("instance {} has no address", instance.id()))?;
        let (port, secure) = match (instance.secure_port, instance.port) {
            (Some(p), _) if p.enabled && p.port != 0 => (p.port, true),
            (_, Some(p)) if p.enabled && p.port != 0 => (p.port, false),
            _ => return Err(format!("instance {} has no enabled port", instance.id())),
        };
        let weight = instance
            .metadata
            .get("weight")
            .and_then(|w| w.trim().parse::<u32>().ok())
            .filter(|w| *w >= 1)
            .map_or(1, |w| w.min(MAX_WEIGHT));
        Ok(Endpoint {
            id: instance.id().to_owned(),
            host: host.to_owned(),
            port,
            secure,
            zone: instance.zone().map(str::to_owned),
            weight,
        })
    }
}
