//! Waiting for a command's outcome (`Prefer: wait=N`).
//!
//! The projector `NOTIFY`s `command_status` when it settles a command (and
//! `*` when it switches generations); one listener per ingress fans that out
//! to the requests waiting. A waiter subscribes *before* it reads the status,
//! so no settlement can slip between the read and the wait, and it re-reads
//! at least every half second in case the listener is reconnecting.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::status::{self, CommandStatus};

#[derive(Debug, Clone)]
pub struct Waiter {
    pool: PgPool,
    events: broadcast::Sender<String>,
}

impl Waiter {
    pub fn start(pool: PgPool, shutdown: CancellationToken) -> Self {
        let (events, _) = broadcast::channel(1024);
        let waiter = Self { pool, events };
        tokio::spawn(waiter.clone().listen(shutdown));
        waiter
    }

    async fn listen(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                error = self.relay_notifications() => {
                    tracing::warn!(%error, "command status listener failed; reconnecting");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Fans `command_status` notifications out to the waiters until the
    /// connection fails; returns why.
    async fn relay_notifications(&self) -> sqlx::Error {
        let mut listener = match PgListener::connect_with(&self.pool).await {
            Ok(listener) => listener,
            Err(error) => return error,
        };
        if let Err(error) = listener.listen("command_status").await {
            return error;
        }
        // Anything settled while we were not listening: everyone re-checks.
        let _ = self.events.send("*".into());
        loop {
            match listener.recv().await {
                Ok(notification) => {
                    let _ = self.events.send(notification.payload().to_owned());
                }
                Err(error) => return error,
            }
        }
    }

    /// Re-runs `check` whenever the projector reports progress (and at
    /// least every half second) until it yields something or `deadline`.
    pub async fn poll<T, F, Fut>(&self, deadline: Instant, mut check: F) -> Result<Option<T>, sqlx::Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, sqlx::Error>>,
    {
        // Subscribe first: progress between the check and the wait still wakes us.
        let mut events = self.events.subscribe();
        loop {
            if let Some(found) = check().await? {
                return Ok(Some(found));
            }
            let wake = Instant::now() + Duration::from_millis(500);
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return Ok(None),
                _ = tokio::time::sleep_until(wake.min(deadline)) => {}
                _ = events.recv() => {}
            }
        }
    }

    /// The command's status once it is settled, or `None` at `deadline`.
    pub async fn settled(&self, id: Uuid, deadline: Instant) -> Result<Option<CommandStatus>, sqlx::Error> {
        self.poll(deadline, || async move {
            Ok(status::read(&self.pool, id).await?.filter(|found| found.status != "pending"))
        })
        .await
    }

    /// Waits until the credentials read model (fed by its own topic) shows
    /// `user_id` at `version` or later, so a login right after a register or
    /// password change sees it. `false` if `deadline` came first.
    pub async fn credentials_at(&self, user_id: Uuid, version: i64, deadline: Instant) -> Result<bool, sqlx::Error> {
        let found = self
            .poll(deadline, || async move {
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
