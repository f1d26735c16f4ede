//! What a run measured: a bounded record of every answer, and the figures
//! derived from it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::api::Answer;

/// Every answer of one run. Memory is bounded by the plan: four bytes of
/// latency per request (a run of 1,000/s for 60 s keeps 240 kB).
#[derive(Debug, Default)]
pub struct Tally {
    /// Microseconds from each request's intended start to its full answer,
    /// for every 2xx answer (a 202 too: it waited the whole `Prefer: wait`
    /// and only raises the percentiles).
    latencies_us: Vec<u32>,
    /// 200/201: settled within the wait.
    pub settled: u64,
    /// Any 2xx (settled or not).
    pub accepted: u64,
    /// 202: accepted, not settled within the wait: (request number, command id).
    pub unsettled: Vec<(u64, Option<String>)>,
    pub errors: BTreeMap<String, u64>,
    /// Microseconds from intended start to answer for every request refused
    /// with an HTTP status (a 503 under overload must come at once).
    refused_us: Vec<u32>,
    /// When the last answer arrived.
    pub last_answer: Option<Instant>,
}

impl Tally {
    pub fn with_capacity(requests: usize) -> Self {
        Self { latencies_us: Vec::with_capacity(requests), ..Self::default() }
    }

    pub fn record(&mut self, request: u64, answer: Answer, latency: Duration) {
        self.last_answer = Some(Instant::now());
        if let Some(label) = answer.error_label() {
            *self.errors.entry(label).or_default() += 1;
            if let Answer::Status(_) = answer {
                self.refused_us.push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
            }
            return;
        }
        self.accepted += 1;
        self.latencies_us.push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
        match answer {
            Answer::Settled => self.settled += 1,
            Answer::Accepted { command_id } => self.unsettled.push((request, command_id)),
            Answer::OtherSuccess | Answer::Status(_) | Answer::Transport(_) => {}
        }
    }

    pub fn error(&mut self, label: &str) {
        *self.errors.entry(label.to_owned()).or_default() += 1;
    }

    /// Latency percentiles in milliseconds (nearest rank), sorting in place.
    pub fn percentiles(&mut self) -> Percentiles {
        Percentiles::of(&mut self.latencies_us)
    }

    /// The same for the requests refused with an HTTP status.
    pub fn refused_percentiles(&mut self) -> Percentiles {
        Percentiles::of(&mut self.refused_us)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    /// Of `micros`, in milliseconds (nearest rank), sorting in place.
    fn of(micros: &mut [u32]) -> Self {
        micros.sort_unstable();
        let at = |p: f64| -> f64 {
            if micros.is_empty() {
                return f64::NAN;
            }
            let rank = (p * micros.len() as f64).ceil() as usize;
            f64::from(micros[rank.clamp(1, micros.len()) - 1]) / 1000.0
        };
        Self { p50: at(0.50), p99: at(0.99), p999: at(0.999), max: at(1.0) }
    }
}

/// How long it took the commands answered 202 to settle after the run.
#[derive(Debug, Clone, Copy)]
pub struct Drain {
    pub seconds: f64,
    /// Still pending when the drain gave up.
    pub still_pending: usize,
}

/// The figures of one run, as printed.
#[derive(Debug, Clone)]
pub struct Summary {
    pub scenario: String,
    pub offered_rate: f64,
    pub duration_s: f64,
    pub planned: u64,
    pub sent: u64,
    /// From the first intended start to the last answer: what the per-second
    /// rates are divided by.
    pub window_s: f64,
    pub accepted: u64,
    pub settled: u64,
    pub not_settled: u64,
    pub errors: BTreeMap<String, u64>,
    pub latency: Percentiles,
    /// From intended start to answer, of the requests refused with a status.
    pub refused: Percentiles,
    /// How late the generator fired its latest request; large values mean
    /// the generator itself was starved (its latency still counts, from the
    /// intended start).
    pub generator_lag_max_ms: Option<f64>,
    pub drain: Option<Drain>,
    pub pgbench_tps: Option<f64>,
}

impl Summary {
    pub fn accepted_per_s(&self) -> f64 {
        per_second(self.accepted, self.window_s)
    }

    pub fn settled_per_s(&self) -> f64 {
        per_second(self.settled, self.window_s)
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Settled updates per second over pgbench TPC-B transactions per second.
    pub fn ratio_to_pgbench(&self) -> Option<f64> {
        self.pgbench_tps.filter(|tps| *tps > 0.0).map(|tps| self.settled_per_s() / tps)
    }

    /// Every request answered, settled within the wait, no error, p99 under
    /// the limit.
    pub fn meets(&self, p99_limit_ms: f64) -> bool {
        self.sent == self.planned
            && self.error_count() == 0
            && self.not_settled == 0
            && self.settled == self.planned
            && self.latency.p99 < p99_limit_ms
    }

    pub fn human(&self) -> String {
        let errors = if self.errors.is_empty() {
            "none".to_owned()
        } else {
            self.errors.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
        };
        let ratio = self.ratio_to_pgbench().map_or(String::new(), |r| format!(" = {r:.2} x pgbench TPS"));
        let refused = if self.refused.max.is_finite() {
            format!(" (answered in p99 {:.1} ms, max {:.1} ms)", self.refused.p99, self.refused.max)
        } else {
            String::new()
        };
        let lag = self.generator_lag_max_ms.map_or(String::new(), |ms| format!("; generator lag max {ms:.1} ms"));
        let drain = match self.drain {
            Some(d) if d.still_pending > 0 => {
                format!("; {} still pending {:.0} s after the run", d.still_pending, d.seconds)
            }
            Some(d) => format!("; the 202s settled {:.1} s after the run", d.seconds),
            None => String::new(),
        };
        format!(
            "{:<8} offered {:.0}/s for {:.0} s: sent {} of {}; accepted {:.1}/s, settled {:.1}/s{ratio}\n\
             {:<8} write->read p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms\n\
             {:<8} not settled within the wait (202): {}; errors: {errors}{refused}{lag}{drain}",
            self.scenario,
            self.offered_rate,
            self.duration_s,
            self.sent,
            self.planned,
            self.accepted_per_s(),
            self.settled_per_s(),
            "",
            self.latency.p50,
            self.latency.p99,
            self.latency.p999,
            self.latency.max,
            "",
            self.not_settled,
        )
    }

    pub fn json(&self) -> Value {
        json!({
            "scenario": self.scenario,
            "offered_rate": self.offered_rate,
            "duration_s": self.duration_s,
            "planned": self.planned,
            "sent": self.sent,
            "window_s": round(self.window_s),
            "accepted": self.accepted,
            "settled": self.settled,
            "not_settled": self.not_settled,
            "accepted_per_s": round(self.accepted_per_s()),
            "settled_per_s": round(self.settled_per_s()),
            "p50_ms": finite(self.latency.p50),
            "p99_ms": finite(self.latency.p99),
            "p999_ms": finite(self.latency.p999),
            "max_ms": finite(self.latency.max),
            "refused_p99_ms": finite(self.refused.p99),
            "refused_max_ms": finite(self.refused.max),
            "errors": self.errors,
            "generator_lag_max_ms": self.generator_lag_max_ms.map(round),
            "drain_s": self.drain.map(|d| round(d.seconds)),
            "pending_after_drain": self.drain.map(|d| d.still_pending),
            "pgbench_tps": self.pgbench_tps,
            "settled_per_pgbench_tps": self.ratio_to_pgbench().map(round),
        })
    }
}

fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 { count as f64 / seconds } else { 0.0 }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then(|| round(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut tally = Tally::default();
        for ms in 1..=1000u64 {
            tally.record(ms, Answer::Settled, Duration::from_millis(ms));
        }
        let p = tally.percentiles();
        assert_eq!((p.p50, p.p99, p.p999, p.max), (500.0, 990.0, 999.0, 1000.0));
    }

    #[test]
    fn errors_and_unsettled_are_counted_apart() {
        let mut tally = Tally::default();
        tally.record(0, Answer::Settled, Duration::from_millis(3));
        tally.record(1, Answer::Accepted { command_id: Some("c".into()) }, Duration::from_secs(5));
        tally.record(2, Answer::Status(reqwest::StatusCode::SERVICE_UNAVAILABLE), Duration::from_millis(1));
        tally.record(3, Answer::Transport("timeout"), Duration::from_secs(15));
        assert_eq!((tally.accepted, tally.settled, tally.unsettled.len()), (2, 1, 1));
        assert_eq!(tally.errors.get("http_503"), Some(&1));
        assert_eq!(tally.errors.get("timeout"), Some(&1));
        assert_eq!(tally.percentiles().max, 5000.0);
    }
}
