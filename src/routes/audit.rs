//! The audit log, newest first (admins).

use actix_web::{get, web};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{ListResponse, PageQuery, time};
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::startup::AppState;
use crate::store::audit::{self, AuditRow};

/// Register this module's routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_audit);
}

/// One audit entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    /// Opaque id.
    pub id: String,
    /// Who (null for the CLI).
    pub actor_id: Option<String>,
    /// What, e.g. `user.created`, `inbox.updated`.
    pub action: String,
    /// Kind of record changed.
    pub target_type: String,
    /// The record changed.
    pub target_id: String,
    /// What changed (`[before, after]` pairs for updates).
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// When.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<AuditRow> for AuditView {
    fn from(a: AuditRow) -> Self {
        AuditView {
            id: a.id,
            actor_id: a.actor_id,
            action: a.action,
            target_type: a.target_type,
            target_id: a.target_id,
            details: a.details,
            created_at: time(a.created_at),
        }
    }
}

/// The workspace's audit log, newest first (admins).
#[utoipa::path(tag = "audit", params(PageQuery), responses(
    (status = 200, body = ListResponse<AuditView>),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[get("/audit-log")]
pub async fn list_audit(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<PageQuery>,
) -> ApiResult<web::Json<ListResponse<AuditView>>> {
    principal.require_admin()?;
    let (before, limit) = query.parse()?;
    let page = audit::list(
        state.db.pool(),
        principal.workspace_id(),
        before.as_deref(),
        limit,
    )
    .await?;
    Ok(web::Json(ListResponse::from_page(page, AuditView::from)))
}
