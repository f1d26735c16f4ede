//! `orderflow`, the operator's command line.
//!
//! Reads the same settings as the services (`ORDERFLOW_CONFIG_FILE`, then
//! `ORDERFLOW_*` variables; only the groups it needs, the rest of a
//! service's file is ignored), overridden by `--kafka`, `--registry` and
//! `--prefix`; the dev stack's addresses by default.
//!
//! Exit codes: 0 done, 1 a finding, 2 wrong usage (an unknown topic, a bad
//! argument), 3 cannot connect (the broker, the registry).

mod audit;
mod db;
mod dlq;
mod outbox;
mod projection;
mod read;
mod status;
mod tail;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use orderflow_config::{KafkaSettings, RegistrySettings, Validate};
use serde::{Deserialize, Serialize};

#[derive(Debug, Parser)]
#[command(
    name = "orderflow",
    version,
    about = "Operate an orderflow system: read its topics decoded, put its dead letters right."
)]
struct Cli {
    /// Kafka bootstrap servers (else `kafka.brokers` of the settings).
    #[arg(long, global = true, value_name = "HOST:PORT,...")]
    kafka: Option<String>,
    /// The schema registry's URL (else `registry.url` of the settings).
    #[arg(long, global = true, value_name = "URL")]
    registry: Option<String>,
    /// The topic prefix of the system (else `kafka.topic_prefix`).
    #[arg(long, global = true, value_name = "PREFIX")]
    prefix: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prints a topic's records as JSON lines, decoded through the registry.
    Tail(tail::Tail),
    /// Dead letters: list, show, replay to their source in order, discard.
    Dlq(dlq::Dlq),
    /// Every process's readiness, every consumer group's and projection's
    /// lag, the outboxes and the dead letters, on one screen.
    Status(status::Status),
    /// The projections: list, status, rebuild by replay with progress.
    Projection(projection::ProjectionCommand),
    /// The services' outboxes: backlog, parked rows, unpark.
    Outbox(outbox::OutboxCommand),
    /// The audit log: verify its hash chains.
    Audit(audit::AuditCommand),
    /// One request's story across topics, from the audit log.
    Trace(audit::Trace),
    /// Prints a shell completion script (`orderflow completions bash >
    /// /etc/bash_completion.d/orderflow`).
    Completions { shell: clap_complete::Shell },
    /// Prints the man page (roff): `orderflow man > orderflow.1`.
    Man,
}

/// How a command prints what it found.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns, for people.
    Table,
    /// JSON, for scripts.
    Json,
}

/// The settings the CLI reads: a subset of any process's.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct Settings {
    kafka: KafkaSettings,
    registry: RegistrySettings,
}

impl Validate for Settings {
    fn validate(&self) -> orderflow_config::Result<()> {
        self.kafka.validate()?;
        self.registry.validate()
    }
}

/// Why the CLI stopped short, and the exit code it means.
#[derive(Debug)]
pub enum Failure {
    /// Wrong usage: exit 2.
    Usage(String),
    /// A broker or registry that cannot be reached: exit 3.
    Connect(String),
    /// Anything else: exit 1.
    Other(String),
}

impl Failure {
    fn code(&self) -> u8 {
        match self {
            Failure::Other(_) => 1,
            Failure::Usage(_) => 2,
            Failure::Connect(_) => 3,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Usage(m) | Failure::Connect(m) | Failure::Other(m) => f.write_str(m),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut settings: Settings = match orderflow_config::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("orderflow: the settings: {error}");
            return ExitCode::from(2);
        }
    };
    settings.kafka.client_id = "orderflow-cli".into();
    if let Some(brokers) = cli.kafka {
        settings.kafka.brokers = brokers;
    }
    if let Some(url) = cli.registry {
        settings.registry.url = url;
    }
    if let Some(prefix) = cli.prefix {
        settings.kafka.topic_prefix = prefix;
    }
    let done = match cli.command {
        Command::Tail(tail) => tail.run(&settings.kafka, &settings.registry).await,
        Command::Dlq(dlq) => dlq.run(&settings.kafka, &settings.registry).await,
        Command::Status(status) => status.run(&settings.kafka).await,
        Command::Projection(projection) => projection.run(&settings.kafka).await,
        Command::Outbox(outbox) => outbox.run().await,
        Command::Audit(audit) => audit.run().await,
        Command::Trace(trace) => trace.run().await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "orderflow", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => clap_mangen::Man::new(Cli::command())
            .render(&mut std::io::stdout())
            .map_err(|e| Failure::Other(format!("writing the man page: {e}"))),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("orderflow: {failure}");
            ExitCode::from(failure.code())
        }
    }
}
