//! The ingress's own tables (schema `ingress` in the readmodels database:
//! Idempotency-Key answers, login sessions): created at start-up, purged
//! periodically, one piece of code for each, so a table is only its SQL.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// The ingress's tables, in the order they are created (never edit one
/// that has shipped: add a file).
const TABLES: [&str; 2] =
    [include_str!("../../migrations/ingress/idempotency.sql"), include_str!("../../migrations/ingress/sessions.sql")];

/// Creates the ingress's schema and tables if they are missing. Replicas
/// starting together serialize on an advisory lock.
pub async fn prepare(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('orderflow-ingress-schema'))").execute(&mut *tx).await?;
    for table in TABLES {
        sqlx::raw_sql(table).execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// Purges expired idempotency keys and expired sessions every `every`
/// until `shutdown`; a failure is logged and retried at the next tick (the
/// task itself only ends at shutdown).
pub async fn purge_every(
    pool: PgPool,
    every: Duration,
    shutdown: CancellationToken,
) -> Result<(), std::convert::Infallible> {
    let mut ticks = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = ticks.tick() => {}
        }
        for (what, purged) in [
            ("expired idempotency keys", crate::idempotency::purge(&pool).await),
            ("expired sessions", crate::sessions::purge(&pool).await),
        ] {
            match purged {
                Ok(0) => {}
                Ok(rows) => tracing::info!(rows, what, "purged"),
                Err(error) => tracing::warn!(%error, what, "not purged; retrying later"),
            }
        }
    }
}
