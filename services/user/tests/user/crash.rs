//! `kill -9` at the two dangerous moments: the failpoints abort the real
//! binary (no destructors, no offset commit, no graceful anything), then a
//! fresh process takes over.

use std::time::Duration;

use orderflow_bus::Headers;
use orderflow_contracts::users::RegisterUser;
use orderflow_harness::shop::spawn_binary;
use orderflow_harness::system::System;
use tokio::process::Child;

use crate::{events, send};

fn spawn_user_service(system: &System, failpoint: Option<&str>) -> Child {
    spawn_binary(env!("CARGO_BIN_EXE_user-service"), system.user_service_env(), failpoint)
}

async fn crash_and_recover(failpoint: &str) -> (System, String, Vec<(String, orderflow_bus::InboundMessage)>) {
    let system = System::start_without_user_service().await;
    let mut doomed = spawn_user_service(&system, Some(failpoint));
    let id = "0190a0a0-0000-7000-8000-0000000000c1".to_owned();
    let command = RegisterUser {
        user_id: id.clone(),
        email: "crash@example.com".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into(),
        first_name: "Crash".into(),
        last_name: "Test".into(),
    };
    send(&system, &command, &Headers::new_root("RegisterUser", "anonymous")).await;
    let status =
        tokio::time::timeout(Duration::from_secs(60), doomed.wait()).await.expect("the failpoint fired").expect("wait");
    assert!(!status.success(), "the process died at {failpoint}: {status:?}");

    let mut survivor = spawn_user_service(&system, None);
    let pool = sqlx::PgPool::connect(&system.readmodels_db).await.expect("readmodels");
    orderflow_testkit::eventually("the read model shows the user", Duration::from_secs(90), || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM rm.users").fetch_one(&pool).await.is_ok_and(|n| n == 1)
        }
    })
    .await;
    // A marker command on the same key: once the read model shows it, every
    // event before it on the user's partition — including any duplicate the
    // restart might (wrongly) have produced — is on the bus. No sleeping.
    let marker = orderflow_contracts::users::UpdateUserProfile {
        user_id: id.clone(),
        first_name: None,
        last_name: Some("Marker".into()),
    };
    send(&system, &marker, &Headers::new_root("UpdateUserProfile", &id)).await;
    orderflow_testkit::eventually("the read model shows the marker", Duration::from_secs(60), || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM rm.users WHERE last_name = 'Marker'")
                .fetch_one(&pool)
                .await
                .is_ok_and(|n| n == 1)
        }
    })
    .await;
    let seen = events(&system).await;
    survivor.kill().await.expect("stop the survivor");
    (system, id, seen)
}

async fn assert_one_user(system: &System, id: &str) {
    let users = crate::users_db(system).await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&users).await.expect("count");
    assert_eq!(count, 1, "exactly one user");
    let readmodels = sqlx::PgPool::connect(&system.readmodels_db).await.expect("readmodels");
    let (rm_id, version, email): (uuid::Uuid, i64, String) =
        sqlx::query_as("SELECT id, version, email FROM rm.users").fetch_one(&readmodels).await.expect("read model");
    let (db_version, db_email): (i64, String) =
        sqlx::query_as("SELECT version, email FROM users").fetch_one(&users).await.expect("users");
    assert_eq!(
        (rm_id.to_string(), version, email),
        (id.to_owned(), db_version, db_email),
        "read model matches the users table"
    );
}

#[tokio::test]
async fn killed_between_database_commit_and_offset_commit() {
    let (system, id, events) = crash_and_recover("consumer.after_commit").await;
    assert_one_user(&system, &id).await;
    // The command was redelivered to the new process; its inbox absorbed it.
    // Counted by message id: the abort can also land after the relay
    // published the event and before it marked the row, and the relay's
    // republished copy (same message id) is what the contract allows.
    let registered: std::collections::HashSet<_> = events
        .iter()
        .filter(|(t, _)| t == "UserRegistered")
        .map(|(_, m)| m.headers().expect("headers").message_id)
        .collect();
    assert_eq!(registered.len(), 1, "one effect, one event: {:?}", events.iter().map(|(t, _)| t).collect::<Vec<_>>());
    assert!(
        !events.iter().any(|(t, _)| t == "CommandRejected"),
        "the redelivery was not treated as a new registration"
    );
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox")
        .fetch_one(&crate::users_db(&system).await)
        .await
        .expect("inbox");
    assert_eq!(inbox, 2, "the registration once (its redelivery absorbed), and the marker");
    system.stop().await;
}

#[tokio::test]
async fn killed_between_broker_ack_and_marking_rows_published() {
    let (system, id, events) = crash_and_recover("relay.after_ack").await;
    assert_one_user(&system, &id).await;
    // The relay republished what the broker had already acked: the same
    // message (same message_id) twice. That is the at-least-once side of
    // the outbox; the consumers make it exactly-once.
    let registered: Vec<_> = events.iter().filter(|(t, _)| t == "UserRegistered").collect();
    assert_eq!(registered.len(), 2, "the crash happened after the ack, so the event was sent again");
    let ids: Vec<_> = registered.iter().map(|(_, m)| m.headers().expect("headers").message_id).collect();
    assert_eq!(ids[0], ids[1], "a republished event keeps its message_id");
    let unpublished: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(&crate::users_db(&system).await)
        .await
        .expect("outbox");
    assert_eq!(unpublished, 0, "the new relay marked everything");
    let readmodels = sqlx::PgPool::connect(&system.readmodels_db).await.expect("readmodels");
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT status FROM rm.commands").fetch_all(&readmodels).await.expect("statuses");
    assert_eq!(statuses, ["succeeded", "succeeded"], "the registration and the marker");
    system.stop().await;
}

#[tokio::test]
async fn a_background_task_that_dies_stops_the_process_non_zero() {
    let system = System::start_without_user_service().await;
    // The relay panics the first time the broker acks a batch.
    let mut doomed = spawn_user_service(&system, Some("relay.after_ack=panic"));
    let command = RegisterUser {
        user_id: "0190a0a0-0000-7000-8000-0000000000c9".into(),
        email: "dies@example.com".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into(),
        first_name: "Task".into(),
        last_name: "Death".into(),
    };
    send(&system, &command, &Headers::new_root("RegisterUser", "anonymous")).await;
    let status = tokio::time::timeout(Duration::from_secs(60), doomed.wait())
        .await
        .expect("the process stopped by itself once its relay died")
        .expect("wait");
    assert!(!status.success(), "a dead task ends the process non-zero: {status:?}");
    assert!(status.code().is_some(), "it exited (non-zero), it was not killed: {status:?}");

    // What the dead process committed is published by its successor.
    let mut survivor = spawn_user_service(&system, None);
    let pool = sqlx::PgPool::connect(&system.readmodels_db).await.expect("readmodels");
    orderflow_testkit::eventually("the successor published the event", Duration::from_secs(60), || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM rm.users").fetch_one(&pool).await.is_ok_and(|n| n == 1)
        }
    })
    .await;
    survivor.kill().await.expect("stop the survivor");
    system.stop().await;
}

/// Sends `rounds` profile updates to each of `ids`, `per_second` at a time.
async fn steady_updates(system: &System, ids: &[String], rounds: usize, per_second: usize) {
    use orderflow_contracts::Contract;
    let codec = orderflow_contracts::Codec::new(&system.registry.url);
    let producer = orderflow_bus::Producer::new(&system.kafka).expect("producer");
    let topic = system.topic(orderflow_contracts::users::COMMANDS.name);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut pending = Vec::new();
    for round in 1..=rounds {
        for id in ids {
            let update = orderflow_contracts::users::UpdateUserProfile {
                user_id: id.clone(),
                first_name: None,
                last_name: Some(format!("r{round}")),
            };
            pending.push((update, Headers::new_root("UpdateUserProfile", id)));
        }
    }
    for chunk in pending.chunks((per_second / 10).max(1)) {
        tick.tick().await;
        let sends = chunk.iter().map(|(command, headers)| {
            let (codec, producer, topic) = (&codec, &producer, &topic);
            async move {
                let payload = codec.encode(command).await.expect("encode");
                producer.send(topic, &command.key(), &payload, &headers.to_pairs()).await.expect("send");
            }
        });
        futures::future::join_all(sends).await;
    }
}

#[tokio::test]
async fn killed_under_load_and_restarted_at_once_it_owns_its_partitions_again() {
    let system = System::start_without_user_service().await;
    let mut doomed = spawn_user_service(&system, None);
    let ids: Vec<String> = (0..30).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    for (i, id) in ids.iter().enumerate() {
        let command = RegisterUser {
            user_id: id.clone(),
            email: format!("steady{i}@example.com"),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into(),
            first_name: "Steady".into(),
            last_name: "r0".into(),
        };
        send(&system, &command, &Headers::new_root("RegisterUser", "anonymous")).await;
    }
    let users = crate::users_db(&system).await;
    orderflow_testkit::eventually("the first process works", Duration::from_secs(60), || {
        let users = users.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM users").fetch_one(&users).await.is_ok_and(|n| n == 30)
        }
    })
    .await;

    // 300 updates a second for 6 s; at 2 s the process is killed (no
    // LeaveGroup, no commit) and a new one started at once, long before
    // the broker's session timeout notices the dead member.
    let rounds = 60;
    let load = steady_updates(&system, &ids, rounds, 300);
    let crash = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        doomed.start_kill().expect("SIGKILL");
        doomed.wait().await.expect("reaped");
        spawn_user_service(&system, None)
    };
    let ((), mut survivor) = tokio::join!(load, crash);
    // Every accepted command settles, soon: the new member got partitions.
    let want = rounds as i64 + 1;
    orderflow_testkit::eventually("every update took effect after the restart", Duration::from_secs(60), || {
        let users = users.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM users WHERE version = $1")
                .bind(want)
                .fetch_one(&users)
                .await
                .is_ok_and(|n| n == 30)
        }
    })
    .await;
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox").fetch_one(&users).await.expect("inbox");
    assert_eq!(inbox, 30 * want, "every command exactly once");
    survivor.kill().await.expect("stop the survivor");
    system.stop().await;
}
