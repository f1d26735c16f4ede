//! `orderflow dlq`: what failed, why and how often; and putting it right
//! by replaying entries to their source topic, in their original per-key
//! order, or discarding them.
//!
//! A dead letter is the original record (key, value, headers) plus
//! `dlq_*` headers: its source topic, partition and offset, the consumer
//! group that gave up, the error and whose fault it was. A replay sends the
//! original record back to its source topic unchanged (its `message_id`
//! too), so a consumer's inbox recognises a message it already applied: a
//! second replay changes nothing. What was replayed or discarded is kept
//! on the compacted topic `dlq.settled` (one JSON record per entry), so
//! `list` shows what is still waiting and a replay is not repeated by
//! accident.
//!
//! A replay refuses (exit 1, naming `--force`):
//! - an entry settled already;
//! - an entry whose key has an earlier entry still waiting that is not
//!   part of the replay (it would overtake it);
//! - an entry whose key has later records on the source topic (they were
//!   handled before it; replaying it applies an older change after newer
//!   ones).

use std::collections::{BTreeMap, HashMap};

use chrono::{SecondsFormat, Utc};
use clap::{Args, Subcommand};
use orderflow_bus::{Producer, dlq as header, header_value};
use orderflow_config::{KafkaSettings, RegistrySettings};
use orderflow_contracts::Codec;
use orderflow_contracts::json::Marks;
use orderflow_contracts::topics::Retention;
use rdkafka::consumer::BaseConsumer;
use serde_json::{Value, json};

use crate::Failure;
use crate::read::{Record, read_all, render};

/// Where replays and discards are recorded (compacted, key
/// `<dead-letter topic>@<offset>`).
const SETTLED: &str = "dlq.settled";

#[derive(Debug, Args)]
pub struct Dlq {
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// The entries of every dead-letter topic (or of one) that wait: where
    /// they came from, which consumer gave up, why.
    List {
        /// A dead-letter topic (`users.commands.dlq`) or its source
        /// (`users.commands`); every one when left out.
        topic: Option<String>,
        /// Also the entries replayed or discarded already.
        #[arg(long)]
        all: bool,
        /// `table` for people, `json` (one line per entry) for scripts.
        #[arg(long, default_value = "table")]
        output: crate::Output,
    },
    /// One entry: its headers and its value, decoded through the registry.
    Show {
        topic: String,
        offset: i64,
        /// Print the fields the schemas mark sensitive.
        #[arg(long)]
        sensitive: bool,
    },
    /// Sends entries back to their source topic, in their original order
    /// per key: the offsets named, or every waiting entry (of `--key`).
    Replay {
        topic: String,
        /// Entries by offset on the dead-letter topic.
        offsets: Vec<i64>,
        /// Only the entries of this key.
        #[arg(long)]
        key: Option<String>,
        /// Say what would be sent, send nothing.
        #[arg(long)]
        dry_run: bool,
        /// Replay what would be refused (settled already, out of order).
        #[arg(long)]
        force: bool,
    },
    /// Marks entries as dealt with, sending nothing.
    Discard {
        topic: String,
        #[arg(required = true)]
        offsets: Vec<i64>,
    },
}

/// One dead letter, as its headers describe it.
#[derive(Debug)]
struct Entry {
    record: Record,
    source: String,
    partition: i32,
    offset: i64,
    group: String,
    error: String,
    cause: String,
    failed_at: String,
    message_type: String,
    /// `replayed` or `discarded`, with when; None: waiting.
    settled: Option<Value>,
}

impl Entry {
    fn of(record: Record, settled: &HashMap<String, Value>, dlq: &str) -> Self {
        let h = |name| header_value(&record.headers, name).unwrap_or_default().to_owned();
        let settled = settled.get(&settled_key(dlq, record.offset)).cloned();
        Self {
            source: h(header::ORIGINAL_TOPIC),
            partition: h(header::ORIGINAL_PARTITION).parse().unwrap_or(-1),
            offset: h(header::ORIGINAL_OFFSET).parse().unwrap_or(-1),
            group: h(header::CONSUMER_GROUP),
            error: h(header::ERROR),
            cause: h(header::CAUSE),
            failed_at: h(header::FAILED_AT),
            message_type: h("message_type"),
            settled,
            record,
        }
    }

    fn key(&self) -> &str {
        self.record.key.as_deref().unwrap_or_default()
    }

    fn summary(&self, prefix: &str) -> Value {
        json!({
            "dlq": unprefixed(&self.record.topic, prefix),
            "offset": self.record.offset,
            "key": self.key(),
            "type": self.message_type,
            "source": {"topic": unprefixed(&self.source, prefix), "partition": self.partition, "offset": self.offset},
            "group": unprefixed(&self.group, prefix),
            "cause": self.cause,
            "error": self.error,
            "failed_at": self.failed_at,
            "settled": self.settled,
        })
    }

    /// The original headers, without the dead letter's.
    fn original_headers(&self) -> Vec<(String, Vec<u8>)> {
        self.record.headers.iter().filter(|(name, _)| !name.starts_with("dlq_")).cloned().collect()
    }
}

fn settled_key(dlq: &str, offset: i64) -> String {
    format!("{dlq}@{offset}")
}

fn unprefixed<'a>(name: &'a str, prefix: &str) -> &'a str {
    name.strip_prefix(prefix).unwrap_or(name)
}

/// The dead-letter topic a user named (`x.dlq`, or its source `x`).
fn dlq_name(topic: &str) -> String {
    if topic.ends_with(".dlq") { topic.to_owned() } else { orderflow_contracts::topics::dlq(topic) }
}

struct Context<'a> {
    kafka: &'a KafkaSettings,
    consumer: BaseConsumer,
}

impl Context<'_> {
    /// What was replayed or discarded, by entry.
    async fn settled(&self) -> Result<HashMap<String, Value>, Failure> {
        let records = match read_all(&self.consumer, self.kafka, &self.kafka.topic(SETTLED)).await {
            // No replay or discard yet: the topic does not exist.
            Err(Failure::Usage(_)) => Vec::new(),
            read => read?,
        };
        let mut settled = HashMap::new();
        for record in records {
            let (Some(key), Some(payload)) = (record.key, record.payload) else { continue };
            if let Ok(value) = serde_json::from_slice(&payload) {
                settled.insert(key, value);
            }
        }
        Ok(settled)
    }

    /// The entries of the dead-letter topic `dlq` (full name).
    async fn entries(&self, dlq: &str, settled: &HashMap<String, Value>) -> Result<Vec<Entry>, Failure> {
        let records = read_all(&self.consumer, self.kafka, dlq).await?;
        Ok(records.into_iter().map(|r| Entry::of(r, settled, dlq)).collect())
    }
}

impl Dlq {
    pub async fn run(self, kafka: &KafkaSettings, registry: &RegistrySettings) -> Result<(), Failure> {
        let context = Context { kafka, consumer: crate::read::consumer(kafka)? };
        let prefix = kafka.topic_prefix.as_str();
        match self.command {
            DlqCommand::List { topic, all, output } => {
                let topics = match topic {
                    Some(topic) => vec![kafka.topic(&dlq_name(&topic))],
                    None => crate::read::dlq_topics(&context.consumer, kafka)?,
                };
                let settled = context.settled().await?;
                let mut shown = Vec::new();
                for topic in &topics {
                    let entries = context.entries(topic, &settled).await?;
                    shown.extend(entries.into_iter().filter(|e| all || e.settled.is_none()));
                }
                print_list(&shown, prefix, output);
                Ok(())
            }
            DlqCommand::Show { topic, offset, sensitive } => {
                let dlq = kafka.topic(&dlq_name(&topic));
                let settled = context.settled().await?;
                let entry = context
                    .entries(&dlq, &settled)
                    .await?
                    .into_iter()
                    .find(|e| e.record.offset == offset)
                    .ok_or_else(|| Failure::Usage(format!("no entry at offset {offset} of {topic}")))?;
                let codec = Codec::new(&registry.url);
                let mut shown = entry.summary(prefix);
                shown["record"] = render(&codec, &Marks::default(), &entry.record, true, sensitive).await;
                println!("{}", serde_json::to_string_pretty(&shown).unwrap_or_default());
                Ok(())
            }
            DlqCommand::Replay { topic, offsets, key, dry_run, force } => {
                let plan = Replay { topic: dlq_name(&topic), offsets, key, dry_run, force };
                plan.run(&context).await
            }
            DlqCommand::Discard { topic, offsets } => {
                let dlq = kafka.topic(&dlq_name(&topic));
                let settled = context.settled().await?;
                let entries = context.entries(&dlq, &settled).await?;
                let producer = settle_producer(kafka).await?;
                for offset in offsets {
                    if !entries.iter().any(|e| e.record.offset == offset) {
                        return Err(Failure::Usage(format!("no entry at offset {offset} of {topic}")));
                    }
                    record_settled(&producer, kafka, &dlq, offset, "discarded").await?;
                    println!("discarded {topic}@{offset}");
                }
                Ok(())
            }
        }
    }
}

fn print_list(entries: &[Entry], prefix: &str, output: crate::Output) {
    match output {
        crate::Output::Json => {
            for entry in entries {
                println!("{}", entry.summary(prefix));
            }
        }
        crate::Output::Table => {
            if entries.is_empty() {
                println!("no dead letters wait");
                return;
            }
            println!("{:<28} {:>6}  {:<38} {:<22} {:<10} ERROR", "DEAD-LETTER TOPIC", "OFFSET", "KEY", "TYPE", "STATE");
            for e in entries {
                let state = e.settled.as_ref().and_then(|s| s["action"].as_str()).unwrap_or("waiting");
                let error: String = e.error.chars().take(80).collect();
                println!(
                    "{:<28} {:>6}  {:<38} {:<22} {:<10} {error}",
                    unprefixed(&e.record.topic, prefix),
                    e.record.offset,
                    e.key(),
                    e.message_type,
                    state
                );
            }
            let mut by_error: BTreeMap<(&str, &str), usize> = BTreeMap::new();
            for e in entries {
                *by_error.entry((unprefixed(&e.record.topic, prefix), e.error.as_str())).or_default() += 1;
            }
            println!();
            for ((topic, error), count) in by_error {
                println!("{count:>5} × {topic}: {error}");
            }
        }
    }
}

async fn settle_producer(kafka: &KafkaSettings) -> Result<Producer, Failure> {
    orderflow_bus::admin::ensure_topics(kafka, &[(SETTLED.to_owned(), Retention::Compacted)])
        .await
        .map_err(|e| Failure::Connect(format!("creating {SETTLED}: {e}")))?;
    Producer::new(kafka).map_err(|e| Failure::Connect(format!("the Kafka producer for {}: {e}", kafka.brokers)))
}

async fn record_settled(
    producer: &Producer,
    kafka: &KafkaSettings,
    dlq: &str,
    offset: i64,
    action: &str,
) -> Result<(), Failure> {
    let at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let by = std::env::var("USER").unwrap_or_else(|_| "orderflow-cli".into());
    let value = json!({"action": action, "at": at, "by": by}).to_string();
    producer
        .send(&kafka.topic(SETTLED), &settled_key(dlq, offset), value.as_bytes(), &[])
        .await
        .map(|_| ())
        .map_err(|e| Failure::Connect(format!("recording {action} on {SETTLED}: {e}")))
}

/// What `dlq replay` was asked to do.
struct Replay {
    topic: String,
    offsets: Vec<i64>,
    key: Option<String>,
    dry_run: bool,
    force: bool,
}

impl Replay {
    async fn run(self, context: &Context<'_>) -> Result<(), Failure> {
        let kafka = context.kafka;
        let prefix = kafka.topic_prefix.as_str();
        let dlq = kafka.topic(&self.topic);
        let settled = context.settled().await?;
        let entries = context.entries(&dlq, &settled).await?;
        for offset in &self.offsets {
            if !entries.iter().any(|e| e.record.offset == *offset) {
                return Err(Failure::Usage(format!("no entry at offset {offset} of {}", self.topic)));
            }
        }
        let chosen: Vec<&Entry> = entries
            .iter()
            .filter(|e| self.offsets.is_empty() || self.offsets.contains(&e.record.offset))
            .filter(|e| self.key.as_deref().is_none_or(|k| e.key() == k))
            .filter(|e| !self.offsets.is_empty() || e.settled.is_none())
            .collect();
        if chosen.is_empty() {
            println!("nothing to replay on {}", self.topic);
            return Ok(());
        }
        // Original order per key: by source partition and offset.
        let mut chosen = chosen;
        chosen.sort_by_key(|e| (e.partition, e.offset));

        let mut refusals = Vec::new();
        for entry in &chosen {
            let at = format!("{}@{} (key {})", self.topic, entry.record.offset, entry.key());
            if let Some(settled) = &entry.settled {
                refusals.push(format!("{at} was {} already", settled["action"].as_str().unwrap_or("settled")));
            }
            let overtaken = entries.iter().find(|other| {
                other.key() == entry.key()
                    && other.settled.is_none()
                    && (other.partition, other.offset) < (entry.partition, entry.offset)
                    && !chosen.iter().any(|c| c.record.offset == other.record.offset)
            });
            if let Some(earlier) = overtaken {
                refusals.push(format!(
                    "{at} would overtake the earlier entry {}@{} of its key, which waits",
                    self.topic, earlier.record.offset
                ));
            }
        }
        // Later records of the same keys on the source topics.
        let mut sources: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
        for entry in &chosen {
            sources.entry(entry.source.as_str()).or_default().push(entry);
        }
        for (source, replayed) in &sources {
            let records = read_all(&context.consumer, kafka, source).await?;
            for entry in replayed {
                let later = records.iter().filter(|r| {
                    r.partition == entry.partition && r.offset > entry.offset && r.key.as_deref() == Some(entry.key())
                });
                let later: Vec<String> = later.map(|r| r.offset.to_string()).collect();
                if !later.is_empty() {
                    refusals.push(format!(
                        "{}@{} (key {}): {} has later records of its key (offsets {}), handled before it",
                        self.topic,
                        entry.record.offset,
                        entry.key(),
                        unprefixed(source, prefix),
                        later.join(", ")
                    ));
                }
            }
        }
        if !refusals.is_empty() && !self.force {
            for refusal in &refusals {
                eprintln!("refused: {refusal}");
            }
            return Err(Failure::Other(format!(
                "{} of {} entries cannot be replayed in order; nothing was sent (--force sends them anyway)",
                refusals.len(),
                chosen.len()
            )));
        }
        let producer = if self.dry_run { None } else { Some(settle_producer(kafka).await?) };
        for entry in &chosen {
            let payload = entry.record.payload.as_deref().unwrap_or_default();
            let line = json!({
                "replay": format!("{}@{}", self.topic, entry.record.offset),
                "to": {"topic": unprefixed(&entry.source, prefix), "partition_was": entry.partition, "offset_was": entry.offset},
                "key": entry.key(),
                "type": entry.message_type,
                "dry_run": self.dry_run,
            });
            if let Some(producer) = &producer {
                let (partition, offset) = producer
                    .send(&entry.source, entry.key(), payload, &entry.original_headers())
                    .await
                    .map_err(|e| Failure::Connect(format!("sending to {}: {e}", entry.source)))?;
                record_settled(producer, kafka, &dlq, entry.record.offset, "replayed").await?;
                let mut line = line;
                line["sent"] = json!({"partition": partition, "offset": offset});
                println!("{line}");
            } else {
                println!("{line}");
            }
        }
        Ok(())
    }
}
