//! The Eureka client: registration and heartbeats for this instance, and a local copy of the
//! registry kept fresh by delta fetches, with the Java client's defaults and failure handling.
//!
//! - Several server URLs: a request goes to the last server that answered; a failing server is
//!   quarantined and the next one tried (3 tries per request); once most servers are
//!   quarantined the quarantine is lifted, as in Java's `RetryableEurekaHttpClient`.
//! - Answers are read up to [`wire::MAX_DOCUMENT`] bytes; a longer one is refused while it
//!   is read ([`EurekaClientError::TooLarge`]).
//! - App names and instance ids are percent-encoded in request paths.
//! - Heartbeats every 30 s; a 404 answer (lease unknown or older than ours) registers again.
//!   Failed heartbeats and fetches back off exponentially up to 10x their interval.
//! - Fetches every 30 s: a full fetch first, then deltas applied locally and checked against
//!   the server's `apps__hashcode`; a mismatch or a failed delta triggers a full fetch.
//! - While every server is down, the last good registry keeps serving.
//! - [`EurekaClient::instances`] gives UP instances only (by default), same zone first (the
//!   configured zone, else that of this client's own instance).
//! - [`EurekaClient::watch`] streams registry changes, for `tower::discover` adapters.
//! - [`Running::shutdown`] cancels the registration before the process exits.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use breakwater_backoff::Backoff;
use bytes::Bytes;
use http::{Method, StatusCode};
use tokio::sync::watch;

use crate::wire::{self, Applications, Instance, Status};

mod config;
mod transport;

pub use config::{EurekaClientConfig, EurekaClientError};

/// Fetches that would have emptied the view or lost more than half of it (held back until
/// [`EurekaClientConfig::drop_confirmations`] in a row said so).
pub const SUSPICIOUS_FETCHES_TOTAL: &str = "breakwater_eureka_client_suspicious_fetches_total";

use transport::{Transport, encode, segment};

struct Inner {
    config: EurekaClientConfig,
    transport: Transport,
    instance: Mutex<Option<Instance>>,
    registry: watch::Sender<Arc<Applications>>,
    fetched_once: Mutex<bool>,
    /// Bumped by every background run that reached the servers: a loop that is backing off
    /// tries again at once when the other one got through.
    reached: watch::Sender<u64>,
    /// Fetches in a row that would have dropped most of the view.
    suspicious: Mutex<u32>,
}

/// A Eureka client. Cloning shares it.
#[derive(Clone)]
pub struct EurekaClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EurekaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EurekaClient")
            .field("service_urls", &self.inner.config.service_urls)
            .finish()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// How a heartbeat went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Renewed.
    Renewed,
    /// The server did not know the lease (404): registered again.
    Reregistered,
}

impl EurekaClient {
    /// A client for these servers; `instance` is this process's registration, if it has one.
    pub fn new(
        config: EurekaClientConfig,
        instance: Option<Instance>,
    ) -> Result<Self, EurekaClientError> {
        let transport = Transport::new(&config)?;
        let instance = instance.map(|mut i| {
            i.app = i.app.to_ascii_uppercase();
            i.lease_info.renewal_interval_secs = config.renewal_interval.as_secs().max(1) as u32;
            i.lease_info.duration_secs = config.lease_duration.as_secs().max(1) as u32;
            if i.last_dirty_timestamp == 0 {
                i.last_dirty_timestamp = now_ms();
            }
            i
        });
        Ok(EurekaClient {
            inner: Arc::new(Inner {
                config,
                transport,
                instance: Mutex::new(instance),
                registry: watch::channel(Arc::new(Applications::default())).0,
                fetched_once: Mutex::new(false),
                reached: watch::channel(0).0,
                suspicious: Mutex::new(0),
            }),
        })
    }

    fn instance(&self) -> Result<Instance, EurekaClientError> {
        self.inner
            .instance
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(EurekaClientError::NoInstance)
    }

    fn instance_path(&self) -> Result<String, EurekaClientError> {
        let i = self.instance()?;
        Ok(format!("apps/{}/{}", segment(&i.app), segment(i.id())))
    }

    fn expect(
        method: &Method,
        path: &str,
        status: StatusCode,
        body: &Bytes,
        ok: &[u16],
    ) -> Result<(), EurekaClientError> {
        if ok.contains(&status.as_u16()) {
            return Ok(());
        }
        Err(EurekaClientError::Status {
            method: method.to_string(),
            path: path.to_owned(),
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
        })
    }

    /// Registers this instance (POST; 204 expected).
    pub async fn register(&self) -> Result<(), EurekaClientError> {
        let instance = self.instance()?;
        let path = format!("apps/{}", segment(&instance.app));
        let body = wire::instance_document(&instance, wire::Format::Json);
        let (status, bytes) = self
            .inner
            .transport
            .send(Method::POST, &path, Some(body))
            .await?;
        Self::expect(&Method::POST, &path, status, &bytes, &[200, 204])?;
        tracing::info!(app = %instance.app, id = %instance.id(), "registered with Eureka");
        Ok(())
    }

    /// Sends a heartbeat; registers again when the server answers 404.
    pub async fn renew(&self) -> Result<Renewal, EurekaClientError> {
        let instance = self.instance()?;
        let path = format!(
            "{}?status={}&lastDirtyTimestamp={}",
            self.instance_path()?,
            instance.status,
            instance.last_dirty_timestamp
        );
        let (status, bytes) = self.inner.transport.send(Method::PUT, &path, None).await?;
        if status == StatusCode::NOT_FOUND {
            tracing::info!(id = %instance.id(), "lease unknown to the server; registering again");
            self.register().await?;
            return Ok(Renewal::Reregistered);
        }
        Self::expect(&Method::PUT, &path, status, &bytes, &[200])?;
        Ok(Renewal::Renewed)
    }

    /// Cancels the registration (graceful shutdown).
    pub async fn cancel(&self) -> Result<(), EurekaClientError> {
        let path = self.instance_path()?;
        let (status, bytes) = self
            .inner
            .transport
            .send(Method::DELETE, &path, None)
            .await?;
        Self::expect(&Method::DELETE, &path, status, &bytes, &[200, 404])
    }

    /// Sets this instance's status (UP, DOWN...) as sent with registrations and heartbeats;
    /// registers again so the registry sees it at once.
    pub async fn set_status(&self, status: Status) -> Result<(), EurekaClientError> {
        {
            let mut guard = self
                .inner
                .instance
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let i = guard.as_mut().ok_or(EurekaClientError::NoInstance)?;
            i.status = status;
            i.last_dirty_timestamp = now_ms();
        }
        self.register().await
    }

    /// Sets a status override on the server (e.g. OUT_OF_SERVICE to drain this instance).
    pub async fn set_status_override(&self, status: Status) -> Result<(), EurekaClientError> {
        let path = format!("{}/status?value={status}", self.instance_path()?);
        let (code, bytes) = self.inner.transport.send(Method::PUT, &path, None).await?;
        Self::expect(&Method::PUT, &path, code, &bytes, &[200])
    }

    /// Removes the status override on the server.
    pub async fn remove_status_override(&self) -> Result<(), EurekaClientError> {
        let status = self.instance()?.status;
        let path = format!("{}/status?value={status}", self.instance_path()?);
        let (code, bytes) = self
            .inner
            .transport
            .send(Method::DELETE, &path, None)
            .await?;
        Self::expect(&Method::DELETE, &path, code, &bytes, &[200])
    }

    /// Merges metadata into this instance's registration.
    pub async fn update_metadata(&self, entries: &[(&str, &str)]) -> Result<(), EurekaClientError> {
        let query: Vec<String> = entries
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        let path = format!("{}/metadata?{}", self.instance_path()?, query.join("&"));
        let (code, bytes) = self.inner.transport.send(Method::PUT, &path, None).await?;
        Self::expect(&Method::PUT, &path, code, &bytes, &[200])?;
        let mut guard = self
            .inner
            .instance
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(i) = guard.as_mut() {
            i.metadata
                .extend(entries.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        }
        Ok(())
    }

    async fn get_applications(&self, path: &str) -> Result<Applications, EurekaClientError> {
        let (status, bytes) = self.inner.transport.send(Method::GET, path, None).await?;
        Self::expect(&Method::GET, path, status, &bytes, &[200])?;
        Ok(wire::read_applications(&bytes)?)
    }

    /// Fetches the whole registry and keeps it.
    pub async fn fetch_full(&self) -> Result<(), EurekaClientError> {
        let apps = self.get_applications("apps/").await?;
        self.publish(apps);
        *self
            .inner
            .fetched_once
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = true;
        Ok(())
    }

    /// Fetches the delta and applies it; falls back to a full fetch when the result's hash
    /// differs from the server's, or on the first fetch. Returns true when a full fetch ran.
    pub async fn fetch(&self) -> Result<bool, EurekaClientError> {
        let first = !*self
            .inner
            .fetched_once
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if first || self.inner.registry.borrow().is_empty() {
            self.fetch_full().await?;
            return Ok(true);
        }
        let delta = match self.get_applications("apps/delta").await {
            Ok(delta) => delta,
            // A server answered but gave no usable delta (deltas disabled, a bad document):
            // the full registry is the way back, as the Java client does.
            // A delta over the answer limit too: the full registry is smaller than such a delta.
            Err(
                error @ (EurekaClientError::Status { .. }
                | EurekaClientError::Document(_)
                | EurekaClientError::TooLarge { .. }),
            ) => {
                tracing::info!(%error, "no usable delta; fetching all");
                self.fetch_full().await?;
                return Ok(true);
            }
            Err(error) => return Err(error),
        };
        let mut local = (**self.inner.registry.borrow()).clone();
        local.apply_delta(&delta);
        let hash = local.hashcode();
        if hash != delta.apps_hashcode {
            tracing::info!(local = %hash, server = %delta.apps_hashcode, "registry hash mismatch after delta; fetching all");
            self.fetch_full().await?;
            return Ok(true);
        }
        local.apps_hashcode = hash;
        self.publish(local);
        Ok(false)
    }

    fn publish(&self, apps: Applications) {
        let held = self.inner.registry.borrow().len();
        let drop = held > 0 && (apps.is_empty() || apps.len() * 2 < held);
        {
            let mut suspicious = self
                .inner
                .suspicious
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if !drop {
                *suspicious = 0;
            } else {
                *suspicious += 1;
                metrics::counter!(SUSPICIOUS_FETCHES_TOTAL).increment(1);
                if *suspicious < self.inner.config.drop_confirmations {
                    tracing::warn!(
                        held,
                        fetched = apps.len(),
                        seen = *suspicious,
                        needed = self.inner.config.drop_confirmations,
                        "the registry answered with most instances gone; keeping the last view until more fetches say so"
                    );
                    return;
                }
                tracing::warn!(
                    held,
                    fetched = apps.len(),
                    "the drop persisted; taking the new view"
                );
                *suspicious = 0;
            }
        }
        self.inner.registry.send_if_modified(|current| {
            if **current == apps {
                return false;
            }
            *current = Arc::new(apps);
            true
        });
    }

    /// The last registry fetched (the last good one while servers are down).
    pub fn applications(&self) -> Arc<Applications> {
        self.inner.registry.borrow().clone()
    }

    /// A stream of registry changes (the current value first).
    pub fn watch(&self) -> watch::Receiver<Arc<Applications>> {
        self.inner.registry.subscribe()
    }

    /// Instances of an application (or VIP address): UP only unless configured otherwise;
    /// those in this client's zone when there are any, else all.
    pub fn instances(&self, app_or_vip: &str) -> Vec<Instance> {
        let apps = self.applications();
        let wanted = |i: &Instance| {
            i.app.eq_ignore_ascii_case(app_or_vip)
                || i.vip_address.as_deref().is_some_and(|v| {
                    v.split(',')
                        .any(|v| v.trim().eq_ignore_ascii_case(app_or_vip))
                })
        };
        let all: Vec<Instance> = apps
            .instances()
            .filter(|i| wanted(i))
            .filter(|i| !self.inner.config.filter_only_up || i.status == Status::Up)
            .cloned()
            .collect();
        if let Some(zone) = self.zone() {
            let same: Vec<Instance> = all
                .iter()
                .filter(|i| i.zone() == Some(zone.as_str()))
                .cloned()
                .collect();
            if !same.is_empty() {
                return same;
            }
        }
        all
    }

    /// The zone preferred by [`EurekaClient::instances`]: the configured one, else that of
    /// this client's own instance.
    fn zone(&self) -> Option<String> {
        if let Some(zone) = &self.inner.config.zone {
            return Some(zone.clone());
        }
        self.inner
            .instance
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|i| i.zone())
            .filter(|z| !z.is_empty())
            .map(str::to_owned)
    }

    /// Starts the background work: registration and heartbeats (when there is an instance)
    /// and registry fetches, each with back-off on failure.
    pub fn start(&self) -> Running {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        if self
            .inner
            .instance
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
        {
            let client = self.clone();
            let interval = self.inner.config.renewal_interval;
            tasks.push(tokio::spawn(client.clone().every(
                interval,
                stopped.clone(),
                true,
                move |c| Box::pin(async move { c.heartbeat().await }),
            )));
        }
        let interval = self.inner.config.registry_fetch_interval;
        tasks.push(tokio::spawn(self.clone().every(
            interval,
            stopped,
            false,
            |c| Box::pin(async move { c.fetch().await.map(|_| ()) }),
        )));
        Running {
            client: self.clone(),
            stop,
            tasks,
        }
    }

    async fn heartbeat(&self) -> Result<(), EurekaClientError> {
        self.renew().await.map(|_| ())
    }

    /// Runs `work` now and then every `interval` (start to start, or at once when it took
    /// longer), backing off on errors: each failure in a row doubles the time to the next
    /// run, up to `interval` times the multiplier; a success goes back to `interval`. While
    /// backing off it runs at once when another loop of this client got through (after a
    /// registry restart the heartbeat then learns of its lost lease, and registers again,
    /// with the first successful fetch rather than a back-off later).
    async fn every(
        self,
        interval: Duration,
        mut stopped: watch::Receiver<bool>,
        register_first: bool,
        work: impl Fn(
            EurekaClient,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<(), EurekaClientError>> + Send>,
        >,
    ) {
        if register_first && let Err(e) = self.register().await {
            tracing::warn!(error = %e, "registration failed; heartbeats will register again");
        }
        let backoff = Backoff::exponential(
            interval.saturating_mul(self.inner.config.max_backoff_multiplier.max(1)),
        );
        // The time from one run's start to the next one's; what is left of it is waited.
        let mut failures = 0u32;
        let mut wait = Duration::ZERO;
        let mut reached = self.inner.reached.subscribe();
        loop {
            reached.borrow_and_update();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopped.wait_for(|s| *s) => return,
                // Backing off, and the other loop reached the servers: they are back.
                Ok(()) = reached.changed(), if failures > 0 => {}
            }
            let started = tokio::time::Instant::now();
            let outcome = work(self.clone()).await;
            failures = if outcome.is_ok() {
                self.inner.reached.send_modify(|n| *n = n.wrapping_add(1));
                0
            } else {
                failures.saturating_add(1)
            };
            let period = backoff.delay(interval, failures);
            if let Err(e) = outcome {
                tracing::warn!(error = %e, retry_in = ?period, "Eureka request failed; the last good registry keeps serving");
            }
            wait = period.saturating_sub(started.elapsed());
        }
    }
}

/// The client's background work. [`Running::shutdown`] stops it and cancels the
/// registration; do it before the process exits so callers stop sending traffic at once.
pub struct Running {
    client: EurekaClient,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// The client.
    pub fn client(&self) -> &EurekaClient {
        &self.client
    }

    /// Stops heartbeats and fetches, then cancels the registration.
    pub async fn shutdown(self) -> Result<(), EurekaClientError> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        match self.client.cancel().await {
            Err(EurekaClientError::NoInstance) => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests;
