//! The broker killed with SIGKILL in the middle of a stream of orders and
//! restarted: every order the ingress accepted settles exactly once, none
//! that it refused appears, nothing stays wedged, and `/health/ready` says
//! what is wrong while it is wrong.

use std::sync::Mutex;
use std::time::Duration;

use orderflow_harness::system::System;
use orderflow_testkit::broker::PrivateBroker;
use reqwest::Method;

use crate::{assert_consistent, customer, order, pool, saga_settled};

const CLIENTS: usize = 8;

#[tokio::test]
async fn the_broker_killed_under_load_and_restarted_loses_nothing_and_applies_nothing_twice() {
    let mut broker = PrivateBroker::start().await;
    let mut system = System::start_without_user_service_on(broker.kafka_settings()).await;
    system.order_rules.payment_deadline_secs = 600; // this test is about the broker, not deadlines
    system.start_user_service().await;
    system.start_order_service().await;
    system.start_payment_service().await;
    let mut tokens = Vec::new();
    for c in 0..CLIENTS {
        tokens.push(customer(&system, &format!("fault{c}@example.com")).await.0);
    }

    // Orders from every client, without a pause, for 12 s; the broker dies
    // after 3 s and is back 4 s later.
    let answers: Mutex<Vec<(u16, serde_json::Value)>> = Mutex::default();
    let until = tokio::time::Instant::now() + Duration::from_secs(12);
    let system_ref = &system;
    let answers_ref = &answers;
    let clients = tokens.iter().enumerate().map(|(c, token)| async move {
        let mut i = 0i64;
        while tokio::time::Instant::now() < until {
            let price = if (c as i64 + i) % 4 == 0 { 1_500_000 } else { 100 + i };
            let answer = system_ref.call(Method::POST, "/api/v1/orders", Some(token), Some(order(&[(1, price)]))).await;
            answers_ref.lock().expect("lock").push(answer);
            i += 1;
        }
    });
    let fault = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        broker.kill().await;
        // While the broker is gone, readiness says so (and names it).
        let ops = system_ref.ops().to_owned();
        orderflow_testkit::eventually("/health/ready names the broker", Duration::from_secs(20), || {
            let (http, ops) = (system_ref.http.clone(), ops.clone());
            async move {
                let Ok(response) = http.get(format!("{ops}/health/ready")).send().await else { return false };
                response.status() == 503 && response.text().await.is_ok_and(|body| body.contains("kafka"))
            }
        })
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        broker.restart().await;
    };
    futures::future::join(futures::future::join_all(clients), fault).await;

    let answers = answers.into_inner().expect("lock");
    let accepted: Vec<uuid::Uuid> = answers
        .iter()
        .filter(|(status, _)| *status == 202)
        .map(|(_, body)| body["command_id"].as_str().and_then(|id| id.parse().ok()).expect("a command id"))
        .collect();
    let refused: Vec<&(u16, serde_json::Value)> = answers.iter().filter(|(status, _)| *status != 202).collect();
    for (status, body) in &refused {
        assert_eq!(*status, 503, "while the broker is gone an order is accepted or refused as unavailable: {body}");
    }
    assert!(
        accepted.len() > 100,
        "orders were accepted around the fault: {} ({} refused)",
        accepted.len(),
        refused.len()
    );

    // Every accepted order exists once and its saga ends; no refused one
    // slipped through (a refusal means "not sent").
    saga_settled(&system, accepted.len() as i64).await;
    let orders = pool(&system.orders_db).await;
    let twice: bool =
        sqlx::query_scalar("SELECT bool_and(version = 2) FROM orders").fetch_one(&orders).await.expect("versions");
    assert!(twice, "every order changed exactly twice: nothing applied twice");
    assert_consistent(&system).await;
    let readmodels = pool(&system.readmodels_db).await;
    let succeeded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM rm.commands WHERE command_id = ANY($1) AND status = 'succeeded'")
            .bind(&accepted)
            .fetch_one(&readmodels)
            .await
            .expect("statuses");
    assert_eq!(succeeded, accepted.len() as i64, "every accepted command settled as succeeded");

    // Nothing is wedged: the ingress is ready and a new order settles at once.
    let (status, body) = system
        .call_with(Method::POST, "/api/v1/orders", Some(&tokens[0]), Some(order(&[(1, 700)])), &[("prefer", "wait=20")])
        .await;
    assert_eq!((status, body["status"].as_str()), (201, Some("CONFIRMED")), "{body}");
    system.stop().await;
}
