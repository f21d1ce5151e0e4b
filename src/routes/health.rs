//! Liveness, readiness and metrics.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::startup::AppState;

/// Readiness of each dependency.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// `ok`.
    pub status: &'static str,
    /// `sqlite` or `postgres`.
    pub database: &'static str,
    /// `ok`, or `not_configured` when the in-process backplane is used.
    pub redis: &'static str,
}

/// 200 while the process lives.
#[utoipa::path(tag = "health", responses((status = 200, description = "Alive")))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok")
}

/// 200 when the store (and Redis, when configured) answer; 503 otherwise.
#[utoipa::path(tag = "health", responses(
    (status = 200, body = Ready),
    (status = 503, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[get("/readyz")]
#[tracing::instrument(skip(state))]
pub async fn readyz(state: web::Data<AppState>) -> ApiResult<web::Json<Ready>> {
    let timeout = std::time::Duration::from_secs(3);
    let unavailable = |what: String| ApiError::new(ErrorCode::Unavailable, what);
    match tokio::time::timeout(timeout, state.db.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(unavailable(format!("database: {e}"))),
        Err(_) => return Err(unavailable("database: no answer within 3 s".into())),
    }
    let redis = if state.redis_backplane {
        match tokio::time::timeout(timeout, state.engine.backplane.ping()).await {
            Ok(Ok(())) => "ok",
            Ok(Err(e)) => return Err(unavailable(format!("redis: {e}"))),
            Err(_) => return Err(unavailable("redis: no answer within 3 s".into())),
        }
    } else {
        "not_configured"
    };
    let database = match state.db.kind() {
        crate::config::DatabaseKind::Sqlite => "sqlite",
        crate::config::DatabaseKind::Postgres => "postgres",
    };
    Ok(web::Json(Ready {
        status: "ok",
        database,
        redis,
    }))
}

/// Prometheus text exposition.
#[utoipa::path(tag = "health", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let mut text = state.metrics.render();
    // Off the HTTP worker: counting descriptors lists `/proc/self/fd`, about 20 ms with
    // 19,000 sockets open, which would stall every socket on this worker meanwhile.
    if let Ok(Some(process)) = web::block(crate::process_metrics::sample).await {
        text.push_str(&crate::process_metrics::render(&process));
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}
