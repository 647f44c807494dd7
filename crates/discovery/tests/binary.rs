//! The registry binary, run as a child process: the exposure rule, slow clients, and the
//! memory attack that blew it up: 150 metadata updates of 50 KB (refused now: metadata has a limit), then 150 updates that
//! fit (each replacing the last: the delta keeps one entry per instance). Resident memory is
//! read from `/proc/PID/status`; the delta's size from the answer.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{instance_json, request};

struct Registry {
    child: Child,
    addr: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start() -> Registry {
    start_with(&[]).await
}

async fn start_with(args: &[&str]) -> Registry {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_breakwater-eureka"))
        .args(["--bind", &addr])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the registry binary starts");
    let registry = Registry { child, addr };
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(&registry.addr)
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the registry binary never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    registry
}

#[cfg(target_os = "linux")]
fn resident_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib / 1024.0
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn metadata_updates_leave_memory_and_the_delta_small() {
    let registry = start().await;
    let addr = registry.addr.clone();
    let a = request(
        &addr,
        "POST",
        "/eureka/apps/ORDERS",
        &["Content-Type: application/json"],
        instance_json("ORDERS", "i-1").as_bytes(),
    )
    .await;
    assert_eq!(a.status, 204, "{}", a.body);
    let before = resident_mib(registry.child.id());

    let huge = "x".repeat(50_000);
    for n in 0..150 {
        let path = format!("/eureka/apps/ORDERS/i-1/metadata?blob={n}{huge}");
        let a = request(&addr, "PUT", &path, &[], b"").await;
        assert_eq!(a.status, 400, "update {n}: {}", a.body);
        assert!(a.body.contains("instance.metadata"), "{}", a.body);
    }
    let fits = "y".repeat(10_000);
    for n in 0..150 {
        let path = format!("/eureka/apps/ORDERS/i-1/metadata?blob={n}{fits}");
        let a = request(&addr, "PUT", &path, &[], b"").await;
        assert_eq!(a.status, 200, "update {n}: {}", a.body);
    }
    let delta = request(
        &addr,
        "GET",
        "/eureka/apps/delta",
        &["Accept: application/json"],
        b"",
    )
    .await;
    assert_eq!(delta.status, 200);
    assert!(
        delta.body.len() < 1 << 20,
        "the delta answered {} bytes",
        delta.body.len()
    );
    assert!(
        delta.body.contains("149y"),
        "the latest update is in the delta"
    );
    let after = resident_mib(registry.child.id());
    eprintln!(
        "resident memory: {before:.1} MiB after registering, {after:.1} MiB after 300 updates; delta {} bytes",
        delta.body.len()
    );
    assert!(after < 64.0, "resident memory {after:.1} MiB");

    // A registration body far over the limit is 413, not 400.
    let big = vec![b' '; 10 << 20];
    let a = request(&addr, "POST", "/eureka/apps/ORDERS", &[], &big).await;
    assert_eq!(a.status, 413, "{}", a.body);
}

#[test]
fn the_binary_will_not_listen_beyond_loopback_without_a_token() {
    // Refused before anything is bound: no socket is opened on 0.0.0.0.
    let out = Command::new(env!("CARGO_BIN_EXE_breakwater-eureka"))
        .args(["--bind", "0.0.0.0:0"])
        .env_remove("BREAKWATER_EUREKA_TOKEN")
        .env_remove("BREAKWATER_EUREKA_INSECURE_LISTEN_WITHOUT_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without a token"),
        "{stderr}"
    );
}

#[test]
fn the_binary_refuses_a_renewal_threshold_above_one() {
    let out = Command::new(env!("CARGO_BIN_EXE_breakwater-eureka"))
        .args([
            "--bind",
            "127.0.0.1:0",
            "--renewal-percent-threshold",
            "1.5",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("renewal_percent_threshold 1.5 is outside 0.0..=1.0"),
        "{stderr}"
    );
}

#[tokio::test]
async fn three_hundred_half_sent_requests_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let registry = start_with(&["--header-read-timeout-ms", "500"]).await;
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut stream = tokio::net::TcpStream::connect(&registry.addr)
            .await
            .unwrap();
        stream
            .write_all(b"GET /eureka/apps HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(stream);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for (n, stream) in slow.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut buf = [0u8; 256];
        let closed = matches!(
            tokio::time::timeout(left, stream.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        );
        assert!(closed, "half-sent request {n} still open after 5 s");
    }
    let a = request(&registry.addr, "GET", "/eureka/apps", &[], b"").await;
    assert_eq!(a.status, 200, "and the registry still answers");
}
