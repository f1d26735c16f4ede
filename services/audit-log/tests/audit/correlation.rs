//! The correlation view: one request's records in causal order.

use chrono::{Duration, Utc};
use orderflow_bus::Headers;
use orderflow_contracts::users::{UserDeactivated, UserPasswordChanged, UserProfileUpdated, UserRegistered};
use orderflow_harness::system::System;

use crate::walkthrough::walk;
use crate::{Events, admin_token, audit_db, caught_up, get};

#[tokio::test]
async fn a_registration_tells_its_story() {
    let mut system = System::start().await;
    system.start_audit_log().await;
    let admin = admin_token(&system).await;
    let id = walk(&system).await;
    let pool = audit_db(&system).await;
    caught_up(&system, &pool, None).await;
    let (_, body) = get(&system, &format!("/api/v1/audit?entity={id}&type=UserRegistered"), &admin).await;
    let registered = &body["items"][0];
    let correlation = registered["correlation_id"].as_str().expect("correlation");
    let (status, story) = get(&system, &format!("/api/v1/audit/correlations/{correlation}"), &admin).await;
    assert_eq!(status, 200, "{story}");
    let items = story["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "a registration is one event: {story}");
    assert_eq!(items[0]["message_type"], "UserRegistered");
    assert_eq!(items[0]["depth"], 0);
    // Its cause is the RegisterUser command (not an event, so not in the
    // log); the correlation id is the HTTP request's id (X-Request-Id).
    let cause = items[0]["causation_id"].as_str().expect("causation");
    assert!(uuid::Uuid::parse_str(cause).is_ok(), "the command's id: {story}");
    assert_ne!(items[0]["message_id"].as_str(), Some(cause));
    assert_ne!(items[0]["message_id"].as_str(), Some(correlation));
    system.stop().await;
}

#[tokio::test]
async fn a_multi_level_chain_across_partitions_is_in_causal_order() {
    let mut system = System::start().await;
    system.start_audit_log().await;
    let admin = admin_token(&system).await;
    let events = Events::new(&system);
    // A saga-shaped chain (root command -> e1 -> e2 -> e3, plus a second
    // child of e1), on different keys (so different partitions, consumed in
    // any interleaving), each stamped *earlier* than its cause: the order
    // must come from the causation ids, not the clocks.
    let now = Utc::now();
    let root = Headers::new_root("RegisterUser", "anonymous");
    let mut e1 = root.caused("UserRegistered");
    e1.occurred_at = now;
    let mut e2 = e1.caused("UserProfileUpdated");
    e2.occurred_at = now - Duration::seconds(10);
    let mut e3 = e2.caused("UserPasswordChanged");
    e3.occurred_at = now - Duration::seconds(20);
    let mut sibling = e1.caused("UserDeactivated");
    sibling.occurred_at = now - Duration::seconds(5);
    let user = |n: u32| format!("0190a0a0-0000-7000-8000-{n:012}");
    let ms = now.timestamp_millis();
    // Sent in reverse causal order, too.
    events.send(&UserPasswordChanged { user_id: user(3), version: 2, changed_at: ms }, &e3).await;
    events.send(&UserDeactivated { user_id: user(4), version: 2, deactivated_at: ms }, &sibling).await;
    events
        .send(
            &UserProfileUpdated {
                user_id: user(2),
                first_name: "A".into(),
                last_name: "B".into(),
                version: 2,
                updated_at: ms,
            },
            &e2,
        )
        .await;
    events
        .send(
            &UserRegistered {
                user_id: user(1),
                email: "saga@example.com".into(),
                first_name: "S".into(),
                last_name: "A".into(),
                roles: vec!["customer".into()],
                version: 1,
                registered_at: ms,
            },
            &e1,
        )
        .await;
    let pool = audit_db(&system).await;
    caught_up(&system, &pool, Some(&events)).await;
    let (status, story) = get(&system, &format!("/api/v1/audit/correlations/{}", root.correlation_id), &admin).await;
    assert_eq!(status, 200, "{story}");
    let told: Vec<(String, u64)> = story["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| (r["message_type"].as_str().expect("type").to_owned(), r["depth"].as_u64().expect("depth")))
        .collect();
    // e1's children by time: e2 (now-10s) before the sibling (now-5s).
    assert_eq!(
        told,
        [
            ("UserRegistered".to_owned(), 0),
            ("UserProfileUpdated".to_owned(), 1),
            ("UserPasswordChanged".to_owned(), 2),
            ("UserDeactivated".to_owned(), 1),
        ],
        "{story}"
    );
    system.stop().await;
}

#[tokio::test]
async fn an_order_tells_its_story_in_causal_order_without_its_address() {
    let mut system = System::start_all().await;
    system.start_audit_log().await;
    let admin = admin_token(&system).await;
    let (token, _) = orderflow_harness::shop::customer(&system, "storyteller@example.com").await;
    let (status, placed) =
        orderflow_harness::shop::place(&system, &token, orderflow_harness::shop::order(&[(2, 1250)])).await;
    assert_eq!((status, placed["status"].as_str()), (201, Some("CONFIRMED")), "{placed}");
    let id = placed["id"].as_str().expect("id").to_owned();
    orderflow_harness::shop::saga_settled(&system, 1).await;
    // The audit log records on its own time: wait for it to know the order.
    let path = format!("/api/v1/audit?entity={id}&type=OrderPlaced");
    let body = orderflow_harness::shop::until_api(&system, &admin, &path, "the audit log has the order", |b| {
        b["items"][0]["correlation_id"].is_string()
    })
    .await;
    let correlation = body["items"][0]["correlation_id"].as_str().expect("correlation").to_owned();
    let path = format!("/api/v1/audit/correlations/{correlation}");
    let story = orderflow_testkit::until("the story of the order", std::time::Duration::from_secs(60), || async {
        let (status, story) = get(&system, &path, &admin).await;
        if status == 200 && story["items"].as_array().is_some_and(|items| items.len() >= 7) {
            Ok(story)
        } else {
            Err(format!("{status} {story}"))
        }
    })
    .await;
    let items = story["items"].as_array().expect("items");
    let told: Vec<(&str, i64)> = items
        .iter()
        .map(|i| (i["message_type"].as_str().expect("type"), i["depth"].as_i64().expect("depth")))
        .collect();
    assert_eq!(
        told[..5],
        [
            ("OrderPlaced", 0),
            ("StockReserved", 1),
            ("OrderStockReserved", 2),
            ("PaymentAuthorized", 3),
            ("OrderConfirmed", 4)
        ],
        "placed, its stock held, authorized, confirmed, each caused by the one before: {story}"
    );
    for pair in items[..5].windows(2) {
        assert_eq!(pair[1]["causation_id"], pair[0]["message_id"], "{story}");
    }
    // The confirmation causes two steps at once: the capture and the sale of the stock.
    let mut last: Vec<(&str, i64)> = told[5..].to_vec();
    last.sort();
    assert_eq!(last, [("PaymentCaptured", 5), ("StockCommitted", 5)], "{story}");
    for item in &items[5..] {
        assert_eq!(item["causation_id"], items[4]["message_id"], "{story}");
    }
    let placed_record = items[0].to_string();
    assert!(!placed_record.contains("St James"), "the shipping address is sensitive: {placed_record}");
    assert!(placed_record.contains("\"total\":2500"), "the rest of the payload is recorded: {placed_record}");
    system.stop().await;
}
