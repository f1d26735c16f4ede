//! Guarantee 3: everything about one user is handled in order, also with two
//! replicas of the service sharing the partitions.

use std::collections::HashMap;
use std::time::Duration;

use orderflow_bus::Headers;
use orderflow_contracts::Codec;
use orderflow_contracts::users::{RegisterUser, UpdateUserProfile, UserEvent};
use orderflow_harness::system::System;

use crate::{events, send};

#[tokio::test]
async fn per_user_order_holds_with_two_replicas() {
    let mut system = System::start().await;
    // A second replica in the same group.
    let first = system.user.take();
    system.start_user_service().await;
    let second = system.user.take();

    let users: Vec<String> = (0..6).map(|i| format!("0190a0a0-0000-7000-8000-0000000001{i:02}")).collect();
    for (i, id) in users.iter().enumerate() {
        let register = RegisterUser {
            user_id: id.clone(),
            email: format!("order{i}@example.com"),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into(),
            first_name: "Order".into(),
            last_name: "n0".into(),
        };
        send(&system, &register, &Headers::new_root("RegisterUser", "anonymous")).await;
    }
    let updates = 8;
    for n in 1..=updates {
        for id in &users {
            let update = UpdateUserProfile { user_id: id.clone(), first_name: None, last_name: Some(format!("n{n}")) };
            send(&system, &update, &Headers::new_root("UpdateUserProfile", id)).await;
        }
    }
    let pool = crate::users_db(&system).await;
    orderflow_testkit::eventually("every user saw its last update", Duration::from_secs(90), || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM users WHERE last_name = 'n8' AND version = 9")
                .fetch_one(&pool)
                .await
                .is_ok_and(|n| n == 6)
        }
    })
    .await;

    // On the bus, each user's events are in version order.
    let codec = Codec::new(&system.registry.url);
    let mut versions: HashMap<String, Vec<i64>> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let all = events(&system).await;
        if all.len() >= 6 * (updates + 1) || tokio::time::Instant::now() > deadline {
            for (_, message) in all {
                let event: UserEvent = codec.decode(message.payload.as_deref()).await.expect("decode");
                let (user, version) = match event {
                    UserEvent::Registered(e) => (e.user_id, e.version),
                    UserEvent::ProfileUpdated(e) => (e.user_id, e.version),
                    other => panic!("unexpected {other:?}"),
                };
                versions.entry(user).or_default().push(version);
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in &users {
        assert_eq!(versions.get(id), Some(&(1..=9).collect::<Vec<i64>>()), "user {id} in order");
    }
    for replica in [first, second].into_iter().flatten() {
        replica.stop().await;
    }
    system.stop().await;
}
