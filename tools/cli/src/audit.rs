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
