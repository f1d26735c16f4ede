//! How far behind a reader is, from the broker's side: the watermarks of a
//! partition, the offsets a consumer group committed, and the time of the
//! oldest record a reader has not consumed yet. Readers that keep their
//! offsets elsewhere (projections, in their own tables) pass their
//! positions in; the arithmetic is the same.
//!
//! Blocking client calls: run them on a blocking thread
//! (`tokio::task::spawn_blocking`), as the operators' tools do.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
pub use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

/// How long one broker call may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// One partition as a reader stands on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// The next offset the reader will read (`None`: it never committed
    /// one: it would start at the log start).
    pub position: Option<i64>,
    /// The log start and end (the next offset to be written).
    pub low: i64,
    pub high: i64,
    /// Records not read yet: `high - max(position, low)`.
    pub messages: i64,
    /// When the oldest record not read yet was written (ms since the
    /// epoch); `None` when nothing is behind.
    pub oldest_unread_ms: Option<i64>,
}

impl PartitionLag {
    /// How long the oldest record not read yet has waited, at `now_ms`; 0
    /// when nothing is behind.
    pub fn seconds(&self, now_ms: i64) -> f64 {
        self.oldest_unread_ms.map_or(0.0, |at| (now_ms - at).max(0) as f64 / 1000.0)
    }
}

/// Reads watermarks, committed offsets and single records; holds one
/// client, plus one per consumer group asked about (a group's committed
/// offsets are read by a client with its `group.id`, which never joins it).
pub struct LagReader {
    settings: orderflow_config::KafkaSettings,
    reader: BaseConsumer,
    groups: HashMap<String, BaseConsumer>,
}

impl std::fmt::Debug for LagReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LagReader").field("brokers", &self.settings.brokers).finish_non_exhaustive()
    }
}

impl LagReader {
    pub fn new(settings: &orderflow_config::KafkaSettings) -> Result<Self, KafkaError> {
        // A group id only because assigning partitions needs one: this
        // client never joins the group, nor commits.
        let reader = crate::client_config(settings)
            .set("group.id", format!("{}orderflow-lag-reader", settings.topic_prefix))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .create()?;
        Ok(Self { settings: settings.clone(), reader, groups: HashMap::new() })
    }

    /// The partitions of `topic` (none if it does not exist).
    pub fn partitions(&self, topic: &str) -> Result<Vec<i32>, KafkaError> {
        let metadata = self.reader.fetch_metadata(Some(topic), TIMEOUT)?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect())
    }

    /// The log start and end of a partition.
    pub fn watermarks(&self, topic: &str, partition: i32) -> Result<(i64, i64), KafkaError> {
        self.reader.fetch_watermarks(topic, partition, TIMEOUT)
    }

    /// The records retained on `topic`, all partitions together.
    pub fn retained(&self, topic: &str) -> Result<i64, KafkaError> {
        let mut sum = 0;
        for partition in self.partitions(topic)? {
            let (low, high) = self.watermarks(topic, partition)?;
            sum += (high - low).max(0);
        }
        Ok(sum)
    }

    /// Where `group` stands on every partition of `topics`.
    pub fn group(&mut self, group: &str, topics: &[String]) -> Result<Vec<PartitionLag>, KafkaError> {
        let mut list = TopicPartitionList::new();
        for topic in topics {
            for partition in self.partitions(topic)? {
                list.add_partition(topic, partition);
            }
        }
        if list.count() == 0 {
            return Ok(Vec::new());
        }
        if !self.groups.contains_key(group) {
            let client: BaseConsumer = crate::client_config(&self.settings)
                .set("group.id", group)
                .set("enable.auto.commit", "false")
                .create()?;
            self.groups.insert(group.to_owned(), client);
        }
        let committed = self.groups[group].committed_offsets(list, TIMEOUT)?;
        let positions: Vec<(String, i32, Option<i64>)> = committed
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition(), e.offset().to_raw().filter(|o| *o >= 0)))
            .collect();
        positions.into_iter().map(|(topic, partition, position)| self.at(&topic, partition, position)).collect()
    }

    /// Where a reader at `position` (the next offset it will read) stands
    /// on a partition.
    pub fn at(&self, topic: &str, partition: i32, position: Option<i64>) -> Result<PartitionLag, KafkaError> {
        let (low, high) = self.watermarks(topic, partition)?;
        let next = position.unwrap_or(low).max(low);
        let messages = (high - next).max(0);
        let oldest_unread_ms = if messages > 0 { self.timestamp(topic, partition, next)? } else { None };
        Ok(PartitionLag { topic: topic.to_owned(), partition, position, low, high, messages, oldest_unread_ms })
    }

    /// The timestamp of the record at `offset` (or the first one after it).
    fn timestamp(&self, topic: &str, partition: i32, offset: i64) -> Result<Option<i64>, KafkaError> {
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, partition, Offset::Offset(offset))?;
        self.reader.assign(&list)?;
        let deadline = std::time::Instant::now() + TIMEOUT;
        let found = loop {
            match self.reader.poll(Duration::from_millis(200)) {
                Some(Ok(record)) if record.topic() == topic && record.partition() == partition => {
                    break record.timestamp().to_millis();
                }
                Some(Ok(_)) | None if std::time::Instant::now() < deadline => continue,
                Some(Ok(_)) | None => break None,
                Some(Err(error)) => {
                    self.reader.unassign()?;
                    return Err(error);
                }
            }
        };
        self.reader.unassign()?;
        Ok(found)
    }
}
