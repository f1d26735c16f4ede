//! The at-least-once consumer.
//!
//! One task reads from the broker and hands each message to the lane of
//! its partition (a bounded queue). Lanes run concurrently
//! ([`ConsumerOptions::lanes`], the cores by default), and every
//! partition belongs to one lane, which works its messages in order. A
//! lane takes the run of messages waiting in its queue (up to
//! `batch_size`, from any of its partitions) and gives it to
//! [`MessageHandler::handle`], which commits all of it in one database
//! transaction or nothing. Only then are the offsets stored (and later
//! committed): a crash anywhere before that redelivers the messages, which
//! the handler's inbox makes harmless. A process that owns many partitions
//! thus commits as many transactions at once as it has lanes, each as
//! large as what waits, rather than one small one per partition.
//!
//! A run that fails at one message ([`HandlerError::Split`]) goes again in
//! parts: the messages before it, then it alone, then the rest; one that
//! fails as a whole falls back to one message at a time. Either way only
//! the failing message is retried (boundedly, with backoff) and then
//! dead-lettered; the partition moves on. Transient failures (database
//! down) are retried until they pass (or until
//! [`ConsumerOptions::give_up_after`]); nothing is skipped. A message or
//! run retried in place holds up its lane (the partitions it works), not
//! only its own partition.
//!
//! Offsets live in the consumer group ([`OffsetStore::Group`]: stored once
//! the handler committed, then committed to Kafka) or in the handler's own
//! transaction ([`OffsetStore::Handler`]: partitions assigned by hand from
//! the handler's positions, as projections do).
//!
//! On a rebalance a lane finishes the run in hand and drops what it holds
//! of the revoked partitions (queued, set aside); a partition that comes
//! back goes to the same lane, behind that run, so one partition is never
//! worked on twice at once. A lane that dies (panics) ends [`run`] with an
//! error, so the owner learns of it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use prometheus::{IntCounterVec, IntGaugeVec, Opts};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_retry::strategy::{ExponentialBackoff, jitter};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::headers::{DeadLetterCause, HeaderError, Headers, pairs_of};

static HANDLED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    orderflow_telemetry::register(
        IntCounterVec::new(
            Opts::new("orderflow_bus_messages_consumed_total", "Messages consumed, by group, topic and outcome"),
            &["group", "topic", "outcome"],
        )
        .expect("valid metric"),
    )
});
static PARKED: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    orderflow_telemetry::register(
        IntGaugeVec::new(
            Opts::new(
                "orderflow_bus_parked_messages",
                "Messages set aside behind a key whose first message cannot be acted on yet, by group",
            ),
            &["group"],
        )
        .expect("valid metric"),
    )
});
static ASSIGNED: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    orderflow_telemetry::register(
        IntGaugeVec::new(
            Opts::new("orderflow_bus_assigned_partitions", "Partitions this process owns, by group"),
            &["group"],
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

/// What went wrong underneath, kept whole: its chain of causes, and its
/// type for whoever needs to tell it apart (a projection's lost lease).
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How handling a message failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The infrastructure is unavailable (database down, registry
    /// unreachable): retried until it works (or, with
    /// [`ConsumerOptions::give_up_after`], that long); the lane waits,
    /// nothing is skipped.
    #[error("transient: {0}")]
    Transient(#[source] Source),
    /// Handling the message fails for a reason of ours (a bug, a rule that
    /// cannot be applied): retried a bounded number of times, then
    /// dead-lettered as [`DeadLetterCause::Failed`].
    #[error("permanent: {0}")]
    Permanent(#[source] Source),
    /// The message itself is at fault (undecodable, broken headers, data
    /// the database refuses as invalid): retried a bounded number of times
    /// like [`HandlerError::Permanent`] (a registry hiccup can look alike),
    /// then dead-lettered as [`DeadLetterCause::Invalid`], which tells
    /// whoever waits on it that the input, not the system, was wrong.
    #[error("invalid: {0}")]
    Invalid(#[source] Source),
    /// The message cannot be acted on yet (what it needs has not arrived:
    /// an order for a customer this service has not seen yet), and nothing
    /// of it was committed. Its key is set aside and retried with backoff
    /// while the partition's other keys flow on; the committed offset stays
    /// before it, so a restart delivers it again. (With too many set aside,
    /// or offsets kept by the handler, it is retried in place.)
    #[error("not yet: {0}")]
    Later(#[source] Source),
    /// The run was stopped by its message at `position`, which failed with
    /// `error` (never a transient one: that retries the whole run), and
    /// the run did not commit (a part it committed before is absorbed by
    /// the handler when it comes again). The consumer splits the run there:
    /// the messages before it go again as a run, the failing one alone
    /// (retried, then dead-lettered, by its own error), then the rest.
    /// Without it, a run that fails is taken apart one message at a time.
    #[error("message {position} of the run: {error}")]
    Split {
        position: usize,
        #[source]
        error: Box<HandlerError>,
    },
    /// The handler cannot go on at all (a projection instance fenced off by
    /// another): the consumer stops every lane and [`run`] ends with
    /// [`ConsumerError::Stopped`], which carries this source.
    #[error("cannot go on: {0}")]
    Stop(#[source] Source),
}

impl HandlerError {
    /// What the error says, without its kind: the message and its causes.
    pub fn reason(&self) -> String {
        match self {
            HandlerError::Split { error, .. } => error.reason(),
            HandlerError::Transient(source)
            | HandlerError::Permanent(source)
            | HandlerError::Invalid(source)
            | HandlerError::Later(source)
            | HandlerError::Stop(source) => {
                let mut reason = source.to_string();
                let mut cause = source.source();
                while let Some(inner) = cause {
                    let text = inner.to_string();
                    if !reason.contains(&text) {
                        reason.push_str(": ");
                        reason.push_str(&text);
                    }
                    cause = inner.source();
                }
                reason
            }
        }
    }

    /// The error of the message itself: a [`HandlerError::Split`]'s inner
    /// error, anything else as it is.
    pub fn into_message_error(self) -> HandlerError {
        match self {
            HandlerError::Split { error, .. } => error.into_message_error(),
            other => other,
        }
    }

    /// Whether retrying may help by itself (infrastructure, or what the
    /// message needs arriving), rather than the message or its handling
    /// being wrong: never counted towards dead-lettering.
    pub fn is_transient(&self) -> bool {
        matches!(self, HandlerError::Transient(_) | HandlerError::Later(_))
    }

    /// Whose fault it is, for a dead letter of a message this error stopped.
    pub fn dead_letter_cause(&self) -> DeadLetterCause {
        match self {
            HandlerError::Invalid(_) => DeadLetterCause::Invalid,
            HandlerError::Split { error, .. } => error.dead_letter_cause(),
            HandlerError::Transient(_)
            | HandlerError::Permanent(_)
            | HandlerError::Later(_)
            | HandlerError::Stop(_) => DeadLetterCause::Failed,
        }
    }

    /// `self`, as the failure of the message at `position` of a run of
    /// `len`: a [`HandlerError::Split`] there, unless the run is that one
    /// message or the error is not the message's (transient, or a stop).
    pub fn at(self, position: usize, len: usize) -> HandlerError {
        match self {
            error @ (HandlerError::Transient(_) | HandlerError::Stop(_) | HandlerError::Split { .. }) => error,
            error if len <= 1 => error,
            error => HandlerError::Split { position, error: Box::new(error) },
        }
    }
}

/// A message that cannot be encoded or decoded: transient while the
/// registry is unreachable, invalid when the message itself is bad.
impl From<orderflow_contracts::CodecError> for HandlerError {
    fn from(error: orderflow_contracts::CodecError) -> Self {
        if error.is_transient() {
            HandlerError::Transient(Box::new(error))
        } else {
            HandlerError::Invalid(Box::new(error))
        }
    }
}

/// A message whose contract headers are missing or broken is invalid.
impl From<HeaderError> for HandlerError {
    fn from(error: HeaderError) -> Self {
        HandlerError::Invalid(Box::new(error))
    }
}

/// What handling a run did: every message is done, except those it left
/// for later (nothing of them committed; their keys are set aside as for
/// [`HandlerError::Later`], and so are the run's later messages of those
/// keys in the same partition, which the handler must leave too).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handled {
    /// Positions in the run, each with why it waits.
    later: Vec<(usize, String)>,
}

impl Handled {
    /// The whole run is done.
    pub fn all() -> Self {
        Self::default()
    }

    /// Done except the message at `position` of the run, for `why`.
    pub fn leave(&mut self, position: usize, why: impl Into<String>) {
        self.later.push((position, why.into()));
    }

    /// How many messages of the run wait.
    pub fn later_count(&self) -> usize {
        self.later.len()
    }

    /// Why the message at `position` waits, if it does.
    pub fn waits(&self, position: usize) -> Option<&str> {
        self.later.iter().find(|(p, _)| *p == position).map(|(_, why)| why.as_str())
    }
}

/// What a service does with its messages.
pub trait MessageHandler: Send + Sync + 'static {
    /// Handles a run of messages of one lane's partitions, each
    /// partition's consecutive and in order:
    /// the effects and inbox rows of every message it returns as done are
    /// committed before `Ok` (those of a failed run: none, or, should it
    /// commit in parts, ones its inbox absorbs when the run comes again).
    /// A run of one is the fallback for a run that failed.
    fn handle(&self, messages: &[InboundMessage]) -> impl Future<Output = Result<Handled, HandlerError>> + Send;

    /// Sends a message that keeps failing to the dead-letter topic (with its
    /// original headers, position, the error and whose fault it is),
    /// durably, before returning.
    fn dead_letter(
        &self,
        message: &InboundMessage,
        error: &HandlerError,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Wakes a parked key before its backoff ends: what its first message
/// waits for (a call to an outside system) has finished. The consumer
/// listens; whoever finishes that work calls [`Wakeups::wake`]. Clones
/// share one channel.
#[derive(Debug, Clone)]
pub struct Wakeups(tokio::sync::broadcast::Sender<String>);

impl Default for Wakeups {
    fn default() -> Self {
        // A listener that falls this far behind wakes all its keys instead.
        Self(tokio::sync::broadcast::channel(1024).0)
    }
}

impl Wakeups {
    /// Retries the parked messages of `key` now (a key not parked: nothing).
    pub fn wake(&self, key: &str) {
        let _ = self.0.send(key.to_owned());
    }
}

/// Which topics, as which group, and how patiently.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    pub group: String,
    pub topics: Vec<String>,
    /// Messages handed to the handler at once (a run), at most.
    pub batch_size: usize,
    /// Runs handled at once (with the group's offsets; the handler's own
    /// take one lane). Each partition belongs to one lane.
    pub lanes: usize,
    /// Messages buffered per lane, and set aside per partition.
    pub queue_capacity: usize,
    /// Attempts for a permanently failing message before it is dead-lettered.
    pub max_attempts: usize,
    /// First retry delay; doubles up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Wakes parked keys early.
    pub wakeups: Wakeups,
    /// Where the positions live: the group's (the default) or the handler's.
    pub offsets: OffsetStore,
    /// Transient failures of one run (or message) in a row are retried this
    /// long, then [`run`] ends with [`ConsumerError::GaveUp`], naming a
    /// partition of the run; `None`: forever.
    pub give_up_after: Option<Duration>,
}

/// Where a consumer's positions live.
#[derive(Debug, Clone, Default)]
pub enum OffsetStore {
    /// The consumer group's: the group assigns the partitions, and an
    /// offset is committed to Kafka once the handler committed what it
    /// covers (at least once: the handler's inbox absorbs a redelivery).
    #[default]
    Group,
    /// The handler's own, kept in the transaction of what they cover
    /// (exactly once): these partitions from these positions, assigned by
    /// hand (no group membership, nothing committed to Kafka). A message
    /// that is not yet is retried in place: parking it would need the
    /// handler to keep its position behind it.
    Handler(Vec<Start>),
}

/// Where a partition is read from, for [`OffsetStore::Handler`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub topic: String,
    pub partition: i32,
    /// The next offset to read; `None`: the beginning.
    pub offset: Option<i64>,
}

impl OffsetStore {
    fn is_group(&self) -> bool {
        matches!(self, OffsetStore::Group)
    }
}

impl ConsumerOptions {
    pub fn new(group: impl Into<String>, topics: Vec<String>) -> Self {
        Self::from_settings(&orderflow_config::ConsumerSettings::new(group), topics)
    }

    pub fn from_settings(settings: &orderflow_config::ConsumerSettings, topics: Vec<String>) -> Self {
        Self {
            group: settings.group.clone(),
            topics,
            batch_size: settings.batch_size,
            lanes: settings.lanes,
            queue_capacity: settings.queue_capacity,
            max_attempts: settings.max_attempts,
            base_backoff: Duration::from_millis(settings.base_backoff_ms),
            max_backoff: Duration::from_millis(settings.max_backoff_ms),
            wakeups: Wakeups::default(),
            offsets: OffsetStore::Group,
            give_up_after: None,
        }
    }

    /// How many lanes work the partitions. With the handler's own offsets,
    /// one: its positions are written in its transactions, which a read
    /// model fed by many topics wants few and large.
    fn lane_count(&self) -> usize {
        if self.offsets.is_group() { self.lanes.max(1) } else { 1 }
    }

    /// The lane of `partition`: the same one for as long as the process
    /// runs, so a partition revoked and assigned again queues behind what
    /// its lane still does with it. A topic's partitions go round the
    /// lanes in turn.
    fn lane_of(&self, (topic, partition): (&str, i32)) -> usize {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        topic.hash(&mut hasher);
        (hasher.finish() as usize).wrapping_add(partition.max(0) as usize) % self.lane_count()
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
    Subscribe { group: String, topics: Vec<String>, source: Box<KafkaError> },
    #[error("cannot assign group {group} its partitions: {source}")]
    Assign { group: String, source: Box<KafkaError> },
    #[error("lane {lane} of group {group} died: {cause}")]
    WorkerDied { group: String, lane: usize, cause: String },
    /// The handler said it cannot go on ([`HandlerError::Stop`]).
    #[error("the handler of {topic}[{partition}] in group {group} stopped: {source}")]
    Stopped { group: String, topic: String, partition: i32, source: Source },
    /// Transient failures lasted longer than [`ConsumerOptions::give_up_after`].
    #[error("{topic}[{partition}] in group {group} gave up after {seconds} s of transient failures; the last: {last}")]
    GaveUp { group: String, topic: String, partition: i32, seconds: u64, last: Box<HandlerError> },
}

/// A topic and one of its partitions.
pub(crate) type Partition = (String, i32);

/// Logs rebalances, sends a commit of what is stored before partitions go
/// away (so the next owner starts right after the last committed effect),
/// and starts a new epoch of each revoked partition at once, so the lanes
/// drop what they hold of it before the dispatcher reads anything more.
pub(crate) struct GroupContext {
    group: String,
    epochs: Arc<Epochs>,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            tracing::info!(group = %self.group, partitions = ?describe(partitions), "partitions revoked");
            // Sent, not awaited: this callback runs on a runtime thread, and
            // a synchronous commit blocks it until the coordinator answers,
            // for as long as the broker is restarting (seen: every thread
            // of a process stuck, timers included). A lost assignment (the
            // session expired, the broker restarted) cannot be committed to
            // at all. Whatever the next owner does not find committed it
            // handles again; the inbox makes that harmless.
            if !consumer.assignment_lost() {
                commit_stored(consumer, &self.group, CommitMode::Async);
            }
            self.epochs.revoke(partitions.elements().iter().map(|e| (e.topic().to_owned(), e.partition())));
            ASSIGNED.with_label_values(&[&self.group]).set(0);
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            tracing::info!(group = %self.group, partitions = ?describe(partitions), "partitions assigned");
            ASSIGNED.with_label_values(&[&self.group]).set(partitions.count() as i64);
        }
    }
}

fn describe(list: &TopicPartitionList) -> Vec<String> {
    list.elements().iter().map(|e| format!("{}[{}]", e.topic(), e.partition())).collect()
}

fn commit_stored<C: Consumer<X>, X: ConsumerContext>(consumer: &C, group: &str, mode: CommitMode) {
    match consumer.commit_consumer_state(mode) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(error) => tracing::warn!(%error, group, "offset commit failed"),
    }
}

/// A lane, as the dispatcher sees it.
struct Lane {
    queue: mpsc::Sender<Queued>,
    task: tokio::task::Id,
}

/// The lane that ran task `id` (a panicked task is known by its id only).
fn lane_of_task(lanes: &[Lane], id: tokio::task::Id) -> usize {
    lanes.iter().position(|lane| lane.task == id).unwrap_or_default()
}

/// A message on its way to its lane, with the assignment of its partition
/// it was read under.
struct Queued {
    message: InboundMessage,
    epoch: u64,
}

/// Counts each partition's assignments: a revoke starts a new one, and a
/// lane drops what it holds of an older one (queued or set aside) instead
/// of handling it for a partition another member may own now.
#[derive(Default)]
struct Epochs(Mutex<HashMap<Partition, u64>>);

impl Epochs {
    fn current(&self, topic: &str, partition: i32) -> u64 {
        let epochs = self.0.lock().unwrap_or_else(|p| p.into_inner());
        epochs.get(&(topic.to_owned(), partition)).copied().unwrap_or(0)
    }

    fn revoke(&self, partitions: impl IntoIterator<Item = Partition>) {
        let mut epochs = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for partition in partitions {
            *epochs.entry(partition).or_insert(0) += 1;
        }
    }
}

/// Consumes `options.topics` as `options.group` until `shutdown` fires,
/// then lets every lane finish its run in hand and commits.
pub async fn run<H: MessageHandler>(
    settings: &orderflow_config::KafkaSettings,
    options: &ConsumerOptions,
    handler: Arc<H>,
    shutdown: CancellationToken,
) -> Result<(), ConsumerError> {
    let mut config = crate::consumer_config(settings);
    config.set("group.id", &options.group);
    if options.offsets.is_group() {
        config.set("enable.auto.commit", "true").set("auto.commit.interval.ms", "500");
    } else {
        config.set("enable.auto.commit", "false");
    }
    let epochs = Arc::new(Epochs::default());
    let context = GroupContext { group: options.group.clone(), epochs: Arc::clone(&epochs) };
    let consumer: StreamConsumer<GroupContext> = config
        .create_with_context(context)
        .map_err(|source| ConsumerError::Create { group: options.group.clone(), source })?;
    let consumer = Arc::new(consumer);
    match &options.offsets {
        OffsetStore::Group => subscribe(&consumer, options)?,
        OffsetStore::Handler(starts) => assign(&consumer, options, starts)?,
    }
    tracing::info!(group = %options.group, topics = ?options.topics, lanes = options.lane_count(), "consumer started");

    let mut tasks: JoinSet<(usize, Option<Failure>)> = JoinSet::new();
    // Every lane stops at once: at shutdown, or when one of them died.
    let stop = CancellationToken::new();
    let lanes: Vec<Lane> = (0..options.lane_count())
        .map(|lane| spawn_lane(&mut tasks, lane, &consumer, options, &handler, &epochs, &stop))
        .collect();
    let outcome = loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            Some(ended) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                match ended {
                    Ok((_, (_, Some(failure)))) => break Err(failure.into_error(options)),
                    Ok((_, (lane, None))) => break Err(died(options, lane, "it stopped on its own".into())),
                    Err(join) => break Err(died(options, lane_of_task(&lanes, join.id()), join.to_string())),
                }
            }
            received = consumer.recv() => received,
        };
        let message = match received {
            Ok(m) => InboundMessage::from(&m),
            Err(error) => {
                tracing::warn!(%error, group = %options.group, "consume error");
                continue;
            }
        };
        let epoch = epochs.current(&message.topic, message.partition);
        let lane = &lanes[options.lane_of((&message.topic, message.partition))];
        // A full queue makes the dispatcher wait: backpressure, bounded memory.
        let sent = tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            sent = lane.queue.send(Queued { message, epoch }) => sent,
        };
        if sent.is_err() {
            // The lane is gone; the join arm above reports why.
            tracing::debug!(group = %options.group, "lane queue closed");
        }
    };
    // Shutdown (or a dead lane): every lane finishes its run in hand.
    stop.cancel();
    let mut panicked = None;
    let mut failed = None;
    while let Some(ended) = tasks.join_next_with_id().await {
        match ended {
            Err(join) => {
                panicked.get_or_insert_with(|| (lane_of_task(&lanes, join.id()), join.to_string()));
            }
            Ok((_, (_, Some(failure)))) => {
                failed.get_or_insert_with(|| failure.into_error(options));
            }
            Ok((_, (_, None))) => {}
        }
    }
    if options.offsets.is_group() {
        commit_stored(consumer.as_ref(), &options.group, CommitMode::Sync);
    }
    drop(lanes);
    // The lanes held clones; all have ended.
    close(consumer, &options.group).await;
    tracing::info!(group = %options.group, "consumer stopped");
    match (outcome, failed, panicked) {
        (Err(error), _, _) | (Ok(()), Some(error), _) => Err(error),
        (Ok(()), None, Some((lane, cause))) => Err(died(options, lane, cause)),
        (Ok(()), None, None) => Ok(()),
    }
}

/// How long a stopping consumer may take to leave its group.
const CLOSE_WITHIN: Duration = Duration::from_secs(10);

/// Closes the consumer — a final revoke (which commits) and a LeaveGroup,
/// so the group rebalances at once instead of waiting out the session
/// timeout — on a thread of its own, for at most [`CLOSE_WITHIN`].
/// librdkafka's close waits for the group coordinator, and after a broker
/// restart it can wait forever (rdkafka's `Drop` polls until it is closed);
/// a process must still stop. The thread is then left behind, and the
/// group rebalances after the session timeout instead.
async fn close(consumer: Arc<StreamConsumer<GroupContext>>, group: &str) {
    let (closed, done) = tokio::sync::oneshot::channel();
    let closing = std::thread::Builder::new().name("consumer-close".into()).spawn(move || {
        drop(consumer);
        let _ = closed.send(());
    });
    if let Err(error) = closing {
        tracing::warn!(%error, group, "cannot start a thread to close the consumer; not closing it");
        return;
    }
    if tokio::time::timeout(CLOSE_WITHIN, done).await.is_err() {
        tracing::warn!(
            group,
            "the consumer did not leave its group within {CLOSE_WITHIN:?}; stopping without it \
             (the group rebalances after the session timeout)"
        );
    }
}

fn subscribe(consumer: &StreamConsumer<GroupContext>, options: &ConsumerOptions) -> Result<(), ConsumerError> {
    let topics: Vec<&str> = options.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).map_err(|source| ConsumerError::Subscribe {
        group: options.group.clone(),
        topics: options.topics.clone(),
        source: Box::new(source),
    })
}

/// Assigns `starts` by hand, for [`OffsetStore::Handler`].
fn assign(
    consumer: &StreamConsumer<GroupContext>,
    options: &ConsumerOptions,
    starts: &[Start],
) -> Result<(), ConsumerError> {
    let failed = |source| ConsumerError::Assign { group: options.group.clone(), source: Box::new(source) };
    let mut list = TopicPartitionList::new();
    for start in starts {
        let offset = start.offset.map_or(Offset::Beginning, Offset::Offset);
        list.add_partition_offset(&start.topic, start.partition, offset).map_err(failed)?;
    }
    consumer.assign(&list).map_err(failed)?;
    ASSIGNED.with_label_values(&[&options.group]).set(list.count() as i64);
    Ok(())
}

fn died(options: &ConsumerOptions, lane: usize, cause: String) -> ConsumerError {
    ConsumerError::WorkerDied { group: options.group.clone(), lane, cause }
}

fn spawn_lane<H: MessageHandler>(
    tasks: &mut JoinSet<(usize, Option<Failure>)>,
    lane: usize,
    consumer: &Arc<StreamConsumer<GroupContext>>,
    options: &ConsumerOptions,
    handler: &Arc<H>,
    epochs: &Arc<Epochs>,
    stop: &CancellationToken,
) -> Lane {
    let (queue, inbox) = mpsc::channel(options.queue_capacity);
    let work = LaneWork {
        lane,
        consumer: Arc::clone(consumer),
        options: options.clone(),
        handler: Arc::clone(handler),
        epochs: Arc::clone(epochs),
        stop: stop.clone(),
    };
    let task = tasks.spawn(async move { (lane, work.run(inbox).await) }).id();
    Lane { queue, task }
}

/// The messages of a lane's partitions, each partition's in order.
struct LaneWork<H> {
    lane: usize,
    consumer: Arc<StreamConsumer<GroupContext>>,
    options: ConsumerOptions,
    handler: Arc<H>,
    epochs: Arc<Epochs>,
    stop: CancellationToken,
}

enum Outcome {
    Done,
    /// Not yet ([`HandlerError::Later`]): nothing of it was committed.
    Later(String),
    /// Its partition was revoked meanwhile: left for the next owner.
    Revoked,
    /// Told to stop.
    Stopped,
    /// The lane cannot go on; [`run`] ends with it.
    Failed(Failure),
}

/// Why a lane ended on its own, short of a panic, and at which partition.
enum Failure {
    /// The handler said so ([`HandlerError::Stop`]).
    Stop { at: Partition, source: Source },
    /// Transient failures outlasted [`ConsumerOptions::give_up_after`].
    GaveUp { at: Partition, seconds: u64, last: HandlerError },
}

impl Failure {
    fn stop(at: &InboundMessage, source: Source) -> Self {
        Failure::Stop { at: (at.topic.clone(), at.partition), source }
    }

    fn into_error(self, options: &ConsumerOptions) -> ConsumerError {
        let group = options.group.clone();
        match self {
            Failure::Stop { at: (topic, partition), source } => {
                ConsumerError::Stopped { group, topic, partition, source }
            }
            Failure::GaveUp { at: (topic, partition), seconds, last } => {
                ConsumerError::GaveUp { group, topic, partition, seconds, last: Box::new(last) }
            }
        }
    }
}

/// What one attempt at a run (retried while transient) came to.
enum Ran {
    Done,
    /// Split it here ([`HandlerError::Split`]).
    Split(usize),
    /// It failed as a whole: take it apart one message at a time.
    Apart,
    /// A partition of it was revoked while it was retried: go again
    /// without that partition's messages.
    Revoked,
    Ended(Outcome),
}

/// How long transient failures have gone on, against
/// [`ConsumerOptions::give_up_after`].
struct Failing(Option<tokio::time::Instant>);

impl Failing {
    fn new() -> Self {
        Self(None)
    }

    /// `error`, the latest transient failure (of the run `at` heads),
    /// back; or, once it is one too many, why the lane gives up.
    fn gives_up(
        &mut self,
        options: &ConsumerOptions,
        error: HandlerError,
        at: &InboundMessage,
    ) -> Result<HandlerError, Failure> {
        let since = *self.0.get_or_insert_with(tokio::time::Instant::now);
        match options.give_up_after {
            Some(limit) if since.elapsed() > limit => {
                Err(Failure::GaveUp { at: (at.topic.clone(), at.partition), seconds: limit.as_secs(), last: error })
            }
            _ => Ok(error),
        }
    }
}

/// What a lane holds of one of its partitions, in one assignment of it.
struct PartitionState {
    /// The assignment (see [`Epochs`]).
    epoch: u64,
    parked: Parked,
}

/// A lane's partitions.
#[derive(Default)]
struct Held(HashMap<Partition, PartitionState>);

impl Held {
    fn key(message: &InboundMessage) -> Partition {
        (message.topic.clone(), message.partition)
    }

    /// The partition state of `message`, taken in `epoch` if the lane
    /// holds nothing of it yet.
    fn state(&mut self, message: &InboundMessage, epoch: u64) -> &mut PartitionState {
        self.0.entry(Self::key(message)).or_insert_with(|| PartitionState { epoch, parked: Parked::default() })
    }

    fn holds(&self, message: &InboundMessage) -> bool {
        self.0.get(&Self::key(message)).is_some_and(|state| state.parked.holds(message))
    }

    /// The epoch `message` was admitted in.
    fn epoch(&self, message: &InboundMessage) -> Option<u64> {
        self.0.get(&Self::key(message)).map(|state| state.epoch)
    }

    fn parked_len(&self) -> usize {
        self.0.values().map(|state| state.parked.len()).sum()
    }

    fn next_due(&self) -> Option<tokio::time::Instant> {
        self.0.values().filter_map(|state| state.parked.next_due()).min()
    }

    fn wake(&mut self, key: Option<&str>) {
        self.0.values_mut().for_each(|state| state.parked.wake(key));
    }
}

/// Keys set aside because their first message could not be acted on yet,
/// and where the partition's offsets stand because of them.
#[derive(Default)]
struct Parked {
    keys: HashMap<String, ParkedKey>,
    /// The highest offset handled (or dead-lettered), parked ones aside.
    handled_through: Option<i64>,
    /// The offset last stored for commit; it never moves back.
    stored: Option<i64>,
}

/// One parked key: its messages in order, the first of which is not yet.
struct ParkedKey {
    messages: std::collections::VecDeque<InboundMessage>,
    due: tokio::time::Instant,
    delays: Box<dyn Iterator<Item = Duration> + Send>,
}

impl Parked {
    fn key(message: &InboundMessage) -> &str {
        message.key.as_deref().unwrap_or_default()
    }

    fn holds(&self, message: &InboundMessage) -> bool {
        self.keys.contains_key(Self::key(message))
    }

    /// Sets `message` aside behind the others of its key (or as the first
    /// of a newly parked key, due after the key's first backoff).
    fn park(&mut self, message: InboundMessage, options: &ConsumerOptions) {
        let key = Self::key(&message).to_owned();
        let entry = self.keys.entry(key).or_insert_with(|| {
            let mut delays = Box::new(options.backoff());
            let delay = delays.next().unwrap_or(options.max_backoff);
            ParkedKey { messages: Default::default(), due: tokio::time::Instant::now() + delay, delays }
        });
        entry.messages.push_back(message);
        PARKED.with_label_values(&[&options.group]).inc();
    }

    /// The first message of `key` went through: the next is its first
    /// now (none left: the key is no longer parked).
    fn went(&mut self, key: &str, options: &ConsumerOptions) {
        if let Some(parked) = self.keys.get_mut(key) {
            parked.messages.pop_front();
            if parked.messages.is_empty() {
                self.keys.remove(key);
            }
            PARKED.with_label_values(&[&options.group]).dec();
        }
    }

    /// The first message of `key` is still not yet: try again after the
    /// key's next backoff.
    fn not_yet(&mut self, key: &str, options: &ConsumerOptions) {
        if let Some(parked) = self.keys.get_mut(key) {
            parked.due = tokio::time::Instant::now() + parked.delays.next().unwrap_or(options.max_backoff);
        }
    }

    /// Messages set aside, over all keys.
    fn len(&self) -> usize {
        self.keys.values().map(|k| k.messages.len()).sum()
    }

    /// Makes `key` due now, if it is parked; `None`: every parked key.
    fn wake(&mut self, key: Option<&str>) {
        let now = tokio::time::Instant::now();
        match key {
            Some(key) => {
                if let Some(parked) = self.keys.get_mut(key) {
                    parked.due = now;
                }
            }
            None => self.keys.values_mut().for_each(|parked| parked.due = now),
        }
    }

    /// When the earliest parked key is due.
    fn next_due(&self) -> Option<tokio::time::Instant> {
        self.keys.values().map(|k| k.due).min()
    }

    /// The offset that may be stored now: everything handled, but nothing
    /// at or after a parked message (a restart must deliver it again).
    fn storable(&self) -> Option<i64> {
        let first_parked = self.keys.values().filter_map(|k| k.messages.front()).map(|m| m.offset).min();
        match (self.handled_through, first_parked) {
            (Some(done), Some(parked)) if parked <= done => (parked > 0).then_some(parked - 1),
            (done, _) => done,
        }
        .filter(|offset| self.stored.is_none_or(|stored| *offset > stored))
    }
}

impl<H: MessageHandler> LaneWork<H> {
    /// Works until told to stop; why it could not go on, if it could not.
    async fn run(&self, inbox: mpsc::Receiver<Queued>) -> Option<Failure> {
        let mut held = Held::default();
        let failure = self.work(inbox, &mut held).await;
        // Left for the partitions' next owner (nothing of them committed).
        PARKED.with_label_values(&[&self.options.group]).sub(held.parked_len() as i64);
        failure
    }

    async fn work(&self, mut inbox: mpsc::Receiver<Queued>, held: &mut Held) -> Option<Failure> {
        let mut woken = self.options.wakeups.0.subscribe();
        loop {
            match self.retry_parked(held).await {
                Outcome::Stopped => return None,
                Outcome::Failed(failure) => return Some(failure),
                Outcome::Done | Outcome::Later(_) | Outcome::Revoked => {}
            }
            let due = held.next_due();
            let first = tokio::select! {
                _ = self.stop.cancelled() => return None,
                next = inbox.recv() => match next { Some(m) => m, None => return None },
                _ = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => continue,
                key = woken.recv(), if due.is_some() => {
                    // Lagged: some keys were missed, so wake them all.
                    held.wake(key.as_deref().ok());
                    // Every wake-up already sent, so the keys go in one run.
                    loop {
                        match woken.try_recv() {
                            Ok(key) => held.wake(Some(&key)),
                            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => held.wake(None),
                            Err(_) => break,
                        }
                    }
                    continue;
                }
            };
            let mut queued = vec![first];
            while queued.len() < self.options.batch_size {
                match inbox.try_recv() {
                    Ok(m) => queued.push(m),
                    Err(_) => break,
                }
            }
            let batch = self.admit(queued, held);
            let Some(head) = batch.first() else { continue };
            let span = tracing::info_span!(
                "batch",
                group = %self.options.group,
                lane = self.lane,
                topic = %head.topic,
                partition = head.partition,
                first_offset = head.offset,
                messages = batch.len(),
            );
            match self.process_batch(batch, held).instrument(span).await {
                Outcome::Stopped => return None,
                Outcome::Failed(failure) => return Some(failure),
                Outcome::Done | Outcome::Later(_) | Outcome::Revoked => {}
            }
        }
    }

    /// The messages of `queued` read under their partition's current
    /// assignment; what the lane held of an older one is dropped.
    fn admit(&self, queued: Vec<Queued>, held: &mut Held) -> Vec<InboundMessage> {
        let mut batch = Vec::with_capacity(queued.len());
        for Queued { message, epoch } in queued {
            if self.revoked_since(&message, epoch) {
                tracing::debug!(topic = %message.topic, partition = message.partition, offset = message.offset,
                                "dropped: its partition was revoked");
                continue;
            }
            let state = held.state(&message, epoch);
            if state.epoch != epoch {
                PARKED.with_label_values(&[&self.options.group]).sub(state.parked.len() as i64);
                *state = PartitionState { epoch, parked: Parked::default() };
            }
            batch.push(message);
        }
        batch
    }

    /// Drops what the lane holds of partitions revoked since.
    fn forget_revoked(&self, held: &mut Held) {
        held.0.retain(|(topic, partition), state| {
            let current = state.epoch == self.epochs.current(topic, *partition);
            if !current {
                PARKED.with_label_values(&[&self.options.group]).sub(state.parked.len() as i64);
            }
            current
        });
    }

    /// Whether `message`'s partition was revoked after `epoch` began.
    fn revoked_since(&self, message: &InboundMessage, epoch: u64) -> bool {
        epoch != self.epochs.current(&message.topic, message.partition)
    }

    /// Whether `message`'s partition is still in the assignment it was
    /// admitted in.
    fn is_current(&self, held: &Held, message: &InboundMessage) -> bool {
        held.epoch(message).is_some_and(|epoch| !self.revoked_since(message, epoch))
    }

    /// Records `message` as handled and, when the group keeps the offsets,
    /// stores what may be committed of its partition.
    fn handled(&self, held: &mut Held, message: &InboundMessage) {
        let Some(state) = held.0.get_mut(&Held::key(message)) else { return };
        let parked = &mut state.parked;
        parked.handled_through = Some(parked.handled_through.map_or(message.offset, |done| done.max(message.offset)));
        if !self.options.offsets.is_group() {
            return;
        }
        let Some(offset) = parked.storable() else { return };
        crate::failpoint::hit("consumer.after_commit");
        // librdkafka commits `offset + 1` for a stored offset: store the
        // message's own offset (adding one here skips a message at every
        // rebalance; the group test catches that).
        tracing::debug!(topic = %message.topic, partition = message.partition, offset, "storing offset");
        match self.consumer.store_offset(&message.topic, message.partition, offset) {
            Ok(()) => parked.stored = Some(offset),
            // The partition was revoked meanwhile: its next owner
            // redelivers the message and the inbox absorbs it.
            Err(error) => tracing::info!(%error, offset, "offset not stored (partition revoked)"),
        }
    }

    /// Sets `message` aside behind its key.
    fn park(&self, held: &mut Held, message: InboundMessage) {
        let epoch = self.epochs.current(&message.topic, message.partition);
        held.state(&message, epoch).parked.park(message, &self.options);
    }

    /// Whether a message of `message`'s partition that is not yet may be
    /// set aside now.
    fn may_park(&self, held: &Held, message: &InboundMessage) -> bool {
        self.options.offsets.is_group()
            && held.0.get(&Held::key(message)).is_none_or(|state| state.parked.len() < self.options.queue_capacity)
    }

    /// Handles `batch` in runs: the whole of it, then — where a run fails —
    /// the parts the handler split it into, or one message at a time. A
    /// message of a parked key waits behind it (per-key order).
    async fn process_batch(&self, batch: Vec<InboundMessage>, held: &mut Held) -> Outcome {
        let mut todo = std::collections::VecDeque::from([batch]);
        while let Some(run) = todo.pop_front() {
            let (waiting, mut run): (Vec<_>, Vec<_>) =
                run.into_iter().filter(|m| self.is_current(held, m)).partition(|m| held.holds(m));
            for message in waiting {
                self.park(held, message);
            }
            if let [message] = run.as_slice() {
                let epoch = held.epoch(message).unwrap_or_default();
                match self.process_one(message, self.may_park(held, message), epoch).await {
                    Outcome::Done => self.handled(held, message),
                    Outcome::Later(why) => {
                        tracing::info!(topic = %message.topic, partition = message.partition, offset = message.offset,
                                       key = ?message.key, %why, "not yet; its key waits, the partition goes on");
                        self.park(held, message.clone());
                    }
                    Outcome::Revoked => {}
                    ended @ (Outcome::Stopped | Outcome::Failed(_)) => return ended,
                }
                continue;
            }
            if run.is_empty() {
                continue;
            }
            match self.attempt_run(&run, held).await {
                Ran::Done => {}
                Ran::Ended(outcome) => return outcome,
                Ran::Revoked => todo.push_front(run),
                Ran::Split(position) => {
                    tracing::info!(topic = %run[position].topic, partition = run[position].partition,
                                   offset = run[position].offset, "the run failed at one message; splitting it there");
                    let after = run.split_off(position + 1);
                    let failed = run.pop().expect("the failing message is in the run");
                    todo.push_front(after);
                    todo.push_front(vec![failed]);
                    todo.push_front(run);
                }
                Ran::Apart => {
                    for message in run.into_iter().rev() {
                        todo.push_front(vec![message]);
                    }
                }
            }
        }
        Outcome::Done
    }

    /// Hands the handler a run of several messages, again while it fails
    /// transiently, and records what it did.
    async fn attempt_run(&self, run: &[InboundMessage], held: &mut Held) -> Ran {
        let mut delays = self.options.backoff();
        let mut failing = Failing::new();
        loop {
            match self.handler.handle(run).await {
                Ok(handled) => {
                    for (position, message) in run.iter().enumerate() {
                        match handled.waits(position) {
                            Some(why) => {
                                tracing::debug!(topic = %message.topic, partition = message.partition,
                                                offset = message.offset, key = ?message.key, %why, "not yet; its key waits");
                                self.park(held, message.clone());
                            }
                            None => {
                                HANDLED.with_label_values(&[&self.options.group, &message.topic, "ok"]).inc();
                                self.handled(held, message);
                            }
                        }
                    }
                    return Ran::Done;
                }
                Err(HandlerError::Stop(source)) => {
                    return Ran::Ended(Outcome::Failed(Failure::stop(&run[0], source)));
                }
                Err(HandlerError::Split { position, error }) if position < run.len() => {
                    tracing::info!(%error, position, "a message of the run failed");
                    return Ran::Split(position);
                }
                Err(error @ HandlerError::Transient(_)) => {
                    let error = match failing.gives_up(&self.options, error, &run[0]) {
                        Ok(error) => error,
                        Err(failure) => return Ran::Ended(Outcome::Failed(failure)),
                    };
                    tracing::warn!(%error, "transient failure; retrying the run");
                    if !self.pause(delays.next()).await {
                        return Ran::Ended(Outcome::Stopped);
                    }
                    if !run.iter().all(|m| self.is_current(held, m)) {
                        return Ran::Revoked;
                    }
                }
                Err(error) => {
                    tracing::info!(%error, "the run failed; handling its messages one by one");
                    return Ran::Apart;
                }
            }
        }
    }

    /// Drops what the lane holds of revoked partitions, then tries the
    /// first message of every parked key that is due, together in one
    /// run, and the rest of a key's messages once its first went through;
    /// a run that fails goes key by key.
    async fn retry_parked(&self, held: &mut Held) -> Outcome {
        loop {
            let now = tokio::time::Instant::now();
            self.forget_revoked(held);
            let mut run: Vec<InboundMessage> = held
                .0
                .values()
                .flat_map(|state| state.parked.keys.values())
                .filter(|k| k.due <= now)
                .filter_map(|k| k.messages.front().cloned())
                .collect();
            if run.len() < 2 {
                break;
            }
            run.sort_by(|a, b| (&a.topic, a.partition, a.offset).cmp(&(&b.topic, b.partition, b.offset)));
            let Ok(handled) = self.handler.handle(&run).await else { break };
            for (position, message) in run.iter().enumerate() {
                let key = Parked::key(message);
                let Some(state) = held.0.get_mut(&Held::key(message)) else { continue };
                if let Some(why) = handled.waits(position) {
                    tracing::debug!(topic = %message.topic, partition = message.partition, offset = message.offset,
                                    %why, "still not yet");
                    state.parked.not_yet(key, &self.options);
                    continue;
                }
                state.parked.went(key, &self.options);
                HANDLED.with_label_values(&[&self.options.group, &message.topic, "ok"]).inc();
                self.handled(held, message);
            }
        }
        self.retry_parked_one_by_one(held).await
    }

    /// [`Self::retry_parked`], one message at a time.
    async fn retry_parked_one_by_one(&self, held: &mut Held) -> Outcome {
        let now = tokio::time::Instant::now();
        let due: Vec<(Partition, String)> = held
            .0
            .iter()
            .flat_map(|(partition, state)| {
                state.parked.keys.iter().filter(|(_, k)| k.due <= now).map(|(key, _)| (partition.clone(), key.clone()))
            })
            .collect();
        for (partition, key) in due {
            while let Some((epoch, message)) = held.0.get(&partition).and_then(|state| {
                let first = state.parked.keys.get(&key).and_then(|k| k.messages.front()).cloned();
                first.map(|message| (state.epoch, message))
            }) {
                match self.process_one(&message, true, epoch).await {
                    Outcome::Done => {
                        if let Some(state) = held.0.get_mut(&partition) {
                            state.parked.went(&key, &self.options);
                        }
                        self.handled(held, &message);
                    }
                    Outcome::Later(why) => {
                        tracing::debug!(topic = %message.topic, partition = message.partition,
                                        offset = message.offset, %why, "still not yet");
                        if let Some(state) = held.0.get_mut(&partition) {
                            state.parked.not_yet(&key, &self.options);
                        }
                        break;
                    }
                    Outcome::Revoked => break,
                    ended @ (Outcome::Stopped | Outcome::Failed(_)) => return ended,
                }
            }
        }
        Outcome::Done
    }

    /// Waits out a backoff delay; `false` if told to stop meanwhile.
    async fn pause(&self, delay: Option<Duration>) -> bool {
        let delay = delay.unwrap_or(self.options.max_backoff);
        tokio::select! {
            _ = self.stop.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }

    /// Handles one message, admitted in its partition's `epoch`: done (or
    /// dead-lettered), stopped, failed, revoked or — when `may_park` — not
    /// yet. Without room to park, a message that is not yet is retried in
    /// place, as the whole partition did before.
    async fn process_one(&self, message: &InboundMessage, may_park: bool, epoch: u64) -> Outcome {
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
        self.retry_then_dead_letter(message, may_park, epoch).instrument(span).await
    }

    async fn retry_then_dead_letter(&self, message: &InboundMessage, may_park: bool, epoch: u64) -> Outcome {
        let mut delays = self.options.backoff();
        let mut failing = Failing::new();
        let mut attempts = 0;
        loop {
            if self.revoked_since(message, epoch) {
                return Outcome::Revoked;
            }
            let error = match self.handler.handle(std::slice::from_ref(message)).await {
                Ok(handled) => match handled.waits(0) {
                    None => {
                        HANDLED.with_label_values(&[&self.options.group, &message.topic, "ok"]).inc();
                        return Outcome::Done;
                    }
                    Some(why) if may_park => return Outcome::Later(why.to_owned()),
                    Some(why) => HandlerError::Later(why.into()),
                },
                Err(error) => error.into_message_error(),
            };
            let error = match error {
                HandlerError::Later(why) if may_park => return Outcome::Later(why.to_string()),
                HandlerError::Stop(source) => return Outcome::Failed(Failure::stop(message, source)),
                error => error,
            };
            if error.is_transient() {
                let error = match failing.gives_up(&self.options, error, message) {
                    Ok(error) => error,
                    Err(failure) => return Outcome::Failed(failure),
                };
                tracing::warn!(%error, "transient failure; retrying");
            } else {
                attempts += 1;
                if attempts >= self.options.max_attempts {
                    tracing::error!(%error, attempts, "message keeps failing; dead-lettering it");
                    return self.dead_letter(message, &error, epoch).await;
                }
                tracing::warn!(%error, attempts, "message failed; retrying");
            }
            if !self.pause(delays.next()).await {
                return Outcome::Stopped;
            }
        }
    }

    /// Dead-letters `message`, again while that fails, unless its
    /// partition is revoked meanwhile (the next owner decides).
    async fn dead_letter(&self, message: &InboundMessage, reason: &HandlerError, epoch: u64) -> Outcome {
        let mut delays = self.options.backoff();
        let mut failing = Failing::new();
        loop {
            if self.revoked_since(message, epoch) {
                return Outcome::Revoked;
            }
            match self.handler.dead_letter(message, reason).await {
                Ok(()) => {
                    HANDLED.with_label_values(&[&self.options.group, &message.topic, "dead_lettered"]).inc();
                    return Outcome::Done;
                }
                Err(HandlerError::Stop(source)) => return Outcome::Failed(Failure::stop(message, source)),
                Err(error) => match failing.gives_up(&self.options, error, message) {
                    Ok(error) => tracing::warn!(%error, "dead-lettering failed; retrying"),
                    Err(failure) => return Outcome::Failed(failure),
                },
            }
            if !self.pause(delays.next()).await {
                return Outcome::Stopped;
            }
        }
    }
}
