//! Rejoining a consumer group that looks wedged.
//!
//! A broker's group coordinator should never leave a partition without a
//! consumer. tansu 0.6.0's can (docs/tansu.md: a dead member's partitions
//! orphaned, a group waiting for a leader that is gone, a member left with
//! an empty assignment). The watchdog notices the symptoms and makes this
//! member leave and rejoin the group, which forms it anew:
//!
//! - **stuck**: partitions were revoked and no assignment followed;
//! - **empty**: this member owns nothing although the topics have at least
//!   as many partitions as the group has members;
//! - **orphaned**: a partition this member does not own has messages past
//!   the group's committed offset, and that offset has not moved;
//!
//! each for longer than `kafka.rejoin_after_ms`. It fires at most once per
//! cooldown (with jitter, so members do not rejoin in lockstep). On a
//! healthy group none of this holds, so on real Kafka it never fires.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::consumer::GroupContext;

pub(crate) type Partition = (String, i32);

/// What this member knows of its assignment (kept by the rebalance callbacks).
#[derive(Debug, Default)]
pub(crate) struct Membership {
    pub assigned: HashSet<Partition>,
    /// Since when partitions were revoked without a new assignment.
    pub awaiting_since: Option<Instant>,
    /// Since when the assignment has been empty.
    pub empty_since: Option<Instant>,
}

impl Membership {
    pub fn revoked(&mut self) {
        self.assigned.clear();
        self.awaiting_since.get_or_insert_with(Instant::now);
    }

    pub fn assigned(&mut self, partitions: HashSet<Partition>) {
        self.awaiting_since = None;
        self.empty_since =
            if partitions.is_empty() { Some(self.empty_since.unwrap_or_else(Instant::now)) } else { None };
        self.assigned = partitions;
    }
}

/// What the broker says about the group's topics.
struct Observation {
    partitions: usize,
    members: usize,
    /// Partitions not assigned here: (partition, committed or low watermark, high watermark).
    others: Vec<(Partition, i64, i64)>,
}

#[derive(Debug)]
pub(crate) struct Watchdog {
    after: Duration,
    cooldown: Duration,
    last_fired: Option<Instant>,
    /// Unowned partitions with a backlog: their committed offset and since when it stands.
    standing: HashMap<Partition, (i64, Instant)>,
}

impl Watchdog {
    /// `None` when `after_ms` is 0 (never rejoin on our own).
    pub fn new(after_ms: u32) -> Option<Self> {
        (after_ms > 0).then(|| {
            let after = Duration::from_millis(u64::from(after_ms));
            Self {
                after,
                cooldown: (after * 3).max(Duration::from_secs(30)),
                last_fired: None,
                standing: HashMap::new(),
            }
        })
    }

    /// Why the group looks wedged, if it does and the cooldown has passed.
    pub async fn check(
        &mut self,
        consumer: &Arc<StreamConsumer<GroupContext>>,
        group: &str,
        topics: &[String],
    ) -> Option<String> {
        if self.last_fired.is_some_and(|at| at.elapsed() < self.cooldown) {
            return None;
        }
        let (assigned, awaiting_since, empty_since) = {
            let m = consumer.context().membership.lock().unwrap_or_else(|p| p.into_inner());
            (m.assigned.clone(), m.awaiting_since, m.empty_since)
        };
        if let Some(since) = awaiting_since.filter(|s| s.elapsed() >= self.after) {
            return self.fire(format!("no assignment {} s after a revoke", since.elapsed().as_secs()));
        }
        let observed = {
            let (consumer, group, topics, assigned) =
                (Arc::clone(consumer), group.to_owned(), topics.to_vec(), assigned.clone());
            tokio::task::spawn_blocking(move || observe(&consumer, &group, &topics, &assigned)).await
        };
        let observed = match observed {
            Ok(Ok(observed)) => observed,
            Ok(Err(error)) => {
                tracing::debug!(%error, group, "group watchdog could not observe the group");
                return None;
            }
            Err(_) => return None,
        };
        if let Some(since) = empty_since.filter(|s| s.elapsed() >= self.after)
            && awaiting_since.is_none()
            && observed.partitions >= observed.members
        {
            return self.fire(format!(
                "no partitions for {} s although {} partitions are shared by {} members",
                since.elapsed().as_secs(),
                observed.partitions,
                observed.members
            ));
        }
        let now = Instant::now();
        let mut backlogged = HashSet::new();
        for (partition, committed, high) in observed.others {
            if high <= committed {
                continue;
            }
            backlogged.insert(partition.clone());
            let entry = self.standing.entry(partition).or_insert((committed, now));
            if entry.0 != committed {
                *entry = (committed, now);
            }
        }
        self.standing.retain(|p, _| backlogged.contains(p));
        let orphan = self.standing.iter().find(|(_, (_, since))| since.elapsed() >= self.after);
        if let Some(((topic, partition), (committed, since))) = orphan {
            let reason = format!(
                "{topic}[{partition}] has messages past offset {committed} and nobody has consumed them for {} s",
                since.elapsed().as_secs()
            );
            return self.fire(reason);
        }
        None
    }

    fn fire(&mut self, reason: String) -> Option<String> {
        let jitter = Duration::from_millis(rand::thread_rng().gen_range(0..5_000));
        self.last_fired = Some(Instant::now() + jitter);
        self.standing.clear();
        Some(reason)
    }
}

fn observe(
    consumer: &StreamConsumer<GroupContext>,
    group: &str,
    topics: &[String],
    assigned: &HashSet<Partition>,
) -> Result<Observation, rdkafka::error::KafkaError> {
    let timeout = Duration::from_secs(5);
    let members = consumer
        .fetch_group_list(Some(group), timeout)?
        .groups()
        .iter()
        .find(|g| g.name() == group)
        .map_or(0, |g| g.members().len());
    let mut partitions = 0;
    let mut others = TopicPartitionList::new();
    let mut low = HashMap::new();
    let mut high = HashMap::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
            partitions += 1;
            let key = (topic.clone(), p.id());
            if assigned.contains(&key) {
                continue;
            }
            let (lo, hi) = consumer.fetch_watermarks(topic, p.id(), timeout)?;
            others.add_partition(topic, p.id());
            low.insert(key.clone(), lo);
            high.insert(key, hi);
        }
    }
    let committed = if others.count() > 0 { consumer.committed_offsets(others, timeout)? } else { others };
    let others = committed
        .elements()
        .iter()
        .map(|e| {
            let key = (e.topic().to_owned(), e.partition());
            let committed = match e.offset() {
                Offset::Offset(o) => o,
                _ => low.get(&key).copied().unwrap_or(0),
            };
            let high = high.get(&key).copied().unwrap_or(0);
            (key, committed, high)
        })
        .collect();
    Ok(Observation { partitions, members, others })
}
