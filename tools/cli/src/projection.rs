//! `orderflow projection`: the projections (the read models, the audit
//! log), their generations and positions, and a rebuild by replay watched
//! to its end with a progress bar — or stopped with Ctrl-C, which drops
//! the generation being built and leaves the live one as it was.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use clap::{Args, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use orderflow_bus::lag::LagReader;
use orderflow_config::KafkaSettings;
use orderflow_projection::generation;
use serde_json::json;
use sqlx::PgPool;

use crate::Failure;

/// The projections, their databases, and what they are.
pub const PROJECTIONS: &[(&str, &str, &str)] = &[
    ("readmodels", "readmodels", "the read models the ingress serves (users, orders, payments, products)"),
    ("audit", "audit", "the audit log: every event once, hash-chained"),
];

#[derive(Debug, Args)]
pub struct ProjectionCommand {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    databases: crate::db::Databases,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every projection, its live generation and how far behind it is.
    List {
        #[arg(long, default_value = "table")]
        output: crate::Output,
    },
    /// One projection: its generations, its position and lag per
    /// partition, its rebuilds.
    Status {
        name: String,
        #[arg(long, default_value = "table")]
        output: crate::Output,
    },
    /// Rebuilds a projection by replaying its topics from the beginning,
    /// while the live generation keeps serving; the views switch to the
    /// rebuilt one at the end. Ctrl-C stops it and leaves the live one.
    Rebuild {
        name: String,
        /// Give up (and leave the live generation) after this many seconds.
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
    },
}

/// A rebuild request: id, started, finished, the generation it made, why
/// it failed.
type RebuildRow = (i64, Option<String>, Option<String>, Option<i32>, Option<String>);

fn database_of(name: &str) -> Result<&'static str, Failure> {
    PROJECTIONS.iter().find(|(n, _, _)| *n == name).map(|(_, db, _)| *db).ok_or_else(|| {
        let known: Vec<&str> = PROJECTIONS.iter().map(|(n, _, _)| *n).collect();
        Failure::Usage(format!("no projection `{name}`; there are: {}", known.join(", ")))
    })
}

/// The live generation's position per partition, and the broker's ends.
async fn positions(
    pool: &PgPool,
    kafka: &KafkaSettings,
    name: &str,
    generation: i32,
) -> Result<BTreeMap<(String, i32), (i64, i64)>, Failure> {
    let mut conn = pool.acquire().await.map_err(|e| Failure::Connect(e.to_string()))?;
    let offsets = generation::offsets(&mut conn, name, generation).await.map_err(|e| Failure::Other(e.to_string()))?;
    let kafka = kafka.clone();
    tokio::task::spawn_blocking(move || {
        let reader = LagReader::new(&kafka).map_err(|e| Failure::Connect(format!("the brokers: {e}")))?;
        let mut out = BTreeMap::new();
        for ((topic, partition), position) in offsets {
            let (_, high) =
                reader.watermarks(&topic, partition).map_err(|e| Failure::Connect(format!("{topic}: {e}")))?;
            out.insert((topic, partition), (position, high));
        }
        Ok(out)
    })
    .await
    .map_err(|e| Failure::Other(e.to_string()))?
}

impl ProjectionCommand {
    pub async fn run(self, kafka: &KafkaSettings) -> Result<(), Failure> {
        match self.command {
            Command::List { output } => {
                let mut rows = Vec::new();
                for (name, database, what) in PROJECTIONS {
                    let pool = self.databases.connect(database).await?;
                    // A database the projection never ran on has no generation.
                    let live = generation::live(&pool, name).await.ok().flatten();
                    let lag = match live {
                        Some((g, _)) => Some(
                            positions(&pool, kafka, name, g).await?.values().map(|(p, h)| (h - p).max(0)).sum::<i64>(),
                        ),
                        None => None,
                    };
                    rows.push(json!({"name": name, "database": database, "about": what, "live": live.map(|(g, _)| g), "lag": lag}));
                    pool.close().await;
                }
                match output {
                    crate::Output::Json => rows.iter().for_each(|r| println!("{r}")),
                    crate::Output::Table => {
                        println!("{:<12} {:>5} {:>8}  ABOUT", "PROJECTION", "LIVE", "LAG");
                        for r in rows {
                            println!(
                                "{:<12} {:>5} {:>8}  {}",
                                r["name"].as_str().unwrap_or(""),
                                r["live"].as_i64().map_or("-".into(), |g| g.to_string()),
                                r["lag"].as_i64().map_or("-".into(), |l| l.to_string()),
                                r["about"].as_str().unwrap_or("")
                            );
                        }
                    }
                }
                Ok(())
            }
            Command::Status { name, output } => {
                let pool = self.databases.connect(database_of(&name)?).await?;
                let generations = generation::list(&pool, &name).await.map_err(|e| Failure::Other(e.to_string()))?;
                let live = generations.iter().find(|(_, s)| s == "live").map(|(g, _)| *g);
                let partitions = match live {
                    Some(g) => positions(&pool, kafka, &name, g).await?,
                    None => BTreeMap::new(),
                };
                let rebuilds: Vec<RebuildRow> = sqlx::query_as(
                    "SELECT id, started_at::text, finished_at::text, generation, error FROM projection.rebuild_requests
                     WHERE projection = $1 ORDER BY id DESC LIMIT 5",
                )
                .bind(&name)
                .fetch_all(&pool)
                .await
                .unwrap_or_default();
                let report = json!({
                    "name": name,
                    "generations": generations.iter().map(|(g, s)| json!({"generation": g, "status": s})).collect::<Vec<_>>(),
                    "partitions": partitions.iter().map(|((t, p), (pos, end))| json!({
                        "topic": t.strip_prefix(kafka.topic_prefix.as_str()).unwrap_or(t),
                        "partition": p, "position": pos, "end": end, "lag": (end - pos).max(0),
                    })).collect::<Vec<_>>(),
                    "rebuilds": rebuilds.iter().map(|(id, started, finished, g, error)| json!({
                        "id": id, "started_at": started, "finished_at": finished, "generation": g, "error": error,
                    })).collect::<Vec<_>>(),
                });
                match output {
                    crate::Output::Json => println!("{report}"),
                    crate::Output::Table => {
                        let gens: Vec<String> = generations.iter().map(|(g, s)| format!("{g} {s}")).collect();
                        println!("{name}: generations {}", gens.join(", "));
                        println!("{:<28} {:>4} {:>10} {:>10} {:>8}", "TOPIC", "PART", "POSITION", "END", "LAG");
                        for p in report["partitions"].as_array().into_iter().flatten() {
                            println!(
                                "{:<28} {:>4} {:>10} {:>10} {:>8}",
                                p["topic"].as_str().unwrap_or(""),
                                p["partition"].as_i64().unwrap_or_default(),
                                p["position"].as_i64().unwrap_or_default(),
                                p["end"].as_i64().unwrap_or_default(),
                                p["lag"].as_i64().unwrap_or_default()
                            );
                        }
                        for r in report["rebuilds"].as_array().into_iter().flatten() {
                            println!("rebuild {}: {}", r["id"], rebuild_state(r));
                        }
                    }
                }
                Ok(())
            }
            Command::Rebuild { name, timeout } => {
                let pool = self.databases.connect(database_of(&name)?).await?;
                rebuild(&pool, kafka, &name, Duration::from_secs(timeout)).await
            }
        }
    }
}

fn rebuild_state(r: &serde_json::Value) -> String {
    match (r["finished_at"].as_str(), r["error"].as_str(), r["started_at"].as_str()) {
        (Some(at), Some(error), _) => format!("ended {at}: {error}"),
        (Some(at), None, _) => format!("generation {} live since {at}", r["generation"]),
        (None, _, Some(at)) => format!("under way since {at}"),
        (None, _, None) => "waiting for the active instance".into(),
    }
}

/// The generation being built for the rebuild, once there is one.
async fn building(pool: &PgPool, name: &str, above: i32) -> Option<i32> {
    sqlx::query_scalar(
        "SELECT generation FROM projection.generations
         WHERE projection = $1 AND status = 'building' AND generation > $2 ORDER BY generation DESC LIMIT 1",
    )
    .bind(name)
    .bind(above)
    .fetch_optional(pool)
    .await
    .ok()
    .flatten()
}

async fn rebuild(pool: &PgPool, kafka: &KafkaSettings, name: &str, timeout: Duration) -> Result<(), Failure> {
    let db = |e: sqlx::Error| Failure::Other(format!("the {name} database: {e}"));
    let live = generation::live(pool, name).await.map_err(db)?.map(|(g, _)| g).unwrap_or(0);
    // Where the replay has to get to: the ends of the topics now (the
    // engine reads its own, a moment later; the bar may end a little short).
    let target: BTreeMap<(String, i32), i64> = if live > 0 {
        positions(pool, kafka, name, live).await?.into_iter().map(|(k, (_, end))| (k, end)).collect()
    } else {
        BTreeMap::new()
    };
    let total: i64 = target.values().sum();
    let id = orderflow_projection::request_rebuild(pool, name).await.map_err(db)?;

    let bars = MultiProgress::with_draw_target(if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let style = ProgressStyle::with_template("{prefix:>28} [{bar:30}] {pos}/{len} messages, {per_sec}, ETA {eta}")
        .expect("a valid template")
        .progress_chars("=> ");
    let overall = bars.add(ProgressBar::new(total.max(0) as u64).with_style(style.clone()).with_prefix("all"));
    let mut per_partition = BTreeMap::new();
    for ((topic, partition), end) in &target {
        let label = format!("{}/{partition}", topic.strip_prefix(kafka.topic_prefix.as_str()).unwrap_or(topic));
        let bar = bars.add(ProgressBar::new((*end).max(0) as u64).with_style(style.clone()).with_prefix(label));
        per_partition.insert((topic.clone(), *partition), bar);
    }
    eprintln!(
        "rebuild {id} of {name} requested: generation {live} keeps serving until the switch (Ctrl-C stops the rebuild)"
    );

    let deadline = tokio::time::Instant::now() + timeout;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut last_line = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = &mut interrupted => {
                bars.clear().ok();
                eprintln!("stopping rebuild {id} ...");
                orderflow_projection::cancel_rebuild(pool, id).await.map_err(db)?;
                let ended = orderflow_projection::wait_for_rebuild(pool, id, Duration::from_secs(60)).await;
                let now = generation::live(pool, name).await.map_err(db)?.map(|(g, _)| g).unwrap_or(0);
                return Err(Failure::Other(match ended {
                    Ok(g) => format!("rebuild {id} had finished before it could be stopped: generation {g} is live"),
                    Err(_) => format!("rebuild {id} stopped; generation {now} serves on, untouched"),
                }));
            }
            _ = tick.tick() => {}
        }
        let row: (Option<String>, Option<i32>, Option<String>) = sqlx::query_as(
            "SELECT finished_at::text, generation, error FROM projection.rebuild_requests WHERE id = $1",
        )
        .bind(id)
        .fetch_one(pool)
        .await
        .map_err(db)?;
        match row {
            (Some(_), Some(generation), None) => {
                overall.finish();
                per_partition.values().for_each(ProgressBar::finish);
                bars.clear().ok();
                println!("{}", json!({"rebuild": id, "projection": name, "live": generation, "previous": live}));
                return Ok(());
            }
            (Some(_), _, Some(error)) => {
                bars.clear().ok();
                return Err(Failure::Other(format!("rebuild {id} failed: {error}; generation {live} serves on")));
            }
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            orderflow_projection::cancel_rebuild(pool, id).await.map_err(db)?;
            bars.clear().ok();
            return Err(Failure::Other(format!(
                "rebuild {id} did not finish in {timeout:?}: stopped; generation {live} serves on"
            )));
        }
        if let Some(candidate) = building(pool, name, live).await {
            let mut conn = pool.acquire().await.map_err(db)?;
            let done = generation::offsets(&mut conn, name, candidate).await.map_err(db)?;
            let mut sum = 0;
            for (key, bar) in &per_partition {
                let at = done.get(key).copied().unwrap_or(0).min(target.get(key).copied().unwrap_or(0));
                bar.set_position(at.max(0) as u64);
                sum += at;
            }
            overall.set_position(sum.max(0) as u64);
            // Plain lines when the bars are not drawn (a pipe, a log).
            if !std::io::stderr().is_terminal() && last_line.elapsed() >= Duration::from_secs(5) {
                eprintln!("rebuild {id}: generation {candidate} at {sum} of {total} messages");
                last_line = tokio::time::Instant::now();
            }
        }
    }
}
