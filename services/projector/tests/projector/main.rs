//! Rebuilding the read models by replay, while the system keeps working.

mod failed;
mod legacy;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use orderflow_bus::{Headers, Producer};
use orderflow_contracts::users::{RegisterUser, UpdateUserProfile};
use orderflow_contracts::{Codec, Contract};
use orderflow_harness::system::System;
use orderflow_projection::wait_for_rebuild;
use orderflow_projector::request_rebuild;
use reqwest::Method;

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";

fn user_id(n: usize) -> String {
    format!("0190a0a0-0000-7000-8000-{n:012}")
}

/// Registers user `n` and updates it `n % 3` times, straight on the bus.
async fn traffic(codec: &Codec, producer: &Producer, topic: &str, n: usize) {
    let register = RegisterUser {
        user_id: user_id(n),
        email: format!("load{n}@example.com"),
        password_hash: HASH.into(),
        first_name: "Load".into(),
        last_name: format!("{n}"),
    };
    let headers = Headers::new_root("RegisterUser", "anonymous");
    producer
        .send(topic, &register.key(), &codec.encode(&register).await.expect("encode"), &headers.to_pairs())
        .await
        .expect("send");
    for k in 0..n % 3 {
        let update = UpdateUserProfile { user_id: user_id(n), first_name: Some(format!("v{k}")), last_name: None };
        let headers = Headers::new_root("UpdateUserProfile", &user_id(n));
        producer
            .send(topic, &update.key(), &codec.encode(&update).await.expect("encode"), &headers.to_pairs())
            .await
            .expect("send");
    }
}

/// Everything the ingress can read, in a canonical text form.
async fn dump(pool: &sqlx::PgPool) -> String {
    let tables = [("users", "id"), ("credentials", "user_id"), ("commands", "command_id")];
    orderflow_harness::shop::dump(pool, "rm", &tables).await
}

/// Waits until the read model has settled every command and matches the
/// users table's versions.
async fn caught_up(system: &System, readmodels: &sqlx::PgPool, expected_users: i64) {
    let users = sqlx::PgPool::connect(&system.users_db).await.expect("users");
    orderflow_testkit::eventually("the read model caught up", Duration::from_secs(120), || {
        let (users, readmodels) = (users.clone(), readmodels.clone());
        async move {
            let truth: Option<(i64, Option<i64>)> =
                sqlx::query_as("SELECT count(*), sum(version)::bigint FROM users").fetch_one(&users).await.ok();
            let seen: Option<(i64, Option<i64>)> =
                sqlx::query_as("SELECT count(*), sum(version)::bigint FROM rm.users").fetch_one(&readmodels).await.ok();
            let pending: Option<i64> = sqlx::query_scalar("SELECT count(*) FROM rm.commands WHERE status = 'pending'")
                .fetch_one(&readmodels)
                .await
                .ok();
            truth.is_some_and(|t| t.0 == expected_users) && truth == seen && pending == Some(0)
        }
    })
    .await;
}

#[tokio::test]
async fn rebuild_while_requests_arrive_ends_identical_to_the_live_model() {
    let system = System::start().await;
    let readmodels = sqlx::PgPool::connect(&system.readmodels_db).await.expect("readmodels");
    let codec = Arc::new(Codec::new(&system.registry.url));
    let producer = Producer::new(&system.kafka).expect("producer");
    let topic = system.topic(orderflow_contracts::users::COMMANDS.name);
    for n in 0..60 {
        traffic(&codec, &producer, &topic, n).await;
    }
    // A user that reads through the API during the rebuild.
    let (status, body) = system.register("reader@example.com", "reader password").await;
    assert_eq!(status, 201, "{body}");
    let token = system.login("reader@example.com", "reader password").await.expect("login");

    // Load keeps arriving while the rebuild runs.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (codec, producer, topic, stop) = (Arc::clone(&codec), producer.clone(), topic.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut n = 60;
            while !stop.load(Ordering::Relaxed) && n < 400 {
                traffic(&codec, &producer, &topic, n).await;
                n += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            n
        })
    };
    let request = request_rebuild(&readmodels).await.expect("request");
    let mut reads = 0;
    let generation = loop {
        let (status, _) = system.call(Method::GET, "/api/v1/users/me", Some(&token), None).await;
        assert_eq!(status, 200, "the API keeps serving during the rebuild");
        reads += 1;
        if let Ok(generation) = wait_for_rebuild(&readmodels, request, Duration::from_millis(100)).await {
            break generation;
        }
    };
    assert_eq!(generation, 2);
    assert!(reads > 1);
    stop.store(true, Ordering::Relaxed);
    let sent = load.await.expect("load") as i64;
    assert!(sent > 60, "load ran during the rebuild");
    caught_up(&system, &readmodels, sent + 1).await;
    // Every part of the live model done, not only the part `caught_up`
    // counts (partitions are applied concurrently): the same twice running.
    let live = orderflow_testkit::until("the live model is still", Duration::from_secs(60), || async {
        let first = dump(&readmodels).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let second = dump(&readmodels).await;
        if first == second { Ok(second) } else { Err("still changing".to_owned()) }
    })
    .await;

    // The same topics replayed again, now with nothing arriving.
    let again = request_rebuild(&readmodels).await.expect("request");
    assert_eq!(wait_for_rebuild(&readmodels, again, Duration::from_secs(120)).await.expect("second rebuild"), 3);
    caught_up(&system, &readmodels, sent + 1).await;
    let rebuilt = dump(&readmodels).await;
    assert_eq!(live.lines().count(), rebuilt.lines().count());
    assert!(live == rebuilt, "the rebuilt read model equals the live-built one");
    let unversioned: i64 =
        sqlx::query_scalar("SELECT count(*) FROM rm.commands WHERE status = 'succeeded' AND version IS NULL")
            .fetch_one(&readmodels)
            .await
            .expect("commands");
    assert_eq!(unversioned, 0, "every succeeded command records the version it produced");

    // And both agree with the user service's own table.
    let users = sqlx::PgPool::connect(&system.users_db).await.expect("users");
    let truth: Vec<(uuid::Uuid, String, String, String, bool, i64)> =
        sqlx::query_as("SELECT id, email, first_name, last_name, active, version FROM users ORDER BY id")
            .fetch_all(&users)
            .await
            .expect("users");
    let seen: Vec<(uuid::Uuid, String, String, String, bool, i64)> =
        sqlx::query_as("SELECT id, email, first_name, last_name, active, version FROM rm.users ORDER BY id")
            .fetch_all(&readmodels)
            .await
            .expect("rm");
    assert_eq!(truth, seen);
    let generations: Vec<(i32, String)> =
        orderflow_projection::generation::list(&readmodels, orderflow_projector::projection::NAME)
            .await
            .expect("generations");
    assert_eq!(
        generations,
        vec![(2, "retired".to_owned()), (3, "live".to_owned())],
        "the oldest generation was dropped"
    );
    system.stop().await;
}

#[tokio::test]
async fn a_restarted_projector_resumes_from_its_stored_offsets() {
    let mut system = System::start().await;
    let readmodels = sqlx::PgPool::connect(&system.readmodels_db).await.expect("readmodels");
    let codec = Codec::new(&system.registry.url);
    let producer = Producer::new(&system.kafka).expect("producer");
    let topic = system.topic(orderflow_contracts::users::COMMANDS.name);
    for n in 0..5 {
        traffic(&codec, &producer, &topic, n).await;
    }
    caught_up(&system, &readmodels, 5).await;

    // Tamper with the live read model behind the projector's back: a replay
    // from the beginning would bring the row back, resuming would not.
    system.projector.take().expect("projector").stop().await;
    sqlx::query("DELETE FROM readmodels_gen_1.users WHERE id = $1::uuid")
        .bind(user_id(0))
        .execute(&readmodels)
        .await
        .expect("delete");
    for n in 5..10 {
        traffic(&codec, &producer, &topic, n).await;
    }
    system.start_projector().await;
    let users = sqlx::PgPool::connect(&system.users_db).await.expect("users");
    orderflow_testkit::eventually("the events sent while it was down are projected", Duration::from_secs(60), || {
        let readmodels = readmodels.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM rm.users WHERE email LIKE 'load%'")
                .fetch_one(&readmodels)
                .await
                .is_ok_and(|n| n == 9)
        }
    })
    .await;
    let truth: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&users).await.expect("users");
    assert_eq!(truth, 10);
    let gone: i64 = sqlx::query_scalar("SELECT count(*) FROM rm.users WHERE id = $1::uuid")
        .bind(user_id(0))
        .fetch_one(&readmodels)
        .await
        .expect("count");
    assert_eq!(gone, 0, "nothing before the stored offsets was applied again");
    system.stop().await;
}
