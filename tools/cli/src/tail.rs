//! `orderflow tail TOPIC`: a topic's records as JSON lines, one per
//! record, decoded through the registry with the writer's schema.

use std::collections::HashMap;
use std::io::Write;

use chrono::{DateTime, Utc};
use orderflow_config::{KafkaSettings, RegistrySettings};
use orderflow_contracts::Codec;
use orderflow_contracts::json::Marks;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

use crate::Failure;
use crate::read::{TIMEOUT, partitions, poll, render, single};

/// How long a broker gets to answer a metadata or offsets request.

#[derive(Debug, clap::Args)]
pub struct Tail {
    /// The topic, without the system's prefix (`users.events`,
    /// `orders.commands.dlq`, ...).
    topic: String,
    /// Where to start in each partition: `beginning`, `end`, an offset, or
    /// a time (RFC 3339: the first record at or after it).
    #[arg(long, default_value = "beginning")]
    from: Position,
    /// Where to stop: `end` (each partition's end when the command
    /// started; the default unless --follow), an offset (exclusive), or a
    /// time (records after it are not printed).
    #[arg(long)]
    until: Option<Position>,
    /// Keep reading new records until Ctrl-C.
    #[arg(long, conflicts_with = "until")]
    follow: bool,
    /// Only the records of this key (an aggregate id).
    #[arg(long)]
    key: Option<String>,
    /// Print each record's headers too.
    #[arg(long)]
    headers: bool,
    /// Colour the JSON: `auto` (on a terminal, plain when piped), `always`,
    /// `never`.
    #[arg(long, default_value = "auto")]
    color: Color,
    /// Print the fields the schemas mark sensitive (personal data); left
    /// out unless asked for. As the topic holds them: an event's personal
    /// fields are sealed with their subject's data key (`enc:v1:...`).
    #[arg(long)]
    sensitive: bool,
}

/// A place in a partition, as the options name it.
#[derive(Debug, Clone)]
enum Position {
    Beginning,
    End,
    Offset(i64),
    Time(DateTime<Utc>),
}

impl std::str::FromStr for Position {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        match raw {
            "beginning" => Ok(Position::Beginning),
            "end" => Ok(Position::End),
            _ => {
                if let Ok(offset) = raw.parse::<i64>() {
                    return if offset >= 0 {
                        Ok(Position::Offset(offset))
                    } else {
                        Err("an offset is 0 or more".into())
                    };
                }
                DateTime::parse_from_rfc3339(raw).map(|t| Position::Time(t.with_timezone(&Utc))).map_err(|_| {
                    format!("`{raw}` is not `beginning`, `end`, an offset or an RFC 3339 time (2026-12-05T10:00:00Z)")
                })
            }
        }
    }
}

/// Where reading one partition stops: before `offset` (its end when the
/// command started, or the one asked for), or at the first record after
/// `time`.
#[derive(Debug, Clone, Copy)]
struct Stop {
    offset: Option<i64>,
    time: Option<i64>,
}

impl Tail {
    pub async fn run(self, kafka: &KafkaSettings, registry: &RegistrySettings) -> Result<(), Failure> {
        let topic = kafka.topic(&self.topic);
        let consumer = crate::read::consumer(kafka)?;
        let partitions = partitions(&consumer, kafka, &topic)?;
        let mut stops = HashMap::new();
        let mut start = TopicPartitionList::new();
        for &partition in &partitions {
            let (low, high) = consumer
                .fetch_watermarks(&topic, partition, TIMEOUT)
                .map_err(|e| Failure::Connect(format!("the end offsets of {topic} from {}: {e}", kafka.brokers)))?;
            let from = match &self.from {
                Position::Beginning => low,
                Position::End => high,
                Position::Offset(offset) => (*offset).clamp(low, high),
                Position::Time(time) => at_time(&consumer, &topic, partition, *time, high)?,
            };
            let stop = match (&self.until, self.follow) {
                (_, true) => Stop { offset: None, time: None },
                (None | Some(Position::End), false) => Stop { offset: Some(high), time: None },
                (Some(Position::Offset(offset)), false) => Stop { offset: Some((*offset).min(high)), time: None },
                (Some(Position::Time(time)), false) => Stop { offset: Some(high), time: Some(time.timestamp_millis()) },
                (Some(Position::Beginning), false) => Stop { offset: Some(low), time: None },
            };
            start
                .add_partition_offset(&topic, partition, Offset::Offset(from))
                .map_err(|e| Failure::Other(format!("{topic}/{partition}: {e}")))?;
            stops.insert(partition, (from, stop));
        }
        let mut open: Vec<i32> = stops
            .iter()
            .filter(|(_, (from, stop))| stop.offset.is_none_or(|end| *from < end))
            .map(|(p, _)| *p)
            .collect();
        if open.is_empty() {
            return Ok(());
        }
        consumer.assign(&start).map_err(|e| Failure::Connect(format!("reading {topic}: {e}")))?;
        let codec = Codec::new(&registry.url);
        let marks = Marks::default();
        let stdout = std::io::stdout();
        let colour = match self.color {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => std::io::IsTerminal::is_terminal(&stdout) && std::env::var_os("NO_COLOR").is_none(),
        };
        let mut out = std::io::BufWriter::new(stdout.lock());
        let interrupted = tokio::signal::ctrl_c();
        tokio::pin!(interrupted);
        while !open.is_empty() {
            let polled = tokio::select! {
                _ = &mut interrupted => break,
                polled = poll(&consumer) => polled,
            };
            let message = match polled {
                None => continue,
                Some(Ok(message)) => message,
                Some(Err(error)) => return Err(Failure::Connect(format!("reading {topic}: {error}"))),
            };
            let (partition, offset) = (message.partition, message.offset);
            let Some((_, stop)) = stops.get(&partition) else { continue };
            let past = stop.offset.is_some_and(|end| offset >= end) || stop.time.is_some_and(|t| message.timestamp > t);
            if past {
                open.retain(|p| *p != partition);
                consumer.pause(&single(&topic, partition)).ok();
                continue;
            }
            if self.key.is_none() || self.key == message.key {
                let line = render(&codec, &marks, &message, self.headers, self.sensitive).await;
                let written = if colour {
                    let mut coloured = String::new();
                    paint(&line, &mut coloured);
                    writeln!(out, "{coloured}")
                } else {
                    writeln!(out, "{line}")
                };
                if written.is_err() {
                    return Ok(()); // the reader went away (a pipe into head)
                }
            }
            if stop.offset.is_some_and(|end| offset + 1 >= end) {
                open.retain(|p| *p != partition);
            }
        }
        out.flush().ok();
        Ok(())
    }
}

/// The first offset of `partition` at or after `time` (`end` if none).
fn at_time(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    time: DateTime<Utc>,
    end: i64,
) -> Result<i64, Failure> {
    let mut asked = TopicPartitionList::new();
    asked
        .add_partition_offset(topic, partition, Offset::Offset(time.timestamp_millis()))
        .map_err(|e| Failure::Other(e.to_string()))?;
    let found = consumer
        .offsets_for_times(asked, TIMEOUT)
        .map_err(|e| Failure::Connect(format!("the offsets of {topic} at {time}: {e}")))?;
    Ok(match found.find_partition(topic, partition).map(|p| p.offset()) {
        Some(Offset::Offset(offset)) => offset,
        _ => end,
    })
}

/// When `tail` colours its lines.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

/// `value` as compact JSON with ANSI colours: keys blue, strings green,
/// numbers cyan, `true`/`false`/`null` magenta.
fn paint(value: &Value, out: &mut String) {
    const KEY: &str = "\x1b[34m";
    const STRING: &str = "\x1b[32m";
    const NUMBER: &str = "\x1b[36m";
    const OTHER: &str = "\x1b[35m";
    const RESET: &str = "\x1b[0m";
    match value {
        Value::Object(map) => {
            out.push('{');
            for (i, (key, inner)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(KEY);
                out.push_str(&Value::String(key.clone()).to_string());
                out.push_str(RESET);
                out.push(':');
                paint(inner, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, inner) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                paint(inner, out);
            }
            out.push(']');
        }
        Value::String(_) => {
            out.push_str(STRING);
            out.push_str(&value.to_string());
            out.push_str(RESET);
        }
        Value::Number(_) => {
            out.push_str(NUMBER);
            out.push_str(&value.to_string());
            out.push_str(RESET);
        }
        Value::Bool(_) | Value::Null => {
            out.push_str(OTHER);
            out.push_str(&value.to_string());
            out.push_str(RESET);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn painted_json_is_the_same_json_once_the_colours_are_gone() {
        let value = serde_json::json!({"key": "k", "offset": 3, "value": {"a": [true, null, 1.5, "x\"y"]}});
        let mut painted = String::new();
        paint(&value, &mut painted);
        assert!(painted.contains("\x1b[34m\"key\"\x1b[0m"));
        let plain = painted
            .replace("\x1b[34m", "")
            .replace("\x1b[32m", "")
            .replace("\x1b[36m", "")
            .replace("\x1b[35m", "")
            .replace("\x1b[0m", "");
        assert_eq!(serde_json::from_str::<Value>(&plain).expect("JSON"), value);
    }
}
