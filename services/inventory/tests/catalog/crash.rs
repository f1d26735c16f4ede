//! The real `inventory-service` binary killed — at the moment between its
//! database commit and its offset commit, and with SIGKILL in the middle of
//! a stream of stock adjustments or of orders — and a fresh one started:
//! every adjustment counts once, in the service's table, on the bus and in
//! the read model, and no order holds stock twice.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use orderflow_harness::shop::{self, died, saga_settled, spawn_binary};
use orderflow_harness::system::{ADMIN_EMAIL, System};
use reqwest::Method;
use serde_json::json;
use tokio::process::Child;

use crate::PASSWORD;

fn spawn(system: &System, failpoint: Option<&str>) -> Child {
    spawn_binary(env!("CARGO_BIN_EXE_inventory-service"), system.inventory_service_env(), failpoint)
}

async fn admin(system: &System) -> String {
    let (status, body) = system.register(ADMIN_EMAIL, PASSWORD).await;
    assert_eq!(status, 201, "{body}");
    system.login(ADMIN_EMAIL, PASSWORD).await.expect("the admin logs in")
}

/// Starts an inventory process and puts `product` in the catalog through
/// it; returns the process, still running.
async fn created(system: &System, token: &str, product: serde_json::Value) -> Child {
    let first = spawn(system, None);
    let (status, body) =
        system.call_with(Method::POST, "/api/v1/products", Some(token), Some(product), &[("prefer", "wait=30")]).await;
    assert_eq!(status, 201, "{body}");
    first
}

/// `POST` without waiting: the command is on the bus when it answers 202.
async fn send(system: &System, token: &str, path: &str, body: serde_json::Value) {
    let (status, answer) = system.call(Method::POST, path, Some(token), Some(body)).await;
    assert_eq!(status, 202, "{path}: {answer}");
}

/// `on_hand` of MUG-1 in the service's table and in the read model, once
/// the read model shows `version`.
async fn stock_at(system: &System, version: i64) -> (i64, i64) {
    let inventory = sqlx::PgPool::connect(&system.inventory_db).await.expect("inventory");
    let readmodels = sqlx::PgPool::connect(&system.readmodels_db).await.expect("readmodels");
    orderflow_testkit::eventually("the read model catches up", Duration::from_secs(90), || {
        let readmodels = readmodels.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT version FROM rm.products WHERE sku = 'MUG-1'")
                .fetch_optional(&readmodels)
                .await
                .is_ok_and(|v| v == Some(version))
        }
    })
    .await;
    let table: i64 =
        sqlx::query_scalar("SELECT on_hand FROM products WHERE sku = 'MUG-1'").fetch_one(&inventory).await.expect("db");
    let model: i64 = sqlx::query_scalar("SELECT on_hand FROM rm.products WHERE sku = 'MUG-1'")
        .fetch_one(&readmodels)
        .await
        .expect("read model");
    (table, model)
}

/// The distinct `StockAdjusted` events on the bus, by message id.
async fn adjustments_on_the_bus(system: &System) -> usize {
    let topic = system.topic(orderflow_contracts::inventory::EVENTS.name);
    let records = orderflow_testkit::topic::read_topic(&system.kafka.brokers, &topic).await;
    let ids: HashSet<String> = records
        .iter()
        .filter_map(|m| {
            let headers = m.headers().ok()?;
            (headers.message_type == "StockAdjusted").then(|| headers.message_id.to_string())
        })
        .collect();
    ids.len()
}

#[tokio::test]
async fn killed_between_its_database_commit_and_its_offset_commit_it_applies_a_command_once() {
    let system = System::start().await;
    let token = admin(&system).await;
    let mut first = created(&system, &token, crate::mug("MUG-1")).await;
    first.kill().await.expect("stop");

    // The adjustment is committed, then the process aborts before its
    // offset is: the next process is handed it again.
    let doomed = spawn(&system, Some("consumer.after_commit"));
    send(&system, &token, "/api/v1/products/MUG-1/stock", json!({"delta": 2, "reason": "delivery"})).await;
    died(doomed, "the process died after its commit").await;

    let mut survivor = spawn(&system, None);
    send(&system, &token, "/api/v1/products/MUG-1/stock", json!({"delta": 1, "reason": "marker"})).await;
    assert_eq!(stock_at(&system, 3).await, (8, 8), "the redelivered adjustment absorbed by the inbox, then the marker");
    assert_eq!(adjustments_on_the_bus(&system).await, 2, "one event per adjustment");
    survivor.kill().await.expect("stop");
    system.stop().await;
}

#[tokio::test]
async fn sigkill_in_a_stream_of_adjustments_loses_none_and_applies_none_twice() {
    let system = System::start().await;
    let token = admin(&system).await;
    let mut first = created(&system, &token, crate::mug("MUG-1")).await;

    const ADJUSTMENTS: i64 = 60;
    let inventory = sqlx::PgPool::connect(&system.inventory_db).await.expect("inventory");
    let stream = async {
        for n in 0..ADJUSTMENTS {
            send(&system, &token, "/api/v1/products/MUG-1/stock", json!({"delta": 1, "reason": format!("box {n}")}))
                .await;
        }
    };
    let kill = async {
        orderflow_testkit::eventually("some adjustments are applied", Duration::from_secs(60), || {
            let inventory = inventory.clone();
            async move {
                sqlx::query_scalar::<_, i64>("SELECT on_hand FROM products WHERE sku = 'MUG-1'")
                    .fetch_one(&inventory)
                    .await
                    .is_ok_and(|n| n >= 10)
            }
        })
        .await;
        first.kill().await.expect("kill -9");
    };
    tokio::join!(stream, kill);
    let applied: i64 =
        sqlx::query_scalar("SELECT on_hand FROM products WHERE sku = 'MUG-1'").fetch_one(&inventory).await.expect("db");
    assert!(applied < 5 + ADJUSTMENTS, "killed mid-stream ({applied} on hand)");

    let mut second = spawn(&system, None);
    assert_eq!(stock_at(&system, 1 + ADJUSTMENTS).await, (5 + ADJUSTMENTS, 5 + ADJUSTMENTS), "each adjustment once");
    assert_eq!(adjustments_on_the_bus(&system).await, ADJUSTMENTS as usize, "one event per adjustment");
    second.kill().await.expect("stop");
    system.stop().await;
}

#[tokio::test]
async fn killed_mid_saga_it_holds_nothing_twice_and_sells_exactly_the_stock() {
    const UNITS: i64 = 30;
    const ORDERS: i64 = 200;
    let mut system = System::start().await;
    system.order_rules.payment_deadline_secs = 600; // this test is about stock, not deadlines
    system.start_order_service().await;
    system.start_payment_service().await;
    let token = admin(&system).await;
    let mut first = created(
        &system,
        &token,
        json!({"sku": "LAST-30", "name": "Last ones", "price": 100, "currency": "EUR", "stock": UNITS}),
    )
    .await;
    first.kill().await.expect("stop");
    let (customer, _) = shop::customer(&system, "last-ones@example.com").await;

    // The first process dies between the commit of its first order and
    // the commit of its offset: the next one is handed that order again.
    let doomed = spawn(&system, Some("consumer.after_commit"));
    let mut body = shop::order(&[(1, 100)]);
    body["items"][0]["product_id"] = json!("LAST-30");
    for _ in 0..10 {
        send(&system, &customer, "/api/v1/orders", body.clone()).await;
    }
    died(doomed, "the inventory service").await;
    // The second is killed -9 while the orders still come in.
    let mut second = spawn(&system, None);
    let inventory = sqlx::PgPool::connect(&system.inventory_db).await.expect("inventory");
    let reserved = |at_least: i64| {
        let inventory = inventory.clone();
        orderflow_testkit::eventually("orders are reserved", Duration::from_secs(60), move || {
            let inventory = inventory.clone();
            async move {
                sqlx::query_scalar::<_, i64>("SELECT count(*) FROM reservations")
                    .fetch_one(&inventory)
                    .await
                    .is_ok_and(|n| n >= at_least)
            }
        })
    };
    // Once it works, the rest come at a steady pace, and it dies among them.
    let stream = async {
        reserved(10).await;
        for _ in 10..ORDERS {
            send(&system, &customer, "/api/v1/orders", body.clone()).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let kill = async {
        reserved(60).await;
        second.kill().await.expect("kill -9");
    };
    tokio::join!(stream, kill);
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM reservations").fetch_one(&inventory).await.expect("db");
    assert!(held < ORDERS, "killed mid-stream ({held} of {ORDERS} orders answered)");

    let mut third = spawn(&system, None);
    saga_settled(&system, ORDERS).await;
    let orders = sqlx::PgPool::connect(&system.orders_db).await.expect("orders");
    let statuses: Vec<(String, Option<String>, i64)> =
        sqlx::query_as("SELECT status, reason, count(*) FROM orders GROUP BY status, reason ORDER BY status")
            .fetch_all(&orders)
            .await
            .expect("orders");
    assert_eq!(
        statuses,
        [("CANCELLED".into(), Some("OUT_OF_STOCK".into()), ORDERS - UNITS), ("CONFIRMED".into(), None, UNITS)],
        "exactly the stock is sold"
    );
    let stock: (i64, i64) = sqlx::query_as("SELECT on_hand, reserved FROM products WHERE sku = 'LAST-30'")
        .fetch_one(&inventory)
        .await
        .expect("db");
    assert_eq!(stock, (0, 0), "all sold, nothing left held");
    // One answer per order on the bus, whatever was redelivered: the
    // distinct messages (a relay may publish one twice, with its id).
    let topic = system.topic(orderflow_contracts::inventory::EVENTS.name);
    let mut answers: HashMap<String, HashSet<String>> = HashMap::new();
    for record in orderflow_testkit::topic::read_topic(&system.kafka.brokers, &topic).await {
        let headers = record.headers().expect("headers");
        if matches!(headers.message_type.as_str(), "StockReserved" | "StockReservationFailed") {
            answers.entry(record.key.clone().expect("key")).or_default().insert(headers.message_id.to_string());
        }
    }
    assert_eq!(answers.len() as i64, ORDERS, "every order was answered");
    assert!(answers.values().all(|ids| ids.len() == 1), "no order was answered twice: {answers:?}");
    shop::assert_consistent(&system).await;
    third.kill().await.expect("stop");
    system.stop().await;
}
