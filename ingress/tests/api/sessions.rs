//! Sessions: a refresh token works once (it rotates), one used twice ends
//! its whole session, a logout ends it, and no answer carrying a token may
//! be cached.

use std::time::Duration;

use orderflow_ingress::settings::ServiceClient;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{PASSWORD, System, get};

/// Registers `email`; returns a login's answer (a new session).
async fn registered(system: &System, email: &str) -> Value {
    let (status, body) = system.register(email, PASSWORD).await;
    assert_eq!(status, 201, "register {email}: {body}");
    login(system, email).await
}

async fn login(system: &System, email: &str) -> Value {
    let body = json!({"email": email, "password": PASSWORD});
    let (status, answer) = system.call(Method::POST, "/api/v1/auth/login", None, Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

async fn refresh(system: &System, token: &str) -> (u16, Value) {
    system.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": token}))).await
}

fn access(answer: &Value) -> String {
    answer["access_token"].as_str().expect("access_token").to_owned()
}

fn refresh_token(answer: &Value) -> String {
    answer["refresh_token"].as_str().expect("refresh_token").to_owned()
}

async fn me(system: &System, token: &str) -> u16 {
    get(system, "/api/v1/users/me", Some(token)).await.0
}

/// Polls until `token` is refused as belonging to an ended session (a
/// replica's cache may hold its row for a second); panics if it never is.
async fn ended_soon(system: &System, token: &str) {
    orderflow_testkit::eventually("the session's token is refused", Duration::from_secs(5), || async move {
        let (status, body) = get(system, "/api/v1/users/me", Some(token)).await;
        status == 401 && body["error"]["message"].as_str().is_some_and(|m| m.contains("session has ended"))
    })
    .await;
}

#[tokio::test]
async fn a_refresh_answers_a_new_refresh_token_and_the_used_one_stops_working() {
    let system = System::start().await;
    let first = registered(&system, "rotation@example.com").await;
    let used = refresh_token(&first);

    let (status, second) = refresh(&system, &used).await;
    assert_eq!(status, 200, "{second}");
    let next = refresh_token(&second);
    assert_ne!(next, used, "a new refresh token");
    assert_eq!(me(&system, &access(&second)).await, 200, "with a working access token");
    assert_eq!(second["user_id"], first["user_id"]);

    let (status, third) = refresh(&system, &next).await;
    assert_eq!(status, 200, "the new one renews in turn: {third}");
    let (status, answer) = refresh(&system, &next).await;
    assert_eq!(status, 401, "a used refresh token does not renew again: {answer}");
    assert_eq!(answer["error"]["code"], "UNAUTHORIZED");
    assert!(answer["error"]["message"].as_str().is_some_and(|m| m.contains("already used")), "{answer}");
    system.stop().await;
}

#[tokio::test]
async fn a_reused_refresh_token_ends_its_session_with_its_newest_tokens_and_no_other() {
    let system = System::start().await;
    let first = registered(&system, "reuse@example.com").await;
    let elsewhere = login(&system, "reuse@example.com").await;
    let stolen = refresh_token(&first);
    // The owner refreshes; the thief's copy is now a used token.
    let (status, renewed) = refresh(&system, &stolen).await;
    assert_eq!(status, 200, "{renewed}");
    let (old_access, new_access, newest) = (access(&first), access(&renewed), refresh_token(&renewed));
    assert_eq!(me(&system, &old_access).await, 200);
    assert_eq!(me(&system, &new_access).await, 200, "both access tokens work (and are cached)");

    let (status, answer) = refresh(&system, &stolen).await;
    assert_eq!(status, 401, "the reuse: {answer}");
    // The whole family: the newest refresh token and every access token.
    let (status, answer) = refresh(&system, &newest).await;
    assert_eq!(status, 401, "the newest refresh token of the session: {answer}");
    assert!(answer["error"]["message"].as_str().is_some_and(|m| m.contains("session has ended")), "{answer}");
    ended_soon(&system, &old_access).await;
    ended_soon(&system, &new_access).await;

    // Another login of the same user is another session: untouched.
    assert_eq!(me(&system, &access(&elsewhere)).await, 200);
    let (status, answer) = refresh(&system, &refresh_token(&elsewhere)).await;
    assert_eq!(status, 200, "{answer}");
    system.stop().await;
}

#[tokio::test]
async fn logout_ends_the_session_and_the_one_of_a_refresh_token_sent_with_it() {
    let system = System::start().await;
    let one = registered(&system, "logout@example.com").await;
    let two = login(&system, "logout@example.com").await;
    let three = login(&system, "logout@example.com").await;
    let (one_access, two_access) = (access(&one), access(&two));
    assert_eq!(me(&system, &one_access).await, 200);
    assert_eq!(me(&system, &two_access).await, 200);

    let (status, answer) = system.call(Method::POST, "/api/v1/auth/logout", None, None).await;
    assert_eq!(status, 401, "logout needs the access token: {answer}");
    let body = json!({"refresh_token": refresh_token(&two)});
    let (status, answer) = system.call(Method::POST, "/api/v1/auth/logout", Some(&one_access), Some(body)).await;
    assert_eq!(status, 204, "{answer}");
    ended_soon(&system, &one_access).await;
    ended_soon(&system, &two_access).await;
    for (which, answer) in [("the caller's", &one), ("the one sent along", &two)] {
        let (status, body) = refresh(&system, &refresh_token(answer)).await;
        assert_eq!(status, 401, "{which} refresh token: {body}");
    }

    // A third login was not asked to end: it works, until it logs out too (no body).
    let three_access = access(&three);
    assert_eq!(me(&system, &three_access).await, 200);
    let (status, answer) = system.call(Method::POST, "/api/v1/auth/logout", Some(&three_access), None).await;
    assert_eq!(status, 204, "{answer}");
    ended_soon(&system, &three_access).await;
    let (status, answer) = refresh(&system, &refresh_token(&three)).await;
    assert_eq!(status, 401, "{answer}");
    system.stop().await;
}

#[tokio::test]
async fn answers_that_carry_a_token_may_not_be_cached() {
    const SECRET: &str = "a-long-service-secret-0123456789";
    let mut system = System::start().await;
    let hash = orderflow_auth::hash_password(SECRET).expect("hash");
    system
        .restart_ingress_with(|s| {
            s.service_clients = vec![ServiceClient { id: "fulfilment".into(), secret_hash: hash }]
        })
        .await;
    let (status, body) = system.register("nostore@example.com", PASSWORD).await;
    assert_eq!(status, 201, "{body}");

    let post = |path: &str, body: Value| system.http.post(format!("{}{path}", system.api)).json(&body).send();
    let login =
        post("/api/v1/auth/login", json!({"email": "nostore@example.com", "password": PASSWORD})).await.expect("login");
    let login_headers = login.headers().clone();
    let answer: Value = login.json().await.expect("json");
    let renewed =
        post("/api/v1/auth/refresh", json!({"refresh_token": refresh_token(&answer)})).await.expect("refresh");
    let credentials = json!({"grant_type": "client_credentials", "client_id": "fulfilment", "client_secret": SECRET});
    let service = post("/api/v1/auth/token", credentials).await.expect("token");
    for (what, status, headers) in [
        ("login", 200, &login_headers),
        ("refresh", renewed.status().as_u16(), renewed.headers()),
        ("token", service.status().as_u16(), service.headers()),
    ] {
        assert_eq!(status, 200, "{what}");
        assert_eq!(headers.get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"), "{what}");
        assert_eq!(headers.get("pragma").and_then(|v| v.to_str().ok()), Some("no-cache"), "{what}");
    }
    system.stop().await;
}
