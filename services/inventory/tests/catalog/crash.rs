//! The real `inventory-service` binary killed — at the moment between its
//! database commit and its offset commit, and with SIGKILL in the middle of
//! a stream of stock adjustments — and a fresh one started: every
//! adjustment counts once, in the service's table, on the bus and in the
//! read model.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use orderflow_harness::system::{ADMIN_EMAIL, System};
use reqwest::Method;
use serde_json::json;
use tokio::process::{Child, Command};

use crate::PASSWORD;

fn spawn(system: &System, failpoint: Option<&str>) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_inventory-service"));
    command
        .envs(system.inventory_service_env())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if let Some(point) = failpoint {
        command.env("OF_FAILPOINTS", point);
    }
    command.spawn().expect("start the inventory-service binary")
}

async fn admin(system: &System) -> String {
    let (status, body) = system.register(ADMIN_EMAIL, PASSWORD).await;
    assert_eq!(status, 201, "{body}");
    system.login(ADMIN_EMAIL, PASSWORD).await.expect("the admin logs in")
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
    let mut first = spawn(&system, None);
    let product = json!({"sku": "MUG-1", "name": "Mug", "price": 1250, "currency": "EUR", "stock": 5});
    let (status, body) =
        system.call_with(Method::POST, "/api/v1/products", Some(&token), Some(product), &[("prefer", "wait=30")]).await;
    assert_eq!(status, 201, "{body}");
    first.kill().await.expect("stop");

    // The adjustment is committed, then the process aborts before its
    // offset is: the next process is handed it again.
    let mut doomed = spawn(&system, Some("consumer.after_commit"));
    send(&system, &token, "/api/v1/products/MUG-1/stock", json!({"delta": 2, "reason": "delivery"})).await;
    let status =
        tokio::time::timeout(Duration::from_secs(60), doomed.wait()).await.expect("the failpoint fired").expect("wait");
    assert!(!status.success(), "the process died after its commit: {status:?}");

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
    let mut first = spawn(&system, None);
    let product = json!({"sku": "MUG-1", "name": "Mug", "price": 1250, "currency": "EUR", "stock": 5});
    let (status, body) =
        system.call_with(Method::POST, "/api/v1/products", Some(&token), Some(product), &[("prefer", "wait=30")]).await;
    assert_eq!(status, 201, "{body}");

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
