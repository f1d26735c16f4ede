//! `kill -9` mid-saga: each service aborts between its database commit and
//! its offset commit (the real binary, a failpoint), a fresh process takes
//! over, and every order still ends CONFIRMED or CANCELLED with its money
//! right.

use std::process::Stdio;
use std::time::Duration;

use orderflow_harness::system::System;
use reqwest::Method;
use tokio::process::{Child, Command};

use crate::{assert_consistent, customer, order, pool, saga_settled};

fn spawn(binary: &str, env: Vec<(String, String)>, failpoint: Option<&str>) -> Child {
    let mut command = Command::new(binary);
    command.envs(env).env("RUST_LOG", "warn").stdout(Stdio::null()).stderr(Stdio::null()).kill_on_drop(true);
    if let Some(point) = failpoint {
        command.env("OF_FAILPOINTS", point);
    }
    command.spawn().expect("start the binary")
}

fn order_service(system: &System, failpoint: Option<&str>) -> Child {
    let binary = env!("CARGO_BIN_EXE_order-service");
    spawn(binary, system.order_service_env(), failpoint)
}

fn payment_service(system: &System, failpoint: Option<&str>) -> Child {
    // The payment binary is another package's: find it beside ours.
    let ours = std::path::Path::new(env!("CARGO_BIN_EXE_order-service"));
    let binary = ours.with_file_name("payment-service");
    assert!(binary.exists(), "build the payment-service binary first (scripts/test builds the workspace)");
    spawn(binary.to_str().expect("path"), system.payment_service_env(), failpoint)
}

/// Places `n` orders (half above the decline limit) without waiting.
async fn place_many(system: &System, token: &str, n: usize) {
    for i in 0..n {
        let price = if i % 2 == 0 { 100 + i as i64 } else { 2_000_000 };
        let (status, body) = system.call(Method::POST, "/api/v1/orders", Some(token), Some(order(&[(1, price)]))).await;
        assert_eq!(status, 202, "{body}");
    }
}

async fn died(mut child: Child, what: &str) {
    let status =
        tokio::time::timeout(Duration::from_secs(60), child.wait()).await.expect("the failpoint fired").expect("wait");
    assert!(!status.success(), "{what} died at its failpoint: {status:?}");
}

#[tokio::test]
async fn the_order_service_killed_between_its_commit_and_its_offset_commit() {
    let mut system = System::start().await;
    system.start_payment_service().await;
    let (token, user_id) = customer(&system, "crash-order@example.com").await;
    // A first process learns the customer and stops; the doomed one's first
    // commit is then a saga step.
    let mut first = order_service(&system, None);
    let orders = pool(&system.orders_db).await;
    orderflow_testkit::eventually("the order service knows the customer", Duration::from_secs(60), || {
        let (orders, user_id) = (orders.clone(), user_id.clone());
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM customers WHERE id = $1::uuid")
                .bind(user_id)
                .fetch_one(&orders)
                .await
                .is_ok_and(|n| n == 1)
        }
    })
    .await;
    first.kill().await.expect("stop the first process");

    let doomed = order_service(&system, Some("consumer.after_commit"));
    place_many(&system, &token, 10).await;
    died(doomed, "the order service").await;
    let survivor = order_service(&system, None);
    saga_settled(&system, 10).await;
    assert_consistent(&system).await;
    let inbox_dupes: i64 = sqlx::query_scalar("SELECT count(*) - count(DISTINCT message_id) FROM inbox")
        .fetch_one(&orders)
        .await
        .expect("inbox");
    assert_eq!(inbox_dupes, 0);
    drop(survivor);
    system.stop().await;
}

#[tokio::test]
async fn the_payment_service_killed_between_its_commit_and_its_offset_commit() {
    let mut system = System::start().await;
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
