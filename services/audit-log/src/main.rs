//! `audit-log [run]`, `audit-log rebuild`, `audit-log verify [--full]`,
//! `audit-log --check-config`.

use anyhow::Context;

/// The audit log's binary.
struct AuditLog;

#[derive(Debug, clap::Subcommand)]
enum Commands {
    /// Verify every chain and print the report (JSON); exits non-zero if a
    /// chain is broken. `--full` recomputes every record (a periodic job).
    Verify {
        #[arg(long)]
        full: bool,
    },
}

impl orderflow_runtime::ProjectionBinary for AuditLog {
    const ABOUT: &'static str = "The audit log: every event, once, hash-chained.";
    const PROJECTION: &'static str = orderflow_audit_log::projection::NAME;
    type Domain = orderflow_audit_log::settings::Audit;
    type Commands = Commands;

    async fn connect(settings: &orderflow_audit_log::Settings) -> Result<sqlx::PgPool, orderflow_runtime::RunError> {
        orderflow_audit_log::connect(settings).await
    }

    async fn run(
        settings: orderflow_audit_log::Settings,
        listener: tokio::net::TcpListener,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<(), orderflow_runtime::RunError> {
        orderflow_audit_log::run(settings, listener, shutdown).await
    }

    async fn command(settings: orderflow_audit_log::Settings, command: Commands) -> anyhow::Result<()> {
        let Commands::Verify { full } = command;
        let pool = orderflow_audit_log::connect(&settings).await.context("audit database")?;
        let report = orderflow_audit::verify::verify(&pool, full).await.context("verifying")?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        if !report.intact {
            std::process::exit(1);
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    orderflow_runtime::projection_main::<AuditLog>().await
}
