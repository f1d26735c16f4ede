//! What every resolver of one request shares: who asks ([`Viewer`]), the
//! databases, counted ([`Reads`]), and the batches of nested fields
//! ([`Loads`]).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_graphql::{Context, ErrorExtensions};
use axum::http::Method;
use orderflow_auth::{Claims, Role};
use sqlx::PgPool;
use uuid::Uuid;

use crate::access::{Allow, has_role, rule_for};
use crate::error::ApiError;
use crate::extract::{is_owner_or_staff, is_self_or_admin};

/// The caller: a checked token (revocations included), or nobody.
#[derive(Debug, Clone, Default)]
pub struct Viewer {
    pub claims: Option<Claims>,
}

impl Viewer {
    /// Applies the REST route table's rule of `method path` (as routed
    /// under `/api/v1`): the same roles for the same data, whichever API
    /// asks. The claims when a token was needed and fits.
    pub fn allowed(&self, method: Method, path: &str) -> async_graphql::Result<Option<&Claims>> {
        let Some(rule) = rule_for(&method, path) else {
            return Err(api_error(ApiError::internal("access", format!("{method} {path} has no access rule"))));
        };
        let Allow::Roles(roles) = rule.allow else { return Ok(self.claims.as_ref()) };
        let claims = self
            .claims
            .as_ref()
            .ok_or_else(|| api_error(ApiError::unauthorized("missing Authorization: Bearer <token>")))?;
        has_role(roles, claims).map_err(api_error)?;
        Ok(Some(claims))
    }

    /// As [`Viewer::allowed`], for a rule that always needs a token.
    pub fn signed_in(&self, method: Method, path: &str) -> async_graphql::Result<&Claims> {
        self.allowed(method, path)?
            .ok_or_else(|| api_error(ApiError::unauthorized("missing Authorization: Bearer <token>")))
    }

    /// Whether the caller may see what belongs to `customer`: their own,
    /// or staff's (an admin, a service).
    pub fn sees(&self, customer: Uuid) -> bool {
        self.claims.as_ref().is_some_and(|c| is_owner_or_staff(c, customer))
    }

    /// Whether the caller may see user `id`'s profile: themselves, or an
    /// admin (`GET /users/{id}`: a service reads orders, not people).
    pub fn sees_person(&self, id: Uuid) -> bool {
        self.claims.as_ref().is_some_and(|c| is_self_or_admin(c, id))
    }

    /// An admin or a service.
    pub fn is_staff(&self) -> bool {
        self.claims.as_ref().is_some_and(is_staff)
    }

    /// The caller's own id, for a user.
    pub fn user_id(&self) -> Option<Uuid> {
        self.claims.as_ref().and_then(|c| Uuid::parse_str(&c.sub).ok())
    }
}

fn is_staff(claims: &Claims) -> bool {
    claims.is_admin() || claims.has(Role::Service)
}

/// An API error as a GraphQL error: its message, and the REST answer's
/// `code`, HTTP `status` and `details` in the extensions.
pub fn api_error(error: ApiError) -> async_graphql::Error {
    let ApiError { status, code, message, details, .. } = error;
    async_graphql::Error::new(message).extend_with(|_, e| {
        e.set("code", code.as_ref());
        e.set("status", status.as_u16());
        if !details.is_null()
            && let Ok(value) = async_graphql::Value::from_json(details.clone())
        {
            e.set("details", value);
        }
    })
}

/// A database error, as the REST API reports one (503, logged).
pub fn db_error(error: sqlx::Error) -> async_graphql::Error {
    api_error(ApiError::from(error))
}

/// The read databases, counting every statement sent for this request:
/// the answer's `extensions.sqlStatements`, and
/// `orderflow_graphql_sql_statements`.
#[derive(Debug)]
pub struct Reads {
    readmodels: PgPool,
    audit: PgPool,
    statements: AtomicUsize,
}

impl Reads {
    pub fn new(readmodels: PgPool, audit: PgPool) -> Self {
        Self { readmodels, audit, statements: AtomicUsize::new(0) }
    }

    /// The readmodels database, for one statement.
    pub fn readmodels(&self) -> &PgPool {
        self.statements.fetch_add(1, Ordering::Relaxed);
        &self.readmodels
    }

    /// The audit database, for one statement.
    pub fn audit(&self) -> &PgPool {
        self.statements.fetch_add(1, Ordering::Relaxed);
        &self.audit
    }

    pub fn statements(&self) -> usize {
        self.statements.load(Ordering::Relaxed)
    }
}

/// One nested field's values for a whole request, loaded in one query.
///
/// Whoever hands out objects (a list, a page, one object) says which keys
/// their nested field may ask for ([`Batch::expect`]); the first field
/// that asks loads all of them at once, and the others find theirs loaded.
/// No timer decides what goes into a batch, so the number of statements
/// depends on the fields asked for, never on the rows or on timing.
#[derive(Debug)]
pub struct Batch<K, V> {
    expected: std::sync::Mutex<HashSet<K>>,
    loaded: tokio::sync::Mutex<HashMap<K, Option<V>>>,
}

impl<K, V> Default for Batch<K, V> {
    fn default() -> Self {
        Self { expected: std::sync::Mutex::default(), loaded: tokio::sync::Mutex::default() }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Batch<K, V> {
    /// Keys a nested field will probably ask for.
    pub fn expect(&self, keys: impl IntoIterator<Item = K>) {
        self.expected.lock().unwrap_or_else(|p| p.into_inner()).extend(keys);
    }

    /// The value of `key`, loading it with every expected key not loaded
    /// yet (`fetch` gets the keys and answers what exists).
    pub async fn get<F, Fut>(&self, key: K, fetch: F) -> async_graphql::Result<Option<V>>
    where
        F: FnOnce(Vec<K>) -> Fut,
        Fut: Future<Output = Result<HashMap<K, V>, sqlx::Error>>,
    {
        let mut loaded = self.loaded.lock().await;
        if let Some(found) = loaded.get(&key) {
            return Ok(found.clone());
        }
        let mut keys: HashSet<K> = std::mem::take(&mut *self.expected.lock().unwrap_or_else(|p| p.into_inner()));
        keys.insert(key.clone());
        let keys: Vec<K> = keys.into_iter().filter(|k| !loaded.contains_key(k)).collect();
        let mut found = fetch(keys.clone()).await.map_err(db_error)?;
        for k in keys {
            let value = found.remove(&k);
            loaded.insert(k, value);
        }
        Ok(loaded.get(&key).cloned().flatten())
    }

    /// Forgets what was loaded (a subscription's next event reads afresh).
    pub async fn forget(&self) {
        self.loaded.lock().await.clear();
    }
}

/// The batches of one request, one per nested field.
#[derive(Debug, Default)]
pub struct Loads {
    /// `Order.customer`, `Payment.customer`: users by id.
    pub users: Batch<Uuid, crate::routes::users::User>,
    /// `Order.payment`: payments by order id.
    pub payments: Batch<Uuid, crate::routes::payments::Payment>,
    /// `Payment.order`: orders by id.
    pub orders: Batch<Uuid, crate::routes::orders::Order>,
    /// `User.orders(first)`: a user's newest orders, a batch per `first`.
    user_orders: std::sync::Mutex<UserOrders>,
    /// `Order.auditTrail`: each order's story.
    pub trails: Batch<String, Vec<(usize, orderflow_audit::Record)>>,
}

type UserOrdersBatch = Arc<Batch<Uuid, Vec<crate::routes::orders::Order>>>;

/// The users whose orders may be asked for, and a batch per page size.
#[derive(Debug, Default)]
struct UserOrders {
    expected: HashSet<Uuid>,
    by_first: HashMap<i64, UserOrdersBatch>,
}

impl Loads {
    fn user_orders_lock(&self) -> std::sync::MutexGuard<'_, UserOrders> {
        self.user_orders.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Users whose `orders` may be asked for, at any page size.
    pub fn expect_user_orders(&self, users: impl IntoIterator<Item = Uuid>) {
        let mut state = self.user_orders_lock();
        let users: Vec<Uuid> = users.into_iter().collect();
        for batch in state.by_first.values() {
            batch.expect(users.iter().copied());
        }
        state.expected.extend(users);
    }

    /// The batch of `User.orders(first)` for this `first`.
    pub fn user_orders(&self, first: i64) -> UserOrdersBatch {
        let mut state = self.user_orders_lock();
        let expected: Vec<Uuid> = state.expected.iter().copied().collect();
        Arc::clone(state.by_first.entry(first).or_insert_with(|| {
            let batch = Batch::default();
            batch.expect(expected);
            Arc::new(batch)
        }))
    }

    /// Forgets everything loaded: a subscription's next event is read anew.
    pub async fn forget(&self) {
        self.users.forget().await;
        self.payments.forget().await;
        self.orders.forget().await;
        self.trails.forget().await;
        let batches: Vec<UserOrdersBatch> = self.user_orders_lock().by_first.values().cloned().collect();
        for batch in batches {
            batch.forget().await;
        }
    }
}

/// The request's shared parts, from the context.
pub fn parts<'a>(ctx: &Context<'a>) -> async_graphql::Result<(&'a Viewer, &'a Reads, &'a Arc<Loads>)> {
    Ok((ctx.data::<Viewer>()?, ctx.data::<Arc<Reads>>()?.as_ref(), ctx.data::<Arc<Loads>>()?))
}
