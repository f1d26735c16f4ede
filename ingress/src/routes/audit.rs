//! `/api/v1/audit`: the audit log (admin only), read from the audit
//! service's views (`audit.*` in the `audit` database).
//!
//! - `GET /audit?actor=&entity=&type=&correlation_id=&from=&to=&page_size=&cursor=`:
//!   newest first, keyset-paginated (`next_cursor`, `next`).
//! - `GET /audit/correlations/{id}`: one request's records in causal order.
//! - `GET /audit/verify[?full=true]`: whether every chain is intact, and if
//!   not, the first record where one breaks.

use std::str::FromStr;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use orderflow_audit::Record;
use orderflow_audit::query::{Cursor, Filter};
use orderflow_config::DatabaseSettings;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::AuthUser;

pub const DEFAULT_PAGE_SIZE: i64 = 50;
pub const MAX_PAGE_SIZE: i64 = 500;

/// The routes, to merge into the API router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/audit", get(list))
        .route("/audit/verify", get(verify))
        .route("/audit/correlations/{id}", get(correlation))
}

/// A lazy pool on the audit database: the ingress starts (and serves
/// everything else) whether or not the audit log is up; these routes answer
/// 503 until it is.
pub fn connect(settings: &DatabaseSettings) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(&settings.url)?.options([
        ("statement_timeout", settings.statement_timeout_ms.to_string()),
        ("idle_in_transaction_session_timeout", settings.idle_in_transaction_timeout_ms.to_string()),
        // Read only: the ingress never writes the audit log.
        ("default_transaction_read_only", "on".to_owned()),
    ]);
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
        .connect_lazy_with(options))
}

fn admin_only(claims: &orderflow_auth::Claims) -> ApiResult<()> {
    if claims.is_admin() { Ok(()) } else { Err(ApiError::forbidden("the audit log needs the admin role")) }
}

fn unavailable(error: sqlx::Error) -> ApiError {
    ApiError::unavailable("the audit log", error)
}

/// An audit record as the API shows it: the payload (without its
/// sensitive fields) as JSON, where it was read and its place in its chain.
/// GraphQL's `AuditRecord` (an order's `auditTrail`) is the same.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, async_graphql::SimpleObject)]
#[graphql(name = "AuditRecord")]
pub struct RecordView {
    pub message_id: uuid::Uuid,
    pub message_type: String,
    /// The aggregate id (the message's key).
    pub entity: Option<String>,
    pub actor: String,
    pub correlation_id: String,
    pub causation_id: String,
    pub occurred_at: DateTime<Utc>,
    pub source: Source,
    pub chain: Chain,
    #[schema(value_type = Object)]
    pub payload: Value,
    /// In a correlation's story: its depth in the causation tree (0: the
    /// first record of the request).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depth: Option<usize>,
}

/// Where a record was read.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, async_graphql::SimpleObject)]
#[graphql(name = "AuditSource")]
pub struct Source {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// A record's place in the hash chain of its source partition.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, async_graphql::SimpleObject)]
#[graphql(name = "AuditChain")]
pub struct Chain {
    pub seq: i64,
    pub prev_hash: String,
    pub hash: String,
}

/// A page of audit records, newest first, and the cursor to the next.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub items: Vec<RecordView>,
    pub page_size: i64,
    /// `newest first`.
    pub order: &'static str,
    pub next_cursor: Option<String>,
    /// The next page's URL.
    pub next: Option<String>,
}

/// One request's records in causal order, each with its `depth` in the
/// causation tree.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditStory {
    pub correlation_id: String,
    pub order: &'static str,
    pub items: Vec<RecordView>,
}

pub(crate) fn show(record: Record) -> RecordView {
    RecordView {
        payload: record.payload_json(),
        message_id: record.message_id,
        message_type: record.message_type,
        entity: record.aggregate_key,
        actor: record.actor,
        correlation_id: record.correlation_id,
        causation_id: record.causation_id,
        occurred_at: record.occurred_at,
        source: Source { topic: record.topic, partition: record.partition, offset: record.source_offset },
        chain: Chain { seq: record.seq, prev_hash: record.prev_hash, hash: record.hash },
        depth: None,
    }
}

/// Unknown parameters are refused (a typo would otherwise widen the search).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    actor: Option<String>,
    entity: Option<String>,
    #[serde(rename = "type")]
    message_type: Option<String>,
    correlation_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    page_size: Option<String>,
    cursor: Option<String>,
}

fn time(field: &str, raw: Option<&str>) -> ApiResult<Option<DateTime<Utc>>> {
    raw.map(|raw| {
        DateTime::parse_from_rfc3339(raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| ApiError::bad_query(field, format!("`{raw}` is not an RFC 3339 time (2024-05-01T12:00:00Z)")))
    })
    .transpose()
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    let text = rejection.body_text();
    let problem = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(&text).to_owned();
    // serde names the parameter: "unknown field `x`, expected one of ...".
    let field = problem.split('`').nth(1).unwrap_or("query").to_owned();
    ApiError::bad_query(&field, problem)
}

fn next_link(query: &ListQuery, page_size: i64, cursor: &str) -> String {
    let mut params: Vec<(&str, &str)> = Vec::new();
    for (name, value) in [
        ("actor", &query.actor),
        ("entity", &query.entity),
        ("type", &query.message_type),
        ("correlation_id", &query.correlation_id),
        ("from", &query.from),
        ("to", &query.to),
    ] {
        if let Some(value) = value {
            params.push((name, value));
        }
    }
    let size = page_size.to_string();
    params.push(("page_size", &size));
    params.push(("cursor", cursor));
    let encoded: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", percent(v))).collect();
    format!("/api/v1/audit?{}", encoded.join("&"))
}

fn percent(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[utoipa::path(get, path = "/api/v1/audit", summary = "Search the audit log (admin)", params(("actor" = Option<String>, Query, description = "a user id or `system`"), ("entity" = Option<String>, Query, description = "an aggregate id (the Kafka key)"), ("type" = Option<String>, Query, description = "a message type, e.g. OrderPlaced"), ("correlation_id" = Option<String>, Query, description = "a request's id"), ("from" = Option<String>, Query, description = "RFC 3339"), ("to" = Option<String>, Query, description = "RFC 3339"), ("page_size" = Option<i64>, Query, description = "1 to 500, 50 unless given"), ("cursor" = Option<String>, Query, description = "the `next_cursor` of the page before")), responses((status = 200, description = "a page of records, newest first", body = AuditPage)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Response> {
    admin_only(&claims)?;
    let Query(query) = query.map_err(query_rejection)?;
    let page_size =
        match query.page_size.as_deref() {
            None => DEFAULT_PAGE_SIZE,
            Some(raw) => raw.parse::<i64>().ok().filter(|n| (1..=MAX_PAGE_SIZE).contains(n)).ok_or_else(|| {
                ApiError::bad_query("page_size", format!("must be a number from 1 to {MAX_PAGE_SIZE}"))
            })?,
        };
    let after = query
        .cursor
        .as_deref()
        .map(|raw| Cursor::decode(raw).map_err(|e| ApiError::bad_query("cursor", e.to_string())))
        .transpose()?;
    let filter = Filter {
        actor: query.actor.clone(),
        entity: query.entity.clone(),
        message_type: query.message_type.clone(),
        correlation_id: query.correlation_id.clone(),
        from: time("from", query.from.as_deref())?,
        to: time("to", query.to.as_deref())?,
    };
    if let (Some(from), Some(to)) = (filter.from, filter.to)
        && from > to
    {
        return Err(ApiError::bad_query("to", "must not be before `from`"));
    }
    let page = orderflow_audit::query::search(&state.audit, &filter, after, page_size).await.map_err(unavailable)?;
    let next_cursor = page.next.map(|c| c.encode());
    let next = next_cursor.as_deref().map(|c| next_link(&query, page_size, c));
    Ok(axum::Json(AuditPage {
        items: page.records.into_iter().map(show).collect(),
        page_size,
        order: "newest first",
        next_cursor,
        next,
    })
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    full: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/audit/verify", summary = "Verify the hash chains (admin)", params(("full" = Option<String>, Query, description = "`true`: recompute every record, not only since the last checkpoints")), responses((status = 200, description = "whether every chain is intact, and the first break", body = orderflow_audit::verify::Report)), security(("bearer" = [])))]
pub async fn verify(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    query: Result<Query<VerifyQuery>, QueryRejection>,
) -> ApiResult<Response> {
    admin_only(&claims)?;
    let Query(query) = query.map_err(query_rejection)?;
    let full = match query.full.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(ApiError::bad_query("full", format!("`{other}` is not true or false"))),
    };
    let report = orderflow_audit::verify::verify(&state.audit, full).await.map_err(unavailable)?;
    Ok(axum::Json(report).into_response())
}

#[utoipa::path(get, path = "/api/v1/audit/correlations/{id}", summary = "One request's story in causal order (admin)", params(("id" = String, Path, description = "a correlation id (the request's X-Request-Id)")), responses((status = 200, description = "the records of the request, each after its cause", body = AuditStory), (status = 404, description = "no record has this correlation id", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn correlation(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    admin_only(&claims)?;
    let story = orderflow_audit::query::correlation(&state.audit, &id).await.map_err(unavailable)?;
    if story.is_empty() {
        return Err(ApiError::not_found(format!("no audit record has correlation id {id}")));
    }
    let items = story.into_iter().map(|(depth, record)| RecordView { depth: Some(depth), ..show(record) }).collect();
    Ok(axum::Json(AuditStory {
        correlation_id: id,
        order: "causal: each record after the one that caused it; siblings by time",
        items,
    })
    .into_response())
}
