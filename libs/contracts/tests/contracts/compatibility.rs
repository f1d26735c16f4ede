//! Guarantee 6 at the registry: `register_all` puts every event subject at
//! BACKWARD_TRANSITIVE before registering, so the registry itself refuses an
//! event schema that breaks an older (not only the latest) version.

use orderflow_contracts::users::{DeactivateUser, UserDeactivated};
use orderflow_contracts::{Codec, CodecError, Contract, EVENT_LEVEL};
use serde_json::{Value, json};

const MEDIA_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// `GET /config/{subject}`: status and body.
async fn subject_config(registry: &str, subject: &str) -> (u16, Value) {
    let response = reqwest::get(format!("{registry}/config/{subject}")).await.expect("GET /config");
    (response.status().as_u16(), response.json().await.expect("a JSON body"))
}

/// `POST /subjects/{subject}/versions`: status and body.
async fn register(registry: &str, subject: &str, schema: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{registry}/subjects/{subject}/versions"))
        .header("content-type", MEDIA_TYPE)
        .body(json!({ "schema": schema }).to_string())
        .send()
        .await
        .expect("POST a version");
    (response.status().as_u16(), response.json().await.expect("a JSON body"))
}

async fn versions(registry: &str, subject: &str) -> Value {
    reqwest::get(format!("{registry}/subjects/{subject}/versions"))
        .await
        .expect("GET versions")
        .json()
        .await
        .expect("a JSON list")
}

/// `schema` with its fields changed by `edit`.
fn edited(schema: &str, edit: impl FnOnce(&mut Vec<Value>)) -> String {
    let mut schema: Value = serde_json::from_str(schema).expect("a JSON schema");
    edit(schema["fields"].as_array_mut().expect("a record's fields"));
    schema.to_string()
}

/// v2 adds `n` with a default (it reads v1); v3 makes `n` required: it
/// reads v2, which always writes `n`, but not v1, which never did.
fn v2_and_v3(schema: &str) -> (String, String) {
    (
        edited(schema, |f| f.push(json!({"name": "n", "type": "long", "default": 0}))),
        edited(schema, |f| f.push(json!({"name": "n", "type": "long"}))),
    )
}

#[tokio::test]
async fn event_subjects_refuse_a_schema_that_breaks_an_older_version() {
    orderflow_testkit::init_tracing();
    let registry = orderflow_testkit::registry::spawn_registry().await;
    let codec = Codec::new(&registry.url);
    codec.register_all().await.expect("register every schema");
    codec.register_all().await.expect("and again, as every restart does");

    for schema in orderflow_contracts::all_schemas() {
        let (status, body) = subject_config(&registry.url, schema.full_name).await;
        if schema.is_event() {
            assert_eq!(status, 200, "{}: {body}", schema.full_name);
            assert_eq!(body["compatibilityLevel"], EVENT_LEVEL, "{}", schema.full_name);
        } else {
            assert_eq!(status, 404, "command {} keeps the registry default: {body}", schema.full_name);
        }
    }
    assert_eq!(EVENT_LEVEL, "BACKWARD_TRANSITIVE");

    // An event subject: v2 is accepted, v3 breaks v1 (not the latest) and is refused.
    let event = UserDeactivated::FULL_NAME;
    let (v2, v3) = v2_and_v3(UserDeactivated::SCHEMA);
    let (status, body) = register(&registry.url, event, &v2).await;
    assert_eq!(status, 200, "v2 reads v1: {body}");
    let (status, body) = register(&registry.url, event, &v3).await;
    assert_eq!(status, 409, "v3 cannot read v1: {body}");
    assert_eq!(body["error_code"], 409, "{body}");
    assert_eq!(versions(&registry.url, event).await, json!([1, 2]));

    // The same steps on a command subject (the default BACKWARD) pass: the
    // refusal above is the level's doing.
    let command = DeactivateUser::FULL_NAME;
    let (v2, v3) = v2_and_v3(DeactivateUser::SCHEMA);
    assert_eq!(register(&registry.url, command, &v2).await.0, 200);
    assert_eq!(register(&registry.url, command, &v3).await.0, 200, "BACKWARD checks the latest version only");
}

#[tokio::test]
async fn register_all_sets_the_level_before_it_registers() {
    orderflow_testkit::init_tracing();
    let registry = orderflow_testkit::registry::spawn_registry().await;
    // The registry already holds two versions of an event subject, taken at
    // the default BACKWARD: one without `user_id`, then one where `user_id`
    // has a default. This build's schema (a required `user_id`) reads the
    // latest, not the first.
    let subject = UserDeactivated::FULL_NAME;
    let without = edited(UserDeactivated::SCHEMA, |f| f.retain(|field| field["name"] != "user_id"));
    let defaulted = edited(UserDeactivated::SCHEMA, |f| {
        for field in f.iter_mut().filter(|field| field["name"] == "user_id") {
            field["default"] = json!("");
        }
    });
    assert_eq!(register(&registry.url, subject, &without).await.0, 200);
    assert_eq!(register(&registry.url, subject, &defaulted).await.0, 200);

    let error = Codec::new(&registry.url).register_all().await.expect_err("this build's schema breaks version 1");
    assert!(matches!(error, CodecError::Registry { retriable: false, .. }), "{error:?}");
    assert_eq!(subject_config(&registry.url, subject).await.1["compatibilityLevel"], EVENT_LEVEL);
    assert_eq!(versions(&registry.url, subject).await, json!([1, 2]), "nothing was registered");
}

#[tokio::test]
async fn an_unreachable_registry_is_worth_retrying() {
    // Port 1 on loopback: nothing listens there.
    let error = Codec::new("http://127.0.0.1:1").register_all().await.expect_err("no registry");
    assert!(matches!(error, CodecError::Registry { retriable: true, .. }), "{error:?}");
    assert!(error.is_transient());
    assert!(!error.to_string().contains("127.0.0.1:1"), "the registry URL may carry credentials: {error}");
}
