//! `DnsDiscover` against a real DNS server on 127.0.0.1 (PyPI dnslib, `tests/peers/dns_server.py`,
//! answering from a zone file the test rewrites): A and AAAA records become instances, a
//! change is followed after its TTL, a failing or vanished server keeps the last list, a
//! name that does not exist has no instances, and a huge answer is bounded.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use breakwater_balance::Endpoint;
use breakwater_balance::dns::{DnsConfig, DnsDiscover, DnsResolver};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

struct DnsServer {
    addr: SocketAddr,
    zone: PathBuf,
    child: Child,
    _dir: TempDir,
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl DnsServer {
    async fn start(zone: &serde_json::Value) -> DnsServer {
        let dir = std::env::temp_dir().join(format!(
            "breakwater-dns-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("zone.json");
        std::fs::write(&path, zone.to_string()).unwrap();
        let mut child = Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/peers/dns_server.py"
            ))
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
        let port: u16 = port.trim().parse().unwrap();
        DnsServer {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            zone: path,
            child,
            _dir: TempDir(dir),
        }
    }

    fn set_zone(&self, text: &str) {
        // Written whole, then renamed: the server never reads half a file.
        let next = self.zone.with_extension("next");
        std::fs::write(&next, text).unwrap();
        std::fs::rename(&next, &self.zone).unwrap();
    }
}

fn zone(name: &str, a: &[&str], aaaa: &[&str]) -> serde_json::Value {
    serde_json::json!({ name: { "A": a, "AAAA": aaaa, "ttl": 1 } })
}

fn ids(list: &watch::Receiver<Vec<Endpoint>>) -> Vec<String> {
    list.borrow().iter().map(|e| e.id.clone()).collect()
}

/// Waits (at most 10 s) until the list's ids are `want`.
async fn until(list: &mut watch::Receiver<Vec<Endpoint>>, want: &[&str]) {
    let reached = tokio::time::timeout(
        Duration::from_secs(10),
        list.wait_for(|l| l.iter().map(|e| e.id.as_str()).eq(want.iter().copied())),
    )
    .await
    .is_ok();
    assert!(reached, "wanted {want:?}, have {:?}", ids(list));
}

fn fast(name: &str) -> DnsConfig {
    DnsConfig {
        min_refresh: Duration::from_millis(200),
        max_refresh: Duration::from_secs(2),
        ..DnsConfig::new(name, 8080)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_become_instances_and_changes_are_followed() {
    let mut server = DnsServer::start(&zone("payments.test.", &["127.0.0.1"], &["::1"])).await;
    let resolver = DnsResolver::with_name_servers(&[server.addr]);
    let mut list = DnsDiscover::spawn(&resolver, fast("payments.test."));
    until(&mut list, &["127.0.0.1:8080", "[::1]:8080"]).await;
    assert_eq!(list.borrow()[1].authority(), "[::1]:8080");

    // The AAAA record goes: followed after its TTL.
    server.set_zone(&zone("payments.test.", &["127.0.0.1"], &[]).to_string());
    until(&mut list, &["127.0.0.1:8080"]).await;

    // The server answers SERVFAIL (it cannot read its zone), then is gone: the last list stays.
    server.set_zone("{ not json");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(ids(&list), ["127.0.0.1:8080"]);
    server.child.kill().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(ids(&list), ["127.0.0.1:8080"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_name_has_no_instances_and_a_huge_answer_is_bounded() {
    let many: Vec<String> = (0..300)
        .map(|i| format!("127.0.{}.{}", i / 250, 1 + i % 250))
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let server = DnsServer::start(&zone("many.test.", &many, &[])).await;
    let resolver = DnsResolver::with_name_servers(&[server.addr]);

    let unknown = DnsDiscover::spawn(&resolver, fast("nowhere.test."));
    let mut bounded = DnsDiscover::spawn(
        &resolver,
        DnsConfig {
            max_records: 100,
            ..fast("many.test.")
        },
    );
    // 300 records do not fit a UDP answer: the resolver asks again over TCP.
    tokio::time::timeout(Duration::from_secs(10), bounded.wait_for(|l| !l.is_empty()))
        .await
        .expect("the big answer arrives")
        .unwrap();
    assert_eq!(bounded.borrow().len(), 100);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(unknown.borrow().is_empty());
}
