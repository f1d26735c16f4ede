//! What the development broker (tansu 0.6.0) implements, probed. Each test
//! pins a behaviour orderflow relies on or documents one it must not rely
//! on (docs/tansu.md).

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

/// Probe: which topic configs the broker reports back (informational).
#[tokio::test]
async fn probe_topic_configs() {
    let s = settings();
    ensure_topics(&s, &[("cfg".into(), Retention::Compacted)]).await.expect("create");
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &s.brokers).create().expect("admin");
    let topic = s.topic("cfg");
    let result = admin.describe_configs([&ResourceSpecifier::Topic(&topic)], &AdminOptions::new()).await;
    eprintln!("describe_configs: {result:?}");
}

/// Probe: does the broker compact? (informational: orderflow does not rely
/// on compaction for correctness, only for size.)
#[tokio::test]
async fn probe_compaction_and_transactions() {
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
    eprintln!("compacted topic after 10 writes of one key holds {} records", read.len());

    let tx: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &s.brokers)
        .set("transactional.id", format!("probe-{}", orderflow_testkit::unique_id()))
        .create()
        .expect("tx producer");
    let outcome = tx.init_transactions(Duration::from_secs(10));
    eprintln!("init_transactions: {outcome:?}");
    if outcome.is_ok() {
        eprintln!("begin: {:?}", tx.begin_transaction());
        let r = tx.send(FutureRecord::to(&topic).key("t").payload("aborted"), Duration::from_secs(5)).await;
        eprintln!("send in tx: {:?}", r.map(|d| d.offset));
        eprintln!("abort: {:?}", tx.abort_transaction(Duration::from_secs(10)));
        let consumer_read = read_all(&s.brokers, &topic, s.partitions);
        eprintln!("records visible after an aborted tx (read_uncommitted): {}", consumer_read.len());
    }
}
