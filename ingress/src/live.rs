//! Live changes of orders, for the GraphQL subscriptions.
//!
//! The projector announces on `command_status`, in the transaction that
//! changed an order's view, `order:<order id>:<customer id>` (the
//! customer left out while it is not known yet). The waiter's one listener
//! hands every notification to [`Live::announce`]; a subscriber watches an
//! order or a customer ([`Key`]) and is sent the id of each order of it that
//! changed. Nothing polls: a subscriber re-reads the read model only when
//! its key is announced.
//!
//! Nothing is lost silently: after the listener reconnects (anything may
//! have changed meanwhile), after a generation switch (`*`), and when a
//! subscriber falls more than [`BACKLOG`] changes behind, it is told
//! [`Change::Everything`] and re-reads all it shows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;
use uuid::Uuid;

use orderflow_contracts::announcements::parse_order_changed as parse;

/// Changes a subscriber may fall behind before it is told to re-read all.
pub const BACKLOG: usize = 256;

/// What a subscriber watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// One order.
    Order(Uuid),
    /// Every order of one customer.
    Customer(Uuid),
}

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// This order's view.
    Order(Uuid),
    /// Anything may have: re-read.
    Everything,
}

/// The watchers, by key.
#[derive(Debug, Default)]
pub struct Live {
    watchers: Mutex<HashMap<Key, broadcast::Sender<Change>>>,
}

impl Live {
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, broadcast::Sender<Change>>> {
        self.watchers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One notification's payload: order keys among command ids (which
    /// are not ours), or `*`.
    pub fn announce(&self, payload: &str) {
        let watchers = self.lock();
        if watchers.is_empty() {
            return;
        }
        if payload == "*" {
            for sender in watchers.values() {
                let _ = sender.send(Change::Everything);
            }
            return;
        }
        for (order, customer) in payload.split(',').filter_map(parse) {
            let keys = [Some(Key::Order(order)), customer.map(Key::Customer)];
            for key in keys.into_iter().flatten() {
                if let Some(sender) = watchers.get(&key) {
                    let _ = sender.send(Change::Order(order));
                }
            }
        }
    }

    /// Watches `key` until the [`Watch`] is dropped.
    pub fn watch(self: &Arc<Self>, key: Key) -> Watch {
        let receiver = self.lock().entry(key).or_insert_with(|| broadcast::channel(BACKLOG).0).subscribe();
        Watch { key, receiver: Some(receiver), live: Arc::clone(self) }
    }

    /// How many keys are watched now.
    pub fn watched(&self) -> usize {
        self.lock().len()
    }
}

/// One subscriber's place; dropping it removes the key once nobody else
/// watches it.
#[derive(Debug)]
pub struct Watch {
    key: Key,
    receiver: Option<broadcast::Receiver<Change>>,
    live: Arc<Live>,
}

impl Watch {
    /// The next change (waits for it).
    pub async fn next(&mut self) -> Change {
        let Some(receiver) = self.receiver.as_mut() else { return std::future::pending().await };
        match receiver.recv().await {
            Ok(change) => change,
            // Fell behind: some changes were dropped.
            Err(broadcast::error::RecvError::Lagged(_)) => Change::Everything,
            // The sender lives in the map as long as this receiver does.
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        drop(self.receiver.take());
        let mut watchers = self.live.lock();
        if watchers.get(&self.key).is_some_and(|sender| sender.receiver_count() == 0) {
            watchers.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_watcher_hears_its_order_and_its_customer_and_leaves_no_trace() {
        let live = Arc::new(Live::default());
        let (order, other, customer) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut by_order = live.watch(Key::Order(order));
        let mut by_customer = live.watch(Key::Customer(customer));
        live.announce(&format!("{},order:{other},order:{order}:{customer},not:a:key", Uuid::now_v7()));
        assert_eq!(by_order.next().await, Change::Order(order));
        assert_eq!(by_customer.next().await, Change::Order(order));
        let soon = Duration::from_millis(50);
        assert!(tokio::time::timeout(soon, by_order.next()).await.is_err(), "{other} is not watched");

        live.announce("*");
        assert_eq!(by_order.next().await, Change::Everything);
        for _ in 0..BACKLOG + 10 {
            live.announce(&format!("order:{order}"));
        }
        assert_eq!(by_order.next().await, Change::Everything, "a subscriber behind is told to re-read");

        assert_eq!(live.watched(), 2);
        drop(by_order);
        drop(by_customer);
        assert_eq!(live.watched(), 0);
    }
}
