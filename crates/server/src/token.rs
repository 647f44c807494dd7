//! Token access: the other half of the loopback-unless-a-token rule.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use http::{HeaderValue, StatusCode, header};

/// Requires `token` on every route of `router` but `public_paths`, presented as
/// `Authorization: Bearer <token>`, as the password of HTTP basic auth (what Eureka clients
/// send for `http://user:<token>@host/eureka/`), or as `?access_token=<token>` (browsers'
/// `EventSource` cannot set headers). Anything else gets 401 with `WWW-Authenticate: Bearer`
/// (not `Basic`, which would make browsers ask for a password).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use axum::{Router, routing::get};
/// use tower::ServiceExt;
///
/// let router = Router::new().route("/", get(|| async { "ok" }));
/// let router = breakwater_server::require_token(router, "s3cret", &[]);
/// let denied = router.clone().oneshot(http::Request::get("/").body(axum::body::Body::empty()).unwrap()).await.unwrap();
/// assert_eq!(denied.status(), 401);
/// let allowed = router
///     .oneshot(http::Request::get("/").header("authorization", "Bearer s3cret").body(axum::body::Body::empty()).unwrap())
///     .await
///     .unwrap();
/// assert_eq!(allowed.status(), 200);
/// # }
/// ```
pub fn require_token(
    router: Router,
    token: impl Into<Arc<str>>,
    public_paths: &'static [&'static str],
) -> Router {
    guard(router, token.into(), move |request| {
        public_paths.contains(&request.uri().path())
    })
}

/// [`require_token`] for writes only: `GET`, `HEAD` and `OPTIONS` pass without it (a registry
/// whose reads are open and whose writes are not, as secured Eureka servers are often run).
pub fn require_token_for_writes(router: Router, token: impl Into<Arc<str>>) -> Router {
    guard(router, token.into(), |request| {
        matches!(
            *request.method(),
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
        )
    })
}

fn guard(
    router: Router,
    token: Arc<str>,
    open: impl Fn(&Request) -> bool + Clone + Send + Sync + 'static,
) -> Router {
    router.layer(middleware::from_fn(move |request: Request, next: Next| {
        let token = token.clone();
        let open = open.clone();
        async move {
            if open(&request) || presents(&request, &token) {
                return next.run(request).await;
            }
            let mut response = (
                StatusCode::UNAUTHORIZED,
                "a token is required: `Authorization: Bearer <token>`, basic auth with the \
                 token as password, or `?access_token=<token>`\n",
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }))
}

fn presents(request: &Request, token: &str) -> bool {
    use base64::Engine as _;
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    if let Some(value) = authorization {
        // Auth schemes are case-insensitive (RFC 9110): `bearer` and `BASIC` count too.
        let (scheme, credentials) = value.split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("Bearer") {
            return constant_time_eq(credentials.trim().as_bytes(), token.as_bytes());
        }
        if scheme.eq_ignore_ascii_case("Basic") {
            let basic = credentials;
            let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic.trim()) else {
                return false;
            };
            let password = match decoded.iter().position(|&b| b == b':') {
                Some(colon) => &decoded[colon + 1..],
                None => &decoded[..],
            };
            return constant_time_eq(password, token.as_bytes());
        }
    }
    let from_query = request.uri().query().and_then(|q| {
        q.split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == "access_token")
            .map(|(_, v)| v)
    });
    // A query value is form-encoded (RFC 6750 section 2.3): `%2B` is `+`, `+` is a space.
    from_query.is_some_and(|presented| {
        let presented = presented.replace('+', " ");
        let decoded: Vec<u8> = percent_encoding::percent_decode_str(&presented).collect();
        constant_time_eq(&decoded, token.as_bytes())
    })
}

// Compares without returning early, so the time taken does not tell how much matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
