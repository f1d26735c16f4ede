//! The scenarios: profile updates and orders at a fixed rate, the idle probe, and the
//! search for the highest rate that keeps p99 under a limit.

use anyhow::Context as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::api::{Api, BenchUser};
use crate::run::{Plan, Run};
use crate::tally::{Drain, Summary};

/// What every scenario shares.
#[derive(Debug, Clone)]
pub struct Context {
    pub api: Api,
    pub users: Arc<Vec<BenchUser>>,
    /// `Prefer: wait=<seconds>` on every write.
    pub wait: u64,
    pub max_in_flight: usize,
    /// How long to wait after a run for the commands answered 202 to settle.
    pub drain_timeout: Duration,
    pub pgbench_tps: Option<f64>,
}

impl Context {
    /// Sets up `count` users (registered and logged in).
    pub async fn prepare(
        api: Api,
        count: usize,
        wait: u64,
        max_in_flight: usize,
        drain_timeout: Duration,
        pgbench_tps: Option<f64>,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(count > 0, "--users must be at least 1");
        let started = Instant::now();
        // Unique per invocation, so runs against the same system never collide.
        let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis();
        let users = api.create_users(&format!("{run}-{}", std::process::id()), count).await?;
        println!("setup    registered and logged in {count} users in {:.1} s", started.elapsed().as_secs_f64());
        Ok(Self { api, users: Arc::new(users), wait, max_in_flight, drain_timeout, pgbench_tps })
    }

    /// Puts the products the orders name in the catalog (as the bootstrap
    /// admin), with more stock than any run sells.
    pub async fn stock_catalog(&self, email: &str, password: &str) -> anyhow::Result<()> {
        let started = Instant::now();
        let admin = self.api.admin(email, password).await?;
        let mut products: Vec<(String, i64)> =
            (0..crate::api::CATALOG).map(|i| (format!("sku-{i}"), crate::api::WIDGET_PRICE)).collect();
        products.push(("sku-gift".into(), crate::api::GIFT_PRICE));
        for (sku, price) in &products {
            self.api.ensure_product(&admin, sku, *price).await.with_context(|| format!("product {sku}"))?;
        }
        println!("setup    {} products in the catalog in {:.1} s", products.len(), started.elapsed().as_secs_f64());
        Ok(())
    }

    fn user(&self, request: u64) -> &BenchUser {
        &self.users[(request % self.users.len() as u64) as usize]
    }

    /// Request `i`: `PATCH` the name of user `i mod users` (round robin), to
    /// a value that changes every time.
    fn update(&self, i: u64) -> impl Future<Output = crate::api::Answer> + Send + 'static {
        let api = self.api.clone();
        let user = self.user(i).clone();
        let wait = self.wait;
        async move { api.update_name(&user, &format!("Bench{i}"), wait).await }
    }

    /// Request `i`: user `i mod users` places an order.
    fn order(&self, i: u64) -> impl Future<Output = crate::api::Answer> + Send + 'static {
        let api = self.api.clone();
        let user = self.user(i).clone();
        let wait = self.wait;
        async move { api.place_order(&user, i, wait).await }
    }

    /// The open-loop profile-update load.
    pub async fn updates(&self, scenario: &str, rate: f64, duration: Duration) -> Summary {
        let plan = Plan { rate, duration, max_in_flight: self.max_in_flight };
        let run = crate::run::open_loop(plan, |i| self.update(i)).await;
        self.summarise(scenario, plan, run).await
    }

    /// The open-loop order load: each order placed with `Prefer: wait`
    /// answers once the saga confirmed it (authorized by the payment
    /// service, confirmed by the order service, in the read model).
    pub async fn orders(&self, rate: f64, duration: Duration) -> Summary {
        let plan = Plan { rate, duration, max_in_flight: self.max_in_flight };
        let run = crate::run::open_loop(plan, |i| self.order(i)).await;
        self.summarise("orders", plan, run).await
    }

    /// One order of each user (placed and confirmed first, sixteen at a
    /// time): what the reads scenarios read.
    pub async fn orders_to_read(&self) -> anyhow::Result<Arc<Vec<(BenchUser, String)>>> {
        let started = Instant::now();
        let placed: Vec<anyhow::Result<(BenchUser, String)>> =
            futures::stream::iter(self.users.iter().cloned().enumerate())
                .map(|(i, user)| async move {
                    let id = self.api.placed_order(&user, i as u64).await?;
                    Ok((user, id))
                })
                .buffer_unordered(16)
                .collect()
                .await;
        let orders = placed.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
        println!("setup    {} orders placed and confirmed in {:.1} s", orders.len(), started.elapsed().as_secs_f64());
        Ok(Arc::new(orders))
    }

    /// The open-loop read load: request `i` reads order `i mod orders` as
    /// its customer, over REST (`reads`) or GraphQL (`graphql`).
    pub async fn reads(
        &self,
        scenario: &str,
        orders: Arc<Vec<(BenchUser, String)>>,
        rate: f64,
        duration: Duration,
    ) -> Summary {
        let plan = Plan { rate, duration, max_in_flight: self.max_in_flight };
        let graphql = scenario == "graphql";
        let run = crate::run::open_loop(plan, |i| {
            let api = self.api.clone();
            let orders = Arc::clone(&orders);
            async move {
                let (user, id) = &orders[(i % orders.len() as u64) as usize];
                if graphql { api.graphql_order(user, id).await } else { api.read_order(user, id).await }
            }
        })
        .await;
        self.summarise(scenario, plan, run).await
    }

    /// One write at a time on an otherwise idle system.
    pub async fn idle(&self, rate: f64, duration: Duration) -> Summary {
        let plan = Plan { rate, duration, max_in_flight: 1 };
        let run = crate::run::one_at_a_time(plan, |i| self.update(i)).await;
        self.summarise("idle", plan, run).await
    }

    async fn summarise(&self, scenario: &str, plan: Plan, mut run: Run) -> Summary {
        let latency = run.tally.percentiles();
        let refused = run.tally.refused_percentiles();
        let window = run.window(&plan);
        let drain = if run.tally.unsettled.is_empty() {
            None
        } else {
            Some(self.drain(std::mem::take(&mut run.tally.unsettled)).await)
        };
        let not_settled = run.tally.accepted - run.tally.settled;
        Summary {
            scenario: scenario.to_owned(),
            offered_rate: plan.rate,
            duration_s: plan.duration.as_secs_f64(),
            planned: run.planned,
            sent: run.sent,
            window_s: window.as_secs_f64(),
            accepted: run.tally.accepted,
            settled: run.tally.settled,
            not_settled,
            errors: run.tally.errors,
            latency,
            refused,
            generator_lag_max_ms: run.generator_lag_max.map(|d| d.as_secs_f64() * 1000.0),
            drain,
            pgbench_tps: self.pgbench_tps,
        }
    }

    /// Polls the commands answered 202 until none is pending (or the drain
    /// times out), so the next run starts on a system without a backlog and
    /// the summary can say whether every accepted command settled.
    async fn drain(&self, unsettled: Vec<(u64, Option<String>)>) -> Drain {
        let started = Instant::now();
        let mut pending: Vec<(u64, String)> =
            unsettled.into_iter().filter_map(|(i, id)| id.map(|id| (i, id))).collect();
        while !pending.is_empty() && started.elapsed() < self.drain_timeout {
            pending = futures::stream::iter(pending)
                .map(|(i, id)| async move { self.api.is_pending(self.user(i), &id).await.then_some((i, id)) })
                .buffer_unordered(32)
                .filter_map(std::future::ready)
                .collect()
                .await;
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        Drain { seconds: started.elapsed().as_secs_f64(), still_pending: pending.len() }
    }
}

/// How the search steps.
#[derive(Debug, Clone, Copy)]
pub struct Search {
    pub p99_limit_ms: f64,
    pub start_rate: f64,
    pub max_rate: f64,
    pub step: Duration,
    pub max_steps: usize,
    /// Stop bisecting when the bracket is narrower than this fraction.
    pub precision: f64,
}

/// Doubles the rate while a step meets the limit, then bisects between the
/// best passing and the lowest failing rate. Returns the best passing step.
pub async fn search(ctx: &Context, search: Search) -> (Option<Summary>, Vec<Summary>) {
    let mut best: Option<Summary> = None;
    let mut lowest_failing: Option<f64> = None;
    let mut steps = Vec::new();
    let mut rate = search.start_rate;
    for _ in 0..search.max_steps {
        let summary = ctx.updates("search", rate, search.step).await;
        let passed = summary.meets(search.p99_limit_ms);
        println!("{}", summary.human());
        println!(
            "search   {rate:.0}/s {} (p99 {:.1} ms, limit {:.0} ms)",
            if passed { "meets the limit" } else { "misses it" },
            summary.latency.p99,
            search.p99_limit_ms
        );
        steps.push(summary.clone());
        if passed {
            best = Some(summary);
        } else {
            lowest_failing = Some(lowest_failing.map_or(rate, |f: f64| f.min(rate)));
        }
        let lo = best.as_ref().map(|b| b.offered_rate);
        rate = match (lo, lowest_failing) {
            (_, None) if rate * 2.0 > search.max_rate => break,
            (_, None) => rate * 2.0,
            (None, Some(hi)) if hi / 2.0 < 1.0 => break,
            (None, Some(hi)) => hi / 2.0,
            (Some(lo), Some(hi)) if hi - lo <= (lo * search.precision).max(1.0) => break,
            (Some(lo), Some(hi)) => ((lo + hi) / 2.0).round(),
        };
    }
    (best, steps)
}
