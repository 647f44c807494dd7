use super::*;
use crate::wire::{Instance, Status};

fn instance(app: &str, id: &str) -> Instance {
    Instance {
        instance_id: id.into(),
        app: app.into(),
        host_name: format!("{id}.local"),
        ip_addr: "10.0.0.1".into(),
        status: Status::Up,
        ..Instance::default()
    }
}

#[test]
fn overrides_survive_re_registration_and_dirtier_copies_win() {
    let r = InstanceRegistry::new(InstanceRegistryConfig::default());
    r.register(instance("shop", "a"), 1_000).unwrap();
    r.set_status_override("SHOP", "a", Status::OutOfService, None, 2_000)
        .unwrap();
    let mut again = instance("shop", "a");
    again.last_dirty_timestamp = 3_000;
    r.register(again, 3_000).unwrap();
    let i = r.instance(Some("shop"), "a").unwrap();
    assert_eq!(i.status, Status::OutOfService, "override survives");
    assert_eq!(i.overridden_status, Status::OutOfService);
    // An older copy does not replace a dirtier one.
    let mut old = instance("shop", "a");
    old.last_dirty_timestamp = 500;
    old.metadata.insert("stale".into(), "yes".into());
    r.register(old, 4_000).unwrap();
    assert!(
        !r.instance(None, "a")
            .unwrap()
            .metadata
            .contains_key("stale")
    );
    r.remove_status_override("shop", "a", Some(Status::Up), None, 5_000)
        .unwrap();
    assert_eq!(r.instance(None, "a").unwrap().status, Status::Up);
}

#[test]
fn status_rules_follow_eurekas_order() {
    let r = InstanceRegistry::new(InstanceRegistryConfig::default());
    r.register(instance("shop", "a"), 1_000).unwrap();
    r.set_status_override("shop", "a", Status::OutOfService, Some(7_000), 2_000)
        .unwrap();
    let i = r.instance(None, "a").unwrap();
    assert_eq!(
        i.last_dirty_timestamp, 7_000,
        "the caller's newer timestamp"
    );
    // An instance reporting DOWN keeps its own status, whatever the override.
    let mut down = instance("shop", "a");
    down.status = Status::Down;
    down.last_dirty_timestamp = 8_000;
    r.register(down, 8_000).unwrap();
    assert_eq!(r.instance(None, "a").unwrap().status, Status::Down);
    // Back UP: the override applies again.
    let mut up = instance("shop", "a");
    up.last_dirty_timestamp = 9_000;
    r.register(up, 9_000).unwrap();
    assert_eq!(r.instance(None, "a").unwrap().status, Status::OutOfService);
    // Removed without a new status (as the Java client does): UNKNOWN, and the next
    // renewal asks the instance to register again; then it is UP on its own say.
    r.remove_status_override("shop", "a", None, None, 10_000)
        .unwrap();
    assert_eq!(r.instance(None, "a").unwrap().status, Status::Unknown);
    assert!(matches!(
        r.renew("shop", "a", None, 11_000),
        Err(InstanceRegistryError::StatusUnknown { .. })
    ));
    let mut again = instance("shop", "a");
    again.last_dirty_timestamp = 12_000;
    r.register(again, 12_000).unwrap();
    assert_eq!(r.instance(None, "a").unwrap().status, Status::Up);
    r.renew("shop", "a", None, 13_000).unwrap();
}

#[test]
fn renew_answers_not_found_for_unknown_leases_and_newer_clients() {
    let r = InstanceRegistry::new(InstanceRegistryConfig::default());
    assert!(matches!(
        r.renew("shop", "a", None, 1),
        Err(InstanceRegistryError::NotFound { .. })
    ));
    let mut i = instance("shop", "a");
    i.last_dirty_timestamp = 100;
    r.register(i, 1_000).unwrap();
    r.renew("shop", "a", Some(100), 2_000).unwrap();
    assert!(matches!(
        r.renew("shop", "a", Some(101), 3_000),
        Err(InstanceRegistryError::ClientNewer { .. })
    ));
}

#[test]
fn delta_keeps_three_minutes_and_carries_the_full_hash() {
    let r = InstanceRegistry::new(InstanceRegistryConfig::default());
    r.register(instance("shop", "a"), 0).unwrap();
    r.register(instance("shop", "b"), 100_000).unwrap();
    r.cancel("shop", "a", 150_000).unwrap();
    let d = r.delta(150_000);
    // One entry per instance: `a`'s cancellation replaced its registration.
    assert_eq!(d.len(), 2);
    assert_eq!(d.apps_hashcode, "UP_1_");
    // At 200 s the registration of `a` (at 0) has left the 180 s window.
    let d = r.delta(200_001);
    let actions: Vec<_> = d
        .instances()
        .map(|i| (i.id().to_owned(), i.action_type))
        .collect();
    assert_eq!(
        actions,
        [
            ("b".to_owned(), Some(ActionType::Added)),
            ("a".to_owned(), Some(ActionType::Deleted))
        ]
    );
}

#[test]
fn eviction_waits_out_self_preservation() {
    let r = InstanceRegistry::new(InstanceRegistryConfig::default());
    for id in ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"] {
        r.register(instance("shop", id), 0).unwrap();
    }
    // Nobody renewed in the last minute: below 85 % of the expected 20 per minute.
    assert!(r.self_preserving(200_000));
    assert!(r.evict(200_000).is_empty());
    // Nine of ten keep renewing every 30 s; `j` has gone silent.
    for t in [120_000, 150_000, 180_000, 210_000, 240_000] {
        for id in ["a", "b", "c", "d", "e", "f", "g", "h", "i"] {
            r.renew("shop", id, None, t).unwrap();
        }
    }
    assert!(!r.self_preserving(245_000), "18 renewals > 17 = 85 % of 20");
    assert_eq!(r.evict(245_000), ["j"]);
    assert_eq!(r.applications().len(), 9);
}

#[test]
fn the_delta_keeps_one_entry_per_instance() {
    let r = InstanceRegistry::new(InstanceRegistryConfig::default());
    r.register(instance("shop", "a"), 1_000).unwrap();
    r.register(instance("shop", "b"), 1_000).unwrap();
    let blob = "x".repeat(10_000);
    for n in 0..150 {
        r.update_metadata(
            "shop",
            "a",
            [("blob".into(), format!("{n}{blob}"))],
            2_000 + n,
        )
        .unwrap();
    }
    let delta = r.delta(5_000);
    assert_eq!(delta.len(), 2, "one entry per instance, not one per change");
    let a = delta.instances().find(|i| i.id() == "a").unwrap();
    assert!(
        a.metadata["blob"].starts_with("149"),
        "the latest change is kept"
    );
    let (entries, bytes) = r.delta_queue();
    assert_eq!(entries, 2);
    assert!(bytes < 20_000, "{bytes} bytes");
}

#[test]
fn the_delta_queue_is_bounded_in_count_and_bytes() {
    let r = InstanceRegistry::new(InstanceRegistryConfig {
        max_delta_entries: 3,
        max_delta_bytes: 1 << 20,
        ..InstanceRegistryConfig::default()
    });
    for id in ["a", "b", "c", "d", "e"] {
        r.register(instance("shop", id), 1_000).unwrap();
    }
    let ids: Vec<String> = r
        .delta(1_000)
        .instances()
        .map(|i| i.id().to_owned())
        .collect();
    assert_eq!(ids, ["c", "d", "e"], "the oldest changes go first");
    let r = InstanceRegistry::new(InstanceRegistryConfig {
        max_delta_bytes: 3_000,
        ..InstanceRegistryConfig::default()
    });
    for id in ["a", "b", "c", "d", "e"] {
        let mut i = instance("shop", id);
        i.metadata.insert("pad".into(), "p".repeat(1_000));
        r.register(i, 1_000).unwrap();
    }
    let (entries, bytes) = r.delta_queue();
    assert!(
        entries < 5 && bytes <= 3_000,
        "{entries} entries, {bytes} bytes"
    );
    assert_eq!(
        r.applications().len(),
        5,
        "the registry itself keeps everything"
    );
}

#[test]
fn metadata_applications_and_instances_have_limits() {
    let r = InstanceRegistry::new(InstanceRegistryConfig {
        max_metadata_entries: 2,
        max_metadata_bytes: 100,
        max_applications: 1,
        max_instances_per_app: 2,
        ..InstanceRegistryConfig::default()
    });
    r.register(instance("shop", "a"), 1).unwrap();
    r.update_metadata(
        "shop",
        "a",
        [("k1".into(), "v".into()), ("k2".into(), "v".into())],
        2,
    )
    .unwrap();
    let err = r
        .update_metadata("shop", "a", [("k3".into(), "v".into())], 3)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("3 entries, more than the 2 allowed"),
        "{err}"
    );
    let err = r
        .update_metadata("shop", "a", [("k1".into(), "v".repeat(200))], 3)
        .unwrap_err();
    assert!(
        err.to_string().contains("bytes, more than the 100 allowed"),
        "{err}"
    );
    assert_eq!(
        r.instance(None, "a").unwrap().metadata["k1"],
        "v",
        "refused: unchanged"
    );
    let mut big = instance("shop", "b");
    big.metadata.insert("k".into(), "v".repeat(200));
    assert!(matches!(
        r.register(big, 4),
        Err(InstanceRegistryError::MetadataTooLarge { .. })
    ));
    r.register(instance("shop", "b"), 4).unwrap();
    assert!(matches!(
        r.register(instance("shop", "c"), 5),
        Err(InstanceRegistryError::Full { .. })
    ));
    assert!(matches!(
        r.register(instance("cart", "x"), 5),
        Err(InstanceRegistryError::Full { .. })
    ));
    // Re-registering what is there is always allowed.
    r.register(instance("shop", "b"), 6).unwrap();
}

#[test]
fn one_chatty_client_does_not_hold_self_preservation_off() {
    let r = InstanceRegistry::new(InstanceRegistryConfig::default());
    for id in ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"] {
        r.register(instance("shop", id), 0).unwrap();
    }
    // `a` heartbeats five times a second for two minutes; nobody else renews.
    for t in (60_000..180_000).step_by(200) {
        r.renew("shop", "a", None, t).unwrap();
    }
    assert!(
        r.self_preserving(185_000),
        "one instance of ten renewed: self-preservation holds"
    );
    assert!(r.evict(185_000).is_empty());
}

#[test]
fn thresholds_outside_zero_to_one_are_refused_and_never_underflow() {
    for bad in [1.5, -0.1, f64::NAN] {
        let config = InstanceRegistryConfig {
            renewal_percent_threshold: bad,
            ..InstanceRegistryConfig::default()
        };
        assert!(config.check().is_err(), "{bad}");
        // A registry built anyway does not panic when it evicts.
        let r = InstanceRegistry::new(config);
        r.register(instance("shop", "a"), 0).unwrap();
        let _ = r.evict(1_000_000);
    }
    assert!(InstanceRegistryConfig::default().check().is_ok());
}
