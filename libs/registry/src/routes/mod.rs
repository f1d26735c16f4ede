//! The Confluent Schema Registry REST API.

mod config;
mod schemas;
mod subjects;

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::avro::{self, ParsedSchema};
use crate::error::{RegistryError, Result};
use crate::store::Store;

/// Confluent's media type; clients also accept plain JSON.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

pub fn router(store: Store) -> Router {
    Router::new()
        .route("/", get(|| async { registry_json(StatusCode::OK, &serde_json::json!({})) }))
        .route("/subjects", get(subjects::list))
        .route("/subjects/{subject}", post(subjects::lookup).delete(subjects::delete))
        .route("/subjects/{subject}/versions", get(subjects::versions).post(subjects::register))
        .route("/subjects/{subject}/versions/{version}", get(subjects::version).delete(subjects::delete_version))
        .route("/subjects/{subject}/versions/{version}/schema", get(subjects::version_schema))
        .route("/schemas/ids/{id}", get(schemas::by_id))
        .route("/schemas/ids/{id}/schema", get(schemas::raw_by_id))
        .route("/schemas/ids/{id}/versions", get(schemas::versions))
        .route("/schemas/types", get(|| async { registry_json(StatusCode::OK, &serde_json::json!(["AVRO"])) }))
        .route("/compatibility/subjects/{subject}/versions", post(config::check_all))
        .route("/compatibility/subjects/{subject}/versions/{version}", post(config::check_version))
        .route("/config", get(config::get_global).put(config::put_global).delete(config::delete_global))
        .route("/config/{subject}", get(config::get_subject).put(config::put_subject).delete(config::delete_subject))
        .route("/mode", get(|| async { registry_json(StatusCode::OK, &serde_json::json!({"mode": "READWRITE"})) }))
        .with_state(store)
}

/// A JSON response in the registry's media type.
pub fn registry_json(status: StatusCode, body: &serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, CONTENT_TYPE)], body.to_string()).into_response()
}

fn ok(body: serde_json::Value) -> Response {
    registry_json(StatusCode::OK, &body)
}

/// The query flags Confluent's endpoints take.
#[derive(Debug, Default)]
struct Flags(HashMap<String, String>);

impl Flags {
    fn flag(&self, name: &str) -> bool {
        self.0.get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// The body of register, lookup and compatibility requests.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaRequest {
    schema: String,
    #[serde(default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<serde_json::Value>,
}

/// Parses a request body (any JSON content type) into a schema.
fn parse_schema_request(body: &Bytes) -> Result<ParsedSchema> {
    let request: SchemaRequest =
        serde_json::from_slice(body).map_err(|e| RegistryError::BadRequest(format!("Invalid request body: {e}")))?;
    if let Some(kind) = &request.schema_type
        && !kind.eq_ignore_ascii_case("AVRO")
    {
        return Err(RegistryError::InvalidSchema(format!(
            "schema type {kind} is not supported by this registry; only AVRO is"
        )));
    }
    if !request.references.is_empty() {
        return Err(RegistryError::InvalidSchema("schema references are not supported by this registry".into()));
    }
    avro::parse(&request.schema)
}

/// The standard shape of one subject version.
fn version_body(v: &crate::store::SubjectVersion) -> serde_json::Value {
    let mut body = serde_json::json!({
        "subject": v.subject,
        "version": v.version,
        "id": v.id,
        "schema": v.schema,
    });
    if v.schema_type != "AVRO" {
        body["schemaType"] = serde_json::Value::String(v.schema_type.clone());
    }
    body
}
