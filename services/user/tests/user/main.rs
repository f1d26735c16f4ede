//! The user service's guarantees against the real broker, registry and
//! Postgres: exactly-once effects under redelivery and crashes, dead
//! letters, per-user order with two replicas.

mod crash;
mod delivery;
mod failed;
mod load;
mod order;

use std::time::Duration;

use orderflow_bus::{Headers, InboundMessage, Producer};
use orderflow_contracts::{Codec, Contract};
use orderflow_harness::system::System;

/// Sends a command straight to users.commands, as the ingress would.
pub async fn send<C: Contract>(system: &System, command: &C, headers: &Headers) {
    Commands::new(system).send(command, headers).await;
}

/// A producer of commands for many sends (a new idempotent producer per
/// send costs the broker a producer id and the test most of a second).
#[derive(Debug)]
pub struct Commands {
    codec: Codec,
    producer: Producer,
    topic: String,
}

impl Commands {
    pub fn new(system: &System) -> Self {
        Self {
            codec: Codec::new(&system.registry.url),
            producer: Producer::new(&system.kafka).expect("producer"),
            topic: system.topic(orderflow_contracts::users::COMMANDS.name),
        }
    }

    pub async fn send<C: Contract>(&self, command: &C, headers: &Headers) {
        let payload = self.codec.encode(command).await.expect("encode");
        self.producer.send(&self.topic, &command.key(), &payload, &headers.to_pairs()).await.expect("send");
    }
}

pub async fn users_db(system: &System) -> sqlx::PgPool {
    sqlx::PgPool::connect(&system.users_db).await.expect("users db")
}

/// Waits until `sql` (a scalar query on the users database) returns `want`.
pub async fn until_users_db(system: &System, what: &str, sql: &'static str, want: i64) {
    let pool = users_db(system).await;
    orderflow_testkit::eventually(what, Duration::from_secs(60), || {
        let pool = pool.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await.is_ok_and(|n| n == want) }
    })
    .await;
}

/// The events on users.events, with their type header.
pub async fn events(system: &System) -> Vec<(String, InboundMessage)> {
    orderflow_testkit::topic::read_topic(&system.kafka.brokers, &system.topic(orderflow_contracts::users::EVENTS.name))
        .await
        .into_iter()
        .map(|m| (m.headers().expect("contract headers").message_type, m))
        .collect()
}
