//! Swagger UI at `/docs`, on the API's OpenAPI document, from files
//! vendored into the binary (`ingress/assets/swagger-ui`): no CDN, nothing
//! fetched at build or run time. Its page has a Content-Security-Policy
//! that allows only this origin's scripts, styles, images and fetches
//! (Swagger UI sets inline styles, hence `'unsafe-inline'` for styles only).

use axum::Router;
use axum::response::Response;
use axum::routing::get;

pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                       connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>orderflow API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"#;

fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    crate::security::browser_file(body, content_type, CSP, "public, max-age=3600")
}

/// `/docs` and its assets.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/docs", get(|| async { asset("text/html; charset=utf-8", PAGE.as_bytes()) }))
        .route(
            "/docs/swagger-ui-bundle.js",
            get(|| async { asset("text/javascript", include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js")) }),
        )
        .route(
            "/docs/swagger-ui.css",
            get(|| async { asset("text/css", include_bytes!("../assets/swagger-ui/swagger-ui.css")) }),
        )
        .route(
            "/docs/init.js",
            get(|| async { asset("text/javascript", include_bytes!("../assets/swagger-ui/init.js")) }),
        )
}
