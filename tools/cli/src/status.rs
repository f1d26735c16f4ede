//! `orderflow status`: the whole system on one screen — each process's
//! readiness, each consumer group's lag per partition, each projection's,
//! each outbox's backlog and parked rows, and the dead-letter topics.
//! Lag is read from the broker's side (committed offsets, watermarks), so a
//! stopped consumer shows what it has not read.

use std::time::Duration;

use chrono::Utc;
use clap::Args;
use orderflow_bus::lag::{LagReader, PartitionLag};
use orderflow_config::KafkaSettings;
use orderflow_contracts::topology;
use serde_json::{Value, json};

use crate::Failure;

/// The dev stack's processes and their health listeners (`scripts/dev`).
const DEV_PROCESSES: &[(&str, &str)] = &[
    ("ingress", "http://127.0.0.1:9080"),
    ("schema-registry", "http://127.0.0.1:8081"),
    ("projector", "http://127.0.0.1:8092"),
    ("user-service", "http://127.0.0.1:8091"),
    ("order-service", "http://127.0.0.1:8093"),
    ("payment-service", "http://127.0.0.1:8094"),
    ("inventory-service", "http://127.0.0.1:8096"),
    ("audit-log", "http://127.0.0.1:8095"),
];

#[derive(Debug, Args)]
pub struct Status {
    /// `table` for people, `json` (one object) for scripts.
    #[arg(long, default_value = "table")]
    output: crate::Output,
    /// A process to ask for readiness, `NAME=URL` of its health listener
    /// (repeat it); the dev stack's processes when none is given.
    #[arg(long = "process", value_name = "NAME=URL")]
    processes: Vec<String>,
    #[command(flatten)]
    databases: crate::db::Databases,
}

fn pairs(raw: &[String], what: &str) -> Result<Vec<(String, String)>, Failure> {
    raw.iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(name, url)| (name.to_owned(), url.trim_end_matches('/').to_owned()))
                .ok_or_else(|| Failure::Usage(format!("--{what} {pair}: expected NAME=URL")))
        })
        .collect()
}

/// What the broker says: consumer groups' lag, projections' lag, dead
/// letters per topic.
type Bus = (Vec<Value>, Vec<Value>, Vec<Value>);

fn lag_json(group: &str, lag: &PartitionLag, now: i64) -> Value {
    json!({
        "reader": group,
        "topic": lag.topic,
        "partition": lag.partition,
        "position": lag.position,
        "end": lag.high,
        "lag": lag.messages,
        "lag_seconds": lag.seconds(now),
    })
}

impl Status {
    pub async fn run(self, kafka: &KafkaSettings) -> Result<(), Failure> {
        let processes = if self.processes.is_empty() {
            DEV_PROCESSES.iter().map(|(n, u)| ((*n).to_owned(), (*u).to_owned())).collect()
        } else {
            pairs(&self.processes, "process")?
        };

        let http = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().expect("an HTTP client");
        let mut ready = Vec::new();
        for (name, url) in &processes {
            let (up, detail) = match http.get(format!("{url}/health/ready")).send().await {
                Ok(response) if response.status().is_success() => (true, "ready".to_owned()),
                Ok(response) => {
                    (false, format!("{}: {}", response.status(), response.text().await.unwrap_or_default()))
                }
                Err(error) => (false, format!("unreachable: {error}")),
            };
            ready.push(json!({"name": name, "url": url, "ready": up, "detail": detail.trim()}));
        }

        // Positions the projections keep in their own tables.
        let mut projections = Vec::new();
        let mut outboxes = Vec::new();
        for (name, database, _) in crate::projection::PROJECTIONS {
            if let Ok(pool) = self.databases.connect(database).await {
                if let Ok(Some((generation, _))) = orderflow_projection::generation::live(&pool, name).await
                    && let Ok(mut conn) = pool.acquire().await
                    && let Ok(offsets) = orderflow_projection::generation::offsets(&mut conn, name, generation).await
                {
                    projections.push((*name, offsets));
                }
                pool.close().await;
            }
        }
        for (service, database) in crate::outbox::OUTBOXES {
            let backlog = match self.databases.connect(database).await {
                Ok(pool) => {
                    let backlog = match pool.acquire().await {
                        Ok(mut conn) => orderflow_outbox::backlog(&mut conn).await.map_err(|e| e.to_string()),
                        Err(error) => Err(error.to_string()),
                    };
                    pool.close().await;
                    backlog
                }
                Err(failure) => Err(failure.to_string()),
            };
            let row = match backlog {
                Ok(b) => json!({
                    "service": service, "database": database, "unpublished": b.unpublished,
                    "oldest_seconds": b.oldest_seconds, "parked": b.parked,
                }),
                Err(error) => json!({"service": service, "database": database, "error": error}),
            };
            outboxes.push(row);
        }

        // The broker's side: committed offsets, watermarks, dead letters.
        let kafka = kafka.clone();
        let dlqs = crate::read::dlq_topics(&crate::read::consumer(&kafka)?, &kafka)?;
        let bus = tokio::task::spawn_blocking(move || -> Result<Bus, String> {
            let mut reader = LagReader::new(&kafka).map_err(|e| e.to_string())?;
            let now = Utc::now().timestamp_millis();
            let mut groups = Vec::new();
            for service in topology::SERVICES {
                let group = kafka.topic(service.service);
                let topics: Vec<String> = service.consumes.iter().map(|t| kafka.topic(t.name)).collect();
                for lag in reader.group(&group, &topics).map_err(|e| format!("group {group}: {e}"))? {
                    groups.push(lag_json(service.service, &lag, now));
                }
            }
            let mut behind = Vec::new();
            for (name, offsets) in &projections {
                let positions: Vec<(String, i32, Option<i64>)> =
                    offsets.iter().map(|((topic, partition), position)| (topic.clone(), *partition, Some(*position))).collect();
                for lag in reader.lags(&positions).map_err(|e| format!("projection {name}: {e}"))? {
                    behind.push(lag_json(name, &lag, now));
                }
            }
            let mut dead = Vec::new();
            for topic in dlqs {
                let messages = reader.retained(&topic).map_err(|e| format!("{topic}: {e}"))?;
                dead.push(json!({"topic": topic.strip_prefix(kafka.topic_prefix.as_str()).unwrap_or(&topic), "messages": messages}));
            }
            Ok((groups, behind, dead))
        })
        .await
        .map_err(|e| Failure::Other(e.to_string()))?
        .map_err(|e| Failure::Connect(format!("the brokers: {e}")))?;
        let (groups, projections, dead_letters) = bus;

        let not_ready = ready.iter().filter(|p| p["ready"] == false).count();
        let report = json!({
            "processes": ready,
            "consumer_groups": groups,
            "projections": projections,
            "outboxes": outboxes,
            "dead_letters": dead_letters,
        });
        match self.output {
            crate::Output::Json => println!("{report}"),
            crate::Output::Table => print_table(&report),
        }
        if not_ready > 0 {
            return Err(Failure::Other(format!("{not_ready} process(es) not ready")));
        }
        Ok(())
    }
}

fn print_table(report: &Value) {
    let rows = |key: &str| report[key].as_array().cloned().unwrap_or_default();
    println!("PROCESS              READY  DETAIL");
    for p in rows("processes") {
        let mark = if p["ready"] == true { "yes" } else { "NO" };
        println!("{:<20} {:<6} {}", p["name"].as_str().unwrap_or(""), mark, p["detail"].as_str().unwrap_or(""));
    }
    for (title, key) in [("CONSUMER GROUP", "consumer_groups"), ("PROJECTION", "projections")] {
        println!();
        println!(
            "{title:<20} {:<28} {:>4} {:>10} {:>10} {:>8} {:>9}",
            "TOPIC", "PART", "POSITION", "END", "LAG", "LAG (s)"
        );
        for l in rows(key) {
            println!(
                "{:<20} {:<28} {:>4} {:>10} {:>10} {:>8} {:>9.1}",
                l["reader"].as_str().unwrap_or(""),
                l["topic"].as_str().unwrap_or(""),
                l["partition"].as_i64().unwrap_or_default(),
                l["position"].as_i64().map_or("-".to_owned(), |p| p.to_string()),
                l["end"].as_i64().unwrap_or_default(),
                l["lag"].as_i64().unwrap_or_default(),
                l["lag_seconds"].as_f64().unwrap_or(0.0)
            );
        }
    }
    println!();
    println!("OUTBOX               UNPUBLISHED  OLDEST (s)  PARKED");
    for o in rows("outboxes") {
        match o["error"].as_str() {
            Some(error) => println!("{:<20} {error}", o["service"].as_str().unwrap_or("")),
            None => println!(
                "{:<20} {:>11} {:>11.1} {:>7}",
                o["service"].as_str().unwrap_or(""),
                o["unpublished"].as_i64().unwrap_or_default(),
                o["oldest_seconds"].as_f64().unwrap_or(0.0),
                o["parked"].as_i64().unwrap_or_default()
            ),
        }
    }
    println!();
    println!("DEAD-LETTER TOPIC              MESSAGES");
    for d in rows("dead_letters") {
        println!("{:<30} {:>8}", d["topic"].as_str().unwrap_or(""), d["messages"].as_i64().unwrap_or_default());
    }
}
