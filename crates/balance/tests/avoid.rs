//! `call_avoiding`: a retry goes to another instance than the failed try while another can
//! take it, and to the same one when it is the only one left.

use std::sync::Arc;

use breakwater_balance::{BalanceConfig, Balancer, Endpoint};
use breakwater_circuit_breaker::error::BoxError;
use tower::service_fn;

fn fleet(ids: &[&str]) -> Vec<Endpoint> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| Endpoint::new(*id, "127.0.0.1", 9000 + i as u16))
        .collect()
}

#[tokio::test]
async fn avoided_instances_get_no_request_while_another_can_take_it() {
    let (list, updates) = tokio::sync::watch::channel(fleet(&["a", "b", "c"]));
    let make = |e: &Endpoint| {
        let id = e.id.clone();
        service_fn(move |_: ()| std::future::ready(Ok::<_, BoxError>(id.clone())))
    };
    let balancer = Balancer::fixed("svc", updates, make, BalanceConfig::default()).unwrap();
    let avoid: Vec<Arc<str>> = vec!["a".into()];
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..3_000 {
        let id = balancer.call_avoiding((), &avoid).await.unwrap();
        *seen.entry(id).or_insert(0) += 1;
    }
    assert!(!seen.contains_key("a"), "{seen:?}");
    assert!(seen["b"] > 500 && seen["c"] > 500, "{seen:?}");

    let both: Vec<Arc<str>> = vec!["a".into(), "b".into()];
    for _ in 0..100 {
        assert_eq!(balancer.call_avoiding((), &both).await.unwrap(), "c");
    }
    // Every instance avoided: the request still goes somewhere.
    let all: Vec<Arc<str>> = vec!["a".into(), "b".into(), "c".into()];
    assert!(balancer.call_avoiding((), &all).await.is_ok());

    // One instance left, and it is the avoided one: it gets the retry.
    list.send(fleet(&["a"])).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while balancer.snapshot().instances.len() != 1 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    assert_eq!(balancer.call_avoiding((), &avoid).await.unwrap(), "a");
}
