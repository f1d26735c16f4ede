//! `loadgen`: the load generator of `scripts/bench`.
//!
//! It drives the ingress with profile updates (`PATCH /api/v1/users/{id}`
//! with `Prefer: wait=N`), so each answer says whether the write reached the
//! read model within N seconds: 200 settled, 202 not yet. Load is a fixed
//! rate, open loop, with latency measured from each request's intended start
//! (`run`); what was measured is kept in a bounded tally (`tally`); the
//! scenarios are in `scenario`. The figures are for reading, never for
//! asserting: nothing here fails because the system is slow.
//!
//! Output: human-readable lines, and per scenario one JSON line (it starts
//! with `{`) for scripts.

mod api;
mod run;
mod scenario;
mod tally;

use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::api::Api;
use crate::scenario::{Context, Search};

#[derive(Debug, Parser)]
#[command(name = "loadgen", about = "Fixed-rate open-loop load against the orderflow ingress")]
struct Cli {
    /// The ingress.
    #[arg(long, default_value = "http://127.0.0.1:8080", global = true)]
    url: String,
    /// pgbench TPC-B TPS measured on the same Postgres: settled/s is also
    /// printed as a multiple of it.
    #[arg(long, global = true)]
    pgbench_tps: Option<f64>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Profile updates round robin across many users at a fixed rate.
    Updates {
        /// Requests per second offered.
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// Seconds of load.
        #[arg(long, default_value_t = 60)]
        duration: u64,
        #[command(flatten)]
        common: Common,
    },
    /// Orders placed at a fixed rate, each waiting (`Prefer: wait`) until
    /// the saga confirmed it.
    Orders {
        /// Orders per second offered.
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// Seconds of load.
        #[arg(long, default_value_t = 60)]
        duration: u64,
        #[command(flatten)]
        common: Common,
    },
    /// Orders read at a fixed rate by their customers over REST
    /// (`GET /api/v1/orders/{id}`: the order, its customer and payment).
    Reads {
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        #[arg(long, default_value_t = 60)]
        duration: u64,
        #[command(flatten)]
        common: Common,
    },
    /// The same reads over GraphQL: the order with its items, payment and
    /// customer in one request.
    Graphql {
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        #[arg(long, default_value_t = 60)]
        duration: u64,
        #[command(flatten)]
        common: Common,
    },
    /// One update at a time on an idle system: what a lone write costs.
    Idle {
        #[arg(long, default_value_t = 5.0)]
        rate: f64,
        #[arg(long, default_value_t = 10)]
        duration: u64,
        #[command(flatten)]
        common: Common,
    },
    /// The highest rate whose p99 stays under a limit, with no error and
    /// every write settled within the wait: doubling, then bisection.
    Search {
        #[arg(long, default_value_t = 150.0)]
        p99_ms: f64,
        #[arg(long, default_value_t = 250.0)]
        start_rate: f64,
        #[arg(long, default_value_t = 32000.0)]
        max_rate: f64,
        /// Seconds per step.
        #[arg(long, default_value_t = 10)]
        step_duration: u64,
        #[arg(long, default_value_t = 12)]
        max_steps: usize,
        /// Stop when the bracket is narrower than this fraction of the best rate.
        #[arg(long, default_value_t = 0.1)]
        precision: f64,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, Args)]
struct Common {
    /// Users to register (and spread the updates across).
    #[arg(long, default_value_t = 200)]
    users: usize,
    /// `Prefer: wait=<seconds>` on every update.
    #[arg(long, default_value_t = 5)]
    wait: u64,
    /// Requests in flight at most (each holds a connection).
    #[arg(long, default_value_t = 8000)]
    max_in_flight: usize,
    /// Seconds to wait after a run for the writes answered 202 to settle.
    #[arg(long, default_value_t = 120)]
    drain_timeout: u64,
    /// The bootstrap admin the orders scenario stocks the catalog as
    /// (registered with `--admin-password` if it is not yet).
    #[arg(long, default_value = "admin@orderflow.local")]
    admin_email: String,
    #[arg(long, default_value = "correct horse battery")]
    admin_password: String,
}

/// Bounds the tally (four bytes a request) and typos like `--rate 1e9`.
const MAX_REQUESTS_PER_RUN: f64 = 50_000_000.0;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let common = match &cli.scenario {
        Scenario::Updates { common, .. }
        | Scenario::Orders { common, .. }
        | Scenario::Idle { common, .. }
        | Scenario::Reads { common, .. }
        | Scenario::Graphql { common, .. }
        | Scenario::Search { common, .. } => common,
    };
    let api = Api::new(&cli.url, Duration::from_secs(common.wait + 10))?;
    let ctx = Context::prepare(
        api,
        common.users,
        common.wait,
        common.max_in_flight.max(1),
        Duration::from_secs(common.drain_timeout),
        cli.pgbench_tps,
    )
    .await
    .with_context(|| format!("setting up users through {}", cli.url))?;

    match cli.scenario {
        Scenario::Updates { rate, duration, .. } => {
            check_plan(rate, duration)?;
            let summary = ctx.updates("updates", rate, Duration::from_secs(duration)).await;
            println!("{}", summary.human());
            println!("{}", summary.json());
        }
        Scenario::Orders { rate, duration, ref common } => {
            check_plan(rate, duration)?;
            ctx.stock_catalog(&common.admin_email, &common.admin_password)
                .await
                .with_context(|| format!("stocking the catalog through {}", cli.url))?;
            let summary = ctx.orders(rate, Duration::from_secs(duration)).await;
            println!("{}", summary.human());
            println!("{}", summary.json());
        }
        Scenario::Reads { rate, duration, ref common } | Scenario::Graphql { rate, duration, ref common } => {
            check_plan(rate, duration)?;
            let name = if matches!(cli.scenario, Scenario::Reads { .. }) { "reads" } else { "graphql" };
            ctx.stock_catalog(&common.admin_email, &common.admin_password)
                .await
                .with_context(|| format!("stocking the catalog through {}", cli.url))?;
            let orders = ctx
                .orders_to_read()
                .await
                .with_context(|| format!("placing the orders to read through {}", cli.url))?;
            let summary = ctx.reads(name, orders, rate, Duration::from_secs(duration)).await;
            println!("{}", summary.human());
            println!("{}", summary.json());
        }
        Scenario::Idle { rate, duration, .. } => {
            check_plan(rate, duration)?;
            let summary = ctx.idle(rate, Duration::from_secs(duration)).await;
            println!("{}", summary.human());
            println!("{}", summary.json());
        }
        Scenario::Search { p99_ms, start_rate, max_rate, step_duration, max_steps, precision, .. } => {
            check_plan(max_rate, step_duration)?;
            anyhow::ensure!(start_rate >= 1.0 && start_rate <= max_rate, "--start-rate must be in 1..=--max-rate");
            let search = Search {
                p99_limit_ms: p99_ms,
                start_rate,
                max_rate,
                step: Duration::from_secs(step_duration),
                max_steps,
                precision,
            };
            let (best, steps) = scenario::search(&ctx, search).await;
            match &best {
                Some(best) => println!(
                    "search   highest rate with p99 under {p99_ms:.0} ms: {:.0}/s offered, {:.1} settled/s{}",
                    best.offered_rate,
                    best.settled_per_s(),
                    best.ratio_to_pgbench().map_or(String::new(), |r| format!(" = {r:.2} x pgbench TPS"))
                ),
                None => println!("search   no rate tried kept p99 under {p99_ms:.0} ms"),
            }
            let mut json = best.as_ref().map_or_else(|| serde_json::json!({"scenario": "search"}), |b| b.json());
            json["scenario"] = "search".into();
            json["p99_limit_ms"] = p99_ms.into();
            json["best_rate"] = best.as_ref().map(|b| b.offered_rate).into();
            json["steps"] = steps
                .iter()
                .map(|step| {
                    let mut figures = step.json();
                    figures["meets"] = step.meets(p99_ms).into();
                    figures
                })
                .collect::<Vec<_>>()
                .into();
            println!("{json}");
        }
    }
    Ok(())
}

fn check_plan(rate: f64, duration: u64) -> anyhow::Result<()> {
    anyhow::ensure!(rate.is_finite() && rate > 0.0, "the rate must be positive");
    anyhow::ensure!(duration > 0, "the duration must be at least 1 s");
    anyhow::ensure!(
        rate * duration as f64 <= MAX_REQUESTS_PER_RUN,
        "{rate}/s for {duration} s is more than {MAX_REQUESTS_PER_RUN} requests"
    );
    Ok(())
}
