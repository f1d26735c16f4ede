//! Rebuilding a projection by replaying its topics.
//!
//! [`request_rebuild`] writes a request row; the active instance picks it up
//! and:
//!
//! 1. creates generation N+1, reads the topics' high watermarks **once**,
//!    and replays every topic into N+1 from offset 0 while N keeps serving
//!    and keeps up with new messages; a target fixed at the start is reached
//!    even under steady load (chasing fresh watermarks might never be);
//! 2. then stops N's runner, so where N stopped is fixed too, and lets N+1
//!    catch up to at least there (a short way: N+1 kept consuming);
//! 3. switches the views to N+1 in one transaction; N+1's runner goes on as
//!    the live one. N is kept (retired) until the next rebuild.
//!
//! The read model never goes dark and never goes back in time; the rebuilt
//! one holds everything the old one did. A live generation whose tables were
//! made from another template than the running code's is rebuilt the same
//! way at start-up, without feeding the old one meanwhile.

use std::time::Duration;

use sqlx::PgPool;

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("rebuild {0} did not finish within the timeout")]
    Timeout(i64),
    #[error("rebuild {id} failed: {error}")]
    Failed { id: i64, error: String },
}

/// Asks the active instance of projection `name` for a rebuild; returns the
/// request id.
pub async fn request_rebuild(pool: &PgPool, name: &str) -> Result<i64, sqlx::Error> {
    crate::install(pool).await?;
    sqlx::query_scalar("INSERT INTO projection.rebuild_requests (projection) VALUES ($1) RETURNING id")
        .bind(name)
        .fetch_one(pool)
        .await
}

/// Asks for rebuild `id` to stop: one not started yet ends at once; one
/// under way is dropped by the active instance at its next check (the live
/// generation serves on, untouched). Whether the request was still open.
pub async fn cancel_rebuild(pool: &PgPool, id: i64) -> Result<bool, sqlx::Error> {
    let open = sqlx::query(
        "UPDATE projection.rebuild_requests SET cancel_requested_at = now(),
           finished_at = CASE WHEN started_at IS NULL THEN now() END,
           error = CASE WHEN started_at IS NULL THEN 'cancelled before it started' END
         WHERE id = $1 AND finished_at IS NULL",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(open.rows_affected() == 1)
}

/// Whether an operator asked for rebuild `id` to stop.
pub(crate) async fn cancel_requested(pool: &PgPool, id: i64) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT cancel_requested_at IS NOT NULL FROM projection.rebuild_requests WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .map(|found| found.unwrap_or(false))
}

/// Waits for request `id`; returns the generation now live.
pub async fn wait_for_rebuild(pool: &PgPool, id: i64, timeout: Duration) -> Result<i32, RebuildError> {
    let until = tokio::time::Instant::now() + timeout;
    loop {
        let row: (Option<chrono::DateTime<chrono::Utc>>, Option<i32>, Option<String>) =
            sqlx::query_as("SELECT finished_at, generation, error FROM projection.rebuild_requests WHERE id = $1")
                .bind(id)
                .fetch_one(pool)
                .await?;
        match row {
            (Some(_), _, Some(error)) => return Err(RebuildError::Failed { id, error }),
            (Some(_), Some(generation), None) => return Ok(generation),
            _ if tokio::time::Instant::now() >= until => return Err(RebuildError::Timeout(id)),
            _ => tokio::time::sleep(Duration::from_millis(100).min(until - tokio::time::Instant::now())).await,
        }
    }
}

/// Claims the oldest open request of `name`.
pub(crate) async fn next_request(pool: &PgPool, name: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE projection.rebuild_requests SET started_at = now()
         WHERE id = (SELECT id FROM projection.rebuild_requests
                     WHERE projection = $1 AND started_at IS NULL ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING id",
    )
    .bind(name)
    .fetch_optional(pool)
    .await
}

/// Records how request `id` ended.
pub(crate) async fn finish(pool: &PgPool, id: i64, outcome: Result<i32, String>) -> Result<(), sqlx::Error> {
    let (generation, error) = match outcome {
        Ok(generation) => (Some(generation), None),
        Err(error) => (None, Some(error)),
    };
    sqlx::query("UPDATE projection.rebuild_requests SET finished_at = now(), generation = $2, error = $3 WHERE id = $1")
        .bind(id)
        .bind(generation)
        .bind(error)
        .execute(pool)
        .await
        .map(drop)
}

/// Requests that a previous active instance started and never finished.
pub(crate) async fn fail_interrupted(pool: &PgPool, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE projection.rebuild_requests SET finished_at = now(),
           error = 'interrupted: the instance doing it stopped; request it again'
         WHERE projection = $1 AND started_at IS NOT NULL AND finished_at IS NULL",
    )
    .bind(name)
    .execute(pool)
    .await
    .map(drop)
}
