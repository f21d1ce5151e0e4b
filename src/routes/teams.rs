//! Teams: named groups of users (admins manage them; everyone can read them).

use actix_web::{HttpResponse, delete, get, patch, post, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{ListResponse, PageQuery, time};
use crate::auth::Principal;
use crate::domain::Name;
use crate::error::{ApiError, ApiResult};
use crate::startup::AppState;
use crate::store::teams::TeamRow;
use crate::store::{audit, is_unique_violation, teams, users};

/// Register this module's routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_team)
        .service(list_teams)
        .service(get_team)
        .service(update_team)
        .service(delete_team)
        .service(add_team_member)
        .service(remove_team_member);
}

/// A team as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamView {
    /// Opaque id.
    pub id: String,
    /// Unique within the workspace.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Member user ids.
    pub member_ids: Vec<String>,
    /// Creation time.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Last change.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<TeamRow> for TeamView {
    fn from(t: TeamRow) -> Self {
        TeamView {
            id: t.id,
            name: t.name,
            description: t.description,
            member_ids: t.member_ids,
            created_at: time(t.created_at),
            updated_at: time(t.updated_at),
        }
    }
}

/// A new team.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    /// 1–100 characters, unique in the workspace.
    #[schema(value_type = String)]
    pub name: Name,
    /// Up to 1,000 characters.
    #[serde(default)]
    pub description: String,
    /// Initial members.
    #[serde(default)]
    pub member_ids: Vec<String>,
}

/// A team's members changed: the inboxes routing among them re-read their pools.
async fn resync_team_inboxes(state: &AppState, workspace_id: &str, team_id: &str) -> ApiResult<()> {
    for inbox_id in
        crate::store::inboxes::routing_to_team(state.db.pool(), workspace_id, team_id).await?
    {
        state.engine.resync_routing(workspace_id, &inbox_id);
    }
    Ok(())
}

/// Fail with 400 unless every id is a user of the workspace; returns them deduplicated.
pub(crate) async fn check_user_ids(
    state: &AppState,
    workspace_id: &str,
    ids: &[String],
) -> ApiResult<Vec<String>> {
    let mut unique: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        if !unique.contains(id) {
            unique.push(id.clone());
        }
    }
    if unique.len() > 1000 {
        return Err(ApiError::Validation("at most 1000 members at once".into()));
    }
    let found = users::existing_ids(state.db.pool(), workspace_id, &unique).await?;
    if let Some(missing) = unique.iter().find(|id| !found.contains(id)) {
        return Err(ApiError::Validation(format!("no user with id {missing:?}")));
    }
    Ok(unique)
}

fn check_description(d: &str) -> ApiResult<()> {
    if d.chars().count() > 1000 {
        return Err(ApiError::Validation(
            "description: must be at most 1000 characters".into(),
        ));
    }
    Ok(())
}

fn name_taken(e: sqlx::Error, name: &str) -> ApiError {
    if is_unique_violation(&e) {
        ApiError::conflict(format!("a team named {name:?} already exists"))
    } else {
        e.into()
    }
}

/// Create a team (admins).
#[utoipa::path(tag = "teams", request_body = CreateTeam, responses(
    (status = 201, body = TeamView),
    (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 409, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[post("/teams")]
#[tracing::instrument(skip_all, fields(actor = %principal.user.id))]
pub async fn create_team(
    state: web::Data<AppState>,
    principal: Principal,
    body: crate::extract::Json<CreateTeam>,
) -> ApiResult<HttpResponse> {
    principal.require_admin()?;
    let b = body.into_inner();
    check_description(&b.description)?;
    let ws = principal.workspace_id();
    let members = check_user_ids(&state, ws, &b.member_ids).await?;
    let mut tx = state.db.pool().begin().await?;
    let team = teams::insert(&mut tx, ws, b.name.as_str(), b.description.trim(), &members)
        .await
        .map_err(|e| name_taken(e, b.name.as_str()))?;
    audit::record(
        &mut tx,
        principal.audit(
            "team.created",
            "team",
            &team.id,
            json!({"name": team.name, "member_ids": team.member_ids}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(TeamView::from(team)))
}

/// List teams, oldest first.
#[utoipa::path(tag = "teams", params(PageQuery), responses(
    (status = 200, body = ListResponse<TeamView>),
), security(("bearer" = []), ("cookie" = [])))]
#[get("/teams")]
pub async fn list_teams(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<PageQuery>,
) -> ApiResult<web::Json<ListResponse<TeamView>>> {
    let (after, limit) = query.parse()?;
    let mut conn = state.db.pool().acquire().await?;
    let page = teams::list(&mut conn, principal.workspace_id(), after.as_deref(), limit).await?;
    Ok(web::Json(ListResponse::from_page(page, TeamView::from)))
}

/// Read one team.
#[utoipa::path(tag = "teams", params(("id" = String, Path, description = "Team id")), responses(
    (status = 200, body = TeamView),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[get("/teams/{id}")]
pub async fn get_team(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> ApiResult<web::Json<TeamView>> {
    let mut conn = state.db.pool().acquire().await?;
    teams::get(&mut conn, principal.workspace_id(), &id)
        .await?
        .map(|t| web::Json(TeamView::from(t)))
        .ok_or_else(|| ApiError::not_found("team"))
}

/// Changes to a team; absent fields stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTeam {
    /// New name.
    #[schema(value_type = Option<String>)]
    pub name: Option<Name>,
    /// New description.
    pub description: Option<String>,
}

/// Rename or re-describe a team (admins).
#[utoipa::path(tag = "teams", request_body = UpdateTeam,
    params(("id" = String, Path, description = "Team id")), responses(
    (status = 200, body = TeamView),
    (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 409, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[patch("/teams/{id}")]
#[tracing::instrument(skip_all, fields(actor = %principal.user.id, team_id = %id))]
pub async fn update_team(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    body: crate::extract::Json<UpdateTeam>,
) -> ApiResult<web::Json<TeamView>> {
    principal.require_admin()?;
    let b = body.into_inner();
    if let Some(d) = &b.description {
        check_description(d)?;
    }
    let ws = principal.workspace_id();
    let mut tx = state.db.pool().begin().await?;
    let before = teams::get(&mut tx, ws, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("team"))?;
    let mut team = before.clone();
    if let Some(n) = &b.name {
        team.name = n.to_string();
    }
    if let Some(d) = &b.description {
        team.description = d.trim().to_owned();
    }
    teams::update(&mut *tx, &team)
        .await
        .map_err(|e| name_taken(e, &team.name))?;
    audit::record(
        &mut tx,
        principal.audit(
            "team.updated",
            "team",
            &team.id,
            json!({"name": [before.name, team.name],
                            "description": [before.description, team.description]}),
        ),
    )
    .await?;
    let team = teams::get(&mut tx, ws, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("team"))?;
    tx.commit().await?;
    Ok(web::Json(TeamView::from(team)))
}

/// Delete a team (admins). Inboxes routing to it fall back to their own members.
#[utoipa::path(tag = "teams", params(("id" = String, Path, description = "Team id")), responses(
    (status = 204, description = "Deleted"),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[delete("/teams/{id}")]
#[tracing::instrument(skip_all, fields(actor = %principal.user.id, team_id = %id))]
pub async fn delete_team(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    principal.require_admin()?;
    let ws = principal.workspace_id();
    let mut tx = state.db.pool().begin().await?;
    if !teams::delete(&mut *tx, ws, &id).await? {
        return Err(ApiError::not_found("team"));
    }
    audit::record(
        &mut tx,
        principal.audit("team.deleted", "team", &id, json!({})),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A member to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// The user to add.
    pub user_id: String,
}

/// Add a member to a team (admins). Adding an existing member changes nothing.
#[utoipa::path(tag = "teams", request_body = AddMember,
    params(("id" = String, Path, description = "Team id")), responses(
    (status = 200, body = TeamView),
    (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[post("/teams/{id}/members")]
#[tracing::instrument(skip_all, fields(actor = %principal.user.id, team_id = %id))]
pub async fn add_team_member(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    body: crate::extract::Json<AddMember>,
) -> ApiResult<web::Json<TeamView>> {
    principal.require_admin()?;
    let ws = principal.workspace_id();
    let user_ids = check_user_ids(&state, ws, std::slice::from_ref(&body.user_id)).await?;
    let mut tx = state.db.pool().begin().await?;
    if teams::get(&mut tx, ws, &id).await?.is_none() {
        return Err(ApiError::not_found("team"));
    }
    for user_id in &user_ids {
        teams::add_member(&mut *tx, ws, &id, user_id).await?;
    }
    audit::record(
        &mut tx,
        principal.audit(
            "team.member_added",
            "team",
            &id,
            json!({"user_id": body.user_id}),
        ),
    )
    .await?;
    let team = teams::get(&mut tx, ws, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("team"))?;
    tx.commit().await?;
    resync_team_inboxes(&state, ws, &id).await?;
    Ok(web::Json(TeamView::from(team)))
}

/// Remove a member from a team (admins).
#[utoipa::path(tag = "teams", params(
    ("id" = String, Path, description = "Team id"),
    ("user_id" = String, Path, description = "User id"),
), responses(
    (status = 204, description = "Removed"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[delete("/teams/{id}/members/{user_id}")]
#[tracing::instrument(skip_all, fields(actor = %principal.user.id))]
pub async fn remove_team_member(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    principal.require_admin()?;
    let (team_id, user_id) = path.into_inner();
    let ws = principal.workspace_id();
    let mut tx = state.db.pool().begin().await?;
    if !teams::remove_member(&mut *tx, ws, &team_id, &user_id).await? {
        return Err(ApiError::not_found("team member"));
    }
    audit::record(
        &mut tx,
        principal.audit(
            "team.member_removed",
            "team",
            &team_id,
            json!({"user_id": user_id}),
        ),
    )
    .await?;
    tx.commit().await?;
    resync_team_inboxes(&state, ws, &team_id).await?;
    Ok(HttpResponse::NoContent().finish())
}
