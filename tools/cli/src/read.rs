//! Reading topics: the records of a topic as they are, owned.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use orderflow_contracts::Codec;
use orderflow_contracts::json::{Marks, plain_json, redacted_json};
use serde_json::{Value, json};

use orderflow_config::KafkaSettings;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::Failure;

/// How long one metadata or watermark call may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A client that reads without joining a group or committing anything.
pub fn consumer(kafka: &KafkaSettings) -> Result<BaseConsumer, Failure> {
    orderflow_bus::client_config(kafka)
        .set("group.id", format!("{}orderflow-cli", kafka.topic_prefix))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .map_err(|e| Failure::Connect(format!("the Kafka client for {}: {e}", kafka.brokers)))
}

/// A record, owned (the consumer's borrowed message does not outlive a
/// poll, and decoding awaits the registry).
#[derive(Debug)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<String>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub payload: Option<Vec<u8>>,
}

/// The next record, waiting up to half a second (off the async threads).
pub async fn poll(consumer: &BaseConsumer) -> Option<Result<Record, rdkafka::error::KafkaError>> {
    tokio::task::block_in_place(|| {
        consumer.poll(Duration::from_millis(500)).map(|polled| {
            polled.map(|m| Record {
                topic: m.topic().to_owned(),
                partition: m.partition(),
                offset: m.offset(),
                timestamp: m.timestamp().to_millis().unwrap_or_default(),
                key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter().map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec).unwrap_or_default())).collect()
                    })
                    .unwrap_or_default(),
                payload: m.payload().map(<[u8]>::to_vec),
            })
        })
    })
}

/// The partitions of `topic`; an unknown topic is a usage error naming the
/// topics there are.
pub fn partitions(consumer: &BaseConsumer, kafka: &KafkaSettings, topic: &str) -> Result<Vec<i32>, Failure> {
    let metadata = consumer
        .fetch_metadata(None, TIMEOUT)
        .map_err(|e| Failure::Connect(format!("cannot reach the brokers at {}: {e}", kafka.brokers)))?;
    if let Some(found) = metadata.topics().iter().find(|t| t.name() == topic && t.error().is_none()) {
        let mut partitions: Vec<i32> = found.partitions().iter().map(|p| p.id()).collect();
        partitions.sort_unstable();
        return Ok(partitions);
    }
    let mut known: Vec<&str> = metadata
        .topics()
        .iter()
        .map(|t| t.name())
        .filter_map(|name| name.strip_prefix(kafka.topic_prefix.as_str()))
        .filter(|name| !name.starts_with("__"))
        .collect();
    known.sort_unstable();
    Err(Failure::Usage(format!("no topic `{topic}` on {}; there are: {}", kafka.brokers, known.join(", "))))
}

pub fn single(topic: &str, partition: i32) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, partition);
    list
}

/// Every record of `topic` (the full name) from its log start to its end
/// when called, partition by partition in offset order.
pub async fn read_all(consumer: &BaseConsumer, kafka: &KafkaSettings, topic: &str) -> Result<Vec<Record>, Failure> {
    let mut start = TopicPartitionList::new();
    let mut ends = std::collections::HashMap::new();
    for partition in partitions(consumer, kafka, topic)? {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, TIMEOUT)
            .map_err(|e| Failure::Connect(format!("the end offsets of {topic} from {}: {e}", kafka.brokers)))?;
        if high > low {
            start
                .add_partition_offset(topic, partition, Offset::Offset(low))
                .map_err(|e| Failure::Other(format!("{topic}/{partition}: {e}")))?;
            ends.insert(partition, high);
        }
    }
    let mut records = Vec::new();
    if ends.is_empty() {
        return Ok(records);
    }
    consumer.assign(&start).map_err(|e| Failure::Connect(format!("reading {topic}: {e}")))?;
    let mut quiet = 0;
    while !ends.is_empty() {
        match poll(consumer).await {
            None => {
                quiet += 1;
                if quiet > 60 {
                    return Err(Failure::Connect(format!("reading {topic}: nothing came for 30 s")));
                }
            }
            Some(Err(error)) => return Err(Failure::Connect(format!("reading {topic}: {error}"))),
            Some(Ok(record)) => {
                quiet = 0;
                let Some(&end) = ends.get(&record.partition) else { continue };
                if record.offset + 1 >= end {
                    ends.remove(&record.partition);
                }
                if record.offset < end {
                    records.push(record);
                }
            }
        }
    }
    consumer.unassign().ok();
    records.sort_by_key(|r| (r.partition, r.offset));
    Ok(records)
}

/// One record as a JSON line: where it is, its key, its headers (when
/// asked), the writer schema's id and name, and the decoded value (or
/// why it could not be decoded: a poison message is shown, not fatal).
pub async fn render(codec: &Codec, marks: &Marks, message: &Record, headers: bool, sensitive: bool) -> Value {
    let mut line = json!({
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "timestamp": DateTime::<Utc>::from_timestamp_millis(message.timestamp)
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)),
        "key": message.key,
    });
    if headers {
        let headers: BTreeMap<&str, String> =
            message.headers.iter().map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v).into_owned())).collect();
        line["headers"] = json!(headers);
    }
    let Some(payload) = &message.payload else {
        line["value"] = Value::Null; // a tombstone
        return line;
    };
    if payload.len() >= 5 && payload[0] == 0 {
        line["schema_id"] = json!(u32::from_be_bytes([payload[1], payload[2], payload[3], payload[4]]));
    }
    match codec.decode_with_writer(Some(payload)).await {
        Ok(decoded) => {
            line["type"] = json!(decoded.full_name);
            let value = if sensitive {
                plain_json(&decoded.schema, &decoded.value)
            } else {
                redacted_json(&decoded.schema, &decoded.value, marks)
            };
            match value {
                Ok(value) => line["value"] = value,
                Err(error) => line["error"] = json!(error.to_string()),
            }
        }
        Err(error) => line["error"] = json!(format!("cannot decode: {error}")),
    }
    line
}

/// Every dead-letter topic of the system (full names), sorted.
pub fn dlq_topics(consumer: &BaseConsumer, kafka: &KafkaSettings) -> Result<Vec<String>, Failure> {
    let metadata = consumer
        .fetch_metadata(None, TIMEOUT)
        .map_err(|e| Failure::Connect(format!("cannot reach the brokers at {}: {e}", kafka.brokers)))?;
    let mut topics: Vec<String> = metadata
        .topics()
        .iter()
        .map(|t| t.name().to_owned())
        .filter(|name| name.starts_with(kafka.topic_prefix.as_str()) && name.ends_with(".dlq"))
        .collect();
    topics.sort();
    Ok(topics)
}
