//! Chatflows (live-chat type): on which pages of a chat channel's website the widget
//! shows, when it opens (trigger), what it says first, and whether it pops up or waits
//! behind its launcher. Targeting and priority rules are in [`crate::widget::targeting`].

use actix_web::{HttpResponse, delete, get, patch, post, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::channels::visible_channel;
use super::time;
use crate::auth::Principal;
use crate::domain::Name;
use crate::error::{ApiError, ApiResult};
use crate::startup::AppState;
use crate::store::chatflows::{ChatflowRow, NewChatflow};
use crate::store::{audit, chatflows};
use crate::widget::targeting::Targeting;

/// Register this module's routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_chatflows)
        .service(create_chatflow)
        .service(get_chatflow)
        .service(update_chatflow)
        .service(delete_chatflow);
}

/// Most chatflows on one channel.
pub const MAX_PER_CHANNEL: i64 = 100;
/// Longest welcome message, in characters.
pub const MAX_WELCOME: usize = 1000;

/// When the widget opens (or, for `launcher`, shows its welcome bubble).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// As soon as the page loads.
    #[default]
    OnLoad,
    /// After the visitor has been on the page this long.
    AfterSeconds {
        /// 1 to 3600.
        seconds: u32,
    },
    /// Once the visitor has scrolled this far down the page.
    ScrollPercent {
        /// 1 to 100.
        percent: u32,
    },
    /// When the pointer leaves the page towards the browser's top bar.
    ExitIntent,
}

impl Trigger {
    fn validate(&self) -> ApiResult<()> {
        match *self {
            Trigger::AfterSeconds { seconds } if !(1..=3600).contains(&seconds) => Err(
                ApiError::Validation("trigger.seconds: must be between 1 and 3600".into()),
            ),
            Trigger::ScrollPercent { percent } if !(1..=100).contains(&percent) => Err(
                ApiError::Validation("trigger.percent: must be between 1 and 100".into()),
            ),
            _ => Ok(()),
        }
    }
}

/// How the widget appears when the trigger fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Display {
    /// The chat window opens by itself.
    Popup,
    /// Only the launcher button shows (with the welcome message as a bubble).
    #[default]
    Launcher,
}

impl Display {
    fn as_str(self) -> &'static str {
        match self {
            Display::Popup => "popup",
            Display::Launcher => "launcher",
        }
    }
}

/// A chatflow as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatflowView {
    /// Opaque id.
    pub id: String,
    /// The chat channel.
    pub channel_id: String,
    /// Label.
    pub name: String,
    /// Disabled chatflows never show.
    pub enabled: bool,
    /// Lower wins when several match a page; ties: the oldest.
    pub priority: i64,
    /// Which pages.
    pub targeting: Targeting,
    /// When.
    pub trigger: Trigger,
    /// The first message the visitor reads ("" = the channel's greeting).
    pub welcome_message: String,
    /// `popup` or `launcher`.
    pub display: Display,
    /// Creation time.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Last change.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<ChatflowRow> for ChatflowView {
    fn from(r: ChatflowRow) -> Self {
        ChatflowView {
            targeting: serde_json::from_value(r.targeting).unwrap_or_default(),
            trigger: serde_json::from_value(r.trigger).unwrap_or_default(),
            display: if r.display == "popup" {
                Display::Popup
            } else {
                Display::Launcher
            },
            id: r.id,
            channel_id: r.channel_id,
            name: r.name,
            enabled: r.enabled,
            priority: r.priority,
            welcome_message: r.welcome_message,
            created_at: time(r.created_at),
            updated_at: time(r.updated_at),
        }
    }
}

/// The chatflow every new chat channel starts with: all pages, on load, launcher.
pub fn default_chatflow() -> NewChatflow {
    NewChatflow {
        name: "Default".into(),
        enabled: true,
        priority: 100,
        targeting: json!({"match": "any", "rules": [{"kind": "all_pages"}]}),
        trigger: json!({"kind": "on_load"}),
        welcome_message: String::new(),
        display: "launcher".into(),
    }
}

fn check_priority(p: i64) -> ApiResult<()> {
    if (0..=10_000).contains(&p) {
        Ok(())
    } else {
        Err(ApiError::Validation(
            "priority: must be between 0 and 10000".into(),
        ))
    }
}

fn check_welcome(w: &str) -> ApiResult<()> {
    if w.chars().count() > MAX_WELCOME {
        return Err(ApiError::Validation(format!(
            "welcome_message: at most {MAX_WELCOME} characters"
        )));
    }
    Ok(())
}

fn check_targeting(t: &Targeting) -> ApiResult<()> {
    t.validate().map_err(ApiError::Validation)
}

fn to_json<T: Serialize>(v: &T) -> ApiResult<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| ApiError::Unexpected(e.into()))
}

/// A chat channel this user may see, or 404.
async fn chat_channel(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> ApiResult<crate::store::channels::ChannelRow> {
    let channel = visible_channel(state, principal, id).await?;
    if channel.kind != "chat" {
        return Err(ApiError::not_found("chat channel"));
    }
    Ok(channel)
}

/// A chatflow this user may see (through its channel's inbox), or 404.
async fn visible_chatflow(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> ApiResult<ChatflowRow> {
    let flow = chatflows::get(state.db.pool(), principal.workspace_id(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("chatflow"))?;
    visible_channel(state, principal, &flow.channel_id)
        .await
        .map_err(|_| ApiError::not_found("chatflow"))?;
    Ok(flow)
}

/// A chat channel's chatflows, by priority (then oldest first).
#[utoipa::path(tag = "chatflows", params(("channel_id" = String, Path, description = "Chat channel id")), responses(
    (status = 200, body = super::ListResponse<ChatflowView>),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[get("/channels/{channel_id}/chatflows")]
pub async fn list_chatflows(
    state: web::Data<AppState>,
    principal: Principal,
    channel_id: web::Path<String>,
) -> ApiResult<web::Json<super::ListResponse<ChatflowView>>> {
    let channel = chat_channel(&state, &principal, &channel_id).await?;
    let items = chatflows::list_for_channel(state.db.pool(), &channel.id)
        .await?
        .into_iter()
        .map(ChatflowView::from)
        .collect();
    Ok(web::Json(super::ListResponse {
        items,
        next_cursor: None,
    }))
}

/// A new chatflow; absent fields take the defaults.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChatflow {
    /// Label, 1–100 characters.
    #[schema(value_type = String)]
    pub name: Name,
    /// Default `true`.
    pub enabled: Option<bool>,
    /// 0–10000, default 100; lower wins.
    pub priority: Option<i64>,
    /// Default: all pages.
    pub targeting: Option<Targeting>,
    /// Default: `on_load`.
    pub trigger: Option<Trigger>,
    /// Default "" (the channel's greeting); at most 1000 characters.
    pub welcome_message: Option<String>,
    /// Default `launcher`.
    pub display: Option<Display>,
}

/// Add a chatflow to a chat channel (admins).
#[utoipa::path(tag = "chatflows", request_body = CreateChatflow,
    params(("channel_id" = String, Path, description = "Chat channel id")), responses(
    (status = 201, body = ChatflowView),
    (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 409, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[post("/channels/{channel_id}/chatflows")]
#[tracing::instrument(skip_all, fields(actor = %principal.user.id, channel_id = %channel_id))]
pub async fn create_chatflow(
    state: web::Data<AppState>,
    principal: Principal,
    channel_id: web::Path<String>,
    body: crate::extract::Json<CreateChatflow>,
) -> ApiResult<HttpResponse> {
    principal.require_admin()?;
    let b = body.into_inner();
    let priority = b.priority.unwrap_or(100);
    check_priority(priority)?;
    let targeting = b.targeting.unwrap_or_default();
    check_targeting(&targeting)?;
    let trigger = b.trigger.unwrap_or_default();
    trigger.validate()?;
    let welcome_message = b.welcome_message.unwrap_or_default();
    check_welcome(&welcome_message)?;
    let channel = chat_channel(&state, &principal, &channel_id).await?;
    if chatflows::count_for_channel(state.db.pool(), &channel.id).await? >= MAX_PER_CHANNEL {
        return Err(ApiError::new(
            crate::error::ErrorCode::Conflict,
            format!("a channel has at most {MAX_PER_CHANNEL} chatflows"),
        ));
    }
    let mut tx = state.db.pool().begin().await?;
    let row = chatflows::insert(
        &mut *tx,
        principal.workspace_id(),
        &channel.id,
        NewChatflow {
            name: b.name.into(),
            enabled: b.enabled.unwrap_or(true),
            priority,
            targeting: to_json(&targeting)?,
            trigger: to_json(&trigger)?,
            welcome_message,
            display: b.display.unwrap_or_default().as_str().into(),
        },
    )
    .await?;
    audit::record(
        &mut tx,
        principal.audit(
            "chatflow.created",
            "chatflow",
            &row.id,
            json!({"channel_id": channel.id, "name": row.name}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(ChatflowView::from(row)))
}

/// Read one chatflow.
#[utoipa::path(tag = "chatflows", params(("id" = String, Path, description = "Chatflow id")), responses(
    (status = 200, body = ChatflowView),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[get("/chatflows/{id}")]
pub async fn get_chatflow(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> ApiResult<web::Json<ChatflowView>> {
    Ok(web::Json(
        visible_chatflow(&state, &principal, &id).await?.into(),
    ))
}

/// Changes to a chatflow; absent fields stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateChatflow {
    /// Label.
    #[schema(value_type = Option<String>)]
    pub name: Option<Name>,
    /// Shown at all.
    pub enabled: Option<bool>,
    /// 0–10000.
    pub priority: Option<i64>,
    /// Which pages (replaces the whole targeting).
    pub targeting: Option<Targeting>,
    /// When.
    pub trigger: Option<Trigger>,
    /// First message.
    pub welcome_message: Option<String>,
    /// `popup` or `launcher`.
    pub display: Option<Display>,
}

/// Change a chatflow (admins).
#[utoipa::path(tag = "chatflows", request_body = UpdateChatflow,
    params(("id" = String, Path, description = "Chatflow id")), responses(
    (status = 200, body = ChatflowView),
    (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[patch("/chatflows/{id}")]
#[tracing::instrument(skip_all, fields(actor = %principal.user.id, chatflow_id = %id))]
pub async fn update_chatflow(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    body: crate::extract::Json<UpdateChatflow>,
) -> ApiResult<web::Json<ChatflowView>> {
    principal.require_admin()?;
    let b = body.into_inner();
    if let Some(p) = b.priority {
        check_priority(p)?;
    }
    if let Some(t) = &b.targeting {
        check_targeting(t)?;
    }
    if let Some(t) = &b.trigger {
        t.validate()?;
    }
    if let Some(w) = &b.welcome_message {
        check_welcome(w)?;
    }
    let mut row = visible_chatflow(&state, &principal, &id).await?;
    if let Some(n) = b.name {
        row.name = n.into();
    }
    if let Some(e) = b.enabled {
        row.enabled = e;
    }
    if let Some(p) = b.priority {
        row.priority = p;
    }
    if let Some(t) = &b.targeting {
        row.targeting = to_json(t)?;
    }
    if let Some(t) = &b.trigger {
        row.trigger = to_json(t)?;
    }
    if let Some(w) = b.welcome_message {
        row.welcome_message = w;
    }
    if let Some(d) = b.display {
        row.display = d.as_str().into();
    }
    let mut tx = state.db.pool().begin().await?;
    chatflows::update(&mut *tx, &row).await?;
    audit::record(
        &mut tx,
        principal.audit("chatflow.updated", "chatflow", &row.id, json!({})),
    )
    .await?;
    tx.commit().await?;
    Ok(web::Json(
        visible_chatflow(&state, &principal, &id).await?.into(),
    ))
}

/// Delete a chatflow (admins). A channel left with no enabled chatflow shows the
/// widget nowhere.
#[utoipa::path(tag = "chatflows", params(("id" = String, Path, description = "Chatflow id")), responses(
    (status = 204, description = "Deleted"),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[delete("/chatflows/{id}")]
#[tracing::instrument(skip_all, fields(actor = %principal.user.id, chatflow_id = %id))]
pub async fn delete_chatflow(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    principal.require_admin()?;
    let row = visible_chatflow(&state, &principal, &id).await?;
    let mut tx = state.db.pool().begin().await?;
    chatflows::delete(&mut *tx, principal.workspace_id(), &row.id).await?;
    audit::record(
        &mut tx,
        principal.audit(
            "chatflow.deleted",
            "chatflow",
            &row.id,
            json!({"channel_id": row.channel_id}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
