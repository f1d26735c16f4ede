//! A development schema registry that speaks the Confluent Schema Registry
//! REST API, so the Confluent clients used in production (Java serdes,
//! `confluent-kafka`, `schema_registry_converter`) work against it
//! unchanged.
//!
//! - [`avro`]: parsing, normalising and the compatibility rules (Avro schema
//!   resolution, via `apache-avro`'s checker).
//! - [`store`]: subjects, versions, ids and levels in Postgres; ids are never
//!   reused and one schema has one id under every subject.
//! - [`routes`]: the REST surface with Confluent's error codes and media
//!   type.
//!
//! Only AVRO schemas without references are supported; anything else is
//! refused with `42201` naming what is missing.

pub mod avro;
pub mod error;
pub mod routes;
pub mod settings;
pub mod store;

use std::sync::Arc;

use futures::FutureExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use settings::Settings;

/// Why the registry could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot connect to the registry database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot migrate the registry database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("HTTP server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Connects to the database, applies the migrations and serves the API on
/// `listener` until `shutdown` fires.
pub async fn run(settings: Settings, listener: TcpListener, shutdown: CancellationToken) -> Result<(), ServeError> {
    let pool = orderflow_process::database::connect(&settings.database).await?;
    sqlx::migrate!("../../migrations/registry").run(&pool).await?;
    let store = store::Store::new(pool.clone());
    let ready_pool = pool.clone();
    let ready = Arc::new(move || {
        let pool = ready_pool.clone();
        async move { sqlx::query("SELECT 1").execute(&pool).await.map(|_| ()).map_err(|e| e.to_string()) }.boxed()
    });
    let router = routes::router(store).merge(orderflow_telemetry::ops_router(ready));
    tracing::info!(addr = %listener.local_addr()?, "schema registry listening");
    orderflow_telemetry::serve(listener, router, shutdown).await?;
    pool.close().await;
    Ok(())
}
