//! The causal order of one request's messages.
//!
//! Causation ids form a tree: a message's `causation_id` names the message
//! that caused it. A root is a message whose cause is itself or is not among
//! the messages (typically the client's command, which is not an event and
//! so not in the log). The story is the tree walked depth first, parents
//! before children, siblings (and roots) by when they occurred. Clocks of
//! different services may disagree, so a child stamped *earlier* than its
//! parent still comes after it: causation wins over timestamps.

use std::collections::{HashMap, HashSet};

/// `items` in causal order, each with its depth in the tree (roots 0).
/// `id` and `cause` give a message's id and its causation id; `key` orders
/// siblings. Anything not reachable from a root (a causation cycle, which
/// only a forged log can hold) comes last, at depth 0, by `key`.
pub fn causal_order<T, K: Ord>(
    items: Vec<T>,
    id: impl Fn(&T) -> String,
    cause: impl Fn(&T) -> String,
    key: impl Fn(&T) -> K,
) -> Vec<(usize, T)> {
    let ids: Vec<String> = items.iter().map(&id).collect();
    let known: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let mut children: HashMap<String, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let parent = cause(item);
        if parent == ids[i] || !known.contains(parent.as_str()) {
            roots.push(i);
        } else {
            children.entry(parent).or_default().push(i);
        }
    }
    let by_key = |list: &mut Vec<usize>| list.sort_by(|a, b| key(&items[*a]).cmp(&key(&items[*b])));
    by_key(&mut roots);
    for list in children.values_mut() {
        by_key(list);
    }
    let mut order: Vec<(usize, usize)> = Vec::with_capacity(items.len());
    let mut visited = vec![false; items.len()];
    // Depth first, parents before children: a stack of (index, depth),
    // pushed in reverse so the earliest sibling is visited first.
    let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|&i| (i, 0)).collect();
    while let Some((i, depth)) = stack.pop() {
        if std::mem::replace(&mut visited[i], true) {
            continue;
        }
        order.push((i, depth));
        if let Some(kids) = children.get(&ids[i]) {
            stack.extend(kids.iter().rev().map(|&k| (k, depth + 1)));
        }
    }
    let mut rest: Vec<usize> = (0..items.len()).filter(|i| !visited[*i]).collect();
    by_key(&mut rest);
    order.extend(rest.into_iter().map(|i| (i, 0)));
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    order.into_iter().filter_map(|(i, depth)| slots[i].take().map(|item| (depth, item))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (id, cause, timestamp)
    type Node = (&'static str, &'static str, i32);

    fn order(nodes: Vec<Node>) -> Vec<(usize, &'static str)> {
        causal_order(nodes, |n| n.0.to_owned(), |n| n.1.to_owned(), |n| n.2)
            .into_iter()
            .map(|(depth, n)| (depth, n.0))
            .collect()
    }

    #[test]
    fn a_saga_is_told_in_causal_order_even_when_clocks_disagree() {
        // PlaceOrder (a command, not in the log) -> OrderPlaced ->
        // PaymentAuthorized -> OrderConfirmed -> PaymentCaptured, each
        // service's clock a little behind the one before: timestamps say the
        // exact opposite of what happened.
        let nodes = vec![
            ("captured", "confirmed", 1),
            ("confirmed", "authorized", 2),
            ("authorized", "placed", 3),
            ("placed", "place-order-command", 4),
        ];
        assert_eq!(order(nodes), [(0, "placed"), (1, "authorized"), (2, "confirmed"), (3, "captured")]);
    }

    #[test]
    fn branches_are_walked_depth_first_siblings_by_time() {
        //            root
        //          /      \
        //        a(2)     b(1)
        //       /   \       \
        //    a2(9)  a1(3)   b1(0)
        let nodes = vec![
            ("a2", "a", 9),
            ("b1", "b", 0),
            ("a", "root", 2),
            ("root", "root", 5),
            ("a1", "a", 3),
            ("b", "root", 1),
        ];
        assert_eq!(order(nodes), [(0, "root"), (1, "b"), (2, "b1"), (1, "a"), (2, "a1"), (2, "a2")]);
    }

    #[test]
    fn several_roots_by_time_and_cycles_last() {
        let nodes = vec![
            ("late-root", "cmd-2", 10),
            ("x", "y", 1), // x and y cause each other: reachable from no root
            ("early-root", "cmd-1", 5),
            ("y", "x", 2),
            ("child", "early-root", 0),
        ];
        assert_eq!(order(nodes), [(0, "early-root"), (1, "child"), (0, "late-root"), (0, "x"), (0, "y")]);
    }
}
