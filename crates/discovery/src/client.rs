//! The Eureka client: registration and heartbeats for this instance, and a local copy of the
//! registry kept fresh by delta fetches, with the Java client's defaults and failure handling.
//!
//! - Several server URLs: a request goes to the last server that answered; a failing server is
//!   quarantined and the next one tried (3 tries per request); once most servers are
//!   quarantined the quarantine is lifted, as in Java's `RetryableEurekaHttpClient`.
//! - Answers are read up to [`wire::MAX_DOCUMENT`] bytes; a longer one is refused while it
//!   is read ([`ClientError::TooLarge`]).
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

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::watch;

use crate::wire::{self, Applications, Instance, Status};

/// Settings of a client (Java client defaults).
#[derive(Debug, Clone)]
pub struct ClientConfig {
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
    /// This client's zone, for [`EurekaClient::instances`]. `None`: the zone of the client's
    /// own instance ([`Instance::zone`]: Amazon's `availability-zone`, else metadata `zone`);
    /// no preference when it has none.
    pub zone: Option<String>,
    /// Give only UP instances (on).
    pub filter_only_up: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            service_urls: vec!["http://127.0.0.1:8761/eureka/".to_owned()],
            renewal_interval: Duration::from_secs(30),
            lease_duration: Duration::from_secs(90),
            registry_fetch_interval: Duration::from_secs(30),
            max_backoff_multiplier: 10,
            request_timeout: Duration::from_secs(5),
            tries: 3,
            zone: None,
            filter_only_up: true,
        }
    }
}

/// Why a request to the Eureka servers failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
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

struct Server {
    base: Uri,
    authorization: Option<String>,
}

struct Transport {
    servers: Vec<Server>,
    http: Client<HttpConnector, Full<Bytes>>,
    state: Mutex<(usize, Vec<bool>)>, // (preferred server, quarantined)
    timeout: Duration,
    tries: usize,
}

impl Transport {
    fn new(config: &ClientConfig) -> Result<Self, ClientError> {
        use base64::Engine as _;
        let mut servers = Vec::new();
        for url in &config.service_urls {
            let bad = |reason: &str| ClientError::BadUrl {
                url: url.clone(),
                reason: reason.to_owned(),
            };
            let uri: Uri = url
                .parse()
                .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
            if uri.scheme_str() != Some("http") {
                return Err(bad("only http:// is supported"));
            }
            let authority = uri.authority().ok_or_else(|| bad("no host"))?.as_str();
            let (userinfo, host) = match authority.rsplit_once('@') {
                Some((userinfo, host)) => (Some(userinfo), host),
                None => (None, authority),
            };
            let authorization = userinfo.map(|u| {
                let decoded = percent_decode(u);
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(decoded)
                )
            });
            let mut path = uri.path().to_owned();
            if !path.ends_with('/') {
                path.push('/');
            }
            let base: Uri = format!("http://{host}{path}")
                .parse()
                .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
            servers.push(Server {
                base,
                authorization,
            });
        }
        if servers.is_empty() {
            return Err(ClientError::BadUrl {
                url: String::new(),
                reason: "no service URL given".to_owned(),
            });
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.request_timeout));
        let n = servers.len();
        Ok(Transport {
            servers,
            http: Client::builder(TokioExecutor::new()).build(connector),
            state: Mutex::new((0, vec![false; n])),
            timeout: config.request_timeout,
            tries: config.tries.max(1),
        })
    }

    /// Sends to the preferred server, failing over to others. 5xx and transport errors move
    /// on; any other answer is returned.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let order: Vec<usize> = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let n = self.servers.len();
            // Lift the quarantine once most servers are in it.
            if state.1.iter().filter(|q| **q).count() * 3 >= n * 2 {
                state.1.iter_mut().for_each(|q| *q = false);
            }
            (0..n)
                .map(|k| (state.0 + k) % n)
                .filter(|&i| !state.1[i])
                .collect()
        };
        let mut errors = Vec::new();
        for &i in order.iter().take(self.tries) {
            let server = &self.servers[i];
            let uri: Uri = match format!("{}{}", server.base, path).parse() {
                Ok(uri) => uri,
                Err(e) => {
                    return Err(ClientError::BadUrl {
                        url: path.to_owned(),
                        reason: format!("{e}"),
                    });
                }
            };
            let url = uri.to_string();
            let mut request = Request::builder()
                .method(method.clone())
                .uri(uri)
                .header(header::ACCEPT, "application/json");
            if let Some(auth) = &server.authorization {
                request = request.header(header::AUTHORIZATION, auth);
            }
            let request = match &body {
                Some(b) => request
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(b.clone()))),
                None => request.body(Full::new(Bytes::new())),
            }
            .expect("a request of valid parts");
            let outcome = tokio::time::timeout(self.timeout, async {
                let response = self
                    .http
                    .request(request)
                    .await
                    .map_err(|e| Failure::Transport(e.to_string()))?;
                let status = response.status();
                // Refuse an announced oversized answer before reading any of it, and cut
                // an unannounced one off at the limit.
                let announced = response
                    .headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                if announced.is_some_and(|n| n > wire::MAX_DOCUMENT as u64) {
                    return Err(Failure::TooLarge);
                }
                let bytes = Limited::new(response.into_body(), wire::MAX_DOCUMENT)
                    .collect()
                    .await
                    .map_err(|e| {
                        if e.downcast_ref::<LengthLimitError>().is_some() {
                            Failure::TooLarge
                        } else {
                            Failure::Transport(e.to_string())
                        }
                    })?
                    .to_bytes();
                Ok((status, bytes))
            })
            .await
            .unwrap_or_else(|_| {
                Err(Failure::Transport(format!(
                    "no answer within {:?}",
                    self.timeout
                )))
            });
            match outcome {
                Ok((status, bytes)) if !status.is_server_error() => {
                    let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                    state.0 = i;
                    state.1[i] = false;
                    return Ok((status, bytes));
                }
                // The server answered, but with more than any registry document: another
                // server would not do better, and reading its answer too would double the cost.
                Err(Failure::TooLarge) => {
                    tracing::warn!(%url, limit = wire::MAX_DOCUMENT, "Eureka answer too large; refused");
                    return Err(ClientError::TooLarge {
                        url,
                        limit: wire::MAX_DOCUMENT,
                    });
                }
                Ok((status, _)) => errors.push(format!("{}: {status}", server.base)),
                Err(Failure::Transport(e)) => errors.push(format!("{}: {e}", server.base)),
            }
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.1[i] = true;
            tracing::warn!(server = %server.base, error = %errors.last().map_or("", |e| e), "Eureka server quarantined");
        }
        Err(ClientError::Unavailable(errors.join("; ")))
    }
}

/// Why one try of a request failed.
enum Failure {
    /// Not connected, no (complete) answer, timed out.
    Transport(String),
    /// The answer is longer than [`wire::MAX_DOCUMENT`].
    TooLarge,
}

fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) =
                u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or(""), 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

struct Inner {
    config: ClientConfig,
    transport: Transport,
    instance: Mutex<Option<Instance>>,
    registry: watch::Sender<Arc<Applications>>,
    fetched_once: Mutex<bool>,
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
    pub fn new(config: ClientConfig, instance: Option<Instance>) -> Result<Self, ClientError> {
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
            }),
        })
    }

    fn instance(&self) -> Result<Instance, ClientError> {
        self.inner
            .instance
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(ClientError::NoInstance)
    }

    fn instance_path(&self) -> Result<String, ClientError> {
        let i = self.instance()?;
        Ok(format!("apps/{}/{}", segment(&i.app), segment(i.id())))
    }

    fn expect(
        method: &Method,
        path: &str,
        status: StatusCode,
        body: &Bytes,
        ok: &[u16],
    ) -> Result<(), ClientError> {
        if ok.contains(&status.as_u16()) {
            return Ok(());
        }
        Err(ClientError::Status {
            method: method.to_string(),
            path: path.to_owned(),
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
        })
    }

    /// Registers this instance (POST; 204 expected).
    pub async fn register(&self) -> Result<(), ClientError> {
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
    pub async fn renew(&self) -> Result<Renewal, ClientError> {
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
    pub async fn cancel(&self) -> Result<(), ClientError> {
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
    pub async fn set_status(&self, status: Status) -> Result<(), ClientError> {
        {
            let mut guard = self
                .inner
                .instance
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let i = guard.as_mut().ok_or(ClientError::NoInstance)?;
            i.status = status;
            i.last_dirty_timestamp = now_ms();
        }
        self.register().await
    }

    /// Sets a status override on the server (e.g. OUT_OF_SERVICE to drain this instance).
    pub async fn set_status_override(&self, status: Status) -> Result<(), ClientError> {
        let path = format!("{}/status?value={status}", self.instance_path()?);
        let (code, bytes) = self.inner.transport.send(Method::PUT, &path, None).await?;
        Self::expect(&Method::PUT, &path, code, &bytes, &[200])
    }

    /// Removes the status override on the server.
    pub async fn remove_status_override(&self) -> Result<(), ClientError> {
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
    pub async fn update_metadata(&self, entries: &[(&str, &str)]) -> Result<(), ClientError> {
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

    async fn get_applications(&self, path: &str) -> Result<Applications, ClientError> {
        let (status, bytes) = self.inner.transport.send(Method::GET, path, None).await?;
        Self::expect(&Method::GET, path, status, &bytes, &[200])?;
        Ok(wire::read_applications(&bytes)?)
    }

    /// Fetches the whole registry and keeps it.
    pub async fn fetch_full(&self) -> Result<(), ClientError> {
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
    pub async fn fetch(&self) -> Result<bool, ClientError> {
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
            Err(error @ (ClientError::Status { .. } | ClientError::Document(_))) => {
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

    async fn heartbeat(&self) -> Result<(), ClientError> {
        self.renew().await.map(|_| ())
    }

    /// Runs `work` now and then every `interval` (start to start, or at once when it took
    /// longer), backing off on errors: each failure doubles the time to the next run, up to
    /// `interval` times the multiplier; a success goes back to `interval`.
    async fn every(
        self,
        interval: Duration,
        mut stopped: watch::Receiver<bool>,
        register_first: bool,
        work: impl Fn(
            EurekaClient,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<(), ClientError>> + Send>,
        >,
    ) {
        if register_first && let Err(e) = self.register().await {
            tracing::warn!(error = %e, "registration failed; heartbeats will register again");
        }
        let multiplier = self.inner.config.max_backoff_multiplier;
        // The time from one run's start to the next one's; what is left of it is waited.
        let mut period = interval;
        let mut wait = Duration::ZERO;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
            let started = tokio::time::Instant::now();
            let outcome = work(self.clone()).await;
            period = next_period(period, interval, multiplier, outcome.is_ok());
            if let Err(e) = outcome {
                tracing::warn!(error = %e, retry_in = ?period, "Eureka request failed; the last good registry keeps serving");
            }
            wait = period.saturating_sub(started.elapsed());
        }
    }
}

/// The period after a run: `interval` after a success; after a failure, twice the last
/// period, at least `interval` and at most `interval` times `multiplier` (1 at least).
fn next_period(last: Duration, interval: Duration, multiplier: u32, ok: bool) -> Duration {
    if ok {
        return interval;
    }
    let cap = interval
        .checked_mul(multiplier.max(1))
        .unwrap_or(Duration::MAX);
    last.checked_mul(2)
        .unwrap_or(Duration::MAX)
        .min(cap)
        .max(interval)
}

/// Percent-encodes one path segment: everything but RFC 3986's unreserved characters and
/// `:` and `@` (allowed in segments and common in instance ids), so `/`, `?`, `#`, `%`, `;`,
/// spaces and non-ASCII stay inside the segment.
fn segment(s: &str) -> String {
    encode_keeping(s, b":@")
}

/// Percent-encodes a query component: everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    encode_keeping(s, b"")
}

fn encode_keeping(s: &str, keep: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || keep.contains(&b)
        {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
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
    pub async fn shutdown(self) -> Result<(), ClientError> {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        match self.client.cancel().await {
            Err(ClientError::NoInstance) => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn back_off_doubles_up_to_the_multiplier_and_resets_on_success() {
        let mut period = S;
        let mut periods = Vec::new();
        for _ in 0..6 {
            period = next_period(period, S, 10, false);
            periods.push(period.as_secs());
        }
        assert_eq!(periods, [2, 4, 8, 10, 10, 10]);
        assert_eq!(next_period(period, S, 10, true), S, "a success resets it");
        assert_eq!(next_period(S, S, 1, false), S, "multiplier 1: no back-off");
        assert_eq!(next_period(S, S, 0, false), S, "multiplier 0 counts as 1");
        assert_eq!(
            next_period(Duration::ZERO, S, 10, false),
            S,
            "never below the interval"
        );
        let huge = Duration::MAX / 2 + S;
        assert_eq!(
            next_period(huge, huge, u32::MAX, false),
            Duration::MAX,
            "no overflow"
        );
    }

    fn client(multiplier: u32) -> EurekaClient {
        let config = ClientConfig {
            service_urls: vec!["http://127.0.0.1:9/eureka/".into()],
            max_backoff_multiplier: multiplier,
            ..ClientConfig::default()
        };
        EurekaClient::new(config, None).unwrap()
    }

    /// Runs `every` (interval 1 s) for `run_for` of paused time with work that takes `takes`
    /// and fails on the runs `outcome` says; gives the runs' start times in seconds.
    async fn starts(takes: Duration, outcome: fn(usize) -> bool, run_for: Duration) -> Vec<f64> {
        let origin = tokio::time::Instant::now();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = watch::channel(false);
        let task = {
            let log = log.clone();
            tokio::spawn(client(10).every(S, stopped, false, move |_| {
                let log = log.clone();
                Box::pin(async move {
                    let n = {
                        let mut log = log.lock().unwrap();
                        log.push(origin.elapsed().as_secs_f64());
                        log.len() - 1
                    };
                    tokio::time::sleep(takes).await;
                    if outcome(n) {
                        Ok(())
                    } else {
                        Err(ClientError::Unavailable("test".into()))
                    }
                })
            }))
        };
        tokio::time::sleep(run_for).await;
        stop.send(true).unwrap();
        task.await.unwrap();
        Arc::try_unwrap(log).unwrap().into_inner().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_exponentially_to_ten_intervals_and_success_resets() {
        // Runs 0-5 fail, 6-7 succeed, 8 fails, then success.
        let starts = starts(
            Duration::ZERO,
            |n| (6..8).contains(&n) || n > 8,
            Duration::from_millis(49_500),
        )
        .await;
        //         fail:+2  +4   +8    +10   +10   +10 ok:+1 ok:+1 fail:+2 ok:+1
        let expected = [
            0.0, 2.0, 6.0, 14.0, 24.0, 34.0, 44.0, 45.0, 46.0, 48.0, 49.0,
        ];
        assert_eq!(starts, expected);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_failures_still_back_off() {
        // Every run takes 3 s (a timeout, say) and fails: the back-off must still grow, from
        // start to start 3 s (2 s was due), 4, 8, 10, 10.
        let starts = starts(3 * S, |_| false, Duration::from_millis(36_500)).await;
        assert_eq!(starts, [0.0, 3.0, 7.0, 15.0, 25.0, 35.0]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_interval_is_kept_from_start_to_start() {
        let starts = starts(
            Duration::from_millis(300),
            |_| true,
            Duration::from_millis(3_500),
        )
        .await;
        assert_eq!(starts, [0.0, 1.0, 2.0, 3.0]);
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(segment("host:svc/1 a"), "host:svc%2F1%20a");
        assert_eq!(segment("a?b#c%d;e+f&g=h"), "a%3Fb%23c%25d%3Be%2Bf%26g%3Dh");
        assert_eq!(segment("ü"), "%C3%BC");
        assert_eq!(segment("ORDERS-1.a_b~c@d"), "ORDERS-1.a_b~c@d");
        assert_eq!(encode("a:b@c"), "a%3Ab%40c");
    }
}
