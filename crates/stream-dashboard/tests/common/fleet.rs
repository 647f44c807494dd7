//! A balancer over three instances, one of which fails every call and is ejected.
//!
//! The failing instance comes first, alone, so that it takes the calls that eject it (among
//! healthy ones, the balancer's failure cost starves it before its fifth failure).

use std::time::Duration;

use breakwater_balance::{BalanceConfig, Balancer, Endpoint, InstanceState};
use breakwater_circuit_breaker::error::BoxError;
use tower::{Service, ServiceExt, service_fn};

/// The instance that fails.
pub const FAILING: &str = "payments-b";

type Instance = tower::util::ServiceFn<fn(()) -> std::future::Ready<Result<(), BoxError>>>;

fn ok(_: ()) -> std::future::Ready<Result<(), BoxError>> {
    std::future::ready(Ok(()))
}

fn down(_: ()) -> std::future::Ready<Result<(), BoxError>> {
    std::future::ready(Err("connection reset".into()))
}

/// `payments` over `payments-a`, `-b` (failing) and `-c`, with `-b` already ejected. Keep the
/// returned sender: dropping it ends the list (the balancer keeps its last instances).
pub async fn payments_with_one_ejected() -> (
    Balancer<Instance>,
    tokio::sync::watch::Sender<Vec<Endpoint>>,
) {
    let endpoints = ["payments-a", FAILING, "payments-c"]
        .iter()
        .enumerate()
        .map(|(i, id)| Endpoint {
            zone: Some("zone-1".into()),
            ..Endpoint::new(*id, "127.0.0.1", 9101 + i as u16)
        })
        .collect();
    let endpoints: Vec<Endpoint> = endpoints;
    let failing: Vec<Endpoint> = endpoints
        .iter()
        .filter(|e| e.id == FAILING)
        .cloned()
        .collect();
    let (list, updates) = tokio::sync::watch::channel(failing);
    let make = |e: &Endpoint| -> Instance {
        if e.id == FAILING {
            service_fn(down as fn(()) -> _)
        } else {
            service_fn(ok as fn(()) -> _)
        }
    };
    let balancer = Balancer::fixed("payments", updates, make, BalanceConfig::default()).unwrap();
    let ejected = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let mut b = balancer.clone();
            let _ = async move { b.ready().await?.call(()).await }.await;
            let snapshot = balancer.snapshot();
            let b = snapshot.instances.iter().find(|i| i.id == FAILING);
            if matches!(b.map(|i| i.state), Some(InstanceState::Ejected { .. })) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        ejected.is_ok(),
        "{FAILING} was not ejected within 10 s: {:?}",
        balancer.snapshot()
    );
    list.send(endpoints).unwrap();
    // The healthy ones join and take traffic.
    let joined = tokio::time::timeout(Duration::from_secs(10), async {
        while balancer.snapshot().instances.len() < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for _ in 0..50 {
            let mut b = balancer.clone();
            b.ready().await.unwrap().call(()).await.unwrap();
        }
    })
    .await;
    assert!(
        joined.is_ok(),
        "the healthy instances did not join: {:?}",
        balancer.snapshot()
    );
    (balancer, list)
}

/// A dashboard of `charge-card` (a command) and every balancer's instances, on loopback.
pub async fn instance_dashboard() -> super::Server {
    use breakwater_balance::BalancerRegistry;
    use breakwater_circuit_breaker::CircuitBreakerRegistry;
    use breakwater_stream_dashboard::{BalancerEvents, Dashboard};

    let registry = CircuitBreakerRegistry::new();
    registry.breaker("charge-card");
    super::Server::start(
        Dashboard::new()
            .registry(registry)
            .extension(BalancerEvents::new(BalancerRegistry::global()))
            .router(),
    )
    .await
}
