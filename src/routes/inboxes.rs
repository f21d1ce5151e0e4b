//! Inboxes: where conversations land. Admins create and configure them (members,
//! routing); agents see only the inboxes they are members of — any other inbox answers
//! 404, exactly as if it did not exist.

use actix_web::{HttpResponse, delete, get, patch, post, put, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::teams::check_user_ids;
use super::{ListResponse, PageQuery, double_option, time};
use crate::auth::Principal;
use crate::domain::Name;
use crate::error::{ApiError, ApiResult};
use crate::startup::AppState;
use crate::store::inboxes::{InboxRow, Member, Routing};
use crate::store::{audit, inboxes, teams};

/// Register this module's routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_inbox)
        .service(list_inboxes)
        .service(get_inbox)
        .service(update_inbox)
        .service(delete_inbox)
        .service(put_inbox_member)
        .service(remove_inbox_member);
}

/// How conversations get an assignee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoutingMode {
    /// Assign automatically, in turn, to present agents under capacity.
    RoundRobin,
    /// Agents pick or are assigned by hand.
    Manual,
}

impl RoutingMode {
    fn as_str(self) -> &'static str {
        match self {
            RoutingMode::RoundRobin => "round_robin",
            RoutingMode::Manual => "manual",
        }
    }
    fn from_db(s: &str) -> Self {
        if s == "manual" {
            RoutingMode::Manual
        } else {
            RoutingMode::RoundRobin
        }
    }
}

/// What happens to an agent's open conversations when they go offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OfflineAction {
    /// They stay assigned.
    Keep,
    /// They return to the queue after the grace period.
    Return,
}

impl OfflineAction {
    fn as_str(self) -> &'static str {
        match self {
            OfflineAction::Keep => "keep",
            OfflineAction::Return => "return",
        }
    }
    fn from_db(s: &str) -> Self {
        if s == "return" {
            OfflineAction::Return
        } else {
            OfflineAction::Keep
        }
    }
}

/// Offline policy.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfflinePolicy {
    /// `keep` or `return`.
    pub action: OfflineAction,
    /// Seconds offline before `return` applies (0–86,400; default 300).
    #[serde(default = "default_grace")]
    pub grace_seconds: i64,
}

fn default_grace() -> i64 {
    300
}

/// Routing settings as the API shows them.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoutingView {
    /// `round_robin` or `manual`.
    pub mode: RoutingMode,
    /// Default max open conversations per agent; `null` = unlimited.
    pub capacity: Option<i64>,
    /// Route among this team's members instead of the inbox's; `null` = inbox members.
    pub team_id: Option<String>,
    /// Offline policy.
    pub offline: OfflinePolicy,
}

/// An inbox member.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    /// The user.
    pub user_id: String,
    /// Capacity override; `null` = the inbox default.
    pub capacity: Option<i64>,
}

/// An inbox as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct InboxView {
    /// Opaque id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Routing settings.
    pub routing: RoutingView,
    /// Members (agents who see and answer its conversations).
    pub members: Vec<MemberView>,
    /// Creation time.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Last change.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<InboxRow> for InboxView {
    fn from(i: InboxRow) -> Self {
        InboxView {
            id: i.id,
            name: i.name,
            routing: RoutingView {
                mode: RoutingMode::from_db(&i.routing.mode),
                capacity: i.routing.capacity,
                team_id: i.routing.team_id,
                offline: OfflinePolicy {
                    action: OfflineAction::from_db(&i.routing.offline_action),
                    grace_seconds: i.routing.offline_grace_secs,
                },
            },
            members: i
                .members
                .into_iter()
                .map(|m| MemberView {
                    user_id: m.user_id,
                    capacity: m.capacity,
                })
                .collect(),
            created_at: time(i.created_at),
            updated_at: time(i.updated_at),
        }
    }
}

/// Routing changes; absent fields stay, `null` clears `capacity` or `team_id`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutingInput {
    /// `round_robin` (default for a new inbox) or `manual`.
    pub mode: Option<RoutingMode>,
    /// Default per-agent capacity, 1–10,000; `null` = unlimited.
    #[serde(default, deserialize_with = "double_option")]
    pub capacity: Option<Option<i64>>,
    /// Route among this team's members; `null` = the inbox's members.
    #[serde(default, deserialize_with = "double_option")]
    pub team_id: Option<Option<String>>,
    /// Offline policy.
    pub offline: Option<OfflinePolicy>,
}

fn check_capacity(c: Option<i64>) -> ApiResult<()> {
    match c {
        Some(n) if !(1..=10_000).contains(&n) => Err(ApiError::Validation(
            "capacity: must be between 1 and 10000, or null for unlimited".into(),
        )),
        _ => Ok(()),
    }
}

/// Tell the user's open consoles which inboxes they belong to now.
async fn announce_membership(state: &AppState, workspace_id: &str, user_id: &str) -> ApiResult<()> {
    let inbox_ids = inboxes::member_inbox_ids(state.db.pool(), workspace_id, user_id).await?;
    let event = parley_actors::engine::events::WsEvent::Membership {
        user_id: user_id.to_owned(),
        inbox_ids,
    };
    if let Err(e) = state
        .engine
        .backplane
        .publish(
            &parley_actors::engine::workspace_topic(workspace_id),
            parley_actors::backplane::payload(event),
        )
        .await
    {
        tracing::warn!(error = %e, "Could not announce a membership change");
    }
    Ok(())
}

/// Apply a routing patch, checking each value (the team must be in the workspace).
async fn apply_routing(
    state: &AppState,
    workspace_id: &str,
    routing: &mut Routing,
    input: RoutingInput,
) -> ApiResult<()> {
    if let Some(m) = input.mode {
        routing.mode = m.as_str().to_owned();
    }
    if let Some(c) = input.capacity {
        check_capacity(c)?;
        routing.capacity = c;
    }
    if let Some(t) = input.team_id {
        if let Some(team_id) = &t {
            let mut conn = state.db.pool().acquire().await?;
            if teams::get(&mut conn, workspace_id, team_id)
                .await?
                .is_none()
            {
                return Err(ApiError::Validation(format!(
                    "routing.team_id: no team with id {team_id:?}"
                )));
            }
        }
        routing.team_id = t;
    }
    if let Some(o) = input.offline {
        if !(0..=86_400).contains(&o.grace_seconds) {
            return Err(ApiError::Validation(
                "routing.offline.grace_seconds: must be between 0 and 86400".into(),
            ));
        }
        routing.offline_action = o.action.as_str().to_owned();
        routing.offline_grace_secs = o.grace_seconds;
    }
    Ok(())
}

/// A new inbox.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInbox {
    /// 1–100 characters.
    #[schema(value_type = String)]
    pub name: Name,
    /// Initial members.
    #[serde(default)]
    pub member_ids: Vec<String>,
    /// Routing; defaults to round-robin, unlimited capacity, keep on offline.
    #[serde(default)]
    pub routing: RoutingInput,
}

/// The inbox if this user may see it; 404 otherwise (missing, other workspace, or an
/// agent who is not a member).
pub(crate) async fn visible_inbox(
    state: &AppState,
    principal: &Principal,
    inbox_id: &str,
) -> ApiResult<InboxRow> {
    let mut conn = state.db.pool().acquire().await?;
    let inbox = inboxes::get(&mut conn, principal.workspace_id(), inbox_id)
        .await?
        .ok_or_else(|| ApiError::not_found("inbox"))?;
    if principal.is_admin() || inbox.members.iter().any(|m| m.user_id == principal.user.id) {
        Ok(inbox)
    } else {
        Err(ApiError::not_found("inbox"))
    }
}

/// Create an inbox (admins).
#[utoipa::path(tag = "inboxes", request_body = CreateInbox, responses(
    (status = 201, body = InboxView),
    (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[post("/inboxes")]
#[tracing::instrument(skip_all, fields(actor = %principal.user.id))]
pub async fn create_inbox(
    state: web::Data<AppState>,
    principal: Principal,
    body: crate::extract::Json<CreateInbox>,
) -> ApiResult<HttpResponse> {
    principal.require_admin()?;
    let b = body.into_inner();
    let ws = principal.workspace_id();
    let defaults = &state.settings.routing;
    let mut routing = Routing {
        mode: match defaults.default_mode {
            crate::config::RoutingModeSetting::RoundRobin => "round_robin".into(),
            crate::config::RoutingModeSetting::Manual => "manual".into(),
        },
        capacity: (defaults.default_capacity > 0).then(|| i64::from(defaults.default_capacity)),
        team_id: None,
        offline_action: match defaults.default_offline_action {
            crate::config::OfflineActionSetting::Keep => "keep".into(),
            crate::config::OfflineActionSetting::Return => "return".into(),
        },
        offline_grace_secs: i64::from(defaults.default_offline_grace_secs),
    };
    apply_routing(&state, ws, &mut routing, b.routing).await?;
    let members: Vec<Member> = check_user_ids(&state, ws, &b.member_ids)
        .await?
        .into_iter()
        .map(|user_id| Member {
            user_id,
            capacity: None,
        })
        .collect();
    let mut tx = state.db.pool().begin().await?;
    let inbox = inboxes::insert(&mut tx, ws, b.name.as_str(), &routing, &members).await?;
    audit::record(
        &mut tx,
        principal.audit(
            "inbox.created",
            "inbox",
            &inbox.id,
            json!({"name": inbox.name, "routing_mode": inbox.routing.mode,
                            "member_ids": b.member_ids}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(InboxView::from(inbox)))
}

/// List inboxes: all of them for admins, the ones they are members of for agents.
#[utoipa::path(tag = "inboxes", params(PageQuery), responses(
    (status = 200, body = ListResponse<InboxView>),
), security(("bearer" = []), ("cookie" = [])))]
#[get("/inboxes")]
pub async fn list_inboxes(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<PageQuery>,
) -> ApiResult<web::Json<ListResponse<InboxView>>> {
    let (after, limit) = query.parse()?;
    let member = (!principal.is_admin()).then_some(principal.user.id.as_str());
    let mut conn = state.db.pool().acquire().await?;
    let page = inboxes::list(
        &mut conn,
        principal.workspace_id(),
        member,
        after.as_deref(),
        limit,
    )
    .await?;
    Ok(web::Json(ListResponse::from_page(page, InboxView::from)))
}

/// Read one inbox.
#[utoipa::path(tag = "inboxes", params(("id" = String, Path, description = "Inbox id")), responses(
    (status = 200, body = InboxView),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[get("/inboxes/{id}")]
pub async fn get_inbox(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> ApiResult<web::Json<InboxView>> {
    Ok(web::Json(InboxView::from(
        visible_inbox(&state, &principal, &id).await?,
    )))
}

/// Changes to an inbox; absent fields stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateInbox {
    /// New name.
    #[schema(value_type = Option<String>)]
    pub name: Option<Name>,
    /// Routing changes.
    pub routing: Option<RoutingInput>,
}

/// Rename an inbox or change its routing (admins).
#[utoipa::path(tag = "inboxes", request_body = UpdateInbox,
    params(("id" = String, Path, description = "Inbox id")), responses(
    (status = 200, body = InboxView),
    (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[patch("/inboxes/{id}")]
#[tracing::instrument(skip_all, fields(actor = %principal.user.id, inbox_id = %id))]
pub async fn update_inbox(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    body: crate::extract::Json<UpdateInbox>,
) -> ApiResult<web::Json<InboxView>> {
    principal.require_admin()?;
    let b = body.into_inner();
    let ws = principal.workspace_id();
    let before = visible_inbox(&state, &principal, &id).await?;
    let mut inbox = before.clone();
    if let Some(n) = &b.name {
        inbox.name = n.to_string();
    }
    if let Some(r) = b.routing {
        apply_routing(&state, ws, &mut inbox.routing, r).await?;
    }
    let mut tx = state.db.pool().begin().await?;
    inboxes::update(&mut *tx, &inbox).await?;
    audit::record(
        &mut tx,
        principal.audit(
            "inbox.updated",
            "inbox",
            &inbox.id,
            json!({
                "name": [before.name, inbox.name],
                "routing": [routing_json(&before.routing), routing_json(&inbox.routing)],
            }),
        ),
    )
    .await?;
    let inbox = inboxes::get(&mut tx, ws, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("inbox"))?;
    tx.commit().await?;
    state.engine.resync_routing(ws, &inbox.id);
    Ok(web::Json(InboxView::from(inbox)))
}

fn routing_json(r: &Routing) -> serde_json::Value {
    json!({"mode": r.mode, "capacity": r.capacity, "team_id": r.team_id,
           "offline_action": r.offline_action, "offline_grace_secs": r.offline_grace_secs})
}

/// Delete an inbox with its channels and conversations (admins).
#[utoipa::path(tag = "inboxes", params(("id" = String, Path, description = "Inbox id")), responses(
    (status = 204, description = "Deleted"),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[delete("/inboxes/{id}")]
#[tracing::instrument(skip_all, fields(actor = %principal.user.id, inbox_id = %id))]
pub async fn delete_inbox(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    principal.require_admin()?;
    let ws = principal.workspace_id();
    let members = visible_inbox(&state, &principal, &id).await?.members;
    let mut tx = state.db.pool().begin().await?;
    if !inboxes::delete(&mut *tx, ws, &id).await? {
        return Err(ApiError::not_found("inbox"));
    }
    audit::record(
        &mut tx,
        principal.audit("inbox.deleted", "inbox", &id, json!({})),
    )
    .await?;
    tx.commit().await?;
    for m in &members {
        announce_membership(&state, ws, &m.user_id).await?;
    }
    Ok(HttpResponse::NoContent().finish())
}

/// A member's settings.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutMember {
    /// Capacity override, 1–10,000; `null` or absent = the inbox default.
    pub capacity: Option<i64>,
}

/// Add a member to an inbox, or change their capacity (admins).
#[utoipa::path(tag = "inboxes", request_body = PutMember, params(
    ("id" = String, Path, description = "Inbox id"),
    ("user_id" = String, Path, description = "User id"),
), responses(
    (status = 200, body = InboxView),
    (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[put("/inboxes/{id}/members/{user_id}")]
#[tracing::instrument(skip_all, fields(actor = %principal.user.id))]
pub async fn put_inbox_member(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
    body: crate::extract::Json<PutMember>,
) -> ApiResult<web::Json<InboxView>> {
    principal.require_admin()?;
    let (inbox_id, user_id) = path.into_inner();
    let ws = principal.workspace_id();
    check_capacity(body.capacity)?;
    visible_inbox(&state, &principal, &inbox_id).await?;
    check_user_ids(&state, ws, std::slice::from_ref(&user_id)).await?;
    let mut tx = state.db.pool().begin().await?;
    inboxes::upsert_member(
        &mut *tx,
        ws,
        &inbox_id,
        &Member {
            user_id: user_id.clone(),
            capacity: body.capacity,
        },
    )
    .await?;
    audit::record(
        &mut tx,
        principal.audit(
            "inbox.member_set",
            "inbox",
            &inbox_id,
            json!({"user_id": user_id, "capacity": body.capacity}),
        ),
    )
    .await?;
    let inbox = inboxes::get(&mut tx, ws, &inbox_id)
        .await?
        .ok_or_else(|| ApiError::not_found("inbox"))?;
    tx.commit().await?;
    announce_membership(&state, ws, &user_id).await?;
    state.engine.resync_routing(ws, &inbox_id);
    Ok(web::Json(InboxView::from(inbox)))
}

/// Remove a member from an inbox (admins).
#[utoipa::path(tag = "inboxes", params(
    ("id" = String, Path, description = "Inbox id"),
    ("user_id" = String, Path, description = "User id"),
), responses(
    (status = 204, description = "Removed"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[delete("/inboxes/{id}/members/{user_id}")]
#[tracing::instrument(skip_all, fields(actor = %principal.user.id))]
pub async fn remove_inbox_member(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    principal.require_admin()?;
    let (inbox_id, user_id) = path.into_inner();
    let ws = principal.workspace_id();
    let mut tx = state.db.pool().begin().await?;
    if !inboxes::remove_member(&mut *tx, ws, &inbox_id, &user_id).await? {
        return Err(ApiError::not_found("inbox member"));
    }
    audit::record(
        &mut tx,
        principal.audit(
            "inbox.member_removed",
            "inbox",
            &inbox_id,
            json!({"user_id": user_id}),
        ),
    )
    .await?;
    tx.commit().await?;
    announce_membership(&state, ws, &user_id).await?;
    state.engine.resync_routing(ws, &inbox_id);
    Ok(HttpResponse::NoContent().finish())
}
