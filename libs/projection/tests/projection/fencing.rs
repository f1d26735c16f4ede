//! One active instance; an instance that lost its lock cannot write, and
//! stands by to take over again.

use std::time::Duration;

use sqlx::Connection;

use crate::{Harness, V1, eventually};

#[tokio::test]
async fn a_fenced_instance_writes_nothing_and_stands_by_until_it_can_take_over_again() {
    let h = Harness::new().await;
    // Only the batch transactions' own check can catch it: no periodic check.
    let options = orderflow_projection::Options { check_interval: Duration::from_secs(3600), ..h.options() };
    let running = h.start_with(V1, options);
    h.send("a", "1").await;
    h.wait_for_items(1).await;

    // Another instance took over (e.g. after a Postgres restart both
    // thought they held the lock): it bumped the epoch, and takes the lock
    // as soon as the fenced instance lets it go.
    sqlx::query("UPDATE projection.lease SET epoch = epoch + 1").execute(&h.pool).await.expect("bump");
    let mut other = h.pool.acquire().await.expect("a connection").detach();
    let taking = tokio::spawn(async move {
        sqlx::query("SELECT pg_advisory_lock(7072, hashtext(projection)) FROM projection.lease")
            .execute(&mut other)
            .await
            .expect("the other instance takes the lock");
        other
    });
    h.send("b", "2").await;
    let other = tokio::time::timeout(Duration::from_secs(30), taking)
        .await
        .expect("the fenced instance let the lock go")
        .expect("join");
    assert!(!running.is_finished(), "a fenced instance stands by, it does not end");
    assert_eq!(h.items().await, vec!["a=1"], "nothing written after the takeover");
    let offset: i64 = sqlx::query_scalar("SELECT max(next_offset) FROM items_gen_1.projection_offsets")
        .fetch_one(&h.pool)
        .await
        .expect("offsets");
    assert_eq!(offset, 1, "the offsets did not move either");

    // The other instance goes away: the one that stood by takes over again,
    // with the next epoch, and goes on from where the offsets are.
    other.close().await.expect("close");
    h.wait_for_items(2).await;
    let epoch: i64 = sqlx::query_scalar("SELECT epoch FROM projection.lease").fetch_one(&h.pool).await.expect("epoch");
    assert_eq!(epoch, 3);
    running.stop().await.expect("clean stop");
}

#[tokio::test]
async fn losing_the_lock_connection_hands_the_projection_to_one_instance_and_nothing_ends() {
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
    // One of the two (the standby, or the first once it stood by again)
    // becomes active with the next epoch and goes on. (Until one does, the
    // first may still apply what arrives under epoch 1: nobody else is
    // active, so that is no split brain.)
    let pool = h.pool.clone();
    eventually("an instance took over with the next epoch", Duration::from_secs(30), || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT epoch FROM projection.lease")
                .fetch_one(&pool)
                .await
                .is_ok_and(|epoch| epoch == 2)
        }
    })
    .await;
    h.send("b", "2").await;
    h.wait_for_items(2).await;
    let epoch: i64 = sqlx::query_scalar("SELECT epoch FROM projection.lease").fetch_one(&h.pool).await.expect("epoch");
    assert_eq!(epoch, 2, "and nobody took over twice");
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
    assert!(!first.is_finished() && !standby.is_finished(), "neither instance ended");
    first.stop().await.expect("clean stop");
    standby.stop().await.expect("clean stop");
}
