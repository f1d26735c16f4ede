//! Rebuilding the read models by replaying the topics.
//!
//! `projector rebuild` writes a request row; the running projector picks it
//! up and:
//!
//! 1. creates generation N+1 and replays every topic into it from offset 0
//!    while generation N keeps serving and keeps up with new events;
//! 2. once N+1 has reached the topics' high watermarks, stops N's runner and
//!    lets N+1 catch up to at least where N stopped;
//! 3. switches the `rm` views to N+1 in one transaction; N+1's runner simply
//!    goes on as the live one. N is kept (retired) until the next rebuild.
//!
//! The read models never go dark and never go back in time; the rebuilt one
//! holds everything the old one did.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::generation;
use crate::runner::{Runner, high_watermarks};
use crate::{LiveRunner, Projector};

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Runner(#[from] crate::runner::RunnerError),
    #[error("the new generation's runner stopped early")]
    RunnerStopped,
    #[error("rebuild {0} did not finish within the timeout")]
    Timeout(i64),
    #[error("rebuild {id} failed: {error}")]
    Failed { id: i64, error: String },
}

/// Asks the running projector for a rebuild; returns the request id.
pub async fn request(pool: &PgPool) -> Result<i64, sqlx::Error> {
    let id = sqlx::query_scalar("INSERT INTO rebuild_requests DEFAULT VALUES RETURNING id").fetch_one(pool).await?;
    sqlx::query("SELECT pg_notify('rebuild', '')").execute(pool).await?;
    Ok(id)
}

/// Waits for request `id`; returns the generation now live.
pub async fn wait(pool: &PgPool, id: i64, timeout: Duration) -> Result<i32, RebuildError> {
    let until = tokio::time::Instant::now() + timeout;
    loop {
        let row: (Option<chrono::DateTime<chrono::Utc>>, Option<i32>, Option<String>) =
            sqlx::query_as("SELECT finished_at, generation, error FROM rebuild_requests WHERE id = $1")
                .bind(id)
                .fetch_one(pool)
                .await?;
        match row {
            (Some(_), _, Some(error)) => return Err(RebuildError::Failed { id, error }),
            (Some(_), Some(generation), None) => return Ok(generation),
            _ if tokio::time::Instant::now() > until => return Err(RebuildError::Timeout(id)),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn reached(current: &HashMap<(String, i32), i64>, target: &HashMap<(String, i32), i64>) -> bool {
    target.iter().all(|(tp, want)| *want == 0 || current.get(tp).is_some_and(|have| have >= want))
}

impl Projector {
    /// Serves rebuild requests until `shutdown`.
    pub(crate) async fn serve_rebuilds(&self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            match self.next_request().await {
                Ok(Some(id)) => {
                    tracing::info!(request = id, "rebuild started");
                    let outcome = self.rebuild(&shutdown).await;
                    let (generation, error) = match &outcome {
                        Ok(g) => (Some(*g), None),
                        Err(e) => (None, Some(e.to_string())),
                    };
                    if let Some(error) = &error {
                        tracing::error!(request = id, %error, "rebuild failed");
                    } else {
                        tracing::info!(request = id, generation, "rebuild finished; the rebuilt read model is live");
                    }
                    let _ = sqlx::query(
                        "UPDATE rebuild_requests SET finished_at = now(), generation = $2, error = $3 WHERE id = $1",
                    )
                    .bind(id)
                    .bind(generation)
                    .bind(error)
                    .execute(&self.pool)
                    .await;
                    continue;
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "cannot read rebuild requests"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    async fn next_request(&self) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar(
            "UPDATE rebuild_requests SET started_at = now()
             WHERE id = (SELECT id FROM rebuild_requests WHERE started_at IS NULL ORDER BY id LIMIT 1)
             RETURNING id",
        )
        .fetch_optional(&self.pool)
        .await
    }

    async fn offsets(&self, generation: i32) -> Result<HashMap<(String, i32), i64>, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        generation::offsets(&mut conn, generation).await
    }

    /// Replays into a new generation and switches to it.
    pub async fn rebuild(&self, shutdown: &CancellationToken) -> Result<i32, RebuildError> {
        let next = generation::create(&self.pool).await?;
        let stop = CancellationToken::new();
        let runner = Runner { generation: next, ..self.runner_template.clone() };
        let task = tokio::spawn(runner.run(stop.clone()));
        let outcome = self.catch_up_and_switch(next, &stop, &task, shutdown).await;
        match outcome {
            Ok(()) => {
                let mut live = self.live.lock().await;
                let previous = live.generation;
                *live = LiveRunner { generation: next, stop, task };
                drop(live);
                generation::drop_older_than(&self.pool, previous).await?;
                Ok(next)
            }
            Err(error) => {
                stop.cancel();
                let _ = task.await;
                sqlx::query("UPDATE projection_generations SET status = 'failed' WHERE generation = $1")
                    .bind(next)
                    .execute(&self.pool)
                    .await?;
                // If the live runner was stopped for the switch, start it again.
                self.ensure_live_running().await;
                Err(error)
            }
        }
    }

    async fn catch_up_and_switch(
        &self,
        next: i32,
        stop: &CancellationToken,
        task: &tokio::task::JoinHandle<Result<(), crate::runner::RunnerError>>,
        shutdown: &CancellationToken,
    ) -> Result<(), RebuildError> {
        // 1. Replay up to the current end of every topic.
        loop {
            if task.is_finished() || shutdown.is_cancelled() {
                return Err(RebuildError::RunnerStopped);
            }
            let target = high_watermarks(&self.runner_template.kafka).await?;
            if reached(&self.offsets(next).await?, &target) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // 2. Stop the live runner; the new one must hold all it had.
        let live = self.live.lock().await;
        live.stop.cancel();
        while !live.task.is_finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let target = self.offsets(live.generation).await?;
        drop(live);
        loop {
            if task.is_finished() || stop.is_cancelled() {
                return Err(RebuildError::RunnerStopped);
            }
            if reached(&self.offsets(next).await?, &target) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // 3. Switch readers over.
        generation::switch_to(&self.pool, next).await?;
        Ok(())
    }
}
