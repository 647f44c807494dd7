//! Every Hystrix setting reaches the breaker's run-time settings, in process (the end-to-end
//! path through DynamoDB and the CLI is in `breakers.rs`).

use std::time::Duration;

use breakwater_circuit_breaker::{CircuitBreakerRegistry, Mode};
use breakwater_dyn_config::{ConfigStore, hystrix};

fn key(command: &str, setting: &str) -> String {
    format!("hystrix.command.{command}.{setting}")
}

#[test]
fn every_setting_drives_the_breaker_and_the_command_wins_over_default() {
    let registry = CircuitBreakerRegistry::new();
    let breaker = registry.breaker("payments");
    let other = registry.breaker("search");
    let original = (*breaker.config()).clone();
    let config = ConfigStore::new();
    let _binding = hystrix::bind(&config, &registry);

    config.set_override(
        &key("payments", "circuitBreaker.errorThresholdPercentage"),
        "25",
    );
    config.set_override(
        &key("payments", "circuitBreaker.requestVolumeThreshold"),
        "7",
    );
    config.set_override(
        &key("payments", "circuitBreaker.sleepWindowInMilliseconds"),
        "1500",
    );
    config.set_override(
        &key(
            "payments",
            "execution.isolation.thread.timeoutInMilliseconds",
        ),
        "300",
    );
    config.set_override(
        &key(
            "payments",
            "execution.isolation.semaphore.maxConcurrentRequests",
        ),
        "3",
    );
    let c = breaker.config();
    assert_eq!(c.error_threshold_percentage, 25);
    assert_eq!(c.request_volume_threshold, 7);
    assert_eq!(c.sleep_window, Duration::from_millis(1500));
    assert_eq!(c.timeout, Some(Duration::from_millis(300)));
    assert_eq!(c.max_concurrent_calls, 3);
    assert_eq!(
        breaker.bulkhead().max_concurrent(),
        3,
        "the bulkhead follows"
    );
    assert_eq!(
        other.config().error_threshold_percentage,
        original.error_threshold_percentage,
        "another command is untouched"
    );

    // Modes: forceOpen > forceClosed > enabled=false; case as Java's parseBoolean.
    config.set_override(&key("payments", "circuitBreaker.enabled"), "false");
    assert_eq!(breaker.config().mode, Mode::MetricsOnly);
    config.set_override(&key("payments", "circuitBreaker.forceClosed"), "TRUE");
    assert_eq!(breaker.config().mode, Mode::ForcedClosed);
    config.set_override(&key("payments", "circuitBreaker.forceOpen"), "true");
    assert_eq!(breaker.config().mode, Mode::ForcedOpen);
    for setting in [
        "circuitBreaker.forceOpen",
        "circuitBreaker.forceClosed",
        "circuitBreaker.enabled",
    ] {
        config.clear_override(&key("payments", setting));
    }
    assert_eq!(
        breaker.config().mode,
        original.mode,
        "back to the breaker's own"
    );

    // default.* applies to every command, unless the command has its own key.
    config.set_override(
        &key("default", "circuitBreaker.errorThresholdPercentage"),
        "80",
    );
    assert_eq!(other.config().error_threshold_percentage, 80);
    assert_eq!(breaker.config().error_threshold_percentage, 25);
    config.clear_override(&key("payments", "circuitBreaker.errorThresholdPercentage"));
    assert_eq!(breaker.config().error_threshold_percentage, 80);
    config.clear_override(&key("default", "circuitBreaker.errorThresholdPercentage"));
    assert_eq!(
        breaker.config().error_threshold_percentage,
        original.error_threshold_percentage
    );
}

#[test]
fn invalid_values_keep_the_last_good_one_and_a_force_still_applies() {
    let registry = CircuitBreakerRegistry::new();
    let breaker = registry.breaker("payments");
    let config = ConfigStore::new();
    let _binding = hystrix::bind(&config, &registry);
    let percent = key("payments", "circuitBreaker.errorThresholdPercentage");
    config.set_override(&percent, "30");
    for bad in ["150", "-1", "half", ""] {
        config.set_override(&percent, bad);
        assert_eq!(breaker.config().error_threshold_percentage, 30, "{bad:?}");
    }
    config.set_override(&key("payments", "circuitBreaker.forceOpen"), "yes");
    assert_eq!(breaker.config().mode, Mode::Normal, "\"yes\" is refused");
    config.set_override(&key("payments", "circuitBreaker.forceOpen"), "true");
    assert_eq!(breaker.config().mode, Mode::ForcedOpen);
}

#[tokio::test]
async fn breakers_made_after_binding_are_bound_too() {
    let registry = CircuitBreakerRegistry::new();
    let config = ConfigStore::new();
    config.set_override(&key("default", "circuitBreaker.forceOpen"), "true");
    let mut binding = hystrix::bind(&config, &registry);
    let late = registry.breaker("late");
    assert_eq!(late.config().mode, Mode::Normal, "not bound yet");
    assert_eq!(binding.bind_new(&registry), 1);
    assert_eq!(late.config().mode, Mode::ForcedOpen);
    assert_eq!(binding.bind_new(&registry), 0, "bound once");

    let task = binding.follow_registry(registry.clone(), Duration::from_millis(20));
    let later = registry.breaker("later");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while later.config().mode != Mode::ForcedOpen {
        assert!(std::time::Instant::now() < deadline, "never bound");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    config.set_override(&key("default", "circuitBreaker.forceOpen"), "false");
    assert_eq!(later.config().mode, Mode::Normal);
    task.abort();
}
