//! The saga's paths through the API, as a checkout page and an operator
//! meet them.

use orderflow_harness::system::System;
use reqwest::Method;
use serde_json::json;

use crate::{admin, assert_consistent, customer, order, place, pool, saga_settled, stocked, types_for, until_api};

#[tokio::test]
async fn a_placed_order_is_confirmed_and_its_payment_captured_in_one_call() {
    let system = System::start_all().await;
    let (token, user_id) = customer(&system, "happy@example.com").await;
    let (status, placed) = place(&system, &token, order(&[(2, 1250), (1, 499)])).await;
    assert_eq!(status, 201, "{placed}");
    assert_eq!(placed["status"], "CONFIRMED");
    assert_eq!((placed["total"].as_i64(), placed["currency"].as_str()), (Some(2999), Some("EUR")));
    assert_eq!(placed["customer"]["id"].as_str(), Some(user_id.as_str()));
    assert_eq!(placed["customer"]["first_name"], "Test", "the customer's name comes with the order");
    let id = placed["id"].as_str().expect("id").to_owned();

    // Confirmed, then captured: the payment service captures on OrderConfirmed.
    let payment = until_api(&system, &token, &format!("/api/v1/payments/by-order/{id}"), "the capture", |p| {
        p["status"] == "CAPTURED"
    })
    .await;
    assert_eq!((payment["amount"].as_i64(), payment["captured"].as_i64()), (Some(2999), Some(2999)));
    let detail = until_api(&system, &token, &format!("/api/v1/orders/{id}"), "the detail shows the capture", |o| {
        o["payment"]["status"] == "CAPTURED"
    })
    .await;
    assert_eq!(detail["payment"]["id"], payment["id"]);

    assert_eq!(types_for(&system, "orders.events", &id).await, ["OrderPlaced", "OrderStockReserved", "OrderConfirmed"]);
    assert_eq!(types_for(&system, "payments.events", &id).await, ["PaymentAuthorized", "PaymentCaptured"]);
    saga_settled(&system, 1).await;
    assert_consistent(&system).await;

    let (status, mine) = system.call(Method::GET, "/api/v1/orders/mine", Some(&token), None).await;
    assert_eq!((status, mine["total"].as_i64()), (200, Some(1)), "{mine}");
    let (status, mine) = system.call(Method::GET, "/api/v1/payments/mine", Some(&token), None).await;
    assert_eq!((status, mine["items"][0]["order_id"].as_str()), (200, Some(id.as_str())), "{mine}");
    system.stop().await;
}

#[tokio::test]
async fn an_amount_above_the_limit_is_declined_and_the_order_cancelled() {
    let system = System::start_all().await;
    let (token, _) = customer(&system, "big@example.com").await;
    let (status, placed) = place(&system, &token, order(&[(1, 1_000_001)])).await;
    assert_eq!(status, 201, "{placed}");
    assert_eq!((placed["status"].as_str(), placed["reason"].as_str()), (Some("CANCELLED"), Some("PAYMENT_DECLINED")));
    let id = placed["id"].as_str().expect("id").to_owned();
    let payment = until_api(&system, &token, &format!("/api/v1/payments/by-order/{id}"), "the decline", |p| {
        p["status"] == "DECLINED"
    })
    .await;
    assert_eq!((payment["captured"].as_i64(), payment["reason"].as_str()), (Some(0), Some("AMOUNT_ABOVE_LIMIT")));
    // Exactly at the limit is authorized.
    let (status, placed) = place(&system, &token, order(&[(1, 1_000_000)])).await;
    assert_eq!((status, placed["status"].as_str()), (201, Some("CONFIRMED")), "{placed}");
    saga_settled(&system, 2).await;
    assert_consistent(&system).await;
    system.stop().await;
}

#[tokio::test]
async fn cancelling_a_paid_order_refunds_it_exactly_once() {
    let system = System::start_all().await;
    let (token, _) = customer(&system, "regret@example.com").await;
    let (_, placed) = place(&system, &token, order(&[(3, 700)])).await;
    assert_eq!(placed["status"], "CONFIRMED", "{placed}");
    let id = placed["id"].as_str().expect("id").to_owned();
    until_api(&system, &token, &format!("/api/v1/payments/by-order/{id}"), "the capture", |p| {
        p["status"] == "CAPTURED"
    })
    .await;

    let cancel = format!("/api/v1/orders/{id}/cancel");
    let (status, cancelled) =
        system.call_with(Method::POST, &cancel, Some(&token), None, &[("prefer", "wait=20")]).await;
    assert_eq!(
        (status, cancelled["status"].as_str(), cancelled["reason"].as_str()),
        (200, Some("CANCELLED"), Some("REQUESTED")),
        "{cancelled}"
    );
    let payment = until_api(&system, &token, &format!("/api/v1/payments/by-order/{id}"), "the refund", |p| {
        p["status"] == "REFUNDED"
    })
    .await;
    assert_eq!((payment["captured"].as_i64(), payment["refunded"].as_i64()), (Some(2100), Some(2100)));

    // Cancelling again is an illegal transition, decided by the service.
    let (status, again) = system.call_with(Method::POST, &cancel, Some(&token), None, &[("prefer", "wait=20")]).await;
    assert_eq!((status, again["error"]["code"].as_str()), (409, Some("ILLEGAL_TRANSITION")), "{again}");
    saga_settled(&system, 1).await;
    let refunds: i64 = sqlx::query_scalar("SELECT count(*) FROM refunds")
        .fetch_one(&pool(&system.payments_db).await)
        .await
        .expect("refunds");
    assert_eq!(refunds, 1, "one refund");
    assert_eq!(
        types_for(&system, "payments.events", &id).await,
        ["PaymentAuthorized", "PaymentCaptured", "PaymentRefunded"]
    );
    assert_consistent(&system).await;
    system.stop().await;
}

#[tokio::test]
async fn an_admin_ships_delivers_and_refunds_part_of_an_order() {
    let system = System::start_all().await;
    let admin = admin(&system).await;
    let (token, user_id) = customer(&system, "shopper@example.com").await;
    let (other, _) = customer(&system, "nosy@example.com").await;
    let (_, placed) = place(&system, &token, order(&[(1, 5000)])).await;
    let id = placed["id"].as_str().expect("id").to_owned();
    let payment = until_api(&system, &token, &format!("/api/v1/payments/by-order/{id}"), "the capture", |p| {
        p["status"] == "CAPTURED"
    })
    .await;
    let payment_id = payment["id"].as_str().expect("payment id").to_owned();

    // Someone else's order and payment: 403; the customer cannot ship.
    let order_path = format!("/api/v1/orders/{id}");
    assert_eq!(system.call(Method::GET, &order_path, Some(&other), None).await.0, 403);
    let payment_path = format!("/api/v1/payments/{payment_id}");
    assert_eq!(system.call(Method::GET, &payment_path, Some(&other), None).await.0, 403);
    let status_path = format!("{order_path}/status");
    let wait = [("prefer", "wait=20")];
    let (status, _) =
        system.call_with(Method::PATCH, &status_path, Some(&token), Some(json!({"status": "SHIPPED"})), &wait).await;
    assert_eq!(status, 403);

    // Delivering before shipping is illegal; then the lifecycle in order.
    let (status, body) =
        system.call_with(Method::PATCH, &status_path, Some(&admin), Some(json!({"status": "DELIVERED"})), &wait).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("ILLEGAL_TRANSITION")), "{body}");
    let (status, body) =
        system.call_with(Method::PATCH, &status_path, Some(&admin), Some(json!({"status": "SHIPPED"})), &wait).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("SHIPPED")), "{body}");
    let (status, body) =
        system.call_with(Method::POST, &format!("{order_path}/cancel"), Some(&token), None, &wait).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("ILLEGAL_TRANSITION")),
        "a shipped order stays: {body}"
    );
    let (status, body) =
        system.call_with(Method::PATCH, &status_path, Some(&admin), Some(json!({"status": "DELIVERED"})), &wait).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("DELIVERED")), "{body}");

    // Refunds: admin only, never above what is left.
    let refund = format!("{payment_path}/refund");
    let (status, _) = system.call_with(Method::POST, &refund, Some(&token), Some(json!({"amount": 1})), &wait).await;
    assert_eq!(status, 403);
    let (status, body) = system
        .call_with(Method::POST, &refund, Some(&admin), Some(json!({"amount": 1200, "note": "scratched"})), &wait)
        .await;
    assert_eq!(
        (status, body["status"].as_str(), body["refunded"].as_i64()),
        (200, Some("PARTIALLY_REFUNDED"), Some(1200)),
        "{body}"
    );
    let (status, body) =
        system.call_with(Method::POST, &refund, Some(&admin), Some(json!({"amount": 3801})), &wait).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("REFUND_EXCEEDS_CAPTURE")), "{body}");
    let (status, body) = system.call_with(Method::POST, &refund, Some(&admin), Some(json!({})), &wait).await;
    assert_eq!(
        (status, body["status"].as_str(), body["refunded"].as_i64()),
        (200, Some("REFUNDED"), Some(5000)),
        "the rest: {body}"
    );

    // The admin's lists, filtered.
    let (status, list) =
        system.call(Method::GET, &format!("/api/v1/orders?status=DELIVERED&user={user_id}"), Some(&admin), None).await;
    assert_eq!(
        (status, list["total"].as_i64(), list["items"][0]["id"].as_str()),
        (200, Some(1), Some(id.as_str())),
        "{list}"
    );
    let (status, list) = system.call(Method::GET, "/api/v1/orders?status=CANCELLED", Some(&admin), None).await;
    assert_eq!((status, list["total"].as_i64()), (200, Some(0)), "{list}");
    let (status, list) = system.call(Method::GET, "/api/v1/payments?status=REFUNDED", Some(&admin), None).await;
    assert_eq!((status, list["total"].as_i64()), (200, Some(1)), "{list}");
    assert_eq!(system.call(Method::GET, "/api/v1/orders", Some(&token), None).await.0, 403);
    assert_eq!(system.call(Method::GET, "/api/v1/payments", Some(&token), None).await.0, 403);
    assert_eq!(
        types_for(&system, "orders.events", &id).await,
        [
            "OrderPlaced",
            "OrderStockReserved",
            "OrderConfirmed",
            "CommandRejected",
            "OrderShipped",
            "CommandRejected",
            "OrderDelivered"
        ]
    );
    system.stop().await;
}

#[tokio::test]
async fn an_order_for_a_customer_not_known_yet_holds_up_no_other_order_of_its_partition() {
    // One partition per topic: every order shares it.
    let kafka = orderflow_config::KafkaSettings { partitions: 1, ..orderflow_testkit::kafka_settings() };
    let system = System::start_all_on(kafka).await;
    let (late_token, late_id) = customer(&system, "late@example.com").await;
    let (token, _) = customer(&system, "prompt@example.com").await;
    // The order service has not heard of the first customer yet (as if
    // their registration were still on its way to it).
    let orders = pool(&system.orders_db).await;
    orderflow_testkit::eventually("the order service knows both customers", std::time::Duration::from_secs(30), || {
        let orders = orders.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM customers")
                .fetch_one(&orders)
                .await
                .is_ok_and(|n| n == 2)
        }
    })
    .await;
    let late_uuid = uuid::Uuid::parse_str(&late_id).expect("uuid");
    let row: (bool, i64) = sqlx::query_as("DELETE FROM customers WHERE id = $1 RETURNING active, version")
        .bind(late_uuid)
        .fetch_one(&orders)
        .await
        .expect("forget the customer");
    let body = order(&[(1, 100)]);
    stocked(&system, &body).await;
    let (status, waiting) = system.call(Method::POST, "/api/v1/orders", Some(&late_token), Some(body)).await;
    assert_eq!(status, 202, "{waiting}");

    // Another customer's order, after it on the same partition, goes through
    // while the first waits for its customer.
    // (Held up behind it, it would wait out the 30 s customer grace and
    // come back 202 after `place`'s 20 s wait.)
    let (status, placed) = place(&system, &token, order(&[(1, 200)])).await;
    assert_eq!((status, placed["status"].as_str()), (201, Some("CONFIRMED")), "{placed}");
    let command = waiting["command_id"].as_str().expect("command id");
    let (_, pending) = system.call(Method::GET, &format!("/api/v1/commands/{command}"), Some(&late_token), None).await;
    assert_eq!(pending["status"], "pending", "the first order still waits for its customer: {pending}");

    // Its customer arrives: the waiting order goes ahead by itself.
    sqlx::query("INSERT INTO customers (id, active, version) VALUES ($1, $2, $3)")
        .bind(late_uuid)
        .bind(row.0)
        .bind(row.1)
        .execute(&orders)
        .await
        .expect("the customer arrives");
    let settled =
        until_api(&system, &late_token, &format!("/api/v1/commands/{command}"), "the waiting order settles", |c| {
            c["status"] != "pending"
        })
        .await;
    assert_eq!(settled["status"], "succeeded", "{settled}");
    saga_settled(&system, 2).await;
    assert_consistent(&system).await;
    system.stop().await;
}
