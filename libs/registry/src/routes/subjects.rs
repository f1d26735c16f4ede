use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{Flags, ok, parse_schema_request, registry_json, version_body};
use crate::error::Result;
use crate::store::{Store, VersionSpec};

pub async fn list(State(store): State<Store>, Query(q): Query<HashMap<String, String>>) -> Result<Response> {
    let flags = Flags(q);
    Ok(ok(serde_json::json!(store.subjects(flags.flag("deleted")).await?)))
}

pub async fn register(State(store): State<Store>, Path(subject): Path<String>, body: Bytes) -> Result<Response> {
    let schema = parse_schema_request(&body)?;
    let id = store.register(&subject, &schema).await?;
    Ok(ok(serde_json::json!({ "id": id })))
}

pub async fn lookup(
    State(store): State<Store>,
    Path(subject): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Response> {
    let schema = parse_schema_request(&body)?;
    let found = store.lookup(&subject, &schema, Flags(q).flag("deleted")).await?;
    Ok(ok(version_body(&found)))
}

pub async fn delete(
    State(store): State<Store>,
    Path(subject): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    let versions = store.delete_subject(&subject, Flags(q).flag("permanent")).await?;
    Ok(ok(serde_json::json!(versions)))
}

pub async fn versions(
    State(store): State<Store>,
    Path(subject): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    Ok(ok(serde_json::json!(store.versions(&subject, Flags(q).flag("deleted")).await?)))
}

pub async fn version(
    State(store): State<Store>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    let found = store.version(&subject, VersionSpec::parse(&version)?, Flags(q).flag("deleted")).await?;
    Ok(ok(version_body(&found)))
}

/// The schema text alone, as its own JSON document.
pub async fn version_schema(
    State(store): State<Store>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    let found = store.version(&subject, VersionSpec::parse(&version)?, Flags(q).flag("deleted")).await?;
    Ok(raw_schema(&found.schema))
}

pub async fn delete_version(
    State(store): State<Store>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    let deleted = store.delete_version(&subject, VersionSpec::parse(&version)?, Flags(q).flag("permanent")).await?;
    Ok(ok(serde_json::json!(deleted)))
}

pub(super) fn raw_schema(schema: &str) -> Response {
    let value: serde_json::Value =
        serde_json::from_str(schema).unwrap_or_else(|_| serde_json::Value::String(schema.to_owned()));
    registry_json(StatusCode::OK, &value)
}
