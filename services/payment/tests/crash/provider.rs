//! The payment provider is called outside the partition's transaction, by
//! the kit's effector: a provider that fails or is slow for one order holds
//! up that order only — the other orders of its partition are paid and
//! confirmed meanwhile — and each call is made at most its retry budget
//! (`effects.max_attempts`), after which the payment is declined.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use orderflow_harness::shop::{assert_consistent, customer, order, place, saga_settled, until_api};
use orderflow_harness::system::System;
use orderflow_payment::provider::{Authorization, BuiltinProvider, PaymentProvider, ProviderError};
use reqwest::Method;
use uuid::Uuid;

/// The amount the provider misbehaves for.
const TROUBLE: i64 = 777;

/// The built-in provider, except for an authorization of [`TROUBLE`]:
/// while `down`, it cannot be reached; with a `delay`, it answers after
/// it. Counts those authorizations, and how many are being made.
#[derive(Debug)]
struct Troubled {
    down: AtomicBool,
    delay: Option<Duration>,
    calls: AtomicUsize,
    in_flight: AtomicUsize,
    inner: BuiltinProvider,
}

impl Troubled {
    fn new(down: bool, delay: Option<Duration>) -> Arc<Self> {
        Arc::new(Self {
            down: AtomicBool::new(down),
            delay,
            calls: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            inner: BuiltinProvider { decline_above: 1_000_000 },
        })
    }
}

impl PaymentProvider for Troubled {
    fn authorize(
        &self,
        payment_id: Uuid,
        amount: i64,
        currency: &str,
    ) -> BoxFuture<'_, Result<Authorization, ProviderError>> {
        if amount != TROUBLE {
            return self.inner.authorize(payment_id, amount, currency);
        }
        self.calls.fetch_add(1, Ordering::SeqCst);
        let currency = currency.to_owned();
        Box::pin(async move {
            self.in_flight.fetch_add(1, Ordering::SeqCst);
            if let Some(delay) = self.delay {
                tokio::time::sleep(delay).await;
            }
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(ProviderError("connection refused".into()));
            }
            self.inner.authorize(payment_id, amount, &currency).await
        })
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

/// Users, orders and payments on one partition per topic (every order
/// shares it), the payment service with `provider` and `max_attempts`.
async fn system_with(provider: Arc<Troubled>, max_attempts: i32) -> (System, String) {
    let kafka = orderflow_config::KafkaSettings { partitions: 1, ..orderflow_testkit::kafka_settings() };
    let mut system = System::start_without_user_service_on(kafka).await;
    system.effects.max_attempts = max_attempts;
    system.start_user_service().await;
    system.start_inventory_service().await;
    system.start_order_service().await;
    system.start_payment_service_with(provider).await;
    let (token, _) = customer(&system, "trouble@example.com").await;
    (system, token)
}

/// Places the troubled order (202: it is not settled) and returns its id
/// once the API lists it.
async fn place_troubled(system: &System, token: &str) -> String {
    let body = order(&[(1, TROUBLE)]);
    orderflow_harness::shop::stocked(system, &body).await;
    let (status, accepted) = system.call(Method::POST, "/api/v1/orders", Some(token), Some(body)).await;
    assert_eq!(status, 202, "{accepted}");
    let mine = until_api(system, token, "/api/v1/orders/mine", "the troubled order is listed", |m| {
        m["items"].as_array().is_some_and(|items| items.iter().any(|o| o["total"] == TROUBLE))
    })
    .await;
    let items = mine["items"].as_array().expect("items");
    items.iter().find(|o| o["total"] == TROUBLE).and_then(|o| o["id"].as_str()).expect("its id").to_owned()
}

/// Five more orders, each confirmed within `place`'s wait.
async fn five_orders_are_confirmed(system: &System, token: &str) {
    for cents in 100..105 {
        let (status, placed) = place(system, token, order(&[(1, cents)])).await;
        assert_eq!((status, placed["status"].as_str()), (201, Some("CONFIRMED")), "{placed}");
    }
}

async fn status_of(system: &System, token: &str, id: &str) -> String {
    let (status, body) = system.call(Method::GET, &format!("/api/v1/orders/{id}"), Some(token), None).await;
    assert_eq!(status, 200, "{body}");
    body["status"].as_str().expect("status").to_owned()
}

#[tokio::test]
async fn a_provider_failing_for_one_order_holds_up_no_other_order_of_its_partition() {
    // A budget that outlasts the outage.
    let provider = Troubled::new(true, None);
    let (system, token) = system_with(Arc::clone(&provider), 100_000).await;
    let id = place_troubled(&system, &token).await;
    five_orders_are_confirmed(&system, &token).await;
    assert_eq!(status_of(&system, &token, &id).await, "PENDING", "the failing order waits for its payment");
    let calls = provider.calls.load(Ordering::SeqCst);
    assert!(calls >= 2, "its authorization was tried again: {calls}");

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

#[tokio::test]
async fn a_slow_provider_holds_up_no_other_order_of_its_partition() {
    let provider = Troubled::new(false, Some(Duration::from_secs(4)));
    let (system, token) = system_with(Arc::clone(&provider), 5).await;
    let id = place_troubled(&system, &token).await;
    orderflow_testkit::eventually("the slow call is being made", Duration::from_secs(30), || {
        let provider = Arc::clone(&provider);
        async move { provider.in_flight.load(Ordering::SeqCst) == 1 }
    })
    .await;
    five_orders_are_confirmed(&system, &token).await;
    assert_eq!(provider.in_flight.load(Ordering::SeqCst), 1, "the five were confirmed while the slow call was made");
    assert_eq!(status_of(&system, &token, &id).await, "PENDING");

    until_api(&system, &token, &format!("/api/v1/orders/{id}"), "the slow order is confirmed", |o| {
        o["status"] == "CONFIRMED"
    })
    .await;
    assert_eq!(provider.calls.load(Ordering::SeqCst), 1, "a slow answer is one call");
    saga_settled(&system, 6).await;
    assert_consistent(&system).await;
    system.stop().await;
}

#[tokio::test]
async fn each_call_is_made_at_most_its_budget_then_the_payment_is_declined() {
    let provider = Troubled::new(true, None);
    let (system, token) = system_with(Arc::clone(&provider), 3).await;
    let id = place_troubled(&system, &token).await;
    let cancelled = until_api(&system, &token, &format!("/api/v1/orders/{id}"), "the order is cancelled", |o| {
        o["status"] == "CANCELLED"
    })
    .await;
    assert_eq!(cancelled["reason"], "PAYMENT_DECLINED", "{cancelled}");
    let payment = until_api(&system, &token, &format!("/api/v1/payments/by-order/{id}"), "the decline", |p| {
        p["status"] == "DECLINED"
    })
    .await;
    assert_eq!(payment["reason"], "PROVIDER_UNAVAILABLE", "{payment}");
    assert_eq!(provider.calls.load(Ordering::SeqCst), 3, "three attempts, no more");

    // Nothing calls it again: not the redelivery of the order's events,
    // not the next orders.
    five_orders_are_confirmed(&system, &token).await;
    assert_eq!(provider.calls.load(Ordering::SeqCst), 3, "still three");
    saga_settled(&system, 6).await;
    assert_consistent(&system).await;
    system.stop().await;
}
