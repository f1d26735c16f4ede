//! The whole process of a projection (the read-model projector, the audit
//! log): the projection engine, the outbox relay of its dead letters and
//! the ops HTTP endpoint, supervised; and the `rebuild` a projection
//! binary offers.

use std::time::Duration;

use orderflow_bus::{Producer, admin};
use orderflow_config::{Domain, KafkaSettings, ProjectionSettings};
use orderflow_contracts::{Topic, topics};
use orderflow_outbox::{Relay, RelayOptions};
use orderflow_projection::{Engine, Options, Projection};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{RunError, readiness};
use orderflow_process::Supervisor;

/// What runs a projection beside its engine.
#[derive(Debug, Clone)]
pub struct ProjectionProcess {
    /// The engine's task name in logs and `/health/ready` (`audit projection`).
    pub task: &'static str,
    pub kafka: KafkaSettings,
    /// The topics it reads, created (with their dead-letter topics) if
    /// missing, so start-up order never matters.
    pub topics: Vec<Topic>,
    /// Messages applied per transaction at most.
    pub batch_size: usize,
}

/// Connects to a projection's database and installs what every projection
/// process needs there: the outbox its dead letters go through.
pub async fn connect_projection(database: &orderflow_config::DatabaseSettings) -> Result<PgPool, RunError> {
    let pool = crate::database::connect(database).await.map_err(RunError::Database)?;
    orderflow_outbox::migrate(&pool).await?;
    Ok(pool)
}

/// Runs `projection` on `pool` until `shutdown`, or until a part of it
/// dies, which stops it all with an error. `more` adds the process's own
/// tasks (the audit log's retention) to the same supervisor.
pub async fn run_projection<P: Projection>(
    pool: PgPool,
    process: ProjectionProcess,
    projection: P,
    listener: TcpListener,
    shutdown: CancellationToken,
    more: impl FnOnce(&mut Supervisor, &PgPool),
) -> Result<(), RunError> {
    admin::ensure_topics(&process.kafka, &topics::with_dead_letters(&process.topics)).await?;
    let producer = Producer::new(&process.kafka)?;
    let mut supervisor = Supervisor::new(shutdown.clone());
    let ready = readiness(supervisor.health(), pool.clone(), producer.clone(), "SELECT 1");
    supervisor.spawn(
        "ops http",
        orderflow_telemetry::serve(listener, orderflow_telemetry::ops_router(ready), shutdown.clone()),
    );
    // A projection publishes nothing but dead letters, through its outbox.
    let relay = Relay::new(pool.clone(), producer.clone(), RelayOptions::default());
    supervisor.spawn("outbox relay", relay.run(shutdown.clone()));
    let options = Options { batch_size: process.batch_size, ..Options::new(process.kafka.clone()) };
    supervisor.spawn(process.task, Engine::new(pool.clone(), projection, options).run(shutdown.clone()));
    more(&mut supervisor, &pool);
    let outcome = supervisor.wait().await;
    producer.flush(Duration::from_secs(5));
    pool.close().await;
    Ok(outcome?)
}

/// `<binary> rebuild`: asks the running process to rebuild projection
/// `name` by replay and waits (up to `timeout`) for the new generation.
pub async fn rebuild(pool: &PgPool, name: &str, timeout: Duration) -> anyhow::Result<()> {
    let id = orderflow_projection::request_rebuild(pool, name).await?;
    println!("rebuild {id} of {name} requested; waiting for the running process ...");
    let generation = orderflow_projection::wait_for_rebuild(pool, id, timeout).await?;
    println!("rebuild {id} done: generation {generation} is live");
    Ok(())
}

/// Binds `addr`, stops on SIGTERM or Ctrl-C, and runs `run` on the
/// listener: the `run` arm of every process binary.
pub async fn serve<F, Fut, E>(name: &str, addr: &str, run: F) -> anyhow::Result<()>
where
    F: FnOnce(TcpListener, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    use anyhow::Context;
    let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(orderflow_telemetry::cancel_on_signal(shutdown.clone()));
    let outcome = run(listener, shutdown).await;
    signals.abort();
    outcome.with_context(|| name.to_owned())?;
    tracing::info!(service = name, "stopped");
    Ok(())
}

/// A projection process's binary (the projector, the audit log): what
/// [`projection_main`] needs to know of it.
pub trait ProjectionBinary {
    /// What `--help` says it is.
    const ABOUT: &'static str;
    /// The projection `rebuild` rebuilds.
    const PROJECTION: &'static str;
    /// Its own settings; its name (in logs, errors and `--check-config`),
    /// port and database come with them.
    type Domain: Domain;
    /// Its own commands beside `run` and `rebuild` (none: an empty enum).
    type Commands: clap::Subcommand + std::fmt::Debug;
    /// Its part in crypto-shredding: whether it opens personal fields.
    const PERSONAL_DATA: crate::PersonalData = crate::PersonalData::None;

    /// Its database, migrated.
    fn connect(settings: &ProjectionSettings<Self::Domain>) -> impl Future<Output = Result<PgPool, RunError>>;
    /// The process, until `shutdown`.
    fn run(
        settings: ProjectionSettings<Self::Domain>,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> impl Future<Output = Result<(), RunError>>;
    /// One of its own commands.
    fn command(
        settings: ProjectionSettings<Self::Domain>,
        command: Self::Commands,
    ) -> impl Future<Output = anyhow::Result<()>>;
}

#[derive(Debug, clap::Parser)]
#[command(version)]
struct Cli<C: clap::Subcommand> {
    /// Load and validate the settings exactly as at start-up (defaults,
    /// `ORDERFLOW_CONFIG_FILE`, `ORDERFLOW_*`), then exit: non-zero, naming
    /// the setting, if one is unknown, missing or invalid.
    #[arg(long, global = true)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command<C>>,
}

#[derive(Debug, clap::Subcommand)]
enum Command<C: clap::Subcommand> {
    /// Run it (the default).
    Run,
    /// Rebuild by replaying the topics from the beginning into fresh
    /// tables, then switch readers to them. The running process does the
    /// work; this waits for it and reports the new generation.
    Rebuild {
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    #[command(flatten)]
    Own(C),
}

/// The `main` of a projection binary: tracing, settings, then `run` (the
/// default), `rebuild`, or one of its own commands.
pub async fn projection_main<B: ProjectionBinary>() -> anyhow::Result<()> {
    use anyhow::Context;
    use clap::{CommandFactory, FromArgMatches};
    let name = <B::Domain as Domain>::SERVICE;
    let matches = Cli::<B::Commands>::command().name(name).about(B::ABOUT).get_matches();
    let cli = Cli::<B::Commands>::from_arg_matches(&matches)?;
    let settings: ProjectionSettings<B::Domain> =
        orderflow_config::load().with_context(|| format!("{name} settings"))?;
    if B::PERSONAL_DATA != crate::PersonalData::None {
        settings.keys.check_for(settings.environment, false).with_context(|| format!("{name} settings"))?;
    }
    if cli.check_config {
        println!("{name}: configuration is valid");
        return Ok(());
    }
    let _exporter = orderflow_telemetry::init(name, crate::LOG_FILTER, &settings.telemetry).context("trace export")?;
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => {
            let addr = settings.http.addr.clone();
            serve(name, &addr, |listener, shutdown| B::run(settings, listener, shutdown)).await
        }
        Command::Rebuild { timeout } => {
            let pool = B::connect(&settings).await.with_context(|| format!("{name} database"))?;
            rebuild(&pool, B::PROJECTION, Duration::from_secs(timeout)).await
        }
        Command::Own(command) => B::command(settings, command).await,
    }
}
