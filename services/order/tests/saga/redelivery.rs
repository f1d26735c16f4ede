//! Every saga message delivered twice: commands, orders, payments and
//! inventory events republished as they were (same key, headers, message
//! id), as a relay retry or a consumer restart would. Nothing changes: no
//! order, payment, stock or reservation, and no service emits anything.

use std::sync::Arc;
use std::time::Duration;

use orderflow_bus::Producer;
use orderflow_harness::system::System;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, TopicPartitionList};
use reqwest::Method;

use crate::{assert_consistent, customer, order, place, pool, saga_settled, until_api};

/// Waits until consumer group `group` has committed the end of every
/// partition of `topics`: it consumed everything there is.
async fn consumed(system: &System, group: &str, topics: &[&str]) {
    let (brokers, group) = (system.kafka.brokers.clone(), group.to_owned());
    let topics: Vec<String> = topics.iter().map(|t| system.topic(t)).collect();
    let consumer: Arc<BaseConsumer> = Arc::new(
        ClientConfig::new().set("bootstrap.servers", &brokers).set("group.id", &group).create().expect("consumer"),
    );
    let what = format!("{group} consumed everything");
    orderflow_testkit::until(&what, Duration::from_secs(90), || {
        let (consumer, topics) = (Arc::clone(&consumer), topics.clone());
        async move {
            let behind = tokio::task::spawn_blocking(move || behind(&consumer, &topics)).await.expect("task");
            if behind.is_empty() { Ok(()) } else { Err(format!("{behind:?}")) }
        }
    })
    .await;
}

/// The partitions of `topics` where `consumer`'s group has not committed
/// the end (blocking client calls).
fn behind(consumer: &BaseConsumer, topics: &[String]) -> Vec<String> {
    let mut behind = Vec::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)).expect("metadata");
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let (_, high) = consumer.fetch_watermarks(topic, partition.id(), Duration::from_secs(5)).expect("marks");
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(topic, partition.id());
            let committed = consumer.committed_offsets(tpl, Duration::from_secs(5)).expect("committed");
            let at = committed.elements()[0].offset().to_raw().unwrap_or(-1);
            if high > 0 && at < high {
                behind.push(format!("{topic}/{}: {at} < {high}", partition.id()));
            }
        }
    }
    behind
}

async fn snapshot(system: &System) -> (String, String, String, i64, i64, i64) {
    let dump = |url: String, sql: &'static str| async move {
        sqlx::query_scalar::<_, Option<String>>(sql)
            .fetch_one(&pool(&url).await)
            .await
            .expect("dump")
            .unwrap_or_default()
    };
    let orders = dump(
        system.orders_db.clone(),
        "SELECT string_agg(concat_ws(',', id, status, version, reason), ';' ORDER BY id) FROM orders",
    )
    .await;
    let payments = dump(
        system.payments_db.clone(),
        "SELECT string_agg(concat_ws(',', id, status, captured, refunded, version), ';' ORDER BY id) FROM payments",
    )
    .await;
    let stock = dump(
        system.inventory_db.clone(),
        "SELECT concat((SELECT string_agg(concat_ws(',', sku, on_hand, reserved, version), ';' ORDER BY sku)
                        FROM products), ' | ',
                       (SELECT string_agg(concat_ws(',', order_id, state), ';' ORDER BY order_id) FROM reservations))",
    )
    .await;
    let count = |topic: &'static str| async move {
        orderflow_testkit::topic::read_topic(&system.kafka.brokers, &system.topic(topic)).await.len() as i64
    };
    (
        orders,
        payments,
        stock,
        count("orders.events").await,
        count("payments.events").await,
        count("inventory.events").await,
    )
}

#[tokio::test]
async fn every_saga_message_delivered_twice_changes_nothing() {
    let system = System::start_all().await;
    let (token, _) = customer(&system, "twice@example.com").await;
    // Every path: confirmed, declined, out of stock, confirmed then
    // cancelled and refunded.
    let (_, kept) = place(&system, &token, order(&[(1, 100)])).await;
    let (_, declined) = place(&system, &token, order(&[(1, 5_000_000)])).await;
    let (_, regretted) = place(&system, &token, order(&[(2, 300)])).await;
    // More than the catalog holds (it stocks a million of each).
    let (_, short) = place(&system, &token, order(&[(2_000_000, 7)])).await;
    assert_eq!((kept["status"].as_str(), declined["status"].as_str()), (Some("CONFIRMED"), Some("CANCELLED")));
    assert_eq!((short["status"].as_str(), short["reason"].as_str()), (Some("CANCELLED"), Some("OUT_OF_STOCK")));
    let id = regretted["id"].as_str().expect("id");
    until_api(&system, &token, &format!("/api/v1/payments/by-order/{id}"), "the capture", |p| {
        p["status"] == "CAPTURED"
    })
    .await;
    let (status, _) = system
        .call_with(Method::POST, &format!("/api/v1/orders/{id}/cancel"), Some(&token), None, &[("prefer", "wait=20")])
        .await;
    assert_eq!(status, 200);
    saga_settled(&system, 4).await;
    let prefix = &system.kafka.topic_prefix;
    let (orders_group, payments_group) = (format!("{prefix}order-service"), format!("{prefix}payment-service"));
    let inventory_group = format!("{prefix}inventory-service");
    let all_consumed = || async {
        consumed(&system, &orders_group, &["orders.commands", "payments.events", "inventory.events"]).await;
        consumed(&system, &payments_group, &["orders.events"]).await;
        consumed(&system, &inventory_group, &["orders.events"]).await;
    };
    all_consumed().await;
    let before = snapshot(&system).await;

    let producer = Producer::new(&system.kafka).expect("producer");
    for topic in ["orders.commands", "orders.events", "payments.events", "inventory.events"] {
        let full = system.topic(topic);
        for message in orderflow_testkit::topic::read_topic(&system.kafka.brokers, &full).await {
            let key = message.key.clone().expect("key");
            producer
                .send(&full, &key, message.payload.as_deref().expect("payload"), &message.header_pairs)
                .await
                .expect("send");
        }
    }
    all_consumed().await;
    let after = snapshot(&system).await;
    assert_eq!(after.0, before.0, "the orders did not change");
    assert_eq!(after.1, before.1, "the payments did not change");
    assert_eq!(after.2, before.2, "the stock and the reservations did not change");
    // Every copy we sent is there; not one new event was caused by them.
    assert_eq!(
        (after.3, after.4, after.5),
        (before.3 * 2, before.4 * 2, before.5 * 2),
        "no service emitted anything for a duplicate"
    );
    // What a service reads past leaves no trace in its inbox: the
    // inventory acts on no OrderStockReserved, the payment service on no
    // OrderPlaced.
    for (db, ignored) in [(&system.inventory_db, "OrderStockReserved"), (&system.payments_db, "OrderPlaced")] {
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox WHERE message_type = $1")
            .bind(ignored)
            .fetch_one(&pool(db).await)
            .await
            .expect("inbox");
        assert_eq!(rows, 0, "no inbox row for an ignored {ignored}");
    }
    assert_consistent(&system).await;
    system.stop().await;
}
