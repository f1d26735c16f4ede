//! The users and orders walk-throughs, recorded exactly once; a rebuild by
//! replay reproduces every record and hash.

use std::time::Duration;

use orderflow_harness::system::System;
use reqwest::Method;
use serde_json::json;

use crate::{PASSWORD, admin_token, audit_db, caught_up, dump, get, recorded_ids};

/// Register, update the profile, change the password, deactivate, and a
/// rejected duplicate registration. Returns the user id.
pub async fn walk(system: &System) -> String {
    let (status, body) = system.register("ada@example.com", PASSWORD).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().expect("id").to_owned();
    let token = system.login("ada@example.com", PASSWORD).await.expect("login");
    let wait = [("prefer", "wait=20")];
    let (status, body) = system
        .call_with(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(&token),
            Some(json!({"first_name": "Augusta"})),
            &wait,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = system
        .call_with(
            Method::POST,
            &format!("/api/v1/users/{id}/password"),
            Some(&token),
            Some(json!({"old_password": PASSWORD, "new_password": "Another-Secret-Passw0rd"})),
            &wait,
        )
        .await;
    assert!(status == 200 || status == 204, "{status} {body}");
    let (status, body) = system.register("ada@example.com", "Yet-Another-Passw0rd").await;
    assert_eq!(status, 409, "the duplicate is rejected: {body}");
    let (status, body) =
        system.call_with(Method::DELETE, &format!("/api/v1/users/{id}"), Some(&token), None, &wait).await;
    assert!(status == 200 || status == 204, "{status} {body}");
    id
}

/// The orders walk-through: an order confirmed and captured, one declined,
/// one cancelled after its capture and refunded. Returns the order ids.
pub async fn shop(system: &System) -> Vec<String> {
    use orderflow_harness::shop::{customer, order, place, saga_settled, until_api};
    let (token, _) = customer(system, "grace@example.com").await;
    let mut ids = Vec::new();
    for (lines, expected) in
        [(&[(2, 1250)][..], "CONFIRMED"), (&[(1, 2_000_000)][..], "CANCELLED"), (&[(1, 999)][..], "CONFIRMED")]
    {
        let (status, body) = place(system, &token, order(lines)).await;
        assert_eq!((status, body["status"].as_str()), (201, Some(expected)), "{body}");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    let last = &ids[2];
    until_api(system, &token, &format!("/api/v1/payments/by-order/{last}"), "the capture", |p| {
        p["status"] == "CAPTURED"
    })
    .await;
    let (status, body) = system
        .call_with(Method::POST, &format!("/api/v1/orders/{last}/cancel"), Some(&token), None, &[("prefer", "wait=20")])
        .await;
    assert_eq!(status, 200, "{body}");
    saga_settled(system, 3).await;
    ids
}

#[tokio::test]
async fn every_event_once_and_a_rebuild_reproduces_records_and_hashes() {
    let mut system = System::start_all().await;
    system.start_audit_log().await;
    let admin = admin_token(&system).await;
    let id = walk(&system).await;
    let orders = shop(&system).await;
    let pool = audit_db(&system).await;
    let events = caught_up(&system, &pool, None).await;
    let recorded = recorded_ids(&pool).await;
    assert_eq!(recorded.len(), events.len(), "once each");
    for order in &orders {
        let (status, body) = get(&system, &format!("/api/v1/audit?entity={order}"), &admin).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["items"].as_array().is_some_and(|i| i.len() >= 2), "the saga of {order} is recorded: {body}");
    }

    // What the walk-through did, as the audit log tells it about the user.
    let (status, body) = get(&system, &format!("/api/v1/audit?entity={id}"), &admin).await;
    assert_eq!(status, 200, "{body}");
    let mut types: Vec<&str> =
        body["items"].as_array().expect("items").iter().map(|r| r["message_type"].as_str().expect("type")).collect();
    types.reverse(); // oldest first
    assert_eq!(types, ["UserRegistered", "UserProfileUpdated", "UserPasswordChanged", "UserDeactivated"]);
    // The refused duplicate is recorded as its rejection, with its actor and reason.
    let (status, body) = get(&system, "/api/v1/audit?type=CommandRejected", &admin).await;
    assert_eq!(status, 200, "{body}");
    let rejected = &body["items"][0];
    assert_eq!(rejected["payload"]["reason"], "EMAIL_TAKEN", "{body}");
    assert_eq!(rejected["payload"]["command_type"], "RegisterUser", "{body}");
    assert!(rejected["payload"].get("message").is_none(), "the message names the email: it is sensitive: {body}");
    for record in body["items"].as_array().expect("items") {
        assert!(
            record["actor"].is_string() && record["correlation_id"].is_string() && record["occurred_at"].is_string()
        );
    }
    let (status, report) = get(&system, "/api/v1/audit/verify?full=true", &admin).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(report["records"], events.len(), "{report}");

    // Rebuild by replay: a new generation, the same records and hashes.
    let before = dump(&pool).await;
    let request = orderflow_audit_log::request_rebuild(&pool).await.expect("request");
    let generation =
        orderflow_projection::wait_for_rebuild(&pool, request, Duration::from_secs(120)).await.expect("rebuild");
    assert!(generation >= 2, "a new generation is live: {generation}");
    assert_eq!(dump(&pool).await, before, "the rebuilt audit log is identical, hashes included");
    let (_, report) = get(&system, "/api/v1/audit/verify?full=true", &admin).await;
    assert_eq!(report["intact"], true, "{report}");
    system.stop().await;
}

#[tokio::test]
async fn the_routes_are_for_admins_and_name_bad_parameters() {
    let mut system = System::start().await;
    system.start_audit_log().await;
    let admin = admin_token(&system).await;
    let (status, _) = system.register("eve@example.com", PASSWORD).await;
    assert_eq!(status, 201);
    let user = system.login("eve@example.com", PASSWORD).await.expect("login");
    for path in ["/api/v1/audit", "/api/v1/audit/verify", "/api/v1/audit/correlations/x"] {
        let (status, body) = get(&system, path, &user).await;
        assert_eq!(status, 403, "{path}: {body}");
        // Refused by the route table, before the handler.
        assert_eq!(body["error"]["code"], "INSUFFICIENT_ROLE");
        let (status, _) = system.call(Method::GET, path, None, None).await;
        assert_eq!(status, 401, "{path}");
    }
    for (query, field) in [
        ("from=yesterday", "from"),
        ("to=2024-13-01T00:00:00Z", "to"),
        ("page_size=0", "page_size"),
        ("page_size=x", "page_size"),
        ("cursor=nonsense", "cursor"),
        ("actr=typo", "actr"),
        ("from=2024-02-01T00:00:00Z&to=2024-01-01T00:00:00Z", "to"),
    ] {
        let (status, body) = get(&system, &format!("/api/v1/audit?{query}"), &admin).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "INVALID_QUERY", "{query}: {body}");
        assert_eq!(body["error"]["details"]["field"], field, "{query}: {body}");
    }
    let (status, body) = get(&system, "/api/v1/audit/verify?full=maybe", &admin).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some("full")), "{body}");
    let (status, body) = get(&system, "/api/v1/audit/correlations/no-such-request", &admin).await;
    assert_eq!(status, 404, "{body}");
    system.stop().await;
}
