//! Bad input gets a clear error naming the problem, and nothing reaches Kafka.

use orderflow_harness::system::read;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{PASSWORD, System, get, user};

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error shape>")
}

async fn raw_post(system: &System, path: &str, content_type: &str, body: String) -> (u16, Value) {
    read(
        system
            .http
            .post(format!("{}{path}", system.api))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request"),
    )
    .await
}

#[tokio::test]
async fn refused_requests_name_the_problem_and_send_nothing() {
    let system = System::start().await;
    let (alice_id, alice) = user(&system, "alice@example.com").await;
    let (bob_id, _) = user(&system, "bob@example.com").await;
    let commands = system.topic(orderflow_contracts::users::COMMANDS.name);
    let before = orderflow_testkit::topic::read_topic(&system.kafka.brokers, &commands).await.len();

    let ok = |e: &str, p: &str| json!({"email": e, "password": p, "first_name": "A", "last_name": "B"});
    let (s, b) = raw_post(&system, "/api/v1/users", "application/json", "{\"email\": ".into()).await;
    assert_eq!((s, code(&b)), (400, "MALFORMED_JSON"), "{b}");
    let (s, b) = raw_post(&system, "/api/v1/users", "text/plain", ok("x@example.com", PASSWORD).to_string()).await;
    assert_eq!((s, code(&b)), (415, "UNSUPPORTED_MEDIA_TYPE"), "{b}");
    let (s, b) = system
        .call(
            Method::POST,
            "/api/v1/users",
            None,
            Some(json!({"email": 7, "password": PASSWORD, "first_name": "A", "last_name": "B"})),
        )
        .await;
    assert_eq!((s, code(&b)), (422, "INVALID_BODY"), "{b}");
    assert!(b["error"]["message"].as_str().expect("message").contains("email: invalid type"), "names the field: {b}");
    let mut extra = ok("x@example.com", PASSWORD);
    extra["is_admin"] = json!(true);
    let (s, b) = system.call(Method::POST, "/api/v1/users", None, Some(extra)).await;
    assert_eq!((s, code(&b)), (422, "INVALID_BODY"));
    assert!(b["error"]["message"].as_str().expect("message").contains("unknown field `is_admin`"), "{b}");
    let (s, b) = system.call(Method::POST, "/api/v1/users", None, Some(json!({"email": "x@example.com"}))).await;
    assert_eq!((s, code(&b)), (422, "INVALID_BODY"));
    assert!(b["error"]["message"].as_str().expect("message").contains("missing field"), "{b}");
    let (s, b) = system.call(Method::POST, "/api/v1/users", None, Some(ok("not-an-email", PASSWORD))).await;
    assert_eq!(
        (s, code(&b), b["error"]["details"]["field"].as_str()),
        (422, "VALIDATION_FAILED", Some("email")),
        "{b}"
    );
    let (s, b) = system.call(Method::POST, "/api/v1/users", None, Some(ok("x@example.com", "short"))).await;
    assert_eq!((s, b["error"]["details"]["field"].as_str()), (422, Some("password")), "{b}");
    let mut long_name = ok("x@example.com", PASSWORD);
    long_name["first_name"] = json!("n".repeat(101));
    let (s, b) = system.call(Method::POST, "/api/v1/users", None, Some(long_name)).await;
    assert_eq!((s, b["error"]["details"]["field"].as_str()), (422, Some("first_name")), "{b}");
    let (s, b) = raw_post(
        &system,
        "/api/v1/users",
        "application/json",
        format!("{{\"email\": \"{}\"}}", "x".repeat(1024 * 1024)),
    )
    .await;
    assert_eq!((s, code(&b)), (413, "PAYLOAD_TOO_LARGE"), "{b}");

    // Authentication and authorization.
    let (s, b) = get(&system, "/api/v1/users/me", None).await;
    assert_eq!((s, code(&b)), (401, "UNAUTHORIZED"));
    let forged = {
        let mut parts: Vec<String> = alice.split('.').map(str::to_owned).collect();
        parts[2] = parts[2].chars().rev().collect();
        parts.join(".")
    };
    assert_eq!(get(&system, "/api/v1/users/me", Some(&forged)).await.0, 401);
    let session = uuid::Uuid::now_v7();
    let other_key = orderflow_auth::Tokens::new("some-other-secret-entirely", "orderflow", 3600)
        .issue_access(&alice_id, &["admin".into()], 1, session)
        .expect("token")
        .token;
    assert_eq!(get(&system, "/api/v1/users/me", Some(&other_key)).await.0, 401, "a token signed with another key");
    let expired = orderflow_auth::Tokens::new("orderflow-development-secret-change-me", "orderflow", -120)
        .issue_access(&alice_id, &[], 1, session)
        .expect("token")
        .token;
    let (s, b) = get(&system, "/api/v1/users/me", Some(&expired)).await;
    assert_eq!(s, 401);
    assert!(b["error"]["message"].as_str().expect("message").contains("expired"), "{b}");
    let (s, b) = system
        .call(Method::PATCH, &format!("/api/v1/users/{bob_id}"), Some(&alice), Some(json!({"first_name": "Mallory"})))
        .await;
    assert_eq!((s, code(&b)), (403, "FORBIDDEN"));
    let (s, b) = system
        .call(
            Method::POST,
            &format!("/api/v1/users/{bob_id}/password"),
            Some(&alice),
            Some(json!({"old_password": PASSWORD, "new_password": "stolen password"})),
        )
        .await;
    assert_eq!((s, code(&b)), (403, "FORBIDDEN"));
    assert_eq!(system.call(Method::DELETE, &format!("/api/v1/users/{bob_id}"), Some(&alice), None).await.0, 403);
    assert_eq!(get(&system, "/api/v1/nowhere", None).await.0, 404);
    let (s, b) = system
        .call_with(
            Method::PATCH,
            &format!("/api/v1/users/{alice_id}"),
            Some(&alice),
            Some(json!({"first_name": "A"})),
            &[("prefer", "wait=soon")],
        )
        .await;
    assert_eq!((s, code(&b)), (400, "INVALID_PREFER"));

    let after = orderflow_testkit::topic::read_topic(&system.kafka.brokers, &commands).await.len();
    assert_eq!(after, before, "no refused request reached Kafka");
    system.stop().await;
}
