//! Whatever the registry accepts, every reader can read back: registrations with arbitrary
//! text (control characters, characters XML cannot carry, markup) go through the REST API; the
//! ones it accepts must come out of `GET /eureka/apps` as JSON and XML that our reader and a
//! standard XML parser (roxmltree) read, with the instance in them. The ones it refuses get a
//! 400 that names the field.

use std::sync::Arc;

use axum::body::Body;
use breakwater_discovery::registry::{InstanceRegistry, InstanceRegistryConfig};
use breakwater_discovery::wire;
use http::Request;
use http_body_util::BodyExt;
use proptest::prelude::*;
use tower::ServiceExt;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9.-]{1,12}",
        any::<String>().prop_filter("not blank", |s| !s.trim().is_empty()),
        "[a-z]{1,4}[\\x00-\\x1f\\x7f\\u{fffe}\\u{ffff}<>&\"'][a-z]{0,4}",
    ]
}

async fn call(router: &axum::Router, request: Request<Body>) -> (u16, String) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn accepted_text_reads_back_from_json_and_xml(
        host in text(),
        vip in text(),
        meta_key in "[a-zA-Z][a-zA-Z0-9_.-]{0,8}",
        meta_value in text(),
        id in text(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let registry = Arc::new(InstanceRegistry::new(InstanceRegistryConfig::default()));
            let router = breakwater_discovery::server::router(registry.clone());
            let doc = serde_json::json!({"instance": {
                "instanceId": id, "hostName": host, "app": "ORDERS", "ipAddr": "10.0.0.1",
                "vipAddress": vip, "status": "UP", "port": {"$": 8080, "@enabled": "true"},
                "dataCenterInfo": {"@class": wire::MY_OWN_CLASS, "name": "MyOwn"},
                "metadata": {meta_key.clone(): meta_value},
            }});
            let (status, body) = call(&router, Request::post("/eureka/apps/ORDERS")
                .header("content-type", "application/json")
                .body(Body::from(doc.to_string())).unwrap()).await;
            let bad = |s: &str| s.chars().any(|c| c.is_control() || !wire::xml_char(c));
            if [&host, &vip, &meta_value, &id].iter().any(|s| bad(s)) {
                prop_assert_eq!(status, 400, "{}", body);
                prop_assert!(body.contains("a control character"), "{}", body);
                prop_assert!(registry.applications().is_empty());
                return Ok(());
            }
            prop_assert_eq!(status, 204, "{}", body);
            for accept in ["application/json", "application/xml"] {
                let (status, body) = call(&router, Request::get("/eureka/apps")
                    .header("accept", accept).body(Body::empty()).unwrap()).await;
                prop_assert_eq!(status, 200);
                let apps = wire::read_applications(body.as_bytes());
                prop_assert!(apps.is_ok(), "{accept}: {:?}\n{}", apps, body);
                let apps = apps.unwrap();
                let instance = apps.instances().next();
                prop_assert!(instance.is_some());
                prop_assert_eq!(&instance.unwrap().host_name, &host);
                if accept == "application/xml" {
                    let parsed = roxmltree::Document::parse(&body);
                    prop_assert!(parsed.is_ok(), "{:?}\n{}", parsed.err(), body);
                }
            }
            Ok(())
        })?;
    }
}
