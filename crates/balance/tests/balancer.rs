//! The balancer on tokio's paused clock: ejection after failures in a row, growing ejection
//! times and probes, the panic threshold, zones with spill, live settings, start-up without
//! instances, and removal with requests in flight. Instances are in-process services whose
//! behaviour a test switches at run time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use breakwater_balance::{BalanceConfig, Balancer, Endpoint, InstanceState, NoInstances};
use breakwater_circuit_breaker::error::BoxError;
use proptest::prelude::*;
use tokio::sync::watch;
use tower::{Service, ServiceExt, service_fn};

const OK: u8 = 0;
const FAIL: u8 = 1;
const SLOW: u8 = 2;
const HANG: u8 = 3;

/// What each instance does and how many requests it got, by position.
#[derive(Clone)]
struct Fleet {
    modes: Arc<Vec<AtomicU8>>,
    calls: Arc<Vec<AtomicUsize>>,
}

impl Fleet {
    fn new(n: usize) -> Self {
        Fleet {
            modes: Arc::new((0..n).map(|_| AtomicU8::new(OK)).collect()),
            calls: Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect()),
        }
    }

    fn set(&self, i: usize, mode: u8) {
        self.modes[i].store(mode, Ordering::SeqCst);
    }

    fn calls(&self) -> Vec<usize> {
        self.calls
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .collect()
    }

    fn endpoints(&self, zones: &[&str]) -> Vec<Endpoint> {
        (0..self.modes.len())
            .map(|i| Endpoint {
                zone: zones.get(i).map(|z| z.to_string()),
                ..Endpoint::new(format!("i{i}"), "127.0.0.1", 10_000 + i as u16)
            })
            .collect()
    }

    /// A balancer over the fleet; instance `i` answers 10 ms after a request (1 s when slow,
    /// at once with an error when failing).
    fn balancer(
        &self,
        list: watch::Receiver<Vec<Endpoint>>,
        config: BalanceConfig,
    ) -> Balancer<
        impl Service<(), Response = usize, Error = BoxError, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static,
    > {
        let fleet = self.clone();
        let make = move |e: &Endpoint| {
            let i = usize::from(e.port - 10_000);
            let fleet = fleet.clone();
            service_fn(move |()| {
                let fleet = fleet.clone();
                async move {
                    fleet.calls[i].fetch_add(1, Ordering::SeqCst);
                    match fleet.modes[i].load(Ordering::SeqCst) {
                        FAIL => Err::<usize, BoxError>("503 Service Unavailable".into()),
                        SLOW => {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            Ok(i)
                        }
                        HANG => std::future::pending().await,
                        _ => {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            Ok(i)
                        }
                    }
                }
            })
        };
        Balancer::fixed("payments", list, make, config).unwrap()
    }

    /// The settings of these tests: instances start at the latency they answer in.
    fn config() -> BalanceConfig {
        BalanceConfig {
            default_rtt: Duration::from_millis(10),
            ..BalanceConfig::default()
        }
    }
}

/// Sends `n` requests, `concurrency` at a time; counts the successes and the
/// [`NoInstances`] errors.
async fn load<S>(balancer: &S, n: usize, concurrency: usize) -> (usize, usize)
where
    S: Service<(), Response = usize, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    let (mut ok, mut none) = (0, 0);
    let mut count = |r: Result<Result<usize, BoxError>, tokio::task::JoinError>| match r.unwrap() {
        Ok(_) => ok += 1,
        Err(e) if e.is::<NoInstances>() => none += 1,
        Err(_) => {}
    };
    for _ in 0..n {
        if tasks.len() >= concurrency {
            count(tasks.join_next().await.unwrap());
        }
        tasks.spawn(balancer.clone().oneshot(()));
    }
    while let Some(r) = tasks.join_next().await {
        count(r);
    }
    (ok, none)
}

async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

fn state_of<S>(balancer: &Balancer<S>, id: &str) -> InstanceState {
    balancer
        .snapshot()
        .instances
        .into_iter()
        .find(|i| i.id == id)
        .unwrap()
        .state
}

#[tokio::test(start_paused = true)]
async fn five_failures_in_a_row_eject_for_30_s_times_the_ejections_and_a_probe_decides() {
    let fleet = Fleet::new(4);
    let (_tx, list) = watch::channel(fleet.endpoints(&[]));
    let balancer = fleet.balancer(list, Fleet::config());
    settle().await;
    fleet.set(2, FAIL);
    // One at a time, so the count of failures in a row is exact.
    while fleet.calls()[2] < 5 {
        let _ = balancer.clone().oneshot(()).await;
    }
    let ejected_at = tokio::time::Instant::now();
    assert!(matches!(
        state_of(&balancer, "i2"),
        InstanceState::Ejected { .. }
    ));
    let before = fleet.calls()[2];
    // For the 30 s of its ejection it gets nothing.
    let mut sent = 0;
    while ejected_at.elapsed() < Duration::from_secs(29) {
        let (ok, _) = load(&balancer, 50, 5).await;
        sent += 50;
        assert_eq!(ok, 50);
    }
    assert!(sent > 1_000, "{sent}");
    assert_eq!(fleet.calls()[2], before, "no request while ejected");
    // After 30 s one probe goes; it fails, and the ejection is 60 s.
    tokio::time::advance(Duration::from_secs(2)).await;
    load(&balancer, 400, 4).await;
    assert_eq!(fleet.calls()[2], before + 1, "exactly one probe");
    let until = match state_of(&balancer, "i2") {
        InstanceState::Ejected { until } => until,
        other => panic!("{other:?}"),
    };
    let left = until.duration_since(std::time::SystemTime::now()).unwrap();
    assert!(
        left > Duration::from_secs(55) && left <= Duration::from_secs(60),
        "{left:?}"
    );
    // It recovers; after the 60 s the probe succeeds and it is back.
    fleet.set(2, OK);
    tokio::time::advance(Duration::from_secs(61)).await;
    load(&balancer, 400, 4).await;
    assert_eq!(state_of(&balancer, "i2"), InstanceState::Active);
    assert!(fleet.calls()[2] > before + 20, "{:?}", fleet.calls());
    let snapshot = balancer.snapshot();
    assert_eq!(
        snapshot.instances[2].ejections, 1,
        "one ejection, extended once by a probe"
    );
    assert!(!snapshot.panic);
}

#[tokio::test(start_paused = true)]
async fn four_of_ten_failing_are_ejected_six_of_ten_put_the_balancer_in_panic() {
    let fleet = Fleet::new(10);
    let (_tx, list) = watch::channel(fleet.endpoints(&[]));
    let balancer = fleet.balancer(list, Fleet::config());
    settle().await;
    for i in 0..4 {
        fleet.set(i, FAIL);
    }
    let (ok, none) = load(&balancer, 5_000, 16).await;
    let snapshot = balancer.snapshot();
    assert!(!snapshot.panic);
    assert_eq!(
        snapshot
            .instances
            .iter()
            .filter(|i| matches!(i.state, InstanceState::Ejected { .. }))
            .count(),
        4
    );
    // Only the failures before each instance's ejection reach the caller.
    assert!(ok >= 5_000 - 4 * 5 - 16, "{ok}");
    assert_eq!(none, 0);

    // Two more fail: six of ten ejected is under the 50 % panic threshold.
    fleet.set(4, FAIL);
    fleet.set(5, FAIL);
    load(&balancer, 2_000, 16).await;
    let before = fleet.calls();
    let (ok, none) = load(&balancer, 5_000, 16).await;
    let after = fleet.calls();
    assert!(balancer.snapshot().panic);
    assert_eq!(none, 0, "panic mode never answers no instance");
    // Every instance gets requests; the cost still steers most of them to the healthy four.
    for i in 0..10 {
        let got = after[i] - before[i];
        assert!(got >= 10, "instance {i} got {got} of 5000 in panic mode");
    }
    eprintln!(
        "six of ten failing, panic mode: {ok} of 5000 succeeded; requests per instance {:?}",
        (0..10).map(|i| after[i] - before[i]).collect::<Vec<_>>()
    );
    assert!(ok >= 2_000, "{ok}");
}

#[tokio::test(start_paused = true)]
async fn the_local_zone_is_preferred_spills_when_short_and_is_left_when_it_fails() {
    let fleet = Fleet::new(9);
    let zones = ["a", "a", "a", "b", "b", "b", "c", "c", "c"];
    let (_tx, list) = watch::channel(fleet.endpoints(&zones));
    let config = BalanceConfig {
        zone: Some("a".into()),
        ..Fleet::config()
    };
    let balancer = fleet.balancer(list, config);
    settle().await;
    let local = |calls: &[usize]| calls[..3].iter().sum::<usize>();
    load(&balancer, 3_000, 8).await;
    assert_eq!(
        local(&fleet.calls()),
        3_000,
        "all local while the zone is healthy"
    );

    // One of three local instances is ejected: a third of the traffic spills.
    fleet.set(0, FAIL);
    load(&balancer, 400, 8).await;
    assert!(matches!(
        state_of(&balancer, "i0"),
        InstanceState::Ejected { .. }
    ));
    let before = fleet.calls();
    load(&balancer, 3_000, 8).await;
    let after = fleet.calls();
    let kept = local(&after) - local(&before);
    assert!((1_800..2_200).contains(&kept), "kept {kept} of 3000 local");
    assert_eq!(balancer.snapshot().local_share, Some(2.0 / 3.0));

    // The whole zone fails: within a second of paused time requests leave it.
    fleet.set(1, FAIL);
    fleet.set(2, FAIL);
    let start = tokio::time::Instant::now();
    let mut failed_after_a_second = 0;
    while start.elapsed() < Duration::from_secs(2) {
        let late = start.elapsed() >= Duration::from_secs(1);
        let (ok, _) = load(&balancer, 20, 4).await;
        if late {
            failed_after_a_second += 20 - ok;
        }
    }
    assert_eq!(
        failed_after_a_second, 0,
        "nothing fails a second after the zone went"
    );
    assert_eq!(balancer.snapshot().local_share, Some(0.0));
}

#[tokio::test(start_paused = true)]
async fn no_instances_is_an_error_naming_the_service_after_a_bounded_wait() {
    let fleet = Fleet::new(2);
    let (tx, list) = watch::channel(Vec::new());
    let balancer = fleet.balancer(list, Fleet::config());
    let start = tokio::time::Instant::now();
    let err = balancer.clone().oneshot(()).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(3), "the start-up wait");
    let err = err.downcast::<NoInstances>().unwrap();
    assert_eq!(&*err.service, "payments");
    assert!(err.to_string().contains("`payments`"), "{err}");
    // After the wait an empty list fails at once.
    let start = tokio::time::Instant::now();
    assert!(balancer.clone().oneshot(()).await.is_err());
    assert_eq!(start.elapsed(), Duration::ZERO);
    // Instances arrive: requests go.
    tx.send(fleet.endpoints(&[])).unwrap();
    settle().await;
    assert!(balancer.clone().oneshot(()).await.is_ok());

    // A request made while discovery is still finding the first instances waits for them.
    let (tx, list) = watch::channel(Vec::new());
    let balancer = fleet.balancer(list, Fleet::config());
    let waiting = tokio::spawn(balancer.clone().oneshot(()));
    tokio::time::advance(Duration::from_millis(500)).await;
    tx.send(fleet.endpoints(&[])).unwrap();
    assert!(waiting.await.unwrap().is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_removed_instance_gets_no_new_requests_and_its_requests_in_flight_finish() {
    let fleet = Fleet::new(2);
    fleet.set(0, SLOW);
    fleet.set(1, SLOW);
    let (tx, list) = watch::channel(fleet.endpoints(&[]));
    let balancer = fleet.balancer(list, Fleet::config());
    settle().await;
    let in_flight: Vec<_> = (0..10)
        .map(|_| tokio::spawn(balancer.clone().oneshot(())))
        .collect();
    settle().await;
    let to_zero = fleet.calls()[0];
    assert!(to_zero > 0);
    tx.send(fleet.endpoints(&[]).split_off(1)).unwrap();
    settle().await;
    assert_eq!(balancer.snapshot().instances.len(), 1);
    for task in in_flight {
        task.await.unwrap().unwrap();
    }
    load(&balancer, 50, 5).await;
    assert_eq!(
        fleet.calls()[0],
        to_zero,
        "no new request to the removed instance"
    );
}

#[tokio::test(start_paused = true)]
async fn settings_change_at_run_time_and_instances_keep_their_state() {
    let fleet = Fleet::new(4);
    let (_tx, list) = watch::channel(fleet.endpoints(&[]));
    let balancer = fleet.balancer(list, Fleet::config());
    settle().await;
    fleet.set(0, FAIL);
    while fleet.calls()[0] < 5 {
        let _ = balancer.clone().oneshot(()).await;
    }
    assert!(matches!(
        state_of(&balancer, "i0"),
        InstanceState::Ejected { .. }
    ));
    // Two failures in a row now eject; the ejected instance stays ejected.
    balancer.update(|c| c.consecutive_failures = 2).unwrap();
    assert!(matches!(
        state_of(&balancer, "i0"),
        InstanceState::Ejected { .. }
    ));
    fleet.set(1, FAIL);
    let before = fleet.calls()[1];
    while fleet.calls()[1] < before + 2 {
        let _ = balancer.clone().oneshot(()).await;
    }
    assert!(matches!(
        state_of(&balancer, "i1"),
        InstanceState::Ejected { .. }
    ));
    // Invalid settings are refused and name the setting.
    let err = balancer
        .update(|c| c.panic_threshold_percentage = 101)
        .unwrap_err();
    assert_eq!(err.setting, "panicThresholdPercentage");
    assert_eq!(balancer.config().consecutive_failures, 2);
    // Panic at 50 %: two of four ejected is not under it; at 75 % it is.
    assert!(!balancer.snapshot().panic);
    balancer
        .update(|c| c.panic_threshold_percentage = 75)
        .unwrap();
    assert!(balancer.snapshot().panic);
}

#[tokio::test(start_paused = true)]
async fn a_request_abandoned_by_its_caller_raises_the_latency_estimate() {
    let fleet = Fleet::new(2);
    fleet.set(0, HANG);
    let (_tx, list) = watch::channel(fleet.endpoints(&[]));
    let balancer = fleet.balancer(list, Fleet::config());
    settle().await;
    for _ in 0..20 {
        let _ =
            tokio::time::timeout(Duration::from_millis(500), balancer.clone().oneshot(())).await;
    }
    let snapshot = balancer.snapshot();
    let hanging = &snapshot.instances[0];
    assert!(hanging.latency >= Duration::from_millis(500), "{hanging:?}");
    assert_eq!(hanging.in_flight, 0, "abandoned requests are counted out");
    assert!(snapshot.instances[1].requests > hanging.requests);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// For any fleet and any set of failing instances: no request ever finds no instance;
    /// only failing instances are ejected; the balancer panics exactly when fewer than half
    /// the instances are not ejected; outside panic an ejected instance gets no request
    /// (its probe is 30 s away) and a failing one that the cost starved before its fifth
    /// failure gets almost none.
    #[test]
    fn ejection_and_panic_rules_hold(n in 2usize..12, failing in proptest::collection::vec(any::<bool>(), 12)) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let fleet = Fleet::new(n);
            let (_tx, list) = watch::channel(fleet.endpoints(&[]));
            let balancer = fleet.balancer(list, Fleet::config());
            settle().await;
            let bad: Vec<usize> = (0..n).filter(|i| failing[*i]).collect();
            for &i in &bad {
                fleet.set(i, FAIL);
            }
            let (_, none) = load(&balancer, 100 * n, 4).await;
            prop_assert_eq!(none, 0);
            let snapshot = balancer.snapshot();
            let ejected: Vec<usize> = snapshot
                .instances
                .iter()
                .filter(|i| i.state != InstanceState::Active)
                .map(|i| i.id[1..].parse().unwrap())
                .collect();
            for i in &ejected {
                prop_assert!(bad.contains(i), "healthy instance {} ejected", i);
            }
            let panic = (n - ejected.len()) * 100 < 50 * n;
            prop_assert_eq!(snapshot.panic, panic, "{:?}", snapshot);
            let before = fleet.calls();
            let (ok, none) = load(&balancer, 50 * n, 4).await;
            prop_assert_eq!(none, 0);
            let after = fleet.calls();
            if bad.len() == n {
                // Nothing healthy: panic spreads over every instance.
                prop_assert!(panic);
                prop_assert_eq!(ok, 0);
            } else if !panic {
                for &i in &bad {
                    let got = after[i] - before[i];
                    if ejected.contains(&i) {
                        prop_assert_eq!(got, 0, "ejected instance {} got requests", i);
                    } else {
                        prop_assert!(got * 50 <= 50 * n, "starved instance {} got {} of {}", i, got, 50 * n);
                    }
                }
                prop_assert!(ok * 100 >= 98 * 50 * n, "{} of {}", ok, 50 * n);
            } else {
                for &i in &ejected {
                    prop_assert!(after[i] > before[i], "panic mode spreads over instance {}", i);
                }
            }
            Ok(())
        })?;
    }
}
