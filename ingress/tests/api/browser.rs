//! What a browser is told: security headers on every response, and CORS
//! for the configured origins only (none by default).

use reqwest::{Method, Response};

use crate::System;

const SHOP: &str = "https://shop.example.com";

/// A request (method, path, extra headers) and the status it gets.
type Case<'a> = (Method, &'a str, &'a [(&'a str, &'a str)], u16);

fn assert_security_headers(response: &Response, what: &str) {
    let headers = response.headers();
    let expect = [
        ("strict-transport-security", "max-age=63072000; includeSubDomains"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
    ];
    for (name, value) in expect {
        assert_eq!(headers.get(name).and_then(|v| v.to_str().ok()), Some(value), "{what}: {name}");
    }
}

async fn send(system: &System, method: Method, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut request = system.http.request(method, format!("{}{path}", system.api));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("request")
}

fn allowed_origin(response: &Response) -> Option<&str> {
    response.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn every_response_has_security_headers_and_cors_is_for_configured_origins_only() {
    let mut system = System::start().await;
    let fresh = format!("/api/v1/commands/{}", uuid::Uuid::now_v7());
    let cases: [Case<'_>; 5] = [
        (Method::GET, &fresh, &[], 200),
        (Method::GET, "/api/v1/users/me", &[], 401),
        (Method::GET, "/nowhere", &[], 404),
        (Method::PUT, "/api/v1/users/me", &[], 405),
        (Method::GET, "/api/v1/users/me", &[("x-request-id", "not ok")], 400),
    ];
    for (method, path, headers, status) in &cases {
        let response = send(&system, method.clone(), path, headers).await;
        assert_eq!(response.status().as_u16(), *status, "{method} {path}");
        assert_security_headers(&response, &format!("{method} {path}"));
    }

    // By default no origin is allowed: no CORS headers, a preflight is refused.
    let response = send(&system, Method::GET, &fresh, &[("origin", SHOP)]).await;
    assert_eq!(allowed_origin(&response), None);
    let preflight = [("origin", SHOP), ("access-control-request-method", "POST")];
    let response = send(&system, Method::OPTIONS, "/api/v1/users", &preflight).await;
    assert_eq!(allowed_origin(&response), None);
    assert_eq!(response.status().as_u16(), 405);

    system.restart_ingress_with(|s| s.cors.allowed_origins = vec![SHOP.into()]).await;
    let preflight = [
        ("origin", SHOP),
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", "authorization,content-type,idempotency-key"),
    ];
    let response = send(&system, Method::OPTIONS, "/api/v1/users", &preflight).await;
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(allowed_origin(&response), Some(SHOP));
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_lowercase();
    assert!(header("access-control-allow-methods").contains("post"));
    assert!(header("access-control-allow-headers").contains("authorization"));
    assert_eq!(header("access-control-allow-credentials"), "", "bearer tokens, no cookies");
    assert_security_headers(&response, "preflight");
    let response = send(&system, Method::GET, &fresh, &[("origin", SHOP)]).await;
    assert_eq!(allowed_origin(&response), Some(SHOP));
    assert!(header_of(&response, "access-control-expose-headers").contains("x-request-id"));
    // Any other origin gets nothing a browser would accept.
    for other in ["https://evil.example.com", "https://shop.example.com.evil.example", "null"] {
        let response = send(&system, Method::GET, &fresh, &[("origin", other)]).await;
        assert_eq!(allowed_origin(&response), None, "{other}");
        let preflight = [("origin", other), ("access-control-request-method", "POST")];
        let response = send(&system, Method::OPTIONS, "/api/v1/users", &preflight).await;
        assert_eq!(allowed_origin(&response), None, "{other} preflight");
    }
    system.stop().await;
}

fn header_of(response: &Response, name: &str) -> String {
    response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_lowercase()
}
