//! The dashboard server: routes, settings and access control in one [`Dashboard`] builder.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json};
use breakwater_circuit_breaker::CircuitBreakerRegistry;
use breakwater_server::ConnectionLimit;
use http::{HeaderMap, Method, StatusCode, Uri, header};
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::aggregate::Aggregator;
use crate::extension::{self, Extensions, Selections, StreamExtension};
use crate::hystrix;
use crate::metrics::{Counting, StreamStats};
use crate::page;
use crate::proxy::{self, HttpClient, OriginAllowList};
use crate::serve::ConnectionHandle;
use crate::stream::{FrameSource, StreamConfig};

/// Builds the dashboard's router.
///
/// ```
/// use breakwater_circuit_breaker::CircuitBreakerRegistry;
/// use breakwater_stream_dashboard::Dashboard;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let registry = CircuitBreakerRegistry::new();
/// registry.breaker("payments");
/// // `/hystrix.stream`, `/proxy.stream` and the page at `/`, ready to mount or serve.
/// let router = Dashboard::new().registry(registry).router();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// # let shutdown = async {};
/// breakwater_stream_dashboard::serve(listener, router, shutdown).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Default)]
pub struct Dashboard {
    registry: Option<CircuitBreakerRegistry>,
    extensions: Vec<Arc<dyn StreamExtension>>,
    instances: Vec<Uri>,
    proxy_allow: OriginAllowList,
    token: Option<String>,
    settings: StreamConfig,
    cors_origins: Vec<http::HeaderValue>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let extensions: Vec<&str> = self.extensions.iter().map(|e| e.event_type()).collect();
        f.debug_struct("Dashboard")
            .field("registry", &self.registry)
            .field("extensions", &extensions)
            .field("instances", &self.instances)
            .field("proxy_allow", &self.proxy_allow)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("settings", &self.settings)
            .field("cors_origins", &self.cors_origins)
            .finish()
    }
}

/// The followed instances: the merged stream and one per instance, each with its own frame
/// caches shared by all of its clients.
struct Followed {
    aggregator: Aggregator,
    merged: Selections,
    each: Vec<Selections>,
}

/// This process's stream: its registry and extensions.
struct Local {
    selections: Selections,
    extensions: Vec<Arc<dyn StreamExtension>>,
}

struct AppState {
    local: Option<Local>,
    aggregator: Option<Followed>,
    connections: ConnectionLimit,
    settings: Arc<StreamConfig>,
    proxy_allow: OriginAllowList,
    client: HttpClient,
    stats: Arc<StreamStats>,
}

impl Dashboard {
    /// A dashboard with nothing to show yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Streams this registry's breakers and bulkheads at `/hystrix.stream`.
    pub fn registry(mut self, registry: CircuitBreakerRegistry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Adds `extension`'s events to `/hystrix.stream` for clients that ask for them
    /// (`?extensions=all` or its event type); see [`extension`](crate::extension).
    pub fn extension(mut self, extension: impl StreamExtension) -> Self {
        self.extensions.push(Arc::new(extension));
        self
    }

    /// Follows these instances' streams and serves them merged at `/turbine.stream` (one
    /// instance alone with `?instance=<index>`). Their hosts are also allowed to the proxy.
    pub fn instances(mut self, urls: impl IntoIterator<Item = Uri>) -> Self {
        self.instances.extend(urls);
        self
    }

    /// The origins `/proxy.stream` may relay (none by default).
    pub fn proxy_allow_list(mut self, list: OriginAllowList) -> Self {
        self.proxy_allow = list;
        self
    }

    /// Requires `Authorization: Bearer <token>` (or `?access_token=<token>`, for browsers'
    /// `EventSource`, which cannot set headers) on every route.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Lets pages of `origin` (`https://ops.example.com`) read the dashboard's routes from a
    /// browser (CORS). None by default: the page served here needs none, and a `*` would let
    /// any page an operator opens read the streams, and the proxy, through the dashboard.
    pub fn allow_cors_origin(mut self, origin: &str) -> Result<Self, String> {
        let origin = origin.trim().trim_end_matches('/');
        let valid = (origin.starts_with("http://") || origin.starts_with("https://"))
            && !origin.contains(['*', ' ', ','])
            && origin.matches('/').count() == 2;
        if !valid {
            return Err(format!(
                "CORS origin {origin:?}: expected scheme://host[:port], like https://ops.example.com"
            ));
        }
        let value = http::HeaderValue::from_str(origin)
            .map_err(|_| format!("CORS origin {origin:?}: not a valid header value"))?;
        self.cors_origins.push(value);
        Ok(self)
    }

    /// Intervals, connection cap, per-client buffer, stall timeout and compression.
    pub fn stream_config(mut self, settings: StreamConfig) -> Self {
        self.settings = settings;
        self
    }

    /// The router. Starts following the instances, if any, so call it within a Tokio runtime.
    pub fn router(self) -> Router {
        let settings = Arc::new(self.settings);
        let connections = ConnectionLimit::new(settings.max_connections);
        let stats = Arc::new(StreamStats::default());
        let extensions = self.extensions;
        let local = (self.registry.is_some() || !extensions.is_empty()).then(|| {
            let registry = self.registry;
            let all = extensions.clone();
            let make = move |selection: &Extensions| -> Arc<dyn FrameSource> {
                let registry = registry.clone();
                let extensions = all.clone();
                let selection = selection.clone();
                Arc::new(move |out: &mut Vec<u8>| {
                    let start = out.len();
                    if let Some(registry) = &registry {
                        let commands = registry.snapshot();
                        let bulkheads = registry.bulkhead_snapshots();
                        hystrix::write_events(&commands, &bulkheads, out);
                    }
                    extension::write_selected(&extensions, &selection, out);
                    if out.len() == start {
                        out.extend_from_slice(crate::sse::PING);
                    }
                })
            };
            Local {
                selections: Selections::new(
                    make,
                    settings.clone(),
                    connections.clone(),
                    Counting::new(&stats, "hystrix"),
                ),
                extensions,
            }
        });
        let mut proxy_allow = self.proxy_allow;
        for url in &self.instances {
            if let Some(authority) = url.authority()
                && let Ok(list) = proxy_allow.clone().allow(authority.as_str())
            {
                proxy_allow = list;
            }
        }
        let aggregator = (!self.instances.is_empty()).then(|| {
            let count = self.instances.len();
            let aggregator = Aggregator::spawn(self.instances);
            let selections = |index: Option<usize>| {
                let aggregator = aggregator.clone();
                let make = move |selection: &Extensions| -> Arc<dyn FrameSource> {
                    let (aggregator, selection) = (aggregator.clone(), selection.clone());
                    Arc::new(move |out: &mut Vec<u8>| match index {
                        None => aggregator.write_merged_frame(&selection, out),
                        Some(index) => aggregator.write_instance_frame(index, &selection, out),
                    })
                };
                Selections::new(
                    make,
                    settings.clone(),
                    connections.clone(),
                    Counting::new(&stats, "turbine"),
                )
            };
            let merged = selections(None);
            let each = (0..count).map(|index| selections(Some(index))).collect();
            Followed {
                aggregator,
                merged,
                each,
            }
        });
        let state = Arc::new(AppState {
            local,
            aggregator,
            connections,
            settings,
            proxy_allow,
            client: proxy::http_client(),
            stats,
        });
        let mut router = Router::new()
            .route("/", get(page::index))
            .route("/dashboard/app.js", get(page::script))
            .route("/dashboard/balancers.js", get(page::balancers_script))
            .route("/dashboard/app.css", get(page::style))
            .route("/dashboard/sources.json", get(sources))
            .route("/dashboard/instances.json", get(instances))
            .route("/hystrix.stream", get(local_stream))
            .route("/turbine.stream", get(turbine_stream))
            .route("/proxy.stream", get(proxy_stream))
            .route("/health", get(health))
            .route("/metrics", get(metrics))
            .with_state(state);
        if let Some(token) = self.token {
            router = breakwater_server::require_token(router, token, &PUBLIC_PATHS);
        }
        if self.cors_origins.is_empty() {
            return router;
        }
        router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(self.cors_origins))
                .allow_methods([Method::GET])
                .allow_headers([header::AUTHORIZATION, header::ACCEPT, header::CACHE_CONTROL]),
        )
    }
}

type Params = Query<HashMap<String, String>>;

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, message + "\n").into_response()
}

async fn local_stream(
    State(state): State<Arc<AppState>>,
    Query(query): Params,
    headers: HeaderMap,
    connection: Option<Extension<ConnectionHandle>>,
) -> Response {
    let Some(local) = &state.local else {
        return (
            StatusCode::NOT_FOUND,
            "this dashboard streams no local registry\n",
        )
            .into_response();
    };
    let selection = match Extensions::parse(query.get(extension::QUERY).map(String::as_str)) {
        Ok(selection) => selection,
        Err(message) => return bad_request(message),
    };
    let unknown = selection.unknown(&local.extensions);
    if !unknown.is_empty() {
        let known: Vec<&str> = local.extensions.iter().map(|e| e.event_type()).collect();
        return bad_request(format!(
            "query parameter `{}`: no extension writes {unknown:?} here (known: {known:?}, or `all`)",
            extension::QUERY
        ));
    }
    stream(&local.selections, &selection, &query, &headers, connection)
}

fn stream(
    selections: &Selections,
    selection: &Extensions,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    connection: Option<Extension<ConnectionHandle>>,
) -> Response {
    let streamer = match selections.get(selection) {
        Ok(streamer) => streamer,
        Err(message) => return (StatusCode::SERVICE_UNAVAILABLE, message + "\n").into_response(),
    };
    let interval = match streamer.interval(query.get("delay").map(String::as_str)) {
        Ok(interval) => interval,
        Err(message) => return bad_request(message),
    };
    match streamer.admit() {
        Ok(permit) => streamer.respond(headers, interval, permit, connection.map(|e| e.0)),
        Err(refusal) => refusal.into_response(),
    }
}

async fn turbine_stream(
    State(state): State<Arc<AppState>>,
    Query(query): Params,
    headers: HeaderMap,
    connection: Option<Extension<ConnectionHandle>>,
) -> Response {
    let Some(followed) = &state.aggregator else {
        return (
            StatusCode::NOT_FOUND,
            "this dashboard follows no instances\n",
        )
            .into_response();
    };
    let selection = match Extensions::parse(query.get(extension::QUERY).map(String::as_str)) {
        Ok(selection) => selection,
        Err(message) => return bad_request(message),
    };
    let Some(instance) = query.get("instance") else {
        return stream(&followed.merged, &selection, &query, &headers, connection);
    };
    match instance
        .parse::<usize>()
        .ok()
        .and_then(|i| followed.each.get(i))
    {
        Some(one) => stream(one, &selection, &query, &headers, connection),
        None => bad_request(format!(
            "query parameter `instance`: {instance:?} is not an index below {}",
            followed.each.len()
        )),
    }
}

async fn proxy_stream(
    State(state): State<Arc<AppState>>,
    Query(query): Params,
    connection: Option<Extension<ConnectionHandle>>,
) -> Response {
    let connection = connection.map(|e| e.0);
    let response = proxy::relay(
        &state.client,
        &state.proxy_allow,
        &state.connections,
        state.settings.stall_timeout,
        query,
        connection,
        &Counting::new(&state.stats, "proxy"),
    )
    .await;
    let reason = match response.status() {
        StatusCode::OK => None,
        StatusCode::SERVICE_UNAVAILABLE => Some("full"),
        StatusCode::BAD_REQUEST => Some("proxy_bad_request"),
        StatusCode::FORBIDDEN => Some("proxy_forbidden"),
        _ => Some("proxy_upstream"),
    };
    if let Some(reason) = reason {
        state.stats.refused(reason);
    }
    response
}

/// `/metrics`: the streams' series (see the `metrics` module) in the Prometheus text format.
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let upstreams = state.aggregator.as_ref().map(|f| {
        let instances = f.aggregator.instances();
        let connected = instances.iter().filter(|i| i.connected).count();
        (connected, instances.len() - connected)
    });
    let mut response = state.stats.render(upstreams).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

async fn sources(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let mut sources = Vec::new();
    if state.local.is_some() {
        sources.push(json!({"id": "local", "label": "this instance", "url": "hystrix.stream?extensions=all"}));
    }
    if let Some(Followed { aggregator, .. }) = &state.aggregator {
        sources.push(
            json!({"id": "all", "label": "all instances (aggregated)", "url": "turbine.stream?extensions=all"}),
        );
        for (index, instance) in aggregator.instances().iter().enumerate() {
            sources.push(json!({
                "id": format!("inst-{index}"),
                "label": instance.label,
                "url": format!("turbine.stream?instance={index}&extensions=all"),
            }));
        }
    }
    let default = if state.aggregator.is_some() {
        "all"
    } else {
        "local"
    };
    Json(json!({"default": default, "sources": sources}))
}

/// `application/health+json`: `pass`, or `warn` (still 200) while a followed instance's stream
/// is not open: the dashboard keeps serving what it has, so it is never `fail` for that.
async fn health(State(state): State<Arc<AppState>>) -> breakwater_server::health::Health {
    use breakwater_server::health::{Check, Health, HealthStatus};
    let mut health = Health::new().service_id("breakwater-dashboard");
    if let Some(Followed { aggregator, .. }) = &state.aggregator {
        for instance in aggregator.instances() {
            let mut check = if instance.connected {
                Check::new(HealthStatus::Pass)
            } else {
                Check::new(HealthStatus::Warn)
            }
            .component_id(instance.label.as_str())
            .component_type("component")
            .observed_value(instance.events)
            .observed_unit("events");
            if let (false, Some(error)) = (instance.connected, &instance.last_error) {
                check = check.output(error.as_str());
            }
            health = health.check("stream:connected", check);
        }
    }
    health
}

async fn instances(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let instances = state
        .aggregator
        .as_ref()
        .map(|f| f.aggregator.instances())
        .unwrap_or_default();
    Json(json!({ "instances": instances }))
}

/// The page's script and style hold no data; the browser loads them without the token (a
/// `<script src>` cannot carry it), so they are public.
const PUBLIC_PATHS: [&str; 3] = [
    "/dashboard/app.js",
    "/dashboard/balancers.js",
    "/dashboard/app.css",
];
