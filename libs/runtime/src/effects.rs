//! Effects: a service's calls to outside systems (a payment provider),
//! made outside the partition's transaction.
//!
//! A call inside the transaction would hold the partition for as long as
//! the outside system takes, and a failing one would be made again at
//! every redelivery, without bound. Instead:
//!
//! 1. The service's handler asks for the call's outcome by its id
//!    ([`outcome`]). The first time there is none: the handler returns
//!    [`DomainError::Awaits`], the kit rolls its transaction back, records
//!    the call (`effects` table, committed on its own) and parks the
//!    input's key — the rest of the partition flows on.
//! 2. The [`Effector`] (one supervised task per process) makes each call
//!    — claimed as it is recorded when a slot is free, else claimed once
//!    due — through [`Service::perform`] with a time limit, at most
//!    `effects.concurrency` at once, and records the answer; a failure is
//!    made again after a backoff, at most `effects.max_attempts` times in
//!    all, then recorded as failed. Either way it wakes the parked key.
//! 3. The input is handled again: [`outcome`] now returns the answer (or
//!    the failure), and the service decides and saves in the input's
//!    transaction as usual.
//!
//! A call is made at least once and at most its budget — a process that
//! dies mid-call leaves it to another once its claim lapses, and that
//! attempt counts too — so outside systems must take the call's id as an
//! idempotency key. Metrics: `orderflow_effects_total{kind,outcome}`,
//! `orderflow_effect_seconds{kind}`, `orderflow_effects_in_flight`.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use orderflow_bus::Wakeups;
use orderflow_config::EffectSettings;
use orderflow_outbox::effects::{self, ClaimedEffect, EffectState};
use orderflow_telemetry::trace::{self, KeyValue, Kind};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts};
use sqlx::{PgConnection, PgPool};
use tokio::sync::{Notify, Semaphore, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

pub use orderflow_outbox::effects::EffectRequest;

use crate::{DomainError, Service};

static CALLS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    orderflow_telemetry::register(
        IntCounterVec::new(
            Opts::new(
                "orderflow_effects_total",
                "Calls to outside systems, by kind and outcome (done, retried, failed)",
            ),
            &["kind", "outcome"],
        )
        .expect("valid metric"),
    )
});
static SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    orderflow_telemetry::register(
        HistogramVec::new(
            HistogramOpts::new("orderflow_effect_seconds", "How long one call to an outside system took, by kind")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["kind"],
        )
        .expect("valid metric"),
    )
});
static IN_FLIGHT: LazyLock<IntGauge> = LazyLock::new(|| {
    orderflow_telemetry::register(
        IntGauge::new("orderflow_effects_in_flight", "Calls to outside systems being made now").expect("valid metric"),
    )
});

/// One call the kit makes for a service ([`Service::perform`]).
#[derive(Debug, Clone)]
pub struct Effect {
    /// Its id: the outside system's idempotency key for it.
    pub id: Uuid,
    pub kind: String,
    /// The arguments the service recorded with [`EffectRequest`].
    pub call: serde_json::Value,
    /// This attempt's number, from 1.
    pub attempt: i32,
}

/// Why a call failed; it is made again while its budget lasts.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EffectError(pub String);

/// How a call ended, as its input sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Called {
    /// What the outside system answered.
    Done(serde_json::Value),
    /// Every attempt failed; the last error. The service decides what
    /// that means (a payment is declined, a refund refused).
    Failed(String),
}

/// The outcome of call `request` inside the asking input's transaction:
/// its answer, its failure, or — not made yet — [`DomainError::NotYet`]
/// (made now: [`DomainError::Awaits`], which records it). Either error
/// parks the input's key until the call has ended.
pub async fn outcome(tx: &mut PgConnection, request: EffectRequest) -> Result<Called, DomainError> {
    match effects::state(tx, request.id).await? {
        Some(EffectState::Done(answer)) => Ok(Called::Done(answer)),
        Some(EffectState::Failed(error)) => Ok(Called::Failed(error)),
        Some(EffectState::Pending) => Err(DomainError::NotYet(format!("waiting for {request}"))),
        None => Err(DomainError::Awaits(request)),
    }
}

/// A call claimed as it was recorded, and whom to tell when its first
/// attempt has ended.
type Arrival = (ClaimedEffect, Option<oneshot::Sender<()>>);

/// Records a call a handler asked for and hands it to the effector: with
/// a slot free, claimed in the same statement and made at once; otherwise
/// left due for the effector to claim.
#[derive(Debug, Clone)]
pub(crate) struct Requests {
    pool: PgPool,
    requested: Arc<Notify>,
    slots: Arc<Semaphore>,
    claimed: tokio::sync::mpsc::UnboundedSender<Arrival>,
    lease: Duration,
}

impl Requests {
    /// Records `calls` (each for the input of its key). For each call made
    /// now (claimed here: not recorded before, a slot free), a receiver
    /// that hears when its first attempt has ended, whatever its outcome.
    pub(crate) async fn record(
        &self,
        calls: &[(EffectRequest, &str)],
    ) -> Result<Vec<oneshot::Receiver<()>>, sqlx::Error> {
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        let claim_for = (self.slots.available_permits() >= calls.len()).then_some(self.lease);
        let claimed = effects::request(&self.pool, calls, claim_for).await?;
        if claim_for.is_none() {
            self.requested.notify_one();
        }
        let mut attempts = Vec::with_capacity(claimed.len());
        for call in claimed {
            let (ended, attempt) = oneshot::channel();
            // The effector ended (shutdown): the claim lapses and another
            // process makes the call.
            if self.claimed.send((call, Some(ended))).is_ok() {
                attempts.push(attempt);
            }
        }
        Ok(attempts)
    }
}

/// Makes the recorded calls of one process's service (see the module docs).
pub struct Effector<S> {
    service: Arc<S>,
    pool: PgPool,
    settings: EffectSettings,
    requested: Arc<Notify>,
    wakeups: Wakeups,
    /// Calls in flight, at most `settings.concurrency`.
    slots: Arc<Semaphore>,
    /// Calls claimed as they were recorded ([`Requests`]), and where they arrive.
    claimed: tokio::sync::mpsc::UnboundedSender<Arrival>,
    arrivals: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Arrival>>>,
}

impl<S> std::fmt::Debug for Effector<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Effector").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// How often the effector looks for due calls when nothing woke it (calls
/// recorded by another process, claims that lapsed).
const POLL_EVERY: Duration = Duration::from_secs(1);

impl<S: Service> Effector<S> {
    /// `pool`: the bookkeeping pool (`database::connect_bookkeeping`).
    pub fn new(service: Arc<S>, pool: PgPool, settings: EffectSettings, wakeups: Wakeups) -> Self {
        let slots = Arc::new(Semaphore::new(settings.concurrency));
        let (claimed, arrivals) = tokio::sync::mpsc::unbounded_channel();
        Self {
            service,
            pool,
            settings,
            requested: Arc::new(Notify::new()),
            wakeups,
            slots,
            claimed,
            arrivals: std::sync::Mutex::new(Some(arrivals)),
        }
    }

    /// What the service's handler records its calls with.
    pub(crate) fn requests(&self) -> Requests {
        Requests {
            pool: self.pool.clone(),
            requested: Arc::clone(&self.requested),
            slots: Arc::clone(&self.slots),
            claimed: self.claimed.clone(),
            lease: self.lease(),
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.settings.timeout_ms)
    }

    /// Longer than a call may take: a claim that lapses means its process died.
    fn lease(&self) -> Duration {
        self.timeout() * 2 + Duration::from_secs(5)
    }

    /// Makes due calls until `shutdown`; calls in flight then are dropped
    /// (their claims lapse and another process makes them again).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), std::convert::Infallible> {
        let taken = self.arrivals.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let Some(mut arrivals) = taken else {
            tracing::error!("the effector runs once per process; this one is already running");
            return Ok(());
        };
        let mut calls = JoinSet::new();
        // Whether to look for due calls: not right after calls arrived
        // claimed, nor when a call that needs nothing more ends while no
        // call waits for a slot (under load, two queries per call saved);
        // the next wake by anything else looks.
        let mut look = true;
        // Whether calls may be due that found no free slot the last time.
        let mut waiting_for_slot = true;
        // When to look at the latest, whatever wakes the loop: set by each
        // look (the next call due, else `POLL_EVERY`) and kept by the wakes
        // that do not look, so a retry due soon is not put off by them.
        let mut next_look = tokio::time::Instant::now();
        loop {
            let free = self.slots.available_permits();
            if look {
                next_look = tokio::time::Instant::now() + POLL_EVERY;
            }
            if look && free == 0 {
                waiting_for_slot = true;
            } else if look {
                match effects::claim(&self.pool, free as i64, self.lease()).await {
                    Ok(claimed) => {
                        // Fewer than there was room for: none is due now,
                        // so sleep until the next one is (or a request,
                        // or a call ending, wakes the loop).
                        let all_due = claimed.len() < free;
                        waiting_for_slot = !all_due;
                        for call in claimed {
                            self.spawn((call, None), &mut calls);
                        }
                        if all_due {
                            match effects::next_due(&self.pool).await {
                                Ok(Some(due)) => {
                                    next_look =
                                        next_look.min(tokio::time::Instant::now() + due.max(Duration::from_millis(1)))
                                }
                                Ok(None) => {}
                                Err(error) => tracing::warn!(%error, "cannot read when the next call is due"),
                            }
                        }
                    }
                    Err(error) => tracing::warn!(%error, "cannot claim due calls; trying again"),
                }
            }
            look = true;
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                Some(call) = arrivals.recv() => {
                    self.spawn(call, &mut calls);
                    while let Ok(call) = arrivals.try_recv() {
                        self.spawn(call, &mut calls);
                    }
                    look = false;
                }
                _ = self.requested.notified() => {}
                _ = tokio::time::sleep_until(next_look) => {}
                Some(ended) = calls.join_next(), if !calls.is_empty() => {
                    // A call made again later (or not recorded) changes
                    // when the next is due.
                    look = waiting_for_slot || ended.unwrap_or(true);
                }
            }
        }
    }

    /// Makes `call` in a task of its own, once a slot is free, and tells
    /// whoever waits for its attempt.
    /// Its task ends with whether the effector should look at what is due
    /// ([`Self::make`]).
    fn spawn(self: &Arc<Self>, (call, ended): Arrival, calls: &mut JoinSet<bool>) {
        let effector = Arc::clone(self);
        calls.spawn(async move {
            let Ok(_slot) = Arc::clone(&effector.slots).acquire_owned().await else { return true };
            let look = effector.make(call).await;
            if let Some(ended) = ended {
                let _ = ended.send(()); // nobody waits any more: fine
            }
            look
        });
    }

    /// Makes one claimed call and records how it went; whether it is due
    /// again (to be made later, or its outcome not recorded).
    async fn make(&self, claimed: ClaimedEffect) -> bool {
        let span = tracing::info_span!(
            "effect",
            id = %claimed.id,
            kind = %claimed.kind,
            attempt = claimed.attempt,
            otel.name = tracing::field::Empty,
            otel.kind = tracing::field::Empty,
        );
        // Exported: a client span (`authorize`, `refund`, ...) in the
        // trace of what asked for the call (none for a call asked for
        // untraced: a trace of its own would be a lone span).
        if let Some(parent) = claimed.traceparent.as_deref() {
            trace::export(&span, format_args!("{}", claimed.kind), Kind::Client, Some(parent), || {
                vec![
                    KeyValue::new("orderflow.effect.id", claimed.id.to_string()),
                    KeyValue::new("orderflow.effect.attempt", i64::from(claimed.attempt)),
                ]
            });
        }
        self.make_in_span(claimed, &span).instrument(span.clone()).await
    }

    async fn make_in_span(&self, claimed: ClaimedEffect, span: &tracing::Span) -> bool {
        let effect = Effect { id: claimed.id, kind: claimed.kind, call: claimed.call, attempt: claimed.attempt };
        IN_FLIGHT.inc();
        let timer = SECONDS.with_label_values(&[&effect.kind]).start_timer();
        let answer = match tokio::time::timeout(self.timeout(), self.service.perform(&effect)).await {
            Ok(answer) => answer,
            Err(_) => Err(EffectError(format!("no answer within {} ms", self.settings.timeout_ms))),
        };
        timer.observe_duration();
        IN_FLIGHT.dec();
        if let Err(error) = &answer {
            trace::failed(span, &error.0);
        }
        let (recorded, ended) = match answer {
            Ok(value) => {
                CALLS.with_label_values(&[&effect.kind, "done"]).inc();
                (effects::succeeded(&self.pool, effect.id, &value).await, true)
            }
            Err(error) if effect.attempt >= self.settings.max_attempts => {
                tracing::warn!(%error, "call failed; its budget is spent");
                CALLS.with_label_values(&[&effect.kind, "failed"]).inc();
                (effects::failed(&self.pool, effect.id, &error.0).await, true)
            }
            Err(error) => {
                let delay = tokio_retry::strategy::jitter(backoff(&self.settings, effect.attempt));
                tracing::info!(%error, ?delay, "call failed; it will be made again");
                CALLS.with_label_values(&[&effect.kind, "retried"]).inc();
                (effects::retry(&self.pool, effect.id, &error.0, delay).await, false)
            }
        };
        match recorded {
            // Whoever waits for it can go on now.
            Ok(()) if ended => {
                self.wakeups.wake(&claimed.wake_key);
                false
            }
            Ok(()) => true,
            // Its claim lapses and the call is made again (counted).
            Err(error) => {
                tracing::warn!(%error, "cannot record how the call went");
                true
            }
        }
    }
}

/// The most to wait before attempt `attempt + 1`: the base, doubled at
/// each attempt, up to the cap (jittered below that when used).
fn backoff(settings: &EffectSettings, attempt: i32) -> Duration {
    let doublings = attempt.clamp(1, 21) - 1;
    let ms = settings.base_backoff_ms.saturating_mul(1 << doublings);
    Duration::from_millis(ms.min(settings.max_backoff_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_the_base_up_to_the_cap() {
        let settings = EffectSettings { base_backoff_ms: 100, max_backoff_ms: 1_000, ..Default::default() };
        let ms = |attempt| backoff(&settings, attempt).as_millis();
        assert_eq!([ms(0), ms(1), ms(2), ms(3), ms(4), ms(5)], [100, 100, 200, 400, 800, 1_000]);
        assert_eq!(ms(i32::MAX), 1_000, "never above the cap, never overflowing");
    }
}
