//! The read-model projector.
//!
//! Consumes `users.events`, `users.credentials` and `users.commands` into
//! the `readmodels` database: the users read model, the credentials the
//! login checks, and the status (and produced version) of every command.
//! The ingress answers queries from the views in schema `rm`.
//!
//! Only [`apply`] (what a message changes) is the projector's own; the
//! rest — generations, offsets, fencing, batching, dead letters, rebuild by
//! replay and the view switch — is `orderflow_projection`'s. One projector
//! per database is active; a second one waits as a hot standby.

pub mod apply;
pub mod settings;

use std::sync::Arc;
use std::time::Duration;

use orderflow_bus::{Producer, admin, topics};
use orderflow_contracts::Codec;
use orderflow_outbox::{Relay, RelayOptions};
use orderflow_projection::{Engine, Options};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use apply::UsersProjection;
pub use settings::Settings;

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
    #[error("the users projection stopped: {0}")]
    Projection(#[from] orderflow_projection::Error),
    #[error("{0} ended unexpectedly")]
    Ended(&'static str),
}

pub async fn connect(settings: &Settings) -> Result<PgPool, ServeError> {
    let pool =
        PgPoolOptions::new().max_connections(settings.database.max_connections).connect(&settings.database.url).await?;
    sqlx::migrate!("../../migrations/readmodels").run(&pool).await?;
    Ok(pool)
}

/// Asks the running projector to rebuild the read models; the request id.
pub async fn request_rebuild(pool: &PgPool) -> Result<i64, sqlx::Error> {
    orderflow_projection::request_rebuild(pool, apply::NAME).await
}

/// Runs the projector until `shutdown`.
pub async fn run(settings: Settings, listener: TcpListener, shutdown: CancellationToken) -> Result<(), ServeError> {
    let projection = UsersProjection::new(Arc::new(Codec::new(&settings.registry.url)), settings.kafka.clone());
    run_with(settings, listener, shutdown, projection).await
}

/// Runs the projector with `projection` (tests pass a modified one) until
/// `shutdown`, or until a part of it ends, which ends it all with an error.
pub async fn run_with(
    settings: Settings,
    listener: TcpListener,
    shutdown: CancellationToken,
    projection: UsersProjection,
) -> Result<(), ServeError> {
    let pool = connect(&settings).await?;
    admin::ensure_topics(&settings.kafka, &topics::user_topics()).await?;
    let producer = Producer::new(&settings.kafka)?;
    let ready = orderflow_outbox::readiness(pool.clone(), producer.clone(), "SELECT 1");
    // Everything stops when one part ends: `tasks` is cancelled then.
    let tasks = shutdown.child_token();
    let mut http =
        tokio::spawn(orderflow_telemetry::serve(listener, orderflow_telemetry::ops_router(ready), tasks.clone()));
    // The projector publishes nothing but dead letters, through its outbox.
    let mut relay =
        tokio::spawn(Relay::new(pool.clone(), producer.clone(), RelayOptions::default()).run(tasks.clone()));
    let options = Options { batch_size: settings.batch_size, ..Options::new(settings.kafka.clone()) };
    let engine = Engine::new(pool.clone(), projection, options).run(tasks.clone());
    tokio::pin!(engine);

    let unexpected = |what| if tasks.is_cancelled() { Ok(()) } else { Err(ServeError::Ended(what)) };
    let (outcome, engine_done, relay_done, http_done) = tokio::select! {
        result = &mut engine => (result.map_err(ServeError::from), true, false, false),
        _ = &mut relay => (unexpected("the outbox relay"), false, true, false),
        served = &mut http => (match served {
            Ok(Err(error)) => Err(ServeError::Io(error)),
            _ => unexpected("the ops HTTP server"),
        }, false, false, true),
    };
    tasks.cancel();
    if !engine_done && let Err(error) = engine.await {
        tracing::warn!(%error, "the projection ended with an error while stopping");
    }
    if !relay_done {
        let _ = relay.await;
    }
    if !http_done {
        let _ = http.await;
    }
    producer.flush(Duration::from_secs(5));
    pool.close().await;
    outcome
}
