//! Properties, layers, validation and flags, in process (the DynamoDB layer is tested
//! against moto in `dynamodb.rs`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use breakwater_dyn_config::flag::bucket;
use breakwater_dyn_config::{ConfigStore, FeatureFlag, FromConfig, Rollout, SourceKind, hystrix};
use proptest::prelude::*;

#[test]
fn layers_apply_in_order_of_precedence() {
    let dir = std::env::temp_dir().join(format!("bw-dyn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("app.properties");
    std::fs::write(
        &file,
        "# defaults for the demo\nsvc.timeout = 1500ms\nsvc.name: checkout\n",
    )
    .unwrap();

    let config = ConfigStore::new();
    let timeout = config.property("svc.timeout", Duration::from_secs(1));
    let name = config.property("svc.name", String::from("unnamed"));
    assert_eq!(timeout.get(), Duration::from_secs(1), "code default");
    config.load_file(&file).unwrap();
    assert_eq!(
        timeout.get(),
        Duration::from_millis(1500),
        "file over default"
    );
    assert_eq!(name.get(), "checkout");
    config.load_env([("SVC_TIMEOUT".to_owned(), "2s".to_owned())]);
    assert_eq!(
        timeout.get(),
        Duration::from_secs(2),
        "environment over file (by env name)"
    );
    config.set_override("svc.timeout", "250");
    assert_eq!(
        timeout.get(),
        Duration::from_millis(250),
        "override over everything"
    );
    assert_eq!(
        config.effective("svc.timeout").unwrap().origin.kind,
        SourceKind::Override
    );
    config.clear_override("svc.timeout");
    assert_eq!(
        timeout.get(),
        Duration::from_secs(2),
        "back to the environment"
    );
    config.load_env([]);
    assert_eq!(
        timeout.get(),
        Duration::from_millis(1500),
        "back to the file"
    );

    // A malformed file is refused whole, with its line; the previous file layer stays.
    std::fs::write(&file, "svc.timeout = 3s\nthis line has no separator\n").unwrap();
    let error = config.load_file(&file).unwrap_err().to_string();
    assert!(error.contains(":2:"), "{error}");
    assert_eq!(timeout.get(), Duration::from_millis(1500));
}

#[test]
fn invalid_values_are_refused_with_key_and_origin_and_the_last_good_stays() {
    let config = ConfigStore::new();
    let percent = config.property_validated("svc.errorPercent", 50u8, |p| {
        if *p <= 100 {
            Ok(())
        } else {
            Err("must be at most 100".into())
        }
    });
    let seen = Arc::new(Mutex::new(Vec::new()));
    {
        let seen = seen.clone();
        percent.on_change(move |v| seen.lock().unwrap().push(*v));
    }
    let mut watch = percent.watch();
    config.set_override("svc.errorPercent", "30");
    assert_eq!(percent.get(), 30);
    assert!(watch.has_changed().unwrap());
    assert_eq!(**watch.borrow_and_update(), 30);
    for bad in ["300", "fifty", ""] {
        config.set_override("svc.errorPercent", bad);
        assert_eq!(percent.get(), 30, "{bad:?} refused");
        let error = percent.last_error().expect("the refusal is kept");
        assert_eq!(error.key, "svc.errorPercent");
        assert_eq!(error.origin.kind, SourceKind::Override);
    }
    assert!(
        !watch.has_changed().unwrap(),
        "refused values are not announced"
    );
    config.set_override("svc.errorPercent", "40");
    assert_eq!(*seen.lock().unwrap(), vec![30, 40]);
    assert!(percent.last_error().is_none());
}

#[test]
fn rollouts_parse_strictly() {
    assert_eq!(Rollout::from_config("on"), Ok(Rollout::On));
    assert_eq!(Rollout::from_config("OFF"), Ok(Rollout::Off));
    assert_eq!(Rollout::from_config("25%"), Ok(Rollout::Percent(2500)));
    assert_eq!(Rollout::from_config("12.5%"), Ok(Rollout::Percent(1250)));
    assert_eq!(Rollout::from_config("100%"), Ok(Rollout::Percent(10_000)));
    for bad in ["101%", "25", "-1%", "1.234%", "%", "x%", "99999999999%"] {
        assert!(Rollout::from_config(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_rollout_reaches_about_its_share() {
    let on = (0..20_000)
        .filter(|i| bucket("feature.x", &format!("user-{i}")) < 2_500)
        .count();
    assert!(
        (4_500..5_500).contains(&on),
        "25% of 20,000 is about 5,000, got {on}"
    );
}

#[test]
fn hystrix_keys_are_validated() {
    let key = |s: &str| format!("hystrix.command.payments.{s}");
    assert_eq!(
        hystrix::validate(&key("circuitBreaker.forceOpen"), "true"),
        Some(Ok(()))
    );
    assert!(matches!(
        hystrix::validate(&key("circuitBreaker.forceOpen"), "yes"),
        Some(Err(_))
    ));
    assert!(matches!(
        hystrix::validate(&key("circuitBreaker.errorThresholdPercentage"), "101"),
        Some(Err(_))
    ));
    assert!(matches!(
        hystrix::validate(
            &key("execution.isolation.semaphore.maxConcurrentRequests"),
            "0"
        ),
        Some(Err(_))
    ));
    assert_eq!(
        hystrix::validate("hystrix.command.default.circuitBreaker.enabled", "false"),
        Some(Ok(()))
    );
    assert_eq!(hystrix::validate("something.else", "anything"), None);
    assert_eq!(
        hystrix::validate("hystrix.command..circuitBreaker.enabled", "x"),
        None
    );
}

proptest! {
    /// Raising the percentage never turns off someone who was on.
    #[test]
    fn raising_a_rollout_never_flips_anyone_off(
        subjects in proptest::collection::vec("[a-z0-9-]{1,24}", 1..50),
        low in 0u16..=10_000,
        high in 0u16..=10_000,
    ) {
        let (low, high) = (low.min(high), low.max(high));
        let config = ConfigStore::new();
        let flag = FeatureFlag::new(&config, "feature.sticky", false);
        config.set_override("feature.sticky", format!("{}.{:02}%", low / 100, low % 100));
        let before: Vec<bool> = subjects.iter().map(|s| flag.is_enabled_for(s)).collect();
        config.set_override("feature.sticky", format!("{}.{:02}%", high / 100, high % 100));
        for (subject, was_on) in subjects.iter().zip(before) {
            prop_assert!(!was_on || flag.is_enabled_for(subject), "{subject} flipped off");
        }
    }

    /// No text makes a property panic or lose its last good value.
    #[test]
    fn any_text_is_parsed_or_refused(text in ".{0,40}") {
        let config = ConfigStore::new();
        let n = config.property("n", 7u32);
        let d = config.property("d", Duration::from_secs(1));
        let f = FeatureFlag::new(&config, "f", true);
        config.set_override("n", text.clone());
        config.set_override("d", text.clone());
        config.set_override("f", text.clone());
        if n.last_error().is_some() { prop_assert_eq!(n.get(), 7); }
        if d.last_error().is_some() { prop_assert_eq!(d.get(), Duration::from_secs(1)); }
        let _ = f.is_enabled_for(&text);
    }
}

#[test]
fn concurrent_changes_end_with_the_latest_value() {
    let config = ConfigStore::new();
    let n = config.property("n", 0u64);
    let text = config.property("s", String::new());
    // The last value each callback saw. The yield widens the window in which another thread's
    // newer change could be delivered first (and then overwritten by this older one).
    let n_seen = Arc::new(Mutex::new(n.get()));
    let s_seen = Arc::new(Mutex::new(text.get()));
    {
        let n_seen = n_seen.clone();
        n.on_change(move |v| {
            std::thread::yield_now();
            *n_seen.lock().unwrap() = *v;
        });
        let s_seen = s_seen.clone();
        text.on_change(move |v| {
            std::thread::yield_now();
            *s_seen.lock().unwrap() = v.clone();
        });
    }
    for round in 0..200u64 {
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let config = &config;
                s.spawn(move || {
                    let v = (round * 10 + t).to_string();
                    config.set_override("n", v.clone());
                    config.set_override("s", v);
                });
            }
        });
        let effective = config.effective("n").unwrap().value;
        assert_eq!(n.get().to_string(), effective, "round {round}");
        assert_eq!(**n.load(), n.get());
        assert_eq!(text.get(), config.effective("s").unwrap().value);
        // Every thread has returned: callbacks ended on the latest value.
        assert_eq!(
            *n_seen.lock().unwrap(),
            n.get(),
            "callback of n, round {round}"
        );
        assert_eq!(
            *s_seen.lock().unwrap(),
            text.get(),
            "callback of s, round {round}"
        );
    }
}

#[test]
fn a_callback_may_change_config_itself() {
    let config = ConfigStore::new();
    let a = config.property("a", 0u32);
    let b = config.property("b", 0u32);
    {
        let config = config.clone();
        a.on_change(move |v| config.set_override("b", (v * 2).to_string()));
    }
    {
        let config = config.clone();
        // Re-entering the same property from its own callback must not deadlock either.
        a.on_change(move |v| {
            if *v == 1 {
                config.set_override("a", "3");
            }
        });
    }
    config.set_override("a", "1");
    assert_eq!(a.get(), 3);
    assert_eq!(b.get(), 6);
}

#[test]
fn buckets_are_stable_across_releases_and_flags_agree_with_them() {
    // Computed independently (FNV-1a 64 over "flag" 0xff "subject" 0xff, mod 10,000): a
    // change here would flip users between releases.
    for (subject, expected) in [("tenant-1", 1673), ("tenant-2", 4158), ("user-42", 8855)] {
        assert_eq!(
            bucket("feature.newCheckout", subject),
            expected,
            "{subject}"
        );
    }
    let config = ConfigStore::new();
    let flag = FeatureFlag::new(&config, "feature.newCheckout", false);
    config.set_override("feature.newCheckout", "41.59%");
    assert!(flag.is_enabled_for("tenant-1") && flag.is_enabled_for("tenant-2"));
    assert!(!flag.is_enabled_for("user-42"));
    config.set_override("feature.newCheckout", "41.58%");
    assert!(!flag.is_enabled_for("tenant-2"), "4158 is not below 4158");
}

#[test]
fn a_panicking_callback_does_not_stop_later_deliveries() {
    let config = ConfigStore::new();
    let n = config.property("n", 0u32);
    let seen = Arc::new(Mutex::new(Vec::new()));
    {
        let seen = seen.clone();
        n.on_change(move |v| {
            assert_ne!(*v, 1, "a callback that panics on 1");
            seen.lock().unwrap().push(*v);
        });
    }
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        config.set_override("n", "1")
    }));
    assert!(panicked.is_err());
    config.set_override("n", "2");
    assert_eq!(*seen.lock().unwrap(), vec![2]);
}
