//! Events written before the kit put outcomes on the bus (no outcome
//! headers) still settle their commands, so a rebuild over older topics or
//! an upgrade with events in flight leaves nothing pending; and outcome
//! headers this build cannot read settle nothing but never cost the event.

use std::time::Duration;

use orderflow_bus::{Headers, Producer};
use orderflow_contracts::Codec;
use orderflow_contracts::users::{UserRegistered, UserRegistrationRejected};
use orderflow_harness::system::System;
use reqwest::Method;
use uuid::Uuid;

async fn status(system: &System, id: &str) -> serde_json::Value {
    system.call(Method::GET, &format!("/api/v1/commands/{id}"), None, None).await.1
}

async fn settled(system: &System, id: &str) -> serde_json::Value {
    orderflow_testkit::until("the command settled", Duration::from_secs(30), || async {
        let body = status(system, id).await;
        if body["status"] != "pending" && body["status"].is_string() { Ok(body) } else { Err(body.to_string()) }
    })
    .await
}

#[tokio::test]
async fn events_without_outcome_headers_settle_as_before_and_unreadable_ones_cost_nothing() {
    let system = System::start().await;
    let codec = Codec::new(&system.registry.url);
    let producer = Producer::new(&system.kafka).expect("producer");
    let topic = system.topic(orderflow_contracts::users::EVENTS.name);
    let now = chrono::Utc::now().timestamp_millis();

    // A registration answered the old way: the event and nothing else.
    let registered_by = Headers::new_root("RegisterUser", "anonymous");
    let user = Uuid::now_v7().to_string();
    let event = UserRegistered {
        user_id: user.clone(),
        email: "legacy@example.com".into(),
        first_name: "Old".into(),
        last_name: "Timer".into(),
        roles: vec!["user".into()],
        version: 1,
        registered_at: now,
    };
    let payload = codec.encode(&event).await.expect("encode");
    let pairs = registered_by.caused("UserRegistered").to_pairs();
    producer.send(&topic, &user, &payload, &pairs).await.expect("send");
    let body = settled(&system, &registered_by.message_id.to_string()).await;
    assert_eq!((body["status"].as_str(), body["command_type"].as_str()), (Some("succeeded"), Some("RegisterUser")));
    assert_eq!(body["version"], 1, "{body}");

    // A retired rejection event.
    let refused_by = Headers::new_root("RegisterUser", "anonymous");
    let refused = UserRegistrationRejected {
        user_id: Uuid::now_v7().to_string(),
        email: "legacy@example.com".into(),
        reason: "EMAIL_TAKEN".into(),
        message: "the email legacy@example.com is already registered".into(),
    };
    let payload = codec.encode(&refused).await.expect("encode");
    let pairs = refused_by.caused("UserRegistrationRejected").to_pairs();
    producer.send(&topic, &refused.user_id, &payload, &pairs).await.expect("send");
    let body = settled(&system, &refused_by.message_id.to_string()).await;
    assert_eq!((body["status"].as_str(), body["reason"].as_str()), (Some("rejected"), Some("EMAIL_TAKEN")), "{body}");

    // An outcome this build does not know: the user is still projected.
    let odd_by = Headers::new_root("RegisterUser", "anonymous");
    let odd_user = Uuid::now_v7().to_string();
    let event = UserRegistered { user_id: odd_user.clone(), email: "odd@example.com".into(), ..event };
    let payload = codec.encode(&event).await.expect("encode");
    let mut pairs = odd_by.caused("UserRegistered").to_pairs();
    pairs.push(("outcome".into(), b"postponed".to_vec()));
    pairs.push(("command_type".into(), b"RegisterUser".to_vec()));
    producer.send(&topic, &odd_user, &payload, &pairs).await.expect("send");
    let readmodels = sqlx::PgPool::connect(&system.readmodels_db).await.expect("readmodels");
    orderflow_testkit::eventually("the user is projected", Duration::from_secs(30), || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM rm.users WHERE id = $1::uuid")
            .bind(&odd_user)
            .fetch_one(&readmodels)
            .await
            .is_ok_and(|n| n == 1)
    })
    .await;
    system.stop().await;
}
