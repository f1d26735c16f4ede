//! The at-least-once consumer loop.
//!
//! Messages are handled one at a time, in partition order. A message's
//! offset is stored (and later committed) only after [`MessageHandler::handle`]
//! returned `Ok` — i.e. after the handler's database transaction committed —
//! or after the message was dead-lettered. A crash anywhere before that
//! redelivers the message, which the handler's inbox makes harmless.

use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{IntCounterVec, Opts};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{ClientContext, TopicPartitionList};
use tokio_retry::strategy::{ExponentialBackoff, jitter};
use tokio_util::sync::CancellationToken;

use crate::headers::{HeaderError, Headers, pairs_of};

static HANDLED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    orderflow_telemetry::register(
        IntCounterVec::new(
            Opts::new("orderflow_bus_messages_consumed_total", "Messages consumed, by group, topic and outcome"),
            &["group", "topic", "outcome"],
        )
        .expect("valid metric"),
    )
});

/// A consumed message, owned so it can be held across retries.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: Option<Vec<u8>>,
    pub header_pairs: Vec<(String, Vec<u8>)>,
}

impl From<&rdkafka::message::BorrowedMessage<'_>> for InboundMessage {
    fn from(m: &rdkafka::message::BorrowedMessage<'_>) -> Self {
        Self {
            topic: m.topic().to_owned(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            payload: m.payload().map(<[u8]>::to_vec),
            header_pairs: pairs_of(m.headers()),
        }
    }
}

impl InboundMessage {
    /// The contract headers; an error names the missing or bad one.
    pub fn headers(&self) -> Result<Headers, HeaderError> {
        Headers::from_pairs(&self.header_pairs)
    }

    /// A key that identifies this message even when its headers are broken:
    /// its `message_id`, else its position in the log.
    pub fn identity(&self) -> String {
        self.headers()
            .map(|h| h.message_id.to_string())
            .unwrap_or_else(|_| format!("{}/{}/{}", self.topic, self.partition, self.offset))
    }
}

/// How handling a message failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The infrastructure is unavailable (database down, registry
    /// unreachable): retried until it works; the partition waits, nothing
    /// is skipped.
    #[error("transient: {0}")]
    Transient(String),
    /// The message itself cannot be handled (undecodable, missing headers,
    /// a bug): retried a bounded number of times, then dead-lettered.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// What a service does with its messages.
pub trait MessageHandler: Send + Sync {
    /// Handles one message, committing its effects (and its inbox row)
    /// before returning `Ok`.
    fn handle(&self, message: &InboundMessage) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Sends a message that keeps failing to the dead-letter topic (with its
    /// original headers, position and the error), durably, before returning.
    fn dead_letter(
        &self,
        message: &InboundMessage,
        error: &str,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Which topics, as which group, and how patiently.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    pub group: String,
    pub topics: Vec<String>,
    /// Attempts for a permanently failing message before it is dead-lettered.
    pub max_attempts: usize,
    /// First retry delay; doubles up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl ConsumerOptions {
    pub fn new(group: impl Into<String>, topics: Vec<String>) -> Self {
        Self {
            group: group.into(),
            topics,
            max_attempts: 4,
            base_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
        }
    }

    fn backoff(&self) -> impl Iterator<Item = Duration> + use<> {
        let base = self.base_backoff.as_millis().max(2) as u64;
        ExponentialBackoff::from_millis(2).factor(base / 2).max_delay(self.max_backoff).map(jitter)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("cannot create the Kafka consumer for group {group}: {source}")]
    Create { group: String, source: KafkaError },
    #[error("cannot subscribe group {group} to {topics:?}: {source}")]
    Subscribe { group: String, topics: Vec<String>, source: KafkaError },
}

/// Logs rebalances and commits what is stored before partitions go away, so
/// the next owner starts right after the last committed effect.
struct RebalanceContext {
    group: String,
}

impl ClientContext for RebalanceContext {}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            tracing::info!(group = %self.group, partitions = partitions.count(), "partitions revoked");
            commit_stored(consumer, &self.group);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            tracing::info!(group = %self.group, partitions = ?describe(partitions), "partitions assigned");
        }
    }
}

fn describe(list: &TopicPartitionList) -> Vec<String> {
    list.elements().iter().map(|e| format!("{}[{}]", e.topic(), e.partition())).collect()
}

fn commit_stored<C: Consumer<X>, X: ConsumerContext>(consumer: &C, group: &str) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(error) => tracing::warn!(%error, group, "offset commit failed"),
    }
}

enum Outcome {
    Done,
    Stopped,
}

/// Consumes `options.topics` as `options.group` until `shutdown` fires.
pub async fn run<H: MessageHandler>(
    settings: &orderflow_config::KafkaSettings,
    options: &ConsumerOptions,
    handler: &H,
    shutdown: CancellationToken,
) -> Result<(), ConsumerError> {
    let consumer: StreamConsumer<RebalanceContext> = crate::client_config(settings)
        .set("group.id", &options.group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "500")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", settings.session_timeout_ms.to_string())
        .set("max.poll.interval.ms", settings.max_poll_interval_ms.to_string())
        .create_with_context(RebalanceContext { group: options.group.clone() })
        .map_err(|source| ConsumerError::Create { group: options.group.clone(), source })?;
    let topics: Vec<&str> = options.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).map_err(|source| ConsumerError::Subscribe {
        group: options.group.clone(),
        topics: options.topics.clone(),
        source,
    })?;
    tracing::info!(group = %options.group, topics = ?options.topics, "consumer started");

    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => break,
            received = consumer.recv() => received,
        };
        let message = match received {
            Ok(m) => InboundMessage::from(&m),
            Err(error) => {
                tracing::warn!(%error, group = %options.group, "consume error");
                continue;
            }
        };
        match process(options, handler, &message, &shutdown).await {
            Outcome::Stopped => break,
            Outcome::Done => {
                crate::failpoint::hit("consumer.after_commit");
                // librdkafka commits `offset + 1` for a stored offset: store
                // the message's own offset (adding one here skips a message
                // at every rebalance; the group test catches that).
                if let Err(error) = consumer.store_offset(&message.topic, message.partition, message.offset) {
                    // The partition was revoked meanwhile: its next owner
                    // redelivers the message and the inbox absorbs it.
                    tracing::warn!(%error, topic = %message.topic, partition = message.partition, "offset not stored");
                }
            }
        }
    }
    commit_stored(&consumer, &options.group);
    // Dropping closes the consumer: a final revoke (which commits) and a
    // LeaveGroup, so the group rebalances at once instead of waiting out
    // the session timeout.
    drop(consumer);
    tracing::info!(group = %options.group, "consumer stopped");
    Ok(())
}

async fn process<H: MessageHandler>(
    options: &ConsumerOptions,
    handler: &H,
    message: &InboundMessage,
    shutdown: &CancellationToken,
) -> Outcome {
    let span = tracing::info_span!(
        "message",
        group = %options.group,
        topic = %message.topic,
        partition = message.partition,
        offset = message.offset,
        correlation_id = tracing::field::Empty,
    );
    if let Ok(headers) = message.headers() {
        span.record("correlation_id", headers.correlation_id.as_str());
    }
    let _enter = span.enter();
    let mut delays = options.backoff();
    let mut attempts = 0;
    loop {
        let error = match handler.handle(message).await {
            Ok(()) => {
                HANDLED.with_label_values(&[&options.group, &message.topic, "ok"]).inc();
                return Outcome::Done;
            }
            Err(error) => error,
        };
        match &error {
            HandlerError::Transient(reason) => tracing::warn!(%reason, "transient failure; retrying"),
            HandlerError::Permanent(reason) => {
                attempts += 1;
                if attempts >= options.max_attempts {
                    tracing::error!(%reason, attempts, "message keeps failing; dead-lettering it");
                    return dead_letter(options, handler, message, reason, shutdown).await;
                }
                tracing::warn!(%reason, attempts, "message failed; retrying");
            }
        }
        let delay = delays.next().unwrap_or(options.max_backoff);
        tokio::select! {
            _ = shutdown.cancelled() => return Outcome::Stopped,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

async fn dead_letter<H: MessageHandler>(
    options: &ConsumerOptions,
    handler: &H,
    message: &InboundMessage,
    reason: &str,
    shutdown: &CancellationToken,
) -> Outcome {
    let mut delays = options.backoff();
    loop {
        match handler.dead_letter(message, reason).await {
            Ok(()) => {
                HANDLED.with_label_values(&[&options.group, &message.topic, "dead_lettered"]).inc();
                return Outcome::Done;
            }
            Err(error) => tracing::warn!(%error, "dead-lettering failed; retrying"),
        }
        let delay = delays.next().unwrap_or(options.max_backoff);
        tokio::select! {
            _ = shutdown.cancelled() => return Outcome::Stopped,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}
