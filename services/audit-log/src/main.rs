use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use orderflow_audit_log::{Settings, run};

/// The audit log: every event, once, hash-chained.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Check the settings (defaults, `ORDERFLOW_CONFIG_FILE`, `ORDERFLOW_*`)
    /// and exit, without starting anything.
    #[arg(long)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the audit log (the default).
    Run,
    /// Rebuild the audit log by replaying every events topic into fresh
    /// tables (same records, same hashes), then switch readers to them. The
    /// running service does the work; this waits for it.
    Rebuild {
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// Verify every chain and print the report (JSON); exits non-zero if a
    /// chain is broken. `--full` recomputes every record (a periodic job).
    Verify {
        #[arg(long)]
        full: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    orderflow_telemetry::init_tracing("info,sqlx=warn,rdkafka=warn");
    let cli = Cli::parse();
    let settings: Settings = orderflow_config::load().context("audit-log settings")?;
    if cli.check_config {
        println!("audit-log: configuration is valid");
        return Ok(());
    }
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => {
            let addr = settings.http.addr.clone();
            orderflow_runtime::serve("audit-log", &addr, |listener, shutdown| run(settings, listener, shutdown))
                .await?;
        }
        Command::Rebuild { timeout } => {
            let pool = orderflow_audit_log::connect(&settings).await.context("audit database")?;
            let name = orderflow_audit_log::projection::NAME;
            orderflow_runtime::rebuild(&pool, name, Duration::from_secs(timeout)).await?;
        }
        Command::Verify { full } => {
            let pool = orderflow_audit_log::connect(&settings).await.context("audit database")?;
            let report = orderflow_audit::verify::verify(&pool, full).await.context("verifying")?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if !report.intact {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}
