//! The transactional message handler: the part of every domain service
//! that is not its rules.

use std::future::Future;
use std::sync::Arc;

use std::collections::HashSet;

use orderflow_bus::{Cause, CommandOutcome, Handled, HandlerError, Headers, InboundMessage, MessageHandler, Settled};
use orderflow_config::{Domain, KafkaSettings, ServiceSettings};
pub use orderflow_contracts::Refusal;
use orderflow_contracts::outcomes::CommandRejected;
use orderflow_contracts::{AnyMessage, Codec, Family, Topic};
use orderflow_outbox::inbox::{self, Entry, Outcome};
use orderflow_outbox::{OutboxMessage, classify, enqueue};
use orderflow_telemetry::trace::{self, KeyValue};
use sqlx::{PgConnection, PgPool};
use tracing::Instrument;

/// A message a service decided to publish, and on which topic.
#[derive(Debug)]
pub struct Emit {
    pub topic: Topic,
    pub message: Box<dyn AnyMessage>,
}

impl Emit {
    pub fn new(topic: Topic, message: impl AnyMessage + 'static) -> Self {
        Self { topic, message: Box::new(message) }
    }
}

/// What a rule decided about one input that it may act on (a refusal or a
/// "not yet" is the `Err` of [`Decided`]).
#[derive(Debug)]
pub enum Decision<T> {
    /// Save `state` and publish `events`.
    Changed { state: T, events: Vec<Emit> },
    /// Change and publish nothing, and why (a saga event that came too
    /// late, a stale duplicate).
    Unchanged(&'static str),
}

/// What a rule returns: a [`Decision`], or why the input is refused or
/// must wait ([`DomainError::Refused`], [`DomainError::NotYet`]).
pub type Decided<T> = Result<Decision<T>, DomainError>;

/// Why a service could not act on an input.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("refused ({}): {}", .0.reason, .0.message)]
    Refused(Refusal),
    /// The input may be acted on later, not yet (an order for a customer
    /// whose registration this service has not seen yet): nothing of it is
    /// committed, its key waits and is retried with backoff while the other
    /// keys of its partition flow on. The service bounds how long it
    /// answers this (e.g. by the input's age) and then decides.
    #[error("not yet: {0}")]
    NotYet(String),
    /// The input needs a call to an outside system first
    /// ([`crate::effects::outcome`] asked for it): the kit records the call,
    /// parks the input's key like [`DomainError::NotYet`], and the effector
    /// makes the call outside this transaction and wakes the key.
    #[error("waiting for {0}")]
    Awaits(crate::effects::EffectRequest),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<Refusal> for DomainError {
    fn from(refusal: Refusal) -> Self {
        DomainError::Refused(refusal)
    }
}

/// One decoded input with what the service may want to know about it.
#[derive(Debug)]
pub struct Inbound<'a, M> {
    /// What it says, as the service's rules read it ([`Service::Message`]).
    pub message: &'a M,
    pub headers: &'a Headers,
    /// Where it came from (the topic with any test prefix).
    pub source: &'a InboundMessage,
}

/// An input as the kit holds it: what the service sees, or why it was
/// refused at decode, and what the kit needs to answer for it.
#[derive(Debug)]
struct Input<'a, M> {
    message: Result<M, Refusal>,
    headers: Headers,
    source: &'a InboundMessage,
    /// Its `message_type`.
    name: &'static str,
    /// Its aggregate id (the Kafka key).
    key: String,
    /// Whether someone waits for its outcome.
    is_command: bool,
}

/// A domain service: its rules, in terms of messages in and messages out.
pub trait Service: Send + Sync + Sized + 'static {
    /// Its own settings (`ORDERFLOW_DOMAIN__...`), its name and defaults.
    type Domain: Domain;
    /// The messages it consumes (commands, or events it reacts to), as
    /// they travel: one family, which may span several topics.
    type Input: Family + Send + Sync + std::fmt::Debug;
    /// The same, as its rules read them: ids and values parsed once into
    /// domain types, when the kit decodes a message. A conversion that
    /// fails refuses the input (a command is rejected, an event
    /// dead-lettered) before the service sees it.
    type Message: TryFrom<Self::Input, Error = Refusal> + Send + Sync + std::fmt::Debug;
    /// The topics it publishes to; created at start-up if missing, each
    /// with its dead-letter topic.
    const PUBLISHES: &'static [Topic];
    /// Its own event topic (one of [`Service::PUBLISHES`]): where the kit
    /// publishes the [`CommandRejected`] of each command it refuses.
    const EVENTS: Topic;
    /// The topics it consumes (created too, so start-up order never matters).
    const CONSUMES: &'static [Topic];
    /// Its part in crypto-shredding: by default it handles nobody's
    /// personal data (sealed values reach it withheld).
    const PERSONAL_DATA: crate::PersonalData = crate::PersonalData::None;

    /// Its own migrations (its state; the outbox and inbox come from
    /// `orderflow_outbox::migrate`).
    fn migrator() -> sqlx::migrate::Migrator;

    /// Builds the service from its settings.
    fn new(settings: &ServiceSettings<Self::Domain>) -> Self;

    /// Acts on one input inside the caller's transaction (which also holds
    /// its inbox row and will hold its outbox rows) and returns what to
    /// publish, or why it refuses it ([`DomainError::Refused`]: the kit
    /// undoes what the input changed and settles a command as rejected).
    /// Keep the decision itself a pure function of the loaded state and
    /// the input, so it can be tested without a database.
    fn handle(
        &self,
        tx: &mut PgConnection,
        input: &Inbound<'_, Self::Message>,
    ) -> impl Future<Output = Result<Vec<Emit>, DomainError>> + Send;

    /// Whether `message` asks anything of the service. One that does not (an
    /// event of a type it reads past, `Input::Other` by convention) is
    /// acknowledged without a transaction: no inbox row, no handling. A
    /// topic carries many types a consumer ignores (the inventory reads
    /// four of the order's seven); under load that bookkeeping was a share
    /// of every consumer's work. The default: every message.
    fn acts_on(&self, _message: &Self::Message) -> bool {
        true
    }

    /// Takes, once per transaction and before any of its inputs is
    /// handled, the row locks those inputs will take, in one fixed order.
    /// A service whose inputs each lock rows of several aggregates (an
    /// order's products) needs it: each input locking its own rows in
    /// order is not enough, since a run holds one input's locks while it
    /// takes the next one's, and two such runs deadlock. The default takes
    /// none (inputs that lock only their own key's rows cannot cross).
    fn prepare(
        &self,
        _tx: &mut PgConnection,
        _messages: &[&Self::Message],
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send {
        async { Ok(()) }
    }

    /// Makes one call to an outside system that an input asked for
    /// ([`crate::effects::outcome`]), outside any transaction; the kit
    /// bounds its time and attempts (`effects.*` settings) and records its
    /// answer for the input. Services that call nothing keep the default.
    fn perform(
        &self,
        effect: &crate::effects::Effect,
    ) -> impl Future<Output = Result<serde_json::Value, crate::effects::EffectError>> + Send {
        let kind = effect.kind.clone();
        async move { Err(crate::effects::EffectError(format!("this service makes no `{kind}` calls"))) }
    }

    /// The calls to outside systems `message` will need, when the service
    /// can name them from the message alone (an order's authorization, from
    /// the placed order). The kit records and starts them before the run's
    /// transaction and waits for their first attempt up to
    /// `effects.wait_ms` (0: neither starts nor waits), so a healthy
    /// outside system costs one handling of the input; the service still
    /// asks for each answer with [`crate::effects::outcome`], and one not
    /// there yet parks the input as usual. Calls that need the loaded state
    /// are asked for there alone.
    fn calls(&self, _message: &Self::Message) -> Vec<crate::effects::EffectRequest> {
        Vec::new()
    }

    /// How often [`Service::due`] runs; `None` (the default): never.
    fn schedule(&self) -> Option<std::time::Duration> {
        None
    }

    /// Work that falls due by time rather than by a message (a payment
    /// deadline passing), done in a transaction of its own that also holds
    /// the outbox rows of what it returns. Replicas run it concurrently:
    /// claim rows with `FOR UPDATE SKIP LOCKED`. Each [`Scheduled`] names
    /// the message its events are caused by, for their headers.
    fn due(&self, _tx: &mut PgConnection) -> impl Future<Output = Result<Vec<Scheduled>, DomainError>> + Send {
        async { Ok(Vec::new()) }
    }
}

/// Events of scheduled work and the message they count as caused by (for
/// their correlation id, causation id, trace and actor).
#[derive(Debug)]
pub struct Scheduled {
    pub cause: Cause,
    pub emits: Vec<Emit>,
}

/// Runs a [`Service`] as the consumer's [`MessageHandler`].
#[derive(Debug)]
pub struct TransactionalHandler<S> {
    pub service: Arc<S>,
    pub pool: PgPool,
    pub codec: Arc<Codec>,
    pub kafka: KafkaSettings,
    /// The consumer group, recorded on dead letters.
    pub group: String,
    /// Where the calls its inputs await are recorded.
    pub(crate) requests: crate::effects::Requests,
    /// How long a run waits for the calls its service named up front
    /// ([`Service::calls`]) before its transaction.
    pub(crate) call_wait: std::time::Duration,
    /// Whether parts start with a savepoint per input: set when a part had
    /// to go again with them, cleared by one that undid nothing alone. A
    /// service whose inputs often wait (payments, for their calls) keeps
    /// them; the others run without.
    pub(crate) careful: std::sync::atomic::AtomicBool,
}

impl<S: Service> TransactionalHandler<S> {
    async fn decode<'m>(&self, message: &'m InboundMessage) -> Result<Input<'m, S::Message>, HandlerError> {
        let headers = message.headers()?;
        let decoded: S::Input = self.codec.decode(message.payload.as_deref()).await.map_err(HandlerError::from)?;
        if decoded.name() != headers.message_type {
            return Err(HandlerError::Invalid(
                format!(
                    "header message_type {} does not match the payload's schema ({})",
                    headers.message_type,
                    decoded.name()
                )
                .into(),
            ));
        }
        let key = decoded.key();
        if message.key.as_deref() != Some(key.as_str()) {
            return Err(HandlerError::Invalid(
                format!("key {:?} is not the message's aggregate id {key}: per-entity order cannot hold", message.key)
                    .into(),
            ));
        }
        let (name, is_command) = (decoded.name(), decoded.is_command());
        Ok(Input { message: S::Message::try_from(decoded), headers, source: message, name, key, is_command })
    }

    /// Appends the outbox rows of `emits`, caused by `cause` (and created
    /// in span `from`, the processing of their cause, when there is one),
    /// each with the outcome of the command that caused them, if one did.
    async fn render(
        &self,
        cause: &Cause,
        from: Option<&tracing::Span>,
        emits: &[Emit],
        outcome: Option<&CommandOutcome>,
        out: &mut Vec<OutboxMessage>,
    ) -> Result<(), HandlerError> {
        for emit in emits {
            let topic = self.kafka.topic(emit.topic.name);
            let key = emit.message.key();
            let mut headers = cause.caused(emit.message.name());
            orderflow_bus::trace::creating(&mut headers, &cause.traceparent, &topic, &key, from);
            let mut headers = headers.to_pairs();
            if let Some(outcome) = outcome {
                outcome.append_to(&mut headers, &key);
            }
            out.push(OutboxMessage {
                topic,
                key,
                payload: emit.message.encode(&self.codec).await.map_err(HandlerError::from)?,
                headers,
            });
        }
        Ok(())
    }

    /// Appends what `input` decided: its events, stamped with the outcome
    /// when it is a command (the highest version its events carry).
    async fn decided(
        &self,
        input: &Input<'_, S::Message>,
        span: &tracing::Span,
        emits: &[Emit],
        out: &mut Vec<OutboxMessage>,
    ) -> Result<(), HandlerError> {
        if !input.is_command {
            return self.render(&input.headers.cause(), Some(span), emits, None, out).await;
        }
        if emits.is_empty() {
            // Its status would stay pending: a service must answer each
            // command with an event or a refusal. Dead-lettered instead
            // (after retries), which settles it as failed.
            return Err(HandlerError::Permanent(
                format!("{} decided nothing: a command is answered by an event or a refusal", input.name).into(),
            ));
        }
        let version = emits.iter().filter_map(|e| e.message.version()).max();
        let outcome = self.outcome(input, Settled::Succeeded { version });
        self.render(&input.headers.cause(), Some(span), emits, Some(&outcome), out).await
    }

    fn outcome(&self, input: &Input<'_, S::Message>, settled: Settled) -> CommandOutcome {
        CommandOutcome { command_type: input.name.to_owned(), command_key: input.key.clone(), settled }
    }

    /// Appends the [`CommandRejected`] of a refused command; an input that
    /// is not a command fails permanently instead (retried, then
    /// dead-lettered: nobody waits for its answer, and it is never dropped
    /// silently).
    async fn rejected(
        &self,
        input: &Input<'_, S::Message>,
        span: &tracing::Span,
        refusal: &Refusal,
        out: &mut Vec<OutboxMessage>,
    ) -> Result<(), HandlerError> {
        let name = input.name;
        if !input.is_command {
            return Err(HandlerError::Permanent(
                format!("{name} refused ({}): {}", refusal.reason, refusal.message).into(),
            ));
        }
        tracing::info!(reason = %refusal.reason, message = %refusal.message, message_id = %input.headers.message_id, "command refused");
        let rejection = CommandRejected::new(
            input.headers.message_id.to_string(),
            name,
            input.key.clone(),
            refusal.reason,
            refusal.message.clone(),
        );
        let settled =
            Settled::Rejected { reason: refusal.reason.as_str().to_owned(), message: refusal.message.clone() };
        let outcome = self.outcome(input, settled);
        self.render(&input.headers.cause(), Some(span), &[Emit::new(S::EVENTS, rejection)], Some(&outcome), out).await
    }

    /// Records `input` as handled and publishes its rejection, in a
    /// transaction of its own (the refused attempt's was rolled back).
    async fn refuse(
        &self,
        input: &Input<'_, S::Message>,
        span: &tracing::Span,
        refusal: &Refusal,
    ) -> Result<(), HandlerError> {
        let mut outgoing = Vec::with_capacity(1);
        self.rejected(input, span, refusal, &mut outgoing).await?;
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let id = input.headers.message_id.to_string();
        if inbox::claim(&mut tx, &id, &input.source.topic, input.name, Outcome::Handled).await.map_err(classify)? {
            enqueue(&mut tx, &outgoing).await.map_err(classify)?;
        }
        tx.commit().await.map_err(classify)
    }
}

/// How a part of a run went.
enum Part {
    Committed,
    /// An input must be undone alone (refused, or waiting) and the part ran
    /// without savepoints: nothing was committed; it goes again with them.
    NeedsSavepoints,
}

impl<S: Service> TransactionalHandler<S> {
    /// Handles `inputs` (the run's from position `first` on, of `total`)
    /// in one transaction. An input that must wait (not yet, or for a call)
    /// is undone alone and left for later with its key, when the run has
    /// more than it (a run of one waits as a whole instead). An input that
    /// fails splits the run there ([`HandlerError::Split`]).
    ///
    /// Most runs undo nothing, so a part first runs without a savepoint per
    /// input; the first input that must be undone alone rolls it back, and
    /// it runs again with them. A savepoint costs two round trips per
    /// input, and makes every row version its input writes a
    /// subtransaction's, which each later reader of a hot row (a product
    /// every order names) pays for in its visibility checks. Once a part
    /// had to go again, parts start with savepoints ([`Self::careful`])
    /// until one undoes nothing alone.
    async fn handle_part(
        &self,
        inputs: &[Input<'_, S::Message>],
        first: usize,
        total: usize,
        handled: &mut Handled,
        waiting: &mut HashSet<Waiting>,
    ) -> Result<(), HandlerError> {
        use std::sync::atomic::Ordering::Relaxed;
        let alone = total == 1;
        if !alone && !self.careful.load(Relaxed) {
            match self.attempt_part(inputs, first, total, handled, waiting, false).await? {
                Part::Committed => return Ok(()),
                Part::NeedsSavepoints => self.careful.store(true, Relaxed),
            }
        }
        let undone = handled.later_count();
        match self.attempt_part(inputs, first, total, handled, waiting, true).await? {
            // Nothing undone alone this time: the next run tries without.
            Part::Committed if handled.later_count() == undone && !alone => {
                self.careful.store(false, Relaxed);
                Ok(())
            }
            Part::Committed => Ok(()),
            Part::NeedsSavepoints => unreachable!("an attempt with savepoints undoes inputs alone"),
        }
    }

    /// One attempt of [`Self::handle_part`]; `savepoints` says whether each
    /// input runs in one (an input of a run of one never needs it: it is
    /// undone with its transaction). Nothing of `handled` and `waiting`
    /// changes unless the part commits.
    async fn attempt_part(
        &self,
        inputs: &[Input<'_, S::Message>],
        first: usize,
        total: usize,
        handled: &mut Handled,
        waiting: &mut HashSet<Waiting>,
        savepoints: bool,
    ) -> Result<Part, HandlerError> {
        // A refused conversion acts too: it is rejected or dead-lettered.
        let acts = |input: &Input<'_, S::Message>| input.message.as_ref().map_or(true, |m| self.service.acts_on(m));
        if !inputs.iter().any(acts) {
            return Ok(Part::Committed); // nothing to do, nothing to record
        }
        let ids: Vec<String> = inputs.iter().map(|i| i.headers.message_id.to_string()).collect();
        let entries: Vec<Entry<'_>> = inputs
            .iter()
            .zip(&ids)
            .filter(|(i, _)| acts(i))
            .map(|(i, id)| Entry { message_id: id, topic: &i.source.topic, message_type: i.name })
            .collect();
        let alone = total == 1;
        // What this attempt leaves for later, applied once it commits.
        let mut now_waiting = waiting.clone();
        let mut leaves: Vec<(usize, String)> = Vec::new();
        let mut tx = self.pool.begin().await.map_err(classify)?;
        // An id claimed now is acted on once: a copy later in the same run
        // (a redelivery that arrived together with the original) is not.
        let mut first_time = inbox::claim_all(&mut tx, &entries, Outcome::Handled).await.map_err(classify)?;
        let messages: Vec<&S::Message> =
            inputs.iter().filter(|i| acts(i)).filter_map(|i| i.message.as_ref().ok()).collect();
        self.service.prepare(&mut tx, &messages).await.map_err(classify)?;
        let mut outgoing = Vec::with_capacity(inputs.len() * 2);
        let mut left = Vec::new();
        let mut calls = Vec::new();
        for (offset, (input, id)) in inputs.iter().zip(&ids).enumerate() {
            if !acts(input) {
                continue;
            }
            let key = input.source.key.as_deref().unwrap_or_default();
            let parked_as = Waiting::of(input.source);
            if now_waiting.contains(&parked_as) {
                // Not acted on: its claim goes back (a copy of it later in
                // the run would not have been claimed, and is left too).
                leaves.push((first + offset, "a message of its key waits before it".to_owned()));
                if first_time.remove(id) {
                    left.push(id.clone());
                }
                continue;
            }
            if !first_time.remove(id) {
                tracing::info!(message_id = %id, "duplicate ignored");
                DUPLICATES.with_label_values(&[&self.group]).inc();
                continue;
            }
            // A run spans many traces: each input's own on what its handling
            // logs, and (exported) the span its events are created under.
            let span = orderflow_bus::trace::processing(input.source, &self.group);
            // Test only (`handle.<MessageType>=error`): a message this
            // service cannot apply, whatever it holds.
            let at = |error: HandlerError| error.at(first + offset, total);
            if orderflow_bus::failpoint::fails("handle", input.name) {
                return Err(at(HandlerError::Permanent(format!("failpoint handle.{} is armed", input.name).into())));
            }
            if savepoints && !alone {
                sqlx::query("SAVEPOINT input").execute(&mut *tx).await.map_err(classify)?;
            }
            let decided = match &input.message {
                Ok(message) => {
                    let inbound = Inbound { message, headers: &input.headers, source: input.source };
                    self.service.handle(&mut tx, &inbound).instrument(span.clone()).await
                }
                Err(refusal) => Err(DomainError::Refused(refusal.clone())),
            };
            let why = match decided {
                Ok(emits) => {
                    self.decided(input, &span, &emits, &mut outgoing).await.map_err(at)?;
                    continue;
                }
                Err(DomainError::Database(error)) => return Err(at(classify(error))),
                // Undone alone, which takes savepoints: this attempt ends.
                Err(DomainError::NotYet(_) | DomainError::Awaits(_) | DomainError::Refused(_))
                    if !alone && !savepoints =>
                {
                    tx.rollback().await.map_err(classify)?;
                    return Ok(Part::NeedsSavepoints);
                }
                Err(DomainError::NotYet(why)) => why,
                Err(DomainError::Awaits(mut request)) => {
                    let why = format!("waiting for {request}");
                    // Its span (exported) joins this attempt's.
                    request.traceparent = trace::traceparent(&span);
                    calls.push((request, key));
                    why
                }
                Err(DomainError::Refused(refusal)) if alone => {
                    refused(&span, &refusal);
                    tx.rollback().await.map_err(classify)?;
                    self.refuse(input, &span, &refusal).await?;
                    return Ok(Part::Committed);
                }
                Err(DomainError::Refused(refusal)) => {
                    // Undo what it changed; its rejection goes with the run.
                    refused(&span, &refusal);
                    sqlx::query("ROLLBACK TO SAVEPOINT input").execute(&mut *tx).await.map_err(classify)?;
                    self.rejected(input, &span, &refusal, &mut outgoing).await.map_err(at)?;
                    continue;
                }
            };
            tracing::debug!(message_id = %id, %why, "not yet");
            // Exported, the attempt says why it changed nothing (another
            // span of the same message follows when it is tried again).
            trace::record(&span, || {
                vec![KeyValue::new("orderflow.outcome", "later"), KeyValue::new("orderflow.reason", why.clone())]
            });
            if alone {
                // Rolled back; the consumer sets its key aside.
                tx.rollback().await.map_err(classify)?;
                self.record(&calls).await?;
                return Err(HandlerError::Later(why.into()));
            }
            sqlx::query("ROLLBACK TO SAVEPOINT input").execute(&mut *tx).await.map_err(classify)?;
            leaves.push((first + offset, why));
            now_waiting.insert(parked_as);
            left.push(id.clone());
        }
        inbox::unclaim(&mut tx, &left).await.map_err(classify)?;
        enqueue(&mut tx, &outgoing).await.map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        tracing::debug!(messages = inputs.len(), left = left.len(), events = outgoing.len(), "run committed");
        for (position, why) in leaves {
            handled.leave(position, why);
        }
        *waiting = now_waiting;
        self.record(&calls).await?;
        Ok(Part::Committed)
    }

    /// Records and starts the calls the service names up front for `inputs`
    /// ([`Service::calls`]), and waits (bounded) for their first attempts;
    /// with `effects.wait_ms` 0, does nothing. A call recorded before (a
    /// redelivery, a call already under way) is neither made again nor
    /// waited for.
    async fn start_calls(&self, inputs: &[Input<'_, S::Message>]) {
        if self.call_wait.is_zero() {
            return;
        }
        let mut calls = Vec::new();
        for input in inputs {
            if let Ok(message) = &input.message {
                // Made before the input is handled: (exported) their spans
                // are children of the span that created the input.
                let traceparent = trace::exporting().then(|| input.headers.traceparent.clone());
                calls.extend(self.service.calls(message).into_iter().map(|mut call| {
                    call.traceparent = traceparent.clone();
                    (call, input.key.as_str())
                }));
            }
        }
        if calls.is_empty() {
            return;
        }
        // Only a head start: the inputs ask for their calls again when
        // handled, so a failure here costs nothing but the head start.
        match self.requests.record(&calls).await {
            Ok(attempts) => {
                let _ = tokio::time::timeout(self.call_wait, futures::future::join_all(attempts)).await;
            }
            Err(error) => tracing::warn!(%error, "cannot record the calls named up front; the inputs ask for them"),
        }
    }

    /// Records the calls inputs wait for, once their transaction has ended
    /// (it holds a connection; recording takes another).
    async fn record(&self, calls: &[(crate::effects::EffectRequest, &str)]) -> Result<(), HandlerError> {
        self.requests.record(calls).await.map(drop).map_err(classify)
    }

    /// Runs [`Service::due`] once: its changes and the outbox rows of its
    /// events in one transaction. How many events it published.
    pub async fn run_due(&self) -> Result<usize, HandlerError> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let scheduled = match self.service.due(&mut tx).await {
            Ok(scheduled) => scheduled,
            Err(DomainError::Database(error)) => return Err(classify(error)),
            Err(other) => return Err(HandlerError::Permanent(other.to_string().into())),
        };
        let mut outgoing = Vec::new();
        for Scheduled { cause, emits } in &scheduled {
            self.render(cause, None, emits, None, &mut outgoing).await?;
        }
        enqueue(&mut tx, &outgoing).await.map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(outgoing.len())
    }

    /// Runs [`Service::due`] every `every` until `shutdown`. Failures are
    /// logged and retried at the next tick (the work stays due); the task
    /// itself only ends at shutdown.
    pub async fn run_schedule(
        self: Arc<Self>,
        every: std::time::Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<(), std::convert::Infallible> {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = ticks.tick() => {}
            }
            match self.run_due().await {
                Ok(0) => {}
                Ok(events) => tracing::info!(events, "scheduled work done"),
                Err(error) => tracing::warn!(%error, "scheduled work failed; retrying at the next tick"),
            }
        }
    }
}

/// Exported, an input's span says it was refused and why.
fn refused(span: &tracing::Span, refusal: &Refusal) {
    trace::record(span, || {
        vec![
            KeyValue::new("orderflow.outcome", "refused"),
            KeyValue::new("orderflow.reason", refusal.reason.as_str().to_owned()),
        ]
    });
}

/// Messages the inbox had seen (a redelivery, a republished record): not
/// acted on again.
pub(crate) static DUPLICATES: std::sync::LazyLock<prometheus::IntCounterVec> = std::sync::LazyLock::new(|| {
    orderflow_telemetry::register(
        prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "orderflow_inbox_duplicates_total",
                "Messages a service's inbox had seen already (redelivered or republished), skipped, by group",
            ),
            &["group"],
        )
        .expect("counter"),
    )
});

/// A key with a message left for later, as the consumer sets it aside:
/// in its partition (a run may span a lane's partitions and topics, and
/// the same key in another topic, or no key at all, does not wait behind it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Waiting {
    topic: String,
    partition: i32,
    key: String,
}

impl Waiting {
    fn of(message: &InboundMessage) -> Self {
        Self {
            topic: message.topic.clone(),
            partition: message.partition,
            key: message.key.clone().unwrap_or_default(),
        }
    }
}

/// Inputs handled in one transaction at most. Each input of a longer run
/// runs in a savepoint of its own, so that one which must wait can be
/// undone alone; Postgres keeps the ids of 64 subtransactions per
/// transaction in shared memory and slows every snapshot beyond that, so
/// a longer run commits in parts (a part that commits before a later one
/// fails comes again with the run; the inbox absorbs it).
const MAX_PER_TRANSACTION: usize = 60;

impl<S: Service> MessageHandler for TransactionalHandler<S> {
    async fn handle(&self, messages: &[InboundMessage]) -> Result<Handled, HandlerError> {
        let mut inputs = Vec::with_capacity(messages.len());
        for (position, message) in messages.iter().enumerate() {
            inputs.push(self.decode(message).await.map_err(|e| e.at(position, messages.len()))?);
        }
        self.start_calls(&inputs).await;
        let mut handled = Handled::all();
        // Keys with a message left for later: the run's later messages of
        // those keys (in that partition) wait behind it.
        let mut waiting: HashSet<Waiting> = HashSet::new();
        let mut first = 0;
        for part in inputs.chunks(MAX_PER_TRANSACTION) {
            self.handle_part(part, first, inputs.len(), &mut handled, &mut waiting).await?;
            first += part.len();
        }
        Ok(handled)
    }
    async fn dead_letter(&self, message: &InboundMessage, error: &HandlerError) -> Result<(), HandlerError> {
        orderflow_outbox::dead_letter(&self.pool, message, error, &self.group).await.map_err(classify)
    }
}
