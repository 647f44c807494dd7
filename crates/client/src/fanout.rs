//! Fan-out: many calls at once, under a concurrency cap and one deadline; every result back,
//! in order.

use std::time::Duration;

use futures::StreamExt;

use crate::client::Client;
use crate::error::Error;
use crate::request::RequestBuilder;
use crate::response::Response;

impl Client {
    /// Sends every request, at most `concurrency` at a time, and gives back each one's result
    /// in the order given. A request not answered within `deadline` of the start (queued ones
    /// included) gets its own timeout error; the others are unaffected.
    ///
    /// Each call goes through its service's stack as a single call would (breaker, retries,
    /// balancer), so a fan-out to one failing service is held back by that service's budget.
    pub async fn fan_out(
        &self,
        requests: impl IntoIterator<Item = RequestBuilder>,
        concurrency: usize,
        deadline: Duration,
    ) -> Vec<Result<Response, Error>> {
        let until = tokio::time::Instant::now() + deadline;
        futures::stream::iter(requests)
            .map(|request| {
                let target = request.target();
                async move {
                    let left = until.saturating_duration_since(tokio::time::Instant::now());
                    if left.is_zero() {
                        return Err(Error::timeout(&target, deadline, 0));
                    }
                    match tokio::time::timeout(left, request.timeout_at_most(left).send()).await {
                        Ok(result) => result,
                        Err(_) => Err(Error::timeout(&target, deadline, 0)),
                    }
                }
            })
            .buffered(concurrency.max(1))
            .collect()
            .await
    }
}
