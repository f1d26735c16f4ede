//! The HTTP edge of orderflow.
//!
//! It authenticates (JWT), validates (newtypes in [`validate`]), hashes
//! passwords, and turns each write into an Avro command on
//! `<domain>.commands` ([`commands`]); it owns no business rules and no
//! write-side tables. Queries read the projector's views (`rm.*`).
//!
//! A `202` means the command is durably in Kafka (idempotent producer,
//! `acks=all`, confirmed); `Prefer: wait=N` waits for the outcome in the
//! read model ([`waiter`]). Every error has one shape ([`error`]).
//!
//! Two listeners ([`Listeners`]): the public API (`http.addr`) and the
//! operators' port (`ops.addr`, loopback `:9080` by default) with
//! `/health/live`, `/health/ready` and `/metrics`, none of which the public
//! port serves.

pub mod access;
pub mod admission;
pub mod commands;
pub mod connection;
pub mod console;
pub mod docs;
pub mod error;
pub mod extract;
pub mod graphql;
pub mod housekeeping;
pub mod idempotency;
pub mod limits;
pub mod live;
pub mod monitor;
pub mod openapi;
pub mod request;
pub mod revocation;
pub mod routes;
pub mod security;
pub mod sessions;
pub mod settings;
pub mod status;
pub mod validate;
pub mod waiter;

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use orderflow_auth::Tokens;
use orderflow_bus::{Producer, admin};
use orderflow_config::KafkaSettings;
use orderflow_contracts::Codec;
use orderflow_runtime::Supervisor;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use settings::Settings;

use crate::error::ApiError;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    pub producer: Producer,
    pub codec: Arc<Codec>,
    /// The readmodels database.
    pub pool: PgPool,
    /// The audit database (the audit log's views, `audit.*`).
    pub audit: PgPool,
    pub tokens: Tokens,
    pub kafka: KafkaSettings,
    pub waiter: waiter::Waiter,
    pub max_wait_seconds: u64,
    /// Who may get a `service` token (`POST /api/v1/auth/token`).
    pub service_clients: Arc<[settings::ServiceClient]>,
    /// Which tokens no longer count (a deactivated user, a changed password).
    pub revocations: revocation::Revocations,
    pub limits: Arc<limits::Limits>,
    /// How much work is taken on at once; the rest is shed (503).
    pub admission: Arc<admission::Admission>,
    /// Bounds the argon2 work (and its memory) running at once.
    pub hashing: Arc<limits::Hashing>,
    /// For the idempotency layer, which reads bodies itself.
    pub max_body_bytes: usize,
    /// How long an idempotent retry waits for the first request's answer.
    pub request_timeout: std::time::Duration,
    /// The bus, read from the outside (`/metrics`, `/api/v1/admin/bus`).
    pub bus: monitor::Monitor,
}

static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    orderflow_telemetry::register(
        IntCounterVec::new(
            Opts::new("orderflow_http_requests_total", "HTTP requests, by method, route and status"),
            &["method", "route", "status"],
        )
        .expect("valid metric"),
    )
});
static LATENCY: LazyLock<HistogramVec> = LazyLock::new(|| {
    orderflow_telemetry::register(
        HistogramVec::new(
            HistogramOpts::new("orderflow_http_request_duration_seconds", "HTTP request latency, by method and route"),
            &["method", "route"],
        )
        .expect("valid metric"),
    )
});

async fn observe(request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched".to_owned(), |p| p.as_str().to_owned());
    let timer = LATENCY.with_label_values(&[&method, &route]).start_timer();
    let response = next.run(request).await;
    timer.observe_duration();
    REQUESTS.with_label_values(&[&method, &route, response.status().as_str()]).inc();
    response
}

/// Answers 503 (in the one error shape) for a request that takes longer
/// than `limit`, and drops its work.
async fn time_limit(limit: std::time::Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "TIMEOUT", "the request took too long; retry later")
            .into_response(),
    }
}

/// What shapes the public router besides the state.
#[derive(Debug, Clone)]
pub struct RouterSettings {
    pub max_body_bytes: usize,
    /// A request's time (plus the `Prefer: wait` it asked for).
    pub request_timeout: std::time::Duration,
    pub cors: settings::CorsSettings,
    pub graphql: graphql::GraphqlSettings,
    pub environment: orderflow_config::Environment,
    /// The console's files (`/console`).
    pub console: console::Files,
}

/// The REST API's routes under `/api/v1`, each behind its access rule and
/// the idempotency layer.
fn api_routes(state: &AppState) -> Router<AppState> {
    use routes::{admin, audit, auth, commands, orders, payments, products, users};
    Router::new()
        .route("/admin/bus", get(admin::bus))
        .route("/users", post(users::register).get(users::list))
        .route("/users/me", get(users::me))
        .route("/users/{id}", get(users::get).patch(users::patch).delete(users::deactivate))
        .route("/users/{id}/password", post(users::change_password))
        .route("/users/{id}/erase", post(users::erase))
        .route("/auth/login", post(auth::login))
        .route("/auth/token", post(auth::token))
        .route("/auth/refresh", post(auth::refresh))
        .route("/auth/logout", post(auth::logout))
        .route("/commands/{id}", get(commands::get))
        .route("/orders", post(orders::place).get(orders::list))
        .route("/orders/mine", get(orders::mine))
        .route("/orders/{id}", get(orders::get))
        .route("/orders/{id}/cancel", post(orders::cancel))
        .route("/orders/{id}/status", patch(orders::set_status))
        .route("/payments", get(payments::list))
        .route("/payments/mine", get(payments::mine))
        .route("/payments/{id}", get(payments::get))
        .route("/payments/by-order/{order_id}", get(payments::by_order))
        .route("/payments/{id}/refund", post(payments::refund))
        .route("/products", post(products::create).get(products::list))
        .route("/products/{sku}", get(products::get).patch(products::patch))
        .route("/products/{sku}/stock", post(products::adjust_stock))
        .merge(audit::routes())
        // Inside the access check: a key is scoped to the checked caller.
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), idempotency::idempotent))
        // Who may call each route: the one table in `access`.
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), access::authorize))
}

/// `routes` with every layer a request meets: limits, admission, request
/// id, time limit, metrics, security headers, CORS as `cors` allows.
fn layered(routes: Router<AppState>, state: &AppState, settings: &RouterSettings) -> Router {
    let limit = settings.request_timeout + std::time::Duration::from_secs(state.max_wait_seconds);
    let app = routes
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "this endpoint does not take that method",
            )
        })
        // Every query parameter and path segment is valid text, or 400.
        .layer(axum::middleware::from_fn(validate::request_target))
        .layer(axum::extract::DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(axum::middleware::from_fn(move |request, next| time_limit(limit, request, next)))
        .layer(axum::middleware::from_fn(observe))
        // Before any handler: a request over a limit sends nothing.
        .layer(axum::middleware::from_fn_with_state(state.clone(), limits::limit))
        // Sheds what exceeds capacity first, before any other work (a token
        // check included): under overload a refusal must cost next to
        // nothing (counted in orderflow_http_requests_shed_total).
        .layer(axum::middleware::from_fn_with_state(state.clone(), admission::admit))
        // Outermost: every answer (a timeout's, a 404's, a 429, a 503) has a request id.
        .layer(axum::middleware::from_fn(request::identify))
        // Around all: a body an answer left unread is drained to keep the
        // connection, or the answer closes it and says so.
        .layer(axum::middleware::from_fn(connection::close_if_body_unread));
    // Outside the request id: a preflight is answered by the CORS layer alone.
    let app = match security::cors(&settings.cors) {
        Some(layer) => app.layer(layer),
        None => app,
    };
    security::with_security_headers(app).with_state(state.clone())
}

/// The public router: the REST API, its document and Swagger UI, and
/// GraphQL, whose mutations call the REST routes (with all their layers)
/// in process. A request may take `request_timeout` plus the
/// `Prefer: wait` it asked for (at most `max_wait_seconds`).
pub fn router(state: AppState, settings: &RouterSettings) -> Router {
    let rest = Router::new()
        .nest("/api/v1", api_routes(&state))
        .route("/api/openapi.json", get(openapi::document))
        .merge(docs::router());
    let schema = graphql::schema(
        &settings.graphql,
        settings.environment,
        state.clone(),
        layered(rest.clone(), &state, settings),
    );
    layered(rest.merge(graphql::routes(schema)).merge(console::routes(settings.console.clone())), &state, settings)
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot connect to the readmodels database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("schema registry: {0}")]
    Registry(#[from] orderflow_contracts::CodecError),
    #[error("kafka: {0}")]
    Admin(#[from] orderflow_bus::admin::AdminError),
    #[error("kafka: {0}")]
    Producer(#[from] orderflow_bus::ProducerError),
    #[error("HTTP server failed: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Task(#[from] orderflow_runtime::TaskFailed),
}

/// The ingress's two listeners: the public API, and the operators' port
/// (health, metrics) that is never exposed to clients.
#[derive(Debug)]
pub struct Listeners {
    pub api: TcpListener,
    pub ops: TcpListener,
}

impl Listeners {
    /// Binds `http.addr` and `ops.addr`.
    pub async fn bind(settings: &Settings) -> std::io::Result<Self> {
        let api = TcpListener::bind(&settings.http.addr)
            .await
            .map_err(|e| bind_error("http.addr", &settings.http.addr, e))?;
        let ops =
            TcpListener::bind(&settings.ops.addr).await.map_err(|e| bind_error("ops.addr", &settings.ops.addr, e))?;
        Ok(Self { api, ops })
    }
}

fn bind_error(setting: &str, addr: &str, error: std::io::Error) -> std::io::Error {
    std::io::Error::new(error.kind(), format!("cannot listen on {addr} ({setting}): {error}"))
}

/// Serves the API on `listeners.api` and health and metrics on
/// `listeners.ops` until `shutdown`.
pub async fn run(settings: Settings, listeners: Listeners, shutdown: CancellationToken) -> Result<(), ServeError> {
    let pool = orderflow_runtime::database::connect(&settings.database).await?;
    housekeeping::prepare(&pool).await?;
    let codec = Arc::new(Codec::new(&settings.registry.url));
    codec.register_all().await?;
    admin::ensure_topics(
        &settings.kafka,
        &orderflow_contracts::topics::with_dead_letters(&orderflow_contracts::all_topics()),
    )
    .await?;
    let producer = Producer::new(&settings.kafka)?;
    let waiter = waiter::Waiter::new(pool.clone(), shutdown.clone());
    let mut supervisor = Supervisor::new(shutdown.clone());
    supervisor.spawn(
        "ingress table purge",
        housekeeping::purge_every(pool.clone(), std::time::Duration::from_secs(3600), shutdown.clone()),
    );
    // Wakes `Prefer: wait` requests.
    let listening = waiter.clone().listen(shutdown.clone());
    supervisor.spawn("command status listener", async move {
        listening.await;
        Ok::<_, std::convert::Infallible>(())
    });
    let audit = routes::audit::connect(&settings.audit_database)?;
    let bus = monitor::Monitor {
        settings: settings.monitor.clone(),
        kafka: settings.kafka.clone(),
        readmodels: pool.clone(),
        audit: audit.clone(),
    };
    let state = AppState {
        producer: producer.clone(),
        codec,
        pool: pool.clone(),
        audit,
        tokens: settings.jwt.tokens(),
        kafka: settings.kafka.clone(),
        waiter,
        max_wait_seconds: settings.max_wait_seconds,
        service_clients: settings.service_clients.clone().into(),
        revocations: revocation::Revocations::default(),
        limits: Arc::new(limits::Limits::new(&settings.rate_limit)),
        admission: Arc::new(admission::Admission::new(&settings.admission)),
        hashing: Arc::new(limits::Hashing::new(&settings.hashing)),
        max_body_bytes: settings.max_body_bytes,
        request_timeout: std::time::Duration::from_millis(settings.request_timeout_ms)
            + std::time::Duration::from_secs(settings.max_wait_seconds),
        bus,
    };
    supervisor.spawn("scheduling lag probe", Arc::clone(&state.admission).watch_lag(shutdown.clone()));
    supervisor.spawn("bus monitor", state.bus.clone().run(shutdown.clone()));
    // Ready once the projector has created the views it answers from.
    let probe = "SELECT 1 FROM rm.users LIMIT 1";
    let ready = orderflow_runtime::readiness(supervisor.health(), pool.clone(), producer.clone(), probe);
    let app = router(
        state,
        &RouterSettings {
            max_body_bytes: settings.max_body_bytes,
            request_timeout: std::time::Duration::from_millis(settings.request_timeout_ms),
            cors: settings.cors.clone(),
            graphql: settings.graphql.clone(),
            environment: settings.environment,
            console: console::Files::load(&settings.console.dir).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("reading the console in {} (console.dir): {e}", settings.console.dir),
                )
            })?,
        },
    );
    let Listeners { api, ops } = listeners;
    tracing::info!(addr = %api.local_addr()?, ops = %ops.local_addr()?, "ingress listening");
    // With the peer address: the per-IP limits need it.
    let api_shutdown = shutdown.clone();
    supervisor.spawn("api http", async move {
        axum::serve(api, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(async move { api_shutdown.cancelled().await })
            .await
    });
    supervisor
        .spawn("ops http", orderflow_telemetry::serve(ops, orderflow_telemetry::ops_router(ready), shutdown.clone()));
    let outcome = supervisor.wait().await;
    producer.flush(std::time::Duration::from_secs(5));
    pool.close().await;
    outcome?;
    Ok(())
}
