//! The embedded registry's REST API, as Eureka serves it: under both `/eureka/apps` and
//! `/eureka/v2/apps` (Spring Cloud clients use the first, Netflix's the second), JSON when
//! the `Accept` header asks for it and XML otherwise, Eureka's status codes.
//!
//! ```no_run
//! use std::sync::Arc;
//! use breakwater_discovery::registry::{InstanceRegistry, InstanceRegistryConfig};
//!
//! # #[tokio::main] async fn main() -> std::io::Result<()> {
//! let registry = Arc::new(InstanceRegistry::new(InstanceRegistryConfig::default()));
//! let router = breakwater_discovery::server::router(registry.clone());
//! let _eviction = breakwater_discovery::server::spawn_eviction(registry);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8761").await?;
//! axum::serve(listener, router).await
//! # }
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::Value;
use tower::Layer;
use tower_http::compression::CompressionLayer;
use tower_http::normalize_path::NormalizePathLayer;

use crate::registry::{InstanceRegistry, InstanceRegistryError};

pub mod metrics;
use crate::wire::{self, Format, Status, WireError};

/// The largest request body accepted (an instance document is a few kB).
pub const MAX_BODY: usize = 256 * 1024;

type Shared = State<Arc<InstanceRegistry>>;
type Params = Query<HashMap<String, String>>;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The router: mount it in a service of your own or serve it as it is.
pub fn router(registry: Arc<InstanceRegistry>) -> Router {
    let api = Router::new()
        .route("/apps", get(all))
        .route("/apps/delta", get(delta))
        .route("/apps/{app}", get(app).post(register))
        .route("/apps/{app}/{id}", get(instance).put(renew).delete(cancel))
        .route(
            "/apps/{app}/{id}/status",
            put(set_status).delete(remove_status),
        )
        .route("/apps/{app}/{id}/metadata", put(metadata))
        .route("/instances/{id}", get(instance_by_id))
        .route("/vips/{vip}", get(vip))
        .route("/svips/{vip}", get(svip))
        .with_state(registry.clone());
    let health = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics::metrics))
        .with_state(registry.clone());
    let routes = Router::new()
        .merge(health)
        .nest("/eureka", api.clone())
        .nest("/eureka/v2", api)
        // Bodies are read with our own limit (and message); lift axum's.
        .layer(axum::extract::DefaultBodyLimit::disable())
        // gzip when the client asks, as Eureka does for registry fetches.
        .layer(CompressionLayer::new());
    // Eureka (Jersey) takes `/eureka/apps/` as `/eureka/apps`; clients rely on it.
    Router::new().fallback_service(NormalizePathLayer::trim_trailing_slash().layer(routes))
}

/// `/health`, `application/health+json`: `pass`, or `warn` (still 200: the registry serves,
/// but holds evictions back) while self-preservation holds; the number of instances as
/// `eureka:instances`.
async fn health(State(registry): Shared) -> breakwater_server::health::Health {
    use breakwater_server::health::{Check, Health, HealthStatus};
    let instances = registry.instance_count();
    let preserving = registry.self_preserving(now_ms());
    let mut preservation = Check::new(if preserving {
        HealthStatus::Warn
    } else {
        HealthStatus::Pass
    })
    .component_type("component")
    .observed_value(preserving);
    if preserving {
        preservation = preservation.output(
            "self-preservation: renewals in the last minute are at or below the threshold; expired leases are not evicted",
        );
    }
    Health::new()
        .service_id("breakwater-eureka")
        .check(
            "eureka:instances",
            Check::new(HealthStatus::Pass)
                .component_type("component")
                .observed_value(instances),
        )
        .check("eureka:selfPreservation", preservation)
}

/// Evicts expired leases every 60 s (Eureka's default) until the handle is aborted.
pub fn spawn_eviction(registry: Arc<InstanceRegistry>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.tick().await;
        loop {
            tick.tick().await;
            let evicted = registry.evict(now_ms()).len();
            log_activity(&registry, evicted);
        }
    })
}

/// Requests refused with 400, for the summary line.
static REFUSED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Requests refused with 400 since start, for `/metrics`.
static REFUSED_TOTAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// One INFO line per minute for the routine work (registrations, renewals and
/// cancellations are logged one by one at debug only: with a thousand instances a line each
/// would be megabytes a minute).
fn log_activity(registry: &InstanceRegistry, evicted: usize) {
    let activity = registry.take_activity();
    let apps = registry.applications();
    let refused = REFUSED.swap(0, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(
        instances = apps.len(),
        applications = apps.applications.len(),
        registrations = activity.registrations,
        renewals = activity.renewals,
        cancellations = activity.cancellations,
        evicted,
        refused,
        "registry in the last minute"
    );
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    (status, message.into() + "\n").into_response()
}

fn bad_request(message: impl Into<String>) -> Response {
    let message = message.into();
    REFUSED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    REFUSED_TOTAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::debug!(%message, "registry request refused");
    text(StatusCode::BAD_REQUEST, message)
}

/// The answer to a refused operation: 404 for an unknown (or stale) lease, as Eureka answers
/// and clients rely on; 400 for metadata over its limits, a timestamp from the future or a
/// lease too long; 409 for a registration that conflicts with a newer record; 507 when the
/// registry is full.
fn refused(e: InstanceRegistryError) -> Response {
    let status = match e {
        InstanceRegistryError::MetadataTooLarge { .. }
        | InstanceRegistryError::FutureTimestamp { .. }
        | InstanceRegistryError::LeaseTooLong { .. } => StatusCode::BAD_REQUEST,
        InstanceRegistryError::Conflict { .. } => StatusCode::CONFLICT,
        InstanceRegistryError::Full { .. } => StatusCode::INSUFFICIENT_STORAGE,
        _ => StatusCode::NOT_FOUND,
    };
    if status != StatusCode::NOT_FOUND {
        tracing::debug!(error = %e, "registry request refused");
    }
    text(status, e.to_string())
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.to_ascii_lowercase().contains("json"))
    })
}

/// A document in the format the client asked for.
fn document(headers: &HeaderMap, write: impl FnOnce(Format) -> String) -> Response {
    let (body, content_type) = if wants_json(headers) {
        (write(Format::Json), "application/json")
    } else {
        (write(Format::Xml), "application/xml")
    };
    let mut response = Response::new(Body::from(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

async fn all(State(r): Shared, headers: HeaderMap) -> Response {
    let apps = r.applications();
    document(&headers, |f| wire::applications_document(&apps, f))
}

async fn delta(State(r): Shared, headers: HeaderMap) -> Response {
    if r.config().disable_delta {
        return text(
            StatusCode::FORBIDDEN,
            "deltas are disabled on this registry",
        );
    }
    let delta = r.delta(now_ms());
    document(&headers, |f| wire::applications_document(&delta, f))
}

async fn app(State(r): Shared, Path(app): Path<String>, headers: HeaderMap) -> Response {
    match r.application(&app) {
        Some(a) => document(&headers, |f| wire::application_document(&a, f)),
        None => text(StatusCode::NOT_FOUND, format!("no application {app:?}")),
    }
}

async fn instance(
    State(r): Shared,
    Path((app, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match r.instance(Some(&app), &id) {
        Some(i) => document(&headers, |f| wire::instance_document(&i, f)),
        None => text(
            StatusCode::NOT_FOUND,
            format!("no instance {id:?} of {app:?}"),
        ),
    }
}

async fn instance_by_id(State(r): Shared, Path(id): Path<String>, headers: HeaderMap) -> Response {
    match r.instance(None, &id) {
        Some(i) => document(&headers, |f| wire::instance_document(&i, f)),
        None => text(StatusCode::NOT_FOUND, format!("no instance {id:?}")),
    }
}

async fn vip(State(r): Shared, Path(vip): Path<String>, headers: HeaderMap) -> Response {
    vips(&r, &vip, false, &headers)
}

async fn svip(State(r): Shared, Path(vip): Path<String>, headers: HeaderMap) -> Response {
    vips(&r, &vip, true, &headers)
}

fn vips(r: &InstanceRegistry, vip: &str, secure: bool, headers: &HeaderMap) -> Response {
    let apps = r.by_vip(vip, secure);
    if apps.is_empty() {
        return text(
            StatusCode::NOT_FOUND,
            format!("no instance has VIP address {vip:?}"),
        );
    }
    document(headers, |f| wire::applications_document(&apps, f))
}

/// Checks what Eureka's `ApplicationResource.addInstance` checks, on the document as sent.
fn validate_registration(doc: &Value, app: &str) -> Result<(), String> {
    let Some(instance) = doc.get("instance") else {
        return Err("the document has no \"instance\" root".to_owned());
    };
    let present = |v: Option<&Value>| match v {
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Null) | None => false,
        Some(_) => true,
    };
    for field in ["hostName", "ipAddr", "app", "dataCenterInfo"] {
        if !present(instance.get(field)) {
            return Err(format!("instance.{field}: required and missing"));
        }
    }
    if !present(instance.get("dataCenterInfo").and_then(|d| d.get("name"))) {
        return Err("instance.dataCenterInfo.name: required and missing".to_owned());
    }
    for field in ["status", "overriddenStatus", "overriddenstatus"] {
        if let Some(Value::String(s)) = instance.get(field)
            && Status::parse_strict(s).is_none()
        {
            return Err(format!(
                "instance.{field}: {s:?} is not UP, DOWN, STARTING, OUT_OF_SERVICE or UNKNOWN"
            ));
        }
    }
    check_text(instance, &mut "instance".to_owned())?;
    let body_app = instance.get("app").and_then(Value::as_str).unwrap_or("");
    if !body_app.eq_ignore_ascii_case(app) {
        return Err(format!(
            "instance.app: {body_app:?} does not match the application in the path, {app:?}"
        ));
    }
    Ok(())
}

/// Refuses a control character, or one XML 1.0 cannot carry, anywhere in a document: in every
/// string and every member name. One such character in one registration would otherwise make
/// the XML registry unreadable for every client.
fn check_text(v: &Value, path: &mut String) -> Result<(), String> {
    let bad = |s: &str| s.chars().position(|c| c.is_control() || !wire::xml_char(c));
    match v {
        Value::String(s) => match bad(s) {
            Some(at) => Err(format!(
                "{path}: a control character (or one XML cannot carry) at character {at}"
            )),
            None => Ok(()),
        },
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                check_text(item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Object(members) => {
            for (name, member) in members {
                let len = path.len();
                path.push('.');
                // A name is shown escaped: it is the offending text itself.
                if bad(name).is_some() {
                    return Err(format!(
                        "{path}{name:?}: a control character (or one XML cannot carry) in a member name"
                    ));
                }
                path.push_str(name);
                check_text(member, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

async fn register(State(r): Shared, Path(app): Path<String>, body: Body) -> Response {
    let bytes = match breakwater_server::read_body(body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(refused) => return refused.into_response(),
    };
    match parse_registration(&bytes, &app) {
        Ok(instance) => {
            let (app, id) = (instance.app.clone(), instance.id().to_owned());
            match r.register(instance, now_ms()) {
                Ok(()) => {
                    tracing::debug!(%app, %id, "registered");
                    StatusCode::NO_CONTENT.into_response()
                }
                Err(e) => refused(e),
            }
        }
        Err(message) => bad_request(message),
    }
}

fn parse_registration(bytes: &Bytes, app: &str) -> Result<wire::Instance, String> {
    let doc = wire::parse_document(bytes).map_err(|e: WireError| e.to_string())?;
    validate_registration(&doc, app)?;
    let instance =
        wire::instance_from_value(&doc["instance"], "instance").map_err(|e| e.to_string())?;
    Ok(instance)
}

fn timestamp(query: &HashMap<String, String>) -> Result<Option<i64>, String> {
    match query.get("lastDirtyTimestamp") {
        None => Ok(None),
        Some(s) => s.trim().parse().map(Some).map_err(|_| {
            format!("query parameter lastDirtyTimestamp: {s:?} is not a whole number")
        }),
    }
}

fn status_param(query: &HashMap<String, String>, name: &str) -> Result<Option<Status>, String> {
    match query.get(name) {
        None => Ok(None),
        Some(s) => Status::parse_strict(s).map(Some).ok_or_else(|| {
            format!(
                "query parameter {name}: {s:?} is not UP, DOWN, STARTING, OUT_OF_SERVICE or UNKNOWN"
            )
        }),
    }
}

async fn renew(
    State(r): Shared,
    Path((app, id)): Path<(String, String)>,
    Query(q): Params,
) -> Response {
    let dirty = match timestamp(&q) {
        Ok(t) => t,
        Err(message) => return bad_request(message),
    };
    for name in ["status", "overriddenstatus"] {
        if let Err(message) = status_param(&q, name) {
            return bad_request(message);
        }
    }
    match r.renew(&app, &id, dirty, now_ms()) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => refused(e),
    }
}

async fn cancel(State(r): Shared, Path((app, id)): Path<(String, String)>) -> Response {
    match r.cancel(&app, &id, now_ms()) {
        Ok(()) => {
            tracing::debug!(%app, %id, "cancelled");
            StatusCode::OK.into_response()
        }
        Err(e) => refused(e),
    }
}

async fn set_status(
    State(r): Shared,
    Path((app, id)): Path<(String, String)>,
    Query(q): Params,
) -> Response {
    let status = match status_param(&q, "value") {
        Ok(Some(status)) => status,
        Ok(None) => return bad_request("query parameter value: required and missing"),
        Err(message) => return bad_request(message),
    };
    let dirty = match timestamp(&q) {
        Ok(t) => t,
        Err(message) => return bad_request(message),
    };
    match r.set_status_override(&app, &id, status, dirty, now_ms()) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => refused(e),
    }
}

async fn remove_status(
    State(r): Shared,
    Path((app, id)): Path<(String, String)>,
    Query(q): Params,
) -> Response {
    let status = match status_param(&q, "value") {
        Ok(status) => status,
        Err(message) => return bad_request(message),
    };
    let dirty = match timestamp(&q) {
        Ok(t) => t,
        Err(message) => return bad_request(message),
    };
    match r.remove_status_override(&app, &id, status, dirty, now_ms()) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => refused(e),
    }
}

async fn metadata(
    State(r): Shared,
    Path((app, id)): Path<(String, String)>,
    Query(q): Params,
) -> Response {
    if q.is_empty() {
        return bad_request("no metadata given: PUT .../metadata?key=value[&key2=value2]");
    }
    for (key, value) in &q {
        let entry = Value::Object(
            [(key.clone(), Value::String(value.clone()))]
                .into_iter()
                .collect(),
        );
        if let Err(message) = check_text(&entry, &mut "metadata".to_owned()) {
            return bad_request(message);
        }
    }
    match r.update_metadata(&app, &id, q, now_ms()) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => refused(e),
    }
}
