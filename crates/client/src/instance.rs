//! One instance of a service as a tower `Service`: requests to `service://NAME/path` go to
//! `http://host:port/path` of the instance the balancer picked, through the traced transport
//! (a client span per attempt).

use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use breakwater_balance::Endpoint;
use breakwater_circuit_breaker::error::BoxError;
use futures::future::BoxFuture;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use tower::Service;

use crate::body::Body;
use crate::durations::{Durations, End, Peer, Timing};
use crate::transport::Transport;

/// Which instance took an attempt: set by the instance when it is called, so the retry loop
/// can send the next attempt elsewhere.
#[derive(Debug, Clone, Default)]
pub(crate) struct Picked(Arc<OnceLock<Arc<str>>>);

impl Picked {
    pub(crate) fn get(&self) -> Option<Arc<str>> {
        self.0.get().cloned()
    }
}

/// An instance: its id, where it listens, and its service's pool.
#[derive(Clone)]
pub(crate) struct Instance {
    id: Arc<str>,
    base: Result<(Scheme, Authority), Arc<str>>,
    transport: Transport,
    peer: Peer,
    durations: Arc<Durations>,
}

impl Instance {
    pub(crate) fn new(
        service: &Arc<str>,
        endpoint: &Endpoint,
        transport: Transport,
        durations: &Arc<Durations>,
    ) -> Self {
        let scheme = if endpoint.secure {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        };
        let base = Authority::try_from(endpoint.authority())
            .map(|authority| (scheme, authority))
            .map_err(|e| {
                format!(
                    "instance {}: address {:?}: {e}",
                    endpoint.id,
                    endpoint.authority()
                )
                .into()
            });
        Instance {
            id: endpoint.id.as_str().into(),
            base,
            transport,
            peer: Peer {
                service: service.clone(),
                address: endpoint.host.as_str().into(),
                port: endpoint.port,
            },
            durations: durations.clone(),
        }
    }
}

impl Service<Request<Body>> for Instance {
    type Response = Response<Incoming>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Response<Incoming>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // The pooled client takes requests at any time.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        if let Some(picked) = request.extensions().get::<Picked>() {
            let _ = picked.0.set(self.id.clone());
        }
        let (scheme, authority) = match &self.base {
            Ok(base) => base.clone(),
            Err(reason) => {
                let reason = reason.to_string();
                return Box::pin(async move { Err(reason.into()) });
            }
        };
        let path = request
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(scheme);
        parts.authority = Some(authority);
        parts.path_and_query = Some(path);
        match Uri::from_parts(parts) {
            Ok(uri) => *request.uri_mut() = uri,
            Err(e) => return Box::pin(async move { Err(e.into()) }),
        }
        let timing = Timing::start(&self.durations, self.peer.clone(), request.method());
        let call = self.transport.call(request);
        Box::pin(async move { timed(timing, call.await.map_err(Into::into)) })
    }
}

/// Ends `timing` with how the attempt went, and hands the result on.
pub(crate) fn timed(
    timing: Timing,
    result: Result<Response<Incoming>, BoxError>,
) -> Result<Response<Incoming>, BoxError> {
    let end = match &result {
        Ok(response) => End::Status(response.status().as_u16()),
        Err(error) if crate::retry::not_sent(error.as_ref()) => End::Error("connect"),
        Err(_) => End::Error("request"),
    };
    timing.end(end);
    result
}
