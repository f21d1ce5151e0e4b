//! HTTP routes, one module per resource. Every handler carries `#[utoipa::path]`, and is
//! registered through `utoipa-actix-web`, so `/api/openapi.json` lists exactly the
//! routes that exist.

pub mod api_tokens;
pub mod audit;
pub mod auth;
pub mod channels;
pub mod chatflows;
pub mod console;
pub mod conversations;
pub mod health;
pub mod inboxes;
pub mod openapi;
pub mod teams;
pub mod uploads;
pub mod users;
pub mod web;
pub mod widget;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::scope;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::ApiError;
use crate::store::{self, DEFAULT_PAGE, MAX_PAGE};

/// Register every route.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(health::metrics)
        .configure(crate::ws::configure)
        .service(
            scope::scope("/api/v1")
                .wrap(actix_web::middleware::from_fn(widget::cors))
                // First: the widget's routes carry a burst of visitors, and a request
                // is matched against the routes in this order (a regex each).
                .configure(widget::configure)
                .configure(auth::configure)
                .configure(users::configure)
                .configure(teams::configure)
                .configure(inboxes::configure)
                .configure(channels::configure)
                .configure(chatflows::configure)
                .configure(api_tokens::configure)
                .configure(audit::configure)
                .configure(console::configure)
                .configure(conversations::configure)
                .configure(uploads::configure),
        );
}

/// Cursor pagination parameters shared by list endpoints.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<i64>,
}

impl PageQuery {
    /// The decoded cursor and the bounded limit, or a 400.
    pub fn parse(&self) -> Result<(Option<String>, i64), ApiError> {
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(
                store::decode_cursor(c)
                    .ok_or_else(|| ApiError::Validation("cursor: not a valid cursor".into()))?,
            ),
        };
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::Validation(format!(
                "limit: must be between 1 and {MAX_PAGE}"
            )));
        }
        Ok((after, limit))
    }
}

/// A page of a list, as every list endpoint answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListResponse<T> {
    /// This page's items.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> ListResponse<T> {
    /// Map a store page into a response page.
    pub fn from_page<R>(page: store::Page<R>, f: impl FnMut(R) -> T) -> Self {
        ListResponse {
            items: page.items.into_iter().map(f).collect(),
            next_cursor: page.next_cursor,
        }
    }
}

/// Epoch ms to the wire's RFC 3339 time.
pub fn time(ms: i64) -> DateTime<Utc> {
    store::to_time(ms)
}

/// For PATCH bodies: tell "absent" (`None`) from "null" (`Some(None)`).
pub fn double_option<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}
