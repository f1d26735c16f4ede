//! The last units of one product: 1,000 orders from 20 clients race for
//! 100 units. Exactly 100 are sold, every other order is cancelled with
//! `OUT_OF_STOCK` naming what was left, and the stock stays consistent with
//! the orders through cancellations (units back for sale), refunds (units
//! stay sold) and a second race for the units given back.

use std::collections::HashMap;

use orderflow_harness::system::System;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{admin, assert_consistent, customer, order, pool, saga_settled, until_api};

const CLIENTS: usize = 20;
const ORDERS_EACH: usize = 50;
const UNITS: i64 = 100;
const SKU: &str = "LAST-100";
const PRICE: i64 = 100;
const WAIT: [(&str, &str); 1] = [("prefer", "wait=30")];

fn one_unit() -> Value {
    let mut body = order(&[(1, PRICE)]);
    body["items"][0]["product_id"] = json!(SKU);
    body["items"][0].as_object_mut().expect("line").remove("name");
    body
}

/// (on hand, reserved) of the product in the inventory's own table.
async fn stock(system: &System) -> (i64, i64) {
    sqlx::query_as("SELECT on_hand, reserved FROM products WHERE sku = $1")
        .bind(SKU)
        .fetch_one(&pool(&system.inventory_db).await)
        .await
        .expect("the product")
}

/// The orders by status, from the order service's table.
async fn statuses(system: &System) -> HashMap<String, Vec<(Uuid, Uuid, Option<String>)>> {
    let rows: Vec<(Uuid, Uuid, String, Option<String>)> =
        sqlx::query_as("SELECT id, customer_id, status, reason FROM orders")
            .fetch_all(&pool(&system.orders_db).await)
            .await
            .expect("orders");
    let mut by_status: HashMap<String, Vec<_>> = HashMap::new();
    for (id, customer, status, reason) in rows {
        by_status.entry(status).or_default().push((id, customer, reason));
    }
    by_status
}

/// Waits until the inventory's table shows `expected` (on hand, reserved).
async fn stock_becomes(system: &System, expected: (i64, i64), what: &str) {
    orderflow_testkit::until(what, std::time::Duration::from_secs(60), || async {
        let now = stock(system).await;
        if now == expected { Ok(()) } else { Err(format!("(on hand, reserved) = {now:?}, expected {expected:?}")) }
    })
    .await;
}

#[tokio::test]
async fn a_thousand_orders_race_for_a_hundred_units_and_exactly_a_hundred_are_sold() {
    let mut system = System::start().await;
    system.order_rules.payment_deadline_secs = 600; // this test is about stock, not deadlines
    system.start_inventory_service().await;
    system.start_order_service().await;
    system.start_payment_service().await;
    let admin = admin(&system).await;
    let product = json!({"sku": SKU, "name": "The last hundred", "price": PRICE, "currency": "EUR", "stock": UNITS});
    let (status, body) = system.call_with(Method::POST, "/api/v1/products", Some(&admin), Some(product), &WAIT).await;
    assert_eq!(status, 201, "{body}");
    let mut tokens = HashMap::new();
    for c in 0..CLIENTS {
        let (token, id) = customer(&system, &format!("racer{c}@example.com")).await;
        tokens.insert(Uuid::parse_str(&id).expect("user id"), token);
    }

    let system = &system;
    let clients = tokens.values().map(|token| async move {
        for _ in 0..ORDERS_EACH {
            let (status, body) = system.call(Method::POST, "/api/v1/orders", Some(token), Some(one_unit())).await;
            assert_eq!(status, 202, "{body}");
        }
    });
    futures::future::join_all(clients).await;
    let placed = (CLIENTS * ORDERS_EACH) as i64;
    saga_settled(system, placed).await;

    let by_status = statuses(system).await;
    let confirmed = by_status.get("CONFIRMED").cloned().unwrap_or_default();
    let cancelled = by_status.get("CANCELLED").cloned().unwrap_or_default();
    assert_eq!(confirmed.len() as i64, UNITS, "exactly the units there were are sold");
    assert_eq!(cancelled.len() as i64, placed - UNITS, "every other order is cancelled");
    assert!(
        cancelled.iter().all(|(_, _, reason)| reason.as_deref() == Some("OUT_OF_STOCK")),
        "every cancellation is OUT_OF_STOCK"
    );
    assert_eq!(stock(system).await, (0, 0), "all sold, nothing left held");
    assert_consistent(system).await;

    // What a customer sees of each.
    let (id, customer_id, _) = &cancelled[0];
    let seen = until_api(system, &tokens[customer_id], &format!("/api/v1/orders/{id}"), "the cancellation", |o| {
        o["status"] == "CANCELLED" && o["items"][0]["reservation"]["state"] == "FAILED"
    })
    .await;
    assert_eq!(seen["reason"], "OUT_OF_STOCK", "{seen}");
    assert_eq!(seen["reason_message"], format!("{SKU}: 1 asked for, 0 available"), "{seen}");
    assert_eq!(seen["items"][0]["reservation"], json!({"state": "FAILED", "reason": "OUT_OF_STOCK", "available": 0}));
    assert_eq!(seen["items"][0]["name"], "The last hundred", "the catalog names the line");
    let (id, customer_id, _) = &confirmed[0];
    let seen = until_api(system, &tokens[customer_id], &format!("/api/v1/orders/{id}"), "the sale", |o| {
        o["items"][0]["reservation"]["state"] == "SOLD"
    })
    .await;
    assert_eq!(seen["status"], "CONFIRMED", "{seen}");

    // Ten buyers change their minds: their units are for sale again.
    for (id, customer_id, _) in &confirmed[..10] {
        let path = format!("/api/v1/orders/{id}/cancel");
        let (status, body) = system.call_with(Method::POST, &path, Some(&tokens[customer_id]), None, &WAIT).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("CANCELLED")), "{body}");
    }
    stock_becomes(system, (10, 0), "the cancelled orders' units are back on hand").await;
    saga_settled(system, placed).await;
    assert_consistent(system).await;

    // Five are refunded in part: what they bought stays sold.
    for (id, _, _) in &confirmed[10..15] {
        let payment = until_api(system, &admin, &format!("/api/v1/payments/by-order/{id}"), "the capture", |p| {
            p["status"] == "CAPTURED"
        })
        .await;
        let path = format!("/api/v1/payments/{}/refund", payment["id"].as_str().expect("payment id"));
        let (status, body) =
            system.call_with(Method::POST, &path, Some(&admin), Some(json!({"amount": PRICE / 2})), &WAIT).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("PARTIALLY_REFUNDED")), "{body}");
    }
    assert_eq!(stock(system).await, (10, 0), "a refund gives no units back");
    assert_consistent(system).await;

    // A second race, for the ten units given back: ten sold, five refused.
    let token = tokens.values().next().expect("a client");
    let again = (0..15).map(|_| system.call_with(Method::POST, "/api/v1/orders", Some(token), Some(one_unit()), &WAIT));
    let answers = futures::future::join_all(again).await;
    let count = |status: &str| answers.iter().filter(|(code, body)| *code == 201 && body["status"] == status).count();
    assert_eq!((count("CONFIRMED"), count("CANCELLED")), (10, 5), "{answers:?}");
    saga_settled(system, placed + 15).await;
    assert_eq!(stock(system).await, (0, 0));
    let sold: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(l.quantity), 0)::bigint FROM reservation_lines l
         JOIN reservations r USING (order_id) WHERE r.state = 'SOLD'",
    )
    .fetch_one(&pool(&system.inventory_db).await)
    .await
    .expect("sold");
    assert_eq!(sold, UNITS, "the units sold are the units there were");
    assert_consistent(system).await;
}
