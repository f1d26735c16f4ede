//! Batches, notifications, dead letters, offsets, rebuild and switch.

use std::time::Duration;

use orderflow_projection::generation::{self, Offsets};
use orderflow_projection::{cancel_rebuild, request_rebuild, wait_for_rebuild};
use sqlx::postgres::PgListener;

use crate::{Harness, V1, V2, eventually};

#[tokio::test]
async fn a_batch_announces_what_it_settled_once_per_transaction() {
    let h = Harness::new().await;
    let ids: Vec<String> = (0..60).map(|n| format!("item-{n:03}")).collect();
    for id in &ids {
        h.send(id, "v").await;
    }
    let mut listener = PgListener::connect_with(&h.pool).await.expect("listener");
    listener.listen("items_changed").await.expect("listen");
    let running = h.start(V1);
    h.wait_for_items(60).await;

    let mut announced = Vec::new();
    let mut notifications = 0;
    while announced.len() < ids.len() {
        let n = tokio::time::timeout(Duration::from_secs(10), listener.recv()).await.expect("notified").expect("recv");
        notifications += 1;
        if n.payload() != "*" {
            announced.extend(n.payload().split(',').map(str::to_owned));
        }
    }
    announced.sort();
    assert_eq!(announced, ids, "every settled key is announced, once");
    assert!(notifications < 30, "{notifications} notifications for 60 messages: not one per message");
    running.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_message_that_keeps_failing_is_dead_lettered_and_the_rest_flows_on() {
    let h = Harness::new().await;
    h.send("a", "1").await;
    h.send("b", "poison").await;
    h.send("c", "3").await;
    let running = h.start(V1);
    h.wait_for_items(2).await;
    assert_eq!(h.items().await, vec!["a=1", "c=3"]);
    // The poison's key waits out its retries while `c` flows on: its dead
    // letter may come after `c` is applied.
    let letters = || async {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT topic, message_key FROM outbox").fetch_all(&h.pool).await.expect("outbox");
        rows
    };
    eventually("the poison is dead-lettered", Duration::from_secs(30), || async { !letters().await.is_empty() }).await;
    assert_eq!(letters().await, vec![(format!("{}.dlq", h.topic), "b".to_owned())]);
    running.stop().await.expect("clean stop");
}

#[tokio::test]
async fn offsets_never_move_backwards() {
    let h = Harness::new().await;
    orderflow_projection::install(&h.pool).await.expect("install");
    let definition = crate::Items::new(&h.topic, V1);
    let g = generation::create(&h.pool, orderflow_projection::Projection::definition(&definition)).await.expect("gen");
    let store = |offset: i64| {
        let (pool, topic) = (h.pool.clone(), h.topic.clone());
        async move {
            let mut tx = pool.begin().await.expect("tx");
            sqlx::query(sqlx::AssertSqlSafe(format!("SET LOCAL search_path TO {}", generation::schema("items", g))))
                .execute(&mut *tx)
                .await
                .expect("path");
            generation::store_offsets(&mut tx, &Offsets::from([((topic, 0), offset)])).await.expect("store");
            tx.commit().await.expect("commit");
        }
    };
    store(10).await;
    store(4).await; // a stale runner, or a batch replayed after a takeover
    let mut conn = h.pool.acquire().await.expect("conn");
    assert_eq!(generation::offsets(&mut conn, "items", g).await.expect("offsets")[&(h.topic.clone(), 0)], 10);
    store(11).await;
    assert_eq!(generation::offsets(&mut conn, "items", g).await.expect("offsets")[&(h.topic.clone(), 0)], 11);
}

#[tokio::test]
async fn a_restart_resumes_where_the_last_commit_left_off() {
    let h = Harness::new().await;
    h.send("a", "1").await;
    let running = h.start(V1);
    h.wait_for_items(1).await;
    running.stop().await.expect("clean stop");
    // Behind the projection's back: a replay from the start would bring it back.
    sqlx::query("DELETE FROM items_gen_1.items").execute(&h.pool).await.expect("delete");
    h.send("b", "2").await;
    let running = h.start(V1);
    h.wait_for_items(1).await;
    assert_eq!(h.items().await, vec!["b=2"]);
    running.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_new_table_shape_is_rebuilt_by_replay_and_the_views_switch_to_it() {
    let h = Harness::new().await;
    for (id, value) in [("a", "x"), ("b", "yy"), ("a", "zzz")] {
        h.send(id, value).await;
    }
    let running = h.start(V1);
    h.wait_for_items(2).await;
    running.stop().await.expect("clean stop");

    // New code, new shape: the live generation is not written into but
    // rebuilt, and the views (other columns now) switch to the rebuilt one.
    let running = h.start(V2);
    let pool = h.pool.clone();
    eventually("the views show the new column", Duration::from_secs(60), || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT id || '=' || length FROM views.items ORDER BY id")
                .fetch_all(&pool)
                .await
                .is_ok_and(|rows| rows == ["a=3", "b=2"])
        }
    })
    .await;
    assert_eq!(
        generation::list(&h.pool, "items").await.expect("generations"),
        vec![(1, "retired".to_owned()), (2, "live".to_owned())]
    );
    // It goes on as the live one.
    h.send("c", "four").await;
    h.wait_for_items(3).await;

    // An explicit rebuild of the same shape switches too, and drops gen 1.
    let request = request_rebuild(&h.pool, "items").await.expect("request");
    assert_eq!(wait_for_rebuild(&h.pool, request, Duration::from_secs(60)).await.expect("rebuild"), 3);
    assert_eq!(h.items().await, vec!["a=zzz", "b=yy", "c=four"]);
    assert_eq!(
        generation::list(&h.pool, "items").await.expect("generations"),
        vec![(2, "retired".to_owned()), (3, "live".to_owned())]
    );
    running.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_rebuild_under_steady_load_converges() {
    let h = Harness::new().await;
    for n in 0..200 {
        h.send(&format!("k{n:04}"), "v").await;
    }
    let running = h.start(V1);
    h.wait_for_items(200).await;
    // Load never stops while the rebuild runs: watermarks taken once still converge.
    let sent_so_far = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(200));
    let load = {
        let (kafka, topic, counter) = (h.kafka.clone(), h.topic.clone(), sent_so_far.clone());
        let stop = tokio_util::sync::CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let producer = orderflow_bus::Producer::new(&kafka).expect("producer");
            let mut n = 200;
            while !token.is_cancelled() {
                producer.send(&topic, &format!("k{n:04}"), b"v", &[]).await.expect("send");
                n += 1;
                counter.store(n, std::sync::atomic::Ordering::SeqCst);
            }
            n
        });
        (stop, task)
    };
    let load_flows = || sent_so_far.load(std::sync::atomic::Ordering::SeqCst);
    orderflow_testkit::eventually("the load flows", Duration::from_secs(30), || async { load_flows() >= 220 }).await;
    let request = request_rebuild(&h.pool, "items").await.expect("request");
    let at_request = load_flows();
    let generation = wait_for_rebuild(&h.pool, request, Duration::from_secs(90)).await.expect("rebuild converged");
    assert_eq!(generation, 2);
    let at_switch = load_flows();
    load.0.cancel();
    let sent = load.1.await.expect("load");
    assert!(at_switch > at_request, "the load ran during the rebuild ({at_request} then {at_switch} sent)");
    h.wait_for_items(sent).await;
    running.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_cancelled_rebuild_is_dropped_and_the_live_generation_serves_on() {
    let h = Harness::new().await;
    for n in 0..40 {
        h.send(&format!("s{n:02}"), "slow").await;
    }
    let running = h.start(V1);
    h.wait_for_items(40).await;
    let request = request_rebuild(&h.pool, "items").await.expect("request");
    let pool = h.pool.clone();
    eventually("the rebuild is under way", Duration::from_secs(30), || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, bool>(
                "SELECT started_at IS NOT NULL FROM projection.rebuild_requests WHERE id = $1",
            )
            .bind(request)
            .fetch_one(&pool)
            .await
            .unwrap_or(false)
        }
    })
    .await;
    assert!(cancel_rebuild(&h.pool, request).await.expect("cancel"), "an open request is cancelled");
    let error = wait_for_rebuild(&h.pool, request, Duration::from_secs(30)).await.expect_err("cancelled");
    assert!(error.to_string().contains("cancelled by an operator"), "{error}");
    assert_eq!(
        generation::list(&h.pool, "items").await.expect("generations"),
        vec![(1, "live".to_owned()), (2, "failed".to_owned())]
    );
    // The live generation was never stopped: it goes on.
    h.send("after", "x").await;
    h.wait_for_items(41).await;
    assert!(!cancel_rebuild(&h.pool, request).await.expect("cancel"), "a finished request has nothing to cancel");
    // One not started yet ends at once.
    running.stop().await.expect("clean stop");
    let queued = request_rebuild(&h.pool, "items").await.expect("request");
    assert!(cancel_rebuild(&h.pool, queued).await.expect("cancel"));
    let error = wait_for_rebuild(&h.pool, queued, Duration::from_secs(5)).await.expect_err("cancelled");
    assert!(error.to_string().contains("cancelled before it started"), "{error}");
}
