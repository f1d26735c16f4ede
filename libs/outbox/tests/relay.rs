//! The relay against a real broker and a real Postgres: what it does with a
//! confirmed row, and with a row that can never be published.

use std::time::Duration;

use orderflow_bus::Producer;
use orderflow_contracts::topics::Retention;
use orderflow_outbox::{OutboxMessage, Relay, RelayOptions};
use sqlx::PgPool;

struct Setup {
    pool: PgPool,
    producer: Producer,
    topic: String,
    brokers: String,
}

async fn setup() -> Setup {
    let pool = PgPool::connect(&orderflow_testkit::fresh_database("relay").await).await.expect("database");
    orderflow_outbox::migrate(&pool).await.expect("migrate");
    let kafka = orderflow_testkit::kafka_settings();
    orderflow_bus::admin::ensure_topics(&kafka, &[("relayed".to_owned(), Retention::Week)]).await.expect("topic");
    let producer = Producer::new(&kafka).expect("producer");
    Setup { pool, producer, topic: kafka.topic("relayed"), brokers: kafka.brokers.clone() }
}

fn message(topic: &str, key: &str, payload: Vec<u8>) -> OutboxMessage {
    OutboxMessage { topic: topic.to_owned(), key: key.to_owned(), payload, headers: vec![] }
}

async fn enqueue(pool: &PgPool, messages: &[OutboxMessage]) {
    let mut tx = pool.begin().await.expect("tx");
    orderflow_outbox::enqueue(&mut tx, messages).await.expect("enqueue");
    tx.commit().await.expect("commit");
}

async fn count(pool: &PgPool, filter: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM outbox WHERE {filter}")))
        .fetch_one(pool)
        .await
        .expect("count")
}

/// `key=value` of every record on the topic, partition by partition, each
/// in offset order (a key's records in the order they were written).
async fn on_topic(s: &Setup) -> Vec<String> {
    orderflow_testkit::topic::read_topic(&s.brokers, &s.topic)
        .await
        .into_iter()
        .map(|m| format!("{}={}", m.key.unwrap_or_default(), String::from_utf8_lossy(&m.payload.unwrap_or_default())))
        .collect()
}

async fn of_key(s: &Setup, key: &str) -> Vec<String> {
    on_topic(s).await.into_iter().filter(|r| r.starts_with(&format!("{key}="))).collect()
}

#[tokio::test]
async fn a_confirmed_row_is_deleted_unless_a_retention_keeps_it() {
    let s = setup().await;
    enqueue(&s.pool, &[message(&s.topic, "a", b"1".to_vec()), message(&s.topic, "a", b"2".to_vec())]).await;
    let relay = Relay::new(s.pool.clone(), s.producer.clone(), RelayOptions::default());
    assert_eq!(relay.relay_once().await.expect("relay"), 2);
    assert_eq!(count(&s.pool, "true").await, 0, "by default the table holds only the backlog");

    let kept = RelayOptions { retention: Duration::from_secs(3600), ..RelayOptions::default() };
    enqueue(&s.pool, &[message(&s.topic, "a", b"3".to_vec())]).await;
    let relay = Relay::new(s.pool.clone(), s.producer.clone(), kept);
    assert_eq!(relay.relay_once().await.expect("relay"), 1);
    assert_eq!(count(&s.pool, "published_at IS NOT NULL").await, 1, "kept, marked, for the retention");
    assert_eq!(relay.relay_once().await.expect("relay"), 0, "a marked row is not sent again");
    assert_eq!(on_topic(&s).await, ["a=1", "a=2", "a=3"]);
}

#[tokio::test]
async fn a_row_that_can_never_be_published_is_parked_with_its_key_and_the_rest_flows_on() {
    let s = setup().await;
    // Larger than the producer's message.max.bytes: an error no retry passes.
    let too_large = vec![b'x'; 2 * 1024 * 1024];
    enqueue(
        &s.pool,
        &[
            message(&s.topic, "stuck", b"before".to_vec()),
            message(&s.topic, "stuck", too_large),
            message(&s.topic, "other", b"1".to_vec()),
            message(&s.topic, "stuck", b"after".to_vec()),
            message(&s.topic, "other", b"2".to_vec()),
        ],
    )
    .await;
    let relay = Relay::new(s.pool.clone(), s.producer.clone(), RelayOptions::default());
    assert_eq!(relay.relay_once().await.expect("relay"), 3, "everything but the stuck key's tail");
    assert_eq!(relay.relay_once().await.expect("relay"), 0, "parked rows wait for an operator");
    let parked: Vec<(String, i32)> = sqlx::query_as(
        "SELECT convert_from(substr(payload, 1, 5), 'UTF8'), attempts FROM outbox WHERE parked_at IS NOT NULL ORDER BY id",
    )
    .fetch_all(&s.pool)
    .await
    .expect("parked");
    assert_eq!(parked, [("xxxxx".to_owned(), 1), ("after".to_owned(), 0)], "the row and the later rows of its key");
    let error: String =
        sqlx::query_scalar("SELECT last_error FROM outbox WHERE attempts = 1").fetch_one(&s.pool).await.expect("error");
    assert!(error.contains("too large"), "the reason is recorded: {error}");
    // Nothing of the stuck key went ahead of the row that cannot go.
    assert_eq!(of_key(&s, "stuck").await, ["stuck=before"]);
    assert_eq!(of_key(&s, "other").await, ["other=1", "other=2"]);
    assert_eq!(count(&s.pool, "parked_at IS NULL").await, 0, "the published rows are gone");

    // The operator's way out (relay.rs): deal with the cause, then release.
    sqlx::query("DELETE FROM outbox WHERE attempts = 1").execute(&s.pool).await.expect("drop the bad row");
    sqlx::query("UPDATE outbox SET parked_at = NULL, attempts = 0 WHERE parked_at IS NOT NULL")
        .execute(&s.pool)
        .await
        .expect("release");
    assert_eq!(relay.relay_once().await.expect("relay"), 1);
    assert_eq!(of_key(&s, "stuck").await, ["stuck=before", "stuck=after"]);
}

#[tokio::test]
async fn a_relay_that_loses_its_lock_stops_and_one_relay_carries_on_in_key_order() {
    let s = setup().await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let options = RelayOptions { poll_interval: Duration::from_millis(50), ..RelayOptions::default() };
    let leaders = |pool: PgPool| async move {
        sqlx::query_scalar::<_, i32>(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database =
               (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_all(&pool)
        .await
        .expect("locks")
    };
    let mut relays = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let relay = Relay::new(s.pool.clone(), s.producer.clone(), options.clone());
        relays.spawn(relay.run(shutdown.clone()));
    }
    let mut sent = 0;
    for round in 0..10 {
        let batch: Vec<OutboxMessage> =
            (sent..sent + 20).map(|n| message(&s.topic, "k", format!("{n:03}").into_bytes())).collect();
        enqueue(&s.pool, &batch).await;
        sent += 20;
        if round % 3 == 1 {
            // The leader's lock connection dies (as when Postgres drops it).
            for pid in leaders(s.pool.clone()).await {
                sqlx::query("SELECT pg_terminate_backend($1)").bind(pid).execute(&s.pool).await.expect("terminate");
            }
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let pool = s.pool.clone();
    orderflow_testkit::eventually("every row is published", Duration::from_secs(30), || {
        let pool = pool.clone();
        async move { count(&pool, "true").await == 0 }
    })
    .await;
    assert_eq!(leaders(s.pool.clone()).await.len(), 1, "one relay leads");

    // A row may go twice (sent, then the lock lost before it was deleted),
    // but never ahead of an earlier row of its key.
    let records = of_key(&s, "k").await;
    let mut first_seen = Vec::new();
    for record in &records {
        if !first_seen.contains(record) {
            first_seen.push(record.clone());
        }
    }
    let expected: Vec<String> = (0..sent).map(|n| format!("k={n:03}")).collect();
    assert_eq!(first_seen, expected, "per-key order across the takeovers ({} records)", records.len());
    shutdown.cancel();
    while let Some(ended) = relays.join_next().await {
        ended.expect("relay task").expect("a relay ends cleanly on shutdown");
    }
}
