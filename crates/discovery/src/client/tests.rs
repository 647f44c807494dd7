use super::*;

const S: Duration = Duration::from_secs(1);

fn client(multiplier: u32) -> EurekaClient {
    let config = EurekaClientConfig {
        service_urls: vec!["http://127.0.0.1:9/eureka/".into()],
        max_backoff_multiplier: multiplier,
        ..EurekaClientConfig::default()
    };
    EurekaClient::new(config, None).unwrap()
}

/// Runs `every` (interval 1 s) for `run_for` of paused time with work that takes `takes`
/// and fails on the runs `outcome` says; gives the runs' start times in seconds.
async fn starts(takes: Duration, outcome: fn(usize) -> bool, run_for: Duration) -> Vec<f64> {
    starts_with(10, takes, outcome, run_for).await
}

async fn starts_with(
    multiplier: u32,
    takes: Duration,
    outcome: fn(usize) -> bool,
    run_for: Duration,
) -> Vec<f64> {
    let origin = tokio::time::Instant::now();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (stop, stopped) = watch::channel(false);
    let task = {
        let log = log.clone();
        tokio::spawn(client(multiplier).every(S, stopped, false, move |_| {
            let log = log.clone();
            Box::pin(async move {
                let n = {
                    let mut log = log.lock().unwrap();
                    log.push(origin.elapsed().as_secs_f64());
                    log.len() - 1
                };
                tokio::time::sleep(takes).await;
                if outcome(n) {
                    Ok(())
                } else {
                    Err(EurekaClientError::Unavailable("test".into()))
                }
            })
        }))
    };
    tokio::time::sleep(run_for).await;
    stop.send(true).unwrap();
    task.await.unwrap();
    Arc::try_unwrap(log).unwrap().into_inner().unwrap()
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_exponentially_to_ten_intervals_and_success_resets() {
    // Runs 0-5 fail, 6-7 succeed, 8 fails, then success.
    let starts = starts(
        Duration::ZERO,
        |n| (6..8).contains(&n) || n > 8,
        Duration::from_millis(49_500),
    )
    .await;
    //         fail:+2  +4   +8    +10   +10   +10 ok:+1 ok:+1 fail:+2 ok:+1
    let expected = [
        0.0, 2.0, 6.0, 14.0, 24.0, 34.0, 44.0, 45.0, 46.0, 48.0, 49.0,
    ];
    assert_eq!(starts, expected);
}

#[tokio::test(start_paused = true)]
async fn a_multiplier_of_one_or_zero_means_no_back_off() {
    for multiplier in [0, 1] {
        let starts = starts_with(
            multiplier,
            Duration::ZERO,
            |_| false,
            Duration::from_millis(3_500),
        )
        .await;
        assert_eq!(starts, [0.0, 1.0, 2.0, 3.0], "multiplier {multiplier}");
    }
}

#[tokio::test(start_paused = true)]
async fn slow_failures_still_back_off() {
    // Every run takes 3 s (a timeout, say) and fails: the back-off must still grow, from
    // start to start 3 s (2 s was due), 4, 8, 10, 10.
    let starts = starts(3 * S, |_| false, Duration::from_millis(36_500)).await;
    assert_eq!(starts, [0.0, 3.0, 7.0, 15.0, 25.0, 35.0]);
}

#[tokio::test(start_paused = true)]
async fn the_interval_is_kept_from_start_to_start() {
    let starts = starts(
        Duration::from_millis(300),
        |_| true,
        Duration::from_millis(3_500),
    )
    .await;
    assert_eq!(starts, [0.0, 1.0, 2.0, 3.0]);
}

#[tokio::test(start_paused = true)]
async fn a_loop_backing_off_tries_again_when_the_other_one_gets_through() {
    use std::sync::atomic::{AtomicBool, Ordering};
    // The servers are down for the first 12 s. The heartbeat (every 5 s) backs off to 10 s,
    // then would wait 20 s; the fetch (every 1 s) gets through at 14 s, and the heartbeat
    // must follow at once, not at 30 s.
    let origin = tokio::time::Instant::now();
    let up = Arc::new(AtomicBool::new(false));
    let client = client(10);
    let (stop, stopped) = watch::channel(false);
    let heartbeats = Arc::new(Mutex::new(Vec::new()));
    let work = |log: Option<Arc<Mutex<Vec<f64>>>>| {
        let up = up.clone();
        move |_: EurekaClient| {
            let up = up.clone();
            let log = log.clone();
            Box::pin(async move {
                if let Some(log) = log {
                    log.lock().unwrap().push(origin.elapsed().as_secs_f64());
                }
                if up.load(Ordering::SeqCst) {
                    Ok(())
                } else {
                    Err(EurekaClientError::Unavailable("down".into()))
                }
            })
                as std::pin::Pin<
                    Box<dyn std::future::Future<Output = Result<(), EurekaClientError>> + Send>,
                >
        }
    };
    let heartbeat = tokio::spawn(client.clone().every(
        5 * S,
        stopped.clone(),
        false,
        work(Some(heartbeats.clone())),
    ));
    let fetch = tokio::spawn(client.clone().every(S, stopped, false, work(None)));
    tokio::time::sleep(Duration::from_millis(12_000)).await;
    up.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(12_500)).await;
    stop.send(true).unwrap();
    heartbeat.await.unwrap();
    fetch.await.unwrap();
    // Fetch: 0, 2, 6, 14 (up). Heartbeat: 0, 10 (down), then 14 with the fetch, then every 5 s.
    assert_eq!(*heartbeats.lock().unwrap(), [0.0, 10.0, 14.0, 19.0, 24.0]);
}
