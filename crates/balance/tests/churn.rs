//! Instances that come and go leave nothing behind: 40,000 instance ids, four at a time over
//! 10,000 rounds, join a balancer, take requests (some failing, so breakers trip) and leave;
//! the process's resident memory after them is what it was after the first 1,000 rounds. A
//! leaked breaker per instance (what every breaker was before breakers could be freed) grows
//! it by more than a gigabyte here.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use breakwater_balance::{BalanceConfig, Balancer, BalancerRegistry, Endpoint};
use breakwater_circuit_breaker::error::BoxError;
use tower::{ServiceExt, service_fn};

/// Resident memory in bytes, from /proc/self/statm.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_instance_ids_coming_and_going_leave_memory_flat() {
    let steady: Vec<Endpoint> = (0..3)
        .map(|i| Endpoint::new(format!("steady-{i}"), "127.0.0.1", 9_000 + i))
        .collect();
    let (tx, list) = tokio::sync::watch::channel(steady.clone());
    let calls = Arc::new(AtomicUsize::new(0));
    let made = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let making = made.clone();
    let make = move |e: &Endpoint| {
        making.fetch_add(1, Ordering::SeqCst);
        let fails = e.id.starts_with("churn") && e.port.is_multiple_of(2);
        let calls = counted.clone();
        service_fn(move |()| {
            calls.fetch_add(1, Ordering::Relaxed);
            async move {
                if fails {
                    Err::<(), BoxError>("503".into())
                } else {
                    Ok(())
                }
            }
        })
    };
    let balancer = Balancer::fixed("churn", list, make, BalanceConfig::default()).unwrap();
    let mut after_first_thousand = 0;
    for k in 0..10_000u32 {
        let mut next = steady.clone();
        for j in 0..4 {
            let id = 4 * k + j;
            next.push(Endpoint::new(
                format!("churn-{id}"),
                "127.0.0.1",
                (id % 50_000) as u16 + 10_000,
            ));
        }
        tx.send(next).unwrap();
        // The balancer takes each list in (a member and a breaker per new id) before the
        // requests go.
        while made.load(Ordering::SeqCst) < 3 + 4 * (k as usize + 1) {
            tokio::task::yield_now().await;
        }
        for _ in 0..8 {
            let _ = balancer.clone().oneshot(()).await;
        }
        if k == 999 {
            after_first_thousand = rss();
        }
    }
    tx.send(steady.clone()).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let after = rss();
    let snapshot = balancer.snapshot();
    assert_eq!(
        snapshot.instances.len(),
        3,
        "only the steady instances are left"
    );
    assert!(calls.load(Ordering::Relaxed) >= 80_000);
    let grown = after.saturating_sub(after_first_thousand);
    eprintln!(
        "RSS after 1,000 rounds {} KiB, after 10,000 {} KiB (+{} KiB) for 40,000 instance ids",
        after_first_thousand / 1024,
        after / 1024,
        grown / 1024
    );
    assert!(grown < 4 << 20, "memory grew by {} KiB", grown / 1024);
    // The registry of balancers holds none alive.
    let before = BalancerRegistry::global().len();
    drop(balancer);
    assert_eq!(BalancerRegistry::global().len(), before - 1);
}
