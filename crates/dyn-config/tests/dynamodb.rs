//! The DynamoDB layer against a real DynamoDB API (moto_server on loopback).

mod common;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use breakwater_dyn_config::admin::{Admin, WriteError};
use breakwater_dyn_config::{ConfigStore, DynamoDbSource, Scope, SourceKind};
use common::{ARRIVAL, Moto, eventually};

async fn setup(moto: &Moto, table: &str) -> Admin {
    let admin = Admin::new(moto.client(), table);
    admin.create_tables(false).await.expect("tables created");
    admin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_follows_writes_and_keeps_the_last_good_value() {
    let moto = Moto::start().await;
    let admin = setup(&moto, "cfg").await;
    admin
        .write(
            "orders.timeoutMs",
            &Scope::default(),
            Some("800"),
            "test",
            None,
        )
        .await
        .unwrap();

    let config = ConfigStore::new();
    let timeout = config.property("orders.timeoutMs", 1000u64);
    let source =
        DynamoDbSource::new(moto.client(), "cfg").poll_interval(Duration::from_millis(200));
    let task = source.start(config.clone()).await.expect("first load");
    assert_eq!(timeout.get(), 800, "the table's value after the first load");

    admin
        .write(
            "orders.timeoutMs",
            &Scope::default(),
            Some("250"),
            "sre",
            None,
        )
        .await
        .unwrap();
    let took = eventually(ARRIVAL, || timeout.get() == 250).await;
    assert!(
        took.is_some(),
        "the new value arrives within the poll interval + 1 s"
    );

    // A bad value (written behind the CLI's back) is refused; the last good value stays.
    moto.client()
        .put_item()
        .table_name("cfg")
        .item("key", AttributeValue::S("orders.timeoutMs".into()))
        .item("scope", AttributeValue::S("*".into()))
        .item("value", AttributeValue::S("soon".into()))
        .item("version", AttributeValue::N("9".into()))
        .send()
        .await
        .unwrap();
    admin
        .write("bump", &Scope::default(), Some("1"), "test", None)
        .await
        .unwrap();
    let refused = eventually(ARRIVAL, || timeout.last_error().is_some()).await;
    assert!(refused.is_some(), "the bad value was seen and refused");
    assert_eq!(timeout.get(), 250);
    let error = timeout.last_error().unwrap();
    assert_eq!(error.origin.kind, SourceKind::DynamoDb);
    let message = error.to_string();
    assert!(
        message.contains("orders.timeoutMs")
            && message.contains("table cfg")
            && message.contains("version 9"),
        "{message}"
    );

    // Deleting the row falls back to the lower layers (here: the default).
    admin
        .write("orders.timeoutMs", &Scope::default(), None, "sre", Some(9))
        .await
        .unwrap();
    let back = eventually(ARRIVAL, || timeout.get() == 1000).await;
    assert!(back.is_some(), "a deleted key falls back to the default");
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_most_specific_matching_row_wins() {
    let moto = Moto::start().await;
    let admin = setup(&moto, "scoped").await;
    let scope = |app: Option<&str>, instance: Option<&str>, env: Option<&str>| Scope {
        app: app.map(Into::into),
        instance: instance.map(Into::into),
        environment: env.map(Into::into),
        ..Scope::default()
    };
    for (s, v) in [
        (scope(None, None, None), "global"),
        (scope(None, None, Some("prod")), "prod"),
        (scope(Some("checkout"), None, None), "checkout"),
        (scope(Some("checkout"), Some("i-1"), None), "checkout-i-1"),
        (scope(Some("search"), None, None), "search"),
    ] {
        admin.write("k", &s, Some(v), "test", None).await.unwrap();
    }
    for (reader, expected) in [
        (
            scope(Some("checkout"), Some("i-1"), Some("prod")),
            "checkout-i-1",
        ),
        (
            scope(Some("checkout"), Some("i-2"), Some("prod")),
            "checkout",
        ),
        (scope(Some("billing"), None, Some("prod")), "prod"),
        (scope(Some("billing"), None, Some("dev")), "global"),
    ] {
        let config = ConfigStore::new();
        let k = config.property("k", String::from("default"));
        DynamoDbSource::new(moto.client(), "scoped")
            .scope(reader.clone())
            .load(&config)
            .await
            .unwrap();
        assert_eq!(k.get(), expected, "reader {reader}");
    }
    // Deleting a scoped row falls back to the broader rows, not to nothing.
    admin
        .write(
            "k",
            &scope(Some("checkout"), Some("i-1"), None),
            None,
            "test",
            None,
        )
        .await
        .unwrap();
    let config = ConfigStore::new();
    let k = config.property("k", String::from("default"));
    DynamoDbSource::new(moto.client(), "scoped")
        .scope(scope(Some("checkout"), Some("i-1"), Some("prod")))
        .load(&config)
        .await
        .unwrap();
    assert_eq!(k.get(), "checkout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_conditional_audited_and_can_be_rolled_back() {
    let moto = Moto::start().await;
    let admin = setup(&moto, "audit").await;
    let global = Scope::default();
    let v1 = admin
        .write("feature.x", &global, Some("off"), "alice", None)
        .await
        .unwrap();
    assert_eq!((v1.version, v1.previous_value.as_deref()), (1, None));
    // Bob writes version 2 while Alice still believes it is at 1.
    admin
        .write("feature.x", &global, Some("25%"), "bob", Some(1))
        .await
        .unwrap();
    match admin
        .write("feature.x", &global, Some("on"), "alice", Some(1))
        .await
    {
        Err(WriteError::Conflict { current, by, .. }) => {
            assert_eq!((current, by.as_str()), (2, "bob"));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let row = admin.get("feature.x", &global).await.unwrap().unwrap();
    assert_eq!(row.value.as_deref(), Some("25%"), "nothing was overwritten");
    assert_eq!(row.updated_by.as_deref(), Some("bob"));
    assert_eq!(row.previous_value.as_deref(), Some("off"));
    assert!(row.updated_at.as_deref().is_some_and(|t| t.contains('T')));

    let rolled = admin
        .rollback("feature.x", &global, 1, "carol", None)
        .await
        .unwrap();
    assert_eq!((rolled.version, rolled.value.as_deref()), (3, Some("off")));
    let history = admin.history("feature.x", &global).await.unwrap();
    let versions: Vec<(u64, Option<&str>, &str)> = history
        .iter()
        .map(|e| (e.version, e.value.as_deref(), e.updated_by.as_str()))
        .collect();
    assert_eq!(
        versions,
        vec![
            (1, Some("off"), "alice"),
            (2, Some("25%"), "bob"),
            (3, Some("off"), "carol")
        ]
    );
    assert!(matches!(
        admin.rollback("feature.x", &global, 7, "carol", None).await,
        Err(WriteError::NoSuchVersion { version: 7, .. })
    ));

    // Validation of known keys happens before anything is written.
    let refused = admin
        .write(
            "hystrix.command.payments.circuitBreaker.errorThresholdPercentage",
            &global,
            Some("150"),
            "alice",
            None,
        )
        .await;
    assert!(
        matches!(refused, Err(WriteError::Invalid { .. })),
        "{refused:?}"
    );
    assert!(
        admin
            .get(
                "hystrix.command.payments.circuitBreaker.errorThresholdPercentage",
                &global
            )
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_stay_while_dynamodb_is_unreachable() {
    let moto = Moto::start().await;
    let admin = setup(&moto, "down").await;
    admin
        .write("k", &Scope::default(), Some("42"), "t", None)
        .await
        .unwrap();
    let config = ConfigStore::new();
    let k = config.property("k", 0u32);
    let task = DynamoDbSource::new(moto.client(), "down")
        .poll_interval(Duration::from_millis(50))
        .start(config.clone())
        .await
        .unwrap();
    assert_eq!(k.get(), 42);
    let client = moto.client();
    drop(moto); // DynamoDB goes away
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(k.get(), 42, "the last good value stays");
    assert!(!task.is_finished(), "the poller keeps trying");
    assert!(
        DynamoDbSource::new(client, "down").version().await.is_err(),
        "DynamoDB is really down"
    );
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_with_a_stream_pushes_changes_without_waiting_for_a_poll() {
    let moto = Moto::start().await;
    let admin = Admin::new(moto.client(), "pushed");
    admin
        .create_tables(true)
        .await
        .expect("tables with a stream");
    admin
        .write("k", &Scope::default(), Some("1"), "t", None)
        .await
        .unwrap();
    let config = ConfigStore::new();
    let k = config.property("k", 0u32);
    // Polling every 60 s: only the stream can deliver within the test.
    let task = DynamoDbSource::new(moto.client(), "pushed")
        .streams(moto.streams_client())
        .poll_interval(Duration::from_secs(60))
        .start(config.clone())
        .await
        .unwrap();
    assert_eq!(k.get(), 1);
    // No pause here: stream positions are taken before `start` returns.
    for value in 2..=4u32 {
        admin
            .write("k", &Scope::default(), Some(&value.to_string()), "t", None)
            .await
            .unwrap();
        // Arrival well inside the 60 s poll interval proves the stream delivered it; how fast
        // is measured by the change_latency bench, not here.
        let took = eventually(ARRIVAL, || k.get() == value).await;
        assert!(
            took.is_some(),
            "value {value} never arrived through the stream"
        );
    }
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_records_update_only_their_key_with_scopes_and_deletes() {
    let moto = Moto::start().await;
    let admin = Admin::new(moto.client(), "pushed-keys");
    admin.create_tables(true).await.unwrap();
    let checkout = Scope {
        app: Some("checkout".into()),
        ..Scope::default()
    };
    let search = Scope {
        app: Some("search".into()),
        ..Scope::default()
    };
    admin
        .write("a", &Scope::default(), Some("global"), "t", None)
        .await
        .unwrap();
    let config = ConfigStore::new();
    let a = config.property("a", String::from("default"));
    let b = config.property("b", 0u32);
    let task = DynamoDbSource::new(moto.client(), "pushed-keys")
        .scope(checkout.clone())
        .streams(moto.streams_client())
        .stream_interval(Duration::from_millis(50))
        .poll_interval(Duration::from_secs(60))
        .start(config.clone())
        .await
        .unwrap();
    assert_eq!(a.get(), "global");
    let within = |what: &'static str| {
        move |took: Option<Duration>| {
            assert!(took.is_some(), "{what} did not arrive through the stream");
        }
    };
    // A row for another app is not ours; a row for ours wins over the global one.
    admin
        .write("a", &search, Some("search"), "t", None)
        .await
        .unwrap();
    admin
        .write("b", &Scope::default(), Some("7"), "t", None)
        .await
        .unwrap();
    within("b")(eventually(ARRIVAL, || b.get() == 7).await);
    assert_eq!(
        a.get(),
        "global",
        "the search row does not apply to checkout"
    );
    admin
        .write("a", &checkout, Some("checkout"), "t", None)
        .await
        .unwrap();
    within("a (checkout)")(eventually(ARRIVAL, || a.get() == "checkout").await);
    // Deleting our row falls back to the global one; deleting that, to the default.
    admin.write("a", &checkout, None, "t", None).await.unwrap();
    within("a (global again)")(eventually(ARRIVAL, || a.get() == "global").await);
    admin
        .write("a", &Scope::default(), None, "t", None)
        .await
        .unwrap();
    within("a (default)")(eventually(ARRIVAL, || a.get() == "default").await);
    // An invalid value through the stream is refused, naming key and origin.
    admin
        .write("b", &Scope::default(), Some("many"), "t", None)
        .await
        .unwrap();
    within("the refusal")(eventually(ARRIVAL, || b.last_error().is_some()).await);
    assert_eq!(b.get(), 7);
    let message = b.last_error().unwrap().to_string();
    assert!(
        message.contains("`b`") && message.contains("DynamoDB (table pushed-keys"),
        "{message}"
    );
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archaius_key_value_table_is_read_and_polled() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let moto = Moto::start().await;
    let client = moto.client();
    // Archaius's layout: partition key `key`, attribute `value`; no sort key, no version item.
    client
        .create_table()
        .table_name("archaius")
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("key")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("key")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let put = |k: &str, v: &str| {
        client
            .put_item()
            .table_name("archaius")
            .item("key", AttributeValue::S(k.into()))
            .item("value", AttributeValue::S(v.into()))
            .send()
    };
    put("orders.retries", "2").await.unwrap();
    let config = ConfigStore::new();
    let retries = config.property("orders.retries", 5u32);
    let task = DynamoDbSource::new(moto.client(), "archaius")
        .poll_interval(Duration::from_millis(100))
        .start(config.clone())
        .await
        .expect("a table without the scope sort key starts");
    assert_eq!(retries.get(), 2);
    put("orders.retries", "4").await.unwrap();
    let took = eventually(ARRIVAL, || retries.get() == 4).await;
    assert!(took.is_some(), "polled by scan");
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_boots_while_dynamodb_is_down_and_picks_the_table_up_later() {
    let port = common::free_port();
    let config = ConfigStore::new();
    config.load_env([("ORDERS_RETRIES".to_owned(), "2".to_owned())]);
    let retries = config.property("orders.retries", 5u32);
    let task = DynamoDbSource::new(common::client_for(port), "late")
        .poll_interval(Duration::from_millis(100))
        .spawn(config.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(retries.get(), 2, "the environment serves meanwhile");
    assert!(!task.is_finished(), "still trying");

    let moto = Moto::start_on(port).await;
    let admin = setup(&moto, "late").await;
    admin
        .write("orders.retries", &Scope::default(), Some("3"), "sre", None)
        .await
        .unwrap();
    let took = eventually(Duration::from_secs(15), || retries.get() == 3).await;
    assert!(took.is_some(), "the table's value once DynamoDB answers");
    task.abort();
}
