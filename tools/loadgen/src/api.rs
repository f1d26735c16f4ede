//! The few ingress calls the benchmark makes, over one shared HTTP client.

use std::time::Duration;

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

/// A user the load acts as: profile updates are "self" writes.
#[derive(Debug, Clone)]
pub struct BenchUser {
    pub id: String,
    pub token: String,
}

/// What one write got back.
#[derive(Debug)]
pub enum Answer {
    /// 200/201: the outcome was in the read model within the wait.
    Settled,
    /// 202: accepted, not settled within the wait; the command to ask about.
    Accepted { command_id: Option<String> },
    /// Any other 2xx (none is expected; counted as accepted, not settled).
    OtherSuccess,
    /// A 4xx/5xx answer.
    Status(StatusCode),
    /// No answer: connect, timeout, or another transport error.
    Transport(&'static str),
}

impl Answer {
    /// The label errors are counted under.
    pub fn error_label(&self) -> Option<String> {
        match self {
            Self::Status(code) => Some(format!("http_{}", code.as_u16())),
            Self::Transport(kind) => Some((*kind).to_owned()),
            Self::Settled | Self::Accepted { .. } | Self::OtherSuccess => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Api {
    client: Client,
    base: String,
}

/// Tries of one setup request that the target refused for now.
const SETUP_RETRIES: usize = 120;

/// The widgets the orders scenario sells (`sku-0` ...), and their prices.
pub const CATALOG: u64 = 100;
pub const WIDGET_PRICE: i64 = 1250;
/// The gift wrap every order adds (`sku-gift`).
pub const GIFT_PRICE: i64 = 199;

impl Api {
    /// `base` is the ingress root (`http://127.0.0.1:28080`); `timeout`
    /// bounds every request (it must exceed the `Prefer: wait`).
    pub fn new(base: &str, timeout: Duration) -> anyhow::Result<Self> {
        let client = Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            // An open-loop generator holds one connection per request in
            // flight; keep them all for reuse rather than reconnecting.
            .pool_max_idle_per_host(usize::MAX)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?;
        Ok(Self { client, base: base.trim_end_matches('/').to_owned() })
    }

    /// Registers `count` users (`Prefer: wait=10`) and logs each in, a few at
    /// a time (argon2 makes both deliberately expensive).
    pub async fn create_users(&self, run: &str, count: usize) -> anyhow::Result<Vec<BenchUser>> {
        futures::stream::iter(0..count)
            .map(|i| self.create_user(format!("bench-{run}-{i}@example.com")))
            .buffer_unordered(8)
            .try_collect()
            .await
    }

    async fn create_user(&self, email: String) -> anyhow::Result<BenchUser> {
        const PASSWORD: &str = "bench-password-0123";
        let body = json!({"email": email, "password": PASSWORD, "first_name": "Bench", "last_name": "User"});
        let user = self
            .post_expecting("/api/v1/users", &[("prefer", "wait=10")], &body, StatusCode::CREATED)
            .await
            .with_context(|| format!("registering {email}"))?;
        let id = user["id"].as_str().context("registration answer without id")?.to_owned();
        let body = json!({"email": email, "password": PASSWORD});
        let login = self
            .post_expecting("/api/v1/auth/login", &[], &body, StatusCode::OK)
            .await
            .with_context(|| format!("logging {email} in"))?;
        let token = login["access_token"].as_str().context("login answer without access_token")?.to_owned();
        Ok(BenchUser { id, token })
    }

    /// POSTs `body` to `path` (setting up: registering, logging in) and
    /// returns the JSON answer, which must come with `expected`.
    async fn post_expecting(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
        expected: StatusCode,
    ) -> anyhow::Result<Value> {
        // Setting up is not the measurement: a limit the target enforces
        // (the dev stack's 5 logins/s per IP) or a busy answer is waited
        // out as the answer says, within a bound.
        for _ in 0..SETUP_RETRIES {
            let mut request = self.client.post(format!("{}{path}", self.base)).json(body);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let response = request.send().await?;
            let status = response.status();
            if matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE) {
                let after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1);
                tokio::time::sleep(std::time::Duration::from_secs(after.clamp(1, 10))).await;
                continue;
            }
            let bytes = response.bytes().await?;
            if status != expected {
                bail!("answered {status}: {}", String::from_utf8_lossy(&bytes));
            }
            return Ok(serde_json::from_slice(&bytes)?);
        }
        bail!("still refused (429/503) after {SETUP_RETRIES} tries")
    }

    /// `PATCH /api/v1/users/{id}` with `Prefer: wait=<wait>`.
    pub async fn update_name(&self, user: &BenchUser, first_name: &str, wait: u64) -> Answer {
        let request = self
            .client
            .patch(format!("{}/api/v1/users/{}", self.base, user.id))
            .json(&json!({"first_name": first_name}));
        self.write(request, user, wait).await
    }

    /// The admin `email` logged in (registered first, with `password`, if
    /// it is not yet): its token.
    pub async fn admin(&self, email: &str, password: &str) -> anyhow::Result<String> {
        let login = json!({"email": email, "password": password});
        if let Ok(answer) = self.post_expecting("/api/v1/auth/login", &[], &login, StatusCode::OK).await {
            return answer["access_token"].as_str().map(str::to_owned).context("login answer without access_token");
        }
        let body = json!({"email": email, "password": password, "first_name": "Bench", "last_name": "Admin"});
        self.post_expecting("/api/v1/users", &[("prefer", "wait=10")], &body, StatusCode::CREATED).await.with_context(
            || format!("registering {email} (registered with another password? pass --admin-password)"),
        )?;
        let answer = self.post_expecting("/api/v1/auth/login", &[], &login, StatusCode::OK).await?;
        answer["access_token"].as_str().map(str::to_owned).context("login answer without access_token")
    }

    /// Creates product `sku` at `price` (EUR) with more stock than any run
    /// sells, unless the catalog has it.
    pub async fn ensure_product(&self, admin: &str, sku: &str, price: i64) -> anyhow::Result<()> {
        let found = self.client.get(format!("{}/api/v1/products/{sku}", self.base)).send().await?;
        if found.status() == StatusCode::OK {
            return Ok(());
        }
        let body = json!({"sku": sku, "name": format!("Bench {sku}"), "price": price, "currency": "EUR", "stock": 1_000_000_000});
        let response = self
            .client
            .post(format!("{}/api/v1/products", self.base))
            .bearer_auth(admin)
            .header("prefer", "wait=10")
            .json(&body)
            .send()
            .await?;
        match response.status() {
            StatusCode::CREATED | StatusCode::CONFLICT => Ok(()),
            status => bail!("answered {status}: {}", response.text().await.unwrap_or_default()),
        }
    }

    /// `POST /api/v1/orders` of two lines (below any decline limit): with
    /// `Prefer: wait`, settled means the saga confirmed (or cancelled) it.
    pub async fn place_order(&self, user: &BenchUser, i: u64, wait: u64) -> Answer {
        let body = json!({
            "items": [{"product_id": format!("sku-{}", i % CATALOG), "name": "Bench widget", "quantity": 1 + i % 3, "unit_price": WIDGET_PRICE},
                      {"product_id": "sku-gift", "name": "Gift wrap", "quantity": 1, "unit_price": GIFT_PRICE}],
            "currency": "EUR",
            "shipping_address": {"name": "Bench User", "line1": "1 Load Street", "city": "Berlin", "postal_code": "10115", "country": "DE"},
        });
        let request = self.client.post(format!("{}/api/v1/orders", self.base)).json(&body);
        self.write(request, user, wait).await
    }

    /// Places one order and waits for the saga: its id (the reads scenarios'
    /// setup).
    pub async fn placed_order(&self, user: &BenchUser, i: u64) -> anyhow::Result<String> {
        let body = json!({
            "items": [{"product_id": format!("sku-{}", i % CATALOG), "quantity": 1, "unit_price": WIDGET_PRICE},
                      {"product_id": "sku-gift", "quantity": 1, "unit_price": GIFT_PRICE}],
            "currency": "EUR",
            "shipping_address": {"name": "Bench User", "line1": "1 Load Street", "city": "Berlin", "postal_code": "10115", "country": "DE"},
        });
        let auth = format!("Bearer {}", user.token);
        let answer = self
            .post_expecting(
                "/api/v1/orders",
                &[("authorization", &auth), ("prefer", "wait=30")],
                &body,
                StatusCode::CREATED,
            )
            .await?;
        answer["id"].as_str().map(str::to_owned).context("an order answer without id")
    }

    /// `GET /api/v1/orders/{id}` as its customer: the order with its
    /// customer and payment, as REST answers it.
    pub async fn read_order(&self, user: &BenchUser, order_id: &str) -> Answer {
        let request = self.client.get(format!("{}/api/v1/orders/{order_id}", self.base)).bearer_auth(&user.token);
        self.read(request, false).await
    }

    /// The same order over GraphQL, with its items, payment and customer in
    /// one request.
    pub async fn graphql_order(&self, user: &BenchUser, order_id: &str) -> Answer {
        let query = "query($id: UUID!) { order(id: $id) { id status total currency placedAt \
                     items { productId name quantity unitPrice reservation { state } } \
                     payment { id status amount captured refunded } \
                     customer { id firstName lastName email } } }";
        let request = self
            .client
            .post(format!("{}/graphql", self.base))
            .bearer_auth(&user.token)
            .json(&json!({"query": query, "variables": {"id": order_id}}));
        self.read(request, true).await
    }

    /// A read: settled on 200 (and, for GraphQL, no `errors`).
    async fn read(&self, request: reqwest::RequestBuilder, graphql: bool) -> Answer {
        let (status, body) = match exchange(request).await {
            Ok(answer) => answer,
            Err(failed) => return failed,
        };
        if status != StatusCode::OK {
            return Answer::Status(status);
        }
        if graphql && serde_json::from_slice::<Value>(&body).map_or(true, |v| !v["errors"].is_null()) {
            return Answer::Transport("graphql_errors");
        }
        Answer::Settled
    }

    /// Sends a write as `user`, asking to wait `wait` seconds for its outcome.
    async fn write(&self, request: reqwest::RequestBuilder, user: &BenchUser, wait: u64) -> Answer {
        let request = request.bearer_auth(&user.token).header("prefer", format!("wait={wait}"));
        let (status, body) = match exchange(request).await {
            Ok(answer) => answer,
            Err(failed) => return failed,
        };
        match status {
            StatusCode::OK | StatusCode::CREATED => Answer::Settled,
            StatusCode::ACCEPTED => Answer::Accepted {
                command_id: serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v["command_id"].as_str().map(str::to_owned)),
            },
            s if s.is_success() => Answer::OtherSuccess,
            s => Answer::Status(s),
        }
    }

    pub async fn is_pending(&self, user: &BenchUser, command_id: &str) -> bool {
        let response = self
            .client
            .get(format!("{}/api/v1/commands/{command_id}", self.base))
            .bearer_auth(&user.token)
            .send()
            .await;
        let Ok(response) = response else { return true };
        if !response.status().is_success() {
            return true;
        }
        match response.bytes().await {
            Ok(body) => serde_json::from_slice::<Value>(&body).map_or(true, |v| v["status"] == "pending"),
            Err(_) => true,
        }
    }
}

/// Sends `request` and reads the whole answer; a transport failure as the
/// [`Answer`] it is counted as.
async fn exchange(request: reqwest::RequestBuilder) -> Result<(StatusCode, Vec<u8>), Answer> {
    let response = request.send().await.map_err(|e| Answer::Transport(transport_kind(&e)))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| Answer::Transport(transport_kind(&e)))?.to_vec();
    Ok((status, body))
}

fn transport_kind(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else {
        "transport"
    }
}
