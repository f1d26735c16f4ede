//! The read-model projector.
//!
//! Consumes the events of every domain, `users.credentials` and the
//! command topics into the `readmodels` database: users, the credentials
//! the login checks, orders, payments, an order-detail view (order,
//! payment and customer in one row), the catalog and the status (and produced version)
//! of every command. The ingress answers queries from the views in schema
//! `rm`.
//!
//! Only what a message changes is the projector's own ([`projection`]
//! dispatches to [`users`], [`orders`], [`payments`], [`products`] and
//! [`commands`]); the
//! rest — generations, offsets, fencing, batching, dead letters, rebuild by
//! replay and the view switch — is `orderflow_projection`'s. One projector
//! per database is active; a second one waits as a hot standby.

pub mod commands;
pub mod legacy;
pub mod orders;
pub mod payments;
pub mod products;
pub mod projection;
pub mod settings;
pub mod users;

use std::sync::Arc;

use orderflow_contracts::Codec;
use orderflow_runtime::{ProjectionProcess, RunError};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use projection::ReadModels;
pub use settings::Settings;

pub async fn connect(settings: &Settings) -> Result<PgPool, RunError> {
    let pool = orderflow_runtime::connect_projection(&settings.database).await?;
    sqlx::migrate!("../../migrations/readmodels").run(&pool).await?;
    Ok(pool)
}

/// Asks the running projector to rebuild the read models; the request id.
pub async fn request_rebuild(pool: &PgPool) -> Result<i64, sqlx::Error> {
    orderflow_projection::request_rebuild(pool, projection::NAME).await
}

/// Runs the projector until `shutdown`.
pub async fn run(settings: Settings, listener: TcpListener, shutdown: CancellationToken) -> Result<(), RunError> {
    // The read models show people's names and addresses: it opens them.
    let personal = orderflow_runtime::personal::opener(&settings.keys, settings.environment)?;
    let codec = Codec::new(&settings.registry.url).with_personal(personal);
    let projection = ReadModels::new(Arc::new(codec), settings.kafka.clone());
    run_with(settings, listener, shutdown, projection).await
}

/// Runs the projector with `projection` (tests pass a modified one) until
/// `shutdown`, or until a part of it dies, which stops it all with an error.
pub async fn run_with(
    settings: Settings,
    listener: TcpListener,
    shutdown: CancellationToken,
    projection: ReadModels,
) -> Result<(), RunError> {
    let pool = connect(&settings).await?;
    let process = ProjectionProcess {
        task: "read-model projection",
        kafka: settings.kafka.clone(),
        topics: orderflow_contracts::all_topics(),
        batch_size: settings.batch_size,
    };
    orderflow_runtime::run_projection(pool, process, projection, listener, shutdown, |_, _| {}).await
}
