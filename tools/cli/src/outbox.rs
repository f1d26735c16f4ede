//! `orderflow outbox`: each service's outbox — what waits to be published,
//! for how long, and the rows the relay parked after they kept failing —
//! and releasing parked rows once their cause is fixed.

use clap::{Args, Subcommand};
use serde_json::json;

use crate::Failure;

/// Whose outbox lives in which database (by default name).
pub const OUTBOXES: &[(&str, &str)] = &[
    ("user-service", "users"),
    ("order-service", "orders"),
    ("payment-service", "payments"),
    ("inventory-service", "inventory"),
    ("projector", "readmodels"),
    ("audit-log", "audit"),
];

#[derive(Debug, Args)]
pub struct OutboxCommand {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    databases: crate::db::Databases,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every outbox (or one service's): rows waiting, the oldest one's age,
    /// and each parked row with its last error.
    Status {
        /// A service (`order-service`); every one when left out.
        service: Option<String>,
        #[arg(long, default_value = "table")]
        output: crate::Output,
    },
    /// Releases a parked row and the later parked rows of its key: the
    /// relay publishes them again, in order.
    Unpark {
        /// The service whose outbox holds the row.
        service: String,
        /// The row's id (`outbox status` lists them).
        id: i64,
    },
}

fn database_of(service: &str) -> Result<&'static str, Failure> {
    OUTBOXES.iter().find(|(s, _)| *s == service).map(|(_, db)| *db).ok_or_else(|| {
        let known: Vec<&str> = OUTBOXES.iter().map(|(s, _)| *s).collect();
        Failure::Usage(format!("no service `{service}` with an outbox; there are: {}", known.join(", ")))
    })
}

impl OutboxCommand {
    /// One service's outbox: its backlog and its parked rows.
    async fn one(&self, service: &str) -> Result<serde_json::Value, Failure> {
        let pool = self.databases.connect(database_of(service)?).await?;
        let mut conn = pool.acquire().await.map_err(|e| Failure::Other(format!("{service}: {e}")))?;
        let backlog =
            orderflow_outbox::backlog(&mut conn).await.map_err(|e| Failure::Other(format!("{service}: {e}")))?;
        drop(conn);
        let parked = orderflow_outbox::parked(&pool).await.map_err(|e| Failure::Other(format!("{service}: {e}")))?;
        pool.close().await;
        Ok(json!({
            "service": service, "unpublished": backlog.unpublished, "oldest_seconds": backlog.oldest_seconds,
            "parked": parked,
        }))
    }

    pub async fn run(self) -> Result<(), Failure> {
        match &self.command {
            Command::Status { service, output } => {
                let (service_given, output) = (service.clone(), *output);
                let services: Vec<&str> = match &service {
                    Some(service) => {
                        database_of(service)?;
                        vec![service.as_str()]
                    }
                    None => OUTBOXES.iter().map(|(s, _)| *s).collect(),
                };
                let mut rows = Vec::new();
                for service in services {
                    // Every outbox: one that cannot be read is a row that says so.
                    match self.one(service).await {
                        Ok(row) => rows.push(row),
                        Err(failure) if service_given.is_none() => {
                            rows.push(json!({"service": service, "error": failure.to_string()}));
                        }
                        Err(failure) => return Err(failure),
                    }
                }
                match output {
                    crate::Output::Json => rows.iter().for_each(|r| println!("{r}")),
                    crate::Output::Table => {
                        println!("{:<20} {:>11} {:>11} {:>7}", "OUTBOX", "UNPUBLISHED", "OLDEST (s)", "PARKED");
                        for r in &rows {
                            if let Some(error) = r["error"].as_str() {
                                println!("{:<20} {error}", r["service"].as_str().unwrap_or(""));
                                continue;
                            }
                            println!(
                                "{:<20} {:>11} {:>11.1} {:>7}",
                                r["service"].as_str().unwrap_or(""),
                                r["unpublished"].as_i64().unwrap_or_default(),
                                r["oldest_seconds"].as_f64().unwrap_or(0.0),
                                r["parked"].as_array().map_or(0, Vec::len)
                            );
                        }
                        for r in &rows {
                            for p in r["parked"].as_array().into_iter().flatten() {
                                println!(
                                    "parked {} #{}: {} key {} after {} attempts since {}: {}",
                                    r["service"].as_str().unwrap_or(""),
                                    p["id"],
                                    p["topic"].as_str().unwrap_or(""),
                                    p["message_key"].as_str().unwrap_or(""),
                                    p["attempts"],
                                    p["parked_at"].as_str().unwrap_or(""),
                                    p["last_error"].as_str().unwrap_or("")
                                );
                            }
                        }
                    }
                }
                Ok(())
            }
            Command::Unpark { service, id } => {
                let (service, id) = (service.clone(), *id);
                let pool = self.databases.connect(database_of(&service)?).await?;
                let released =
                    orderflow_outbox::unpark(&pool, id).await.map_err(|e| Failure::Other(format!("{service}: {e}")))?;
                if released == 0 {
                    return Err(Failure::Usage(format!("no parked row {id} in the outbox of {service}")));
                }
                println!("{}", json!({"service": service, "unparked": id, "released": released}));
                Ok(())
            }
        }
    }
}
