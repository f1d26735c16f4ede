//! Firing requests on a schedule.
//!
//! [`open_loop`] is the load test: request `i` is *intended* to start at
//! `t0 + i / rate` and is fired then whether or not earlier ones have
//! answered, and its latency runs from that intended start. A slow system
//! therefore shows up as high latency, never as a quietly lower offered
//! rate (no coordinated omission); if the generator itself falls behind,
//! its lateness is counted too and reported as the generator lag.
//!
//! [`one_at_a_time`] is the idle probe: one request in flight at most, so it
//! measures what a lone request costs, from its actual start.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::api::Answer;
use crate::tally::Tally;

#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub rate: f64,
    pub duration: Duration,
    /// Requests in flight at most. Beyond it a request is not sent but
    /// counted as the error `not_sent_in_flight_limit` (the schedule is kept).
    pub max_in_flight: usize,
}

impl Plan {
    pub fn requests(&self) -> u64 {
        (self.rate * self.duration.as_secs_f64()).round() as u64
    }

    fn intended(&self, t0: Instant, i: u64) -> Instant {
        t0 + Duration::from_secs_f64(i as f64 / self.rate)
    }
}

/// What a run did, before it is summarised.
#[derive(Debug)]
pub struct Run {
    pub tally: Tally,
    pub planned: u64,
    pub sent: u64,
    pub started: std::time::Instant,
    /// How late the open loop fired its latest request (None for the idle
    /// probe, whose requests wait for each other by design).
    pub generator_lag_max: Option<Duration>,
}

impl Run {
    /// From the first intended start to the last answer (at least the
    /// planned duration).
    pub fn window(&self, plan: &Plan) -> Duration {
        let answered = self.tally.last_answer.map_or(Duration::ZERO, |at| at.duration_since(self.started));
        answered.max(plan.duration)
    }
}

/// Fixed-rate open loop; `request(i)` makes the i-th request.
pub async fn open_loop<F, Fut>(plan: Plan, request: F) -> Run
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Answer> + Send + 'static,
{
    let planned = plan.requests();
    let tally = Arc::new(Mutex::new(Tally::with_capacity(usize::try_from(planned).unwrap_or(0))));
    let mut tasks = JoinSet::new();
    let mut sent = 0;
    let mut lag_max = Duration::ZERO;
    // A moment's head start, so that request 0 is not already late.
    let t0 = Instant::now() + Duration::from_millis(20);
    let started = t0.into_std();

    for i in 0..planned {
        let intended = plan.intended(t0, i);
        if intended > Instant::now() {
            tokio::time::sleep_until(intended).await;
        }
        reap(&mut tasks, &tally);
        lag_max = lag_max.max(Instant::now().saturating_duration_since(intended));
        if tasks.len() >= plan.max_in_flight {
            lock(&tally).error("not_sent_in_flight_limit");
            continue;
        }
        sent += 1;
        let answer = request(i);
        let tally = Arc::clone(&tally);
        tasks.spawn(async move {
            let answer = answer.await;
            let latency = intended.elapsed();
            lock(&tally).record(i, answer, latency);
        });
    }
    while let Some(joined) = tasks.join_next().await {
        if joined.is_err() {
            lock(&tally).error("generator_task_failed");
        }
    }
    let tally = std::mem::take(&mut *lock(&tally));
    Run { tally, planned, sent, started, generator_lag_max: Some(lag_max) }
}

/// At most one request in flight, started on the schedule or, if the one
/// before is still running, as soon as it answers.
pub async fn one_at_a_time<F, Fut>(plan: Plan, request: F) -> Run
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Answer>,
{
    let planned = plan.requests();
    let mut tally = Tally::with_capacity(usize::try_from(planned).unwrap_or(0));
    let t0 = Instant::now();
    for i in 0..planned {
        let intended = plan.intended(t0, i);
        if intended > Instant::now() {
            tokio::time::sleep_until(intended).await;
        }
        let start = Instant::now();
        let answer = request(i).await;
        tally.record(i, answer, start.elapsed());
    }
    Run { tally, planned, sent: planned, started: t0.into_std(), generator_lag_max: None }
}

fn reap(tasks: &mut JoinSet<()>, tally: &Mutex<Tally>) {
    while let Some(joined) = tasks.try_join_next() {
        if joined.is_err() {
            lock(tally).error("generator_task_failed");
        }
    }
}

/// A poisoned tally is still a tally: a panicking request task cannot leave
/// it half-updated (each update is a few plain assignments).
fn lock(tally: &Mutex<Tally>) -> std::sync::MutexGuard<'_, Tally> {
    tally.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
