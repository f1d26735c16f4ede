//! Admission control: under overload the ingress sheds load at once instead
//! of letting every request queue until it times out.
//!
//! Without it, a rate above capacity grows every queue (pool connections,
//! the broker, the projector) until each request waits for seconds and
//! times out, and goodput falls to nearly nothing (measured: 300 updates/s
//! on the debug stack, where 150/s was fine, settled 2/s). With it:
//!
//! - at most `max_in_flight` requests are handled at once; up to
//!   `max_queued` more wait for a slot for at most `queue_timeout_ms`;
//!   the rest are answered `503 OVERLOADED` with `Retry-After` within
//!   milliseconds, before anything is sent to the bus;
//! - a request that asks to wait for its outcome (`Prefer: wait`) needs a
//!   waiting place, taken before its command is sent (none left: 503 at
//!   once), and gives its in-flight slot back while it waits
//!   ([`release_while_waiting`]): a waiting request holds neither a slot
//!   nor a database connection, only its place.
//!
//! How many waiting places there are adapts to what the services behind
//! the bus manage (AIMD, as TCP and Netflix's concurrency limits do): while
//! the outcomes' smoothed latency (since their commands were sent) stays
//! within `wait_latency_target_ms`, every outcome adds a little (one place
//! per `limit` outcomes); above it, a tenth goes, at most every 100 ms. So when the rate offered exceeds what settles, the excess is
//! refused at the door instead of queueing on the bus, where every command
//! would wait longer than its client and goodput would collapse; the
//! accepted ones keep settling within the target. Between
//! `min_waiting` and `max_waiting` places.
//!
//! The ingress's own responsiveness counts too: a task wakes every 10 ms
//! and measures how late it ran (the runtime's scheduling lag, smoothed).
//! Above `lag_target_ms` the process is short of CPU — on a shared machine,
//! usually because the services behind it are busy with what it admitted —
//! and every request, refusals included, waits for a core; so the waiting
//! places shrink as for a slow outcome, and grow only while both are in
//! time. That keeps a refusal a matter of milliseconds under overload.
//!
//! The figures that justify the defaults are in docs/performance.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{IntCounterVec, IntGauge, Opts};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::AppState;
use crate::error::ApiError;

static SHED: std::sync::LazyLock<IntCounterVec> = std::sync::LazyLock::new(|| {
    orderflow_telemetry::register(
        IntCounterVec::new(
            Opts::new("orderflow_http_requests_shed_total", "Requests refused with 503 by admission control, by why"),
            &["why"],
        )
        .expect("valid metric"),
    )
});
static WAITING_LIMIT: std::sync::LazyLock<IntGauge> = std::sync::LazyLock::new(|| {
    orderflow_telemetry::register(
        IntGauge::new("orderflow_http_waiting_limit", "Requests that may wait for their outcome at once (adaptive)")
            .expect("valid metric"),
    )
});
static LAG: std::sync::LazyLock<prometheus::Gauge> = std::sync::LazyLock::new(|| {
    orderflow_telemetry::register(
        prometheus::Gauge::new(
            "orderflow_http_scheduling_lag_seconds",
            "How late the ingress's runtime runs a task that is due (smoothed)",
        )
        .expect("valid metric"),
    )
});
static IN_FLIGHT: std::sync::LazyLock<IntGauge> = std::sync::LazyLock::new(|| {
    orderflow_telemetry::register(
        IntGauge::new("orderflow_http_requests_in_flight", "Requests being handled (not counting those waiting)")
            .expect("valid metric"),
    )
});

/// How much work the ingress takes on at once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdmissionSettings {
    /// Requests handled at once (a waiting request does not count).
    pub max_in_flight: usize,
    /// Requests that may wait for a slot; beyond, 503 at once.
    pub max_queued: usize,
    /// How long a request waits for a slot before it is answered 503.
    pub queue_timeout_ms: u64,
    /// Requests waiting for their outcome (`Prefer: wait`) at once, at
    /// most (the adaptive limit never exceeds it) ...
    pub max_waiting: usize,
    /// ... and at least (the adaptive limit never goes below it).
    pub min_waiting: usize,
    /// An outcome later than this after its command was sent means the
    /// services are falling behind: fewer waiting places.
    pub wait_latency_target_ms: u64,
    /// The ingress's smoothed scheduling lag above this means it is short
    /// of CPU: fewer waiting places, as for a late outcome.
    pub lag_target_ms: u64,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        Self {
            max_in_flight: 256,
            max_queued: 512,
            queue_timeout_ms: 50,
            max_waiting: 4096,
            min_waiting: 64,
            wait_latency_target_ms: 250,
            lag_target_ms: 5,
        }
    }
}

impl AdmissionSettings {
    pub fn validate(&self) -> orderflow_config::Result<()> {
        let invalid = orderflow_config::ConfigError::invalid;
        if self.max_in_flight == 0 {
            return Err(invalid("admission.max_in_flight", "must be at least 1"));
        }
        if self.min_waiting == 0 {
            return Err(invalid("admission.min_waiting", "must be at least 1"));
        }
        if self.max_waiting < self.min_waiting {
            return Err(invalid("admission.max_waiting", "must be at least admission.min_waiting"));
        }
        if self.wait_latency_target_ms == 0 {
            return Err(invalid("admission.wait_latency_target_ms", "must be at least 1"));
        }
        if self.lag_target_ms == 0 {
            return Err(invalid("admission.lag_target_ms", "must be at least 1"));
        }
        if self.queue_timeout_ms > 1_000 {
            return Err(invalid("admission.queue_timeout_ms", "must be at most 1000: shedding must be quick"));
        }
        Ok(())
    }
}

/// The slots and places of one ingress.
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    places: Arc<Places>,
    queued: AtomicUsize,
    max_queued: usize,
    queue_timeout: Duration,
}

/// The adaptive number of waiting places (see the module docs).
#[derive(Debug)]
struct Places {
    taken: AtomicUsize,
    limit: std::sync::Mutex<Limit>,
    min: f64,
    max: f64,
    target: Duration,
    lag_target: Duration,
}

#[derive(Debug)]
struct Limit {
    places: f64,
    /// The outcomes' latency, smoothed (milliseconds): one slow outcome is
    /// noise, a slow average is a queue.
    average_ms: Option<f64>,
    /// The runtime's scheduling lag, smoothed (milliseconds).
    lag_ms: f64,
    last_decrease: Option<std::time::Instant>,
}

/// What a decrease leaves of the waiting limit.
const DECREASE: f64 = 0.9;
/// The weight of one outcome in the average.
const SMOOTHING: f64 = 0.05;
/// The weight of one lag sample (one every [`LAG_EVERY`]).
const LAG_SMOOTHING: f64 = 0.2;
/// How often the lag is sampled.
const LAG_EVERY: Duration = Duration::from_millis(10);
/// At most one decrease this often: the average needs a few outcomes to
/// show what the last decrease did.
const DECREASE_EVERY: Duration = Duration::from_millis(100);

/// A waiting place, given back when dropped.
#[derive(Debug)]
struct Place(Arc<Places>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.taken.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Places {
    fn limit(&self) -> std::sync::MutexGuard<'_, Limit> {
        self.limit.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn take(self: &Arc<Self>) -> Option<Place> {
        let limit = self.limit().places as usize;
        let taken = self.taken.fetch_add(1, Ordering::AcqRel);
        if taken >= limit {
            self.taken.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Place(Arc::clone(self)))
    }

    /// One outcome: settled after `latency`, or not settled when the wait
    /// of `latency` ran out. A wait shorter than the target that ran out
    /// says nothing (a client may ask for `wait=0`), a longer one that the
    /// outcome took at least that long.
    fn outcome(&self, latency: Duration, settled: bool, now: std::time::Instant) {
        if !settled && latency < self.target {
            return;
        }
        let ms = latency.as_secs_f64() * 1000.0;
        let mut limit = self.limit();
        let average = limit.average_ms.map_or(ms, |average| average + SMOOTHING * (ms - average));
        limit.average_ms = Some(average);
        if average <= self.target.as_secs_f64() * 1000.0 && limit.lag_ms <= self.lag_target_ms() {
            // Additive: one more place per `places` outcomes in time.
            limit.places = (limit.places + 1.0 / limit.places).min(self.max);
        } else {
            self.decrease(&mut limit, now);
        }
    }

    /// One lag sample: the runtime ran a due task `lag` late.
    fn lagged(&self, lag: Duration, now: std::time::Instant) {
        let mut limit = self.limit();
        limit.lag_ms += LAG_SMOOTHING * (lag.as_secs_f64() * 1000.0 - limit.lag_ms);
        LAG.set(limit.lag_ms / 1000.0);
        if limit.lag_ms > self.lag_target_ms() {
            self.decrease(&mut limit, now);
        }
    }

    fn lag_target_ms(&self) -> f64 {
        self.lag_target.as_secs_f64() * 1000.0
    }

    /// Multiplicative: a tenth fewer places, at most every [`DECREASE_EVERY`].
    fn decrease(&self, limit: &mut Limit, now: std::time::Instant) {
        if limit.last_decrease.is_none_or(|at| now.duration_since(at) >= DECREASE_EVERY) {
            limit.places = (limit.places * DECREASE).max(self.min);
            limit.last_decrease = Some(now);
        }
        WAITING_LIMIT.set(limit.places as i64);
    }
}

impl Admission {
    pub fn new(settings: &AdmissionSettings) -> Self {
        // At 0 from the start: a rate over it is a series before the first refusal.
        for why in ["waiting", "busy"] {
            let _ = SHED.with_label_values(&[why]);
        }
        let (min, max) = (settings.min_waiting as f64, settings.max_waiting as f64);
        Self {
            slots: Arc::new(Semaphore::new(settings.max_in_flight)),
            places: Arc::new(Places {
                taken: AtomicUsize::new(0),
                // From a sixteenth of the most, so that a first overload
                // needs few decreases to find what the services manage.
                limit: std::sync::Mutex::new(Limit {
                    places: (max / 16.0).max(min),
                    average_ms: None,
                    lag_ms: 0.0,
                    last_decrease: None,
                }),
                min,
                max,
                target: Duration::from_millis(settings.wait_latency_target_ms),
                lag_target: Duration::from_millis(settings.lag_target_ms),
            }),
            queued: AtomicUsize::new(0),
            max_queued: settings.max_queued,
            queue_timeout: Duration::from_millis(settings.queue_timeout_ms),
        }
    }

    /// Tells the waiting limit how a wait ended: `settled` after `latency`
    /// since the command was sent, or not settled when the wait ran out.
    pub fn waited(&self, latency: Duration, settled: bool) {
        self.places.outcome(latency, settled, std::time::Instant::now());
    }

    /// Samples the runtime's scheduling lag until `shutdown` (a task of
    /// the process: it must run on the runtime that serves requests).
    pub async fn watch_lag(
        self: Arc<Self>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<(), std::convert::Infallible> {
        loop {
            let due = tokio::time::Instant::now() + LAG_EVERY;
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep_until(due) => {}
            }
            let now = tokio::time::Instant::now();
            self.places.lagged(now.saturating_duration_since(due), now.into_std());
        }
    }

    /// A slot now, or after a short wait in the bounded queue, or `None`.
    async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Some(permit);
        }
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.max_queued {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let permit = tokio::time::timeout(self.queue_timeout, Arc::clone(&self.slots).acquire_owned()).await;
        self.queued.fetch_sub(1, Ordering::AcqRel);
        permit.ok().and_then(Result::ok)
    }
}

tokio::task_local! {
    /// The in-flight slot of the request this task handles.
    static SLOT: std::cell::RefCell<Option<Slot>>;
}

/// An in-flight slot (the permit is held for its `Drop`); counted in the
/// gauge while held.
#[derive(Debug)]
struct Slot {
    _permit: OwnedSemaphorePermit,
}

impl Slot {
    fn new(permit: OwnedSemaphorePermit) -> Self {
        IN_FLIGHT.inc();
        Self { _permit: permit }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        IN_FLIGHT.dec();
    }
}

/// Gives the current request's in-flight slot back while it waits for its
/// outcome (its waiting place, taken on admission, bounds the waiting).
pub fn release_while_waiting() {
    let _ = SLOT.try_with(|slot| slot.borrow_mut().take());
}

fn overloaded(why: &'static str, message: &str) -> Response {
    SHED.with_label_values(&[why]).inc();
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "OVERLOADED", message).with_retry_after(1).into_response()
}

/// Whether the request asks to wait for its outcome (`Prefer: wait=N`).
fn wants_to_wait(request: &Request) -> bool {
    request
        .headers()
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split([',', ';']).any(|token| token.trim().starts_with("wait=")))
}

/// Middleware: admits the request (a slot, and a waiting place if it asks
/// to wait) or answers 503 `OVERLOADED` with `Retry-After` at once.
pub async fn admit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let admission = &state.admission;
    let place = if wants_to_wait(&request) {
        match admission.places.take() {
            Some(place) => Some(place),
            None => return overloaded("waiting", "too many requests are waiting for their outcome; retry shortly"),
        }
    } else {
        None
    };
    let Some(permit) = admission.slot().await else {
        return overloaded("busy", "the service is at capacity; retry shortly");
    };
    let response = SLOT.scope(std::cell::RefCell::new(Some(Slot::new(permit))), next.run(request)).await;
    drop(place);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn beyond_the_slots_and_the_queue_the_answer_is_immediate() {
        let admission = Admission::new(&AdmissionSettings {
            max_in_flight: 1,
            max_queued: 1,
            queue_timeout_ms: 50,
            ..AdmissionSettings::default()
        });
        let held = admission.slot().await.expect("the one slot");
        let started = std::time::Instant::now();
        assert!(admission.slot().await.is_none(), "queued, then timed out");
        assert!(started.elapsed() < Duration::from_millis(200));
        drop(held);
        assert!(admission.slot().await.is_some(), "free again");
    }

    #[tokio::test]
    async fn a_slot_given_back_while_waiting_admits_another_request() {
        let admission =
            Admission::new(&AdmissionSettings { max_in_flight: 1, max_queued: 0, ..AdmissionSettings::default() });
        let permit = admission.slot().await.expect("slot");
        SLOT.scope(std::cell::RefCell::new(Some(Slot::new(permit))), async {
            assert!(admission.slot().await.is_none(), "taken");
            release_while_waiting();
            assert!(admission.slot().await.is_some(), "given back");
        })
        .await;
    }

    #[test]
    fn the_waiting_limit_follows_the_smoothed_latency_and_ignores_short_waits() {
        let settings =
            AdmissionSettings { min_waiting: 2, max_waiting: 100, wait_latency_target_ms: 100, ..Default::default() };
        let places = Admission::new(&settings).places;
        let limit = || places.limit().places;
        let start = std::time::Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        assert_eq!(limit(), 6.25, "a sixteenth of the most to start");
        for i in 0..2000 {
            places.outcome(Duration::from_millis(20), true, at(i));
        }
        assert!(limit() > 50.0, "in-time outcomes grow it: {}", limit());
        let before = limit();
        places.outcome(Duration::from_millis(900), true, at(2000));
        assert!(limit() >= before, "one slow outcome is noise: {}", limit());
        places.outcome(Duration::ZERO, false, at(2001));
        assert!(limit() >= before, "a wait=0 that ran out says nothing");
        for i in 0..100 {
            places.outcome(Duration::from_millis(500), true, at(3000 + 10 * i));
        }
        let shrunk = limit();
        assert!(shrunk < before / 2.0, "a slow average shrinks it: {shrunk}");
        assert!(shrunk > before * 0.9_f64.powi(11), "at most a decrease per 100 ms: {shrunk}");
        for i in 0..1000 {
            places.outcome(Duration::from_secs(1), false, at(5000 + 100 * i));
        }
        assert_eq!(limit(), 2.0, "never below min_waiting");
        let held: Vec<_> = (0..2).map(|_| places.take().expect("a place")).collect();
        assert!(places.take().is_none(), "two places, both taken");
        drop(held);
        assert!(places.take().is_some(), "given back");
    }

    #[test]
    fn a_runtime_short_of_cpu_shrinks_the_waiting_limit_and_stops_its_growth() {
        let settings = AdmissionSettings {
            min_waiting: 2,
            max_waiting: 100,
            wait_latency_target_ms: 100,
            lag_target_ms: 5,
            ..Default::default()
        };
        let places = Admission::new(&settings).places;
        let limit = || places.limit().places;
        let start = std::time::Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        for i in 0..50 {
            places.lagged(Duration::from_millis(2), at(i * 10));
        }
        assert_eq!(limit(), 6.25, "a lag within the target changes nothing");
        for i in 0..100 {
            places.lagged(Duration::from_millis(80), at(1000 + i * 10));
        }
        let shrunk = limit();
        assert!(shrunk < 6.25 * 0.9_f64.powi(5), "a late runtime shrinks it: {shrunk}");
        for i in 0..500 {
            places.outcome(Duration::from_millis(20), true, at(3000 + i));
        }
        assert!(limit() <= shrunk, "outcomes in time do not grow it while the runtime is late: {}", limit());
        for i in 0..50 {
            places.lagged(Duration::ZERO, at(4000 + i * 10));
        }
        for i in 0..500 {
            places.outcome(Duration::from_millis(20), true, at(5000 + i));
        }
        assert!(limit() > shrunk, "and grow it again once it is on time: {}", limit());
    }
}
