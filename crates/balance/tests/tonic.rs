//! The balancer under tonic: each instance is a tonic `Channel` (HTTP/2 to one address), and
//! tonic's generic gRPC client sends unary calls through the balancer. The servers are three
//! h2c servers on loopback that speak gRPC's wire format (a length-prefixed empty message and
//! `grpc-status` trailers); one answers every call `UNAVAILABLE` as a trailers-only response
//! (what gRPC servers send for an error before any message) and is ejected.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use breakwater_balance::{BalanceConfig, Balancer, Endpoint, InstanceState, StaticDiscover};
use breakwater_circuit_breaker::error::BoxError;
use breakwater_circuit_breaker::{Classify, Outcome};
use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::StreamBody;
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic_prost::ProstCodec;

/// The frames of one answer, in order.
struct Iter(std::vec::IntoIter<Frame<Bytes>>);

impl futures_core::Stream for Iter {
    type Item = Result<Frame<Bytes>, Infallible>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(self.0.next().map(Ok))
    }
}

/// An h2c server on 127.0.0.1 answering every gRPC call with `grpc-status` `status`.
async fn grpc_server(status: u8, hits: Arc<AtomicUsize>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let hits = hits.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_request: Request<Incoming>| {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let response = if status == 0 {
                        let mut trailers = http::HeaderMap::new();
                        trailers.insert("grpc-status", HeaderValue::from_static("0"));
                        // One empty message (no compression, length 0), then the status.
                        let frames = vec![
                            Frame::data(Bytes::from_static(&[0, 0, 0, 0, 0])),
                            Frame::trailers(trailers),
                        ];
                        Response::builder()
                            .header("content-type", "application/grpc")
                            .body(StreamBody::new(Iter(frames.into_iter())))
                    } else {
                        Response::builder()
                            .header("content-type", "application/grpc")
                            .header("grpc-status", u32::from(status))
                            .body(StreamBody::new(Iter(Vec::new().into_iter())))
                    }
                    .unwrap();
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    port
}

/// A call failed if its head carries a `grpc-status` other than 0 (a trailers-only error);
/// the balancer's future ends with the head, so a status in trailers after messages reaches
/// the caller through tonic, not the balancer.
#[derive(Clone, Copy)]
struct GrpcStatus;

impl<B> Classify<Response<B>> for GrpcStatus {
    fn classify(&self, result: Result<&Response<B>, &BoxError>) -> Outcome {
        match result {
            Ok(response) => match response.headers().get("grpc-status").map(|s| s.as_bytes()) {
                None | Some(b"0") => Outcome::Success,
                Some(_) => Outcome::Failure,
            },
            Err(_) => Outcome::Failure,
        }
    }
}

#[tokio::test]
async fn balances_grpc_calls_over_tonic_channels_and_ejects_the_unavailable_server() {
    let hits: Vec<Arc<AtomicUsize>> = (0..3).map(|_| Arc::default()).collect();
    let mut endpoints = Vec::new();
    for (i, status) in [0u8, 0, 14].into_iter().enumerate() {
        let port = grpc_server(status, hits[i].clone()).await;
        endpoints.push(Endpoint::new(format!("grpc-{i}"), "127.0.0.1", port));
    }
    let (_list, updates) = tokio::sync::watch::channel(endpoints);
    // The balancer's future ends with the response head: a trailers-only error carries its
    // `grpc-status` there. (A status in trailers after messages reaches the caller through
    // tonic, not the balancer.)
    let make = |e: &Endpoint| {
        Channel::from_shared(format!("http://{}", e.authority()))
            .unwrap()
            .connect_timeout(Duration::from_secs(2))
            .connect_lazy()
    };
    let balancer = Balancer::with_classifier(
        "grpc",
        StaticDiscover::new(updates, Endpoint::clone),
        make,
        BalanceConfig::default(),
        GrpcStatus,
    )
    .unwrap();
    let client = tonic::client::Grpc::new(balancer.clone());
    // 16 calls at a time: requests in flight are part of the cost, so every server is tried.
    let mut calls = tokio::task::JoinSet::new();
    let mut ok = 0;
    for _ in 0..300 {
        if calls.len() >= 16 && calls.join_next().await.unwrap().unwrap() {
            ok += 1;
        }
        let mut client = client.clone();
        calls.spawn(async move {
            client.ready().await.unwrap();
            let call = client.unary::<(), (), _>(
                tonic::Request::new(()),
                PathAndQuery::from_static("/test.Echo/Call"),
                ProstCodec::default(),
            );
            match tokio::time::timeout(Duration::from_secs(5), call)
                .await
                .expect("answered in time")
            {
                Ok(_) => true,
                Err(status) => {
                    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                    false
                }
            }
        });
    }
    while let Some(done) = calls.join_next().await {
        ok += usize::from(done.unwrap());
    }
    let served: Vec<usize> = hits.iter().map(|h| h.load(Ordering::SeqCst)).collect();
    assert!(served[0] > 20 && served[1] > 20, "{served:?}");
    // Ejected at its 5th failure; calls already sent to it at that moment still arrive.
    assert!(
        served[2] <= 5 + 16,
        "the UNAVAILABLE server is ejected: {served:?}"
    );
    assert_eq!(
        ok,
        served[0] + served[1],
        "every call to a healthy server succeeded"
    );
    let unavailable = balancer
        .snapshot()
        .instances
        .into_iter()
        .find(|i| i.id == "grpc-2")
        .unwrap();
    assert!(
        matches!(unavailable.state, InstanceState::Ejected { .. }),
        "{unavailable:?}"
    );
}
