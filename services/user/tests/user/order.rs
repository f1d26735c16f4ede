//! Guarantee 3: everything about one user is handled in order, also with two
//! replicas of the service sharing the partitions — and both do share them:
//! the second replica is a process of its own, so each one's metrics count
//! only its own work.

use std::collections::HashMap;
use std::time::Duration;

use orderflow_bus::Headers;
use orderflow_contracts::Codec;
use orderflow_contracts::users::{RegisterUser, UpdateUserProfile, UserEvent};
use orderflow_harness::system::System;

use crate::events;

/// The value of `metric` for `group` on a `/metrics` page (0 when absent).
async fn metric(url: &str, metric: &str, group: &str) -> f64 {
    let Ok(response) = reqwest::get(format!("{url}/metrics")).await else { return 0.0 };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(metric) && l.contains(&format!("group=\"{group}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn per_user_order_holds_with_two_replicas() {
    let system = System::start().await;
    let group = system.user_settings().consumer.group;
    let first = system.user.as_ref().expect("the in-process replica").url.clone();
    // A second replica in the same group, as a process of its own.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
    let mut env = system.user_service_env();
    env.retain(|(k, _)| k != "ORDERFLOW_HTTP__ADDR");
    env.push(("ORDERFLOW_HTTP__ADDR".into(), format!("127.0.0.1:{port}")));
    let mut second_process = orderflow_harness::shop::spawn_binary(env!("CARGO_BIN_EXE_user-service"), env, None);
    let second = format!("http://127.0.0.1:{port}");
    orderflow_testkit::eventually("both replicas own partitions", Duration::from_secs(60), || {
        let (first, second, group) = (first.clone(), second.clone(), group.clone());
        async move {
            metric(&first, "orderflow_bus_assigned_partitions", &group).await > 0.0
                && metric(&second, "orderflow_bus_assigned_partitions", &group).await > 0.0
        }
    })
    .await;

    let commands = crate::Commands::new(&system);
    let users: Vec<String> = (0..12).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    for (i, id) in users.iter().enumerate() {
        let register = RegisterUser {
            user_id: id.clone(),
            email: format!("order{i}@example.com"),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into(),
            first_name: "Order".into(),
            last_name: "n0".into(),
        };
        commands.send(&register, &Headers::new_root("RegisterUser", "anonymous")).await;
    }
    let updates = 8;
    for n in 1..=updates {
        for id in &users {
            let update = UpdateUserProfile { user_id: id.clone(), first_name: None, last_name: Some(format!("n{n}")) };
            commands.send(&update, &Headers::new_root("UpdateUserProfile", id)).await;
        }
    }
    let pool = crate::users_db(&system).await;
    orderflow_testkit::eventually("every user saw its last update", Duration::from_secs(90), || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM users WHERE last_name = 'n8' AND version = 9")
                .fetch_one(&pool)
                .await
                .is_ok_and(|n| n == 12)
        }
    })
    .await;

    // On the bus, each user's events are in version order.
    let codec = Codec::new(&system.registry.url);
    let mut versions: HashMap<String, Vec<i64>> = HashMap::new();
    let expected = 12 * (updates + 1);
    let all = orderflow_testkit::until("every event is on the bus", Duration::from_secs(30), || async {
        let all = events(&system).await;
        if all.len() >= expected { Ok(all) } else { Err(format!("{} of {expected}", all.len())) }
    })
    .await;
    for (_, message) in all {
        let event: UserEvent = codec.decode(message.payload.as_deref()).await.expect("decode");
        let (user, version) = match event {
            UserEvent::Registered(e) => (e.user_id, e.version),
            UserEvent::ProfileUpdated(e) => (e.user_id, e.version),
            other => panic!("unexpected {other:?}"),
        };
        versions.entry(user).or_default().push(version);
    }
    for id in &users {
        assert_eq!(versions.get(id), Some(&(1..=9).collect::<Vec<i64>>()), "user {id} in order");
    }
    // Both replicas did part of the work.
    for (name, url) in [("in-process", &first), ("second process", &second)] {
        let handled = metric(url, "orderflow_bus_messages_consumed_total", &group).await;
        assert!(handled > 0.0, "the {name} replica handled messages too ({handled})");
    }
    second_process.kill().await.expect("stop the second replica");
    system.stop().await;
}
