//! `/api/v1/admin/bus` (admin): the bus as the console's bus page shows it
//! — every probed process's readiness and outbox, each consumer group's
//! and projection's lag per partition, what waits on each dead-letter
//! topic — read now, from the outside (`crate::monitor`), so a stopped
//! service shows as such. The browser never talks to Prometheus.

use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::AuthUser;
use crate::monitor::{Lag, Process};

/// A process: ready or why not, and its outbox (from its `/metrics`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProcessState {
    pub name: String,
    pub ready: bool,
    /// Why not ready, or that it could not be reached.
    pub detail: Option<String>,
    /// Outbox rows waiting to be published, parked ones included (a
    /// process without an outbox: none).
    pub outbox_backlog: Option<i64>,
    pub outbox_oldest_seconds: Option<f64>,
    pub outbox_parked: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LagView {
    /// The consumer group or projection.
    pub reader: String,
    pub topic: String,
    pub partition: i32,
    pub messages: i64,
    pub seconds: f64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeadLetters {
    pub topic: String,
    pub messages: i64,
}

/// The bus at `checked_at`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BusView {
    pub checked_at: DateTime<Utc>,
    pub processes: Vec<ProcessState>,
    pub groups: Vec<LagView>,
    pub projections: Vec<LagView>,
    pub dead_letters: Vec<DeadLetters>,
}

fn lag(l: Lag) -> LagView {
    LagView { reader: l.reader, topic: l.topic, partition: l.partition, messages: l.messages, seconds: l.seconds }
}

/// The value of an unlabelled metric in a Prometheus text exposition.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn probe(client: &reqwest::Client, process: &Process) -> ProcessState {
    let base = process.url.trim_end_matches('/');
    let mut state = ProcessState {
        name: process.name.clone(),
        ready: false,
        detail: None,
        outbox_backlog: None,
        outbox_oldest_seconds: None,
        outbox_parked: None,
    };
    match client.get(format!("{base}/health/ready")).send().await {
        Ok(response) => {
            state.ready = response.status().is_success();
            if !state.ready {
                state.detail = Some(response.text().await.unwrap_or_default().chars().take(300).collect());
            }
        }
        Err(error) => state.detail = Some(format!("not reachable: {error}")),
    }
    if let Ok(response) = client.get(format!("{base}/metrics")).send().await
        && let Ok(text) = response.text().await
    {
        state.outbox_backlog = metric(&text, "orderflow_outbox_unpublished_rows").map(|v| v as i64);
        state.outbox_oldest_seconds = metric(&text, "orderflow_outbox_oldest_unpublished_age_seconds");
        state.outbox_parked = metric(&text, "orderflow_outbox_parked_rows").map(|v| v as i64);
    }
    state
}

#[utoipa::path(get, path = "/api/v1/admin/bus", summary = "The bus now: readiness, lag, outboxes, dead letters (admin)", responses((status = 200, description = "every probed process, consumer group, projection and dead-letter topic", body = BusView)), security(("bearer" = [])))]
pub async fn bus(State(state): State<AppState>, _: AuthUser) -> ApiResult<Response> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| ApiError::internal("bus", format!("an HTTP client: {e}")))?;
    let probes = state.bus.settings.processes.iter().map(|p| probe(&client, p));
    let (processes, bus) = tokio::join!(futures::future::join_all(probes), state.bus.bus());
    let bus = bus.map_err(|e| ApiError::unavailable("the message broker", e))?;
    Ok(axum::Json(BusView {
        checked_at: Utc::now(),
        processes,
        groups: bus.groups.into_iter().map(lag).collect(),
        projections: bus.projections.into_iter().map(lag).collect(),
        dead_letters: bus.dead_letters.into_iter().map(|(topic, messages)| DeadLetters { topic, messages }).collect(),
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_metric_is_read_from_the_exposition() {
        let text = "# HELP x\norderflow_outbox_unpublished_rows 12\norderflow_outbox_parked_rows_total 3\n\
                    orderflow_outbox_parked_rows 1\n";
        assert_eq!(super::metric(text, "orderflow_outbox_unpublished_rows"), Some(12.0));
        assert_eq!(super::metric(text, "orderflow_outbox_parked_rows"), Some(1.0));
        assert_eq!(super::metric(text, "orderflow_outbox_oldest_unpublished_age_seconds"), None);
    }
}
