//! The registry's settings and why an operation did not apply.

/// Settings of the registry (Eureka's `DefaultEurekaServerConfig` defaults).
#[derive(Debug, Clone)]
pub struct InstanceRegistryConfig {
    /// How long changes stay in the delta queue (3 minutes).
    pub delta_retention_ms: i64,
    /// Stop evicting while renewals in the last minute fall below this share of those
    /// expected (0.85).
    pub renewal_percent_threshold: f64,
    /// Whether self-preservation applies at all (on).
    pub self_preservation: bool,
    /// The renewal interval clients are expected to use (30 s), for the expected rate.
    pub expected_renewal_interval_ms: i64,
    /// Refuse delta fetches (403), as Eureka's `eureka.disableDelta` does (off): clients then
    /// fetch the whole registry every time.
    pub disable_delta: bool,
    /// Most entries in the delta queue (one per instance changed in the window; 50,000).
    pub max_delta_entries: usize,
    /// Most bytes (about) the delta queue holds (32 MiB); the oldest changes go first.
    pub max_delta_bytes: usize,
    /// Most metadata entries per instance (256).
    pub max_metadata_entries: usize,
    /// Most bytes of metadata keys and values per instance (16 KiB).
    pub max_metadata_bytes: usize,
    /// Most instances per application (20,000).
    pub max_instances_per_app: usize,
    /// Most applications (10,000).
    pub max_applications: usize,
    /// How far in the future a `lastDirtyTimestamp` may be (a clock skew; 5 minutes). A
    /// later one would make its record win over every later registration.
    pub max_clock_skew_ms: i64,
    /// The longest lease an instance may ask for (300 s; Eureka's clients ask 30-90 s).
    pub max_lease_duration_secs: u32,
}

impl InstanceRegistryConfig {
    /// Checks the settings a registry cannot run with: a renewal threshold outside 0..=1, an
    /// expected renewal interval or a retention that is not positive.
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.renewal_percent_threshold) {
            return Err(format!(
                "renewal_percent_threshold {} is outside 0.0..=1.0",
                self.renewal_percent_threshold
            ));
        }
        if self.expected_renewal_interval_ms <= 0 {
            return Err("expected_renewal_interval_ms must be positive".into());
        }
        if self.delta_retention_ms <= 0 {
            return Err("delta_retention_ms must be positive".into());
        }
        Ok(())
    }
}

impl Default for InstanceRegistryConfig {
    fn default() -> Self {
        InstanceRegistryConfig {
            delta_retention_ms: 180_000,
            renewal_percent_threshold: 0.85,
            self_preservation: true,
            expected_renewal_interval_ms: 30_000,
            disable_delta: false,
            max_delta_entries: 50_000,
            max_delta_bytes: 32 << 20,
            max_metadata_entries: 256,
            max_metadata_bytes: 16 << 10,
            max_instances_per_app: 20_000,
            max_applications: 10_000,
            max_clock_skew_ms: 300_000,
            max_lease_duration_secs: 300,
        }
    }
}

/// Why an operation did not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstanceRegistryError {
    /// No lease for this application and instance.
    #[error("no instance {id:?} of application {app:?}")]
    NotFound {
        /// The application.
        app: String,
        /// The instance id.
        id: String,
    },
    /// The client's copy is newer than ours (it must register again).
    #[error("instance {id:?} is newer on the client (lastDirtyTimestamp {client} > {server})")]
    ClientNewer {
        /// The instance id.
        id: String,
        /// The client's lastDirtyTimestamp.
        client: i64,
        /// Ours.
        server: i64,
    },
    /// The instance's status resolves to `UNKNOWN` (its override was removed without a new
    /// status): it must register again, as Eureka answers such a renewal.
    #[error("instance {id:?} has status UNKNOWN (its override was removed): register again")]
    StatusUnknown {
        /// The instance id.
        id: String,
    },
    /// An instance's metadata would pass a limit of [`InstanceRegistryConfig`].
    #[error("instance.metadata: {actual} {what}, more than the {limit} allowed")]
    MetadataTooLarge {
        /// `entries` or `bytes`.
        what: &'static str,
        /// How many there would be.
        actual: usize,
        /// The limit.
        limit: usize,
    },
    /// A `lastDirtyTimestamp` further in the future than the allowed clock skew.
    #[error(
        "lastDirtyTimestamp {timestamp} is more than {skew_ms} ms ahead of this server's clock ({now})"
    )]
    FutureTimestamp {
        /// The timestamp given.
        timestamp: i64,
        /// The server's time.
        now: i64,
        /// The allowed skew.
        skew_ms: i64,
    },
    /// A lease longer than allowed.
    #[error("instance.leaseInfo.durationInSecs: {asked} is more than the {limit} allowed")]
    LeaseTooLong {
        /// The duration asked for.
        asked: u32,
        /// The limit.
        limit: u32,
    },
    /// Another record of this instance id is registered with a newer `lastDirtyTimestamp` and
    /// another address: the registration is refused rather than silently ignored.
    #[error(
        "instance {id:?} is registered from {held} with a newer lastDirtyTimestamp ({held_dirty} > {dirty}); this registration from {asked} is refused"
    )]
    Conflict {
        /// The instance id.
        id: String,
        /// Where the held record says the instance is.
        held: String,
        /// Its lastDirtyTimestamp.
        held_dirty: i64,
        /// Where this registration says it is.
        asked: String,
        /// This registration's lastDirtyTimestamp.
        dirty: i64,
    },
    /// The registry holds as many applications, or instances of this application, as it may.
    #[error("the registry is full: {what} (limit {limit})")]
    Full {
        /// What is at its limit.
        what: String,
        /// The limit.
        limit: usize,
    },
}
