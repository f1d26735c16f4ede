use serde_json::json;

use crate::{Registry, USER_V1, USER_V2_OPTIONAL, USER_V2_RENAMED_TYPE, USER_V2_REQUIRED};

/// A record that lost a field (without default in the old one).
const USER_V2_DROPPED: &str = r#"{"type":"record","name":"User","namespace":"t","fields":[]}"#;

/// For each level: a change it accepts and one it refuses.
#[tokio::test]
async fn every_level_accepts_a_compatible_and_refuses_an_incompatible_change() {
    let cases = [
        ("NONE", USER_V2_RENAMED_TYPE, None),
        ("BACKWARD", USER_V2_OPTIONAL, Some(USER_V2_REQUIRED)),
        ("BACKWARD_TRANSITIVE", USER_V2_OPTIONAL, Some(USER_V2_REQUIRED)),
        ("FORWARD", USER_V2_REQUIRED, Some(USER_V2_DROPPED)),
        ("FORWARD_TRANSITIVE", USER_V2_REQUIRED, Some(USER_V2_DROPPED)),
        ("FULL", USER_V2_OPTIONAL, Some(USER_V2_REQUIRED)),
        ("FULL_TRANSITIVE", USER_V2_OPTIONAL, Some(USER_V2_DROPPED)),
    ];
    let r = Registry::start().await;
    for (level, compatible, incompatible) in cases {
        let subject = format!("level-{level}");
        r.register(&subject, USER_V1).await;
        assert_eq!(r.put(&format!("/config/{subject}"), json!({"compatibility": level})).await.0, 200);
        if let Some(bad) = incompatible {
            let (status, body) =
                r.post(&format!("/compatibility/subjects/{subject}/versions/latest"), json!({"schema": bad})).await;
            assert_eq!(
                (status, body["is_compatible"].clone()),
                (200, json!(false)),
                "{level} check of an incompatible change"
            );
            let (status, body) = r.post(&format!("/subjects/{subject}/versions"), json!({"schema": bad})).await;
            assert_eq!((status, body["error_code"].clone()), (409, json!(409)), "{level} must refuse: {body}");
        }
        let (status, body) =
            r.post(&format!("/compatibility/subjects/{subject}/versions/latest"), json!({"schema": compatible})).await;
        assert_eq!((status, body), (200, json!({"is_compatible": true})), "{level} check of a compatible change");
        r.register(&subject, compatible).await;
    }
    // NONE accepted even a type change.
    assert_eq!(r.get("/subjects/level-NONE/versions").await.1, json!([1, 2]));
}

#[tokio::test]
async fn transitive_levels_judge_every_earlier_version() {
    let r = Registry::start().await;
    for (subject, level) in [("plain", "BACKWARD"), ("transitive", "BACKWARD_TRANSITIVE")] {
        r.put(&format!("/config/{subject}"), json!({"compatibility": level})).await;
        r.register(subject, USER_V1).await;
        r.register(subject, r#"{"type":"record","name":"User","namespace":"t","fields":[{"name":"id","type":"string"},{"name":"email","type":"string","default":""}]}"#).await;
    }
    // v3 drops email's default: it reads v2 data, not v1 data.
    assert_eq!(r.post("/subjects/plain/versions", json!({"schema": USER_V2_REQUIRED})).await.0, 200);
    assert_eq!(r.post("/subjects/transitive/versions", json!({"schema": USER_V2_REQUIRED})).await.0, 409);
}

#[tokio::test]
async fn verbose_compatibility_says_why() {
    let r = Registry::start().await;
    r.register("s", USER_V1).await;
    let (status, body) =
        r.post("/compatibility/subjects/s/versions/1?verbose=true", json!({"schema": USER_V2_REQUIRED})).await;
    assert_eq!(status, 200);
    assert_eq!(body["is_compatible"], false);
    let messages = body["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1);
    assert!(messages[0].as_str().expect("text").contains("email"), "names the field: {messages:?}");
    let (_, body) =
        r.post("/compatibility/subjects/s/versions?verbose=true", json!({"schema": USER_V2_OPTIONAL})).await;
    assert_eq!(body, json!({"is_compatible": true, "messages": []}));
    assert_eq!(
        r.post("/compatibility/subjects/none/versions/latest", json!({"schema": USER_V1})).await.1["error_code"],
        40401
    );
}
