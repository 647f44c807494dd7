//! The token rule as callers present tokens: bearer in any case, basic auth's password, a
//! form-encoded `access_token`, and reads left open by the writes-only variant.

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use base64::Engine as _;
use breakwater_server::{require_token, require_token_for_writes};
use http::Request;
use tower::ServiceExt;

const TOKEN: &str = "s3cret+/=";

fn router() -> Router {
    Router::new().route("/", get(|| async { "read" }).post(|| async { "written" }))
}

async fn status(router: &Router, request: Request<Body>) -> u16 {
    router
        .clone()
        .oneshot(request)
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn get_with(header: Option<&str>, uri: &str) -> Request<Body> {
    let mut request = Request::get(uri);
    if let Some(value) = header {
        request = request.header("authorization", value);
    }
    request.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn tokens_are_accepted_in_every_form_rfc_6750_and_9110_allow() {
    let guarded = require_token(router(), TOKEN, &[]);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("eureka:{TOKEN}"));
    for (header, uri, want) in [
        (None, "/", 401),
        (Some(format!("Bearer {TOKEN}")), "/", 200),
        (Some(format!("bearer {TOKEN}")), "/", 200),
        (Some(format!("BEARER  {TOKEN}")), "/", 200),
        (Some(format!("Basic {basic}")), "/", 200),
        (Some(format!("basic {basic}")), "/", 200),
        (Some("Bearer s3cret".to_owned()), "/", 401),
        (Some(format!("Token {TOKEN}")), "/", 401),
        (None, "/?access_token=s3cret%2B%2F%3D", 200),
        (None, "/?access_token=s3cret+/=", 401), // `+` in a query is a space
        (None, "/?access_token=wrong", 401),
    ] {
        let got = status(&guarded, get_with(header.as_deref(), uri)).await;
        assert_eq!(got, want, "{header:?} {uri}");
    }
}

#[tokio::test]
async fn the_writes_only_variant_leaves_reads_open() {
    let guarded = require_token_for_writes(router(), TOKEN);
    assert_eq!(status(&guarded, get_with(None, "/")).await, 200);
    let post = |auth: Option<String>| {
        let mut request = Request::post("/");
        if let Some(value) = auth {
            request = request.header("authorization", value);
        }
        request.body(Body::empty()).unwrap()
    };
    assert_eq!(status(&guarded, post(None)).await, 401);
    assert_eq!(
        status(&guarded, post(Some(format!("Bearer {TOKEN}")))).await,
        200
    );
}
