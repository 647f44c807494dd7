//! `service://` over DNS: a name's A and AAAA records from a real DNS server on 127.0.0.1
//! (PyPI dnslib, the balancer's `tests/peers/dns_server.py`) are the instances, chosen by
//! configuration alone; a record removed stops getting calls; a name that does not resolve
//! is a typed error naming the service; a bad `dns:` setting is refused with what is wrong.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use breakwater_circuit_breaker::CircuitBreakerRegistry;
use breakwater_client::{Client, ErrorKind};
use common::{Behaviour, Server};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

struct DnsServer {
    addr: SocketAddr,
    zone: PathBuf,
    _child: Child,
}

impl DnsServer {
    async fn start(zone: &str) -> DnsServer {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "breakwater-client-dns-{}-{}.json",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::write(&path, zone).unwrap();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../balance/tests/peers/dns_server.py"
        );
        let mut child = Command::new("python3")
            .arg(script)
            .arg(&path)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the DNS server starts within 20 s (is dnslib installed?)")
            .unwrap()
            .expect("the DNS server prints its port");
        DnsServer {
            addr: SocketAddr::from(([127, 0, 0, 1], port.trim().parse().unwrap())),
            zone: path,
            _child: child,
        }
    }

    fn set_zone(&self, text: &str) {
        let next = self.zone.with_extension("next");
        std::fs::write(&next, text).unwrap();
        std::fs::rename(&next, &self.zone).unwrap();
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.zone);
    }
}

/// Echo servers on 127.0.0.1 and [::1] with the same port (a DNS source has one port).
async fn v4_and_v6() -> (Server, Server) {
    for _ in 0..20 {
        let v4 = Server::start(Behaviour::Echo).await;
        let v6_addr = SocketAddr::new("::1".parse().unwrap(), v4.addr.port());
        if let Some(v6) = Server::start_on(v6_addr, Behaviour::Echo).await {
            return (v4, v6);
        }
    }
    panic!("no port free on both 127.0.0.1 and [::1]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_and_aaaa_records_are_the_instances() {
    let (v4, v6) = v4_and_v6().await;
    let port = v4.addr.port();
    let zone = |aaaa: &str| {
        format!(r#"{{"orders.test.": {{"A": ["127.0.0.1"], "AAAA": [{aaaa}], "ttl": 1}}}}"#)
    };
    let dns = DnsServer::start(&zone("\"::1\"")).await;
    let client = Client::builder()
        .read_env(false)
        .breaker_registry(CircuitBreakerRegistry::new())
        .dns_servers([dns.addr])
        .instances("orders", [format!("dns:orders.test.:{port}")])
        .unwrap()
        .instances("ghost", ["dns:nowhere.test.:80"])
        .unwrap()
        .build()
        .unwrap();
    // Concurrent calls, so both instances carry some (p2c counts in-flight calls).
    for round in 0..20 {
        let calls = (0..8).map(|i| client.get(format!("service://orders/{round}/{i}")));
        for result in client.fan_out(calls, 8, Duration::from_secs(5)).await {
            assert_eq!(result.unwrap().status(), 200);
        }
        if v4.hits() > 0 && v6.hits() > 0 {
            break;
        }
    }
    assert!(
        v4.hits() > 0 && v6.hits() > 0,
        "{} {}",
        v4.hits(),
        v6.hits()
    );
    let ids: Vec<String> = client
        .instances("orders")
        .unwrap()
        .instances
        .iter()
        .map(|i| i.id.clone())
        .collect();
    assert_eq!(ids, [format!("127.0.0.1:{port}"), format!("[::1]:{port}")]);

    // The AAAA record goes: after its TTL, [::1] gets no more calls.
    dns.set_zone(&zone(""));
    let gone = tokio::time::timeout(Duration::from_secs(10), async {
        while client.instances("orders").unwrap().instances.len() != 1 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "the removed record's instance left");
    let before = v6.hits();
    for i in 0..10 {
        let response = client
            .get(format!("service://orders/after/{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(v6.hits(), before);

    // A name that does not resolve: the balancer's bounded wait, then an error naming it.
    let error = client.get("service://ghost/").send().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NoInstances, "{error}");
    assert!(error.to_string().contains("service://ghost"), "{error}");
}

#[test]
fn bad_dns_settings_say_what_is_wrong() {
    for (items, says) in [
        (vec!["dns:orders.test"], "no port"),
        (vec!["dns:orders test:80"], "not a DNS name"),
        (vec!["dns:orders.test:99999"], "below 65536"),
        (vec!["dns:a.test:80", "dns:b.test:80"], "one name"),
        (vec!["127.0.0.1:80", "dns:b.test:80"], "dns: source alone"),
    ] {
        let Err(error) = Client::builder()
            .read_env(false)
            .instances("orders", &items)
        else {
            panic!("{items:?} was taken");
        };
        let text = error.to_string();
        assert!(
            text.contains("service://orders") && text.contains(says),
            "{items:?}: {text}"
        );
    }
    let client = Client::builder().read_env(false).build().unwrap();
    let error = client
        .set_instances("orders", ["dns:a.test:80"])
        .unwrap_err();
    assert!(
        error.to_string().contains("when the client is built"),
        "{error}"
    );
}
