//! The bus, as an operator reads it, on the ingress's `/metrics`: how far
//! behind each service's consumer group and each projection is (per
//! partition, in messages and in seconds: the age of the oldest message
//! not consumed yet), what sits on each dead-letter topic, and the saga's
//! orders by state and those past their payment deadline.
//!
//! Read from the outside — the broker's committed offsets, the
//! projections' own position tables, the read models — every
//! `monitor.interval_secs`, so a stopped service's group still shows its
//! lag growing. Each ingress replica exports the same figures (alerts take
//! the `max` over replicas).

use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use orderflow_bus::lag::{KafkaError, LagReader, PartitionLag};
use orderflow_config::KafkaSettings;
use orderflow_contracts::topology;
use prometheus::{GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// How the monitor runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorSettings {
    /// Seconds between two looks at the bus; 0 turns the monitor off.
    pub interval_secs: u64,
    /// Put before each service's name to make its consumer group's (the
    /// services' `consumer.group` defaults to the name alone).
    pub group_prefix: String,
    /// The processes whose readiness and outbox the console's bus page
    /// shows (`GET /api/v1/admin/bus`): each one's operators' base URL
    /// (`/health/ready`, `/metrics`). None by default.
    pub processes: Vec<Process>,
}

/// A process the bus page probes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Process {
    pub name: String,
    /// Its operators' listener, e.g. `http://order-service:9093`.
    pub url: String,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        Self { interval_secs: 15, group_prefix: String::new(), processes: Vec::new() }
    }
}

/// One partition's lag, as the bus page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Lag {
    /// The consumer group or projection.
    pub reader: String,
    pub topic: String,
    pub partition: i32,
    pub messages: i64,
    pub seconds: f64,
}

/// The bus at one moment: what `/metrics` exports and the bus page shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Bus {
    pub groups: Vec<Lag>,
    pub projections: Vec<Lag>,
    /// Each dead-letter topic and the messages it holds.
    pub dead_letters: Vec<(String, i64)>,
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    orderflow_telemetry::register(GaugeVec::new(Opts::new(name, help), labels).expect("gauge"))
}

fn int_gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    orderflow_telemetry::register(IntGaugeVec::new(Opts::new(name, help), labels).expect("gauge"))
}

const PARTITION: [&str; 3] = ["group", "topic", "partition"];
const PROJECTION: [&str; 3] = ["projection", "topic", "partition"];

static GROUP_POSITION: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    int_gauge_vec(
        "orderflow_consumer_group_position",
        "The next offset a service's consumer group will read (its committed offset; the log start if none)",
        &PARTITION,
    )
});
static GROUP_LAG: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    int_gauge_vec(
        "orderflow_consumer_group_lag_messages",
        "Messages a service's consumer group has not consumed yet",
        &PARTITION,
    )
});
static GROUP_LAG_SECONDS: LazyLock<GaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "orderflow_consumer_group_lag_seconds",
        "Age of the oldest message a service's consumer group has not consumed yet (0 when caught up)",
        &PARTITION,
    )
});
static PROJECTION_POSITION: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    int_gauge_vec(
        "orderflow_projection_position",
        "The next offset a projection's live generation will apply",
        &PROJECTION,
    )
});
static PROJECTION_LAG: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    int_gauge_vec(
        "orderflow_projection_lag_messages",
        "Messages a projection's live generation has not applied yet",
        &PROJECTION,
    )
});
static PROJECTION_LAG_SECONDS: LazyLock<GaugeVec> = LazyLock::new(|| {
    gauge_vec(
        "orderflow_projection_lag_seconds",
        "Age of the oldest message a projection has not applied yet (0 when caught up)",
        &PROJECTION,
    )
});
static END_OFFSET: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    int_gauge_vec(
        "orderflow_topic_end_offset",
        "The offset the next message of a partition will get",
        &["topic", "partition"],
    )
});
static DLQ: LazyLock<IntGaugeVec> =
    LazyLock::new(|| int_gauge_vec("orderflow_dlq_messages", "Messages kept on a dead-letter topic", &["topic"]));
static ORDERS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    int_gauge_vec("orderflow_saga_orders", "Orders by status, as the read model shows them", &["status"])
});
static CANCELLATIONS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    int_gauge_vec(
        "orderflow_saga_cancellations",
        "Cancelled orders by reason, as the read model shows them",
        &["reason"],
    )
});
static PAYMENTS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    int_gauge_vec("orderflow_saga_payments", "Payments by status, as the read model shows them", &["status"])
});
static OVERDUE: LazyLock<IntGauge> = LazyLock::new(|| {
    orderflow_telemetry::register(
        IntGauge::new(
            "orderflow_saga_overdue_orders",
            "Orders still PENDING after their payment deadline (the order service cancels them)",
        )
        .expect("gauge"),
    )
});
static RUNS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    orderflow_telemetry::register(
        IntCounterVec::new(Opts::new("orderflow_bus_monitor_runs_total", "Looks at the bus, by outcome"), &["outcome"])
            .expect("counter"),
    )
});
static LAST_RUN: LazyLock<IntGauge> = LazyLock::new(|| {
    orderflow_telemetry::register(
        IntGauge::new(
            "orderflow_bus_monitor_last_success_timestamp_seconds",
            "When the monitor last read every figure",
        )
        .expect("gauge"),
    )
});

/// Why orders are cancelled (docs/orders.md).
const CANCEL_REASONS: [&str; 6] =
    ["REQUESTED", "PAYMENT_DECLINED", "PAYMENT_TIMEOUT", "OUT_OF_STOCK", "UNKNOWN_PRODUCT", "PRICE_CHANGED"];

/// What the monitor reads from.
#[derive(Debug, Clone)]
pub struct Monitor {
    pub settings: MonitorSettings,
    pub kafka: KafkaSettings,
    /// The read models (the `readmodels` projection's positions, `rm.orders`).
    pub readmodels: PgPool,
    /// The audit log's database (the `audit` projection's positions).
    pub audit: PgPool,
}

/// Projections and the database each keeps its positions in.
const PROJECTIONS: [&str; 2] = ["readmodels", "audit"];

impl Monitor {
    /// Looks at the bus every `interval_secs` until `shutdown`; a look that
    /// fails is logged, counted and tried again at the next tick.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), std::convert::Infallible> {
        if self.settings.interval_secs == 0 {
            // Off; the task lives as long as the process (it is supervised).
            shutdown.cancelled().await;
            return Ok(());
        }
        let mut reader = None;
        let mut ticks = tokio::time::interval(Duration::from_secs(self.settings.interval_secs));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = ticks.tick() => {}
            }
            if reader.is_none() {
                match LagReader::new(&self.kafka) {
                    Ok(created) => reader = Some(Arc::new(Mutex::new(created))),
                    Err(error) => {
                        RUNS.with_label_values(&["failed"]).inc();
                        tracing::warn!(%error, "the bus monitor cannot create its Kafka client; trying again");
                        continue;
                    }
                }
            }
            let Some(current) = reader.clone() else { continue };
            // A look under load can take seconds (the broker's answers);
            // a shutdown does not wait for it.
            let looked = async {
                self.look(&current).await?;
                self.saga().await.map_err(|e| format!("the read models: {e}"))
            };
            let looked = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                looked = looked => looked,
            };
            match looked {
                Ok(()) => {
                    RUNS.with_label_values(&["ok"]).inc();
                    LAST_RUN.set(chrono::Utc::now().timestamp());
                }
                Err(error) => {
                    RUNS.with_label_values(&["failed"]).inc();
                    tracing::warn!(%error, "the bus monitor could not read every figure; trying again");
                }
            }
        }
    }

    /// Reads the bus (and exports it).
    async fn look(&self, reader: &Arc<Mutex<LagReader>>) -> Result<Bus, String> {
        let mut projections = Vec::new();
        for (name, pool) in PROJECTIONS.into_iter().zip([&self.readmodels, &self.audit]) {
            // A projection whose database is not there (yet) shows nothing.
            match positions(pool, name).await {
                Ok(positions) => projections.push((name, positions)),
                Err(error) => tracing::debug!(%error, projection = name, "no positions"),
            }
        }
        let groups: Vec<(String, Vec<String>)> = topology::SERVICES
            .iter()
            .map(|r| {
                let topics = r.consumes.iter().map(|t| self.kafka.topic(t.name)).collect();
                (format!("{}{}", self.settings.group_prefix, r.service), topics)
            })
            .collect();
        let dead_letters: Vec<String> = orderflow_contracts::all_topics()
            .iter()
            .map(|t| orderflow_contracts::topics::dlq(&self.kafka.topic(t.name)))
            .collect();
        let reader = Arc::clone(reader);
        tokio::task::spawn_blocking(move || {
            let mut reader = reader.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            read_bus(&mut reader, &groups, &projections, &dead_letters)
        })
        .await
        .map_err(|e| format!("the monitor's task: {e}"))?
        .map_err(|e| format!("the broker: {e}"))
    }

    /// The bus now (a reader of its own: the bus page asks between two
    /// looks, or with the monitor off).
    pub async fn bus(&self) -> Result<Bus, String> {
        let kafka = self.kafka.clone();
        let reader = tokio::task::spawn_blocking(move || LagReader::new(&kafka))
            .await
            .map_err(|e| format!("the monitor's task: {e}"))?
            .map_err(|e| format!("the broker: {e}"))?;
        self.look(&Arc::new(Mutex::new(reader))).await
    }

    async fn saga(&self) -> Result<(), sqlx::Error> {
        let counts: Vec<(String, i64)> = sqlx::query_as("SELECT status, count(*) FROM rm.orders GROUP BY status")
            .fetch_all(&self.readmodels)
            .await?;
        for status in crate::routes::orders::STATUSES {
            let n = counts.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
            ORDERS.with_label_values(&[status]).set(n);
        }
        // Every reason an order is cancelled for, 0 until one is.
        let reasons: Vec<(Option<String>, i64)> =
            sqlx::query_as("SELECT reason, count(*) FROM rm.orders WHERE status = 'CANCELLED' GROUP BY reason")
                .fetch_all(&self.readmodels)
                .await?;
        for known in CANCEL_REASONS {
            let _ = CANCELLATIONS.with_label_values(&[known]);
        }
        for (reason, n) in reasons {
            CANCELLATIONS.with_label_values(&[reason.as_deref().unwrap_or("UNKNOWN")]).set(n);
        }
        let payments: Vec<(String, i64)> = sqlx::query_as("SELECT status, count(*) FROM rm.payments GROUP BY status")
            .fetch_all(&self.readmodels)
            .await?;
        for status in crate::routes::payments::STATUSES {
            let n = payments.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
            PAYMENTS.with_label_values(&[status]).set(n);
        }
        let overdue: i64 =
            sqlx::query_scalar("SELECT count(*) FROM rm.orders WHERE status = 'PENDING' AND payment_deadline < now()")
                .fetch_one(&self.readmodels)
                .await?;
        OVERDUE.set(overdue);
        Ok(())
    }
}

/// The live generation's position in each partition of projection `name`.
async fn positions(pool: &PgPool, name: &str) -> Result<Vec<(String, i32, i64)>, sqlx::Error> {
    let Some((generation, _)) = orderflow_projection::generation::live(pool, name).await? else {
        return Ok(Vec::new());
    };
    let mut conn = pool.acquire().await?;
    let offsets = orderflow_projection::generation::offsets(&mut conn, name, generation).await?;
    Ok(offsets.into_iter().map(|((topic, partition), next)| (topic, partition, next)).collect())
}

type Positions = Vec<(String, i32, i64)>;

/// Reads the bus and exports it on `/metrics`.
fn read_bus(
    reader: &mut LagReader,
    groups: &[(String, Vec<String>)],
    projections: &[(&str, Positions)],
    dead_letters: &[String],
) -> Result<Bus, KafkaError> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut bus = Bus::default();
    let shown = |reader: &str, lag: &PartitionLag| Lag {
        reader: reader.to_owned(),
        topic: lag.topic.clone(),
        partition: lag.partition,
        messages: lag.messages,
        seconds: lag.seconds(now),
    };
    for (group, topics) in groups {
        for lag in reader.group(group, topics)? {
            let labels = [group.as_str(), lag.topic.as_str(), &lag.partition.to_string()];
            GROUP_POSITION.with_label_values(&labels).set(lag.position.unwrap_or(lag.low));
            GROUP_LAG.with_label_values(&labels).set(lag.messages);
            GROUP_LAG_SECONDS.with_label_values(&labels).set(lag.seconds(now));
            end_offset(&lag);
            bus.groups.push(shown(group, &lag));
        }
    }
    for (projection, positions) in projections {
        let positions: Vec<(String, i32, Option<i64>)> =
            positions.iter().map(|(topic, partition, next)| (topic.clone(), *partition, Some(*next))).collect();
        for lag in reader.lags(&positions)? {
            let labels = [*projection, lag.topic.as_str(), &lag.partition.to_string()];
            PROJECTION_POSITION.with_label_values(&labels).set(lag.position.unwrap_or(lag.low));
            PROJECTION_LAG.with_label_values(&labels).set(lag.messages);
            PROJECTION_LAG_SECONDS.with_label_values(&labels).set(lag.seconds(now));
            end_offset(&lag);
            bus.projections.push(shown(projection, &lag));
        }
    }
    for topic in dead_letters {
        let held = reader.retained(topic)?;
        DLQ.with_label_values(&[topic]).set(held);
        bus.dead_letters.push((topic.clone(), held));
    }
    Ok(bus)
}

fn end_offset(lag: &PartitionLag) {
    END_OFFSET.with_label_values(&[&lag.topic, &lag.partition.to_string()]).set(lag.high);
}
