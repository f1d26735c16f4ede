//! The right to erasure: `POST /api/v1/users/{id}/erase` leaves nothing
//! personal of a user in any database of the system — read models, the
//! services' own tables, the audit log, the ingress's sessions and stored
//! answers — while their orders and payments stay, with amounts and
//! states; a rebuild by replay keeps them erased; and every wrong erase is
//! a clear error.

use orderflow_harness::shop::{self, find_text};
use reqwest::Method;
use serde_json::{Value, json};

use crate::{PASSWORD, System};

/// What the user told the system about themselves, one way or another.
const PERSONAL: &[&str] = &["erase.me@example.com", "Zelda", "Quixote", "7 Erasure Lane", "ring the bell twice"];

async fn erase(system: &System, id: &str, token: &str, body: Value) -> (u16, Value) {
    let path = format!("/api/v1/users/{id}/erase");
    system.call_with(Method::POST, &path, Some(token), Some(body), &[("prefer", "wait=20")]).await
}

fn order() -> Value {
    let mut body = shop::order(&[(1, 1250)]);
    body["shipping_address"]["name"] = json!("Zelda Quixote");
    body["shipping_address"]["line1"] = json!("7 Erasure Lane");
    body["notes"] = json!("ring the bell twice");
    body
}

/// Every database of the system, by name.
fn databases(system: &System) -> Vec<(&'static str, &str)> {
    vec![
        ("users", &system.users_db),
        ("orders", &system.orders_db),
        ("payments", &system.payments_db),
        ("inventory", &system.inventory_db),
        ("readmodels", &system.readmodels_db),
        ("audit", &system.audit_db),
    ]
}

#[tokio::test]
async fn an_erased_user_leaves_nothing_personal_anywhere_and_their_orders_stay() {
    let mut system = System::start_all().await;
    system.start_audit_log().await;
    let admin = shop::admin(&system).await;
    let (token, id) = shop::customer(&system, "Erase.Me@example.com").await;
    let renamed = json!({"first_name": "Zelda", "last_name": "Quixote"});
    let (status, user) = system
        .call_with(Method::PATCH, &format!("/api/v1/users/{id}"), Some(&token), Some(renamed), &[("prefer", "wait=20")])
        .await;
    assert_eq!(status, 200, "{user}");
    let mut orders = Vec::new();
    for _ in 0..2 {
        let (status, placed) = shop::place(&system, &token, order()).await;
        assert_eq!(status, 201, "{placed}");
        let id = placed["id"].as_str().expect("id").to_owned();
        shop::until_api(&system, &admin, &format!("/api/v1/orders/{id}"), "confirmed", |o| o["status"] == "CONFIRMED")
            .await;
        orders.push(id);
    }
    // Before: the system holds it (the scan can find what it looks for).
    let before = find_text(&system.readmodels_db, PERSONAL).await;
    assert!(before.iter().any(|hit| hit.contains("Quixote")), "the scan finds the name before: {before:#?}");

    // Wrong erasures first: each is refused, naming why, and loses nothing.
    let (other_token, other) = shop::customer(&system, "bystander@example.com").await;
    let (status, body) = erase(&system, &id, &other_token, json!({"password": PASSWORD})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("FORBIDDEN")), "another user: {body}");
    let (status, body) = erase(&system, &id, &token, json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("VALIDATION_FAILED")), "no password: {body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("password")), "{body}");
    let (status, body) = erase(&system, &id, &token, json!({"password": "not my password"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("WRONG_PASSWORD")), "{body}");
    let (status, body) = erase(&system, &id, &token, json!({"password": PASSWORD, "why": "x"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("INVALID_BODY")), "an unknown field: {body}");
    let unknown = uuid::Uuid::now_v7().to_string();
    let (status, body) = erase(&system, &unknown, &admin, json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("USER_NOT_FOUND")), "{body}");
    let (status, me) = system.call(Method::GET, "/api/v1/users/me", Some(&token), None).await;
    assert_eq!((status, me["last_name"].as_str()), (200, Some("Quixote")), "nothing was lost: {me}");

    // The user erases themselves.
    let (status, erased) = erase(&system, &id, &token, json!({"password": PASSWORD})).await;
    assert_eq!(status, 200, "{erased}");
    assert!(erased["erased_at"].is_string(), "{erased}");
    assert_eq!(
        (erased["email"].as_str(), erased["first_name"].as_str(), erased["active"].as_bool()),
        (Some(""), Some(""), Some(false))
    );
    // Their token and their login are dead.
    let (status, _) = system.call(Method::GET, "/api/v1/users/me", Some(&token), None).await;
    assert_eq!(status, 401, "the erased user's token still works");
    assert!(system.login("erase.me@example.com", PASSWORD).await.is_none(), "the erased user can log in");
    // Twice: a clear conflict.
    let (status, body) = erase(&system, &id, &admin, json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("USER_ERASED")), "{body}");

    // Their orders and payments stay, with amounts and states, and no address.
    for order in &orders {
        let (status, body) = system.call(Method::GET, &format!("/api/v1/orders/{order}"), Some(&admin), None).await;
        assert_eq!(
            (status, body["status"].as_str(), body["total"].as_i64()),
            (200, Some("CONFIRMED"), Some(1250)),
            "{body}"
        );
        assert!(body["shipping_address"].is_null() && body["notes"].is_null(), "{body}");
        let (status, payment) =
            system.call(Method::GET, &format!("/api/v1/payments/by-order/{order}"), Some(&admin), None).await;
        assert_eq!((status, payment["status"].as_str()), (200, Some("CAPTURED")), "{payment}");
    }
    let (_, list) = system.call(Method::GET, &format!("/api/v1/orders?user={id}"), Some(&admin), None).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2), "still listed: {list}");
    // The audit log recorded the erasure.
    shop::until_api(
        &system,
        &admin,
        &format!("/api/v1/audit?entity={id}&type=UserErased"),
        "the erasure is audited",
        |page| page["items"].as_array().is_some_and(|items| items.iter().any(|r| r["message_type"] == "UserErased")),
    )
    .await;
    // The other user is untouched.
    let (status, body) = system.call(Method::GET, &format!("/api/v1/users/{other}"), Some(&admin), None).await;
    assert_eq!((status, body["email"].as_str()), (200, Some("bystander@example.com")), "{body}");

    // Nowhere, in any database of the system.
    let mut found = Vec::new();
    for (name, url) in databases(&system) {
        found.extend(find_text(url, PERSONAL).await.into_iter().map(|hit| format!("{name}: {hit}")));
    }
    assert!(found.is_empty(), "personal data left after the erasure: {found:#?}");

    // Replayed from every topic, the read models are the same: still erased.
    shop::assert_rebuild_equals_live(&system).await;
    let after = find_text(&system.readmodels_db, PERSONAL).await;
    assert!(after.is_empty(), "personal data back after a rebuild: {after:#?}");

    // Without waiting for the outcome: 202, and the user's sessions end at once.
    let path = format!("/api/v1/users/{other}/erase");
    let (status, body) = system.call(Method::POST, &path, Some(&admin), Some(json!({}))).await;
    assert_eq!(status, 202, "{body}");
    let (status, _) = system.call(Method::GET, "/api/v1/users/me", Some(&other_token), None).await;
    assert_eq!(status, 401, "the erased user's session outlived the erasure");
    system.stop().await;
}
