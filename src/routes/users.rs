//! Users of the workspace: admins create, list, update and deactivate them; everyone may
//! list their teammates and edit their own profile.

use actix_web::{HttpResponse, get, patch, post, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{ListResponse, PageQuery, double_option, time};
use crate::auth::{self, AuthVia, Principal};
use crate::domain::{EmailAddress, Name, Password, Role, WebUrl};
use crate::error::{ApiError, ApiResult};
use crate::startup::AppState;
use crate::store::users::{NewUser, UserRow};
use crate::store::{audit, is_unique_violation, now_ms, sessions, users};

/// Register this module's routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_user)
        .service(list_users)
        .service(get_user)
        .service(update_user);
}

/// A user as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserView {
    /// Opaque id.
    pub id: String,
    /// The workspace.
    pub workspace_id: String,
    /// Email (login name).
    pub email: String,
    /// Display name.
    pub name: String,
    /// `admin` or `agent`.
    pub role: Role,
    /// Avatar image URL.
    pub avatar_url: Option<String>,
    /// Meeting/booking link.
    pub meeting_link: Option<String>,
    /// False once deactivated.
    pub active: bool,
    /// Creation time.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Last change.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<UserRow> for UserView {
    fn from(u: UserRow) -> Self {
        UserView {
            id: u.id,
            workspace_id: u.workspace_id,
            email: u.email,
            name: u.name,
            role: u.role,
            avatar_url: u.avatar_url,
            meeting_link: u.meeting_link,
            active: u.active,
            created_at: time(u.created_at),
            updated_at: time(u.updated_at),
        }
    }
}

/// A new user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Login email, unique across the install.
    #[schema(value_type = String, format = "email")]
    pub email: EmailAddress,
    /// 8–1,024 characters.
    #[schema(value_type = String, format = "password")]
    pub password: Password,
    /// Display name, 1–100 characters.
    #[schema(value_type = String)]
    pub name: Name,
    /// `admin` or `agent`.
    pub role: Role,
    /// Avatar image URL (http/https).
    #[schema(value_type = Option<String>)]
    pub avatar_url: Option<WebUrl>,
    /// Meeting link (http/https).
    #[schema(value_type = Option<String>)]
    pub meeting_link: Option<WebUrl>,
}

/// Create a user (admins).
#[utoipa::path(tag = "users", request_body = CreateUser, responses(
    (status = 201, body = UserView),
    (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
     description = "Email already taken"),
), security(("bearer" = []), ("cookie" = [])))]
#[post("/users")]
#[tracing::instrument(skip_all, fields(actor = %principal.user.id))]
pub async fn create_user(
    state: web::Data<AppState>,
    principal: Principal,
    body: crate::extract::Json<CreateUser>,
) -> ApiResult<HttpResponse> {
    principal.require_admin()?;
    let b = body.into_inner();
    let hash = auth::hash_password(b.password.expose().to_owned()).await?;
    let mut tx = state.db.pool().begin().await?;
    let user = users::insert(
        &mut *tx,
        NewUser {
            workspace_id: principal.workspace_id(),
            email: b.email.as_str(),
            name: b.name.as_str(),
            role: b.role,
            password_hash: &hash,
            avatar_url: b.avatar_url.as_ref().map(WebUrl::as_str),
            meeting_link: b.meeting_link.as_ref().map(WebUrl::as_str),
        },
    )
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            ApiError::conflict(format!("a user with email {} already exists", b.email))
        } else {
            e.into()
        }
    })?;
    audit::record(
        &mut tx,
        principal.audit(
            "user.created",
            "user",
            &user.id,
            json!({"email": user.email, "name": user.name, "role": user.role}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(UserView::from(user)))
}

/// List the workspace's users, oldest first.
#[utoipa::path(tag = "users", params(PageQuery), responses(
    (status = 200, body = ListResponse<UserView>),
), security(("bearer" = []), ("cookie" = [])))]
#[get("/users")]
pub async fn list_users(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<PageQuery>,
) -> ApiResult<web::Json<ListResponse<UserView>>> {
    let (after, limit) = query.parse()?;
    let page = users::list(
        state.db.pool(),
        principal.workspace_id(),
        after.as_deref(),
        limit,
    )
    .await?;
    Ok(web::Json(ListResponse::from_page(page, UserView::from)))
}

/// Read one user.
#[utoipa::path(tag = "users", params(("id" = String, Path, description = "User id")), responses(
    (status = 200, body = UserView),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[get("/users/{id}")]
pub async fn get_user(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> ApiResult<web::Json<UserView>> {
    users::get(state.db.pool(), principal.workspace_id(), &id)
        .await?
        .map(|u| web::Json(UserView::from(u)))
        .ok_or_else(|| ApiError::not_found("user"))
}

/// Changes to a user; absent fields stay as they are, `null` clears an optional one.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// Display name.
    #[schema(value_type = Option<String>)]
    pub name: Option<Name>,
    /// Avatar URL, or null to clear.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub avatar_url: Option<Option<WebUrl>>,
    /// Meeting link, or null to clear.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub meeting_link: Option<Option<WebUrl>>,
    /// New password (admins, or the user themself). Ends the user's other sessions.
    #[schema(value_type = Option<String>, format = "password")]
    pub password: Option<Password>,
    /// Role (admins only).
    pub role: Option<Role>,
    /// `false` deactivates (admins only): the user's sessions and tokens stop at once.
    pub active: Option<bool>,
}

/// Update a user. Admins may change anything; others only their own name, avatar,
/// meeting link and password. The last active admin cannot be demoted or deactivated.
#[utoipa::path(tag = "users", request_body = UpdateUser,
    params(("id" = String, Path, description = "User id")), responses(
    (status = 200, body = UserView),
    (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
     description = "Would leave the workspace without an active admin"),
), security(("bearer" = []), ("cookie" = [])))]
#[patch("/users/{id}")]
#[tracing::instrument(skip_all, fields(actor = %principal.user.id, user_id = %id))]
pub async fn update_user(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    body: crate::extract::Json<UpdateUser>,
) -> ApiResult<web::Json<UserView>> {
    let b = body.into_inner();
    let ws = principal.workspace_id().to_owned();
    let is_self = principal.user.id == *id;
    if !principal.is_admin() {
        if !is_self {
            return Err(ApiError::forbidden(
                "agents can only change their own profile",
            ));
        }
        if b.role.is_some() || b.active.is_some() {
            return Err(ApiError::forbidden(
                "changing role or active status needs the admin role",
            ));
        }
    }
    let new_hash = match &b.password {
        Some(p) => Some(auth::hash_password(p.expose().to_owned()).await?),
        None => None,
    };

    let mut tx = state.db.pool().begin().await?;
    let before = users::get(&mut *tx, &ws, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let mut user = before.clone();
    if let Some(n) = b.name {
        user.name = n.to_string();
    }
    if let Some(a) = b.avatar_url {
        user.avatar_url = a.map(String::from);
    }
    if let Some(m) = b.meeting_link {
        user.meeting_link = m.map(String::from);
    }
    if let Some(r) = b.role {
        user.role = r;
    }
    if let Some(a) = b.active {
        user.active = a;
    }
    let loses_admin =
        before.role == Role::Admin && before.active && (user.role != Role::Admin || !user.active);
    if loses_admin && users::count_active_admins(&mut *tx, &ws).await? <= 1 {
        return Err(ApiError::conflict(
            "the workspace must keep at least one active admin",
        ));
    }
    user.updated_at = now_ms();
    users::update(&mut *tx, &user).await?;
    if let Some(hash) = &new_hash {
        users::set_password(&mut *tx, &ws, &user.id, hash).await?;
    }
    let deactivated = before.active && !user.active;
    if deactivated || new_hash.is_some() {
        // A password change ends every other session of the user; the session that
        // made the change (when the user changed their own) stays.
        let keep = match (&principal.via, is_self && !deactivated) {
            (AuthVia::Session { session_id }, true) => Some(session_id.as_str()),
            _ => None,
        };
        sessions::revoke_all_for_user(&mut *tx, &ws, &user.id, keep).await?;
    }

    let mut changes = serde_json::Map::new();
    if before.name != user.name {
        changes.insert("name".into(), json!([before.name, user.name]));
    }
    if before.avatar_url != user.avatar_url {
        changes.insert(
            "avatar_url".into(),
            json!([before.avatar_url, user.avatar_url]),
        );
    }
    if before.meeting_link != user.meeting_link {
        changes.insert(
            "meeting_link".into(),
            json!([before.meeting_link, user.meeting_link]),
        );
    }
    if before.role != user.role {
        changes.insert("role".into(), json!([before.role, user.role]));
    }
    if before.active != user.active {
        changes.insert("active".into(), json!([before.active, user.active]));
    }
    if new_hash.is_some() {
        changes.insert("password".into(), json!("changed"));
    }
    let action = match (before.active, user.active) {
        (true, false) => "user.deactivated",
        (false, true) => "user.reactivated",
        _ => "user.updated",
    };
    audit::record(
        &mut tx,
        principal.audit(action, "user", &user.id, serde_json::Value::Object(changes)),
    )
    .await?;
    tx.commit().await?;
    if before.active != user.active {
        // Who may be assigned changed: the user's inboxes re-read their pools.
        for inbox_id in
            crate::store::inboxes::member_inbox_ids(state.db.pool(), &ws, &user.id).await?
        {
            state.engine.resync_routing(&ws, &inbox_id);
        }
    }
    Ok(web::Json(UserView::from(user)))
}
