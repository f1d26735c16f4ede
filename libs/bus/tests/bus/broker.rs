//! Consumer groups and committed offsets on the broker.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orderflow_bus::admin::ensure_topics;
use orderflow_bus::consumer::{self, ConsumerOptions, HandlerError, InboundMessage, MessageHandler};
use orderflow_bus::{Headers, Producer};
use orderflow_contracts::Retention;
use tokio_util::sync::CancellationToken;

use crate::settings;

/// Records what it sees, by consumer name.
#[derive(Clone, Default)]
struct Recorder {
    name: &'static str,
    seen: Seen,
}

impl MessageHandler for Recorder {
    async fn handle(&self, messages: &[InboundMessage]) -> Result<(), HandlerError> {
        for message in messages {
            let body = String::from_utf8_lossy(message.payload.as_deref().unwrap_or_default()).into_owned();
            self.seen.lock().expect("lock").push((self.name, message.partition, message.offset, body));
        }
        Ok(())
    }

    async fn dead_letter(&self, _: &InboundMessage, error: &HandlerError) -> Result<(), HandlerError> {
        panic!("nothing should be dead-lettered here: {error}");
    }
}

type Seen = Arc<Mutex<Vec<(&'static str, i32, i64, String)>>>;

/// Waits until messages `m0..m{total}` were all handled; names the missing ones.
async fn wait_consumed(seen: &Seen, total: usize, topic: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got: BTreeSet<String> = seen.lock().expect("lock").iter().map(|(_, _, _, b)| b.clone()).collect();
        let missing: Vec<usize> = (0..total).filter(|i| !got.contains(&format!("m{i}"))).collect();
        if missing.is_empty() {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let mut by_partition: HashMap<i32, Vec<i64>> = HashMap::new();
            for (_, p, o, _) in seen.lock().expect("lock").iter() {
                by_partition.entry(*p).or_default().push(*o);
            }
            let gaps: Vec<(i32, i64, i64)> = by_partition
                .into_iter()
                .flat_map(|(p, mut offsets)| {
                    offsets.sort();
                    offsets.windows(2).filter(|w| w[1] != w[0] + 1).map(|w| (p, w[0], w[1])).collect::<Vec<_>>()
                })
                .collect();
            panic!("{} of {total} consumed; missing {missing:?}; offset gaps {gaps:?} ({topic})", got.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn produce(producer: &Producer, topic: &str, range: std::ops::Range<u32>) {
    for i in range {
        let headers = Headers::new_root("Probe", "system").to_pairs();
        producer.send(topic, &format!("key-{}", i % 17), format!("m{i}").as_bytes(), &headers).await.expect("send");
    }
}

#[tokio::test]
async fn two_members_split_partitions_see_everything_and_resume_from_commits() {
    let s = settings();
    ensure_topics(&s, &[("work".into(), Retention::Week)]).await.expect("topics");
    let topic = s.topic("work");
    let producer = Producer::new(&s).expect("producer");
    produce(&producer, &topic, 0..200).await;

    let seen = Arc::new(Mutex::new(Vec::new()));
    let options = ConsumerOptions::new(format!("{}group", s.topic_prefix), vec![topic.clone()]);
    let stops = [CancellationToken::new(), CancellationToken::new()];
    let mut members = Vec::new();
    for (name, stop) in ["a", "b"].into_iter().zip(stops.iter()) {
        let (s, options, stop) = (s.clone(), options.clone(), stop.clone());
        let recorder = Recorder { name, seen: Arc::clone(&seen) };
        members.push(tokio::spawn(async move { consumer::run(&s, &options, Arc::new(recorder), stop).await }));
    }
    // The second member's join rebalances the group; keep traffic coming
    // until both members have been handed work.
    let mut produced = 200;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let both = {
            let seen = seen.lock().expect("lock");
            seen.iter().any(|(n, ..)| *n == "a") && seen.iter().any(|(n, ..)| *n == "b")
        };
        if both {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the second member never got a partition");
        produce(&producer, &topic, produced..produced + 20).await;
        produced += 20;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let total = produced as usize;
    wait_consumed(&seen, total, &topic).await;
    // Stop the members one at a time: the one left must take over every
    // partition of the one that left, and resume at its commits.
    let mut members = members.into_iter().zip(stops);
    let (first, first_stop) = members.next().expect("two members");
    first_stop.cancel();
    first.await.expect("join").expect("consumer ran");
    let mut settled = total;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        // Traffic on every key: once "b" handled a message of every
        // partition after "a" left, it owns them all.
        let before = seen.lock().expect("lock").len();
        produce(&producer, &topic, settled as u32..settled as u32 + 17).await;
        settled += 17;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let owned: BTreeSet<i32> =
            seen.lock().expect("lock")[before..].iter().filter(|(n, ..)| *n == "b").map(|(_, p, ..)| *p).collect();
        if owned.len() == s.partitions as usize {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the remaining member never took over every partition");
    }
    let total = settled;
    wait_consumed(&seen, total, &topic).await;
    let (second, second_stop) = members.next().expect("two members");
    second_stop.cancel();
    second.await.expect("join").expect("consumer ran");
    let produced = total as u32;

    let seen = seen.lock().expect("lock").clone();
    let bodies: BTreeSet<&str> = seen.iter().map(|(_, _, _, b)| b.as_str()).collect();
    assert_eq!(bodies.len(), total, "every message seen");
    // At least once, not exactly once: a run in hand when its partition is
    // revoked finishes after the revoke's commit, and the next owner hands
    // it over again (the services' inbox makes that harmless). So a message
    // seen twice must have been seen by both members, on a partition that
    // changed hands; never twice by one member.
    let mut by_body: HashMap<&str, Vec<&str>> = HashMap::new();
    for (name, _, _, body) in &seen {
        by_body.entry(body.as_str()).or_default().push(name);
    }
    for (body, members) in &by_body {
        let distinct: BTreeSet<&&str> = members.iter().collect();
        assert_eq!(distinct.len(), members.len(), "{body} handled twice by the same member: {members:?}");
    }
    let again = seen.len() - total;
    assert!(again <= 50, "only a run in hand at a handover is seen again: {again} of {total}");
    let mut owners: HashMap<i32, BTreeSet<&str>> = HashMap::new();
    for (name, partition, _, _) in &seen {
        owners.entry(*partition).or_default().insert(name);
    }
    let members_used: BTreeSet<&str> = seen.iter().map(|(n, _, _, _)| *n).collect();
    assert_eq!(members_used.len(), 2, "both members got partitions: {owners:?}");

    // A new member of the same group resumes after the committed offsets.
    produce(&producer, &topic, produced..produced + 10).await;
    let again = Recorder { name: "c", seen: Arc::default() };
    let stop = CancellationToken::new();
    let task = {
        let (s, options, again, stop) = (s.clone(), options.clone(), again.clone(), stop.clone());
        tokio::spawn(async move { consumer::run(&s, &options, Arc::new(again), stop).await })
    };
    orderflow_testkit::eventually("the 10 new messages arrive", Duration::from_secs(60), || {
        let seen = Arc::clone(&again.seen);
        async move { seen.lock().expect("lock").len() >= 10 }
    })
    .await;
    // Give an erroneous replay a moment to show up, then compare.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    task.await.expect("join").expect("consumer ran");
    let resumed: BTreeSet<String> = again.seen.lock().expect("lock").iter().map(|(_, _, _, b)| b.clone()).collect();
    let expected: BTreeSet<String> = (produced..produced + 10).map(|i| format!("m{i}")).collect();
    assert_eq!(resumed, expected, "only what came after the commit is delivered again");
}
