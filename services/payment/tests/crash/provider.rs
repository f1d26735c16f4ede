//! A payment provider that keeps failing for one order holds up that order
//! only: the other orders of its partition are paid and confirmed
//! meanwhile, and the failing one goes through once the provider recovers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures::future::BoxFuture;
use orderflow_harness::shop::{assert_consistent, customer, order, place, saga_settled, until_api};
use orderflow_harness::system::System;
use orderflow_payment::provider::{Authorization, BuiltinProvider, PaymentProvider, ProviderError};
use reqwest::Method;
use uuid::Uuid;

/// The built-in provider, except that it cannot be reached for an amount
/// of 777 while `down` is set; counts those calls.
#[derive(Debug)]
struct Outage {
    down: AtomicBool,
    refused: AtomicUsize,
    inner: BuiltinProvider,
}

impl PaymentProvider for Outage {
    fn authorize(
        &self,
        payment_id: Uuid,
        amount: i64,
        currency: &str,
    ) -> BoxFuture<'_, Result<Authorization, ProviderError>> {
        if amount == 777 && self.down.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Box::pin(async { Err(ProviderError("connection refused".into())) });
        }
        self.inner.authorize(payment_id, amount, currency)
    }

    fn capture(&self, payment_id: Uuid, amount: i64) -> BoxFuture<'_, Result<(), ProviderError>> {
        self.inner.capture(payment_id, amount)
    }

    fn void(&self, payment_id: Uuid) -> BoxFuture<'_, Result<(), ProviderError>> {
        self.inner.void(payment_id)
    }

    fn refund(&self, payment_id: Uuid, refund_id: Uuid, amount: i64) -> BoxFuture<'_, Result<(), ProviderError>> {
        self.inner.refund(payment_id, refund_id, amount)
    }
}

#[tokio::test]
async fn a_provider_failing_for_one_order_holds_up_no_other_order_of_its_partition() {
    // One partition per topic: every order shares it.
    let kafka = orderflow_config::KafkaSettings { partitions: 1, ..orderflow_testkit::kafka_settings() };
    let mut system = System::start_without_user_service_on(kafka).await;
    system.start_user_service().await;
    system.start_order_service().await;
    let provider = Arc::new(Outage {
        down: AtomicBool::new(true),
        refused: AtomicUsize::new(0),
        inner: BuiltinProvider { decline_above: 1_000_000 },
    });
    system.start_payment_service_with(provider.clone()).await;
    let (token, _) = customer(&system, "outage@example.com").await;

    let (status, stuck) = system.call(Method::POST, "/api/v1/orders", Some(&token), Some(order(&[(1, 777)]))).await;
    assert_eq!(status, 202, "{stuck}");
    // (Held up behind it, each of these would wait out `place`'s 20 s and
    // come back 202.)
    for cents in 100..105 {
        let (status, placed) = place(&system, &token, order(&[(1, cents)])).await;
        assert_eq!((status, placed["status"].as_str()), (201, Some("CONFIRMED")), "{placed}");
    }
    let mine =
        until_api(&system, &token, "/api/v1/orders/mine", "all six orders are listed", |m| m["total"] == 6).await;
    let waiting = mine["items"].as_array().expect("items").iter().find(|o| o["total"] == 777).expect("the 777 order");
    assert_eq!(waiting["status"], "PENDING", "the failing order waits for its payment: {waiting}");
    let id = waiting["id"].as_str().expect("id").to_owned();
    let refused = provider.refused.load(Ordering::SeqCst);
    assert!(refused >= 2, "its authorization was tried again: {refused}");

    // The provider is back: the waiting order is paid and confirmed.
    provider.down.store(false, Ordering::SeqCst);
    until_api(&system, &token, &format!("/api/v1/orders/{id}"), "the waiting order is confirmed", |o| {
        o["status"] == "CONFIRMED"
    })
    .await;
    saga_settled(&system, 6).await;
    assert_consistent(&system).await;
    system.stop().await;
}
