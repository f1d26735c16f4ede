//! Keys kept for a short while per process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use orderflow_contracts::personal::{KeyFuture, KeyStore, Lookup};

/// `S` with its answers kept for `ttl`: a process asks the keeper once per
/// subject (or key id) per `ttl`, and an erasure reaches its copies
/// within `ttl`. Failures are not kept.
#[derive(Debug)]
pub struct Cached<S> {
    inner: S,
    ttl: Duration,
    subjects: Mutex<HashMap<String, (Instant, Lookup)>>,
    ids: Mutex<HashMap<String, (Instant, Lookup)>>,
}

/// At most this many entries per map: past it, expired ones are dropped
/// (and, if none has expired, everything).
const CAPACITY: usize = 100_000;

impl<S: KeyStore> Cached<S> {
    pub fn new(inner: S, ttl: Duration) -> Self {
        Self { inner, ttl, subjects: Mutex::default(), ids: Mutex::default() }
    }

    fn get(&self, map: &Mutex<HashMap<String, (Instant, Lookup)>>, key: &str) -> Option<Lookup> {
        let map = map.lock().expect("key cache lock");
        map.get(key).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, lookup)| lookup.clone())
    }

    fn put(&self, map: &Mutex<HashMap<String, (Instant, Lookup)>>, key: &str, lookup: &Lookup) {
        let mut map = map.lock().expect("key cache lock");
        if map.len() >= CAPACITY {
            map.retain(|_, (at, _)| at.elapsed() < self.ttl);
            if map.len() >= CAPACITY {
                map.clear();
            }
        }
        map.insert(key.to_owned(), (Instant::now(), lookup.clone()));
    }
}

impl<S: KeyStore> KeyStore for Cached<S> {
    fn sealing_key<'a>(&'a self, subject: &'a str) -> KeyFuture<'a> {
        Box::pin(async move {
            if let Some(hit) = self.get(&self.subjects, subject) {
                return Ok(hit);
            }
            let lookup = self.inner.sealing_key(subject).await?;
            self.put(&self.subjects, subject, &lookup);
            if let Lookup::Key(key) = &lookup {
                self.put(&self.ids, key.id(), &lookup);
            }
            Ok(lookup)
        })
    }

    fn opening_key<'a>(&'a self, key_id: &'a str) -> KeyFuture<'a> {
        Box::pin(async move {
            if let Some(hit) = self.get(&self.ids, key_id) {
                return Ok(hit);
            }
            let lookup = self.inner.opening_key(key_id).await?;
            self.put(&self.ids, key_id, &lookup);
            Ok(lookup)
        })
    }
}
