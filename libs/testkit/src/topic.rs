//! Reading a whole topic, for assertions about what is on the bus.

use std::time::Duration;

use orderflow_bus::InboundMessage;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Every message of `topic` up to its current end, partition by partition.
pub async fn read_topic(brokers: &str, topic: &str) -> Vec<InboundMessage> {
    let (brokers, topic) = (brokers.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", format!("reader-{}", crate::unique_id()))
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(5)).expect("metadata");
        let mut ends = Vec::new();
        let mut assignment = TopicPartitionList::new();
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let (_, high) =
                consumer.fetch_watermarks(&topic, partition.id(), Duration::from_secs(5)).expect("watermarks");
            if high > 0 {
                assignment.add_partition_offset(&topic, partition.id(), Offset::Beginning).expect("assign");
                ends.push((partition.id(), high));
            }
        }
        let mut out = Vec::new();
        if ends.is_empty() {
            return out;
        }
        consumer.assign(&assignment).expect("assign");
        let total: i64 = ends.iter().map(|(_, h)| h).sum();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while (out.len() as i64) < total && std::time::Instant::now() < deadline {
            if let Some(message) = consumer.poll(Duration::from_millis(200)) {
                out.push(InboundMessage::from(&message.expect("message")));
            }
        }
        out
    })
    .await
    .expect("reader task")
}
