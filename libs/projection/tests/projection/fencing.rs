//! One active instance, and an instance that lost its lock cannot write.

use std::time::Duration;

use orderflow_projection::Error;

use crate::{Harness, V1, eventually};

#[tokio::test]
async fn a_fenced_instance_cannot_write_and_stops() {
    let h = Harness::new().await;
    // Only the batch transactions' own check can catch it: no periodic check.
    let options = orderflow_projection::Options { check_interval: Duration::from_secs(3600), ..h.options() };
    let running = h.start_with(V1, options);
    h.send("a", "1").await;
    h.wait_for_items(1).await;

    // Another instance took over (e.g. after a Postgres restart both
    // thought they held the lock): it bumped the epoch.
    sqlx::query("UPDATE projection.lease SET epoch = epoch + 1").execute(&h.pool).await.expect("bump");
    h.send("b", "2").await;
    match running.ended(Duration::from_secs(30)).await {
        Err(Error::Fenced { mine: 1, current: Some(2), .. }) => {}
        other => panic!("expected the engine to stop fenced, got {other:?}"),
    }
    assert_eq!(h.items().await, vec!["a=1"], "nothing written after the takeover");
    let offset: i64 = sqlx::query_scalar("SELECT max(next_offset) FROM items_gen_1.projection_offsets")
        .fetch_one(&h.pool)
        .await
        .expect("offsets");
    assert_eq!(offset, 1, "the offsets did not move either");
}

#[tokio::test]
async fn losing_the_lock_connection_stops_the_engine_and_a_standby_takes_over() {
    let h = Harness::new().await;
    let first = h.start(V1);
    h.send("a", "1").await;
    h.wait_for_items(1).await;
    let standby = h.start(V1);

    // What a Postgres restart does to the session holding the advisory lock.
    // Only the active instance's lock (class 7072): a standby starting up
    // holds transaction-level advisory locks of other classes for a moment.
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_locks
         WHERE locktype = 'advisory' AND granted AND classid = 7072
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_all(&h.pool)
    .await
    .expect("terminate");
    assert_eq!(killed, vec![true], "one session held the lock");
    match first.ended(Duration::from_secs(30)).await {
        Err(Error::LockLost { .. } | Error::Fenced { .. }) => {}
        other => panic!("expected the engine to stop, got {other:?}"),
    }
    // The standby became active with the next epoch and goes on.
    h.send("b", "2").await;
    h.wait_for_items(2).await;
    let epoch: i64 = sqlx::query_scalar("SELECT epoch FROM projection.lease").fetch_one(&h.pool).await.expect("epoch");
    assert_eq!(epoch, 2);
    let pool = h.pool.clone();
    eventually("the standby holds the lock", Duration::from_secs(10), || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = 7072",
            )
            .fetch_one(&pool)
            .await
            .is_ok_and(|n| n == 1)
        }
    })
    .await;
    standby.stop().await.expect("clean stop");
}
