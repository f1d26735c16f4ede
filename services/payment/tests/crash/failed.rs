//! A command the payment service cannot apply (a failpoint makes its
//! handler fail on every refund) is dead-lettered and settles as failed:
//! the admin waiting on it is told, and its status never stays pending.

use orderflow_harness::shop::{admin, assert_command_failed, customer, order, place, spawn_binary, until_api};
use orderflow_harness::system::System;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn a_command_the_service_cannot_apply_ends_failed_not_pending() {
    let mut system = System::start().await;
    system.start_inventory_service().await;
    system.start_order_service().await;
    let _service = spawn_binary(
        env!("CARGO_BIN_EXE_payment-service"),
        system.payment_service_env(),
        Some("handle.RefundPayment=error"),
    );
    let (token, _) = customer(&system, "failing-refund@example.com").await;
    let admin = admin(&system).await;
    let (status, placed) = place(&system, &token, order(&[(1, 900)])).await;
    assert_eq!((status, placed["status"].as_str()), (201, Some("CONFIRMED")), "{placed}");
    let id = placed["id"].as_str().expect("id");
    let payment = until_api(&system, &admin, &format!("/api/v1/payments/by-order/{id}"), "the capture", |p| {
        p["status"] == "CAPTURED"
    })
    .await;
    let refund = format!("/api/v1/payments/{}/refund", payment["id"].as_str().expect("payment id"));
    let answer = system
        .call_with(Method::POST, &refund, Some(&admin), Some(json!({"amount": 100})), &[("prefer", "wait=30")])
        .await;
    assert_command_failed(&system, &admin, answer, "RefundPayment", orderflow_contracts::payments::COMMANDS.name).await;
    system.stop().await;
}
