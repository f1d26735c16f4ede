//! Consumer groups and committed offsets on the broker.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orderflow_bus::admin::ensure_topics;
use orderflow_bus::consumer::{self, ConsumerOptions, Handled, HandlerError, InboundMessage, MessageHandler};
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
    async fn handle(&self, messages: &[InboundMessage]) -> Result<Handled, HandlerError> {
        for message in messages {
            let body = String::from_utf8_lossy(message.payload.as_deref().unwrap_or_default()).into_owned();
            self.seen.lock().expect("lock").push((self.name, message.partition, message.offset, body));
        }
        Ok(Handled::all())
    }

    async fn dead_letter(&self, _: &InboundMessage, error: &HandlerError) -> Result<(), HandlerError> {
        panic!("nothing should be dead-lettered here: {error}");
    }
}

type Seen = Arc<Mutex<Vec<(&'static str, i32, i64, String)>>>;

/// Waits until messages `m0..m{total}` were all handled; names the missing ones.
async fn wait_consumed(seen: &Seen, total: usize, topic: &str) {
    orderflow_testkit::until(
        &format!("all {total} messages of {topic} are consumed"),
        Duration::from_secs(30),
        || async {
            let seen = seen.lock().expect("lock");
            let got: BTreeSet<&str> = seen.iter().map(|(_, _, _, b)| b.as_str()).collect();
            let missing: Vec<usize> = (0..total).filter(|i| !got.contains(format!("m{i}").as_str())).collect();
            if missing.is_empty() {
                return Ok(());
            }
            let mut by_partition: HashMap<i32, Vec<i64>> = HashMap::new();
            for (_, p, o, _) in seen.iter() {
                by_partition.entry(*p).or_default().push(*o);
            }
            let gaps: Vec<(i32, i64, i64)> = by_partition
                .into_iter()
                .flat_map(|(p, mut offsets)| {
                    offsets.sort();
                    offsets.windows(2).filter(|w| w[1] != w[0] + 1).map(|w| (p, w[0], w[1])).collect::<Vec<_>>()
                })
                .collect();
            Err(format!("{} consumed; missing {missing:?}; offset gaps {gaps:?}", got.len()))
        },
    )
    .await
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
    let produced = std::sync::atomic::AtomicU32::new(200);
    orderflow_testkit::eventually("both members were handed work", Duration::from_secs(60), || async {
        let both = {
            let seen = seen.lock().expect("lock");
            seen.iter().any(|(n, ..)| *n == "a") && seen.iter().any(|(n, ..)| *n == "b")
        };
        if !both {
            let from = produced.fetch_add(20, std::sync::atomic::Ordering::Relaxed);
            produce(&producer, &topic, from..from + 20).await;
        }
        both
    })
    .await;
    let produced = produced.into_inner();
    let total = produced as usize;
    wait_consumed(&seen, total, &topic).await;
    // Stop the members one at a time: the one left must take over every
    // partition of the one that left, and resume at its commits.
    let mut members = members.into_iter().zip(stops);
    let (first, first_stop) = members.next().expect("two members");
    first_stop.cancel();
    first.await.expect("join").expect("consumer ran");
    // Traffic on every key (17 keys), a round at a time: once "b" handled
    // a message of every partition after "a" left, it owns them all.
    let settled = std::sync::atomic::AtomicU32::new(total as u32);
    let round = Mutex::new(None::<(usize, u32)>); // (seen before it, its end)
    orderflow_testkit::eventually("the member left owns every partition", Duration::from_secs(60), || async {
        let current = *round.lock().expect("lock");
        if let Some((before, end)) = current {
            let seen = seen.lock().expect("lock");
            let got: BTreeSet<&str> = seen[before..].iter().map(|(_, _, _, b)| b.as_str()).collect();
            if !(end - 17..end).all(|i| got.contains(format!("m{i}").as_str())) {
                return false; // the round is still being consumed
            }
            let owned: BTreeSet<i32> = seen[before..].iter().filter(|(n, ..)| *n == "b").map(|(_, p, ..)| *p).collect();
            if owned.len() == s.partitions as usize {
                return true;
            }
        }
        let before = seen.lock().expect("lock").len();
        let from = settled.fetch_add(17, std::sync::atomic::Ordering::Relaxed);
        produce(&producer, &topic, from..from + 17).await;
        *round.lock().expect("lock") = Some((before, from + 17));
        false
    })
    .await;
    let total = settled.into_inner() as usize;
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
    // Then one message on every key, so on every partition: a partition is
    // read in order, so anything replayed from before the commit would
    // arrive before these. Once they are all in, nothing more can come.
    let fence = produced + 10..produced + 27;
    produce(&producer, &topic, fence.clone()).await;
    orderflow_testkit::eventually("a message on every partition after them", Duration::from_secs(60), || {
        let seen = Arc::clone(&again.seen);
        let fence = fence.clone();
        async move {
            let seen = seen.lock().expect("lock");
            fence.clone().all(|i| seen.iter().any(|(_, _, _, b)| *b == format!("m{i}")))
        }
    })
    .await;
    stop.cancel();
    task.await.expect("join").expect("consumer ran");
    let seen = again.seen.lock().expect("lock").clone();
    let fenced: BTreeSet<i32> =
        seen.iter().filter(|(.., b)| fence.clone().any(|i| *b == format!("m{i}"))).map(|(_, p, ..)| *p).collect();
    assert_eq!(fenced.len(), s.partitions as usize, "the 17 keys reach every partition");
    let resumed: BTreeSet<String> = seen.iter().map(|(_, _, _, b)| b.clone()).collect();
    let expected: BTreeSet<String> = (produced..produced + 27).map(|i| format!("m{i}")).collect();
    assert_eq!(resumed, expected, "only what came after the commit is delivered again");
}
