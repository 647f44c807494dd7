//! The embedded registry's REST API over real sockets: both prefixes, JSON or XML by
//! `Accept`, Eureka's status codes, and bad input refused with a message.

use std::sync::Arc;

use breakwater_discovery::registry::{InstanceRegistry, InstanceRegistryConfig};
use breakwater_discovery::wire::{self, Status};

mod common;

use common::{instance_json, request};

async fn start() -> (Arc<InstanceRegistry>, String) {
    let registry = Arc::new(InstanceRegistry::new(InstanceRegistryConfig::default()));
    let router = breakwater_discovery::server::router(registry.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (registry, addr)
}

const JSON: &str = "Accept: application/json";

#[tokio::test]
async fn lifecycle_under_both_prefixes_in_json_and_xml() {
    let (registry, addr) = start().await;
    let a = request(
        &addr,
        "POST",
        "/eureka/v2/apps/orders",
        &["Content-Type: application/json"],
        instance_json("ORDERS", "i-1").as_bytes(),
    )
    .await;
    assert_eq!(a.status, 204, "{}", a.body);
    // XML registration under the other prefix.
    let mut other = wire::read_instance(instance_json("ORDERS", "i-2").as_bytes()).unwrap();
    other.status = Status::Starting;
    let xml = wire::instance_document(&other, wire::Format::Xml);
    let a = request(
        &addr,
        "POST",
        "/eureka/apps/ORDERS",
        &["Content-Type: application/xml"],
        xml.as_bytes(),
    )
    .await;
    assert_eq!(a.status, 204, "{}", a.body);

    let a = request(&addr, "GET", "/eureka/apps", &[JSON], b"").await;
    assert!(a.headers.contains("content-type: application/json"));
    let apps = wire::read_applications(a.body.as_bytes()).unwrap();
    assert_eq!(apps.apps_hashcode, "STARTING_1_UP_1_");
    let a = request(&addr, "GET", "/eureka/v2/apps/", &[], b"").await;
    assert!(
        a.headers.contains("content-type: application/xml"),
        "XML without a JSON Accept"
    );
    assert!(
        a.body
            .contains("<apps__hashcode>STARTING_1_UP_1_</apps__hashcode>")
    );
    assert_eq!(wire::read_applications(a.body.as_bytes()).unwrap(), apps);

    let gz = request(
        &addr,
        "GET",
        "/eureka/apps",
        &[JSON, "Accept-Encoding: gzip"],
        b"",
    )
    .await;
    assert!(
        gz.headers.contains("content-encoding: gzip"),
        "{}",
        gz.headers
    );

    for (path, status) in [
        ("/eureka/apps/orders", 200),
        ("/eureka/apps/ORDERS/i-1", 200),
        ("/eureka/instances/i-2", 200),
        ("/eureka/vips/orders-v2", 200),
        ("/eureka/svips/orders", 404),
        ("/eureka/apps/nothing", 404),
        ("/eureka/apps/ORDERS/nope", 404),
    ] {
        assert_eq!(
            request(&addr, "GET", path, &[JSON], b"").await.status,
            status,
            "{path}"
        );
    }

    // Renew, then an unknown lease and a client newer than us: 404, so it re-registers.
    let dirty = registry.instance(None, "i-1").unwrap().last_dirty_timestamp;
    let path = format!("/eureka/apps/ORDERS/i-1?status=UP&lastDirtyTimestamp={dirty}");
    assert_eq!(request(&addr, "PUT", &path, &[], b"").await.status, 200);
    assert_eq!(
        request(&addr, "PUT", "/eureka/apps/ORDERS/zzz?status=UP", &[], b"")
            .await
            .status,
        404
    );
    let path = format!(
        "/eureka/apps/ORDERS/i-1?status=UP&lastDirtyTimestamp={}",
        dirty + 1
    );
    assert_eq!(request(&addr, "PUT", &path, &[], b"").await.status, 404);

    // Override, metadata, delta.
    let a = request(
        &addr,
        "PUT",
        "/eureka/apps/ORDERS/i-1/status?value=OUT_OF_SERVICE",
        &[],
        b"",
    )
    .await;
    assert_eq!(a.status, 200);
    let a = request(
        &addr,
        "PUT",
        "/eureka/apps/ORDERS/i-1/metadata?weight=5&canary=true",
        &[],
        b"",
    )
    .await;
    assert_eq!(a.status, 200);
    let i = registry.instance(None, "i-1").unwrap();
    assert_eq!(
        (i.status, i.overridden_status),
        (Status::OutOfService, Status::OutOfService)
    );
    assert_eq!(i.metadata["weight"], "5");
    let delta = request(&addr, "GET", "/eureka/apps/delta", &[JSON], b"").await;
    let delta = wire::read_applications(delta.body.as_bytes()).unwrap();
    assert_eq!(delta.apps_hashcode, "OUT_OF_SERVICE_1_STARTING_1_");
    // Both instances, each once with its latest change (registration, override, metadata).
    assert_eq!(delta.len(), 2, "one delta entry per instance");
    assert!(
        delta
            .instances()
            .any(|i| i.id() == "i-1" && i.metadata.get("weight").is_some_and(|w| w == "5"))
    );
    let a = request(
        &addr,
        "DELETE",
        "/eureka/apps/ORDERS/i-1/status?value=UP",
        &[],
        b"",
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(registry.instance(None, "i-1").unwrap().status, Status::Up);

    assert_eq!(
        request(&addr, "DELETE", "/eureka/apps/ORDERS/i-1", &[], b"")
            .await
            .status,
        200
    );
    assert_eq!(
        request(&addr, "DELETE", "/eureka/apps/ORDERS/i-1", &[], b"")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn bad_registrations_and_parameters_get_400_with_the_reason() {
    let (registry, addr) = start().await;
    let mut missing_ip: serde_json::Value =
        serde_json::from_str(&instance_json("ORDERS", "i-1")).unwrap();
    missing_ip["instance"]
        .as_object_mut()
        .unwrap()
        .remove("ipAddr");
    let mut no_dc_name: serde_json::Value =
        serde_json::from_str(&instance_json("ORDERS", "i-1")).unwrap();
    no_dc_name["instance"]["dataCenterInfo"]
        .as_object_mut()
        .unwrap()
        .remove("name");
    let mut bad_port: serde_json::Value =
        serde_json::from_str(&instance_json("ORDERS", "i-1")).unwrap();
    bad_port["instance"]["port"]["$"] = "eighty".into();
    let edited = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut doc: serde_json::Value =
            serde_json::from_str(&instance_json("ORDERS", "i-1")).unwrap();
        edit(&mut doc["instance"]);
        doc.to_string().into_bytes()
    };
    let cases: Vec<(String, Vec<u8>, &str)> = vec![
        (
            "/eureka/apps/ORDERS".into(),
            edited(&|i| i["status"] = "SLEEPY".into()),
            "instance.status: \"SLEEPY\" is not UP, DOWN",
        ),
        (
            "/eureka/apps/ORDERS".into(),
            edited(&|i| i["overriddenStatus"] = "up-ish".into()),
            "instance.overriddenStatus: \"up-ish\" is not UP",
        ),
        (
            // One NUL in one application name made the XML registry unreadable for everyone.
            "/eureka/apps/ORDERS".into(),
            edited(&|i| i["hostName"] = "host\u{0}.example".into()),
            "instance.hostName: a control character",
        ),
        (
            "/eureka/apps/ORDERS".into(),
            edited(&|i| i["metadata"] = serde_json::json!({"zone": "a\u{1b}[31m"})),
            "instance.metadata.zone: a control character",
        ),
        (
            "/eureka/apps/ORDERS".into(),
            edited(&|i| i["metadata"] = serde_json::json!({"k\u{7}": "v"})),
            "a control character (or one XML cannot carry) in a member name",
        ),
        (
            "/eureka/apps/ORDERS".into(),
            edited(&|i| i["vipAddress"] = "orders\u{FFFE}".into()),
            "instance.vipAddress: a control character (or one XML cannot carry)",
        ),
        (
            "/eureka/apps/ORDERS".into(),
            b"{\"instance\":".to_vec(),
            "not JSON",
        ),
        (
            "/eureka/apps/ORDERS".into(),
            missing_ip.to_string().into_bytes(),
            "instance.ipAddr: required and missing",
        ),
        (
            "/eureka/apps/ORDERS".into(),
            no_dc_name.to_string().into_bytes(),
            "instance.dataCenterInfo.name: required",
        ),
        (
            "/eureka/apps/ORDERS".into(),
            bad_port.to_string().into_bytes(),
            "instance.port.$: \"eighty\" is not a whole number",
        ),
        (
            "/eureka/apps/PAYMENTS".into(),
            instance_json("ORDERS", "i-1").into_bytes(),
            "does not match the application in the path",
        ),
        (
            "/eureka/apps/ORDERS".into(),
            b"<instance><hostName>h</instance>".to_vec(),
            "XML",
        ),
        (
            // Under the body limit, but nested far deeper than any Eureka document.
            "/eureka/apps/ORDERS".into(),
            ["<a>".repeat(40_000), "</a>".repeat(40_000)]
                .concat()
                .into_bytes()
                .into_iter()
                .take(256 * 1024)
                .collect(),
            "elements nested deeper than 32",
        ),
    ];
    for (path, body, says) in cases {
        let a = request(&addr, "POST", &path, &[], &body).await;
        assert_eq!(a.status, 400, "{says}: {}", a.body);
        assert!(a.body.contains(says), "wanted {says:?}, got {:?}", a.body);
    }
    // Too large is 413, not 400 (a 300 KiB and a 10 MiB body).
    for body in [vec![b' '; 300 * 1024], vec![b' '; 10 << 20]] {
        let a = request(&addr, "POST", "/eureka/apps/ORDERS", &[], &body).await;
        assert_eq!(a.status, 413, "{}", a.body);
        assert!(a.body.contains("larger than 262144 bytes"), "{}", a.body);
    }
    assert!(registry.applications().is_empty(), "nothing was registered");
    // Metadata set later is held to the same rule, and the XML registry stays readable.
    let a = request(
        &addr,
        "POST",
        "/eureka/apps/ORDERS",
        &[],
        instance_json("ORDERS", "i-9").as_bytes(),
    )
    .await;
    assert_eq!(a.status, 204);
    let a = request(
        &addr,
        "PUT",
        "/eureka/apps/ORDERS/i-9/metadata?note=a%00b",
        &[],
        b"",
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(
        a.body.contains("metadata.note: a control character"),
        "{}",
        a.body
    );
    let xml = request(&addr, "GET", "/eureka/apps", &[], b"").await;
    assert!(
        wire::read_applications(xml.body.as_bytes()).is_ok(),
        "{}",
        xml.body
    );
    assert_eq!(
        request(&addr, "DELETE", "/eureka/apps/ORDERS/i-9", &[], b"")
            .await
            .status,
        200
    );

    let a = request(
        &addr,
        "POST",
        "/eureka/apps/ORDERS",
        &[],
        instance_json("ORDERS", "i-1").as_bytes(),
    )
    .await;
    assert_eq!(a.status, 204);
    for (path, says) in [
        (
            "/eureka/apps/ORDERS/i-1/status?value=SIDEWAYS",
            "\"SIDEWAYS\" is not UP",
        ),
        ("/eureka/apps/ORDERS/i-1/status", "value: required"),
        (
            "/eureka/apps/ORDERS/i-1?status=UP&lastDirtyTimestamp=soon",
            "\"soon\" is not a whole number",
        ),
        ("/eureka/apps/ORDERS/i-1/metadata", "no metadata given"),
    ] {
        let a = request(&addr, "PUT", path, &[], b"").await;
        assert_eq!(a.status, 400, "{path}");
        assert!(a.body.contains(says), "{path}: {:?}", a.body);
    }
    // The last good state keeps serving.
    assert_eq!(registry.instance(None, "i-1").unwrap().status, Status::Up);
}

#[tokio::test]
async fn forged_timestamps_and_leases_are_refused_and_conflicts_answered() {
    let (registry, addr) = start().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let registration = |ip: &str, dirty: i64, lease: u64| {
        let mut doc: serde_json::Value =
            serde_json::from_str(&instance_json("ORDERS", "i-1")).unwrap();
        doc["instance"]["ipAddr"] = ip.into();
        doc["instance"]["hostName"] = ip.into();
        doc["instance"]["lastDirtyTimestamp"] = dirty.to_string().into();
        doc["instance"]["leaseInfo"]["durationInSecs"] = lease.into();
        doc.to_string().into_bytes()
    };
    let post = |body: Vec<u8>| {
        let addr = addr.clone();
        async move { request(&addr, "POST", "/eureka/apps/ORDERS", &[], &body).await }
    };
    // The forged record of the report: a timestamp no later registration can beat, and a
    // lease that never expires.
    let a = post(registration("6.6.6.6", i64::MAX, 30)).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("lastDirtyTimestamp"), "{}", a.body);
    let a = post(registration("6.6.6.6", now, u64::from(u32::MAX))).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(
        a.body
            .contains("instance.leaseInfo.durationInSecs: 4294967295"),
        "{}",
        a.body
    );
    assert!(registry.applications().is_empty());

    // Within the clock skew a newer record wins, as in Eureka; the older one's owner is told.
    assert_eq!(post(registration("10.0.0.7", now, 30)).await.status, 204);
    assert_eq!(
        post(registration("6.6.6.6", now + 60_000, 30)).await.status,
        204
    );
    let a = post(registration("10.0.0.7", now + 1, 30)).await;
    assert_eq!(a.status, 409, "{}", a.body);
    assert!(
        a.body.contains("6.6.6.6") && a.body.contains("10.0.0.7"),
        "{}",
        a.body
    );
    // The same instance sending an older copy of itself is no conflict.
    assert_eq!(post(registration("6.6.6.6", now + 1, 30)).await.status, 204);

    for path in [
        format!(
            "/eureka/apps/ORDERS/i-1?status=UP&lastDirtyTimestamp={}",
            i64::MAX
        ),
        format!(
            "/eureka/apps/ORDERS/i-1/status?value=OUT_OF_SERVICE&lastDirtyTimestamp={}",
            i64::MAX
        ),
    ] {
        let a = request(&addr, "PUT", &path, &[], b"").await;
        assert_eq!(a.status, 400, "{path}: {}", a.body);
    }
    assert_ne!(
        registry.instance(None, "i-1").unwrap().last_dirty_timestamp,
        i64::MAX
    );
}

#[tokio::test]
async fn health_is_health_json_and_warns_in_self_preservation() {
    let (_registry, addr) = start().await;
    let a = request(&addr, "GET", "/health", &[], b"").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.headers.contains("content-type: application/health+json"),
        "{}",
        a.headers
    );
    let body: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(body["status"], "pass", "{body}");
    assert_eq!(body["checks"]["eureka:instances"][0]["observedValue"], 0);

    // One instance that has not renewed in the last full minute: below the threshold, so
    // self-preservation holds evictions back, and health says so (still 200).
    let a = request(
        &addr,
        "POST",
        "/eureka/v2/apps/orders",
        &["Content-Type: application/json"],
        instance_json("ORDERS", "i-1").as_bytes(),
    )
    .await;
    assert_eq!(a.status, 204, "{}", a.body);
    let a = request(&addr, "GET", "/health/", &[], b"").await;
    assert_eq!(a.status, 200, "{}", a.body);
    let body: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(body["status"], "warn", "{body}");
    let check = &body["checks"]["eureka:selfPreservation"][0];
    assert_eq!(check["status"], "warn");
    assert!(
        check["output"]
            .as_str()
            .unwrap()
            .contains("self-preservation")
    );
    assert_eq!(body["checks"]["eureka:instances"][0]["observedValue"], 1);
}

/// `promtool check metrics` on `text` (Debian's `prometheus`, installed by the README's test
/// command): its complaints, empty when it has none.
fn promtool(text: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs (Debian package prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        String::new()
    } else {
        said
    }
}

fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_pass_promtool_and_count_what_happened() {
    let (_registry, addr) = start().await;
    for id in ["i-1", "i-2"] {
        let a = request(
            &addr,
            "POST",
            "/eureka/v2/apps/orders",
            &["Content-Type: application/json"],
            instance_json("ORDERS", id).as_bytes(),
        )
        .await;
        assert_eq!(a.status, 204, "{}", a.body);
    }
    let a = request(
        &addr,
        "PUT",
        "/eureka/v2/apps/ORDERS/i-1?status=UP",
        &[],
        b"",
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a = request(&addr, "DELETE", "/eureka/v2/apps/ORDERS/i-2", &[], b"").await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a = request(
        &addr,
        "POST",
        "/eureka/v2/apps/orders",
        &["Content-Type: application/json"],
        b"{",
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);

    let a = request(&addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.headers
            .contains("content-type: text/plain; version=0.0.4"),
        "{}",
        a.headers
    );
    let text = &a.body;
    assert_eq!(promtool(text), "", "promtool's complaints about\n{text}");
    assert_eq!(
        sample(
            text,
            "breakwater_eureka_instances{application=\"ORDERS\",status=\"UP\"}"
        ),
        1.0
    );
    assert_eq!(sample(text, "breakwater_eureka_registrations_total"), 2.0);
    assert_eq!(sample(text, "breakwater_eureka_renewals_total"), 1.0);
    assert_eq!(sample(text, "breakwater_eureka_cancellations_total"), 1.0);
    assert_eq!(sample(text, "breakwater_eureka_evictions_total"), 0.0);
    assert!(sample(text, "breakwater_eureka_requests_refused_total") >= 1.0);
    assert!(sample(text, "breakwater_eureka_delta_queue_entries") >= 1.0);
    assert!(sample(text, "breakwater_eureka_delta_queue_bytes") > 0.0);
    assert_eq!(sample(text, "breakwater_eureka_renewals_last_minute"), 0.0);
    assert_eq!(sample(text, "breakwater_eureka_self_preservation"), 1.0);
}
