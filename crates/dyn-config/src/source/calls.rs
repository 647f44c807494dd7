//! How every DynamoDB call of ours is bounded and retried: timeouts for clients that have
//! none, and the back-off between failed polls and stream reads.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use breakwater_backoff::Backoff;

/// `base` doubled per failure (up to 10x), with +-20% jitter so a fleet does not retry in
/// step.
pub(crate) fn backoff(base: Duration, failures: u32) -> Duration {
    Backoff::exponential(base.saturating_mul(10))
        .with_jitter(0.2)
        .delay(base, failures)
}

/// The timeouts every DynamoDB call of ours runs with when the client has none: 3 s to
/// connect, 5 s an attempt, 10 s a call with its retries.
pub fn call_timeouts() -> aws_sdk_dynamodb::config::timeout::TimeoutConfig {
    aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(5))
        .operation_timeout(Duration::from_secs(10))
        .build()
}

/// `client`, with [`call_timeouts`] unless it has an operation timeout of its own.
pub(crate) fn bounded(client: Client) -> Client {
    if client
        .config()
        .timeout_config()
        .and_then(|t| t.operation_timeout())
        .is_some()
    {
        return client;
    }
    Client::from_conf(
        client
            .config()
            .to_builder()
            .timeout_config(call_timeouts())
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_up_to_ten_times_with_jitter() {
        let base = Duration::from_secs(1);
        for (failures, factor) in [
            (0, 1.0),
            (1, 2.0),
            (2, 4.0),
            (3, 8.0),
            (4, 10.0),
            (30, 10.0),
        ] {
            for _ in 0..50 {
                let d = backoff(base, failures).as_secs_f64();
                assert!(
                    d >= 0.8 * factor - 1e-9 && d <= (1.2 * factor).min(10.0) + 1e-9,
                    "{failures} failures: {d} s"
                );
            }
        }
        let spread: std::collections::HashSet<u128> =
            (0..50).map(|_| backoff(base, 0).as_millis()).collect();
        assert!(spread.len() > 5, "jittered: {spread:?}");
        // A huge interval saturates instead of panicking.
        assert!(backoff(Duration::MAX, 4) > Duration::from_secs(1 << 60));
    }
}
