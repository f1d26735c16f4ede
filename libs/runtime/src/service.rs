//! The whole process of a domain service.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::FutureExt;
use orderflow_bus::consumer::{self, ConsumerOptions};
use orderflow_bus::{Producer, admin};
use orderflow_config::ServiceSettings;
use orderflow_contracts::{Codec, topics};
use orderflow_outbox::{Relay, RelayOptions};
use orderflow_telemetry::ReadinessCheck;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::effects::Effector;
use crate::{Service, TransactionalHandler, database};
use orderflow_process::{Health, Supervisor, TaskFailed};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot connect to the service database: {0}")]
    Database(#[source] sqlx::Error),
    #[error("cannot migrate the service database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("schema registry: {0}")]
    Registry(#[from] orderflow_contracts::CodecError),
    #[error("kafka: {0}")]
    Admin(#[from] orderflow_bus::admin::AdminError),
    #[error("kafka: {0}")]
    Producer(#[from] orderflow_bus::ProducerError),
    #[error("HTTP listener: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Task(#[from] TaskFailed),
    #[error("data keys: {0}")]
    Keys(String),
}

/// `/health/ready`: every task alive, `probe` answers on the database (the
/// ingress asks for the read-model views it serves from), and the broker
/// answers.
pub fn readiness(health: Health, pool: PgPool, producer: Producer, probe: &'static str) -> Arc<dyn ReadinessCheck> {
    Arc::new(move || {
        let (health, pool, producer) = (health.clone(), pool.clone(), producer.clone());
        async move {
            health.check()?;
            sqlx::query(probe).execute(&pool).await.map_err(|e| format!("database: {e}"))?;
            producer.ping().await.map_err(|e| format!("kafka: {e}"))
        }
        .boxed()
    })
}

/// Runs service `S` until `shutdown` fires or one of its tasks dies:
/// migrations, topics, schemas, then the consumer (its inputs through the
/// [`TransactionalHandler`]), the outbox relay and the ops HTTP endpoint
/// (`/health/*`, `/metrics`) on `listener`, all supervised.
pub async fn run<S: Service>(
    settings: ServiceSettings<S::Domain>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let service = S::new(&settings);
    run_service(service, settings, listener, shutdown).await
}

/// [`run`] with a service built by the caller (another payment provider,
/// a test's stand-in for an outside system).
pub async fn run_service<S: Service>(
    service: S,
    settings: ServiceSettings<S::Domain>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let pool = database::connect(&settings.database).await.map_err(RunError::Database)?;
    orderflow_outbox::migrate(&pool).await?;
    S::migrator().run(&pool).await?;
    let mut supervisor = Supervisor::new(shutdown.clone());
    let personal = crate::personal::wire(
        S::PERSONAL_DATA,
        &settings.keys,
        settings.environment,
        &settings.database,
        &mut supervisor,
    )
    .await?;
    let codec = Arc::new(Codec::new(&settings.registry.url).with_personal(personal.personal));
    codec.register_all().await?;
    let mut owned = S::PUBLISHES.to_vec();
    owned.extend(S::CONSUMES.iter().filter(|t| !S::PUBLISHES.contains(t)));
    admin::ensure_topics(&settings.kafka, &topics::with_dead_letters(&owned)).await?;
    let producer = Producer::new(&settings.kafka)?;

    let relay = Relay::new(pool.clone(), producer.clone(), RelayOptions::from_settings(&settings.relay));
    supervisor.spawn("outbox relay", relay.run(shutdown.clone()));

    let service = Arc::new(service);
    let topics = S::CONSUMES.iter().map(|t| settings.kafka.topic(t.name)).collect();
    let options = ConsumerOptions::from_settings(&settings.consumer, topics);
    let bookkeeping = database::connect_bookkeeping(&settings.database, 4).await.map_err(RunError::Database)?;
    let effector =
        Arc::new(Effector::new(Arc::clone(&service), bookkeeping, settings.effects.clone(), options.wakeups.clone()));
    // At 0 from the start: a rate over it is a series before the first duplicate.
    let _ = crate::handler::DUPLICATES.with_label_values(&[&settings.consumer.group]);
    let handler = Arc::new(TransactionalHandler {
        service,
        pool: pool.clone(),
        codec,
        kafka: settings.kafka.clone(),
        group: settings.consumer.group.clone(),
        requests: effector.requests(),
        call_wait: Duration::from_millis(settings.effects.wait_ms),
        careful: Default::default(),
    });
    supervisor.spawn("effector", effector.run(shutdown.clone()));
    if let Some(every) = handler.service.schedule() {
        supervisor.spawn("scheduler", Arc::clone(&handler).run_schedule(every, shutdown.clone()));
    }
    let (kafka, token) = (settings.kafka.clone(), shutdown.clone());
    supervisor.spawn("consumer", async move { consumer::run(&kafka, &options, handler, token).await });

    let ready = readiness(supervisor.health(), pool.clone(), producer.clone(), "SELECT 1");
    let addr = listener.local_addr()?;
    let mut ops = orderflow_telemetry::ops_router(ready);
    if let Some(keys) = personal.routes {
        ops = ops.merge(keys);
    }
    supervisor.spawn("ops http", orderflow_telemetry::serve(listener, ops, shutdown.clone()));
    tracing::info!(service = <S::Domain as orderflow_config::Domain>::SERVICE, %addr, "running");
    let outcome = supervisor.wait().await;
    producer.flush(Duration::from_secs(5));
    pool.close().await;
    Ok(outcome?)
}

/// The `main` of a domain service binary: tracing, settings (or, with
/// `--check-config`, only checking them), the listener, SIGTERM, [`run`].
/// An error — bad settings, a dead task — exits non-zero.
pub async fn main<S: Service>() -> anyhow::Result<()> {
    let name = <S::Domain as orderflow_config::Domain>::SERVICE;
    let settings: ServiceSettings<S::Domain> = orderflow_config::load().with_context(|| format!("{name} settings"))?;
    if S::PERSONAL_DATA != crate::PersonalData::None {
        let keeper = S::PERSONAL_DATA == crate::PersonalData::Keeper;
        settings.keys.check_for(settings.environment, keeper).with_context(|| format!("{name} settings"))?;
    }
    if std::env::args().any(|a| a == "--check-config") {
        println!("{name}: configuration is valid");
        return Ok(());
    }
    let _exporter = orderflow_telemetry::init(name, crate::LOG_FILTER, &settings.telemetry).context("trace export")?;
    let addr = settings.http.addr.clone();
    crate::serve(name, &addr, |listener, shutdown| run::<S>(settings, listener, shutdown)).await
}
