//! `kill -9` of the real `audit-log` binary in the middle of a users
//! walk-through and a stream of events, and a restart: every event recorded
//! exactly once, the chains intact.

use std::time::Duration;

use orderflow_harness::system::System;
use tokio::process::Child;

use crate::walkthrough::walk;
use crate::{Events, audit_db, caught_up, event_ids, recorded_ids};

fn spawn_audit_log(system: &System) -> Child {
    let mut env = system.audit_log_env();
    // Small batches: the kill lands between many commits.
    env.push(("ORDERFLOW_BATCH_SIZE".into(), "5".into()));
    env.push(("ORDERFLOW_DOMAIN__CHECKPOINT_EVERY".into(), "25".into()));
    orderflow_harness::shop::spawn_binary(env!("CARGO_BIN_EXE_audit-log"), env, None)
}

#[tokio::test]
async fn killed_mid_stream_and_restarted_records_every_event_once() {
    let system = System::start_all().await;
    // The users and orders walk-throughs (through the API, the services,
    // their outboxes), then a stream of events: the kill lands somewhere in there.
    walk(&system).await;
    crate::walkthrough::shop(&system).await;
    // The stream is written while the audit log records (it works on
    // partitions concurrently, and would have caught up with a stream
    // written before it started before the kill could land in it).
    const EVENTS: usize = 400;
    let mut doomed = spawn_audit_log(&system);
    let pool = audit_db(&system).await;
    system.wait_for_audit_views().await;
    let events = Events::new(&system);
    let stream = async {
        for n in 0..EVENTS {
            events.update(n, 16).await;
        }
    };
    let kill = async {
        orderflow_testkit::eventually("the audit log is recording", Duration::from_secs(60), || {
            let pool = pool.clone();
            async move { recorded_ids(&pool).await.len() >= 10 }
        })
        .await;
        doomed.kill().await.expect("kill -9"); // SIGKILL: no shutdown, no flush
        recorded_ids(&pool).await.len()
    };
    let ((), at_kill) = tokio::join!(stream, kill);
    let total = event_ids(&system, Some(&events)).await.len();
    assert!(total >= EVENTS + 5, "the walk-through's events and the stream: {total}");
    assert!(at_kill < total, "killed mid-stream ({at_kill} of {total} recorded)");

    let mut survivor = spawn_audit_log(&system);
    let expected = caught_up(&system, &pool, Some(&events)).await;
    assert_eq!(expected.len(), total);
    let (records, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT message_id) FROM audit.records")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!((records, distinct), (total as i64, total as i64), "each event exactly once");
    // Every source offset once per partition: nothing skipped, nothing twice.
    let gaps: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT topic, partition, count(*) AS n, max(source_offset) - min(source_offset) + 1 AS span
                               FROM audit.records GROUP BY 1, 2) p WHERE n <> span",
    )
    .fetch_one(&pool)
    .await
    .expect("gaps");
    assert_eq!(gaps, 0, "every partition recorded without a gap");
    let report = orderflow_audit::verify::verify(&pool, true).await.expect("verify");
    assert!(report.intact, "{report:?}");
    assert!(report.chains.iter().any(|c| c.checkpoints > 0), "checkpoints were written: {report:?}");
    survivor.kill().await.expect("stop");
    system.stop().await;
}
