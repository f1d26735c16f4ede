use serde_json::json;

use crate::{Registry, USER_V1, USER_V2_OPTIONAL};

#[tokio::test]
async fn starts_empty_and_in_readwrite_mode() {
    let r = Registry::start().await;
    assert_eq!(r.get("/subjects").await, (200, json!([])));
    assert_eq!(r.get("/mode").await, (200, json!({"mode": "READWRITE"})));
    assert_eq!(r.get("/config").await, (200, json!({"compatibilityLevel": "BACKWARD"})));
    assert_eq!(r.get("/schemas/types").await, (200, json!(["AVRO"])));
}

#[tokio::test]
async fn register_is_idempotent_and_ids_are_shared_across_subjects() {
    let r = Registry::start().await;
    let id = r.register("a-value", USER_V1).await;
    assert_eq!(r.register("a-value", USER_V1).await, id, "same schema, same subject: same id");
    // Whitespace and attribute order do not make a new schema.
    let reordered =
        r#"{ "namespace":"t", "fields": [ {"type":"string","name":"id"} ], "name":"User", "type":"record" }"#;
    assert_eq!(r.register("a-value", reordered).await, id);
    assert_eq!(r.get("/subjects/a-value/versions").await, (200, json!([1])));
    assert_eq!(r.register("b-value", USER_V1).await, id, "another subject reuses the id");
    let v2 = r.register("a-value", USER_V2_OPTIONAL).await;
    assert_ne!(v2, id);
    assert_eq!(r.get("/subjects").await, (200, json!(["a-value", "b-value"])));
    assert_eq!(r.get("/subjects/a-value/versions").await, (200, json!([1, 2])));
    assert_eq!(
        r.get(&format!("/schemas/ids/{id}/versions")).await.1,
        json!([
            {"subject": "a-value", "version": 1}, {"subject": "b-value", "version": 1}
        ])
    );
}

#[tokio::test]
async fn reads_by_id_subject_and_version() {
    let r = Registry::start().await;
    let id = r.register("s", USER_V1).await;
    let (status, body) = r.get(&format!("/schemas/ids/{id}?deleted=true")).await;
    assert_eq!(status, 200);
    let schema: serde_json::Value =
        serde_json::from_str(body["schema"].as_str().expect("schema string")).expect("json");
    assert_eq!(schema["name"], "User");
    assert_eq!(r.get(&format!("/schemas/ids/{id}/schema")).await.1["name"], "User");

    let (status, latest) = r.get("/subjects/s/versions/latest").await;
    assert_eq!(status, 200);
    assert_eq!(
        (latest["subject"].clone(), latest["version"].clone(), latest["id"].clone()),
        (json!("s"), json!(1), json!(id))
    );
    assert_eq!(r.get("/subjects/s/versions/1").await.1, latest);
    assert_eq!(r.get("/subjects/s/versions/-1").await.1, latest);
    assert_eq!(r.get("/subjects/s/versions/1/schema").await.1["type"], "record");

    let (status, found) = r.post("/subjects/s", json!({"schema": USER_V1})).await;
    assert_eq!(status, 200);
    assert_eq!((found["id"].clone(), found["version"].clone()), (json!(id), json!(1)));
}

#[tokio::test]
async fn errors_carry_confluent_codes() {
    let r = Registry::start().await;
    let (status, body) = r.get("/subjects/nope/versions").await;
    assert_eq!((status, body["error_code"].clone()), (404, json!(40401)));
    assert!(body["message"].as_str().expect("message").contains("nope"));
    assert_eq!(r.get("/schemas/ids/999").await.1["error_code"], 40403);

    r.register("s", USER_V1).await;
    assert_eq!(r.get("/subjects/s/versions/7").await, (404, r.get("/subjects/s/versions/7").await.1));
    assert_eq!(r.get("/subjects/s/versions/7").await.1["error_code"], 40402);
    let (status, body) = r.get("/subjects/s/versions/zero").await;
    assert_eq!((status, body["error_code"].clone()), (422, json!(42202)));
    assert_eq!(r.get("/subjects/s/versions/0").await.1["error_code"], 42202);
    let (status, body) = r.post("/subjects/s", json!({"schema": USER_V2_OPTIONAL})).await;
    assert_eq!((status, body["error_code"].clone()), (404, json!(40403)));
    assert_eq!(r.post("/subjects/other", json!({"schema": USER_V1})).await.1["error_code"], 40401);

    let (status, body) = r.post("/subjects/s/versions", json!({"schema": "{\"type\":\"recrod\"}"})).await;
    assert_eq!((status, body["error_code"].clone()), (422, json!(42201)));
    let (status, body) = r.post("/subjects/s/versions", json!({"schema": "not json"})).await;
    assert_eq!((status, body["error_code"].clone()), (422, json!(42201)));
    let (status, body) = r.post("/subjects/s/versions", json!({"schema": "\"int\"", "schemaType": "PROTOBUF"})).await;
    assert_eq!((status, body["error_code"].clone()), (422, json!(42201)));
    assert!(body["message"].as_str().expect("message").contains("PROTOBUF"));
    let (status, body) = r.post("/subjects/s/versions", json!({"schemaa": "\"int\""})).await;
    assert_eq!((status, body["error_code"].clone()), (400, json!(400)));

    let (status, body) = r.put("/config", json!({"compatibility": "SIDEWAYS"})).await;
    assert_eq!((status, body["error_code"].clone()), (422, json!(42203)));
    assert_eq!(r.get("/config/s").await.1["error_code"], 40408);
}

#[tokio::test]
async fn soft_then_permanent_delete_and_ids_are_never_reused() {
    let r = Registry::start().await;
    let first = r.register("s", USER_V1).await;
    let second = r.register("s", USER_V2_OPTIONAL).await;

    // A version: soft, then permanent; permanent first is refused.
    assert_eq!(r.delete("/subjects/s/versions/2?permanent=true").await.1["error_code"], 40407);
    assert_eq!(r.delete("/subjects/s/versions/2").await, (200, json!(2)));
    assert_eq!(r.delete("/subjects/s/versions/2").await.1["error_code"], 40406);
    assert_eq!(r.get("/subjects/s/versions").await.1, json!([1]));
    assert_eq!(r.get("/subjects/s/versions?deleted=true").await.1, json!([1, 2]));
    assert_eq!(r.get("/subjects/s/versions/2").await.1["error_code"], 40402);
    assert_eq!(r.get("/subjects/s/versions/2?deleted=true").await.1["id"], json!(second));
    assert_eq!(r.delete("/subjects/s/versions/2?permanent=true").await, (200, json!(2)));

    // The subject: permanent first is refused, soft hides it, permanent removes it.
    assert_eq!(r.delete("/subjects/s?permanent=true").await.1["error_code"], 40405);
    assert_eq!(r.delete("/subjects/s").await, (200, json!([1])));
    assert_eq!(r.delete("/subjects/s").await.1["error_code"], 40404);
    assert_eq!(r.get("/subjects").await.1, json!([]));
    assert_eq!(r.get("/subjects?deleted=true").await.1, json!(["s"]));
    assert_eq!(r.delete("/subjects/s?permanent=true").await, (200, json!([1])));
    assert_eq!(r.get("/subjects?deleted=true").await.1, json!([]));

    // Schemas stay readable by id (old messages must still decode) ...
    assert_eq!(r.get(&format!("/schemas/ids/{first}")).await.0, 200);
    // ... and a new schema never gets an old id.
    let third = r.register("s", r#"{"type":"record","name":"Other","fields":[]}"#).await;
    assert!(third > second && third > first);
    assert_eq!(r.get("/subjects/s/versions").await.1, json!([1]));
}

#[tokio::test]
async fn config_global_and_per_subject() {
    let r = Registry::start().await;
    assert_eq!(r.put("/config", json!({"compatibility": "full"})).await, (200, json!({"compatibility": "FULL"})));
    assert_eq!(r.get("/config").await.1, json!({"compatibilityLevel": "FULL"}));
    r.register("s", USER_V1).await;
    assert_eq!(r.put("/config/s", json!({"compatibility": "NONE"})).await.1, json!({"compatibility": "NONE"}));
    assert_eq!(r.get("/config/s").await.1, json!({"compatibilityLevel": "NONE"}));
    assert_eq!(r.get("/config/t?defaultToGlobal=true").await.1, json!({"compatibilityLevel": "FULL"}));
    assert_eq!(r.delete("/config/s").await.1, json!({"compatibilityLevel": "NONE"}));
    assert_eq!(r.get("/config/s").await.1["error_code"], 40408);
    assert_eq!(r.delete("/config/unknown").await.1["error_code"], 40401);
    assert_eq!(r.delete("/config").await.1, json!({"compatibilityLevel": "FULL"}));
    assert_eq!(r.get("/config").await.1, json!({"compatibilityLevel": "BACKWARD"}));
}

#[tokio::test]
async fn concurrent_registrations_of_one_schema_get_one_id() {
    let r = Registry::start().await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let http = r.http.clone();
        let url = r.url(&format!("/subjects/s{}/versions", i % 4));
        tasks.push(tokio::spawn(async move {
            let response = http.post(url).json(&json!({"schema": USER_V1})).send().await.expect("POST");
            let body: serde_json::Value = response.json().await.expect("json");
            body["id"].as_i64().expect("id")
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.expect("task"));
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one schema, one id: {ids:?}");
    for s in 0..4 {
        assert_eq!(r.get(&format!("/subjects/s{s}/versions")).await.1, json!([1]));
    }
}
