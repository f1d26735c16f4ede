//! One active instance per projection and database, and fencing.
//!
//! The advisory lock decides who is active; it is held by one session, so
//! it is gone the moment that connection is (a Postgres restart, a network
//! cut) — possibly while this process still thinks it is active. Hence the
//! epoch: whoever becomes active bumps `projection.lease.epoch`, and every
//! transaction of the active instance reads it `FOR SHARE` first and aborts
//! if it is not its own. The share lock also makes the bump wait for the
//! transactions in flight, so no write of the old instance can commit after
//! the new one took over.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::Error;

/// The lock connection and the epoch this instance won.
#[derive(Debug)]
pub(crate) struct Lease {
    name: String,
    conn: PgConnection,
    pub epoch: i64,
}

fn holder() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown-host".into());
    format!("{host} pid {}", std::process::id())
}

impl Lease {
    /// Waits until this process holds the projection's lock, then takes the
    /// next epoch. `None` if `shutdown` came first.
    pub async fn acquire(pool: &PgPool, name: &str, shutdown: &CancellationToken) -> Result<Option<Self>, Error> {
        let mut conn = pool.acquire().await?.detach();
        loop {
            let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, hashtext($2))")
                .bind(crate::LOCK_ACTIVE)
                .bind(name)
                .fetch_one(&mut conn)
                .await?;
            if got {
                break;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(None),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        let epoch: i64 = sqlx::query_scalar(
            "INSERT INTO projection.lease (projection, epoch, holder) VALUES ($1, 1, $2)
             ON CONFLICT (projection) DO UPDATE
               SET epoch = projection.lease.epoch + 1, holder = EXCLUDED.holder, acquired_at = now()
             RETURNING epoch",
        )
        .bind(name)
        .bind(holder())
        .fetch_one(&mut conn)
        .await?;
        Ok(Some(Self { name: name.to_owned(), conn, epoch }))
    }

    /// Whether this instance may still act: the lock connection is alive
    /// (so the lock is still ours) and nobody took a later epoch.
    pub async fn check(&mut self) -> Result<(), Error> {
        let current: Option<i64> = sqlx::query_scalar("SELECT epoch FROM projection.lease WHERE projection = $1")
            .bind(&self.name)
            .fetch_optional(&mut self.conn)
            .await
            .map_err(|source| Error::LockLost { projection: self.name.clone(), source })?;
        if current != Some(self.epoch) {
            return Err(Error::Fenced { projection: self.name.clone(), mine: self.epoch, current });
        }
        Ok(())
    }
}

/// In a transaction that is about to write: holds the lease row `FOR SHARE`
/// until it ends, and fails if `epoch` is not the current one.
pub(crate) async fn hold(tx: &mut PgConnection, name: &str, epoch: i64) -> Result<(), FenceError> {
    let current: Option<i64> = sqlx::query_scalar("SELECT epoch FROM projection.lease WHERE projection = $1 FOR SHARE")
        .bind(name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(FenceError::Database)?;
    if current == Some(epoch) { Ok(()) } else { Err(FenceError::Fenced { current }) }
}

#[derive(Debug)]
pub(crate) enum FenceError {
    Database(sqlx::Error),
    Fenced { current: Option<i64> },
}
