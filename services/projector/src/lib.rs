//! The read-model projector.
//!
//! Consumes the events of every domain, `users.credentials` and the
//! command topics into the `readmodels` database: users, the credentials
//! the login checks, orders, payments, an order-detail view (order,
//! payment and customer in one row) and the status (and produced version)
//! of every command. The ingress answers queries from the views in schema
//! `rm`.
//!
//! Only what a message changes is the projector's own ([`projection`]
//! dispatches to [`users`], [`orders`], [`payments`] and [`commands`]); the
//! rest — generations, offsets, fencing, batching, dead letters, rebuild by
//! replay and the view switch — is `orderflow_projection`'s. One projector
//! per database is active; a second one waits as a hot standby.

pub mod commands;
pub mod orders;
pub mod payments;
pub mod projection;
pub mod settings;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use orderflow_bus::{Producer, admin};
use orderflow_contracts::Codec;
use orderflow_outbox::{Relay, RelayOptions};
use orderflow_projection::{Engine, Options};
use orderflow_runtime::Supervisor;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use projection::ReadModels;
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
    #[error(transparent)]
    Task(#[from] orderflow_runtime::TaskFailed),
}

pub async fn connect(settings: &Settings) -> Result<PgPool, ServeError> {
    let pool = orderflow_runtime::database::connect(&settings.database).await?;
    orderflow_outbox::migrate(&pool).await?;
    sqlx::migrate!("../../migrations/readmodels").run(&pool).await?;
    Ok(pool)
}

/// Asks the running projector to rebuild the read models; the request id.
pub async fn request_rebuild(pool: &PgPool) -> Result<i64, sqlx::Error> {
    orderflow_projection::request_rebuild(pool, projection::NAME).await
}

/// Runs the projector until `shutdown`.
pub async fn run(settings: Settings, listener: TcpListener, shutdown: CancellationToken) -> Result<(), ServeError> {
    let projection = ReadModels::new(Arc::new(Codec::new(&settings.registry.url)), settings.kafka.clone());
    run_with(settings, listener, shutdown, projection).await
}

/// Runs the projector with `projection` (tests pass a modified one) until
/// `shutdown`, or until a part of it dies, which stops it all with an error.
pub async fn run_with(
    settings: Settings,
    listener: TcpListener,
    shutdown: CancellationToken,
    projection: ReadModels,
) -> Result<(), ServeError> {
    let pool = connect(&settings).await?;
    admin::ensure_topics(
        &settings.kafka,
        &orderflow_contracts::topics::with_dead_letters(&orderflow_contracts::all_topics()),
    )
    .await?;
    let producer = Producer::new(&settings.kafka)?;
    let mut supervisor = Supervisor::new(shutdown.clone());
    let ready = orderflow_runtime::readiness(supervisor.health(), pool.clone(), producer.clone(), "SELECT 1");
    supervisor.spawn(
        "ops http",
        orderflow_telemetry::serve(listener, orderflow_telemetry::ops_router(ready), shutdown.clone()),
    );
    // The projector publishes nothing but dead letters, through its outbox.
    let relay = Relay::new(pool.clone(), producer.clone(), RelayOptions::default());
    supervisor.spawn("outbox relay", relay.run(shutdown.clone()));
    let options = Options { batch_size: settings.batch_size, ..Options::new(settings.kafka.clone()) };
    supervisor.spawn("read-model projection", Engine::new(pool.clone(), projection, options).run(shutdown.clone()));
    let outcome = supervisor.wait().await;
    producer.flush(Duration::from_secs(5));
    pool.close().await;
    Ok(outcome?)
}
