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

/// The log start and end of partitions, by topic and partition.
pub type Marks = HashMap<(String, i32), (i64, i64)>;

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

    /// The log start and end of every partition named, in two requests
    /// (one `ListOffsets` for the starts, one for the ends), not two per
    /// partition: a look at the whole bus names a few hundred, and was a
    /// third of the broker's requests under load when each asked alone.
    pub fn marks(&self, partitions: &[(&str, i32)]) -> Result<Marks, KafkaError> {
        let mut marks = HashMap::with_capacity(partitions.len());
        if partitions.is_empty() {
            return Ok(marks);
        }
        let ask = |at: Offset| -> Result<TopicPartitionList, KafkaError> {
            let mut list = TopicPartitionList::new();
            for (topic, partition) in partitions {
                // ListOffsets by "timestamp": -2 is the log start, -1 its end.
                list.add_partition_offset(topic, *partition, at)?;
            }
            self.reader.offsets_for_times(list, TIMEOUT)
        };
        for (at, end) in [(Offset::Beginning, false), (Offset::End, true)] {
            for element in ask(at)?.elements() {
                element.error()?;
                let offset = element.offset().to_raw().unwrap_or(0).max(0);
                let mark = marks.entry((element.topic().to_owned(), element.partition())).or_insert((0, 0));
                if end { mark.1 = offset } else { mark.0 = offset }
            }
        }
        Ok(marks)
    }

    /// The records retained on `topic`, all partitions together.
    pub fn retained(&self, topic: &str) -> Result<i64, KafkaError> {
        let partitions: Vec<(&str, i32)> = self.partitions(topic)?.into_iter().map(|p| (topic, p)).collect();
        Ok(self.marks(&partitions)?.values().map(|(low, high)| (high - low).max(0)).sum())
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
        self.lags(&positions)
    }

    /// Where readers stand, each at its position (the next offset it will
    /// read) on its partition: the watermarks of all in two requests, and
    /// the oldest unread record of those behind in one fetch.
    pub fn lags(&self, readers: &[(String, i32, Option<i64>)]) -> Result<Vec<PartitionLag>, KafkaError> {
        let named: Vec<(&str, i32)> =
            readers.iter().map(|(topic, partition, _)| (topic.as_str(), *partition)).collect();
        let marks = self.marks(&named)?;
        let mut lags = Vec::with_capacity(readers.len());
        for (topic, partition, position) in readers {
            let (low, high) = marks.get(&(topic.clone(), *partition)).copied().unwrap_or((0, 0));
            let next = position.unwrap_or(low).max(low);
            let messages = (high - next).max(0);
            lags.push(PartitionLag {
                topic: topic.clone(),
                partition: *partition,
                position: *position,
                low,
                high,
                messages,
                oldest_unread_ms: None,
            });
        }
        let behind: Vec<(&str, i32, i64)> = lags
            .iter()
            .filter(|lag| lag.messages > 0)
            .map(|lag| (lag.topic.as_str(), lag.partition, lag.position.unwrap_or(lag.low).max(lag.low)))
            .collect();
        let found = self.timestamps(&behind)?;
        for lag in &mut lags {
            lag.oldest_unread_ms = found.get(&(lag.topic.clone(), lag.partition)).copied();
        }
        Ok(lags)
    }

    /// The timestamp of the record at each `(topic, partition, offset)` (or
    /// the first one after it), read together: every partition assigned
    /// at its offset at once, and each paused once its record arrived.
    /// One that yields nothing within the time allowed is left out.
    fn timestamps(&self, at: &[(&str, i32, i64)]) -> Result<HashMap<(String, i32), i64>, KafkaError> {
        let mut found = HashMap::with_capacity(at.len());
        if at.is_empty() {
            return Ok(found);
        }
        let mut list = TopicPartitionList::new();
        for (topic, partition, offset) in at {
            list.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
        }
        self.reader.assign(&list)?;
        let deadline = std::time::Instant::now() + TIMEOUT;
        let mut answered = std::collections::HashSet::with_capacity(at.len());
        let mut failed = None;
        while answered.len() < at.len() && std::time::Instant::now() < deadline {
            match self.reader.poll(Duration::from_millis(200)) {
                Some(Ok(record)) => {
                    let key = (record.topic().to_owned(), record.partition());
                    if answered.contains(&key) || !at.iter().any(|(t, p, _)| *t == key.0 && *p == key.1) {
                        continue;
                    }
                    // Its one record is in: fetch no more of it.
                    let mut done = TopicPartitionList::new();
                    done.add_partition(&key.0, key.1);
                    self.reader.pause(&done)?;
                    if let Some(ms) = record.timestamp().to_millis() {
                        found.insert(key.clone(), ms);
                    }
                    answered.insert(key);
                }
                Some(Err(error)) => {
                    failed = Some(error);
                    break;
                }
                None => {}
            }
        }
        // Paused stays paused across assignments: the next read starts clean.
        self.reader.resume(&list)?;
        self.reader.unassign()?;
        failed.map_or(Ok(found), Err)
    }
}
