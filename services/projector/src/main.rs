use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use orderflow_projector::{Settings, run};

/// The read-model projector.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Load and validate the settings exactly as at start-up, then exit
    /// (non-zero, naming the setting, if one is unknown, missing or invalid).
    #[arg(long, global = true)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the projector (the default).
    Run,
    /// Rebuild every read model by replaying the topics from the beginning
    /// into fresh tables, then switch readers to them. The running projector
    /// does the work; this waits for it and reports the new generation.
    Rebuild {
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    orderflow_telemetry::init_tracing("info,sqlx=warn,rdkafka=warn");
    let cli = Cli::parse();
    let settings: Settings = orderflow_config::load().context("projector settings")?;
    if cli.check_config {
        println!("projector: configuration is valid");
        return Ok(());
    }
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => {
            let addr = settings.http.addr.clone();
            orderflow_runtime::serve("projector", &addr, |listener, shutdown| run(settings, listener, shutdown)).await
        }
        Command::Rebuild { timeout } => {
            let pool = orderflow_projector::connect(&settings).await.context("readmodels database")?;
            orderflow_runtime::rebuild(&pool, orderflow_projector::projection::NAME, Duration::from_secs(timeout)).await
        }
    }
}
