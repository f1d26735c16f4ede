pub mod admin;
pub mod audit;
pub mod auth;
pub mod commands;
pub mod orders;
pub mod payments;
pub mod products;
pub mod users;

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// The highest page number a list accepts: far beyond any real list, and
/// small enough that `(page - 1) * page_size` always fits.
pub const MAX_PAGE: i64 = 1_000_000_000;

/// Which page of a list (`page=` from 1, `page_size=` 1 to 100, 20 unless
/// given), checked.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub page: i64,
    pub page_size: i64,
}

impl Page {
    pub fn parse(page: Option<i64>, page_size: Option<i64>) -> ApiResult<Self> {
        let (page, page_size) = (page.unwrap_or(1), page_size.unwrap_or(20));
        if page < 1 {
            return Err(ApiError::bad_query("page", "must be 1 or more"));
        }
        if !(1..=100).contains(&page_size) {
            return Err(ApiError::bad_query("page_size", "must be between 1 and 100"));
        }
        // Bounded, so the offset cannot overflow (it did: a 503).
        if page > MAX_PAGE {
            return Err(ApiError::bad_query("page", format!("must be at most {MAX_PAGE}")));
        }
        Ok(Self { page, page_size })
    }

    pub fn offset(&self) -> i64 {
        (self.page - 1) * self.page_size
    }

    /// The list response `P` (one of the OpenAPI document's page types):
    /// the items and where they are in the whole list.
    pub fn respond<P: Paged>(&self, items: Vec<P::Item>, total: i64) -> Response {
        let total_pages = (total + self.page_size - 1) / self.page_size;
        Json(P::new(items, *self, total, total_pages)).into_response()
    }
}

/// A page of a list as the API answers it (`crate::openapi`'s `page!`
/// types): what the handlers return is what the document describes.
pub trait Paged: Serialize {
    type Item;
    fn new(items: Vec<Self::Item>, page: Page, total: i64, total_pages: i64) -> Self;
}

/// A list's query parameters, or 400 naming what does not fit.
pub fn list_query<T>(query: Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>) -> ApiResult<T> {
    query.map(|axum::extract::Query(q)| q).map_err(|e| ApiError::bad_query("query", e.body_text()))
}

/// Whose list `.../mine` shows: the caller's. A `user` filter there is
/// refused rather than ignored.
pub fn own_list(claims: &orderflow_auth::Claims, user: Option<&str>, route: &str) -> ApiResult<Uuid> {
    if user.is_some() {
        return Err(ApiError::bad_query("user", format!("not a filter of {route}")));
    }
    path_id("user", &claims.sub)
}

/// A uuid in the path, or a 400 naming what it should have been.
pub fn path_id(what: &str, raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| ApiError::bad_path("id", format!("`{raw}` is not a {what} id")))
}

/// A query parameter that must be a user id.
pub fn query_id(field: &str, raw: Option<&str>) -> ApiResult<Option<Uuid>> {
    raw.map(|r| Uuid::parse_str(r).map_err(|_| ApiError::bad_query(field, format!("`{r}` is not a uuid")))).transpose()
}
