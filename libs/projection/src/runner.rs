//! Consumes a projection's topics into one generation, through the kit's
//! partition workers ([`orderflow_bus::consumer`]: runs, retries with
//! backoff, splitting a run at a failing message, dead-lettering) with the
//! offsets kept by the projection itself ([`OffsetStore::Handler`]).
//!
//! Partitions are assigned by hand (no consumer group): where a generation
//! is in each partition lives in its own `projection_offsets` table and
//! advances in the same transaction as the changes, so a restart resumes
//! exactly where the last commit left off, and a new generation simply
//! starts at the beginning of every topic. Partitions are worked on
//! concurrently, each in its order, so every change must be safe against
//! a concurrent transaction of another partition (upserts, row locks).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use orderflow_bus::consumer::{self, ConsumerError};
use orderflow_bus::{ConsumerOptions, Handled, HandlerError, InboundMessage, MessageHandler, OffsetStore, Start};
use orderflow_config::KafkaSettings;
use orderflow_outbox::{OutboxMessage, classify, enqueue};
use prometheus::{IntCounterVec, Opts};
use rdkafka::consumer::{BaseConsumer, Consumer};
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::generation::{self, Offsets};
use crate::lease::{self, FenceError};
use crate::{Error, Item, Projection, notify};

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

/// What the partition workers hand each run of a generation to.
struct Feed<P> {
    pool: PgPool,
    projection: Arc<P>,
    /// The generation's consumer name (it commits no offsets to Kafka), on
    /// its spans.
    group: String,
    generation: i32,
    epoch: i64,
    /// The committed offsets, for whoever waits on the generation's progress.
    progress: watch::Sender<Offsets>,
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

impl<P: Projection> Feed<P> {
    fn name(&self) -> &str {
        &self.projection.definition().name
    }

    /// A transaction on this generation that holds the lease; a lost lease
    /// stops the consumer ([`HandlerError::Stop`] carrying [`Error::Fenced`]).
    async fn begin(&self) -> Result<Transaction<'static, Postgres>, HandlerError> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        lease::hold(&mut tx, self.name(), self.epoch).await.map_err(|e| match e {
            FenceError::Database(e) => classify(e),
            FenceError::Fenced { current } => HandlerError::Stop(Box::new(Error::Fenced {
                projection: self.name().to_owned(),
                mine: self.epoch,
                current,
            })),
        })?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "SET LOCAL search_path TO {}, public",
            generation::schema(self.name(), self.generation)
        )))
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        Ok(tx)
    }

    /// Tells whoever waits on the generation's progress that `next` is committed.
    fn advance(&self, next: &Offsets) {
        self.progress.send_modify(|all| {
            for (tp, offset) in next {
                let at = all.entry(tp.clone()).or_insert(*offset);
                *at = (*at).max(*offset);
            }
        });
    }

    fn count(&self, outcome: &str, n: usize) {
        PROJECTED.with_label_values(&[self.name(), outcome]).inc_by(n as u64);
    }
}

impl<P: Projection> MessageHandler for Feed<P> {
    /// Applies the run in one transaction, advances the offsets of its
    /// partition in it and announces what it settled, once; a message that
    /// fails splits the run there, with nothing committed.
    async fn handle(&self, messages: &[InboundMessage]) -> Result<Handled, HandlerError> {
        // Read before the transaction: a registry lookup holds no connection.
        let mut inputs = Vec::with_capacity(messages.len());
        for (position, message) in messages.iter().enumerate() {
            let input = self.projection.routes().read(message).await;
            inputs.push(input.map_err(|error| error.at(position, messages.len()))?);
        }
        let mut tx = self.begin().await?;
        let mut next = Offsets::new();
        let mut run = Vec::with_capacity(messages.len());
        for (message, input) in messages.iter().zip(inputs) {
            // The message's trace and correlation on everything its projection
            // logs, and (exported) its span in the message's trace.
            let span = orderflow_bus::trace::processing(message, &self.group);
            next.insert((message.topic.clone(), message.partition), message.offset + 1);
            run.push(Item { input, source: message, span });
        }
        let applied = self.projection.apply_run(&mut tx, run).await?;
        let keys = applied.keys();
        generation::store_offsets(&mut tx, &next).await.map_err(classify)?;
        if let Some(channel) = &self.projection.definition().notify_channel {
            notify::send(&mut tx, channel, keys.iter().map(String::as_str)).await.map_err(classify)?;
        }
        tx.commit().await.map_err(classify)?;
        self.advance(&next);
        self.count("applied", messages.len());
        Ok(Handled::all())
    }

    /// Puts `message` on its dead-letter topic (through the outbox) and
    /// moves past it, in one transaction.
    async fn dead_letter(&self, message: &InboundMessage, error: &HandlerError) -> Result<(), HandlerError> {
        let mut tx = self.begin().await?;
        let consumer = format!("projection-{}-gen-{}", self.name(), self.generation);
        enqueue(&mut tx, &[OutboxMessage::dead_letter(message, &consumer, error)]).await.map_err(classify)?;
        let next = Offsets::from([((message.topic.clone(), message.partition), message.offset + 1)]);
        generation::store_offsets(&mut tx, &next).await.map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        tracing::warn!(
            projection = self.name(), generation = self.generation, topic = %message.topic,
            partition = message.partition, offset = message.offset, %error, "message dead-lettered"
        );
        self.advance(&next);
        self.count("dead_lettered", 1);
        Ok(())
    }
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

    /// Consumes and applies until `stop` fires (then returns `Ok` after the
    /// runs in hand committed), or until it cannot go on: fenced, or
    /// transient failures for longer than `give_up_after`.
    async fn run(self, stop: CancellationToken, progress: watch::Sender<Offsets>) -> Result<(), Error> {
        let stored = {
            let mut conn = self.pool.acquire().await?;
            generation::offsets(&mut conn, self.name(), self.generation).await?
        };
        let starts: Vec<Start> = high_watermarks(&self.kafka, self.projection.routes().topics())
            .await?
            .into_keys()
            .map(|(topic, partition)| Start {
                offset: stored.get(&(topic.clone(), partition)).copied(),
                topic,
                partition,
            })
            .collect();
        progress.send_replace(stored);
        tracing::info!(
            projection = self.name(),
            generation = self.generation,
            partitions = starts.len(),
            "projection running"
        );
        let group = format!("{}projection-{}-gen-{}", self.kafka.topic_prefix, self.name(), self.generation);
        let options = ConsumerOptions {
            batch_size: self.batch_size,
            max_attempts: self.max_attempts,
            offsets: OffsetStore::Handler(starts),
            give_up_after: Some(self.give_up_after),
            ..ConsumerOptions::new(group.clone(), self.projection.routes().topics().to_vec())
        };
        let feed = Feed {
            pool: self.pool.clone(),
            projection: Arc::clone(&self.projection),
            group,
            generation: self.generation,
            epoch: self.epoch,
            progress,
        };
        let ended = consumer::run(&self.kafka, &options, Arc::new(feed), stop).await;
        tracing::info!(projection = self.name(), generation = self.generation, "projection stopped");
        ended.map_err(|error| match error {
            ConsumerError::Stopped { group, topic, partition, source } => match source.downcast::<Error>() {
                Ok(error) => *error,
                Err(source) => Error::Consumer(ConsumerError::Stopped { group, topic, partition, source }),
            },
            ConsumerError::GaveUp { seconds, last, .. } => Error::GaveUp { seconds, last: last.to_string() },
            other => Error::Consumer(other),
        })
    }
}
