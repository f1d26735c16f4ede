//! The ingress's periodic chores on its own tables (expired idempotency
//! keys, expired sessions): one loop, so each chore is only its query.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

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
