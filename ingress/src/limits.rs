//! Rate limits and bounded password hashing: what keeps one client (or a
//! flood of sign-ins) from taking the ingress from everyone else.
//!
//! - Token buckets ([`Limiter`]) per client identity (a token's subject),
//!   per IP address, and for logins per IP and per email. A request over a
//!   limit is answered `429` with `Retry-After` before any handler runs, so
//!   no command is sent.
//! - argon2id needs ~19 MiB and tens of milliseconds of a core per hash:
//!   [`Hashing`] runs at most `hashing.max_concurrent` (the cores) at once,
//!   lets `hashing.max_queued` more wait, and answers the rest `503` with
//!   `Retry-After` at once. Memory for hashing is therefore bounded by
//!   `max_concurrent` hashes however many sign-ins arrive.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::ApiError;

/// One token bucket's shape: `burst` requests at once, refilled at
/// `per_second`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

impl Rate {
    pub fn validate(&self, name: &str) -> orderflow_config::Result<()> {
        if !(self.per_second > 0.0 && self.per_second.is_finite()) {
            return Err(orderflow_config::ConfigError::invalid(format!("{name}.per_second"), "must be above 0"));
        }
        if !(self.burst >= 1.0 && self.burst.is_finite()) {
            return Err(orderflow_config::ConfigError::invalid(format!("{name}.burst"), "must be at least 1"));
        }
        Ok(())
    }
}

/// Keys a limiter remembers at most; beyond it the idle (full) buckets go.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by key.
#[derive(Debug)]
pub struct Limiter {
    rate: Rate,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Limiter {
    pub fn new(rate: Rate) -> Self {
        Self { rate, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token of `key`'s bucket, or says how long until there is one.
    pub fn take(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let Rate { per_second, burst } = self.rate;
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * per_second < burst);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket { tokens: burst, at: now });
        bucket.tokens =
            (bucket.tokens + now.saturating_duration_since(bucket.at).as_secs_f64() * per_second).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

/// The limits of the ingress.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Per authenticated client (a token's subject: a user or a service).
    pub per_client: Rate,
    /// Per IP address, every request.
    pub per_ip: Rate,
    /// Login attempts per IP address.
    pub login_per_ip: Rate,
    /// Login attempts per email address (guessing one account's password).
    pub login_per_email: Rate,
    /// A header whose last (rightmost) address is the client's, set by the
    /// load balancer in front (`x-forwarded-for`); unset: the peer address.
    /// Only set it when every request passes that load balancer, or
    /// clients choose their own address.
    pub client_ip_header: Option<String>,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            per_client: Rate { per_second: 100.0, burst: 200.0 },
            per_ip: Rate { per_second: 2_000.0, burst: 4_000.0 },
            login_per_ip: Rate { per_second: 5.0, burst: 30.0 },
            login_per_email: Rate { per_second: 0.5, burst: 10.0 },
            client_ip_header: None,
        }
    }
}

impl RateLimitSettings {
    pub fn validate(&self) -> orderflow_config::Result<()> {
        self.per_client.validate("rate_limit.per_client")?;
        self.per_ip.validate("rate_limit.per_ip")?;
        self.login_per_ip.validate("rate_limit.login_per_ip")?;
        self.login_per_email.validate("rate_limit.login_per_email")?;
        if let Some(header) = &self.client_ip_header
            && axum::http::HeaderName::from_bytes(header.as_bytes()).is_err()
        {
            return Err(orderflow_config::ConfigError::invalid("rate_limit.client_ip_header", "is not a header name"));
        }
        Ok(())
    }
}

/// How many argon2 hashes run at once, and how many may wait.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HashingSettings {
    /// At most this many at once; 0: one per core.
    pub max_concurrent: usize,
    /// Waiting beyond those; more are answered 503.
    pub max_queued: usize,
}

impl Default for HashingSettings {
    fn default() -> Self {
        Self { max_concurrent: 0, max_queued: 32 }
    }
}

#[derive(Debug)]
pub struct Limits {
    pub client: Limiter,
    pub ip: Limiter,
    pub login_ip: Limiter,
    pub login_email: Limiter,
    client_ip_header: Option<axum::http::HeaderName>,
}

fn too_many(wait: Duration) -> ApiError {
    let seconds = wait.as_secs_f64().ceil() as u64;
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED", format!("too many requests; retry in {seconds} s"))
        .with_retry_after(seconds)
}

impl Limits {
    pub fn new(settings: &RateLimitSettings) -> Self {
        Self {
            client: Limiter::new(settings.per_client),
            ip: Limiter::new(settings.per_ip),
            login_ip: Limiter::new(settings.login_per_ip),
            login_email: Limiter::new(settings.login_per_email),
            client_ip_header: settings
                .client_ip_header
                .as_deref()
                .and_then(|h| axum::http::HeaderName::from_bytes(h.as_bytes()).ok()),
        }
    }

    /// A login attempt for `email` from `ip`.
    pub fn login(&self, ip: IpAddr, email: &str) -> Result<(), ApiError> {
        let now = Instant::now();
        self.login_ip.take(&ip.to_string(), now).map_err(too_many)?;
        self.login_email.take(email, now).map_err(too_many)
    }

    fn client_ip(&self, request: &Request) -> IpAddr {
        let forwarded = self.client_ip_header.as_ref().and_then(|name| {
            let values = request.headers().get_all(name);
            let last = values.iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).last()?;
            last.trim().parse::<IpAddr>().ok()
        });
        forwarded
            .or_else(|| request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()))
            .unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }
}

/// The client's address, as [`limit`] determined it.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<ClientIp>().copied().unwrap_or(ClientIp(IpAddr::from([0, 0, 0, 0]))))
    }
}

/// Middleware: the per-IP and per-client buckets, before anything else
/// runs. The client is the subject of a validly signed token (revocation
/// is checked later, by the route); a request without one counts by IP only.
pub async fn limit(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let now = Instant::now();
    let ip = state.limits.client_ip(&request);
    if let Err(wait) = state.limits.ip.take(&ip.to_string(), now) {
        return too_many(wait).into_response();
    }
    let subject = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|token| state.tokens.verify(token.trim()).ok())
        .map(|claims| claims.sub);
    if let Some(subject) = subject
        && let Err(wait) = state.limits.client.take(&subject, now)
    {
        return too_many(wait).into_response();
    }
    request.extensions_mut().insert(ClientIp(ip));
    next.run(request).await
}

/// Runs argon2 work on a pool of its own: `max_concurrent` threads, fed
/// by a queue of `max_queued`; when the queue is full the answer is 503 at
/// once. A fixed set of threads matters as much as the count: each thread
/// that ever hashed keeps its ~19 MiB in its malloc arena, so hashing on
/// tokio's blocking pool (which grows threads on demand) grew the process
/// by hundreds of MiB under a burst of logins even with a semaphore.
#[derive(Debug)]
pub struct Hashing {
    jobs: std::sync::mpsc::SyncSender<Job>,
}

type Job = Box<dyn FnOnce(&mut orderflow_auth::Hasher) + Send>;

impl Hashing {
    /// Starts the workers; they end when this is dropped.
    pub fn new(settings: &HashingSettings) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let workers = if settings.max_concurrent == 0 { cores } else { settings.max_concurrent };
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(settings.max_queued);
        let queue = std::sync::Arc::new(Mutex::new(queue));
        for n in 0..workers {
            let queue = std::sync::Arc::clone(&queue);
            let spawned = std::thread::Builder::new().name(format!("argon2-{n}")).spawn(move || {
                // One work area per thread, reused (see `Hasher`).
                let mut hasher = orderflow_auth::Hasher::default();
                loop {
                    let job = queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv();
                    let Ok(job) = job else { return };
                    // A job that panics loses its answer (its caller gets a
                    // 500), not the worker.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut hasher)));
                }
            });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a hashing thread");
            }
        }
        Self { jobs }
    }

    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut orderflow_auth::Hasher) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |hasher| {
            let _ = answer.send(work(hasher));
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(_)) => {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "BUSY",
                    "too many sign-ins at once; retry in a moment",
                )
                .with_retry_after(1));
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                return Err(ApiError::internal("hashing", "no hashing thread is running"));
            }
        }
        answered.await.map_err(|_| ApiError::internal("hashing", "the hashing job failed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let limiter = Limiter::new(Rate { per_second: 2.0, burst: 3.0 });
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.take("a", t0).expect("within the burst");
        }
        let wait = limiter.take("a", t0).expect_err("over the burst");
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        limiter.take("b", t0).expect("another key has its own bucket");
        limiter.take("a", t0 + Duration::from_millis(500)).expect("refilled by one");
        assert!(limiter.take("a", t0 + Duration::from_millis(500)).is_err());
        for _ in 0..3 {
            limiter.take("a", t0 + Duration::from_secs(60)).expect("full again, not more");
        }
        assert!(limiter.take("a", t0 + Duration::from_secs(60)).is_err());
    }

    #[tokio::test]
    async fn hashing_answers_busy_beyond_its_capacity() {
        let hashing = std::sync::Arc::new(Hashing::new(&HashingSettings { max_concurrent: 1, max_queued: 1 }));
        let (started, running) = std::sync::mpsc::channel::<()>();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let first = tokio::spawn({
            let hashing = hashing.clone();
            async move {
                hashing
                    .run(move |_| {
                        started.send(()).expect("started");
                        held.recv().expect("released");
                    })
                    .await
            }
        });
        tokio::task::spawn_blocking(move || running.recv().expect("the first runs")).await.expect("join");
        // The second waits in the queue (its one place): polled once, it is queued.
        let second = hashing.run(|_| 2);
        tokio::pin!(second);
        assert!(tokio::time::timeout(Duration::from_millis(1), &mut second).await.is_err(), "waits");
        let third = hashing.run(|_| 3).await.expect_err("the queue is full");
        assert_eq!((third.status, third.retry_after), (StatusCode::SERVICE_UNAVAILABLE, Some(1)));
        release.send(()).expect("release");
        first.await.expect("join").expect("ran");
        assert_eq!(second.await.expect("ran"), 2);
        assert_eq!(hashing.run(|_| 4).await.expect("room again"), 4);
    }
}
