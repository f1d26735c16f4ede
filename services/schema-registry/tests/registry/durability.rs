use serde_json::json;

use crate::{USER_V1, USER_V2_OPTIONAL};

/// Ids, versions and levels survive a restart, and the id sequence goes on.
#[tokio::test]
async fn ids_are_stable_across_restarts() {
    orderflow_testkit::init_tracing();
    let db = orderflow_testkit::fresh_database("registry").await;
    let http = reqwest::Client::new();

    let first = orderflow_harness::spawn_registry_on(db.clone()).await;
    let id: serde_json::Value = http
        .post(format!("{}/subjects/s/versions", first.url))
        .json(&json!({"schema": USER_V1}))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    http.put(format!("{}/config", first.url)).json(&json!({"compatibility": "FULL"})).send().await.expect("config");
    first.stop().await;

    let second = orderflow_harness::spawn_registry_on(db).await;
    let again: serde_json::Value = http
        .post(format!("{}/subjects/s/versions", second.url))
        .json(&json!({"schema": USER_V1}))
        .send()
        .await
        .expect("register again")
        .json()
        .await
        .expect("json");
    assert_eq!(again, id);
    let config: serde_json::Value =
        http.get(format!("{}/config", second.url)).send().await.expect("config").json().await.expect("json");
    assert_eq!(config, json!({"compatibilityLevel": "FULL"}));
    let next: serde_json::Value = http
        .post(format!("{}/subjects/s/versions", second.url))
        .json(&json!({"schema": USER_V2_OPTIONAL}))
        .send()
        .await
        .expect("register v2")
        .json()
        .await
        .expect("json");
    assert!(next["id"].as_i64() > id["id"].as_i64());
}
