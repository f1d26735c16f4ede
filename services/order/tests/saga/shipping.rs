//! Shipping needs the money: a CONFIRMED order ships only if its payment
//! was captured and not refunded in full (issue 22).

use std::time::Duration;

use orderflow_harness::system::System;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{admin, assert_consistent, customer, order, place, pool, saga_settled, types_for, until_api};

/// The order service's own record of an order's money: (captured, refunded).
async fn paid_here(system: &System, id: &str, what: &str, done: impl Fn((i64, i64)) -> bool) -> (i64, i64) {
    let db = pool(&system.orders_db).await;
    let id = uuid::Uuid::parse_str(id).expect("order id");
    orderflow_testkit::until(what, Duration::from_secs(60), || async {
        let row: Option<(i64, i64)> = sqlx::query_as("SELECT captured, refunded FROM orders WHERE id = $1")
            .bind(id)
            .fetch_optional(&db)
            .await
            .expect("order's money");
        row.filter(|paid| done(*paid)).ok_or_else(|| format!("(captured, refunded) {row:?}"))
    })
    .await
}

async fn ship(system: &System, admin: &str, id: &str) -> (u16, Value) {
    let path = format!("/api/v1/orders/{id}/status");
    system
        .call_with(Method::PATCH, &path, Some(admin), Some(json!({"status": "SHIPPED"})), &[("prefer", "wait=20")])
        .await
}

async fn refund(system: &System, admin: &str, payment_id: &str, body: Value) -> (u16, Value) {
    let path = format!("/api/v1/payments/{payment_id}/refund");
    system.call_with(Method::POST, &path, Some(admin), Some(body), &[("prefer", "wait=20")]).await
}

/// Places an order and returns (order id, payment id) once it is captured.
async fn captured_order(system: &System, token: &str, lines: &[(i64, i64)]) -> (String, String) {
    let (status, placed) = place(system, token, order(lines)).await;
    assert_eq!((status, placed["status"].as_str()), (201, Some("CONFIRMED")), "{placed}");
    let id = placed["id"].as_str().expect("id").to_owned();
    let payment = until_api(system, token, &format!("/api/v1/payments/by-order/{id}"), "the capture", |p| {
        p["status"] == "CAPTURED"
    })
    .await;
    (id, payment["id"].as_str().expect("payment id").to_owned())
}

#[tokio::test]
async fn only_a_paid_order_ships() {
    let system = System::start_all().await;
    let admin = admin(&system).await;
    let (token, _) = customer(&system, "payer@example.com").await;

    // Shipped the moment it is confirmed: the capture may not have reached
    // the order service yet; it is waited for, and the order ships.
    let (status, placed) = place(&system, &token, order(&[(1, 900)])).await;
    assert_eq!((status, placed["status"].as_str()), (201, Some("CONFIRMED")), "{placed}");
    let eager = placed["id"].as_str().expect("id").to_owned();
    let (status, body) = ship(&system, &admin, &eager).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("SHIPPED")), "{body}");

    // Refunded in full by an admin: shipping it is refused, it stays CONFIRMED.
    let (refunded, payment_id) = captured_order(&system, &token, &[(3, 700)]).await;
    let (status, body) = refund(&system, &admin, &payment_id, json!({"note": "out of stock"})).await;
    assert_eq!(
        (status, body["status"].as_str(), body["refunded"].as_i64()),
        (200, Some("REFUNDED"), Some(2100)),
        "{body}"
    );
    // The refund reaches the order service on its own topic; a ShipOrder
    // sent before it arrives would still ship (docs/orders.md).
    paid_here(&system, &refunded, "the order service records the refund", |(_, r)| r == 2100).await;
    let (status, body) = ship(&system, &admin, &refunded).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("NOT_PAID")), "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("refunded in full") && message.contains("captured 2100, refunded 2100"), "{body}");
    let (status, detail) = system.call(Method::GET, &format!("/api/v1/orders/{refunded}"), Some(&admin), None).await;
    assert_eq!((status, detail["status"].as_str()), (200, Some("CONFIRMED")), "{detail}");
    assert_eq!(
        types_for(&system, "orders.events", &refunded).await,
        ["OrderPlaced", "OrderStockReserved", "OrderConfirmed", "CommandRejected"]
    );

    // Refunded in part: what was paid for still ships.
    let (partial, payment_id) = captured_order(&system, &token, &[(2, 1000)]).await;
    let (status, body) = refund(&system, &admin, &payment_id, json!({"amount": 500})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("PARTIALLY_REFUNDED")), "{body}");
    paid_here(&system, &partial, "the order service records the partial refund", |(_, r)| r == 500).await;
    let (status, body) = ship(&system, &admin, &partial).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("SHIPPED")), "{body}");

    assert_eq!(paid_here(&system, &eager, "the capture", |(c, _)| c > 0).await, (900, 0));
    assert_eq!(paid_here(&system, &partial, "the capture", |(c, _)| c > 0).await, (2000, 500));
    saga_settled(&system, 3).await;
    assert_consistent(&system).await;
    system.stop().await;
}
