//! Subscriptions: an order's state pushed as the projector commits each
//! change (`crate::live`), never polled.
//!
//! `orderUpdated(id)` answers the order as it is, then each change of it;
//! `myOrders` each change of any of the caller's orders (new ones too).
//! A change is an order whose view differs from the last one pushed:
//! status, version, payment or stock. A subscription ends with the
//! connection, or when the process stops.
//!
//! The token that opened it keeps being checked as REST checks a
//! request's: before each push, every [`RECHECK`] while nothing changes,
//! and when it expires. A token revoked since (a logout, a password
//! change, a deactivation), expired, or whose holder may no longer see the
//! order, ends the subscription with an error that says why.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::{Context, Subscription as SubscriptionObject};
use axum::http::Method;
use chrono::{DateTime, Utc};
use futures::Stream;
use sqlx::PgPool;
use uuid::Uuid;

use super::context::{Loads, Viewer, api_error, db_error};
use super::types::{Order, expect_orders, visible};
use crate::AppState;
use crate::error::ApiError;
use crate::live::{Change, Key, Watch};
use crate::routes::orders::{self as rest_orders, COLUMNS as ORDER_COLUMNS};

#[derive(Debug)]
pub struct Subscription;

/// What makes an order's view different to a subscriber.
type Fingerprint = (String, i64, Option<String>, Option<i64>, Option<i64>, Option<String>, Option<DateTime<Utc>>);

fn fingerprint(o: &rest_orders::Order) -> Fingerprint {
    (
        o.status.clone(),
        o.version,
        o.payment_status.clone(),
        o.payment_captured,
        o.payment_refunded,
        o.stock_state.clone(),
        o.payment_updated_at,
    )
}

/// How many of a customer's newest orders `myOrders` re-reads after it
/// may have missed changes.
const RECENT: i64 = 50;

/// How often a quiet subscription checks that its token still counts.
const RECHECK: std::time::Duration = std::time::Duration::from_secs(10);

struct Following {
    /// The caller, as of the last check of its token.
    viewer: Viewer,
    state: AppState,
    /// Ended (its last item was why): nothing more.
    ended: bool,
    watch: Watch,
    loads: Arc<Loads>,
    /// What was pushed (or seen at the start) of each order.
    seen: HashMap<Uuid, Fingerprint>,
    /// Orders changed and not pushed yet.
    ready: Vec<rest_orders::Order>,
    customer: Option<Uuid>,
}

impl Following {
    /// The next order to push: one changed since it was last pushed.
    async fn next(&mut self) -> Option<Result<Order, async_graphql::Error>> {
        if self.ended {
            return None;
        }
        loop {
            if let Some(order) = self.ready.pop() {
                if let Err(error) = self.recheck(Some(&order)).await {
                    self.ended = true;
                    return Some(Err(error));
                }
                // The fields of this event's order are read afresh.
                self.loads.forget().await;
                return Some(Ok(expect_orders(&self.loads, vec![Order(order)]).remove(0)));
            }
            let expires = self.viewer.claims.as_ref().map_or(i64::MAX, |c| c.exp);
            let until_expiry = std::time::Duration::from_secs((expires - Utc::now().timestamp()).max(0) as u64);
            let change = tokio::select! {
                _ = self.state.waiter.stopping().cancelled() => return None,
                change = self.watch.next() => change,
                _ = tokio::time::sleep(RECHECK.min(until_expiry)) => {
                    if let Err(error) = self.recheck(None).await {
                        self.ended = true;
                        return Some(Err(error));
                    }
                    continue;
                }
            };
            match self.changed(change).await {
                Ok(orders) => self.ready = orders,
                Err(error) => return Some(Err(db_error(error))),
            }
        }
    }

    /// Whether the caller's token still counts (not expired, not revoked:
    /// the roles its holder has now) and, with `order`, whether it may see
    /// that order.
    async fn recheck(&mut self, order: Option<&rest_orders::Order>) -> Result<(), async_graphql::Error> {
        if let Some(claims) = self.viewer.claims.clone() {
            if claims.exp <= Utc::now().timestamp() {
                return Err(api_error(ApiError::unauthorized("the token expired; subscribe again with a fresh one")));
            }
            let state = &self.state;
            let checked = state.revocations.check(&state.pool, &state.service_clients, claims).await;
            self.viewer.claims = Some(checked.map_err(api_error)?);
        }
        match order {
            Some(order) if !visible(&self.viewer, order) => {
                Err(api_error(ApiError::forbidden("this order belongs to another user")))
            }
            _ => Ok(()),
        }
    }

    /// The orders among `change` whose view differs from what was pushed.
    async fn changed(&mut self, change: Change) -> Result<Vec<rest_orders::Order>, sqlx::Error> {
        let rows: Vec<rest_orders::Order> = match (change, self.customer) {
            (Change::Order(id), customer) => rest_orders::find(&self.state.pool, id)
                .await?
                .into_iter()
                .filter(|o| customer.is_none_or(|c| o.customer_id == c))
                .collect(),
            (Change::Everything, Some(customer)) => recent(&self.state.pool, customer).await?,
            (Change::Everything, None) => {
                let ids: Vec<Uuid> = self.seen.keys().copied().collect();
                let mut rows = Vec::new();
                for id in ids {
                    rows.extend(rest_orders::find(&self.state.pool, id).await?);
                }
                rows
            }
        };
        let mut out = Vec::new();
        for row in rows {
            let print = fingerprint(&row);
            if self.seen.get(&row.id) != Some(&print) {
                self.seen.insert(row.id, print);
                out.push(row);
            }
        }
        // Pushed oldest change first (popped from the end).
        out.sort_by_key(|o| std::cmp::Reverse(o.updated_at));
        Ok(out)
    }
}

async fn recent(pool: &PgPool, customer: Uuid) -> Result<Vec<rest_orders::Order>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM rm.order_details WHERE customer_id = $1 ORDER BY placed_at DESC, id DESC LIMIT $2"
    )))
    .bind(customer)
    .bind(RECENT)
    .fetch_all(pool)
    .await
}

fn stream(following: Following) -> impl Stream<Item = Result<Order, async_graphql::Error>> {
    futures::stream::unfold(following, |mut following| async move {
        let item = following.next().await?;
        Some((item, following))
    })
}

#[SubscriptionObject]
impl Subscription {
    /// The order now, then each change of it as the projector commits it
    /// (its customer's, or staff's).
    async fn order_updated(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
    ) -> async_graphql::Result<impl Stream<Item = Result<Order, async_graphql::Error>> + use<>> {
        let viewer = ctx.data::<Viewer>()?;
        viewer.signed_in(Method::GET, "/orders/{id}")?;
        let state = ctx.data::<AppState>()?;
        // Watching before the first read: a change in between is not lost.
        let watch = state.waiter.live().watch(Key::Order(id));
        let order = rest_orders::find(&state.pool, id)
            .await
            .map_err(db_error)?
            .ok_or_else(|| api_error(ApiError::not_found(format!("no order {id}"))))?;
        if !visible(viewer, &order) {
            return Err(api_error(ApiError::forbidden("this order belongs to another user")));
        }
        let mut following = self::following(ctx, watch, None)?;
        following.seen.insert(order.id, fingerprint(&order));
        following.ready.push(order);
        Ok(stream(following))
    }

    /// Each change of any of the caller's orders, new ones included, as the
    /// projector commits it.
    async fn my_orders(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = Result<Order, async_graphql::Error>> + use<>> {
        let viewer = ctx.data::<Viewer>()?;
        viewer.signed_in(Method::GET, "/orders/mine")?;
        let me = viewer.user_id().ok_or_else(|| api_error(ApiError::forbidden("a service token has no own orders")))?;
        let state = ctx.data::<AppState>()?;
        let watch = state.waiter.live().watch(Key::Customer(me));
        let mut following = self::following(ctx, watch, Some(me))?;
        // What the caller's orders are now is not a change.
        for order in recent(&state.pool, me).await.map_err(db_error)? {
            following.seen.insert(order.id, fingerprint(&order));
        }
        Ok(stream(following))
    }
}

fn following(ctx: &Context<'_>, watch: Watch, customer: Option<Uuid>) -> async_graphql::Result<Following> {
    let state = ctx.data::<AppState>()?;
    Ok(Following {
        viewer: ctx.data::<Viewer>()?.clone(),
        state: state.clone(),
        ended: false,
        watch,
        loads: Arc::clone(ctx.data::<Arc<Loads>>()?),
        seen: HashMap::new(),
        ready: Vec::new(),
        customer,
    })
}
