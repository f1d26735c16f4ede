use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;

use super::{Flags, ok};
use crate::error::{RegistryError, Result};
use crate::store::Store;

fn parse_id(raw: &str) -> Result<i32> {
    raw.parse().map_err(|_| RegistryError::SchemaNotFound(raw.to_owned()))
}

/// `GET /schemas/ids/{id}`. Schemas stay readable by id after their
/// subjects are deleted (old messages must still decode), so `deleted` is
/// accepted and makes no difference.
pub async fn by_id(State(store): State<Store>, Path(id): Path<String>) -> Result<Response> {
    let (schema_type, schema) = store.schema_by_id(parse_id(&id)?).await?;
    let mut body = serde_json::json!({ "schema": schema });
    if schema_type != "AVRO" {
        body["schemaType"] = serde_json::Value::String(schema_type);
    }
    Ok(ok(body))
}

pub async fn raw_by_id(State(store): State<Store>, Path(id): Path<String>) -> Result<Response> {
    let (_, schema) = store.schema_by_id(parse_id(&id)?).await?;
    Ok(super::subjects::raw_schema(&schema))
}

pub async fn versions(
    State(store): State<Store>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    let rows = store.versions_of_schema(parse_id(&id)?, Flags(q).flag("deleted")).await?;
    let body: Vec<_> = rows
        .into_iter()
        .map(|(subject, version)| serde_json::json!({"subject": subject, "version": version}))
        .collect();
    Ok(ok(serde_json::json!(body)))
}
