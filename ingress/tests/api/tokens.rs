//! Short-lived access tokens renewed by refresh tokens, and signing keys
//! that rotate without downtime: while replicas disagree on which key
//! signs, each accepts the other's tokens; a retired key's tokens fail.
//! A token without the shape the ingress issues is refused even when
//! signed with the real key, and roles come from the read model, not from
//! the token.

use orderflow_config::Secret;
use orderflow_ingress::settings::AcceptedKey;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{ADMIN_EMAIL, PASSWORD, System, get, user};

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
    let current = renewed["refresh_token"].as_str().expect("r");
    assert_eq!(kid_of(current), K1.0);
    let (status, renewed) = refresh(&system, &new_api, current).await;
    assert_eq!(status, 200, "a K1 refresh token renews on the new replica: {renewed}");
    assert_eq!(kid_of(renewed["access_token"].as_str().expect("a")), K2.0, "and gets a K2 access token");
    // A session whose current refresh token K1 signed, for step 3.
    let by_old = login(&system, &system.api, "rotate@example.com").await;
    let refresh_by_old = by_old["refresh_token"].as_str().expect("r").to_owned();
    assert_eq!(kid_of(&refresh_by_old), K1.0);

    // Step 3, once K1's tokens have expired: K1 retired, its tokens refused.
    new_shutdown.cancel();
    new_task.await.expect("stopped");
    system.restart_ingress_with(|s| signing(s, K2, &[])).await;
    assert_eq!(me(&system, &system.api, access1).await, 401, "a retired key's token");
    let (status, answer) = refresh(&system, &system.api, &refresh_by_old).await;
    assert_eq!(status, 401, "a retired key's refresh token, though its session's current one: {answer}");
    assert_eq!(answer["error"]["message"], "the refresh token is invalid");
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

/// The claims of `token`, one of the system's own.
fn claims_of(system: &System, token: &str) -> Value {
    let claims = system.ingress_settings().jwt.tokens().verify(token).expect("a valid token");
    serde_json::to_value(claims).expect("claims")
}

/// `claims` signed with the system's real key, under `kid`, with a fresh `jti`.
fn forge(system: &System, mut claims: Value, kid: Option<&str>) -> String {
    let settings = system.ingress_settings();
    claims["jti"] = json!(uuid::Uuid::now_v7());
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    let key = jsonwebtoken::EncodingKey::from_secret(settings.jwt.secret.expose().as_bytes());
    jsonwebtoken::encode(&header, &claims, &key).expect("sign")
}

#[tokio::test]
async fn tokens_without_ver_sid_or_kid_or_with_a_long_lifetime_are_refused() {
    let system = System::start().await;
    let (_, token) = user(&system, "shape@example.com").await;
    let claims = claims_of(&system, &token);
    let kid = system.ingress_settings().jwt.kid;
    let real = forge(&system, claims.clone(), Some(&kid));
    assert_eq!(get(&system, "/api/v1/users/me", Some(&real)).await.0, 200, "the forger's tools work");

    let without = |field: &str| {
        let mut claims = claims.clone();
        claims.as_object_mut().expect("object").remove(field);
        claims
    };
    let iat = claims["iat"].as_i64().expect("iat");
    let mut long = claims.clone();
    long["exp"] = json!(iat + 1_000_000_000);
    let mut future = claims.clone();
    future["iat"] = json!(iat + 3600);
    future["exp"] = json!(iat + 3600 + 60);
    let refused = [
        ("without ver", forge(&system, without("ver"), Some(&kid))),
        ("without sid", forge(&system, without("sid"), Some(&kid))),
        ("without kid", forge(&system, claims.clone(), None)),
        ("with an unknown kid", forge(&system, claims.clone(), Some("elsewhere"))),
        ("with exp 10^9 s ahead", forge(&system, long, Some(&kid))),
        ("issued an hour from now", forge(&system, future, Some(&kid))),
    ];
    for (what, token) in refused {
        let (status, body) = get(&system, "/api/v1/users/me", Some(&token)).await;
        assert_eq!(status, 401, "a token {what}: {body}");
        assert_eq!(body["error"]["message"], "the token is invalid", "naming nothing: {what}");
    }
    system.stop().await;
}

#[tokio::test]
async fn roles_come_from_the_read_model_not_from_the_token() {
    let system = System::start().await;
    let (_, token) = user(&system, "mallory@example.com").await;
    let (victim, _) = user(&system, "victim@example.com").await;
    let (_, admin) = user(&system, ADMIN_EMAIL).await;
    let kid = system.ingress_settings().jwt.kid;

    // Signed with the real key, in a live session, claiming admin.
    let mut claims = claims_of(&system, &token);
    claims["roles"] = json!(["admin", "user"]);
    let forged = forge(&system, claims, Some(&kid));
    assert_eq!(get(&system, "/api/v1/users/me", Some(&forged)).await.0, 200, "a valid token");
    let (status, body) = get(&system, "/api/v1/users", Some(&forged)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("INSUFFICIENT_ROLE")), "{body}");
    let (status, body) = get(&system, &format!("/api/v1/users/{victim}"), Some(&forged)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("FORBIDDEN")), "not an admin here: {body}");

    // And the other way: an admin is one by the read model, whatever the token says.
    let mut claims = claims_of(&system, &admin);
    claims["roles"] = json!([]);
    let modest = forge(&system, claims, Some(&kid));
    let (status, body) = get(&system, "/api/v1/users", Some(&modest)).await;
    assert_eq!(status, 200, "{body}");
    system.stop().await;
}
