//! `orderflow audit verify`: whether every hash chain of the audit log is
//! intact — quick (links and checkpoints) or `--full` (every record's
//! hash recomputed) — and where the first break is. Exit 1 on a break.

use std::io::IsTerminal;
use std::time::Duration;

use clap::{Args, Subcommand};
use indicatif::ProgressBar;

use crate::Failure;

#[derive(Debug, Args)]
pub struct AuditCommand {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    databases: crate::db::Databases,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verifies every chain of the audit log.
    Verify {
        /// Recompute every record's hash, not only the links.
        #[arg(long)]
        full: bool,
    },
}

impl AuditCommand {
    pub async fn run(self) -> Result<(), Failure> {
        let Command::Verify { full } = self.command;
        let pool = self.databases.connect("audit").await?;
        let spinner = if std::io::stderr().is_terminal() { ProgressBar::new_spinner() } else { ProgressBar::hidden() };
        spinner.set_message(if full { "recomputing every record's hash ..." } else { "checking the chains ..." });
        spinner.enable_steady_tick(Duration::from_millis(120));
        let report = orderflow_audit::verify::verify(&pool, full)
            .await
            .map_err(|e| Failure::Other(format!("the audit database: {e}")))?;
        spinner.finish_and_clear();
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
        match &report.first_break {
            None => Ok(()),
            Some(b) => Err(Failure::Other(format!(
                "the audit log is not intact: {}/{} breaks at seq {}: {}",
                b.topic, b.partition, b.seq, b.problem
            ))),
        }
    }
}

/// `orderflow trace CORRELATION_ID`: one request's story — every event it
/// caused, on every topic, in causal order (from the audit log).
#[derive(Debug, Args)]
pub struct Trace {
    /// The request's correlation id (the `correlation_id` header).
    correlation_id: String,
    #[arg(long, default_value = "table")]
    output: crate::Output,
    #[command(flatten)]
    databases: crate::db::Databases,
}

impl Trace {
    pub async fn run(self) -> Result<(), Failure> {
        let pool = self.databases.connect("audit").await?;
        let records = orderflow_audit::query::correlation(&pool, &self.correlation_id)
            .await
            .map_err(|e| Failure::Other(format!("the audit database: {e}")))?;
        if records.is_empty() {
            return Err(Failure::Other(format!(
                "the audit log has no event of correlation id {} (a request whose commands were all refused \
                 leaves none; `orderflow tail <topic>.commands --headers` shows its commands)",
                self.correlation_id
            )));
        }
        for (depth, record) in &records {
            match self.output {
                crate::Output::Json => println!(
                    "{}",
                    serde_json::json!({
                        "depth": depth, "occurred_at": record.occurred_at, "topic": record.topic,
                        "type": record.message_type, "key": record.aggregate_key, "actor": record.actor,
                        "message_id": record.message_id, "causation_id": record.causation_id,
                        "payload": serde_json::from_str::<serde_json::Value>(&record.payload).unwrap_or_default(),
                    })
                ),
                crate::Output::Table => println!(
                    "{}  {}{} on {} (key {}, by {})",
                    record.occurred_at.format("%H:%M:%S%.3f"),
                    "  ".repeat(*depth),
                    record.message_type,
                    record.topic,
                    record.aggregate_key.as_deref().unwrap_or("-"),
                    record.actor
                ),
            }
        }
        Ok(())
    }
}
