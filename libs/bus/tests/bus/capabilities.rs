//! What the development broker (nisshi 0.8.1) implements, probed. Each test
//! pins a behaviour orderflow relies on or documents one it must not rely
//! on (docs/broker.md): if a broker release changes it, the test fails and
//! says that the page must change too.

use std::time::Duration;

use orderflow_bus::admin::ensure_topics;
use orderflow_contracts::Retention;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers as _, Message, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DefaultProducerContext, FutureProducer, FutureRecord, Producer as _, ThreadedProducer,
};

use crate::settings;

/// partition, offset, key, value, headers
type Record = (i32, i64, Option<String>, Option<Vec<u8>>, Vec<(String, String)>);

fn read_all(brokers: &str, topic: &str, partitions: i32) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("probe-{}", orderflow_testkit::unique_id()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    let mut list = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition_offset(topic, p, rdkafka::Offset::Beginning).expect("add");
    }
    consumer.assign(&list).expect("assign");
    let mut out = Vec::new();
    let mut idle = 0;
    while idle < 10 {
        match consumer.poll(Duration::from_millis(300)) {
            Some(Ok(m)) => {
                idle = 0;
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push((
                    m.partition(),
                    m.offset(),
                    m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    m.payload().map(<[u8]>::to_vec),
                    headers,
                ));
            }
            Some(Err(e)) => panic!("consume: {e}"),
            None => idle += 1,
        }
    }
    out
}

#[tokio::test]
async fn idempotent_producer_with_acks_all_delivers_in_order_with_headers() {
    let s = settings();
    ensure_topics(&s, &[("idem".into(), Retention::Forever)]).await.expect("topics");
    let topic = s.topic("idem");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &s.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..50 {
        let headers = OwnedHeaders::new().insert(Header { key: "n", value: Some(&i.to_string()) });
        let payload = format!("m{i}");
        let record = FutureRecord::to(&topic).key("same-key").payload(&payload).headers(headers);
        deliveries.push(producer.send(record, Duration::from_secs(10)).await.expect("delivered"));
    }
    let partition = deliveries[0].partition;
    assert!(deliveries.iter().all(|d| d.partition == partition), "one key, one partition");
    let offsets: Vec<i64> = deliveries.iter().map(|d| d.offset).collect();
    assert_eq!(offsets, (0..50).collect::<Vec<_>>(), "consecutive offsets");
    let read = read_all(&s.brokers, &topic, s.partitions);
    assert_eq!(read.len(), 50);
    for (i, (p, _, key, payload, headers)) in read.iter().enumerate() {
        assert_eq!(*p, partition);
        assert_eq!(key.as_deref(), Some("same-key"));
        assert_eq!(payload.as_deref(), Some(format!("m{i}").as_bytes()));
        assert_eq!(headers, &vec![("n".to_owned(), i.to_string())]);
    }
}

#[tokio::test]
async fn topics_are_created_with_their_partition_count() {
    let s = settings();
    ensure_topics(&s, &[("a".into(), Retention::Week), ("b".into(), Retention::Compacted)]).await.expect("create");
    // Again: existing topics are fine.
    ensure_topics(&s, &[("a".into(), Retention::Week)]).await.expect("idempotent");
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &s.brokers).create().expect("client");
    let metadata = consumer.fetch_metadata(Some(&s.topic("a")), Duration::from_secs(5)).expect("metadata");
    assert_eq!(metadata.topics()[0].partitions().len(), s.partitions as usize);
}

/// Configs `ensure_topics` sets (cleanup policy, retention, and
/// `min.insync.replicas`, which makes `acks=all` mean something on a
/// cluster) are stored per topic and reported back by DescribeConfigs.
#[tokio::test]
async fn topic_configs_are_stored_and_reported() {
    // 2, not the dev stack's 1: a broker that reported a default would be caught.
    let s = orderflow_config::KafkaSettings { min_insync_replicas: 2, ..settings() };
    let kinds = [("week", Retention::Week), ("forever", Retention::Forever), ("compacted", Retention::Compacted)];
    let topics: Vec<(String, Retention)> = kinds.iter().map(|(name, kind)| ((*name).to_owned(), *kind)).collect();
    ensure_topics(&s, &topics).await.expect("create");
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &s.brokers).create().expect("admin");
    let names: Vec<String> = kinds.iter().map(|(name, _)| s.topic(name)).collect();
    let specifiers: Vec<ResourceSpecifier<'_>> = names.iter().map(|n| ResourceSpecifier::Topic(n)).collect();
    let described =
        admin.describe_configs(specifiers.iter(), &AdminOptions::new()).await.expect("DescribeConfigs answers");
    assert_eq!(described.len(), kinds.len());
    for ((name, kind), resource) in kinds.iter().zip(described) {
        let resource = resource.unwrap_or_else(|e| panic!("DescribeConfigs of {name}: {e}"));
        let mut expected = kind.configs();
        expected.push(("min.insync.replicas", "2".into()));
        for (key, value) in expected {
            assert_eq!(
                resource.get(key).and_then(|entry| entry.value.as_deref()),
                Some(value.as_str()),
                "{name} ({kind:?}): {key} as set at creation; docs/broker.md says configs are stored and reported \
                 (entries: {:?})",
                resource.entries
            );
        }
    }
}

/// The broker accepts and reports `cleanup.policy=compact` but never compacts:
/// 10 writes of one key stay 10 records. (orderflow relies on compaction
/// only for size; the credentials consumer keeps the latest version per
/// user anyway.) Kafka would not compact these yet either (it never cleans
/// the active segment): this pins that every record stays readable, the
/// part of the finding a test can see.
#[tokio::test]
async fn compaction_is_accepted_but_not_performed() {
    let s = settings();
    ensure_topics(&s, &[("compact".into(), Retention::Compacted)]).await.expect("create");
    let topic = s.topic("compact");
    let producer: ThreadedProducer<DefaultProducerContext> =
        ClientConfig::new().set("bootstrap.servers", &s.brokers).create().expect("producer");
    for i in 0..10 {
        let v = format!("v{i}");
        producer.send(BaseRecord::to(&topic).key("k").payload(&v)).expect("send");
    }
    producer.flush(Duration::from_secs(10)).expect("flush");
    let read = read_all(&s.brokers, &topic, s.partitions);
    let values: Vec<String> = read
        .iter()
        .map(|(_, _, _, v, _)| String::from_utf8_lossy(v.as_deref().unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(
        values,
        (0..10).map(|i| format!("v{i}")).collect::<Vec<_>>(),
        "docs/broker.md says the broker keeps every record of a compacted topic; if it now compacts, update the doc"
    );
    assert!(read.iter().all(|(_, _, key, _, _)| key.as_deref() == Some("k")));
}

/// The development broker refuses Kafka transactions on purpose:
/// `InitProducerId` with a `transactional.id` is answered
/// `TRANSACTIONAL_ID_AUTHORIZATION_FAILED`, so a transactional producer
/// cannot even start. orderflow uses no Kafka transactions (exactly-once
/// effects come from outbox + inbox).
#[tokio::test]
async fn transactions_are_refused() {
    let s = settings();
    let tx: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &s.brokers)
        .set("transactional.id", format!("probe-{}", orderflow_testkit::unique_id()))
        .create()
        .expect("tx producer");
    match tx.init_transactions(Duration::from_secs(10)) {
        Ok(()) => panic!(
            "the broker now starts a transactional producer: docs/broker.md says it refuses; update the doc and this test"
        ),
        Err(error) => {
            let text = error.to_string();
            assert!(text.contains("Transactional Id authorization failed"), "refused as unauthorized: {text}");
        }
    }
}

/// The offsets a fresh consumer reads from `start` on (one partition).
fn read_from(brokers: &str, topic: &str, start: i64) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("probe-{}", orderflow_testkit::unique_id()))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("consumer");
    let mut list = rdkafka::TopicPartitionList::new();
    list.add_partition_offset(topic, 0, rdkafka::Offset::Offset(start)).expect("add");
    consumer.assign(&list).expect("assign");
    let mut offsets = Vec::new();
    let mut idle = 0;
    while idle < 8 {
        match consumer.poll(Duration::from_millis(250)) {
            Some(Ok(m)) => {
                idle = 0;
                offsets.push(m.offset());
            }
            Some(Err(e)) => panic!("consume error: {e}"),
            None => idle += 1,
        }
    }
    offsets
}

/// A raw producer that lingers long enough to put ten quick sends in one batch.
fn lingering_producer(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "100")
        .create()
        .expect("producer")
}

/// Sends `bodies` under key `k`, all at once, so they share a batch.
async fn send_together(producer: &FutureProducer, topic: &str, bodies: std::ops::Range<i32>) {
    let sends = bodies.map(|i| async move {
        let body = i.to_string();
        producer.send(FutureRecord::to(topic).key("k").payload(&body), Duration::from_secs(10)).await.expect("send")
    });
    futures::future::join_all(sends).await;
}

/// A consumer that resumes inside a record batch (every new owner of a
/// partition after a rebalance, at the group's committed offset) gets the
/// rest of that batch: ten records sent in one batch and read from the
/// sixth give 5..9, and 13..19 from inside a second batch. tansu 0.6.0
/// answered with the *next* batch, which is why producers once sent one
/// record per batch (docs/broker.md). Both producers are checked: a raw one
/// that lingers long enough to put the ten in one batch, and orderflow's own.
#[tokio::test]
async fn a_fetch_from_inside_a_record_batch_returns_the_rest_of_it() {
    let s = orderflow_config::KafkaSettings { partitions: 1, ..settings() };
    ensure_topics(&s, &[("batched".into(), Retention::Week), ("ours".into(), Retention::Week)]).await.expect("topics");
    let (batched, ours_topic) = (s.topic("batched"), s.topic("ours"));
    let lingering = lingering_producer(&s.brokers);
    let ours = orderflow_bus::Producer::new(&s).expect("producer");
    for round in 0..2 {
        send_together(&lingering, &batched, round * 10..round * 10 + 10).await;
        let sends = (0..10).map(|i| {
            let body = (round * 10 + i).to_string();
            let (ours, ours_topic) = (&ours, &ours_topic);
            async move { ours.send(ours_topic, "k", body.as_bytes(), &[]).await.expect("send") }
        });
        futures::future::join_all(sends).await;
    }
    let brokers = s.brokers.clone();
    let read = tokio::task::spawn_blocking(move || {
        [
            read_from(&brokers, &batched, 5),
            read_from(&brokers, &batched, 13),
            read_from(&brokers, &ours_topic, 5),
            read_from(&brokers, &ours_topic, 13),
        ]
    })
    .await
    .expect("readers");
    let [raw_5, raw_13, ours_5, ours_13] = read;
    assert_eq!(raw_5, (5..20).collect::<Vec<i64>>(), "from the sixth record of the first batch on");
    assert_eq!(raw_13, (13..20).collect::<Vec<i64>>(), "from inside the second batch on");
    assert_eq!(ours_5, (5..20).collect::<Vec<i64>>(), "orderflow's producer, from offset 5");
    assert_eq!(ours_13, (13..20).collect::<Vec<i64>>(), "orderflow's producer, from offset 13");
}

/// The high watermark a consumer is told (ListOffsets "latest") is the
/// offset after the last record, also after batches of many records:
/// 10, then 20. Lag figures and "read until the end" (`rebuild`) rely on
/// it; tansu 0.6.0 reported 1 and 11.
#[tokio::test]
async fn the_high_watermark_follows_batches() {
    let s = orderflow_config::KafkaSettings { partitions: 1, ..settings() };
    ensure_topics(&s, &[("watermark".into(), Retention::Week)]).await.expect("topics");
    let topic = s.topic("watermark");
    let lingering = lingering_producer(&s.brokers);
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &s.brokers).create().expect("client");
    for want in [10, 20] {
        send_together(&lingering, &topic, 0..10).await;
        let (low, high) = consumer.fetch_watermarks(&topic, 0, Duration::from_secs(5)).expect("ListOffsets");
        assert_eq!((low, high), (0, want), "watermarks after {want} records in batches of ten");
    }
}

/// A fetch waiting for data is answered when a produce lands, as Kafka
/// answers it, not when its wait runs out: with `fetch.wait.max.ms` at
/// 5 s, each record reaches an idle consumer well within a second. The
/// unpatched nisshi 0.8.1 polled its storage after half the wait left,
/// then a quarter, ..., so a record waited up to 2.5 s
/// (`scripts/patches/nisshi-0.8.1-fetch-wakeup.patch`, docs/broker.md).
#[tokio::test]
async fn a_waiting_fetch_is_answered_when_a_produce_lands() {
    let s = orderflow_config::KafkaSettings { partitions: 1, ..settings() };
    ensure_topics(&s, &[("wakeup".into(), Retention::Week)]).await.expect("topics");
    let topic = s.topic("wakeup");
    let brokers = s.brokers.clone();
    let reader_topic = topic.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<std::time::Instant>();
    let reader = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", format!("probe-{}", orderflow_testkit::unique_id()))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "5000")
            .create()
            .expect("consumer");
        let mut list = rdkafka::TopicPartitionList::new();
        list.add_partition_offset(&reader_topic, 0, rdkafka::Offset::Beginning).expect("add");
        consumer.assign(&list).expect("assign");
        let mut seen = 0;
        let until = std::time::Instant::now() + Duration::from_secs(60);
        while seen < 5 && std::time::Instant::now() < until {
            if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                message.expect("consume");
                seen += 1;
                tx.send(std::time::Instant::now()).expect("report");
            }
        }
    });
    let producer = orderflow_bus::Producer::new(&s).expect("producer");
    // The consumer is idle, its fetch parked at the broker, before each record.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..5 {
        let sent = std::time::Instant::now();
        producer.send(&topic, "k", i.to_string().as_bytes(), &[]).await.expect("send");
        let seen = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("the record arrives")
            .expect("reader alive");
        let took = seen.saturating_duration_since(sent);
        assert!(
            took < Duration::from_secs(1),
            "record {i} reached a consumer waiting 5 s only after {took:?}: the broker did not wake the fetch"
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    reader.await.expect("reader");
}
