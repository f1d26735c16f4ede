//! The consumer's failure handling.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use orderflow_bus::admin::ensure_topics;
use orderflow_bus::consumer::{self, ConsumerOptions, Handled, HandlerError, InboundMessage, MessageHandler};
use orderflow_bus::{Headers, Producer};
use orderflow_contracts::Retention;
use tokio_util::sync::CancellationToken;

use crate::settings;

/// Fails `poison` permanently, the first `transient` attempts of anything
/// transiently, and records the rest.
#[derive(Clone, Default)]
struct Flaky {
    transient_left: Arc<Mutex<u32>>,
    attempts: Arc<Mutex<Vec<String>>>,
    handled: Arc<Mutex<Vec<String>>>,
    dead: Arc<Mutex<Vec<(String, String)>>>,
}

impl MessageHandler for Flaky {
    /// All or nothing, like a database transaction over the run.
    async fn handle(&self, messages: &[InboundMessage]) -> Result<Handled, HandlerError> {
        let mut committed = Vec::new();
        for message in messages {
            let body = String::from_utf8_lossy(message.payload.as_deref().unwrap_or_default()).into_owned();
            self.attempts.lock().expect("lock").push(body.clone());
            {
                let mut left = self.transient_left.lock().expect("lock");
                if *left > 0 {
                    *left -= 1;
                    return Err(HandlerError::Transient("database unavailable".into()));
                }
            }
            if body == "poison" {
                return Err(HandlerError::Permanent("cannot decode".into()));
            }
            committed.push(body);
        }
        self.handled.lock().expect("lock").extend(committed);
        Ok(Handled::all())
    }

    async fn dead_letter(&self, message: &InboundMessage, error: &HandlerError) -> Result<(), HandlerError> {
        let body = String::from_utf8_lossy(message.payload.as_deref().unwrap_or_default()).into_owned();
        self.dead.lock().expect("lock").push((body, error.reason().to_owned()));
        Ok(())
    }
}

#[tokio::test]
async fn poison_is_retried_boundedly_then_dead_lettered_and_the_partition_moves_on() {
    let s = settings();
    ensure_topics(&s, &[("p".into(), Retention::Week)]).await.expect("topics");
    let topic = s.topic("p");
    let producer = Producer::new(&s).expect("producer");
    let headers = Headers::new_root("Probe", "system").to_pairs();
    for body in ["before", "poison", "after"] {
        producer.send(&topic, "one-key", body.as_bytes(), &headers).await.expect("send");
    }
    let handler = Flaky { transient_left: Arc::new(Mutex::new(2)), ..Flaky::default() };
    let mut options = ConsumerOptions::new(format!("{}g", s.topic_prefix), vec![topic]);
    options.base_backoff = Duration::from_millis(10);
    options.max_backoff = Duration::from_millis(50);
    let stop = CancellationToken::new();
    let task = {
        let (s, options, handler, stop) = (s.clone(), options.clone(), handler.clone(), stop.clone());
        tokio::spawn(async move { consumer::run(&s, &options, Arc::new(handler), stop).await })
    };
    orderflow_testkit::eventually("the message after the poison is handled", Duration::from_secs(60), || {
        let handled = Arc::clone(&handler.handled);
        async move { handled.lock().expect("lock").contains(&"after".to_owned()) }
    })
    .await;
    stop.cancel();
    task.await.expect("join").expect("ran");

    assert_eq!(*handler.handled.lock().expect("lock"), vec!["before", "after"]);
    let dead = handler.dead.lock().expect("lock").clone();
    assert_eq!(dead, vec![("poison".to_owned(), "cannot decode".to_owned())]);
    let attempts = handler.attempts.lock().expect("lock").clone();
    // 2 transient retries of "before" (alone or in a run), then "poison"
    // alone exactly max_attempts times (plus at most once inside the run
    // that failed and fell back to one by one).
    assert!(attempts.iter().filter(|a| *a == "before").count() >= 3, "{attempts:?}");
    let poison = attempts.iter().filter(|a| *a == "poison").count();
    assert!((options.max_attempts..=options.max_attempts + 1).contains(&poison), "{attempts:?}");
}

/// Says "not yet" to every message of key `waiting` until `ready` is set,
/// and records what it handles, in order. Like the service kit, it leaves
/// such a message (and the rest of its key) out of a longer run and
/// commits the others, and answers a run of one with `Later`.
#[derive(Clone, Default)]
struct Gate {
    ready: Arc<std::sync::atomic::AtomicBool>,
    handled: Arc<Mutex<Vec<String>>>,
}

impl MessageHandler for Gate {
    async fn handle(&self, messages: &[InboundMessage]) -> Result<Handled, HandlerError> {
        let why = "its customer is not known here yet";
        let mut committed = Vec::new();
        let mut handled = Handled::all();
        for (position, message) in messages.iter().enumerate() {
            if message.key.as_deref() == Some("waiting") && !self.ready.load(std::sync::atomic::Ordering::SeqCst) {
                if messages.len() == 1 {
                    return Err(HandlerError::Later(why.into()));
                }
                handled.leave(position, why);
                continue;
            }
            committed.push(String::from_utf8_lossy(message.payload.as_deref().unwrap_or_default()).into_owned());
        }
        self.handled.lock().expect("lock").extend(committed);
        Ok(handled)
    }

    async fn dead_letter(&self, _: &InboundMessage, error: &HandlerError) -> Result<(), HandlerError> {
        panic!("nothing is dead-lettered here: {error}");
    }
}

/// The offset group `group` committed on partition 0 of `topic` (negative: none).
async fn committed(s: &orderflow_config::KafkaSettings, group: &str, topic: &str) -> i64 {
    let (brokers, group, topic) = (s.brokers.clone(), group.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", &group)
            .create()
            .expect("consumer");
        let mut list = rdkafka::TopicPartitionList::new();
        list.add_partition(&topic, 0);
        let committed = consumer.committed_offsets(list, Duration::from_secs(10)).expect("committed");
        committed.elements()[0].offset().to_raw().unwrap_or(-1)
    })
    .await
    .expect("task")
}

/// A topic of one partition (every key shares it) holding `messages`
/// (key, body), and options to consume it as a group of its own.
async fn one_partition(messages: &[(&str, &str)]) -> (orderflow_config::KafkaSettings, ConsumerOptions) {
    let s = orderflow_config::KafkaSettings { partitions: 1, ..settings() };
    ensure_topics(&s, &[("gate".into(), Retention::Week)]).await.expect("topics");
    let topic = s.topic("gate");
    let producer = Producer::new(&s).expect("producer");
    let headers = Headers::new_root("Probe", "system").to_pairs();
    for (key, body) in messages {
        producer.send(&topic, key, body.as_bytes(), &headers).await.expect("send");
    }
    let mut options = ConsumerOptions::new(format!("{}gate", s.topic_prefix), vec![topic]);
    options.base_backoff = Duration::from_millis(20);
    options.max_backoff = Duration::from_millis(200);
    (s, options)
}

/// A consumer of `options` handing its messages to `handler`, until the token is cancelled.
fn consume<H: MessageHandler + Clone>(
    s: &orderflow_config::KafkaSettings,
    options: &ConsumerOptions,
    handler: &H,
) -> (tokio::task::JoinHandle<Result<(), consumer::ConsumerError>>, CancellationToken) {
    let (s, options, handler, stop) = (s.clone(), options.clone(), handler.clone(), CancellationToken::new());
    let token = stop.clone();
    (tokio::spawn(async move { consumer::run(&s, &options, Arc::new(handler), token).await }), stop)
}

/// Waits until `gate` has handled `count` messages.
async fn handled(gate: &Gate, what: &str, count: usize) {
    orderflow_testkit::eventually(what, Duration::from_secs(30), || {
        let handled = Arc::clone(&gate.handled);
        async move { handled.lock().expect("lock").len() == count }
    })
    .await;
}

#[tokio::test]
async fn a_key_that_cannot_be_acted_on_yet_waits_while_its_partition_flows_on_and_is_redelivered_if_stopped() {
    let (s, options) =
        one_partition(&[("waiting", "w1"), ("other", "o1"), ("waiting", "w2"), ("other", "o2"), ("other", "o3")]).await;
    let (group, topic) = (options.group.clone(), options.topics[0].clone());
    let gate = Gate::default();
    let (task, stop) = consume(&s, &options, &gate);
    orderflow_testkit::eventually("the other key's messages are handled", Duration::from_secs(30), || {
        let handled = Arc::clone(&gate.handled);
        async move { handled.lock().expect("lock").len() == 3 }
    })
    .await;
    assert_eq!(*gate.handled.lock().expect("lock"), ["o1", "o2", "o3"], "not held up by the waiting key");
    stop.cancel();
    task.await.expect("join").expect("ran");
    assert!(
        committed(&s, &group, &topic).await <= 0,
        "nothing at or after the waiting message is committed: a restart delivers it again"
    );

    // Started again once it can be acted on: it comes again, and its key in order.
    let gate = Gate::default();
    gate.ready.store(true, std::sync::atomic::Ordering::SeqCst);
    let (task, stop) = consume(&s, &options, &gate);
    orderflow_testkit::eventually("the waiting key's messages are handled", Duration::from_secs(30), || {
        let handled = Arc::clone(&gate.handled);
        async move { handled.lock().expect("lock").contains(&"w2".to_owned()) }
    })
    .await;
    let handled = gate.handled.lock().expect("lock").clone();
    let position = |body: &str| handled.iter().position(|h| h == body).expect("handled");
    assert!(position("w1") < position("w2"), "per-key order: {handled:?}");
    stop.cancel();
    task.await.expect("join").expect("ran");
    assert_eq!(committed(&s, &group, &topic).await, 5, "everything is committed now");
}

#[tokio::test]
async fn a_waiting_key_is_retried_with_backoff_and_goes_once_it_can() {
    let (s, options) = one_partition(&[("waiting", "w1"), ("other", "o1"), ("waiting", "w2"), ("other", "o2")]).await;
    let (group, topic) = (options.group.clone(), options.topics[0].clone());
    let gate = Gate::default();
    let (task, stop) = consume(&s, &options, &gate);
    handled(&gate, "the other key flows", 2).await;
    // Its customer arrives: the same consumer, with no new message, takes it.
    gate.ready.store(true, std::sync::atomic::Ordering::SeqCst);
    handled(&gate, "the waiting key goes", 4).await;
    assert_eq!(*gate.handled.lock().expect("lock"), ["o1", "o2", "w1", "w2"]);
    stop.cancel();
    task.await.expect("join").expect("ran");
    assert_eq!(committed(&s, &group, &topic).await, 4, "everything is committed");
}

#[tokio::test]
async fn a_woken_key_goes_at_once_instead_of_after_its_backoff() {
    let (s, mut options) = one_partition(&[("waiting", "w1"), ("other", "o1"), ("waiting", "w2")]).await;
    // Left to its backoff, the waiting key would be tried again in minutes.
    options.base_backoff = Duration::from_secs(600);
    options.max_backoff = Duration::from_secs(600);
    let gate = Gate::default();
    let (task, stop) = consume(&s, &options, &gate);
    // o1 comes after w1 in the partition: once it is handled, w1 is parked.
    handled(&gate, "the other key flows", 1).await;
    // What it waited for is done (an effect finished): it is woken, and
    // goes within the wait below, far shorter than its backoff.
    gate.ready.store(true, std::sync::atomic::Ordering::SeqCst);
    options.wakeups.wake("not-parked-here");
    options.wakeups.wake("waiting");
    handled(&gate, "the woken key goes", 3).await;
    assert_eq!(*gate.handled.lock().expect("lock"), ["o1", "w1", "w2"], "its key's order holds");
    stop.cancel();
    task.await.expect("join").expect("ran");
}

/// Records every run it is handed (by body); holds up a run that starts
/// with `slow` (so what follows queues into one run), splits a run at a
/// `poison` ([`HandlerError::Split`]) and fails it alone, stops the
/// consumer at `fatal`, and fails transiently at `down`.
#[derive(Clone, Default)]
struct Splitter {
    runs: Arc<Mutex<Vec<Vec<String>>>>,
    handled: Arc<Mutex<Vec<String>>>,
    dead: Arc<Mutex<Vec<String>>>,
}

fn body(message: &InboundMessage) -> String {
    String::from_utf8_lossy(message.payload.as_deref().unwrap_or_default()).into_owned()
}

impl MessageHandler for Splitter {
    async fn handle(&self, messages: &[InboundMessage]) -> Result<Handled, HandlerError> {
        let bodies: Vec<String> = messages.iter().map(body).collect();
        self.runs.lock().expect("lock").push(bodies.clone());
        if bodies[0] == "slow" {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        for (position, body) in bodies.iter().enumerate() {
            match body.as_str() {
                "poison" => {
                    return Err(HandlerError::Permanent("cannot apply".into()).at(position, messages.len()));
                }
                "fatal" => {
                    let lost = std::io::Error::other("another instance holds the lease");
                    return Err(HandlerError::Stop(Box::new(lost)));
                }
                "down" => return Err(HandlerError::Transient("database unavailable".into())),
                _ => {}
            }
        }
        self.handled.lock().expect("lock").extend(bodies);
        Ok(Handled::all())
    }

    async fn dead_letter(&self, message: &InboundMessage, _: &HandlerError) -> Result<(), HandlerError> {
        self.dead.lock().expect("lock").push(body(message));
        Ok(())
    }
}

#[tokio::test]
async fn a_run_is_split_at_the_message_that_failed_and_only_that_one_goes_alone() {
    let bodies = ["slow", "a", "b", "poison", "c", "d"];
    let (s, options) = one_partition(&bodies.map(|b| ("one-key", b))).await;
    let handler = Splitter::default();
    let (task, stop) = consume(&s, &options, &handler);
    orderflow_testkit::eventually("the messages after the poison are handled", Duration::from_secs(60), || {
        let handled = Arc::clone(&handler.handled);
        async move { handled.lock().expect("lock").contains(&"d".to_owned()) }
    })
    .await;
    stop.cancel();
    task.await.expect("join").expect("ran");

    assert_eq!(*handler.handled.lock().expect("lock"), ["slow", "a", "b", "c", "d"]);
    assert_eq!(*handler.dead.lock().expect("lock"), ["poison"]);
    let runs = handler.runs.lock().expect("lock").clone();
    // The run that failed at the poison (never the one held up by `slow`
    // alone): what came before it goes again as one run, the poison alone
    // max_attempts times, then what came after it as one run.
    let failed = runs.iter().position(|r| r.len() > 1 && r.contains(&"poison".to_owned())).expect("a run with it");
    let run = &runs[failed];
    let at = run.iter().position(|b| b == "poison").expect("in it");
    let mut expected: Vec<Vec<String>> = Vec::new();
    if at > 0 {
        expected.push(run[..at].to_vec());
    }
    expected.extend(std::iter::repeat_n(vec!["poison".to_owned()], options.max_attempts));
    if at + 1 < run.len() {
        expected.push(run[at + 1..].to_vec());
    }
    assert_eq!(runs[failed + 1..failed + 1 + expected.len()], expected[..], "all runs: {runs:?}");
}

#[tokio::test]
async fn a_handler_that_cannot_go_on_ends_the_consumer_with_its_error() {
    let (s, options) = one_partition(&[("k", "a"), ("k", "fatal"), ("k", "b")]).await;
    let handler = Splitter::default();
    let (task, _stop) = consume(&s, &options, &handler);
    let ended = tokio::time::timeout(Duration::from_secs(60), task).await.expect("it ends by itself").expect("join");
    match ended {
        Err(consumer::ConsumerError::Stopped { source, .. }) => {
            let lost = source.downcast::<std::io::Error>().expect("the handler's own error");
            assert_eq!(lost.to_string(), "another instance holds the lease");
        }
        other => panic!("expected Stopped, got {other:?}"),
    }
    assert!(!handler.handled.lock().expect("lock").contains(&"b".to_owned()), "nothing after it is handled");
    assert!(handler.dead.lock().expect("lock").is_empty(), "it is not dead-lettered");
}

#[tokio::test]
async fn transient_failures_longer_than_give_up_after_end_the_consumer() {
    let (s, mut options) = one_partition(&[("k", "down")]).await;
    options.give_up_after = Some(Duration::from_millis(400));
    let handler = Splitter::default();
    let (task, _stop) = consume(&s, &options, &handler);
    let ended = tokio::time::timeout(Duration::from_secs(60), task).await.expect("it gives up").expect("join");
    assert!(matches!(ended, Err(consumer::ConsumerError::GaveUp { ref last, .. }) if last.is_transient()), "{ended:?}");
    assert!(handler.runs.lock().expect("lock").len() >= 2, "retried before giving up");
}

#[tokio::test]
async fn with_offsets_kept_by_the_handler_it_reads_from_the_given_positions_and_commits_nothing() {
    let (s, mut options) = one_partition(&[("k", "x0"), ("k", "x1"), ("k", "x2"), ("k", "x3"), ("k", "x4")]).await;
    let (group, topic) = (options.group.clone(), options.topics[0].clone());
    options.offsets = orderflow_bus::OffsetStore::Handler(vec![orderflow_bus::Start {
        topic: topic.clone(),
        partition: 0,
        offset: Some(3),
    }]);
    let handler = Splitter::default();
    let (task, stop) = consume(&s, &options, &handler);
    orderflow_testkit::eventually("the messages from offset 3 are handled", Duration::from_secs(30), || {
        let handled = Arc::clone(&handler.handled);
        async move { handled.lock().expect("lock").len() == 2 }
    })
    .await;
    stop.cancel();
    task.await.expect("join").expect("ran");
    assert_eq!(*handler.handled.lock().expect("lock"), ["x3", "x4"]);
    assert!(committed(&s, &group, &topic).await < 0, "the group commits nothing: the handler keeps the offsets");
}

/// A run as the handler saw it: each message's partition and body.
type Run = Vec<(i32, String)>;

/// Records each run and how many runs were in hand at once; every run
/// takes a while, so what arrives meanwhile queues.
#[derive(Clone, Default)]
struct Lanes {
    runs: Arc<Mutex<Vec<Run>>>,
    in_hand: Arc<std::sync::atomic::AtomicUsize>,
    most_in_hand: Arc<std::sync::atomic::AtomicUsize>,
}

impl MessageHandler for Lanes {
    async fn handle(&self, messages: &[InboundMessage]) -> Result<Handled, HandlerError> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.in_hand.fetch_add(1, SeqCst) + 1;
        self.most_in_hand.fetch_max(now, SeqCst);
        tokio::time::sleep(Duration::from_millis(30)).await;
        self.runs.lock().expect("lock").push(messages.iter().map(|m| (m.partition, body(m))).collect());
        self.in_hand.fetch_sub(1, SeqCst);
        Ok(Handled::all())
    }

    async fn dead_letter(&self, _: &InboundMessage, error: &HandlerError) -> Result<(), HandlerError> {
        panic!("nothing is dead-lettered here: {error}");
    }
}

#[tokio::test]
async fn runs_take_what_waits_on_all_of_a_lanes_partitions_and_no_more_runs_than_lanes_are_in_hand() {
    let s = orderflow_config::KafkaSettings { partitions: 6, ..settings() };
    ensure_topics(&s, &[("lanes".into(), Retention::Week)]).await.expect("topics");
    let topic = s.topic("lanes");
    let producer = Producer::new(&s).expect("producer");
    let headers = Headers::new_root("Probe", "system").to_pairs();
    let (keys, per_key) = (24, 10);
    for seq in 0..per_key {
        for key in 0..keys {
            producer
                .send(&topic, &format!("k{key}"), format!("k{key}:{seq}").as_bytes(), &headers)
                .await
                .expect("send");
        }
    }
    let mut options = ConsumerOptions::new(format!("{}lanes", s.topic_prefix), vec![topic]);
    options.lanes = 2;
    options.batch_size = 50;
    let handler = Lanes::default();
    let (task, stop) = consume(&s, &options, &handler);
    orderflow_testkit::eventually("every message is handled", Duration::from_secs(60), || {
        let runs = Arc::clone(&handler.runs);
        async move { runs.lock().expect("lock").iter().map(Vec::len).sum::<usize>() >= keys * per_key }
    })
    .await;
    stop.cancel();
    task.await.expect("join").expect("ran");

    let runs = handler.runs.lock().expect("lock").clone();
    let most = handler.most_in_hand.load(std::sync::atomic::Ordering::SeqCst);
    assert!(most <= 2, "{most} runs were in hand at once with 2 lanes");
    let spanning = runs.iter().filter(|run| run.iter().any(|(p, _)| *p != run[0].0)).count();
    assert!(spanning > 0, "no run took more than one partition: {runs:?}");
    // Each message once, each key's in order.
    let mut seen: std::collections::HashMap<String, Vec<u32>> = std::collections::HashMap::new();
    for (_, body) in runs.iter().flatten() {
        let (key, seq) = body.split_once(':').expect("key:seq");
        seen.entry(key.to_owned()).or_default().push(seq.parse().expect("seq"));
    }
    assert_eq!(seen.len(), keys, "{seen:?}");
    for (key, seqs) in &seen {
        assert_eq!(*seqs, (0..per_key as u32).collect::<Vec<_>>(), "key {key}");
    }
}
