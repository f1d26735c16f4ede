//! The OpenAPI document describes every route and its errors, Swagger UI
//! is served under a Content-Security-Policy, and schemathesis, sending
//! generated requests to the running API as an admin, finds no 500 and no
//! answer the document does not describe.

use orderflow_ingress::access::{Allow, RULES};
use serde_json::Value;

use crate::{ADMIN_EMAIL, System, user};

#[tokio::test]
async fn the_document_covers_every_route_and_schemathesis_finds_nothing() {
    let mut system = System::start().await;
    // The audit routes read the audit log's views: without it they answer 503.
    system.start_audit_log().await;
    let response = system.http.get(format!("{}/api/openapi.json", system.api)).send().await.expect("openapi");
    assert_eq!(response.status().as_u16(), 200);
    let doc: Value = response.json().await.expect("json");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "OpenAPI 3.1: {}", doc["openapi"]);
    for rule in RULES {
        let path = format!("/api/v1{}", rule.path);
        let method = rule.method.as_str().to_lowercase();
        let operation = &doc["paths"][&path][&method];
        assert!(operation.is_object(), "{method} {path} is not in the document");
        let responses = operation["responses"].as_object().expect("responses");
        let mut expected = vec!["400", "422", "429", "503"];
        if let Allow::Roles(_) = rule.allow {
            expected.extend(["401", "403"]);
        }
        for status in expected {
            assert!(responses.contains_key(status), "{method} {path} does not describe {status}");
        }
        assert!(responses.keys().any(|s| s.starts_with('2')), "{method} {path}: no success answer");
    }

    let docs = system.http.get(format!("{}/docs", system.api)).send().await.expect("docs");
    assert_eq!(docs.status().as_u16(), 200);
    let csp = docs.headers()["content-security-policy"].to_str().expect("csp").to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("default-src 'none'"), "{csp}");
    let page = docs.text().await.expect("page");
    assert!(!page.contains("<script>"), "no inline script under the CSP");
    for asset in ["/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/docs/init.js"] {
        assert!(page.contains(asset) || asset == "/docs/init.js" && page.contains("init.js"), "{asset}");
        let response = system.http.get(format!("{}{asset}", system.api)).send().await.expect("asset");
        assert_eq!(response.status().as_u16(), 200, "{asset}");
    }

    // Generated requests against the real API, as an admin (every route is open to it):
    // first every operation but logout, then logout, which ends the admin's session.
    let (_, admin) = user(&system, ADMIN_EMAIL).await;
    let st = std::env::var("OF_TEST_SCHEMATHESIS").expect("OF_TEST_SCHEMATHESIS is set by scripts/test");
    let logout = "/api/v1/auth/logout";
    let operations = orderflow_ingress::access::RULES.len();
    for (filter, passed) in [("--exclude-path", operations - 1), ("--include-path", 1)] {
        let out = tokio::process::Command::new(&st)
            .args([
                "run",
                &format!("{}/api/openapi.json", system.api),
                "--experimental=openapi-3.1",
                "--checks=all",
                "--hypothesis-max-examples=20",
                "--hypothesis-seed=1",
                "--hypothesis-suppress-health-check=all",
                "--no-color",
                filter,
                logout,
                "-H",
                &format!("Authorization: Bearer {admin}"),
            ])
            .env("SCHEMATHESIS_HOOKS", "")
            .output()
            .await
            .expect("run schemathesis");
        let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "schemathesis found problems ({filter} {logout}):\n{report}");
        eprintln!("{report}");
        assert!(report.contains(&format!("{passed} passed")), "every operation was exercised and passed:\n{report}");
    }
    system.stop().await;
}
