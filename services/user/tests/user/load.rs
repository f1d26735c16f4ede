//! Thousands of commands through the kit while the group rebalances: a
//! second replica joins mid-stream and the first one leaves. Every command
//! takes effect exactly once, and each user's events stay in order.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::future::join_all;
use orderflow_bus::{Headers, Producer};
use orderflow_contracts::users::{RegisterUser, UpdateUserProfile};
use orderflow_contracts::{Codec, Contract};
use orderflow_harness::system::System;

const USERS: usize = 200;
const UPDATES_PER_USER: usize = 14;

/// Sends every command; returns where each landed: (message id, partition, offset).
async fn send_all<C: Contract>(
    producer: &Producer,
    codec: &Codec,
    topic: &str,
    commands: &[(C, Headers)],
) -> Vec<(String, i32, i64)> {
    let mut landed = Vec::with_capacity(commands.len());
    for chunk in commands.chunks(250) {
        let sends = chunk.iter().map(|(command, headers)| async move {
            let payload = codec.encode(command).await.expect("encode");
            let (partition, offset) =
                producer.send(topic, &command.key(), &payload, &headers.to_pairs()).await.expect("send");
            (headers.message_id.to_string(), partition, offset)
        });
        landed.extend(join_all(sends).await);
    }
    landed
}

#[tokio::test]
async fn thousands_of_commands_across_a_rebalance_settle_exactly_once() {
    let mut system = System::start().await;
    let codec = Codec::new(&system.registry.url);
    let producer = Producer::new(&system.kafka).expect("producer");
    let topic = system.topic(orderflow_contracts::users::COMMANDS.name);
    let ids: Vec<String> = (0..USERS).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let registers: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let command = RegisterUser {
                user_id: id.clone(),
                email: format!("load{i}@example.com"),
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into(),
                first_name: "Load".into(),
                last_name: "u0".into(),
            };
            (command, Headers::new_root("RegisterUser", "anonymous"))
        })
        .collect();
    let mut landed = send_all(&producer, &codec, &topic, &registers).await;

    let first = system.user.take();
    for round in 1..=UPDATES_PER_USER {
        let updates: Vec<_> = ids
            .iter()
            .map(|id| {
                let command =
                    UpdateUserProfile { user_id: id.clone(), first_name: None, last_name: Some(format!("u{round}")) };
                (command, Headers::new_root("UpdateUserProfile", id))
            })
            .collect();
        landed.extend(send_all(&producer, &codec, &topic, &updates).await);
        if round == 4 {
            // A second replica joins: the group rebalances mid-stream.
            system.start_user_service().await;
        }
        if round == 9 {
            // The first replica leaves: another rebalance.
            if let Some(first) = &first {
                first.shutdown();
            }
        }
    }
    let total = USERS * (UPDATES_PER_USER + 1);
    let pool = crate::users_db(&system).await;
    let want = (UPDATES_PER_USER + 1) as i64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let done: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE version = $1")
            .bind(want)
            .fetch_one(&pool)
            .await
            .expect("count");
        if done == USERS as i64 {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let versions: Vec<(i64, i64)> = sqlx::query_as("SELECT version, count(*) FROM users GROUP BY 1 ORDER BY 1")
                .fetch_all(&pool)
                .await
                .expect("v");
            let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox").fetch_one(&pool).await.expect("inbox");
            let behind: Vec<(String, i64)> =
                sqlx::query_as("SELECT last_name, count(*) FROM users WHERE version < $1 GROUP BY 1 ORDER BY 1")
                    .bind(want)
                    .fetch_all(&pool)
                    .await
                    .expect("behind");
            eprintln!("users behind, by last name: {behind:?}");
            let handled: std::collections::HashSet<String> = sqlx::query_scalar("SELECT message_id FROM inbox")
                .fetch_all(&pool)
                .await
                .expect("ids")
                .into_iter()
                .collect();
            let mut missing: Vec<(i32, i64)> =
                landed.iter().filter(|(id, _, _)| !handled.contains(id)).map(|(_, p, o)| (*p, *o)).collect();
            missing.sort();
            eprintln!("never handled (partition, offset): {missing:?}");
            let on_topic = orderflow_testkit::topic::read_topic(&system.kafka.brokers, &topic).await;
            let commands = on_topic.len();
            let mut per_partition = std::collections::BTreeMap::new();
            for message in &on_topic {
                *per_partition.entry(message.partition).or_insert(0) += 1;
            }
            panic!(
                "not every command took effect: versions {versions:?}, inbox {inbox} of {total}, {commands} commands on the topic {per_partition:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox").fetch_one(&pool).await.expect("inbox");
    assert_eq!(inbox, total as i64, "one inbox row per command");

    // Exactly one event per command on the bus (the relay may republish
    // after a crash, never here), each user's versions in order.
    let events = orderflow_testkit::until("one event per command on the bus", Duration::from_secs(60), || async {
        let events = crate::events(&system).await;
        if events.len() >= total { Ok(events) } else { Err(format!("{} of {total} events", events.len())) }
    })
    .await;
    let distinct: HashSet<_> = events.iter().map(|(_, m)| m.headers().expect("headers").message_id).collect();
    assert_eq!(distinct.len(), total, "one event per command");
    assert_eq!(events.len(), total, "and no duplicates");
    let mut versions: HashMap<String, Vec<i64>> = HashMap::new();
    for (_, message) in &events {
        let event: orderflow_contracts::users::UserEvent =
            codec.decode(message.payload.as_deref()).await.expect("decode");
        let (user, version) = match event {
            orderflow_contracts::users::UserEvent::Registered(e) => (e.user_id, e.version),
            orderflow_contracts::users::UserEvent::ProfileUpdated(e) => (e.user_id, e.version),
            other => panic!("unexpected {other:?}"),
        };
        versions.entry(user).or_default().push(version);
    }
    for id in &ids {
        assert_eq!(versions.get(id), Some(&(1..=want).collect::<Vec<i64>>()), "user {id} in order");
    }
    if let Some(first) = first {
        first.stop().await;
    }
    system.stop().await;
}
