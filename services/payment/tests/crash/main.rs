//! `kill -9` mid-saga: the payment service (the real binary, a failpoint)
//! aborts between its database commit and its offset commit, a fresh
//! process takes over, and every order still ends CONFIRMED or CANCELLED
//! with one payment decision each and its money right.

mod failed;
mod provider;

use orderflow_harness::shop::{assert_consistent, customer, died, place_many, saga_settled, spawn_binary};
use orderflow_harness::system::System;
use tokio::process::Child;

fn payment_service(system: &System, failpoint: Option<&str>) -> Child {
    spawn_binary(env!("CARGO_BIN_EXE_payment-service"), system.payment_service_env(), failpoint)
}

#[tokio::test]
async fn the_payment_service_killed_between_its_commit_and_its_offset_commit() {
    let mut system = System::start().await;
    system.start_inventory_service().await;
    system.start_order_service().await;
    let (token, _) = customer(&system, "crash-payment@example.com").await;
    let doomed = payment_service(&system, Some("consumer.after_commit"));
    place_many(&system, &token, 10).await;
    died(doomed, "the payment service").await;
    let survivor = payment_service(&system, None);
    saga_settled(&system, 10).await;
    assert_consistent(&system).await;
    // The redelivered OrderPlaced found its payment: one authorization per order.
    let events = orderflow_testkit::topic::read_topic(&system.kafka.brokers, &system.topic("payments.events")).await;
    let mut decided = std::collections::HashSet::new();
    for message in &events {
        let headers = message.headers().expect("headers");
        if matches!(headers.message_type.as_str(), "PaymentAuthorized" | "PaymentDeclined") {
            // A relay retry may republish one message (same id); never a second decision.
            let key = message.key.clone().expect("key");
            decided.insert((key, headers.message_id));
        }
    }
    let per_order: std::collections::HashMap<_, usize> = decided.iter().fold(Default::default(), |mut m, (k, _)| {
        *m.entry(k.clone()).or_default() += 1;
        m
    });
    assert_eq!(per_order.len(), 10);
    assert!(per_order.values().all(|n| *n == 1), "one payment decision per order: {per_order:?}");
    drop(survivor);
    system.stop().await;
}
