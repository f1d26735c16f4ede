//! `Prefer: wait`: woken by the command's own id, and a 201/200 only once
//! every read model the answer promises has caught up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use orderflow_contracts::Codec;
use orderflow_projector::ReadModels;
use reqwest::Method;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::{PASSWORD, System, get};

/// Polls the command until it is settled; its status.
async fn settled(system: &System, id: &str) -> serde_json::Value {
    let path = format!("/api/v1/commands/{id}");
    orderflow_testkit::until(&format!("command {id} settled"), Duration::from_secs(30), || async {
        let (status, body) = get(system, &path, None).await;
        assert_eq!(status, 200, "{body}");
        if body["status"] != "pending" { Ok(body) } else { Err(body.to_string()) }
    })
    .await
}

#[tokio::test]
async fn with_the_credentials_projection_stopped_a_register_answers_202_not_201() {
    let mut system = System::start().await;
    // The projector again, but with its credentials part stopped.
    system.projector.take().expect("projector").stop().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let projection =
        ReadModels::new(Arc::new(Codec::new(&system.registry.url)), system.kafka.clone()).without_credentials();
    let stop = CancellationToken::new();
    let projector =
        tokio::spawn(orderflow_projector::run_with(system.projector_settings(), listener, stop.clone(), projection));
    let readmodels = sqlx::PgPool::connect(&system.readmodels_db).await.expect("readmodels");
    orderflow_testkit::eventually("the holdout projector is active", Duration::from_secs(30), || {
        let readmodels = readmodels.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT epoch FROM projection.lease WHERE projection = 'readmodels'")
                .fetch_one(&readmodels)
                .await
                .is_ok_and(|epoch| epoch == 2)
        }
    })
    .await;

    let body = json!({"email": "lag@example.com", "password": PASSWORD, "first_name": "La", "last_name": "G"});
    let started = Instant::now();
    let (status, accepted) =
        system.call_with(Method::POST, "/api/v1/users", None, Some(body), &[("prefer", "wait=2")]).await;
    assert_eq!(status, 202, "a login would not work yet: {accepted}");
    assert!(started.elapsed() >= Duration::from_secs(2), "it waited for the deadline");
    // The users read model did settle it; only the credentials lag.
    let command = settled(&system, accepted["command_id"].as_str().expect("command id")).await;
    assert_eq!((command["status"].as_str(), command["version"].as_i64()), (Some("succeeded"), Some(1)), "{command}");
    assert!(system.login("lag@example.com", PASSWORD).await.is_none(), "no credentials yet");

    // The whole projector again: the credentials catch up, login works.
    stop.cancel();
    projector.await.expect("projector task").expect("projector stopped cleanly");
    system.start_projector().await;
    orderflow_testkit::eventually("the login works", Duration::from_secs(30), || async {
        system.login("lag@example.com", PASSWORD).await.is_some()
    })
    .await;
    system.stop().await;
}

#[tokio::test]
async fn many_concurrent_waiters_are_each_answered_when_their_command_settles() {
    let system = System::start().await;
    let registrations = futures::future::join_all((0..12).map(|n| {
        let system = &system;
        async move { (n, system.register(&format!("waiter{n}@example.com"), PASSWORD).await) }
    }))
    .await;
    for (n, (status, body)) in &registrations {
        assert_eq!(*status, 201, "waiter{n}: {body}");
        // A 201 promises the login works now, not eventually.
        assert!(system.login(&format!("waiter{n}@example.com"), PASSWORD).await.is_some(), "waiter{n} logs in");
    }

    let id = registrations[0].1.1["id"].as_str().expect("id").to_owned();
    let token = system.login("waiter0@example.com", PASSWORD).await.expect("login");
    let updates = futures::future::join_all((0..10).map(|k| {
        let (system, id, token) = (&system, &id, &token);
        async move {
            system
                .call_with(
                    Method::PATCH,
                    &format!("/api/v1/users/{id}"),
                    Some(token),
                    Some(json!({"first_name": format!("Name{k}")})),
                    &[("prefer", "wait=20")],
                )
                .await
        }
    }))
    .await;
    for (status, body) in &updates {
        assert_eq!(*status, 200, "{body}");
        assert!(body["version"].as_i64().is_some_and(|v| v >= 2), "{body}");
    }
    let (_, user) = get(&system, &format!("/api/v1/users/{id}"), Some(&token)).await;
    assert_eq!(user["version"], 11, "all ten updates applied: {user}");
    system.stop().await;
}
