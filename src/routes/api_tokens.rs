//! API tokens for integrations. Anyone can make tokens that act as themselves; admins
//! see and revoke every token of the workspace, agents only their own. The secret is
//! shown once, in the creation answer.

use actix_web::{HttpResponse, delete, get, post, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{ListResponse, PageQuery, time};
use crate::auth::{self, Principal};
use crate::domain::Name;
use crate::error::{ApiError, ApiResult};
use crate::startup::AppState;
use crate::store::api_tokens::ApiTokenRow;
use crate::store::{api_tokens, audit};

/// Register this module's routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_token)
        .service(list_tokens)
        .service(revoke_token);
}

/// A token as lists show it (never the secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiTokenView {
    /// Opaque id.
    pub id: String,
    /// Label.
    pub name: String,
    /// The user it acts as.
    pub user_id: String,
    /// First characters of the secret, to recognise it.
    pub prefix: String,
    /// Creation time.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Last use (to the minute).
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Revocation time.
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<ApiTokenRow> for ApiTokenView {
    fn from(t: ApiTokenRow) -> Self {
        ApiTokenView {
            id: t.id,
            name: t.name,
            user_id: t.user_id,
            prefix: t.token_prefix,
            created_at: time(t.created_at),
            last_used_at: t.last_used_at.map(time),
            revoked_at: t.revoked_at.map(time),
        }
    }
}

/// A new token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Label, 1–100 characters.
    #[schema(value_type = String)]
    pub name: Name,
}

/// The new token, with its secret (shown only here).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// The secret: send as `Authorization: Bearer <token>`.
    pub token: String,
    /// The stored record.
    #[serde(flatten)]
    pub info: ApiTokenView,
}

/// Create an API token acting as the caller.
#[utoipa::path(tag = "api-tokens", request_body = CreateToken, responses(
    (status = 201, body = CreatedToken),
    (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[post("/api-tokens")]
#[tracing::instrument(skip_all, fields(actor = %principal.user.id))]
pub async fn create_token(
    state: web::Data<AppState>,
    principal: Principal,
    body: crate::extract::Json<CreateToken>,
) -> ApiResult<HttpResponse> {
    let secret = auth::new_token(auth::API_TOKEN_PREFIX);
    let prefix: String = secret.chars().take(10).collect();
    let ws = principal.workspace_id();
    let mut tx = state.db.pool().begin().await?;
    let row = api_tokens::insert(
        &mut *tx,
        ws,
        &principal.user.id,
        body.name.as_str(),
        &auth::token_hash(&secret),
        &prefix,
    )
    .await?;
    audit::record(
        &mut tx,
        principal.audit(
            "api_token.created",
            "api_token",
            &row.id,
            json!({"name": row.name, "prefix": row.token_prefix}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(CreatedToken {
        token: secret,
        info: ApiTokenView::from(row),
    }))
}

/// List tokens: all of the workspace's for admins, one's own for agents.
#[utoipa::path(tag = "api-tokens", params(PageQuery), responses(
    (status = 200, body = ListResponse<ApiTokenView>),
), security(("bearer" = []), ("cookie" = [])))]
#[get("/api-tokens")]
pub async fn list_tokens(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<PageQuery>,
) -> ApiResult<web::Json<ListResponse<ApiTokenView>>> {
    let (after, limit) = query.parse()?;
    let only = (!principal.is_admin()).then_some(principal.user.id.as_str());
    let page = api_tokens::list(
        state.db.pool(),
        principal.workspace_id(),
        only,
        after.as_deref(),
        limit,
    )
    .await?;
    Ok(web::Json(ListResponse::from_page(page, ApiTokenView::from)))
}

/// Revoke a token; it stops working at once.
#[utoipa::path(tag = "api-tokens", params(("id" = String, Path, description = "Token id")), responses(
    (status = 204, description = "Revoked"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[delete("/api-tokens/{id}")]
#[tracing::instrument(skip_all, fields(actor = %principal.user.id, token_id = %id))]
pub async fn revoke_token(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let ws = principal.workspace_id();
    let token = api_tokens::get(state.db.pool(), ws, &id)
        .await?
        .filter(|t| principal.is_admin() || t.user_id == principal.user.id)
        .ok_or_else(|| ApiError::not_found("API token"))?;
    let mut tx = state.db.pool().begin().await?;
    if !api_tokens::revoke(&mut *tx, ws, &token.id).await? {
        return Err(ApiError::not_found("API token"));
    }
    audit::record(
        &mut tx,
        principal.audit(
            "api_token.revoked",
            "api_token",
            &token.id,
            json!({"name": token.name, "user_id": token.user_id}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
