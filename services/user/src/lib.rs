//! The user service.
//!
//! Consumes `users.commands` (group `user-service`), and for each command
//! commits, in one transaction of its own `users` database: the inbox row
//! (so a redelivery changes nothing), the change to `users`, and the
//! resulting events in the outbox. The [`orderflow_outbox::Relay`] publishes
//! them: `UserRegistered`, `UserProfileUpdated`, ... on `users.events` (no
//! credentials there), the latest credentials on `users.credentials`.
//!
//! - [`domain`]: what each command does and yields.
//! - [`handler`]: decoding, the transaction, dead letters.
//! - [`run`]: wires consumer, relay and the health/metrics endpoint.

pub mod domain;
pub mod handler;
pub mod settings;

use std::sync::Arc;

use orderflow_bus::consumer::{self, ConsumerOptions};
use orderflow_bus::topics::{self, USERS_COMMANDS};
use orderflow_bus::{Producer, admin};
use orderflow_contracts::Codec;
use orderflow_outbox::{Relay, RelayOptions};
use sqlx::postgres::PgPoolOptions;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use settings::Settings;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot connect to the users database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot migrate the users database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("schema registry: {0}")]
    Registry(#[from] orderflow_contracts::CodecError),
    #[error("kafka: {0}")]
    Admin(#[from] orderflow_bus::admin::AdminError),
    #[error("kafka: {0}")]
    Producer(#[from] orderflow_bus::ProducerError),
    #[error("kafka: {0}")]
    Consumer(#[from] orderflow_bus::consumer::ConsumerError),
    #[error("HTTP server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs the service until `shutdown` fires: consumer, relay and ops HTTP on
/// `listener`.
pub async fn run(settings: Settings, listener: TcpListener, shutdown: CancellationToken) -> Result<(), ServeError> {
    let pool =
        PgPoolOptions::new().max_connections(settings.database.max_connections).connect(&settings.database.url).await?;
    sqlx::migrate!("../../migrations/users").run(&pool).await?;
    let codec = Arc::new(Codec::new(&settings.registry.url));
    codec.register_all().await?;
    admin::ensure_topics(&settings.kafka, &topics::user_topics()).await?;
    let producer = Producer::new(&settings.kafka)?;

    let relay = Relay::new(pool.clone(), producer.clone(), RelayOptions::default());
    let relay_task = tokio::spawn(relay.run(shutdown.clone()));

    let handler = handler::CommandHandler {
        pool: pool.clone(),
        codec,
        kafka: settings.kafka.clone(),
        group: settings.group.clone(),
        admins: Arc::new(settings.bootstrap_admins.clone()),
    };
    let options = ConsumerOptions::new(settings.group.clone(), vec![settings.kafka.topic(USERS_COMMANDS)]);
    let consumer_task = {
        let (kafka, shutdown) = (settings.kafka.clone(), shutdown.clone());
        tokio::spawn(async move { consumer::run(&kafka, &options, &handler, shutdown).await })
    };

    let ready = orderflow_outbox::readiness(pool.clone(), producer.clone(), "SELECT 1");
    tracing::info!(addr = %listener.local_addr()?, "user service running");
    let served = orderflow_telemetry::serve(listener, orderflow_telemetry::ops_router(ready), shutdown.clone()).await;
    shutdown.cancel();
    let consumed = consumer_task.await;
    let _ = relay_task.await;
    producer.flush(std::time::Duration::from_secs(5));
    pool.close().await;
    served?;
    match consumed {
        Ok(result) => result?,
        Err(join) => tracing::error!(%join, "consumer task panicked"),
    }
    Ok(())
}
