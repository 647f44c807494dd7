//! Deciding whether a call succeeded, failed, or should be ignored for health.
//!
//! A breaker only sees `Result<Response, Error>`. A [`Classify`] turns it into an
//! [`Outcome`]. Ignored outcomes are counted as bad requests (Hystrix's
//! `HystrixBadRequestException`): they are the caller's fault, not the dependency's, and do not
//! move the error percentage.
//!
//! Errors produced by this crate's own layers are classified before the classifier is asked:
//! [`Elapsed`](crate::error::Elapsed) counts as a timeout, [`Rejected`](crate::error::Rejected) as a
//! bulkhead rejection, both as failures for health, as in Hystrix.

use crate::error::BoxError;

/// What a call meant for the health of its dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The dependency did its job.
    Success,
    /// The dependency failed; counts toward the error percentage.
    Failure,
    /// Not the dependency's fault (a bad request): counted, but not for health.
    Ignored,
}

/// Classifies the result of a call.
///
/// Implemented for closures `Fn(Result<&Res, &BoxError>) -> Outcome`.
pub trait Classify<Res> {
    /// Classifies one result. The error is already boxed, so downcast to look inside.
    fn classify(&self, result: Result<&Res, &BoxError>) -> Outcome;
}

impl<Res, F> Classify<Res> for F
where
    F: Fn(Result<&Res, &BoxError>) -> Outcome,
{
    fn classify(&self, result: Result<&Res, &BoxError>) -> Outcome {
        self(result)
    }
}

/// Every `Ok` is a success and every `Err` a failure. The default.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnyError;

impl<Res> Classify<Res> for AnyError {
    #[inline]
    fn classify(&self, result: Result<&Res, &BoxError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}

/// HTTP: 5xx responses and transport errors fail; 4xx responses are ignored (the caller's
/// fault), except 408 Request Timeout and 429 Too Many Requests, which say the server is in
/// trouble and count as failures.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpStatus;

impl<B> Classify<http::Response<B>> for HttpStatus {
    fn classify(&self, result: Result<&http::Response<B>, &BoxError>) -> Outcome {
        match result {
            Ok(response) => classify_http_status(response.status()),
            Err(_) => Outcome::Failure,
        }
    }
}

/// The status-code rule of [`HttpStatus`], for use in custom classifiers.
pub fn classify_http_status(status: http::StatusCode) -> Outcome {
    match status.as_u16() {
        408 | 429 => Outcome::Failure,
        500..=599 => Outcome::Failure,
        400..=499 => Outcome::Ignored,
        _ => Outcome::Success,
    }
}

/// gRPC over HTTP/2 (tonic, grpc-web): reads `grpc-status` from the response headers (where a
/// trailers-only error response puts it). Codes that mean the server or network is in trouble
/// fail: UNKNOWN(2), DEADLINE_EXCEEDED(4), RESOURCE_EXHAUSTED(8), INTERNAL(13),
/// UNAVAILABLE(14), DATA_LOSS(15). Codes that describe the request are ignored:
/// CANCELLED(1), INVALID_ARGUMENT(3), NOT_FOUND(5), ALREADY_EXISTS(6), PERMISSION_DENIED(7),
/// FAILED_PRECONDITION(9), ABORTED(10), OUT_OF_RANGE(11), UNIMPLEMENTED(12),
/// UNAUTHENTICATED(16). OK(0), a missing header (status in trailers) and an unknown number
/// succeed. HTTP-level 5xx and transport errors fail.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcStatus;

impl<B> Classify<http::Response<B>> for GrpcStatus {
    fn classify(&self, result: Result<&http::Response<B>, &BoxError>) -> Outcome {
        let response = match result {
            Ok(response) => response,
            Err(_) => return Outcome::Failure,
        };
        if response.status().is_server_error() {
            return Outcome::Failure;
        }
        match response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u32>().ok())
        {
            Some(code) => classify_grpc_code(code),
            None => Outcome::Success,
        }
    }
}

/// The code rule of [`GrpcStatus`], for use with a client's own status type (for tonic:
/// `classify_grpc_code(status.code() as u32)`).
pub fn classify_grpc_code(code: u32) -> Outcome {
    match code {
        2 | 4 | 8 | 13 | 14 | 15 => Outcome::Failure,
        1 | 3 | 5 | 6 | 7 | 9 | 10 | 11 | 12 | 16 => Outcome::Ignored,
        _ => Outcome::Success,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, grpc: Option<&str>) -> http::Response<()> {
        let mut builder = http::Response::builder().status(status);
        if let Some(code) = grpc {
            builder = builder.header("grpc-status", code);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn http_rules() {
        let c = HttpStatus;
        assert_eq!(c.classify(Ok(&response(200, None))), Outcome::Success);
        assert_eq!(c.classify(Ok(&response(302, None))), Outcome::Success);
        assert_eq!(c.classify(Ok(&response(404, None))), Outcome::Ignored);
        assert_eq!(c.classify(Ok(&response(400, None))), Outcome::Ignored);
        assert_eq!(c.classify(Ok(&response(429, None))), Outcome::Failure);
        assert_eq!(c.classify(Ok(&response(503, None))), Outcome::Failure);
        let err: BoxError = "connection reset".into();
        assert_eq!(
            Classify::<http::Response<()>>::classify(&c, Err(&err)),
            Outcome::Failure
        );
    }

    #[test]
    fn grpc_rules() {
        let c = GrpcStatus;
        assert_eq!(c.classify(Ok(&response(200, None))), Outcome::Success);
        assert_eq!(c.classify(Ok(&response(200, Some("0")))), Outcome::Success);
        assert_eq!(c.classify(Ok(&response(200, Some("14")))), Outcome::Failure);
        assert_eq!(c.classify(Ok(&response(200, Some("4")))), Outcome::Failure);
        assert_eq!(c.classify(Ok(&response(200, Some("3")))), Outcome::Ignored);
        assert_eq!(c.classify(Ok(&response(200, Some("5")))), Outcome::Ignored);
        assert_eq!(
            c.classify(Ok(&response(200, Some("garbage")))),
            Outcome::Success
        );
        assert_eq!(c.classify(Ok(&response(502, None))), Outcome::Failure);
    }

    #[test]
    fn closures_classify() {
        let c = |r: Result<&u32, &BoxError>| match r {
            Ok(&n) if n >= 10 => Outcome::Failure,
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Ignored,
        };
        assert_eq!(c.classify(Ok(&3)), Outcome::Success);
        assert_eq!(c.classify(Ok(&30)), Outcome::Failure);
    }
}
