//! The payment deadline: an order nobody decided on is cancelled with
//! PAYMENT_TIMEOUT, and an authorization that comes after it is voided.

use orderflow_harness::system::System;

use crate::{assert_consistent, customer, order, place, saga_settled, types_for, until_api};

#[tokio::test]
async fn an_order_without_a_payment_decision_times_out_and_the_late_authorization_is_voided() {
    let mut system = System::start().await;
    system.order_rules.payment_deadline_secs = 2;
    system.order_rules.deadline_check_ms = 100;
    system.start_inventory_service().await;
    system.start_order_service().await; // and no payment service: it is down
    let (token, _) = customer(&system, "patient@example.com").await;

    let (status, placed) = place(&system, &token, order(&[(1, 100)])).await;
    assert_eq!(status, 201, "{placed}");
    assert_eq!((placed["status"].as_str(), placed["reason"].as_str()), (Some("CANCELLED"), Some("PAYMENT_TIMEOUT")));
    let id = placed["id"].as_str().expect("id").to_owned();

    // The payment service comes back: it authorizes what it finds, then
    // sees the cancellation and voids it. The order stays cancelled.
    system.start_payment_service().await;
    let payment =
        until_api(&system, &token, &format!("/api/v1/payments/by-order/{id}"), "the void", |p| p["status"] == "VOIDED")
            .await;
    assert_eq!(payment["captured"].as_i64(), Some(0));
    assert_eq!(types_for(&system, "payments.events", &id).await, ["PaymentAuthorized", "PaymentVoided"]);
    assert_eq!(types_for(&system, "orders.events", &id).await, ["OrderPlaced", "OrderStockReserved", "OrderCancelled"]);
    let (_, detail) = system.call(reqwest::Method::GET, &format!("/api/v1/orders/{id}"), Some(&token), None).await;
    assert_eq!(detail["status"], "CANCELLED", "a late authorization does not revive the order");
    saga_settled(&system, 1).await;
    assert_consistent(&system).await;

    // The cancellation carries the request's correlation id and says the
    // system did it.
    let events = orderflow_testkit::topic::read_topic(&system.kafka.brokers, &system.topic("orders.events")).await;
    let headers: Vec<_> = events.iter().map(|m| m.headers().expect("headers")).collect();
    assert_eq!(headers[2].message_type, "OrderCancelled");
    assert_eq!(headers[2].correlation_id, headers[0].correlation_id);
    assert_eq!(headers[2].actor, "system");
    system.stop().await;
}
