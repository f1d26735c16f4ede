//! What every response says to a browser, and which browser origins may
//! call the API.
//!
//! - Security headers on every response (also errors and 404s): HSTS (the
//!   API is only ever served over TLS by whatever terminates it; a browser
//!   ignores HSTS over plain HTTP, so development is unaffected),
//!   `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY` (nothing
//!   here is meant to be framed) and `Referrer-Policy: no-referrer`.
//! - CORS only for the origins listed in `cors.allowed_origins` (none by
//!   default: no browser page elsewhere may call the API). Credentials
//!   travel as a bearer token, never cookies, so no
//!   `Access-Control-Allow-Credentials`.

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::settings::CorsSettings;

/// Two years, with subdomains: what the HSTS preload list asks for.
const HSTS: &str = "max-age=63072000; includeSubDomains";

/// A page or asset the ingress serves to browsers (Swagger UI, GraphiQL,
/// the console): its type, the page's Content-Security-Policy, and how long
/// it may be cached.
pub fn browser_file(
    body: impl axum::response::IntoResponse,
    content_type: &'static str,
    csp: &'static str,
    cache_control: &'static str,
) -> axum::response::Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
    response
}

/// `router` with the security headers on every response it gives.
pub fn with_security_headers<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    let headers = [
        (header::STRICT_TRANSPORT_SECURITY, HSTS),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    headers.into_iter().fold(router, |router, (name, value)| {
        router.layer(SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value)))
    })
}

/// The CORS layer for the configured origins; `None` when there are none
/// (then a preflight is answered like any unknown method: 405, and no
/// response carries `Access-Control-Allow-Origin`).
pub fn cors(settings: &CorsSettings) -> Option<CorsLayer> {
    if settings.allowed_origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> =
        settings.allowed_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("prefer"),
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("traceparent"),
            ])
            .expose_headers([
                header::LOCATION,
                header::RETRY_AFTER,
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("preference-applied"),
            ])
            .max_age(Duration::from_secs(settings.max_age_seconds)),
    )
}
