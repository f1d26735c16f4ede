//! The whole system in one test: registry, user service, projector and
//! ingress (and, for the tests that start it, the audit log), each on a
//! fresh database, all on one unique topic prefix.

use std::sync::Arc;
use std::time::Duration;

use orderflow_config::{
    ConsumerSettings, DatabaseSettings, Domain, Environment, HttpSettings, KafkaSettings, RegistrySettings,
    ServiceSettings,
};
use orderflow_runtime::Service;
use orderflow_testkit::{eventually, fresh_database_on, http_ok};
use reqwest::{Client, Method, Response};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{RegistryHandle, spawn_registry_on};

/// One running in-process component.
#[derive(Debug)]
pub struct Component {
    pub url: String,
    /// Where its `/health/*` and `/metrics` are: `url`, except for the
    /// ingress, which serves them on an ops listener of their own.
    pub ops_url: String,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Component {
    /// Starts a graceful shutdown without waiting for it.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

async fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    (listener, url)
}

/// A `host:port` on loopback that was free a moment ago: for a process
/// of its own, whose port the test must know before it starts.
pub fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").to_string()
}

/// One component running as a binary of its own (killed when dropped).
#[derive(Debug)]
pub struct Process {
    /// Where its `/health/*` and `/metrics` are.
    pub ops_url: String,
    child: tokio::process::Child,
    config: std::path::PathBuf,
}

impl Process {
    /// Asks the process to stop (SIGTERM) and waits up to `within` for it
    /// to exit; panics if it does not, naming what it is.
    pub async fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().expect("the process is running");
        let sent = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill");
        assert!(sent.success(), "SIGTERM to {pid}");
        tokio::time::timeout(within, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit within {within:?} of SIGTERM", self.ops_url))
            .expect("wait")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_file(&self.config);
    }
}

/// The path of workspace binary `name`, built beside the test's own
/// binaries: `scripts/test` builds every one first (a bare `cargo test -p`
/// of one package does not rebuild the others').
pub fn binary(name: &str) -> std::path::PathBuf {
    let test = std::env::current_exe().expect("the test's path");
    // target/debug/deps/<test> → target/debug/<name>
    let path = test.parent().and_then(std::path::Path::parent).expect("target dir").join(name);
    assert!(path.exists(), "{} is not built: run `cargo build --workspace --bins` (scripts/test does)", path.display());
    path
}

/// Starts `binary` with `settings` (its whole settings, written to a file
/// it reads through `ORDERFLOW_CONFIG_FILE`) and `env`; returns once
/// `ops_addr` answers ready. Its logs (warnings and errors) go to the
/// test's output.
pub async fn spawn_process<T: serde::Serialize>(
    binary: &std::path::Path,
    settings: &T,
    ops_addr: &str,
    env: &[(&str, &str)],
) -> Process {
    let name = binary.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let config = std::env::temp_dir().join(format!("orderflow-{name}-{}.toml", uuid::Uuid::now_v7()));
    std::fs::write(&config, toml::to_string(settings).expect("settings as TOML")).expect("write the settings");
    let child = tokio::process::Command::new(binary)
        .env("ORDERFLOW_CONFIG_FILE", &config)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
    let process = Process { ops_url: format!("http://{ops_addr}"), child, config };
    wait_ready(&process.ops_url, &name).await;
    process
}

/// Runs domain service `S` in process until its component is stopped; it
/// panics (failing the test) if the service fails.
pub async fn spawn_service<S: Service>(settings: ServiceSettings<S::Domain>) -> Component {
    spawn_service_with(S::new(&settings), settings).await
}

/// [`spawn_service`] with a service built by the test (e.g. with a payment
/// provider of its own).
pub async fn spawn_service_with<S: Service>(service: S, settings: ServiceSettings<S::Domain>) -> Component {
    let (listener, url) = listener().await;
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        if let Err(error) = orderflow_runtime::run_service(service, settings, listener, token).await {
            panic!("{} failed: {error}", <S::Domain as Domain>::SERVICE);
        }
    });
    wait_ready(&url, <S::Domain as Domain>::SERVICE).await;
    Component { ops_url: url.clone(), url, shutdown, task }
}

/// The keeper's key service over the `users` database at `users_db`, with
/// the development key-encryption key and token (the user service's
/// defaults); its URL.
async fn serve_keys(users_db: &str) -> String {
    let pool = sqlx::PgPool::connect(users_db).await.expect("the users database");
    orderflow_keys::migrate(&pool).await.expect("the data keys table");
    let keks = orderflow_keys::Keks::from_settings(&orderflow_config::KeySettings::default().keks).expect("keks");
    let store = Arc::new(orderflow_keys::PgKeyStore::new(pool, Arc::new(keks)));
    let routes = orderflow_keys::routes(store, orderflow_config::DEVELOPMENT_KEYS_TOKEN);
    let (listener, url) = listener().await;
    tokio::spawn(async move { axum::serve(listener, routes).await });
    url
}

fn database_settings(url: &str) -> DatabaseSettings {
    DatabaseSettings { max_connections: 5, ..DatabaseSettings::at(url) }
}

#[derive(Debug)]
pub struct System {
    pub kafka: KafkaSettings,
    pub registry: RegistryHandle,
    pub users_db: String,
    pub orders_db: String,
    pub payments_db: String,
    pub inventory_db: String,
    pub readmodels_db: String,
    /// The audit log's database (the ingress reads its views).
    pub audit_db: String,
    /// The key service the order service and the projector get data keys
    /// from: the keeper's routes over the `users` database, served by the
    /// harness for the system's whole life, so it is there before (and
    /// while) any user service runs.
    pub keys_url: String,
    pub user: Option<Component>,
    pub order: Option<Component>,
    pub payment: Option<Component>,
    /// Started by the tests that need it ([`System::start_inventory_service`]).
    pub inventory: Option<Component>,
    pub projector: Option<Component>,
    pub ingress: Option<Component>,
    /// Started by the tests that need it ([`System::start_audit_log`]).
    pub audit_log: Option<Component>,
    pub api: String,
    pub http: Client,
    /// Emails that get the admin role.
    pub admins: Vec<String>,
    /// The order service's rules (a test may shorten the payment deadline
    /// before it starts the service).
    pub order_rules: orderflow_order::Rules,
    pub payment_rules: orderflow_payment::Rules,
    /// How the services run their calls to outside systems (a test may
    /// shrink the retry budget before it starts a service).
    pub effects: orderflow_config::EffectSettings,
    /// What [`System::stock`] sends catalog commands with, made once.
    catalog: tokio::sync::OnceCell<(orderflow_bus::Producer, orderflow_contracts::Codec)>,
}

pub const ADMIN_EMAIL: &str = "root@orderflow.test";

impl System {
    /// Everything, in process.
    pub async fn start() -> Self {
        let mut system = Self::start_without_user_service().await;
        system.start_user_service().await;
        system
    }

    /// Everything including the order, payment and inventory services, in process.
    pub async fn start_all() -> Self {
        let mut system = Self::start().await;
        system.start_inventory_service().await;
        system.start_order_service().await;
        system.start_payment_service().await;
        system
    }

    /// Registry, projector and ingress; the user service is the test's to
    /// start (in process, or as a process it can kill).
    pub async fn start_without_user_service() -> Self {
        Self::start_without_user_service_on(orderflow_testkit::kafka_settings()).await
    }

    /// Everything including the order and payment services, in process,
    /// on the broker `kafka` names (a test's own, which it may kill).
    pub async fn start_all_on(kafka: KafkaSettings) -> Self {
        let mut system = Self::start_without_user_service_on(kafka).await;
        system.start_user_service().await;
        system.start_inventory_service().await;
        system.start_order_service().await;
        system.start_payment_service().await;
        system
    }

    /// [`System::start_without_user_service`] on the broker `kafka` names.
    pub async fn start_without_user_service_on(kafka: KafkaSettings) -> Self {
        Self::start_without_user_service_with(kafka, &orderflow_testkit::pg_admin_url()).await
    }

    /// [`System::start_without_user_service`] on the broker `kafka` names,
    /// every database in the Postgres cluster at `pg_admin` (a test's own,
    /// which it may crash).
    pub async fn start_without_user_service_with(kafka: KafkaSettings, pg_admin: &str) -> Self {
        let mut system = Self::prepared_with(kafka, pg_admin).await;
        system.start_projector().await;
        system.start_ingress().await;
        system
    }

    /// The registry and fresh databases, no process yet: the test starts
    /// each (in process, or as a binary of its own, [`System::spawn`]).
    pub async fn prepared() -> Self {
        Self::prepared_with(orderflow_testkit::kafka_settings(), &orderflow_testkit::pg_admin_url()).await
    }

    async fn prepared_with(kafka: KafkaSettings, pg_admin: &str) -> Self {
        orderflow_testkit::init_tracing();
        let registry = spawn_registry_on(fresh_database_on(pg_admin, "registry").await).await;
        let users_db = fresh_database_on(pg_admin, "users").await;
        let orders_db = fresh_database_on(pg_admin, "orders").await;
        let payments_db = fresh_database_on(pg_admin, "payments").await;
        let inventory_db = fresh_database_on(pg_admin, "inventory").await;
        let readmodels_db = fresh_database_on(pg_admin, "readmodels").await;
        let audit_db = fresh_database_on(pg_admin, "audit").await;
        let keys_url = serve_keys(&users_db).await;
        Self {
            kafka,
            registry,
            users_db,
            orders_db,
            payments_db,
            inventory_db,
            readmodels_db,
            audit_db,
            keys_url,
            user: None,
            order: None,
            payment: None,
            inventory: None,
            projector: None,
            ingress: None,
            audit_log: None,
            api: String::new(),
            http: Client::builder().timeout(Duration::from_secs(60)).build().expect("client"),
            admins: vec![ADMIN_EMAIL.into()],
            order_rules: orderflow_order::Rules::default(),
            payment_rules: orderflow_payment::Rules::default(),
            effects: Self::test_effects(),
            catalog: tokio::sync::OnceCell::new(),
        }
    }

    /// The kit's effect settings with test-sized delays: a failed call is
    /// tried again within tens of milliseconds, not seconds.
    pub fn test_effects() -> orderflow_config::EffectSettings {
        orderflow_config::EffectSettings {
            base_backoff_ms: 20,
            max_backoff_ms: 200,
            timeout_ms: 5_000,
            ..Default::default()
        }
    }

    /// The settings of a domain service of this system.
    pub fn service_settings<D: Domain>(&self, database: &str, domain: D) -> ServiceSettings<D> {
        ServiceSettings {
            environment: Environment::Development,
            http: HttpSettings { addr: "127.0.0.1:0".into() },
            database: database_settings(database),
            kafka: KafkaSettings { client_id: D::SERVICE.into(), ..self.kafka.clone() },
            registry: RegistrySettings { url: self.registry.url.clone() },
            consumer: ConsumerSettings::new(format!("{}{}", self.kafka.topic_prefix, D::SERVICE)),
            relay: orderflow_config::RelaySettings::default(),
            effects: self.effects.clone(),
            telemetry: orderflow_config::TelemetrySettings::default(),
            keys: self.key_settings(),
            domain,
        }
    }

    /// Every database of the system, by its name (`users`, `orders`, ...).
    pub fn databases(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("users", &self.users_db),
            ("orders", &self.orders_db),
            ("payments", &self.payments_db),
            ("inventory", &self.inventory_db),
            ("readmodels", &self.readmodels_db),
            ("audit", &self.audit_db),
        ]
    }

    /// The data-key settings of every process of this system.
    pub fn key_settings(&self) -> orderflow_config::KeySettings {
        orderflow_config::KeySettings { url: self.keys_url.clone(), ..Default::default() }
    }

    pub fn user_settings(&self) -> orderflow_user::Settings {
        self.service_settings(&self.users_db, orderflow_user::Rules { bootstrap_admins: self.admins.clone() })
    }

    pub fn order_settings(&self) -> orderflow_order::Settings {
        self.service_settings(&self.orders_db, self.order_rules.clone())
    }

    pub fn payment_settings(&self) -> orderflow_payment::Settings {
        self.service_settings(&self.payments_db, self.payment_rules.clone())
    }

    pub fn inventory_settings(&self) -> orderflow_inventory::Settings {
        self.service_settings(&self.inventory_db, orderflow_inventory::Rules::default())
    }

    /// The environment that makes a domain service's binary join this
    /// system with `settings`, plus its `ORDERFLOW_DOMAIN__*` variables.
    pub fn service_env<D: Domain>(&self, s: ServiceSettings<D>, domain: &[(&str, String)]) -> Vec<(String, String)> {
        let mut env = vec![
            ("ORDERFLOW_ENVIRONMENT".into(), "development".into()),
            ("ORDERFLOW_HTTP__ADDR".into(), "127.0.0.1:0".into()),
            ("ORDERFLOW_DATABASE__URL".into(), s.database.url),
            ("ORDERFLOW_DATABASE__MAX_CONNECTIONS".into(), s.database.max_connections.to_string()),
            ("ORDERFLOW_KAFKA__BROKERS".into(), s.kafka.brokers),
            ("ORDERFLOW_KAFKA__TOPIC_PREFIX".into(), s.kafka.topic_prefix),
            ("ORDERFLOW_KAFKA__REPLICATION_FACTOR".into(), s.kafka.replication_factor.to_string()),
            ("ORDERFLOW_KAFKA__MIN_INSYNC_REPLICAS".into(), s.kafka.min_insync_replicas.to_string()),
            ("ORDERFLOW_KAFKA__SESSION_TIMEOUT_MS".into(), s.kafka.session_timeout_ms.to_string()),
            ("ORDERFLOW_KAFKA__MAX_POLL_INTERVAL_MS".into(), s.kafka.max_poll_interval_ms.to_string()),
            ("ORDERFLOW_KAFKA__FETCH_WAIT_MAX_MS".into(), s.kafka.fetch_wait_max_ms.to_string()),
            ("ORDERFLOW_KAFKA__HEARTBEAT_INTERVAL_MS".into(), s.kafka.heartbeat_interval_ms.to_string()),
            ("ORDERFLOW_REGISTRY__URL".into(), s.registry.url),
            ("ORDERFLOW_KEYS__URL".into(), s.keys.url),
            ("ORDERFLOW_CONSUMER__GROUP".into(), s.consumer.group),
            ("ORDERFLOW_EFFECTS__MAX_ATTEMPTS".into(), s.effects.max_attempts.to_string()),
            ("ORDERFLOW_EFFECTS__BASE_BACKOFF_MS".into(), s.effects.base_backoff_ms.to_string()),
            ("ORDERFLOW_EFFECTS__MAX_BACKOFF_MS".into(), s.effects.max_backoff_ms.to_string()),
        ];
        env.extend(s.kafka.properties.iter().map(|(name, value)| {
            (format!("ORDERFLOW_KAFKA__PROPERTIES__{}", name.replace('.', "_").to_uppercase()), value.clone())
        }));
        env.extend(domain.iter().map(|(name, value)| (format!("ORDERFLOW_DOMAIN__{name}"), value.clone())));
        env
    }

    /// The environment that makes the `user-service` binary join this system.
    pub fn user_service_env(&self) -> Vec<(String, String)> {
        self.service_env(self.user_settings(), &[("BOOTSTRAP_ADMINS", format!("[{}]", self.admins.join(",")))])
    }

    /// The environment that makes the `order-service` binary join this system.
    pub fn order_service_env(&self) -> Vec<(String, String)> {
        let r = &self.order_rules;
        self.service_env(
            self.order_settings(),
            &[
                ("PAYMENT_DEADLINE_SECS", r.payment_deadline_secs.to_string()),
                ("DEADLINE_CHECK_MS", r.deadline_check_ms.to_string()),
                ("CUSTOMER_GRACE_SECS", r.customer_grace_secs.to_string()),
            ],
        )
    }

    /// The environment that makes the `payment-service` binary join this system.
    pub fn payment_service_env(&self) -> Vec<(String, String)> {
        self.service_env(self.payment_settings(), &[("DECLINE_ABOVE", self.payment_rules.decline_above.to_string())])
    }

    pub async fn start_user_service(&mut self) {
        self.user = Some(spawn_service::<orderflow_user::UserService>(self.user_settings()).await);
    }

    pub async fn start_order_service(&mut self) {
        self.order = Some(spawn_service::<orderflow_order::OrderService>(self.order_settings()).await);
    }

    pub async fn start_inventory_service(&mut self) {
        self.inventory = Some(spawn_service::<orderflow_inventory::InventoryService>(self.inventory_settings()).await);
    }

    /// The environment that makes the `inventory-service` binary join this system.
    pub fn inventory_service_env(&self) -> Vec<(String, String)> {
        self.service_env(self.inventory_settings(), &[])
    }

    pub async fn start_payment_service(&mut self) {
        self.payment = Some(spawn_service::<orderflow_payment::PaymentService>(self.payment_settings()).await);
    }

    /// The payment service with a provider of the test's.
    pub async fn start_payment_service_with(
        &mut self,
        provider: Arc<dyn orderflow_payment::provider::PaymentProvider>,
    ) {
        let service = orderflow_payment::PaymentService::with_provider(provider);
        self.payment = Some(spawn_service_with(service, self.payment_settings()).await);
    }

    pub fn projector_settings(&self) -> orderflow_projector::Settings {
        orderflow_projector::Settings {
            environment: Environment::Development,
            http: HttpSettings { addr: "127.0.0.1:0".into() },
            database: database_settings(&self.readmodels_db),
            kafka: self.kafka.clone(),
            registry: RegistrySettings { url: self.registry.url.clone() },
            keys: self.key_settings(),
            ..orderflow_projector::Settings::default()
        }
    }

    pub async fn start_projector(&mut self) {
        let (listener, url) = listener().await;
        let settings = self.projector_settings();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move {
            if let Err(error) = orderflow_projector::run(settings, listener, token).await {
                panic!("projector failed: {error}");
            }
        });
        wait_ready(&url, "the projector").await;
        // The views exist once the projector is active.
        let pool = sqlx::PgPool::connect(&self.readmodels_db).await.expect("readmodels");
        eventually("the read-model views exist", Duration::from_secs(30), || {
            let pool = pool.clone();
            async move { sqlx::query("SELECT 1 FROM rm.users LIMIT 1").execute(&pool).await.is_ok() }
        })
        .await;
        self.projector = Some(Component { ops_url: url.clone(), url, shutdown, task });
    }

    /// The settings the ingress of this system runs with.
    pub fn ingress_settings(&self) -> orderflow_ingress::Settings {
        orderflow_ingress::Settings {
            environment: Environment::Development,
            http: HttpSettings { addr: "127.0.0.1:0".into() },
            ops: HttpSettings { addr: "127.0.0.1:0".into() },
            database: database_settings(&self.readmodels_db),
            audit_database: database_settings(&self.audit_db),
            kafka: self.kafka.clone(),
            registry: RegistrySettings { url: self.registry.url.clone() },
            // Off: a test that reads the bus figures turns it on
            // (`restart_ingress_with`), the others spare the broker.
            monitor: orderflow_ingress::monitor::MonitorSettings {
                interval_secs: 0,
                group_prefix: self.kafka.topic_prefix.clone(),
                processes: Vec::new(),
            },
            // The console as `scripts/test` built it (none: `/console` says so).
            console: orderflow_ingress::console::ConsoleSettings {
                dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../../console/dist").into(),
            },
            ..orderflow_ingress::Settings::default()
        }
    }

    pub async fn start_ingress(&mut self) {
        self.start_ingress_with(self.ingress_settings()).await;
    }

    /// Stops the ingress and starts it again with `change`d settings.
    pub async fn restart_ingress_with(&mut self, change: impl FnOnce(&mut orderflow_ingress::Settings)) {
        if let Some(ingress) = self.ingress.take() {
            ingress.stop().await;
        }
        let mut settings = self.ingress_settings();
        change(&mut settings);
        self.start_ingress_with(settings).await;
    }

    pub async fn start_ingress_with(&mut self, settings: orderflow_ingress::Settings) {
        let (api, url) = listener().await;
        let (ops, ops_url) = listener().await;
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move {
            let listeners = orderflow_ingress::Listeners { api, ops };
            if let Err(error) = orderflow_ingress::run(settings, listeners, token).await {
                panic!("ingress failed: {error}");
            }
        });
        // Its readiness is on the ops listener, not the API's port.
        wait_ready(&ops_url, "the ingress").await;
        self.api = url.clone();
        self.ingress = Some(Component { url, ops_url, shutdown, task });
    }

    pub fn audit_log_settings(&self) -> orderflow_audit_log::Settings {
        orderflow_audit_log::Settings {
            environment: Environment::Development,
            http: HttpSettings { addr: "127.0.0.1:0".into() },
            database: database_settings(&self.audit_db),
            kafka: KafkaSettings { client_id: "audit-log".into(), ..self.kafka.clone() },
            registry: RegistrySettings { url: self.registry.url.clone() },
            ..orderflow_audit_log::Settings::default()
        }
    }

    /// The environment that makes the `audit-log` binary join this system.
    pub fn audit_log_env(&self) -> Vec<(String, String)> {
        let s = self.audit_log_settings();
        let mut env: Vec<(String, String)> = self
            .user_service_env()
            .into_iter()
            .filter(|(k, _)| k.starts_with("ORDERFLOW_KAFKA__") || k == "ORDERFLOW_REGISTRY__URL")
            .collect();
        env.extend([
            ("ORDERFLOW_ENVIRONMENT".into(), "development".into()),
            ("ORDERFLOW_HTTP__ADDR".into(), "127.0.0.1:0".into()),
            ("ORDERFLOW_DATABASE__URL".into(), s.database.url),
            ("ORDERFLOW_DATABASE__MAX_CONNECTIONS".into(), s.database.max_connections.to_string()),
            ("ORDERFLOW_KAFKA__CLIENT_ID".into(), s.kafka.client_id),
            ("ORDERFLOW_DOMAIN__CHECKPOINT_EVERY".into(), s.domain.checkpoint_every.to_string()),
        ]);
        env
    }

    /// Starts the audit log in process with `settings` (see
    /// [`System::audit_log_settings`]); ready once its views exist.
    pub async fn start_audit_log_with(&mut self, settings: orderflow_audit_log::Settings) {
        let (listener, url) = listener().await;
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move {
            if let Err(error) = orderflow_audit_log::run(settings, listener, token).await {
                panic!("audit log failed: {error}");
            }
        });
        wait_ready(&url, "the audit log").await;
        self.wait_for_audit_views().await;
        self.audit_log = Some(Component { ops_url: url.clone(), url, shutdown, task });
    }

    pub async fn start_audit_log(&mut self) {
        self.start_audit_log_with(self.audit_log_settings()).await;
    }

    /// Waits until the audit log's views exist (its projection is active).
    pub async fn wait_for_audit_views(&self) {
        let pool = sqlx::PgPool::connect(&self.audit_db).await.expect("audit db");
        eventually("the audit views exist", Duration::from_secs(30), || {
            let pool = pool.clone();
            async move { sqlx::query("SELECT 1 FROM audit.records LIMIT 1").execute(&pool).await.is_ok() }
        })
        .await;
        pool.close().await;
    }

    /// A request to the ingress; returns status and JSON body.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        self.call_with(method, path, token, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.api));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        read(request.send().await.expect("request")).await
    }

    /// Registers (waiting for the outcome) and returns the response.
    pub async fn register(&self, email: &str, password: &str) -> (u16, Value) {
        let body = serde_json::json!({"email": email, "password": password, "first_name": "Test", "last_name": "User"});
        self.call_with(Method::POST, "/api/v1/users", None, Some(body), &[("prefer", "wait=20")]).await
    }

    /// Logs in; returns the token.
    pub async fn login(&self, email: &str, password: &str) -> Option<String> {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(serde_json::json!({"email": email, "password": password})),
            )
            .await;
        (status == 200).then(|| body["access_token"].as_str().expect("token").to_owned())
    }

    /// Puts each `(sku, price)` in the catalog (in `currency`, with ample
    /// stock) unless it is there, as an admin's `CreateProduct` would, and
    /// waits until the catalog read model shows them all: what an order for
    /// them needs to be held by the inventory.
    pub async fn stock(&self, products: &[(String, i64)], currency: &str) {
        let readmodels = sqlx::PgPool::connect(&self.readmodels_db).await.expect("readmodels");
        let skus: Vec<&str> = products.iter().map(|(sku, _)| sku.as_str()).collect();
        let known: Vec<String> = sqlx::query_scalar("SELECT sku FROM rm.products WHERE sku = ANY($1)")
            .bind(&skus)
            .fetch_all(&readmodels)
            .await
            .unwrap_or_default();
        let missing: Vec<&(String, i64)> = products.iter().filter(|(sku, _)| !known.contains(sku)).collect();
        if !missing.is_empty() {
            let (producer, codec) = self
                .catalog
                .get_or_init(|| async {
                    let producer = orderflow_bus::Producer::new(&self.kafka).expect("producer");
                    (producer, orderflow_contracts::Codec::new(&self.registry.url))
                })
                .await;
            let topic = self.topic(orderflow_contracts::inventory::COMMANDS.name);
            for (sku, price) in missing {
                let command = orderflow_contracts::inventory::CreateProduct {
                    sku: sku.clone(),
                    name: format!("Product {sku}"),
                    description: String::new(),
                    price: *price,
                    currency: currency.to_owned(),
                    stock: 1_000_000,
                };
                let payload = codec.encode(&command).await.expect("encode");
                let headers = orderflow_bus::Headers::new_root("CreateProduct", "system").to_pairs();
                producer.send(&topic, sku, &payload, &headers).await.expect("send");
            }
        }
        eventually("the catalog has the products", Duration::from_secs(60), || {
            let (readmodels, skus) = (readmodels.clone(), skus.clone());
            async move {
                sqlx::query_scalar::<_, i64>("SELECT count(*) FROM rm.products WHERE sku = ANY($1)")
                    .bind(&skus)
                    .fetch_one(&readmodels)
                    .await
                    .is_ok_and(|n| n as usize >= skus.iter().collect::<std::collections::HashSet<_>>().len())
            }
        })
        .await;
    }

    /// The ingress's ops listener (`/health/*`, `/metrics`).
    pub fn ops(&self) -> &str {
        self.ingress.as_ref().map_or("", |i| i.ops_url.as_str())
    }

    pub fn topic(&self, name: &str) -> String {
        self.kafka.topic(name)
    }

    pub async fn stop(mut self) {
        let components = [
            self.ingress.take(),
            self.user.take(),
            self.order.take(),
            self.payment.take(),
            self.inventory.take(),
            self.projector.take(),
            self.audit_log.take(),
        ];
        for component in components.into_iter().flatten() {
            component.stop().await;
        }
        self.registry.stop().await;
    }
}

async fn wait_ready(url: &str, what: &str) {
    let probe = format!("{url}/health/ready");
    eventually(&format!("{what} is ready"), Duration::from_secs(60), || {
        let probe = probe.clone();
        async move { http_ok(&probe).await }
    })
    .await;
}

pub async fn read(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}
