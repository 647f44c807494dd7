//! The health document every server of ours answers with: the IETF draft "Health Check
//! Response Format for HTTP APIs" (draft-inadarei-api-health-check-06), media type
//! `application/health+json`. `pass` and `warn` answer 200, `fail` answers 503; the status of
//! the whole is the worst of its checks unless set otherwise.
//!
//! ```
//! use breakwater_server::health::{Check, Health, HealthStatus};
//!
//! let health = Health::new()
//!     .service_id("payments")
//!     .check("eureka:registration", Check::new(HealthStatus::Pass).observed_value("UP"))
//!     .check(
//!         "breaker:ledger",
//!         Check::new(HealthStatus::Warn).component_type("component").output("open"),
//!     );
//! assert_eq!(health.status(), HealthStatus::Warn);
//! assert_eq!(health.http_status(), http::StatusCode::OK);
//! let json: serde_json::Value = serde_json::from_slice(&health.to_json()).unwrap();
//! assert_eq!(json["status"], "warn");
//! assert_eq!(json["checks"]["breaker:ledger"][0]["output"], "open");
//! ```

use std::collections::BTreeMap;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

/// The media type of health documents.
pub const HEALTH_JSON: &str = "application/health+json";

/// A health status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Healthy.
    Pass,
    /// Healthy, with a concern (a dependency down that the service works around).
    Warn,
    /// Unhealthy.
    Fail,
}

/// One measurement of one component, an entry of `checks["component:measurement"]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    #[serde(skip_serializing_if = "Option::is_none")]
    component_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    component_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    observed_value: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    observed_unit: Option<String>,
    status: HealthStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<String>,
}

impl Check {
    /// A check with this status.
    pub fn new(status: HealthStatus) -> Self {
        Check {
            component_id: None,
            component_type: None,
            observed_value: None,
            observed_unit: None,
            status,
            time: None,
            output: None,
        }
    }

    /// The status.
    pub fn status(&self) -> HealthStatus {
        self.status
    }

    /// `componentId`: which instance of the component.
    pub fn component_id(mut self, id: impl Into<String>) -> Self {
        self.component_id = Some(id.into());
        self
    }

    /// `componentType`: `component`, `datastore`, `system`, or a URI.
    pub fn component_type(mut self, kind: impl Into<String>) -> Self {
        self.component_type = Some(kind.into());
        self
    }

    /// `observedValue`: what was measured.
    pub fn observed_value(mut self, value: impl Into<serde_json::Value>) -> Self {
        self.observed_value = Some(value.into());
        self
    }

    /// `observedUnit`: its unit (`s`, `ms`, `percent`, ...).
    pub fn observed_unit(mut self, unit: impl Into<String>) -> Self {
        self.observed_unit = Some(unit.into());
        self
    }

    /// `time`: when it was measured, RFC 3339.
    pub fn time(mut self, time: impl Into<String>) -> Self {
        self.time = Some(time.into());
        self
    }

    /// `output`: what went wrong (for `warn` and `fail`).
    pub fn output(mut self, output: impl Into<String>) -> Self {
        self.output = Some(output.into());
        self
    }
}

/// A health document.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    status: HealthStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    release_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    checks: BTreeMap<String, Vec<Check>>,
    #[serde(skip)]
    forced: Option<HealthStatus>,
}

impl Default for Health {
    fn default() -> Self {
        Health::new()
    }
}

impl Health {
    /// `pass`, with no checks.
    pub fn new() -> Self {
        Health {
            status: HealthStatus::Pass,
            version: None,
            release_id: None,
            service_id: None,
            description: None,
            notes: Vec::new(),
            output: None,
            checks: BTreeMap::new(),
            forced: None,
        }
    }

    /// The status: the one set with [`Health::force_status`], else the worst check's.
    pub fn status(&self) -> HealthStatus {
        self.status
    }

    /// 200 for `pass` and `warn`, 503 for `fail`.
    pub fn http_status(&self) -> StatusCode {
        match self.status {
            HealthStatus::Pass | HealthStatus::Warn => StatusCode::OK,
            HealthStatus::Fail => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Adds a check under `key` (`"component:measurement"`, e.g. `"breaker:payments"`).
    pub fn check(mut self, key: impl Into<String>, check: Check) -> Self {
        self.checks.entry(key.into()).or_default().push(check);
        self.update();
        self
    }

    /// Sets the status whatever the checks say (readiness during shutdown, say).
    pub fn force_status(mut self, status: HealthStatus) -> Self {
        self.forced = Some(status);
        self.update();
        self
    }

    fn update(&mut self) {
        let worst = self
            .checks
            .values()
            .flatten()
            .map(Check::status)
            .max()
            .unwrap_or(HealthStatus::Pass);
        self.status = self.forced.unwrap_or(worst);
    }

    /// `version`: the service's public version.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// `releaseId`: its release.
    pub fn release_id(mut self, release: impl Into<String>) -> Self {
        self.release_id = Some(release.into());
        self
    }

    /// `serviceId`: which service (or instance) answers.
    pub fn service_id(mut self, id: impl Into<String>) -> Self {
        self.service_id = Some(id.into());
        self
    }

    /// `description`.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    /// A line of `notes`.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// `output`: why the whole is `warn` or `fail`.
    pub fn output(mut self, output: impl Into<String>) -> Self {
        self.output = Some(output.into());
        self
    }

    /// The document as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Strings, numbers and maps with string keys: serialising cannot fail.
        serde_json::to_vec(self).unwrap_or_else(|_| br#"{"status":"fail"}"#.to_vec())
    }
}

impl IntoResponse for Health {
    fn into_response(self) -> Response {
        let mut response = (self.http_status(), self.to_json()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(HEALTH_JSON));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_is_the_worst_check_unless_forced() {
        let health = Health::new();
        assert_eq!(health.status(), HealthStatus::Pass);
        assert_eq!(health.to_json(), br#"{"status":"pass"}"#);
        let health = health
            .check("a:b", Check::new(HealthStatus::Warn))
            .check("a:b", Check::new(HealthStatus::Pass));
        assert_eq!(health.status(), HealthStatus::Warn);
        let failed = health.clone().check("c:d", Check::new(HealthStatus::Fail));
        assert_eq!(failed.http_status(), StatusCode::SERVICE_UNAVAILABLE);
        let forced = health.force_status(HealthStatus::Fail);
        assert_eq!(forced.http_status(), StatusCode::SERVICE_UNAVAILABLE);
        let json: serde_json::Value = serde_json::from_slice(&forced.to_json()).unwrap();
        assert_eq!(json["checks"]["a:b"].as_array().unwrap().len(), 2);
        assert!(json.get("forced").is_none());
    }

    #[test]
    fn hostile_text_stays_inside_its_strings() {
        let nasty = "\"},\"status\":\"pass\u{0}\n</script>";
        let health = Health::new()
            .output(nasty)
            .check(nasty, Check::new(HealthStatus::Fail).output(nasty));
        let json: serde_json::Value = serde_json::from_slice(&health.to_json()).unwrap();
        assert_eq!(json["status"], "fail");
        assert_eq!(json["output"], nasty);
        assert_eq!(json["checks"][nasty][0]["output"], nasty);
    }

    #[tokio::test]
    async fn answers_are_health_json_and_not_cached() {
        let response = Health::new()
            .check("x:y", Check::new(HealthStatus::Fail))
            .into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::CONTENT_TYPE], HEALTH_JSON);
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    }
}
