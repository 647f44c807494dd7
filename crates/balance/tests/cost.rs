//! Power of two choices over our cost, against tower's PeakEWMA, on tokio's paused clock:
//! nine instances answer in 10 ms, one fails at once. A latency-only cost makes the failing
//! one the cheapest, and it draws traffic; ours counts its failures and starves it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use breakwater_balance::{CostConfig, CostService};
use breakwater_circuit_breaker::error::BoxError;
use tower::balance::p2c::Balance;
use tower::discover::ServiceList;
use tower::load::{CompleteOnResponse, PeakEwma};
use tower::{BoxError as TowerBoxError, Service, ServiceExt, service_fn};

const INSTANCES: usize = 10;
const FAILING: usize = 3;
const REQUESTS: usize = 3_000;

type Calls = Arc<Vec<AtomicUsize>>;

/// Instance `n`: counts its calls; `FAILING` fails at once, the others answer in 10 ms.
fn instance(
    n: usize,
    calls: Calls,
) -> impl Service<(), Response = (), Error = BoxError, Future = impl Send> + Clone + Send {
    service_fn(move |()| {
        let calls = calls.clone();
        async move {
            calls[n].fetch_add(1, Ordering::SeqCst);
            if n == FAILING {
                Err::<(), BoxError>("503 Service Unavailable".into())
            } else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok(())
            }
        }
    })
}

/// Sends `REQUESTS` requests, 16 at a time; returns the failing instance's share of the
/// requests after its first failure, and how many requests failed.
async fn run<S>(mut balancer: S, calls: Calls) -> (f64, usize)
where
    S: Service<(), Response = (), Error = TowerBoxError>,
    S::Future: Send + 'static,
{
    let mut tasks: tokio::task::JoinSet<Result<(), TowerBoxError>> = tokio::task::JoinSet::new();
    let mut failed = 0;
    let mut after_first: Option<(usize, usize)> = None; // (total, failing) at its first failure
    for sent in 0..REQUESTS {
        if tasks.len() >= 16 && tasks.join_next().await.unwrap().unwrap().is_err() {
            failed += 1;
        }
        let call = balancer.ready().await.unwrap().call(());
        tasks.spawn(call);
        let bad = calls[FAILING].load(Ordering::SeqCst);
        if after_first.is_none() && bad >= 1 {
            after_first = Some((sent + 1, bad));
        }
    }
    while let Some(done) = tasks.join_next().await {
        if done.unwrap().is_err() {
            failed += 1;
        }
    }
    let (at, bad_then) = after_first.expect("the failing instance was tried");
    let bad_after = calls[FAILING].load(Ordering::SeqCst) - bad_then;
    (bad_after as f64 / (REQUESTS - at) as f64, failed)
}

fn counters() -> Calls {
    Arc::new((0..INSTANCES).map(|_| AtomicUsize::new(0)).collect())
}

#[tokio::test(start_paused = true)]
async fn a_fast_failing_instance_is_starved_by_our_cost_not_by_peak_ewma() {
    let calls = counters();
    let ours = Balance::new(ServiceList::new(
        (0..INSTANCES)
            .map(|n| CostService::new(instance(n, calls.clone()), 1, CostConfig::default()))
            .collect::<Vec<_>>(),
    ));
    let (ours_share, ours_failed) = run(ours, calls).await;

    let calls = counters();
    let towers = Balance::new(ServiceList::new(
        (0..INSTANCES)
            .map(|n| {
                PeakEwma::new(
                    instance(n, calls.clone()),
                    Duration::from_millis(30),
                    Duration::from_secs(10).as_nanos() as f64,
                    CompleteOnResponse::default(),
                )
            })
            .collect::<Vec<_>>(),
    ));
    let (towers_share, towers_failed) = run(towers, calls).await;
    eprintln!(
        "failing instance's share after its first failure: ours {:.2} % ({ours_failed} failed), tower's PeakEwma {:.2} % ({towers_failed} failed)",
        ours_share * 100.0,
        towers_share * 100.0
    );
    assert!(
        ours_share < 0.02,
        "ours sent it {:.2} %",
        ours_share * 100.0
    );
    assert!(
        ours_share < towers_share,
        "ours {ours_share} against tower's {towers_share}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_cost_follows_latency_in_flight_failures_and_weight() {
    use tower::load::Load;
    let config = CostConfig::default();
    let slow = service_fn(|ms: u64| async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        if ms == 0 {
            Err::<(), BoxError>("reset".into())
        } else {
            Ok(())
        }
    });
    let mut one = CostService::new(slow, 1, config.clone());
    let mut heavy = CostService::new(slow, 4, config.clone());
    assert!(heavy.load() < one.load(), "weight 4 costs a quarter");
    let before = one.load();
    let pending = one.ready().await.unwrap().call(200);
    assert!(one.load() > before, "a request in flight costs");
    pending.await.unwrap();
    let (rtt, failure) = one.estimate();
    assert_eq!(
        rtt,
        Duration::from_millis(200),
        "a slower answer takes over at once"
    );
    assert_eq!(failure, 0.0);
    // Faster answers pull it down over time.
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        one.ready().await.unwrap().call(1).await.unwrap();
    }
    assert!(
        one.estimate().0 < Duration::from_millis(50),
        "{:?}",
        one.estimate()
    );
    let healthy = one.load();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(one.ready().await.unwrap().call(0).await.is_err());
    assert!(one.estimate().1 > 0.05);
    assert!(one.load() > healthy, "a failure costs");
    let _ = heavy.ready().await.unwrap().call(1).await;
}
