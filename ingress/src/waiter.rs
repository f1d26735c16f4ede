//! Waiting for a command's outcome (`Prefer: wait=N`).
//!
//! The projector announces on `command_status`, once per transaction, the
//! ids of the commands it settled (comma-separated, over several
//! notifications if many), and `*` when it switches generations. One
//! listener per ingress feeds a registry keyed by command id: a waiter is
//! woken only by its own id (or `*`), then re-reads the read model once.
//! Nothing polls on a timer.
//!
//! A waiter registers *before* its first read, so a settlement between the
//! read and the wait still wakes it; it leaves the registry when it stops
//! waiting (answer, deadline, or the client went away). While the listener
//! is reconnecting nobody is woken; once it listens again it wakes everyone
//! (`*`), since anything may have been settled meanwhile.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The channel the projector announces on.
pub use orderflow_contracts::announcements::CHANNEL;

/// Waiting requests by command id. A `watch` per id: a wake-up marks the
/// value changed for every receiver, so one that is not polling at that
/// moment still sees it at its next wait.
#[derive(Debug, Default)]
struct Registry {
    waiting: Mutex<HashMap<Uuid, watch::Sender<()>>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, watch::Sender<()>>> {
        self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn subscribe(self: &Arc<Self>, id: Uuid) -> Subscription {
        let receiver = self.lock().entry(id).or_insert_with(|| watch::channel(()).0).subscribe();
        Subscription { id, receiver: Some(receiver), registry: Arc::clone(self) }
    }

    /// Wakes the waiters of every id in `payload` (`*`: everyone).
    fn wake(&self, payload: &str) {
        let waiting = self.lock();
        if payload == "*" {
            waiting.values().for_each(|sender| sender.send_replace(()));
            return;
        }
        for id in payload.split(',').filter_map(|raw| Uuid::parse_str(raw.trim()).ok()) {
            if let Some(sender) = waiting.get(&id) {
                sender.send_replace(());
            }
        }
    }

    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// One request's place in the registry; leaving it (drop) removes the id
/// once nobody else waits for it.
#[derive(Debug)]
struct Subscription {
    id: Uuid,
    receiver: Option<watch::Receiver<()>>,
    registry: Arc<Registry>,
}

impl Subscription {
    /// Until the id is announced (or `*`) after the previous call.
    async fn woken(&mut self) {
        if let Some(receiver) = self.receiver.as_mut() {
            // The sender lives as long as any receiver does, in the registry.
            let _ = receiver.changed().await;
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        drop(self.receiver.take());
        let mut waiting = self.registry.lock();
        if waiting.get(&self.id).is_some_and(|sender| sender.receiver_count() == 0) {
            waiting.remove(&self.id);
        }
    }
}

#[derive(Debug, Clone)]
pub struct Waiter {
    pool: PgPool,
    registry: Arc<Registry>,
    sent: Arc<Sent>,
    /// The process's shutdown: a wait in progress ends with it.
    stopping: CancellationToken,
    /// Orders' changes, from the same notifications (`crate::live`).
    live: Arc<crate::live::Live>,
}

/// Commands this process sent and has not seen settled yet: when, and of
/// which type, for the settle-time histogram.
#[derive(Debug, Default)]
struct Sent {
    commands: Mutex<HashMap<Uuid, (Instant, &'static str)>>,
}

/// Commands followed at most; past it, those older than [`FORGET_AFTER`]
/// are dropped (a command never settled is a lag alert's business).
const MAX_FOLLOWED: usize = 100_000;
const FORGET_AFTER: Duration = Duration::from_secs(600);

static SETTLE: std::sync::LazyLock<prometheus::HistogramVec> = std::sync::LazyLock::new(|| {
    orderflow_telemetry::register(
        prometheus::HistogramVec::new(
            prometheus::HistogramOpts::new(
                "orderflow_command_settle_seconds",
                "From a command accepted by this process to its outcome in the read model, by command type",
            )
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
            &["command_type"],
        )
        .expect("settle histogram"),
    )
});

impl Sent {
    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, (Instant, &'static str)>> {
        self.commands.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn sent(&self, id: Uuid, command_type: &'static str) {
        let mut commands = self.lock();
        if commands.len() >= MAX_FOLLOWED {
            commands.retain(|_, (at, _)| at.elapsed() < FORGET_AFTER);
        }
        if commands.len() < MAX_FOLLOWED {
            commands.insert(id, (Instant::now(), command_type));
        }
    }

    fn settled(&self, payload: &str) {
        if payload == "*" {
            return;
        }
        let mut commands = self.lock();
        for id in payload.split(',').filter_map(|raw| Uuid::parse_str(raw.trim()).ok()) {
            if let Some((at, command_type)) = commands.remove(&id) {
                SETTLE.with_label_values(&[command_type]).observe(at.elapsed().as_secs_f64());
            }
        }
    }
}

impl Waiter {
    /// Waits end when `stopping` is cancelled (see [`Waiter::until`]).
    pub fn new(pool: PgPool, stopping: CancellationToken) -> Self {
        Self { pool, registry: Arc::default(), sent: Arc::default(), stopping, live: Arc::default() }
    }

    /// Orders' changes as the projector announces them.
    pub fn live(&self) -> &Arc<crate::live::Live> {
        &self.live
    }

    /// Ends with the process: a subscription stops with it.
    pub fn stopping(&self) -> &CancellationToken {
        &self.stopping
    }

    /// Follows command `id`, just sent, until its outcome is announced
    /// (`orderflow_command_settle_seconds`).
    pub fn sent(&self, id: Uuid, command_type: &'static str) {
        self.sent.sent(id, command_type);
    }

    /// Feeds the registry from `command_status` until `shutdown`,
    /// reconnecting after failures.
    pub async fn listen(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                error = self.relay_notifications() => {
                    tracing::warn!(%error, "command status listener failed; reconnecting");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Wakes waiters by id until the connection fails; returns why.
    async fn relay_notifications(&self) -> sqlx::Error {
        let mut listener = match PgListener::connect_with(&self.pool).await {
            Ok(listener) => listener,
            Err(error) => return error,
        };
        if let Err(error) = listener.listen(CHANNEL).await {
            return error;
        }
        // Anything settled while we were not listening: everyone re-checks.
        self.registry.wake("*");
        self.live.announce("*");
        loop {
            match listener.recv().await {
                Ok(notification) => {
                    self.registry.wake(notification.payload());
                    self.sent.settled(notification.payload());
                    self.live.announce(notification.payload());
                }
                Err(error) => return error,
            }
        }
    }

    /// How many command ids requests are waiting for right now.
    pub fn waiting(&self) -> usize {
        self.registry.len()
    }

    /// Runs `check` now and again each time command `id` is announced,
    /// until it yields something, or `None` at `deadline`.
    pub async fn until<T, F, Fut>(&self, id: Uuid, deadline: Instant, mut check: F) -> Result<Option<T>, sqlx::Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, sqlx::Error>>,
    {
        // Register first: an announcement between the check and the wait
        // still marks the subscription changed.
        let mut subscription = self.registry.subscribe(id);
        loop {
            if let Some(found) = check().await? {
                return Ok(Some(found));
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return Ok(None),
                // Stopping: nothing announces outcomes any more, so answer
                // now what a wait that runs out answers (202 with the
                // status URL: the command is on the bus) rather than hold
                // the shutdown until the deadline.
                _ = self.stopping.cancelled() => return check().await,
                _ = subscription.woken() => {}
            }
        }
    }

    /// Waits until the credentials read model (fed by its own topic) shows
    /// `user_id` at `version` or later — the version command `command_id`
    /// produced, whose credentials record the projector announces under the
    /// command's id — so a login right after the answer sees it. `false` if
    /// `deadline` came first.
    pub async fn credentials_at(
        &self,
        command_id: Uuid,
        user_id: Uuid,
        version: i64,
        deadline: Instant,
    ) -> Result<bool, sqlx::Error> {
        let found = self
            .until(command_id, deadline, || async move {
                let caught_up: Option<bool> =
                    sqlx::query_scalar("SELECT version >= $2 FROM rm.credentials WHERE user_id = $1")
                        .bind(user_id)
                        .bind(version)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(caught_up.filter(|c| *c))
            })
            .await?;
        Ok(found.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_is_woken_by_its_own_id_or_a_star_and_leaves_no_trace() {
        let registry = Arc::new(Registry::default());
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut first = registry.subscribe(a);
        let mut second = registry.subscribe(a);
        let mut other = registry.subscribe(b);
        assert_eq!(registry.len(), 2);

        // Announced before anyone waits: still seen at the next wait.
        registry.wake(&format!("{},{}", Uuid::now_v7(), a));
        let soon = Duration::from_millis(50);
        assert!(tokio::time::timeout(soon, first.woken()).await.is_ok());
        assert!(tokio::time::timeout(soon, second.woken()).await.is_ok());
        assert!(tokio::time::timeout(soon, other.woken()).await.is_err(), "b was not announced");
        assert!(tokio::time::timeout(soon, first.woken()).await.is_err(), "one announcement wakes once");

        registry.wake("*");
        assert!(tokio::time::timeout(soon, other.woken()).await.is_ok());
        registry.wake("not-a-uuid,,");

        drop(first);
        assert_eq!(registry.len(), 2, "a is still awaited by the second waiter");
        drop(second);
        drop(other);
        assert_eq!(registry.len(), 0);
    }
}
