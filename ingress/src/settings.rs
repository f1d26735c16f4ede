use orderflow_config::{
    ConfigError, DatabaseSettings, Environment, HttpSettings, KafkaSettings, RegistrySettings, Secret,
    TelemetrySettings, Validate,
};

/// The development signing key: public knowledge, so accepted only when
/// `environment` is `development`.
const DEVELOPMENT_SECRET: &str = "orderflow-development-secret-change-me";
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    /// The HS256 signing key, at least 32 bytes. The default is public
    /// knowledge and refused unless `environment` is `development`: set
    /// `ORDERFLOW_JWT__SECRET` everywhere else.
    pub secret: Secret,
    /// The signing key's id, in the header of every token it signs.
    #[serde(default = "default_kid")]
    pub kid: String,
    /// Other keys whose tokens are accepted, for rotation without downtime:
    /// (1) add the new key here on every replica; (2) make it `secret`/`kid`
    /// and the old one an accepted key; (3) drop the old one once
    /// `refresh_ttl_seconds` have passed (its last tokens have expired).
    /// `ORDERFLOW_JWT__ACCEPTED_KEYS='[{kid="2026-12",secret="..."}]'`.
    #[serde(default)]
    pub accepted_keys: Vec<AcceptedKey>,
    pub issuer: String,
    /// Access tokens: short-lived (10 min by default); a client renews
    /// them with its refresh token.
    pub ttl_seconds: i64,
    /// Refresh tokens (`POST /api/v1/auth/refresh`): each works once
    /// (it rotates), revoked like access tokens by a password change,
    /// deactivation or the end of its session. Also the longest lifetime
    /// a refresh token may claim (`ttl_seconds` for an access token):
    /// longer ones are refused.
    #[serde(default = "default_refresh_ttl")]
    pub refresh_ttl_seconds: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptedKey {
    pub kid: String,
    pub secret: Secret,
}

fn default_kid() -> String {
    orderflow_auth::DEFAULT_KID.to_owned()
}

fn default_refresh_ttl() -> i64 {
    7 * 24 * 3600
}

impl JwtSettings {
    /// The token issuer these settings describe.
    pub fn tokens(&self) -> orderflow_auth::Tokens {
        let others: Vec<(&str, &str)> =
            self.accepted_keys.iter().map(|k| (k.kid.as_str(), k.secret.expose())).collect();
        orderflow_auth::Tokens::with_keys(
            (&self.kid, self.secret.expose()),
            &others,
            &self.issuer,
            self.ttl_seconds,
            self.refresh_ttl_seconds,
        )
    }
}

/// A machine client that may get a `service` token with client
/// credentials (`POST /api/v1/auth/token`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceClient {
    /// Its `client_id`; the token's subject is `service:<id>`.
    pub id: String,
    /// The argon2id PHC hash of its secret (never the secret itself: the
    /// settings are read by more people and tools than the secret should
    /// be). Make one with `ingress --hash-secret` on stdin.
    pub secret_hash: String,
}

impl std::fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceClient").field("id", &self.id).field("secret_hash", &"***").finish()
    }
}

/// Which browser origins may call the API (CORS).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsSettings {
    /// Exact origins (`https://shop.example.com`, scheme, host and port
    /// only). Empty, the default: no cross-origin browser calls at all.
    /// No wildcard: a token-bearing API open to every page is not a default
    /// anyone should get by a typo.
    pub allowed_origins: Vec<String>,
    /// How long a browser may cache a preflight answer.
    pub max_age_seconds: u64,
}

impl CorsSettings {
    fn validate(&self) -> orderflow_config::Result<()> {
        for origin in &self.allowed_origins {
            let bad = |why: &str| ConfigError::invalid("cors.allowed_origins", format!("`{origin}` {why}"));
            let rest = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"))
                .ok_or_else(|| bad("must start with https:// or http://"))?;
            if rest.is_empty() || rest.contains(['/', '?', '#', '*', ' ']) {
                return Err(bad("must be scheme://host[:port], without path or wildcard"));
            }
            if axum::http::HeaderValue::from_str(origin).is_err() {
                return Err(bad("is not a valid header value"));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub environment: Environment,
    /// The public API listener.
    pub http: HttpSettings,
    /// The operators' listener: `/health/live`, `/health/ready` (with its
    /// reasons) and `/metrics`, kept off the public port so neither the
    /// internals in a readiness reason nor the metrics reach clients.
    /// Loopback by default; a pod sets `0.0.0.0:9080` for its probes.
    pub ops: HttpSettings,
    /// Machine clients with the `service` role; none by default.
    #[serde(default)]
    pub service_clients: Vec<ServiceClient>,
    /// Token buckets per client, per IP, and for logins.
    #[serde(default)]
    pub rate_limit: crate::limits::RateLimitSettings,
    /// How many argon2 hashes run at once (memory and CPU per sign-in).
    #[serde(default)]
    pub hashing: crate::limits::HashingSettings,
    /// How many requests are handled, queued and waiting at once; the rest
    /// is answered 503 at once (`crate::admission`).
    #[serde(default)]
    pub admission: crate::admission::AdmissionSettings,
    /// Cross-origin browser access: none unless origins are listed.
    #[serde(default)]
    pub cors: CorsSettings,
    /// The `readmodels` database: the views in schema `rm` (read only) and
    /// the ingress's own schema `ingress` (Idempotency-Key answers, login
    /// sessions).
    pub database: DatabaseSettings,
    /// The `audit` database (read only: the audit log's views in schema
    /// `audit`, for `/api/v1/audit`). Connected lazily: the rest of the API
    /// does not wait for it.
    pub audit_database: DatabaseSettings,
    pub kafka: KafkaSettings,
    pub registry: RegistrySettings,
    pub jwt: JwtSettings,
    /// The most a client may ask to wait with `Prefer: wait=N`.
    pub max_wait_seconds: u64,
    /// Largest request body accepted: at least the largest valid order
    /// ([`orderflow_contracts::orders::MAX_JSON_BYTES`]), which is the
    /// default, rounded up to KiB.
    pub max_body_bytes: usize,
    /// A request taking longer than this (plus any `Prefer: wait`) is
    /// answered 503 and its work dropped.
    pub request_timeout_ms: u64,
    /// The bus monitor: consumer and projection lag, dead letters and the
    /// saga's figures on `/metrics` (`crate::monitor`).
    #[serde(default)]
    pub monitor: crate::monitor::MonitorSettings,
    /// Traces out of the process: each request a trace (or a span of the
    /// caller's), continued by every process its commands reach.
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    /// `/graphql`: depth, complexity and page size limits, introspection.
    #[serde(default)]
    pub graphql: crate::graphql::GraphqlSettings,
    /// `/console`: where its built files are.
    #[serde(default)]
    pub console: crate::console::ConsoleSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            environment: Environment::default(),
            http: HttpSettings { addr: "127.0.0.1:8080".into() },
            ops: HttpSettings { addr: "127.0.0.1:9080".into() },
            cors: CorsSettings { allowed_origins: Vec::new(), max_age_seconds: 600 },
            service_clients: Vec::new(),
            rate_limit: crate::limits::RateLimitSettings::default(),
            hashing: crate::limits::HashingSettings::default(),
            admission: crate::admission::AdmissionSettings::default(),
            // A request gives up on a pooled connection after a second (503
            // with Retry-After), rather than queueing for ten.
            database: DatabaseSettings { acquire_timeout_ms: 1_000, ..DatabaseSettings::local("readmodels") },
            audit_database: DatabaseSettings::local("audit"),
            kafka: KafkaSettings { client_id: "ingress".into(), ..KafkaSettings::default() },
            registry: RegistrySettings::default(),
            jwt: JwtSettings {
                secret: Secret::new(DEVELOPMENT_SECRET),
                kid: default_kid(),
                accepted_keys: Vec::new(),
                issuer: "orderflow".into(),
                ttl_seconds: 600,
                refresh_ttl_seconds: default_refresh_ttl(),
            },
            max_wait_seconds: 30,
            max_body_bytes: orderflow_contracts::orders::MAX_JSON_BYTES.div_ceil(1024) * 1024,
            request_timeout_ms: 10_000,
            monitor: crate::monitor::MonitorSettings::default(),
            telemetry: TelemetrySettings::default(),
            graphql: crate::graphql::GraphqlSettings::default(),
            console: crate::console::ConsoleSettings::default(),
        }
    }
}

impl Validate for Settings {
    fn validate(&self) -> orderflow_config::Result<()> {
        self.http.validate("http")?;
        self.ops.validate("ops")?;
        if self.ops.addr == self.http.addr && !self.ops.addr.ends_with(":0") {
            return Err(ConfigError::invalid("ops.addr", "must differ from http.addr: the ops listener is not public"));
        }
        self.cors.validate()?;
        self.graphql.validate()?;
        self.rate_limit.validate()?;
        self.admission.validate()?;
        for (i, client) in self.service_clients.iter().enumerate() {
            let field = format!("service_clients[{i}]");
            if client.id.is_empty() || !client.id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
                return Err(ConfigError::invalid(format!("{field}.id"), "must be letters, digits and -_."));
            }
            if !client.secret_hash.starts_with("$argon2id$") {
                return Err(ConfigError::invalid(
                    format!("{field}.secret_hash"),
                    "must be an argon2id hash of the secret ($argon2id$...), not the secret",
                ));
            }
            if self.service_clients[..i].iter().any(|c| c.id == client.id) {
                return Err(ConfigError::invalid(format!("{field}.id"), format!("`{}` is listed twice", client.id)));
            }
        }
        self.database.validate()?;
        self.audit_database.validate().map_err(|e| ConfigError::invalid("audit_database", e.to_string()))?;
        self.kafka.validate()?;
        self.registry.validate()?;
        self.telemetry.validate()?;
        if self.jwt.secret.expose().len() < 32 {
            return Err(ConfigError::invalid("jwt.secret", "must be at least 32 bytes"));
        }
        if self.jwt.secret.expose() == DEVELOPMENT_SECRET && self.environment != Environment::Development {
            return Err(ConfigError::invalid(
                "jwt.secret",
                "is the public development key; set ORDERFLOW_JWT__SECRET (or ORDERFLOW_ENVIRONMENT=development for a dev stack)",
            ));
        }
        if self.request_timeout_ms == 0 {
            return Err(ConfigError::invalid("request_timeout_ms", "must be at least 1"));
        }
        if self.jwt.ttl_seconds < 60 {
            return Err(ConfigError::invalid("jwt.ttl_seconds", "must be at least 60"));
        }
        if self.jwt.refresh_ttl_seconds < self.jwt.ttl_seconds {
            return Err(ConfigError::invalid("jwt.refresh_ttl_seconds", "must be at least jwt.ttl_seconds"));
        }
        let kid_ok =
            |kid: &str| !kid.is_empty() && kid.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !kid_ok(&self.jwt.kid) {
            return Err(ConfigError::invalid("jwt.kid", "must be letters, digits and -_."));
        }
        for (i, key) in self.jwt.accepted_keys.iter().enumerate() {
            let field = format!("jwt.accepted_keys[{i}]");
            if !kid_ok(&key.kid) {
                return Err(ConfigError::invalid(format!("{field}.kid"), "must be letters, digits and -_."));
            }
            if key.kid == self.jwt.kid || self.jwt.accepted_keys[..i].iter().any(|k| k.kid == key.kid) {
                return Err(ConfigError::invalid(format!("{field}.kid"), format!("`{}` is listed twice", key.kid)));
            }
            if key.secret.expose().len() < 32 {
                return Err(ConfigError::invalid(format!("{field}.secret"), "must be at least 32 bytes"));
            }
            if key.secret.expose() == DEVELOPMENT_SECRET && self.environment != Environment::Development {
                return Err(ConfigError::invalid(format!("{field}.secret"), "is the public development key"));
            }
        }
        let largest = orderflow_contracts::orders::MAX_JSON_BYTES;
        if self.max_body_bytes < largest {
            return Err(ConfigError::invalid(
                "max_body_bytes",
                format!("must be at least {largest}: the largest valid order would be refused"),
            ));
        }
        if self.max_wait_seconds > 300 {
            return Err(ConfigError::invalid("max_wait_seconds", "must be at most 300"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ops_listener_is_loopback_by_default_and_never_the_api_port() {
        let settings = Settings { environment: Environment::Development, ..Settings::default() };
        assert_eq!(settings.ops.addr, "127.0.0.1:9080");
        settings.validate().expect("defaults are valid in development");
        let same = Settings { ops: settings.http.clone(), ..settings.clone() };
        assert!(same.validate().expect_err("same address").to_string().contains("ops.addr"));
        let bad = Settings { ops: HttpSettings { addr: "nine-oh-eight-oh".into() }, ..settings };
        assert!(bad.validate().expect_err("not host:port").to_string().contains("ops.addr"));
    }

    #[test]
    fn cors_allows_exact_origins_only() {
        let with = |origins: &[&str]| Settings {
            environment: Environment::Development,
            cors: CorsSettings {
                allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
                max_age_seconds: 60,
            },
            ..Settings::default()
        };
        assert!(Settings::default().cors.allowed_origins.is_empty(), "none by default");
        with(&["https://shop.example.com", "http://localhost:3000"]).validate().expect("exact origins");
        for bad in ["*", "https://*.example.com", "shop.example.com", "https://shop.example.com/", "https://"] {
            let error = with(&[bad]).validate().expect_err(bad).to_string();
            assert!(error.contains("cors.allowed_origins"), "{bad}: {error}");
        }
    }
}
