use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::{Flags, ok, parse_schema_request};
use crate::avro::Level;
use crate::error::{RegistryError, Result};
use crate::store::{Store, VersionSpec};

#[derive(Debug, Deserialize)]
struct ConfigRequest {
    compatibility: Option<String>,
    #[serde(rename = "compatibilityLevel")]
    compatibility_level: Option<String>,
}

fn parse_level(body: &Bytes) -> Result<Level> {
    let request: ConfigRequest =
        serde_json::from_slice(body).map_err(|e| RegistryError::BadRequest(format!("Invalid request body: {e}")))?;
    let raw = request
        .compatibility
        .or(request.compatibility_level)
        .ok_or_else(|| RegistryError::InvalidCompatibilityLevel(String::new()))?;
    Level::parse(&raw)
}

pub async fn get_global(State(store): State<Store>) -> Result<Response> {
    Ok(ok(serde_json::json!({"compatibilityLevel": store.global_level().await?.as_str()})))
}

pub async fn put_global(State(store): State<Store>, body: Bytes) -> Result<Response> {
    let level = parse_level(&body)?;
    store.set_level(None, level).await?;
    Ok(ok(serde_json::json!({"compatibility": level.as_str()})))
}

/// Resets the global level to the default; answers the level it had.
pub async fn delete_global(State(store): State<Store>) -> Result<Response> {
    let previous = store.delete_level(None).await?.unwrap_or(Level::DEFAULT);
    Ok(ok(serde_json::json!({"compatibilityLevel": previous.as_str()})))
}

pub async fn get_subject(
    State(store): State<Store>,
    Path(subject): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    let level = match store.configured_level(Some(&subject)).await? {
        Some(level) => level,
        None if Flags(q).flag("defaultToGlobal") => store.global_level().await?,
        None => return Err(RegistryError::SubjectConfigNotFound(subject)),
    };
    Ok(ok(serde_json::json!({"compatibilityLevel": level.as_str()})))
}

pub async fn put_subject(State(store): State<Store>, Path(subject): Path<String>, body: Bytes) -> Result<Response> {
    let level = parse_level(&body)?;
    store.set_level(Some(&subject), level).await?;
    Ok(ok(serde_json::json!({"compatibility": level.as_str()})))
}

pub async fn delete_subject(State(store): State<Store>, Path(subject): Path<String>) -> Result<Response> {
    match store.delete_level(Some(&subject)).await? {
        Some(previous) => Ok(ok(serde_json::json!({"compatibilityLevel": previous.as_str()}))),
        None if store.subject_exists(&subject, true).await? => Err(RegistryError::SubjectConfigNotFound(subject)),
        None => Err(RegistryError::SubjectNotFound(subject)),
    }
}

/// `POST /compatibility/subjects/{subject}/versions`: against what the
/// subject's level demands (all versions for the transitive levels).
pub async fn check_all(
    State(store): State<Store>,
    Path(subject): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Response> {
    let schema = parse_schema_request(&body)?;
    let problems = store.compatibility(&subject, None, &schema).await?;
    Ok(answer(problems, Flags(q).flag("verbose")))
}

pub async fn check_version(
    State(store): State<Store>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Response> {
    let spec = VersionSpec::parse(&version)?;
    let schema = parse_schema_request(&body)?;
    let problems = store.compatibility(&subject, Some(spec), &schema).await?;
    Ok(answer(problems, Flags(q).flag("verbose")))
}

fn answer(problems: Vec<String>, verbose: bool) -> Response {
    let mut body = serde_json::json!({"is_compatible": problems.is_empty()});
    if verbose {
        body["messages"] = serde_json::json!(problems);
    }
    ok(body)
}
