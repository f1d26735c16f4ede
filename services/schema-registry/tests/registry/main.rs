//! The development registry against the Confluent REST contract.

mod api;
mod compatibility;
mod confluent_client;
mod durability;

use reqwest::{Client, Response};
use serde_json::{Value, json};

/// A registry of this test's own plus a client for it.
#[derive(Debug)]
pub struct Registry {
    pub handle: orderflow_harness::RegistryHandle,
    pub http: Client,
}

impl Registry {
    pub async fn start() -> Self {
        orderflow_testkit::init_tracing();
        Self { handle: orderflow_harness::spawn_registry().await, http: Client::new() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.handle.url)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        read(self.http.get(self.url(path)).send().await.expect("GET")).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        read(
            self.http
                .post(self.url(path))
                .header("content-type", "application/vnd.schemaregistry.v1+json")
                .body(body.to_string())
                .send()
                .await
                .expect("POST"),
        )
        .await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        read(self.http.put(self.url(path)).json(&body).send().await.expect("PUT")).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        read(self.http.delete(self.url(path)).send().await.expect("DELETE")).await
    }

    /// Registers and returns the id, asserting success.
    pub async fn register(&self, subject: &str, schema: &str) -> i64 {
        let (status, body) = self.post(&format!("/subjects/{subject}/versions"), json!({"schema": schema})).await;
        assert_eq!(status, 200, "registering under {subject}: {body}");
        body["id"].as_i64().expect("id")
    }
}

async fn read(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap_or("").to_owned());
    let text = response.text().await.expect("body");
    if status != 204 && !text.is_empty() {
        assert_eq!(
            content_type.as_deref(),
            Some("application/vnd.schemaregistry.v1+json"),
            "every answer is in the registry media type"
        );
    }
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

pub const USER_V1: &str = r#"{"type":"record","name":"User","namespace":"t","fields":[{"name":"id","type":"string"}]}"#;
pub const USER_V2_OPTIONAL: &str = r#"{"type":"record","name":"User","namespace":"t","fields":[{"name":"id","type":"string"},{"name":"email","type":["null","string"],"default":null}]}"#;
pub const USER_V2_REQUIRED: &str = r#"{"type":"record","name":"User","namespace":"t","fields":[{"name":"id","type":"string"},{"name":"email","type":"string"}]}"#;
pub const USER_V2_RENAMED_TYPE: &str =
    r#"{"type":"record","name":"User","namespace":"t","fields":[{"name":"id","type":"long"}]}"#;
