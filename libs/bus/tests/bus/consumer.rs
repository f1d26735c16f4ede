//! The consumer's failure handling.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use orderflow_bus::admin::ensure_topics;
use orderflow_bus::consumer::{self, ConsumerOptions, HandlerError, InboundMessage, MessageHandler};
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
    async fn handle(&self, messages: &[InboundMessage]) -> Result<(), HandlerError> {
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
        Ok(())
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
