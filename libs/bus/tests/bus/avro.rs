//! An Avro message through the broker and the registry, the way the
//! services send them.

use std::time::Duration;

use orderflow_bus::admin::ensure_topics;
use orderflow_bus::{Headers, Producer};
use orderflow_contracts::Codec;
use orderflow_contracts::Retention;
use orderflow_contracts::users::{UserEvent, UserRegistered};
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;

use crate::settings;

#[tokio::test]
async fn avro_round_trip_through_broker_and_registry() {
    let s = settings();
    let registry = orderflow_testkit::registry::spawn_registry().await;
    ensure_topics(&s, &[("events".into(), Retention::Forever)]).await.expect("topics");
    let topic = s.topic("events");
    let codec = Codec::new(&registry.url);
    let event = UserRegistered {
        user_id: "0190a0a0-0000-7000-8000-000000000001".into(),
        email: "ada@example.com".into(),
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        roles: vec!["user".into()],
        version: 1,
        registered_at: 1_700_000_000_000,
    };
    let headers = Headers::new_root("UserRegistered", "system");
    let producer = Producer::new(&s).expect("producer");
    producer
        .send(&topic, &event.user_id, &codec.encode(&event).await.expect("encode"), &headers.to_pairs())
        .await
        .expect("send");

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &s.brokers)
        .set("group.id", format!("{}avro", s.topic_prefix))
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("max.poll.interval.ms", "10000")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let message =
        tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await.expect("in time").expect("message");
    assert_eq!(message.key(), Some(event.user_id.as_bytes()));
    let decoded: UserEvent = Codec::new(&registry.url).decode(message.payload()).await.expect("decode");
    assert_eq!(decoded, UserEvent::Registered(event));
    let back = orderflow_bus::Headers::from_pairs(&orderflow_bus_pairs(&message)).expect("headers");
    assert_eq!(back, headers.clone().with_millis());
}

fn orderflow_bus_pairs(m: &rdkafka::message::BorrowedMessage<'_>) -> Vec<(String, Vec<u8>)> {
    use rdkafka::message::Headers as _;
    m.headers()
        .map(|h| h.iter().map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec())).collect())
        .unwrap_or_default()
}

trait Millis {
    fn with_millis(self) -> Self;
}

impl Millis for Headers {
    /// Headers carry `occurred_at` to the millisecond.
    fn with_millis(mut self) -> Self {
        use chrono::{DurationRound, TimeDelta};
        self.occurred_at = self.occurred_at.duration_trunc(TimeDelta::milliseconds(1)).expect("truncate");
        self
    }
}
