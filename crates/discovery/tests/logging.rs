//! Routine work does not flood the log: 1,000 registrations, renewals and cancellations
//! through the REST API write no INFO line each; the minute's summary says what happened.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use breakwater_discovery::registry::{InstanceRegistry, InstanceRegistryConfig};
use http::Request;
use tower::ServiceExt;

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_thousand_instances_write_no_info_line_each() {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let registry = Arc::new(InstanceRegistry::new(InstanceRegistryConfig::default()));
    let router = breakwater_discovery::server::router(registry.clone());
    let call = |method: &str, path: String, body: String| {
        let router = router.clone();
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        async move { router.oneshot(request).await.unwrap().status().as_u16() }
    };
    for n in 0..1_000 {
        let id = format!("i-{n}");
        let body = common::instance_json("ORDERS", &id);
        assert_eq!(call("POST", "/eureka/apps/ORDERS".into(), body).await, 204);
        let renew = format!("/eureka/apps/ORDERS/{id}?status=UP");
        assert_eq!(call("PUT", renew, String::new()).await, 200);
    }
    for n in 0..100 {
        let path = format!("/eureka/apps/ORDERS/i-{n}");
        assert_eq!(call("DELETE", path, String::new()).await, 200);
    }
    // Refused requests are counted, not logged one by one either.
    for _ in 0..100 {
        assert_eq!(
            call("POST", "/eureka/apps/ORDERS".into(), "{".into()).await,
            400
        );
    }
    let written = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    assert!(
        written.lines().count() < 5,
        "{} lines:\n{}",
        written.lines().count(),
        &written[..written.len().min(2_000)]
    );
    let activity = registry.take_activity();
    assert_eq!(
        (
            activity.registrations,
            activity.renewals,
            activity.cancellations
        ),
        (1_000, 1_000, 100)
    );
}
