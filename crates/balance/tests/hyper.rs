//! The balancer under hyper-util's client, over real sockets: three axum servers on loopback,
//! one of which answers 503. With circuit-breaker's `HttpStatus` classifier the 503s count as
//! failures; the failing server is ejected and the others take the traffic.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use breakwater_balance::{BalanceConfig, Balancer, Endpoint, InstanceState};
use breakwater_circuit_breaker::classify::HttpStatus;
use breakwater_circuit_breaker::error::BoxError;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::discover::{Change, Discover};
use tower::{ServiceExt, service_fn};

/// A server on 127.0.0.1 answering `status`, counting its requests.
async fn server(status: StatusCode, hits: Arc<AtomicUsize>) -> u16 {
    let app = axum::Router::new().route(
        "/price",
        axum::routing::get(move || {
            let hits = hits.clone();
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                (status, "42")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

/// The endpoints of a fixed list, once, as a `Discover` stream (any `Discover` of
/// endpoints will do).
fn once(
    endpoints: Vec<Endpoint>,
) -> impl Discover<Key = String, Service = Endpoint, Error = BoxError> + Send {
    struct List(std::vec::IntoIter<Endpoint>);
    impl futures_core::Stream for List {
        type Item = Result<Change<String, Endpoint>, BoxError>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.next().map(|e| Ok(Change::Insert(e.id.clone(), e))))
        }
    }
    List(endpoints.into_iter())
}

/// One GET of `/price` through `balancer`: whether it answered 200 with the price.
async fn get_price<S>(balancer: S) -> bool
where
    S: tower::Service<Request<Empty<Bytes>>, Response = Response<Incoming>, Error = BoxError>,
{
    let request = Request::get("/price").body(Empty::new()).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), balancer.oneshot(request))
        .await
        .expect("answered in time")
        .unwrap();
    if response.status() != StatusCode::OK {
        return false;
    }
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"42");
    true
}

#[tokio::test]
async fn balances_hyper_util_requests_and_ejects_the_server_answering_503() {
    let hits: Vec<Arc<AtomicUsize>> = (0..3).map(|_| Arc::default()).collect();
    let mut endpoints = Vec::new();
    for (i, status) in [
        StatusCode::OK,
        StatusCode::OK,
        StatusCode::SERVICE_UNAVAILABLE,
    ]
    .into_iter()
    .enumerate()
    {
        let port = server(status, hits[i].clone()).await;
        endpoints.push(Endpoint::new(format!("price-{i}"), "127.0.0.1", port));
    }
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    // Each instance: the shared pooled client with the instance's authority put in the URI.
    let make = move |e: &Endpoint| {
        let client = client.clone();
        let authority = e.authority();
        service_fn(move |mut request: Request<Empty<Bytes>>| {
            let client = client.clone();
            let path = request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            *request.uri_mut() = Uri::builder()
                .scheme("http")
                .authority(authority.as_str())
                .path_and_query(path)
                .build()
                .unwrap();
            async move {
                let response: Response<Incoming> = client.request(request).await?;
                Ok::<_, BoxError>(response)
            }
        })
    };
    let balancer = Balancer::with_classifier(
        "pricing",
        once(endpoints),
        make,
        BalanceConfig::default(),
        HttpStatus,
    )
    .unwrap();
    // 16 requests at a time: requests in flight are part of the cost, so every server is
    // tried (one at a time, the costliest of three is never drawn: p2c compares strictly).
    let mut requests = tokio::task::JoinSet::new();
    let mut ok = 0;
    let mut count = |answered: bool| ok += usize::from(answered);
    for _ in 0..300 {
        if requests.len() >= 16 {
            count(requests.join_next().await.unwrap().unwrap());
        }
        requests.spawn(get_price(balancer.clone()));
    }
    while let Some(answered) = requests.join_next().await {
        count(answered.unwrap());
    }
    let snapshot = balancer.snapshot();
    let failing = snapshot
        .instances
        .iter()
        .find(|i| i.id == "price-2")
        .unwrap();
    assert!(
        matches!(failing.state, InstanceState::Ejected { .. }),
        "{snapshot:?}"
    );
    assert!(
        hits[2].load(Ordering::SeqCst) <= 5 + 16,
        "the 503 server got {:?}",
        hits[2]
    );
    assert!(ok >= 300 - 5 - 16, "{ok} of 300 answered 200");
    assert!(hits[0].load(Ordering::SeqCst) > 50 && hits[1].load(Ordering::SeqCst) > 50);
}
