use std::sync::LazyLock;
use std::time::Duration;

use futures::future::join_all;
use orderflow_bus::Producer;
use prometheus::{IntCounter, IntGauge};
use sqlx::postgres::PgListener;
use sqlx::{PgPool, Row};
use tokio_util::sync::CancellationToken;

use crate::OutboxError;

static PUBLISHED: LazyLock<IntCounter> = LazyLock::new(|| {
    orderflow_telemetry::register(
        IntCounter::new("orderflow_outbox_published_total", "Outbox rows published and confirmed by the broker")
            .expect("valid metric"),
    )
});
static LEADER: LazyLock<IntGauge> = LazyLock::new(|| {
    orderflow_telemetry::register(
        IntGauge::new("orderflow_outbox_relay_leader", "1 while this process is the active outbox relay")
            .expect("valid metric"),
    )
});

/// How the relay batches, polls and cleans up.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// Rows per batch; all are sent before any confirmation is awaited.
    pub batch_size: i64,
    /// A safety net: the relay wakes on `NOTIFY outbox`, and at least this often.
    pub poll_interval: Duration,
    /// Published rows are deleted after this long.
    pub retention: Duration,
    /// Advisory-lock key: one relay per database publishes at a time, which
    /// keeps per-key order across replicas.
    pub lock_key: i64,
}

impl Default for RelayOptions {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_secs(1),
            retention: Duration::from_secs(3600),
            lock_key: 0x6f75_7462_6f78, // "outbox"
        }
    }
}

/// Publishes committed outbox rows in id order.
#[derive(Debug, Clone)]
pub struct Relay {
    pool: PgPool,
    producer: Producer,
    options: RelayOptions,
}

impl Relay {
    pub fn new(pool: PgPool, producer: Producer, options: RelayOptions) -> Self {
        Self { pool, producer, options }
    }

    /// Publishes one batch; returns how many rows were published. Rows are
    /// marked published only after the broker confirmed them, and only the
    /// confirmed prefix: a row after a failure waits for the next batch, so
    /// per-key order is never inverted.
    pub async fn relay_once(&self) -> Result<usize, OutboxError> {
        let rows = sqlx::query(
            "SELECT id, topic, message_key, payload, header_names, header_values FROM outbox
             WHERE published_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(self.options.batch_size)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let records: Vec<(i64, crate::OutboxMessage)> = rows
            .into_iter()
            .map(|row| {
                let names: Vec<String> = row.get("header_names");
                let values: Vec<Vec<u8>> = row.get("header_values");
                let message = crate::OutboxMessage {
                    topic: row.get("topic"),
                    key: row.get("message_key"),
                    payload: row.get("payload"),
                    headers: names.into_iter().zip(values).collect(),
                };
                (row.get("id"), message)
            })
            .collect();
        // Every send is queued (in id order) before any ack is awaited; the
        // idempotent producer keeps that order within each partition.
        let results =
            join_all(records.iter().map(|(_, m)| self.producer.send(&m.topic, &m.key, &m.payload, &m.headers))).await;
        let confirmed: Vec<i64> =
            records.iter().zip(&results).take_while(|(_, result)| result.is_ok()).map(|((id, _), _)| *id).collect();
        orderflow_bus::failpoint::hit("relay.after_ack");
        if !confirmed.is_empty() {
            sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
                .bind(&confirmed)
                .execute(&self.pool)
                .await?;
            PUBLISHED.inc_by(confirmed.len() as u64);
        }
        if let Some(Err(error)) = results.into_iter().find(Result::is_err) {
            return Err(error.into());
        }
        Ok(confirmed.len())
    }

    /// Deletes rows published longer ago than the retention.
    pub async fn clean_up(&self) -> Result<u64, OutboxError> {
        let seconds = self.options.retention.as_secs_f64();
        Ok(sqlx::query("DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1)")
            .bind(seconds)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Runs until `shutdown`: waits to become the one active relay of this
    /// database, then publishes whenever rows are committed.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            match self.lead(&shutdown).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(error) => {
                    tracing::warn!(%error, "outbox relay failed; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn lead(&self, shutdown: &CancellationToken) -> Result<(), OutboxError> {
        // A session-level lock on a connection of its own: held as long as
        // that connection lives, released by Postgres if this process dies.
        let mut lock = self.pool.acquire().await?.detach();
        let leader: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(self.options.lock_key)
            .fetch_one(&mut lock)
            .await?;
        if !leader {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(self.options.poll_interval) => {}
            }
            return Ok(());
        }
        LEADER.set(1);
        let outcome = self.publish_while_leader(&mut lock, shutdown).await;
        LEADER.set(0);
        outcome
    }

    async fn publish_while_leader(
        &self,
        lock: &mut sqlx::PgConnection,
        shutdown: &CancellationToken,
    ) -> Result<(), OutboxError> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen("outbox").await?;
        tracing::info!("outbox relay is the active publisher");
        let mut cleaned = tokio::time::Instant::now();
        loop {
            let published = self.relay_once().await?;
            if published as i64 >= self.options.batch_size {
                continue;
            }
            if cleaned.elapsed() > Duration::from_secs(60) {
                self.clean_up().await?;
                cleaned = tokio::time::Instant::now();
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                notified = listener.recv() => { notified?; }
                _ = tokio::time::sleep(self.options.poll_interval) => {
                    // Still holding the lock? (The lock's connection may have died.)
                    sqlx::query("SELECT 1").execute(&mut *lock).await?;
                }
            }
        }
    }
}
