//! The databases the CLI reads (outboxes, projections, the audit log):
//! one Postgres server by default, any database by name overridden.

use std::time::Duration;

use clap::Args;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::Failure;

#[derive(Debug, Clone, Args)]
pub struct Databases {
    /// The Postgres server of the databases (each service's by its name:
    /// users, orders, payments, inventory, readmodels, audit).
    #[arg(long, global = true, value_name = "URL", default_value = "postgres://postgres@127.0.0.1:5433")]
    postgres: String,
    /// One database by name (`readmodels=postgres://...`), instead of the
    /// one of that name on `--postgres` (repeat it).
    #[arg(long = "database", global = true, value_name = "NAME=URL")]
    databases: Vec<String>,
}

impl Databases {
    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> Result<String, Failure> {
        for pair in &self.databases {
            let (given, url) =
                pair.split_once('=').ok_or_else(|| Failure::Usage(format!("--database {pair}: expected NAME=URL")))?;
            if given == name {
                return Ok(url.to_owned());
            }
        }
        Ok(format!("{}/{name}", self.postgres.trim_end_matches('/')))
    }

    /// A small pool on database `name`.
    pub async fn connect(&self, name: &str) -> Result<PgPool, Failure> {
        let url = self.url(name)?;
        PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .connect(&url)
            .await
            .map_err(|e| Failure::Connect(format!("the {name} database ({}): {e}", redact(&url))))
    }
}

/// `url` without its password.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}
