//! Short-lived access tokens renewed by refresh tokens, and signing keys
//! that rotate without downtime: while replicas disagree on which key
//! signs, each accepts the other's tokens; a retired key's tokens fail.

use orderflow_config::Secret;
use orderflow_ingress::settings::AcceptedKey;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{PASSWORD, System};

const K1: (&str, &str) = ("2026-11", "the-first-signing-key-0123456789abcdef");
const K2: (&str, &str) = ("2026-12", "the-second-signing-key-0123456789abcdef");

fn key((kid, secret): (&str, &str)) -> AcceptedKey {
    AcceptedKey { kid: kid.into(), secret: Secret::new(secret) }
}

fn signing(settings: &mut orderflow_ingress::Settings, (kid, secret): (&str, &str), accepted: &[(&str, &str)]) {
    settings.jwt.kid = kid.into();
    settings.jwt.secret = Secret::new(secret);
    settings.jwt.accepted_keys = accepted.iter().copied().map(key).collect();
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).expect("a JWT header").kid.unwrap_or_default()
}

async fn login(system: &System, api: &str, email: &str) -> Value {
    let response = system
        .http
        .post(format!("{api}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.expect("json")
}

async fn me(system: &System, api: &str, token: &str) -> u16 {
    let response = system.http.get(format!("{api}/api/v1/users/me")).bearer_auth(token).send().await.expect("me");
    response.status().as_u16()
}

async fn refresh(system: &System, api: &str, token: &str) -> (u16, Value) {
    let response = system
        .http
        .post(format!("{api}/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": token}))
        .send()
        .await
        .expect("refresh");
    (response.status().as_u16(), response.json().await.expect("json"))
}

#[tokio::test]
async fn refresh_tokens_renew_access_and_keys_rotate_without_downtime() {
    let mut system = System::start().await;
    system.restart_ingress_with(|s| signing(s, K1, &[])).await;
    let (status, body) = system.register("rotate@example.com", PASSWORD).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().expect("id").to_owned();

    // Login: a short-lived access token and a refresh token, each for its own use.
    let first = login(&system, &system.api, "rotate@example.com").await;
    assert_eq!(first["expires_in"], 600, "access tokens live 10 minutes by default");
    let (access1, refresh1) = (first["access_token"].as_str().expect("a"), first["refresh_token"].as_str().expect("r"));
    assert_eq!(kid_of(access1), K1.0);
    assert_eq!(me(&system, &system.api, access1).await, 200);
    assert_eq!(me(&system, &system.api, refresh1).await, 401, "a refresh token is no access token");
    assert_eq!(refresh(&system, &system.api, access1).await.0, 401, "an access token is no refresh token");
    let (status, renewed) = refresh(&system, &system.api, refresh1).await;
    assert_eq!(status, 200, "{renewed}");
    assert_eq!(me(&system, &system.api, renewed["access_token"].as_str().expect("a")).await, 200);

    // Rotation, step 1: every replica accepts K2; step 2: one replica signs
    // with K2 while another still signs with K1. Tokens work on both.
    system.restart_ingress_with(|s| signing(s, K1, &[K2])).await;
    let mut new_settings = system.ingress_settings();
    signing(&mut new_settings, K2, &[K1]);
    let (new_api, new_shutdown, new_task) = crate::replica(new_settings).await;
    let by_new = login(&system, &new_api, "rotate@example.com").await;
    let access2 = by_new["access_token"].as_str().expect("a").to_owned();
    assert_eq!(kid_of(&access2), K2.0);
    for api in [&system.api, &new_api] {
        assert_eq!(me(&system, api, access1).await, 200, "a K1 token on {api}");
        assert_eq!(me(&system, api, &access2).await, 200, "a K2 token on {api}");
    }
    let (status, renewed) = refresh(&system, &new_api, refresh1).await;
    assert_eq!(status, 200, "a K1 refresh token renews on the new replica: {renewed}");
    assert_eq!(kid_of(renewed["access_token"].as_str().expect("a")), K2.0, "and gets a K2 access token");

    // Step 3, once K1's tokens have expired: K1 retired, its tokens refused.
    new_shutdown.cancel();
    new_task.await.expect("stopped");
    system.restart_ingress_with(|s| signing(s, K2, &[])).await;
    assert_eq!(me(&system, &system.api, access1).await, 401, "a retired key's token");
    assert_eq!(refresh(&system, &system.api, refresh1).await.0, 401);
    assert_eq!(me(&system, &system.api, &access2).await, 200);

    // A password change revokes refresh tokens too.
    let refresh2 = by_new["refresh_token"].as_str().expect("r").to_owned();
    let body = json!({"old_password": PASSWORD, "new_password": "another long password"});
    let (status, _) = system
        .call_with(
            Method::POST,
            &format!("/api/v1/users/{id}/password"),
            Some(&access2),
            Some(body),
            &[("prefer", "wait=20")],
        )
        .await;
    assert_eq!(status, 200);
    let (status, answer) = refresh(&system, &system.api, &refresh2).await;
    assert_eq!(status, 401, "{answer}");
    system.stop().await;
}
