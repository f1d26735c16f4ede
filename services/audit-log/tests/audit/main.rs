//! The audit log on the real stack (registry, broker, Postgres, services):
//! every event exactly once — across a `kill -9` and a rebuild by replay —,
//! the causal story of a request, tamper evidence, no secrets, stable
//! pagination, retention that keeps the rest verifiable.

mod correlation;
mod crash;
mod pagination;
mod retention;
mod secrets;
mod tamper;
mod walkthrough;

use std::collections::BTreeSet;
use std::time::Duration;

use orderflow_bus::{Headers, Producer};
use orderflow_contracts::users::UserProfileUpdated;
use orderflow_contracts::{Codec, Contract};
use orderflow_harness::system::{ADMIN_EMAIL, System};
use reqwest::Method;
use serde_json::Value;
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery";

pub async fn audit_db(system: &System) -> sqlx::PgPool {
    sqlx::PgPool::connect(&system.audit_db).await.expect("audit db")
}

/// Registers the admin and logs in; the token.
pub async fn admin_token(system: &System) -> String {
    let (status, body) = system.register(ADMIN_EMAIL, PASSWORD).await;
    assert!(status == 201 || status == 409, "register the admin: {status} {body}");
    system.login(ADMIN_EMAIL, PASSWORD).await.expect("admin login")
}

pub async fn get(system: &System, path: &str, token: &str) -> (u16, Value) {
    system.call(Method::GET, path, Some(token), None).await
}

/// The message ids of every event: on the events topics as the broker has
/// them (a republished duplicate counted once), in the domain services'
/// outboxes (published; the broker's listing can lag behind an acknowledged
/// send), and those a test sent itself.
pub async fn event_ids(system: &System, sent: Option<&Events>) -> BTreeSet<Uuid> {
    let mut ids = BTreeSet::new();
    for topic in orderflow_contracts::event_topics() {
        for message in orderflow_testkit::topic::read_topic(&system.kafka.brokers, &system.topic(topic.name)).await {
            ids.insert(message.headers().expect("headers").message_id);
        }
    }
    for (database, topic) in [
        (&system.users_db, orderflow_contracts::users::EVENTS),
        (&system.orders_db, orderflow_contracts::orders::EVENTS),
        (&system.payments_db, orderflow_contracts::payments::EVENTS),
    ] {
        let pool = sqlx::PgPool::connect(database).await.expect("service db");
        let published: Vec<Uuid> = sqlx::query_scalar(
            "SELECT convert_from(header_values[array_position(header_names, 'message_id')], 'UTF8')::uuid
             FROM outbox WHERE topic = $1 AND published_at IS NOT NULL",
        )
        .bind(system.topic(topic.name))
        .fetch_all(&pool)
        .await
        .unwrap_or_default(); // that service is not in this test: no outbox
        pool.close().await;
        ids.extend(published);
    }
    if let Some(events) = sent {
        ids.extend(events.sent());
    }
    ids
}

pub async fn recorded_ids(pool: &sqlx::PgPool) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT message_id FROM audit.records ORDER BY message_id").fetch_all(pool).await.expect("ids")
}

/// Waits until the audit log holds exactly every event ([`event_ids`]).
pub async fn caught_up(system: &System, pool: &sqlx::PgPool, sent: Option<&Events>) -> BTreeSet<Uuid> {
    let expected = event_ids(system, sent).await;
    orderflow_testkit::eventually("the audit log holds every event", Duration::from_secs(120), || {
        let pool = pool.clone();
        let expected = expected.clone();
        async move {
            let recorded: BTreeSet<Uuid> = recorded_ids(&pool).await.into_iter().collect();
            recorded == expected
        }
    })
    .await;
    // Nothing arrived meanwhile (the callers stop producing first).
    assert_eq!(event_ids(system, sent).await, expected, "no event arrived while waiting");
    expected
}

/// Waits until the audit log holds `n` records.
pub async fn count_is(pool: &sqlx::PgPool, n: usize) {
    orderflow_testkit::eventually(&format!("the audit log holds {n} records"), Duration::from_secs(60), || {
        let pool = pool.clone();
        async move { recorded_ids(&pool).await.len() == n }
    })
    .await;
}

/// Every audit table in a canonical text form (what a rebuild must reproduce).
pub async fn dump(pool: &sqlx::PgPool) -> String {
    let tables = [
        ("records", "topic, partition, seq"),
        ("heads", "topic, partition"),
        ("checkpoints", "topic, partition, seq"),
        ("anchors", "topic, partition"),
    ];
    orderflow_harness::shop::dump(pool, "audit", &tables).await
}

/// Events straight onto users.events, as a service's relay would put them.
#[derive(Debug)]
pub struct Events {
    codec: Codec,
    producer: Producer,
    topic: String,
    /// The message ids sent so far.
    sent: std::sync::Mutex<Vec<Uuid>>,
}

impl Events {
    pub fn new(system: &System) -> Self {
        Self {
            codec: Codec::new(&system.registry.url),
            producer: Producer::new(&system.kafka).expect("producer"),
            topic: system.topic(orderflow_contracts::users::EVENTS.name),
            sent: Default::default(),
        }
    }

    pub fn sent(&self) -> Vec<Uuid> {
        self.sent.lock().expect("lock").clone()
    }

    pub async fn send<C: Contract>(&self, event: &C, headers: &Headers) {
        let payload = self.codec.encode(event).await.expect("encode");
        self.producer.send(&self.topic, &event.key(), &payload, &headers.to_pairs()).await.expect("send");
        self.sent.lock().expect("lock").push(headers.message_id);
    }

    /// A profile update of user `n` (one of `users` keys, so they spread
    /// over the partitions), caused by a fresh root command.
    pub async fn update(&self, n: usize, users: usize) -> Headers {
        let user_id = format!("0190a0a0-0000-7000-8000-{:012}", n % users);
        let event = UserProfileUpdated {
            user_id: user_id.clone(),
            first_name: "Secret-First".into(),
            last_name: format!("Secret-Last-{n}"),
            version: n as i64 + 2,
            updated_at: chrono::Utc::now().timestamp_millis(),
        };
        let headers = Headers::new_root("UpdateUserProfile", &user_id).caused("UserProfileUpdated");
        self.send(&event, &headers).await;
        headers
    }
}
