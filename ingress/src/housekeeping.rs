//! The ingress's own tables (schema `ingress` in the readmodels database:
//! Idempotency-Key answers, login sessions): created at start-up, purged
//! periodically, one piece of code for each, so a table is only its SQL.

use std::future::Future;
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

/// Runs `purge` every `every` until `shutdown`, logging how many `what`
/// went; a failure is logged and retried at the next tick (the task itself
/// only ends at shutdown).
pub async fn purge_every<F, Fut>(
    what: &'static str,
    every: Duration,
    shutdown: CancellationToken,
    mut purge: F,
) -> Result<(), std::convert::Infallible>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64, sqlx::Error>>,
{
    let mut ticks = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = ticks.tick() => {}
        }
        match purge().await {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, what, "purged"),
            Err(error) => tracing::warn!(%error, what, "not purged; retrying later"),
        }
    }
}
