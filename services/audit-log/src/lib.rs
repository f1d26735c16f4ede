//! The audit log service.
//!
//! Consumes every `*.events` topic ([`orderflow_contracts::event_topics`];
//! never a command topic, never `users.credentials`) into the `audit`
//! database: one record per message (by `message_id`) with its headers,
//! source position and payload as JSON, decoded with the writer schema and
//! stripped of every field the schema marks `orderflow.sensitive`
//! (`orderflow_contracts::json`). Records are hash-chained per source partition
//! (`orderflow_audit::chain`), with checkpoints for quick verification and
//! anchors where [`retention`] cut a chain. docs/audit.md has the design.
//!
//! The projection building block (`orderflow_projection`) does the rest:
//! offsets in the same transaction as the records, one active instance
//! (fenced), dead letters through the outbox, rebuild by replay, views
//! `audit.*` that the ingress reads.

pub mod projection;

pub mod retention;
pub mod settings;

use std::sync::Arc;
use std::time::Duration;

use orderflow_contracts::Codec;
use orderflow_runtime::{ProjectionProcess, RunError};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use projection::AuditProjection;
pub use settings::Settings;

pub async fn connect(settings: &Settings) -> Result<PgPool, RunError> {
    orderflow_runtime::connect_projection(&settings.database).await
}

/// Asks the running service to rebuild the audit log by replay; the request id.
pub async fn request_rebuild(pool: &PgPool) -> Result<i64, sqlx::Error> {
    orderflow_projection::request_rebuild(pool, projection::NAME).await
}

/// Cuts the records older than the retention setting every interval (if
/// one is set). Ends only with an error.
async fn retain(
    pool: PgPool,
    settings: settings::RetentionSettings,
    shutdown: CancellationToken,
) -> Result<(), sqlx::Error> {
    let Some(days) = settings.keep_days else {
        shutdown.cancelled().await;
        return Ok(());
    };
    let mut tick = tokio::time::interval(Duration::from_secs(settings.interval_seconds));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let cutoff = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
        // The views appear once the projection is active; until then there is nothing to cut.
        let ready: bool =
            sqlx::query_scalar("SELECT to_regclass('audit.records') IS NOT NULL").fetch_one(&pool).await?;
        if !ready {
            continue;
        }
        match retention::prune(&pool, cutoff).await {
            Ok(pruned) if pruned.records_removed > 0 => {
                tracing::info!(removed = pruned.records_removed, chains = pruned.chains_cut, %cutoff, "retention cut the audit log");
            }
            Ok(_) => {}
            // A busy database is no reason to stop recording: try next time.
            Err(error) => tracing::warn!(%error, "retention run failed"),
        }
    }
}

/// Runs the audit log until `shutdown`, or until a part of it dies, which
/// stops it all with an error.
pub async fn run(settings: Settings, listener: TcpListener, shutdown: CancellationToken) -> Result<(), RunError> {
    let pool = connect(&settings).await?;
    let process = ProjectionProcess {
        task: "audit projection",
        kafka: settings.kafka.clone(),
        topics: orderflow_contracts::event_topics(),
        batch_size: settings.batch_size,
    };
    let projection = AuditProjection::new(
        Arc::new(Codec::new(&settings.registry.url)),
        &settings.kafka,
        settings.domain.checkpoint_every,
    );
    let retention = settings.domain.retention.clone();
    let stop = shutdown.clone();
    orderflow_runtime::run_projection(pool, process, projection, listener, shutdown, move |supervisor, pool| {
        supervisor.spawn("retention", retain(pool.clone(), retention, stop));
    })
    .await
}
