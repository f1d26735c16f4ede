//! The read-model projector.
//!
//! Consumes `users.events`, `users.credentials` and `users.commands` into
//! the `readmodels` database: the users read model, the credentials the
//! login checks, and the status of every command. The ingress answers
//! queries from the views in schema `rm`.
//!
//! - [`generation`]: read models live in generation schemas; `rm` views
//!   point at the live one.
//! - [`runner`]: manual partition assignment, offsets stored with the
//!   changes, batches under savepoints, poison events dead-lettered through
//!   the outbox.
//! - [`apply`]: idempotent, version-guarded changes per event.
//! - [`rebuild`]: replay into a new generation while the old one serves,
//!   then switch.
//!
//! One projector per database is active (advisory lock); a second one waits
//! as a hot standby.

pub mod apply;
pub mod generation;
pub mod rebuild;
pub mod runner;
pub mod settings;

use std::sync::Arc;
use std::time::Duration;

use orderflow_bus::{Producer, admin};
use orderflow_contracts::Codec;
use orderflow_outbox::{Relay, RelayOptions};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use settings::Settings;

use crate::runner::{Runner, RunnerError};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot use the readmodels database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot migrate the readmodels database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("kafka: {0}")]
    Admin(#[from] orderflow_bus::admin::AdminError),
    #[error("kafka: {0}")]
    Producer(#[from] orderflow_bus::ProducerError),
    #[error("HTTP server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The runner currently feeding the live generation.
#[derive(Debug)]
pub(crate) struct LiveRunner {
    generation: i32,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), RunnerError>>,
}

/// The running projector.
#[derive(Debug)]
pub struct Projector {
    pool: PgPool,
    runner_template: Runner,
    live: tokio::sync::Mutex<LiveRunner>,
}

impl LiveRunner {
    /// Starts a runner for `generation` built like `template`.
    fn spawn(template: &Runner, generation: i32) -> Self {
        let stop = CancellationToken::new();
        let runner = Runner { generation, ..template.clone() };
        LiveRunner { generation, stop: stop.clone(), task: tokio::spawn(runner.run(stop)) }
    }
}

impl Projector {
    /// Restarts the live runner if it stopped (on its own, or for a switch
    /// that then failed).
    pub(crate) async fn ensure_live_running(&self) {
        let mut live = self.live.lock().await;
        if live.task.is_finished() {
            *live = LiveRunner::spawn(&self.runner_template, live.generation);
        }
    }

    /// The live generation.
    pub async fn live_generation(&self) -> i32 {
        self.live.lock().await.generation
    }
}

pub async fn connect(settings: &Settings) -> Result<PgPool, ServeError> {
    let pool = orderflow_runtime::database::connect(&settings.database).await?;
    orderflow_outbox::migrate(&pool).await?;
    sqlx::migrate!("../../migrations/readmodels").run(&pool).await?;
    Ok(pool)
}

/// Waits until this process holds the projector lock of the database (a
/// second projector is a standby). Returns the connection holding it.
async fn become_active(pool: &PgPool, shutdown: &CancellationToken) -> Result<Option<sqlx::PgConnection>, sqlx::Error> {
    let mut conn = pool.acquire().await?.detach();
    loop {
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(7072)").fetch_one(&mut conn).await?;
        if got {
            return Ok(Some(conn));
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Runs the projector until `shutdown`.
pub async fn run(settings: Settings, listener: TcpListener, shutdown: CancellationToken) -> Result<(), ServeError> {
    let pool = connect(&settings).await?;
    admin::ensure_topics(
        &settings.kafka,
        &orderflow_contracts::topics::with_dead_letters(orderflow_contracts::users::TOPICS),
    )
    .await?;
    let producer = Producer::new(&settings.kafka)?;
    let ready = orderflow_runtime::readiness(orderflow_runtime::Health::default(), pool.clone(), producer.clone());
    let http =
        tokio::spawn(orderflow_telemetry::serve(listener, orderflow_telemetry::ops_router(ready), shutdown.clone()));

    let Some(_lock) = become_active(&pool, &shutdown).await? else {
        let _ = http.await;
        return Ok(());
    };
    let generation = generation::live_or_create(&pool).await?;
    let template = Runner {
        pool: pool.clone(),
        codec: Arc::new(Codec::new(&settings.registry.url)),
        kafka: settings.kafka.clone(),
        generation,
        batch_size: settings.batch_size,
        max_attempts: 4,
    };
    let projector = Arc::new(Projector {
        pool: pool.clone(),
        live: tokio::sync::Mutex::new(LiveRunner::spawn(&template, generation)),
        runner_template: template,
    });
    tracing::info!(generation, "projector active");

    let relay = tokio::spawn(Relay::new(pool.clone(), producer.clone(), RelayOptions::default()).run(shutdown.clone()));
    let rebuilds = {
        let (projector, shutdown) = (Arc::clone(&projector), shutdown.clone());
        tokio::spawn(async move { projector.serve_rebuilds(shutdown).await })
    };
    // Restart the live runner if it ever stops on its own (broker or database errors).
    while !shutdown.is_cancelled() {
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                projector.ensure_live_running().await;
            }
        }
    }
    let _ = rebuilds.await;
    // The rebuild task has ended, so this is the last owner.
    let live = match Arc::try_unwrap(projector) {
        Ok(projector) => projector.live.into_inner(),
        Err(_) => unreachable!("the projector is shared only with the rebuild task, which has ended"),
    };
    live.stop.cancel();
    if let Ok(Err(error)) = live.task.await {
        tracing::error!(%error, "projection ended with an error");
    }
    let _ = relay.await;
    let _ = http.await;
    producer.flush(Duration::from_secs(5));
    Ok(())
}
