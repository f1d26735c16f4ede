//! Consumes the projector's topics into one generation.
//!
//! Partitions are assigned manually (no consumer group): where a generation
//! is in each partition lives in its own `offsets` table and advances in the
//! same transaction as the changes, so a crash or restart resumes exactly
//! where the last commit left off, and a new generation simply starts at the
//! beginning of every topic.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use orderflow_bus::{HandlerError, InboundMessage};
use orderflow_config::KafkaSettings;
use orderflow_contracts::Codec;
use orderflow_outbox::{OutboxMessage, classify, enqueue};
use prometheus::{IntCounterVec, Opts};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::generation;

static PROJECTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    orderflow_telemetry::register(
        IntCounterVec::new(
            Opts::new("orderflow_projector_messages_total", "Messages projected, by outcome"),
            &["outcome"],
        )
        .expect("valid metric"),
    )
});

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("metadata task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// The topics every generation is built from.
pub fn topics(kafka: &KafkaSettings) -> Vec<String> {
    [
        orderflow_contracts::users::EVENTS.name,
        orderflow_contracts::users::CREDENTIALS.name,
        orderflow_contracts::users::COMMANDS.name,
    ]
    .iter()
    .map(|t| kafka.topic(t))
    .collect()
}

/// `(topic, partition) -> high watermark` of `topics`.
pub async fn high_watermarks(kafka: &KafkaSettings) -> Result<HashMap<(String, i32), i64>, RunnerError> {
    let kafka = kafka.clone();
    tokio::task::spawn_blocking(move || {
        let client: BaseConsumer = orderflow_bus::client_config(&kafka).create()?;
        let mut out = HashMap::new();
        for topic in topics(&kafka) {
            let metadata = client.fetch_metadata(Some(&topic), Duration::from_secs(5))?;
            for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
                let (_, high) = client.fetch_watermarks(&topic, partition.id(), Duration::from_secs(5))?;
                out.insert((topic.clone(), partition.id()), high);
            }
        }
        Ok(out)
    })
    .await?
}

#[derive(Debug, Clone)]
pub struct Runner {
    pub pool: PgPool,
    pub codec: Arc<Codec>,
    pub kafka: KafkaSettings,
    pub generation: i32,
    pub batch_size: usize,
    /// Attempts for a message that fails permanently before it is dead-lettered.
    pub max_attempts: usize,
}

enum Batch {
    /// All applied.
    Done,
    /// The first `applied` were committed; the next one failed permanently.
    Stopped { applied: usize, error: String },
}

impl Runner {
    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "SET LOCAL search_path TO {}, public",
            generation::schema(self.generation)
        )))
        .execute(&mut *tx)
        .await?;
        Ok(tx)
    }

    async fn store_offsets(tx: &mut PgConnection, next: &HashMap<(String, i32), i64>) -> Result<(), sqlx::Error> {
        for ((topic, partition), offset) in next {
            sqlx::query(
                "INSERT INTO offsets (topic, partition, next_offset) VALUES ($1, $2, $3)
                 ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
            )
            .bind(topic)
            .bind(partition)
            .bind(offset)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    /// Applies `messages` in one transaction, each under a savepoint, and
    /// advances the offsets of what was applied.
    async fn apply_batch(&self, messages: &[InboundMessage]) -> Result<Batch, HandlerError> {
        let mut tx = self.begin().await.map_err(classify)?;
        let mut next = HashMap::new();
        let mut outcome = Batch::Done;
        for (i, message) in messages.iter().enumerate() {
            let mut savepoint = sqlx::Acquire::begin(&mut *tx).await.map_err(classify)?;
            match crate::apply::apply(&mut savepoint, &self.codec, &self.kafka, message).await {
                Ok(()) => {
                    savepoint.commit().await.map_err(classify)?;
                    next.insert((message.topic.clone(), message.partition), message.offset + 1);
                }
                Err(HandlerError::Permanent(error)) => {
                    savepoint.rollback().await.map_err(classify)?;
                    outcome = Batch::Stopped { applied: i, error };
                    break;
                }
                Err(transient) => return Err(transient),
            }
        }
        Self::store_offsets(&mut tx, &next).await.map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(outcome)
    }

    /// Puts `message` on its dead-letter topic (through the outbox) and
    /// moves past it, in one transaction.
    async fn dead_letter(&self, message: &InboundMessage, error: &str) -> Result<(), HandlerError> {
        let mut tx = self.begin().await.map_err(classify)?;
        let letter = OutboxMessage::dead_letter(message, &format!("projector-gen-{}", self.generation), error);
        enqueue(&mut tx, &[letter]).await.map_err(classify)?;
        let next = HashMap::from([((message.topic.clone(), message.partition), message.offset + 1)]);
        Self::store_offsets(&mut tx, &next).await.map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        tracing::warn!(topic = %message.topic, offset = message.offset, %error, generation = self.generation, "event dead-lettered");
        Ok(())
    }

    /// Consumes and applies until `stop` fires. Stopping waits for the batch
    /// in hand to commit.
    pub async fn run(self, stop: CancellationToken) -> Result<(), RunnerError> {
        let consumer: StreamConsumer = orderflow_bus::consumer_config(&self.kafka)
            .set("group.id", format!("{}projector-gen-{}", self.kafka.topic_prefix, self.generation))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .create()?;
        let stored = {
            let mut conn = self.pool.acquire().await?;
            generation::offsets(&mut conn, self.generation).await?
        };
        let mut assignment = TopicPartitionList::new();
        for (topic, partition) in high_watermarks(&self.kafka).await?.into_keys() {
            let offset = stored.get(&(topic.clone(), partition)).map_or(Offset::Beginning, |o| Offset::Offset(*o));
            assignment.add_partition_offset(&topic, partition, offset)?;
        }
        consumer.assign(&assignment)?;
        tracing::info!(generation = self.generation, partitions = assignment.count(), "projection running");

        let mut queue: VecDeque<InboundMessage> = VecDeque::new();
        let mut attempts = 0;
        let mut backoff = Duration::from_millis(50);
        loop {
            if queue.is_empty() {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    received = consumer.recv() => match received {
                        Ok(m) => queue.push_back(InboundMessage::from(&m)),
                        Err(error) => { tracing::warn!(%error, "consume error"); continue; }
                    },
                }
            }
            while queue.len() < self.batch_size {
                match tokio::time::timeout(Duration::from_millis(5), consumer.recv()).await {
                    Ok(Ok(m)) => queue.push_back(InboundMessage::from(&m)),
                    Ok(Err(error)) => tracing::warn!(%error, "consume error"),
                    Err(_) => break,
                }
            }
            let batch: Vec<InboundMessage> = queue.iter().take(self.batch_size).cloned().collect();
            match self.apply_batch(&batch).await {
                Ok(Batch::Done) => {
                    queue.drain(..batch.len());
                    PROJECTED.with_label_values(&["applied"]).inc_by(batch.len() as u64);
                    attempts = 0;
                    backoff = Duration::from_millis(50);
                    continue;
                }
                Ok(Batch::Stopped { applied, error }) => {
                    queue.drain(..applied);
                    PROJECTED.with_label_values(&["applied"]).inc_by(applied as u64);
                    attempts += 1;
                    if attempts >= self.max_attempts {
                        let poison = queue.front().cloned().expect("the failed message is queued");
                        match self.dead_letter(&poison, &error).await {
                            Ok(()) => {
                                queue.pop_front();
                                PROJECTED.with_label_values(&["dead_lettered"]).inc();
                                attempts = 0;
                                continue;
                            }
                            Err(e) => tracing::warn!(error = %e, "dead-lettering failed; retrying"),
                        }
                    } else {
                        tracing::warn!(%error, attempts, "event failed; retrying");
                    }
                }
                Err(error) => tracing::warn!(%error, "projection batch failed; retrying"),
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        tracing::info!(generation = self.generation, "projection stopped");
        Ok(())
    }
}
