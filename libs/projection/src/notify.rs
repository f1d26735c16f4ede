//! One `NOTIFY` per transaction: the keys a batch settled, comma-separated,
//! split over as many payloads as Postgres' limit needs.

use sqlx::PgConnection;

/// Postgres refuses a payload of 8000 bytes or more.
pub const MAX_PAYLOAD: usize = 7999;

/// `keys` joined with commas into payloads of at most `max` bytes each,
/// without repeats, in first-seen order. A key longer than `max` (or
/// containing a comma) is left out: nobody could tell it apart.
pub fn payloads<'a>(keys: impl IntoIterator<Item = &'a str>, max: usize) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut current = String::new();
    for key in keys {
        if key.is_empty() || key.len() > max || key.contains(',') || !seen.insert(key) {
            continue;
        }
        if !current.is_empty() && current.len() + 1 + key.len() > max {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(',');
        }
        current.push_str(key);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Queues the notifications of `keys` on `channel`; Postgres delivers them
/// when the transaction commits, and not at all if it rolls back.
pub(crate) async fn send<'a>(
    tx: &mut PgConnection,
    channel: &str,
    keys: impl IntoIterator<Item = &'a str>,
) -> Result<(), sqlx::Error> {
    for payload in payloads(keys, MAX_PAYLOAD) {
        sqlx::query("SELECT pg_notify($1, $2)").bind(channel).bind(payload).execute(&mut *tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::payloads;

    #[test]
    fn keys_are_joined_deduplicated_and_split_at_the_limit() {
        assert!(payloads([], 10).is_empty());
        assert_eq!(payloads(["a", "b", "a", "c"], 100), vec!["a,b,c"]);
        assert_eq!(payloads(["aaaa", "bbbb", "cccc"], 9), vec!["aaaa,bbbb", "cccc"]);
        assert_eq!(payloads(["aaaa", "bbbb"], 8), vec!["aaaa", "bbbb"]);
        assert_eq!(payloads(["toolongkey", "ok", "a,b", ""], 5), vec!["ok"]);
    }

    #[test]
    fn a_thousand_uuids_fit_in_payloads_under_the_postgres_limit() {
        let ids: Vec<String> = (0..1000).map(|n| format!("0190a0a0-0000-7000-8000-{n:012}")).collect();
        let out = payloads(ids.iter().map(String::as_str), super::MAX_PAYLOAD);
        assert!(out.len() > 1);
        assert!(out.iter().all(|p| p.len() <= super::MAX_PAYLOAD));
        let back: Vec<&str> = out.iter().flat_map(|p| p.split(',')).collect();
        assert_eq!(back, ids.iter().map(String::as_str).collect::<Vec<_>>());
    }
}
