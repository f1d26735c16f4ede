//! Guarantee 7: no password and no hash on users.events, in a log line or in
//! an HTTP response.

use reqwest::Method;
use serde_json::json;

use crate::{Capture, System, tracing_subscriber_init};

#[tokio::test]
async fn passwords_and_hashes_stay_off_events_logs_and_responses() {
    // Every log line of every component, at the most verbose level.
    let logs = Capture::default();
    let writer = logs.clone();
    tracing_subscriber_init(move || writer.clone());

    let system = System::start().await;
    let password = "Sup3r-Secret-Passw0rd";
    let new_password = "An0ther-Secret-Passw0rd";
    let mut responses = Vec::new();
    let (status, body) = system.register("secret@example.com", password).await;
    assert_eq!(status, 201);
    responses.push(body.to_string());
    let id = body["id"].as_str().expect("id").to_owned();
    let (status, login) = system
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "secret@example.com", "password": password})),
        )
        .await;
    assert_eq!(status, 200);
    responses.push(login.to_string());
    let token = login["access_token"].as_str().expect("token").to_owned();
    let (_, changed) = system
        .call_with(
            Method::POST,
            &format!("/api/v1/users/{id}/password"),
            Some(&token),
            Some(json!({"old_password": password, "new_password": new_password})),
            &[("prefer", "wait=20")],
        )
        .await;
    responses.push(changed.to_string());
    let (_, me) = system.call(Method::GET, "/api/v1/users/me", Some(&token), None).await;
    responses.push(me.to_string());

    // The hashes that exist, from the user service's own table.
    let pool = sqlx::PgPool::connect(&system.users_db).await.expect("users db");
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&pool)
        .await
        .expect("hash");
    assert!(hash.starts_with("$argon2id$"));
    // The credentials topic carries it (that is where it belongs), sealed
    // with the user's data key: never in clear.
    let credentials = orderflow_testkit::topic::read_topic(
        &system.kafka.brokers,
        &system.topic(orderflow_contracts::users::CREDENTIALS.name),
    )
    .await;
    assert!(!credentials.is_empty());
    for record in &credentials {
        let payload = record.payload.as_deref().unwrap_or_default();
        assert!(!contains(payload, hash.as_bytes()) && !contains(payload, b"$argon2"), "a hash in clear");
        assert!(contains(payload, b"enc:v1:"), "the credentials are sealed");
    }

    let secrets: Vec<&[u8]> = vec![password.as_bytes(), new_password.as_bytes(), hash.as_bytes(), b"$argon2"];
    let events = orderflow_testkit::topic::read_topic(
        &system.kafka.brokers,
        &system.topic(orderflow_contracts::users::EVENTS.name),
    )
    .await;
    assert!(events.len() >= 2, "registered and password changed");
    for event in &events {
        for secret in &secrets {
            assert!(!contains(event.payload.as_deref().unwrap_or_default(), secret), "a secret on users.events");
            for (_, value) in &event.header_pairs {
                assert!(!contains(value, secret), "a secret in a users.events header");
            }
        }
    }
    for response in &responses {
        for secret in &secrets {
            assert!(!contains(response.as_bytes(), secret), "a secret in a response: {response}");
        }
    }
    system.stop().await;
    let logs = logs.0.lock().expect("lock").clone();
    assert!(logs.len() > 1000, "logs were captured ({} bytes)", logs.len());
    for secret in &secrets {
        assert!(!contains(&logs, secret), "a secret in the logs: {}", String::from_utf8_lossy(secret));
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
