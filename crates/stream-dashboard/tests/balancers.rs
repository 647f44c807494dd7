//! Balancers' instances on the stream: an extension event, only for clients that ask, carried
//! through a dashboard that follows the instance (as one in another process does) with the
//! instance it came from, and never mixed with the Hystrix commands.
#![cfg(feature = "balance")]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use breakwater_stream_dashboard::Dashboard;
use common::fleet::{FAILING, payments_with_one_ejected};
use common::{Server, events, get};
use http::StatusCode;
use serde_json::{Map, Value};

const WITHIN: Duration = Duration::from_secs(10);

/// Reads `url` until a frame holds an event of `kind`, or for 1.5 s (three frames) when
/// `expect` is false; returns the events read.
async fn read(url: &str, kind: &str, expect: bool) -> Vec<Map<String, Value>> {
    let mut open = get(url, &[]).await;
    assert_eq!(open.status, StatusCode::OK, "{url}");
    let needle = format!("\"type\":\"{kind}\"");
    let text = if expect {
        open.read_until(WITHIN, |t| t.contains(&needle) && t.ends_with("\n\n"))
            .await
    } else {
        open.read_for(Duration::from_millis(1500)).await
    };
    events(&text)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn check_payments(event: &Map<String, Value>) {
    assert_eq!(event["name"], "payments");
    let instances = event["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 3, "{event:?}");
    // Ejected first.
    let first = &instances[0];
    assert_eq!(first["id"], FAILING);
    assert_eq!(first["state"], "ejected");
    assert!(
        first["ejectedUntil"].as_u64().unwrap() > now_ms(),
        "{first}"
    );
    assert!(first["ejections"].as_u64().unwrap() >= 1);
    assert_eq!(first["zone"], "zone-1");
    for other in &instances[1..] {
        assert_eq!(other["state"], "active", "{other}");
        assert!(other["ejectedUntil"].is_null());
        assert!(other["share"].as_f64().unwrap() > 0.0);
        assert!(other["latencyMs"].as_f64().unwrap() >= 0.0);
        assert_eq!(other["inFlight"], 0);
        assert!(
            other["authority"]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:910")
        );
    }
    assert_eq!(event["panic"], false);
    assert_eq!(event["instancesOmitted"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balancer_instances_are_streamed_only_when_asked_and_carried_across_dashboards() {
    let (_balancer, _list) = payments_with_one_ejected().await;
    let instance = common::fleet::instance_dashboard().await;

    // What the stock dashboard and Turbine read: the command only, no instance breakers.
    let plain = read(
        &instance.url("/hystrix.stream?delay=100"),
        "HystrixCommand",
        true,
    )
    .await;
    assert!(
        plain.iter().all(|e| e["type"] == "HystrixCommand"),
        "{plain:?}"
    );
    assert!(
        plain.iter().all(|e| e["name"] == "charge-card"),
        "{plain:?}"
    );
    let quiet = read(&instance.url("/hystrix.stream?delay=100"), "", false).await;
    assert!(quiet.iter().all(|e| e["type"] != "BreakwaterBalancer"));

    // Asked for: one event per balancer, beside the commands.
    for query in ["extensions=all", "extensions=BreakwaterBalancer"] {
        let url = instance.url(&format!("/hystrix.stream?delay=100&{query}"));
        let events = read(&url, "BreakwaterBalancer", true).await;
        let payments = events
            .iter()
            .rfind(|e| e["type"] == "BreakwaterBalancer")
            .unwrap();
        check_payments(payments);
        assert!(events.iter().any(|e| e["name"] == "charge-card"));
        assert!(
            !events.iter().any(|e| e["type"] == "HystrixCommand"
                && e["name"].as_str().unwrap().starts_with("payments")),
            "an instance breaker showed as a command: {events:?}"
        );
    }

    // Asking for what is not there says which parameter and what is known.
    let unknown = get(&instance.url("/hystrix.stream?extensions=Nope"), &[]).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    let message = unknown.text().await;
    assert!(
        message.contains("`extensions`")
            && message.contains("Nope")
            && message.contains("BreakwaterBalancer"),
        "{message}"
    );
    let hostile = get(
        &instance.url("/hystrix.stream?extensions=%3Cscript%3E"),
        &[],
    )
    .await;
    assert_eq!(hostile.status, StatusCode::BAD_REQUEST);

    // A dashboard that follows the instance (another process, in production) passes the
    // events on unmerged, naming their source, when asked, and only then.
    let follower = Server::start(
        Dashboard::new()
            .instances([instance.url("/hystrix.stream").parse().unwrap()])
            .router(),
    )
    .await;
    let label = instance
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let merged = read(
        &follower.url("/turbine.stream?delay=100&extensions=all"),
        "BreakwaterBalancer",
        true,
    )
    .await;
    let carried = merged
        .iter()
        .rfind(|e| e["type"] == "BreakwaterBalancer")
        .unwrap();
    check_payments(carried);
    assert_eq!(carried["source"], label.as_str());
    assert!(
        carried.get("reportingHosts").is_none(),
        "extension events are not merged: {carried:?}"
    );
    let one = read(
        &follower.url("/turbine.stream?instance=0&delay=100&extensions=BreakwaterBalancer"),
        "BreakwaterBalancer",
        true,
    )
    .await;
    check_payments(
        one.iter()
            .rfind(|e| e["type"] == "BreakwaterBalancer")
            .unwrap(),
    );
    let stock = read(
        &follower.url("/turbine.stream?delay=100"),
        "HystrixCommand",
        true,
    )
    .await;
    assert!(
        stock.iter().all(|e| e["type"] == "HystrixCommand"),
        "{stock:?}"
    );
    let stock_later = read(&follower.url("/turbine.stream?delay=100"), "", false).await;
    assert!(
        stock_later
            .iter()
            .all(|e| e["type"] != "BreakwaterBalancer")
    );
}
