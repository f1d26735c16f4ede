//! Consumes a projection's topics into one generation.
//!
//! Partitions are assigned manually (no consumer group): where a generation
//! is in each partition lives in its own `projection_offsets` table and
//! advances in the same transaction as the changes, so a restart resumes
//! exactly where the last commit left off, and a new generation simply
//! starts at the beginning of every topic.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use orderflow_bus::{HandlerError, InboundMessage};
use orderflow_config::KafkaSettings;
use orderflow_outbox::{OutboxMessage, classify, enqueue};
use prometheus::{IntCounterVec, Opts};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::generation::{self, Offsets};
use crate::lease::{self, FenceError};
use crate::{Error, Projection, notify};

static PROJECTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    orderflow_telemetry::register(
        IntCounterVec::new(
            Opts::new("orderflow_projection_messages_total", "Messages projected, by projection and outcome"),
            &["projection", "outcome"],
        )
        .expect("valid metric"),
    )
});

/// The librdkafka settings of a projection consumer (fetch waits from the
/// settings).
pub(crate) fn consumer_config(kafka: &KafkaSettings) -> rdkafka::ClientConfig {
    orderflow_bus::consumer_config(kafka)
}

/// `(topic, partition) -> high watermark` of `topics`, read once.
pub(crate) async fn high_watermarks(kafka: &KafkaSettings, topics: &[String]) -> Result<Offsets, Error> {
    let (kafka, topics) = (kafka.clone(), topics.to_vec());
    tokio::task::spawn_blocking(move || {
        let client: BaseConsumer = consumer_config(&kafka).create()?;
        let mut out = HashMap::new();
        for topic in topics {
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

/// How one generation is fed.
#[derive(Debug)]
pub(crate) struct Runner<P> {
    pub pool: PgPool,
    pub projection: Arc<P>,
    pub kafka: KafkaSettings,
    pub generation: i32,
    /// This instance's lease epoch; every transaction checks it.
    pub epoch: i64,
    pub batch_size: usize,
    /// Attempts for a message that fails permanently before it is dead-lettered.
    pub max_attempts: usize,
    /// How long transient failures in a row are retried before the runner
    /// gives up (and its owner learns of it).
    pub give_up_after: Duration,
}

/// A running [`Runner`]: dropping it stops the runner (after the batch in hand).
#[derive(Debug)]
pub(crate) struct RunnerHandle {
    pub generation: i32,
    stop: CancellationToken,
    /// `None` once its end was observed (a `JoinHandle` must not be polled
    /// again after it completed).
    task: Option<tokio::task::JoinHandle<Result<(), Error>>>,
    /// The committed offsets, updated after every commit.
    pub progress: watch::Receiver<Offsets>,
}

impl Drop for RunnerHandle {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl RunnerHandle {
    /// Stops the runner and waits for it; its result (`Ok` if its end was
    /// already observed through [`RunnerHandle::finished`]).
    pub async fn stop(mut self) -> Result<(), Error> {
        self.stop.cancel();
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }

    /// Resolves when the runner ends on its own (it only does when it cannot
    /// go on, or after a stop), with its result; pending forever after that.
    /// Cancel-safe.
    pub async fn finished(&mut self) -> Result<(), Error> {
        let Some(task) = self.task.as_mut() else { return std::future::pending().await };
        let result = task.await;
        self.task = None;
        result?
    }
}

enum Batch {
    /// All applied.
    Done,
    /// The first `applied` were committed; the next one failed permanently.
    Stopped { applied: usize, error: HandlerError },
}

/// Why a batch transaction did not commit.
enum BatchError {
    Fenced { current: Option<i64> },
    Handler(HandlerError),
}

impl From<HandlerError> for BatchError {
    fn from(error: HandlerError) -> Self {
        BatchError::Handler(error)
    }
}

fn db(error: sqlx::Error) -> BatchError {
    BatchError::Handler(classify(error))
}

impl<P: Projection> Runner<P> {
    fn name(&self) -> &str {
        &self.projection.definition().name
    }

    pub fn spawn(self) -> RunnerHandle {
        let stop = CancellationToken::new();
        let (progress_tx, progress) = watch::channel(Offsets::new());
        let generation = self.generation;
        let task = Some(tokio::spawn(self.run(stop.clone(), progress_tx)));
        RunnerHandle { generation, stop, task, progress }
    }

    /// A transaction on this generation that holds the lease.
    async fn begin(&self) -> Result<Transaction<'static, Postgres>, BatchError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        lease::hold(&mut tx, self.name(), self.epoch).await.map_err(|e| match e {
            FenceError::Database(e) => db(e),
            FenceError::Fenced { current } => BatchError::Fenced { current },
        })?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "SET LOCAL search_path TO {}, public",
            generation::schema(self.name(), self.generation)
        )))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        Ok(tx)
    }

    /// Applies `messages` in one transaction, each under a savepoint,
    /// advances the offsets of what was applied and announces what it
    /// settled, once. Returns the offsets it committed.
    async fn apply_batch(&self, messages: &[InboundMessage]) -> Result<(Batch, Offsets), BatchError> {
        let mut tx = self.begin().await?;
        let mut next = Offsets::new();
        let mut keys: Vec<String> = Vec::new();
        let mut outcome = Batch::Done;
        for (i, message) in messages.iter().enumerate() {
            let mut savepoint = sqlx::Acquire::begin(&mut *tx).await.map_err(db)?;
            // The message's trace and correlation on everything its projection logs.
            let span = tracing::info_span!(
                "message",
                topic = %message.topic,
                partition = message.partition,
                offset = message.offset,
                correlation_id = tracing::field::Empty,
                trace_id = tracing::field::Empty,
            );
            if let Ok(headers) = message.headers() {
                span.record("correlation_id", headers.correlation_id.as_str());
                span.record("trace_id", headers.trace_id());
            }
            match self.projection.apply(&mut savepoint, message).instrument(span).await {
                Ok(applied) => {
                    savepoint.commit().await.map_err(db)?;
                    next.insert((message.topic.clone(), message.partition), message.offset + 1);
                    keys.extend(applied.keys().iter().cloned());
                }
                Err(error) if !error.is_transient() => {
                    savepoint.rollback().await.map_err(db)?;
                    outcome = Batch::Stopped { applied: i, error };
                    break;
                }
                Err(transient) => return Err(transient.into()),
            }
        }
        generation::store_offsets(&mut tx, &next).await.map_err(db)?;
        if let Some(channel) = &self.projection.definition().notify_channel {
            notify::send(&mut tx, channel, keys.iter().map(String::as_str)).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok((outcome, next))
    }

    /// Puts `message` on its dead-letter topic (through the outbox) and
    /// moves past it, in one transaction.
    async fn dead_letter(&self, message: &InboundMessage, error: &HandlerError) -> Result<Offsets, BatchError> {
        let mut tx = self.begin().await?;
        let consumer = format!("projection-{}-gen-{}", self.name(), self.generation);
        enqueue(&mut tx, &[OutboxMessage::dead_letter(message, &consumer, error)]).await.map_err(db)?;
        let next = Offsets::from([((message.topic.clone(), message.partition), message.offset + 1)]);
        generation::store_offsets(&mut tx, &next).await.map_err(db)?;
        tx.commit().await.map_err(db)?;
        tracing::warn!(
            projection = self.name(), generation = self.generation, topic = %message.topic,
            partition = message.partition, offset = message.offset, %error, "message dead-lettered"
        );
        Ok(next)
    }

    fn fenced(&self, current: Option<i64>) -> Error {
        Error::Fenced { projection: self.name().to_owned(), mine: self.epoch, current }
    }

    /// Consumes and applies until `stop` fires (then returns `Ok` after the
    /// batch in hand committed), or until it cannot go on: fenced, a
    /// permanent failure of its own transaction, or transient failures for
    /// longer than `give_up_after`.
    async fn run(self, stop: CancellationToken, progress: watch::Sender<Offsets>) -> Result<(), Error> {
        let definition = self.projection.definition();
        let consumer: StreamConsumer = consumer_config(&self.kafka)
            .set("group.id", format!("{}projection-{}-gen-{}", self.kafka.topic_prefix, self.name(), self.generation))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .create()?;
        let stored = {
            let mut conn = self.pool.acquire().await?;
            generation::offsets(&mut conn, self.name(), self.generation).await?
        };
        let mut assignment = TopicPartitionList::new();
        for (topic, partition) in high_watermarks(&self.kafka, &definition.topics).await?.into_keys() {
            let offset = stored.get(&(topic.clone(), partition)).map_or(Offset::Beginning, |o| Offset::Offset(*o));
            assignment.add_partition_offset(&topic, partition, offset)?;
        }
        consumer.assign(&assignment)?;
        progress.send_replace(stored);
        tracing::info!(
            projection = self.name(),
            generation = self.generation,
            partitions = assignment.count(),
            "projection running"
        );

        let advance = |next: &Offsets| {
            progress.send_modify(|all| {
                for (tp, offset) in next {
                    let at = all.entry(tp.clone()).or_insert(*offset);
                    *at = (*at).max(*offset);
                }
            });
        };
        let count = |outcome: &str, n: usize| PROJECTED.with_label_values(&[self.name(), outcome]).inc_by(n as u64);
        let mut queue: VecDeque<InboundMessage> = VecDeque::new();
        let mut attempts = 0;
        let mut backoff = Duration::from_millis(50);
        let mut failing_since: Option<Instant> = None;
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
                match tokio::time::timeout(Duration::from_millis(2), consumer.recv()).await {
                    Ok(Ok(m)) => queue.push_back(InboundMessage::from(&m)),
                    Ok(Err(error)) => tracing::warn!(%error, "consume error"),
                    Err(_) => break,
                }
            }
            let batch: Vec<InboundMessage> = queue.iter().take(self.batch_size).cloned().collect();
            let transient = match self.apply_batch(&batch).await {
                Ok((Batch::Done, next)) => {
                    queue.drain(..batch.len());
                    advance(&next);
                    count("applied", batch.len());
                    attempts = 0;
                    backoff = Duration::from_millis(50);
                    failing_since = None;
                    continue;
                }
                Ok((Batch::Stopped { applied, error }, next)) => {
                    queue.drain(..applied);
                    advance(&next);
                    count("applied", applied);
                    failing_since = None;
                    attempts = if applied > 0 { 1 } else { attempts + 1 };
                    if attempts < self.max_attempts {
                        tracing::warn!(projection = self.name(), %error, attempts, "message failed; retrying");
                        None
                    } else {
                        let poison = queue.front().cloned().expect("the failed message is queued");
                        match self.dead_letter(&poison, &error).await {
                            Ok(next) => {
                                queue.pop_front();
                                advance(&next);
                                count("dead_lettered", 1);
                                attempts = 0;
                                continue;
                            }
                            Err(BatchError::Fenced { current }) => return Err(self.fenced(current)),
                            Err(BatchError::Handler(HandlerError::Transient(e))) => Some(e),
                            Err(BatchError::Handler(e)) => return Err(Error::Batch(e.to_string())),
                        }
                    }
                }
                Err(BatchError::Fenced { current }) => return Err(self.fenced(current)),
                // Not the message's fault (it would have stopped the batch
                // under its savepoint): our own transaction cannot work.
                Err(BatchError::Handler(HandlerError::Transient(e))) => Some(e),
                Err(BatchError::Handler(e)) => return Err(Error::Batch(e.to_string())),
            };
            if let Some(error) = transient {
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() > self.give_up_after {
                    return Err(Error::GaveUp { seconds: self.give_up_after.as_secs(), last: error });
                }
                tracing::warn!(projection = self.name(), %error, "projection batch failed; retrying");
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        tracing::info!(projection = self.name(), generation = self.generation, "projection stopped");
        Ok(())
    }
}
