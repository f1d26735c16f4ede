//! 500 orders from 20 concurrent clients: once idle, none is PENDING, the
//! money is right, each order's events are in order, and a rebuild of the
//! read models by replay gives what the live projection built.

use std::collections::HashMap;

use orderflow_harness::system::System;
use reqwest::Method;

use crate::{assert_consistent, customer, order, saga_settled};

const CLIENTS: usize = 20;
const ORDERS_EACH: usize = 25;

#[tokio::test]
async fn five_hundred_orders_from_twenty_clients_all_settle_in_order() {
    let mut system = System::start().await;
    system.order_rules.payment_deadline_secs = 600; // this test is about load, not deadlines
    system.start_inventory_service().await;
    system.start_order_service().await;
    system.start_payment_service().await;
    let mut tokens = Vec::new();
    for c in 0..CLIENTS {
        tokens.push(customer(&system, &format!("client{c}@example.com")).await.0);
    }
    let system = &system;
    let mut products: Vec<(String, i64)> = vec![("sku-5".into(), 5), ("sku-1500000".into(), 1_500_000)];
    products.extend(
        (0..CLIENTS)
            .flat_map(|c| (0..ORDERS_EACH).map(move |i| 100 + (c * 31 + i) as i64))
            .map(|p| (format!("sku-{p}"), p)),
    );
    system.stock(&products, "EUR").await;
    let clients = tokens.iter().enumerate().map(|(c, token)| async move {
        for i in 0..ORDERS_EACH {
            // Every fifth order is above the decline limit.
            let price = if (c + i) % 5 == 0 { 1_500_000 } else { 100 + (c * 31 + i) as i64 };
            let (status, body) =
                system.call(Method::POST, "/api/v1/orders", Some(token), Some(order(&[(1, price), (2, 5)]))).await;
            assert_eq!(status, 202, "{body}");
        }
    });
    futures::future::join_all(clients).await;
    saga_settled(system, (CLIENTS * ORDERS_EACH) as i64).await;
    assert_consistent(system).await;

    // Per order, its events in order: the log of each key is one of the
    // saga's paths, with versions counting up.
    let read = |topic: &'static str| async move {
        let mut per_key: HashMap<String, Vec<(String, i64)>> = HashMap::new();
        for message in orderflow_testkit::topic::read_topic(&system.kafka.brokers, &system.topic(topic)).await {
            let headers = message.headers().expect("headers");
            per_key.entry(message.key.clone().expect("key")).or_default().push((headers.message_type, message.offset));
        }
        per_key
    };
    let orders = read("orders.events").await;
    let payments = read("payments.events").await;
    assert_eq!(orders.len(), CLIENTS * ORDERS_EACH);
    for (key, events) in &orders {
        assert!(events.windows(2).all(|w| w[0].1 < w[1].1), "offsets of one key count up: {key}");
        let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
        let paid: Vec<&str> = payments[key].iter().map(|(t, _)| t.as_str()).collect();
        match types.as_slice() {
            ["OrderPlaced", "OrderStockReserved", "OrderConfirmed"] => {
                assert_eq!(paid, ["PaymentAuthorized", "PaymentCaptured"], "{key}")
            }
            ["OrderPlaced", "OrderStockReserved", "OrderCancelled"] => assert_eq!(paid, ["PaymentDeclined"], "{key}"),
            other => panic!("order {key}: events out of any saga path: {other:?}"),
        }
    }
    let order_db = crate::pool(&system.orders_db).await;
    let versions_ok: bool =
        sqlx::query_scalar("SELECT bool_and(version = 3) FROM orders").fetch_one(&order_db).await.expect("q");
    assert!(versions_ok, "every order changed exactly three times (placed, stock held, decided)");

    // Rebuilt by replaying every topic, the read models are what they were.
    orderflow_harness::shop::assert_rebuild_equals_live(system).await;
}
