//! The broker killed with SIGKILL, and Postgres stopped with `pg_ctl -m
//! immediate`, in the middle of a stream of orders, then restarted: every
//! order the ingress accepted settles exactly once, none that it refused
//! appears, nothing stays wedged, and `/health/ready` says what is wrong
//! while it is wrong. Each test runs on a broker or cluster of its own.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use orderflow_harness::system::System;
use orderflow_testkit::broker::PrivateBroker;
use orderflow_testkit::postgres::PrivatePostgres;
use reqwest::Method;
use serde_json::Value;

use crate::{assert_consistent, customer, order, pool, saga_settled};

const CLIENTS: usize = 8;
const LOAD: Duration = Duration::from_secs(12);
/// Orders the checks need accepted around a fault.
const MIN_ACCEPTED: usize = 101;

// Two workers, as the services run on a two-core machine: librdkafka calls
// that block (a commit while partitions move) then stall one worker, not the
// whole system in this test process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_killed_under_load_and_restarted_loses_nothing_and_applies_nothing_twice() {
    let mut broker = PrivateBroker::start().await;
    let mut system = System::start_without_user_service_on(broker.kafka_settings()).await;
    start_domain_services(&mut system).await;
    let answers = orders_around(&system, async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        broker.kill().await;
        ready_names(&system, "kafka").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        broker.restart().await;
    })
    .await;
    exactly_the_accepted_settled(&system, &answers).await;
    // And every process stops: a consumer whose close waits for the group
    // coordinator (librdkafka can, forever, after a broker restart) is given
    // a bounded time, not the process's whole shutdown.
    let stopping = std::time::Instant::now();
    system.stop().await;
    assert!(stopping.elapsed() < Duration::from_secs(60), "stopped in {:?}", stopping.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_immediately_under_load_and_restarted_loses_nothing_and_applies_nothing_twice() {
    let postgres = PrivatePostgres::start();
    let mut system =
        System::start_without_user_service_with(orderflow_testkit::kafka_settings(), &postgres.admin_url).await;
    start_domain_services(&mut system).await;
    let system = &system;
    let answers = orders_around(system, async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        postgres.crash();
        ready_names(system, "database").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        postgres.restart();
    })
    .await;
    exactly_the_accepted_settled(system, &answers).await;
}

async fn start_domain_services(system: &mut System) {
    system.order_rules.payment_deadline_secs = 600; // these tests are about faults, not deadlines
    system.start_user_service().await;
    system.start_inventory_service().await;
    system.start_order_service().await;
    system.start_payment_service().await;
}

/// Orders from every client without a pause for [`LOAD`], while `fault`
/// runs; every answer, in order of arrival.
async fn orders_around(system: &System, fault: impl Future<Output = ()>) -> Vec<(u16, Value)> {
    let mut tokens = Vec::new();
    for c in 0..CLIENTS {
        tokens.push(customer(system, &format!("fault{c}@example.com")).await.0);
    }
    // What the orders below buy, in the catalog before the load starts.
    let mut products: Vec<(String, i64)> = (0..20).map(|i| (format!("sku-{}", 100 + i), 100 + i)).collect();
    products.extend([("sku-1500000".into(), 1_500_000), ("sku-700".into(), 700)]);
    system.stock(&products, "EUR").await;
    let answers: Mutex<Vec<(u16, Value)>> = Mutex::default();
    let start = tokio::time::Instant::now();
    let (until, at_most) = (start + LOAD, start + 3 * LOAD);
    let answers_ref = &answers;
    // For LOAD, and on a machine too slow to have had MIN_ACCEPTED orders
    // accepted by then, until it has (at most three times as long): the
    // checks below need that many orders around the fault, whatever the
    // machine's speed.
    let enough =
        || answers_ref.lock().expect("lock").iter().filter(|(status, _)| *status == 202).count() >= MIN_ACCEPTED;
    let clients = tokens.iter().enumerate().map(|(c, token)| async move {
        let mut i = 0i64;
        loop {
            let now = tokio::time::Instant::now();
            if now >= at_most || (now >= until && enough()) {
                break;
            }
            let price = if (c as i64 + i) % 4 == 0 { 1_500_000 } else { 100 + i % 20 };
            let answer = system.call(Method::POST, "/api/v1/orders", Some(token), Some(order(&[(1, price)]))).await;
            answers_ref.lock().expect("lock").push(answer);
            i += 1;
        }
    });
    futures::future::join(futures::future::join_all(clients), fault).await;
    answers.into_inner().expect("lock")
}

/// Waits until the ingress's `/health/ready` fails naming `what`.
async fn ready_names(system: &System, what: &str) {
    let ops = system.ops().to_owned();
    orderflow_testkit::eventually(&format!("/health/ready names the {what}"), Duration::from_secs(20), || {
        let (http, ops) = (system.http.clone(), ops.clone());
        async move {
            let Ok(response) = http.get(format!("{ops}/health/ready")).send().await else { return false };
            response.status() == 503 && response.text().await.is_ok_and(|body| body.contains(what))
        }
    })
    .await;
}

/// Every accepted order exists once and its saga ended exactly once; no
/// refused one slipped through (a refusal means "not sent"); the ingress
/// answers a new order at once.
async fn exactly_the_accepted_settled(system: &System, answers: &[(u16, Value)]) {
    let accepted: Vec<uuid::Uuid> = answers
        .iter()
        .filter(|(status, _)| *status == 202)
        .map(|(_, body)| body["command_id"].as_str().and_then(|id| id.parse().ok()).expect("a command id"))
        .collect();
    let refused: Vec<&(u16, Value)> = answers.iter().filter(|(status, _)| *status != 202).collect();
    for (status, body) in &refused {
        assert_eq!(*status, 503, "during the fault an order is accepted or refused as unavailable: {body}");
    }
    assert!(
        accepted.len() >= MIN_ACCEPTED,
        "orders were accepted around the fault: {} ({} refused)",
        accepted.len(),
        refused.len()
    );

    saga_settled(system, accepted.len() as i64).await;
    // Nothing applied twice: each order's version is the number of its
    // events (placed, its stock held, decided; or placed and cancelled before
    // its stock was held), each counted once by message id.
    let orders = pool(&system.orders_db).await;
    let versions: Vec<(uuid::Uuid, i64)> =
        sqlx::query_as("SELECT id, version FROM orders").fetch_all(&orders).await.expect("versions");
    orderflow_testkit::eventually("each order's version is the number of its events", Duration::from_secs(60), || {
        let versions = versions.clone();
        async move {
            let mut events: std::collections::HashMap<String, std::collections::HashSet<uuid::Uuid>> =
                std::collections::HashMap::new();
            for m in orderflow_testkit::topic::read_topic(&system.kafka.brokers, &system.topic("orders.events")).await {
                let id = m.headers().expect("headers").message_id;
                events.entry(m.key.clone().unwrap_or_default()).or_default().insert(id);
            }
            versions.iter().all(|(id, version)| events.get(&id.to_string()).map(|e| e.len() as i64) == Some(*version))
        }
    })
    .await;
    assert_consistent(system).await;
    let readmodels = pool(&system.readmodels_db).await;
    orderflow_testkit::eventually("every accepted command settled as succeeded", Duration::from_secs(60), || {
        let (readmodels, accepted) = (readmodels.clone(), accepted.clone());
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM rm.commands WHERE command_id = ANY($1) AND status = 'succeeded'",
            )
            .bind(&accepted)
            .fetch_one(&readmodels)
            .await
            .is_ok_and(|n| n == accepted.len() as i64)
        }
    })
    .await;

    // Nothing is wedged: a new order is confirmed within the wait.
    let token = crate::customer(system, "after@example.com").await.0;
    let (status, body) = system
        .call_with(Method::POST, "/api/v1/orders", Some(&token), Some(order(&[(1, 700)])), &[("prefer", "wait=20")])
        .await;
    assert_eq!((status, body["status"].as_str()), (201, Some("CONFIRMED")), "{body}");
}
