//! Channels of an inbox: website chat, email, web forms, Messenger. This records a
//! channel and its settings; the connectors that move messages through each type are
//! built by their own issues. A chat channel's answer carries its `embed_snippet`.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::inboxes::visible_inbox;
use super::time;
use crate::auth::Principal;
use crate::domain::Name;
use crate::error::{ApiError, ApiResult};
use crate::startup::AppState;
use crate::store::channels::ChannelRow;
use crate::store::{audit, channels, chatflows};
use crate::widget::settings as chat_settings;

/// Register this module's routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_channel)
        .service(list_channels)
        .service(get_channel)
        .service(update_channel)
        .service(delete_channel)
        .service(rotate_identity_secret);
}

/// Largest settings document accepted, in bytes of JSON.
const MAX_SETTINGS_BYTES: usize = 64 * 1024;

/// The kinds of channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelType {
    /// Website live chat (the widget).
    Chat,
    /// Team email.
    Email,
    /// Web forms.
    Form,
    /// Facebook Messenger.
    Messenger,
}

impl ChannelType {
    fn as_str(self) -> &'static str {
        match self {
            ChannelType::Chat => "chat",
            ChannelType::Email => "email",
            ChannelType::Form => "form",
            ChannelType::Messenger => "messenger",
        }
    }

    fn label(self) -> &'static str {
        match self {
            ChannelType::Chat => "Website chat",
            ChannelType::Email => "Email",
            ChannelType::Form => "Web form",
            ChannelType::Messenger => "Messenger",
        }
    }
}

/// A channel as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelView {
    /// Opaque id.
    pub id: String,
    /// The inbox its conversations land in.
    pub inbox_id: String,
    /// Channel kind.
    #[serde(rename = "type")]
    pub kind: String,
    /// Display name.
    pub name: String,
    /// Type-specific settings.
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
    /// For chat channels: the tracking code to paste into a website.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embed_snippet: Option<String>,
    /// For chat channels, shown to admins only: the key a website signs visitor
    /// identities with (`hex(HMAC-SHA256(identity_secret, email))`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_secret: Option<String>,
    /// Creation time.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Last change.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl ChannelView {
    fn new(c: ChannelRow, public_url: &str, principal: &Principal) -> Self {
        let embed_snippet = (c.kind == "chat").then(|| {
            format!(
                "<script async src=\"{public_url}/widget.js\" data-parley-channel=\"{}\"></script>",
                c.id
            )
        });
        let settings = if c.kind == "chat" {
            serde_json::to_value(chat_settings::stored(&c.settings)).unwrap_or(c.settings)
        } else {
            c.settings
        };
        ChannelView {
            id: c.id,
            inbox_id: c.inbox_id,
            kind: c.kind,
            name: c.name,
            settings,
            embed_snippet,
            identity_secret: c.identity_secret.filter(|_| principal.is_admin()),
            created_at: time(c.created_at),
            updated_at: time(c.updated_at),
        }
    }
}

/// Check a settings document; for chat channels, validate it and fill in the defaults
/// (the answer is what gets stored).
fn check_settings(kind: &str, s: serde_json::Value) -> ApiResult<serde_json::Value> {
    if !s.is_object() {
        return Err(ApiError::Validation(
            "settings: must be a JSON object".into(),
        ));
    }
    if s.to_string().len() > MAX_SETTINGS_BYTES {
        return Err(ApiError::Validation(format!(
            "settings: must be at most {MAX_SETTINGS_BYTES} bytes of JSON"
        )));
    }
    if kind == "chat" {
        let parsed = chat_settings::parse(&s).map_err(ApiError::Validation)?;
        return serde_json::to_value(parsed).map_err(|e| ApiError::Unexpected(e.into()));
    }
    Ok(s)
}

/// A new channel.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    /// `chat`, `email`, `form` or `messenger`.
    #[serde(rename = "type")]
    pub kind: ChannelType,
    /// Display name (default: the type's label).
    #[schema(value_type = Option<String>)]
    pub name: Option<Name>,
    /// Type-specific settings (a JSON object, at most 64 KiB).
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    json!({})
}

/// Add a channel to an inbox (admins).
#[utoipa::path(tag = "channels", request_body = CreateChannel,
    params(("id" = String, Path, description = "Inbox id")), responses(
    (status = 201, body = ChannelView),
    (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[post("/inboxes/{id}/channels")]
#[tracing::instrument(skip_all, fields(actor = %principal.user.id, inbox_id = %id))]
pub async fn create_channel(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    body: crate::extract::Json<CreateChannel>,
) -> ApiResult<HttpResponse> {
    principal.require_admin()?;
    let b = body.into_inner();
    let settings = check_settings(b.kind.as_str(), b.settings)?;
    let inbox = visible_inbox(&state, &principal, &id).await?;
    let ws = principal.workspace_id();
    let name = b
        .name
        .map(String::from)
        .unwrap_or_else(|| b.kind.label().to_owned());
    let mut tx = state.db.pool().begin().await?;
    let channel =
        channels::insert(&mut *tx, ws, &inbox.id, b.kind.as_str(), &name, &settings).await?;
    if channel.kind == "chat" {
        chatflows::insert(
            &mut *tx,
            ws,
            &channel.id,
            super::chatflows::default_chatflow(),
        )
        .await?;
    }
    audit::record(
        &mut tx,
        principal.audit(
            "channel.created",
            "channel",
            &channel.id,
            json!({"inbox_id": inbox.id, "type": channel.kind, "name": channel.name}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(ChannelView::new(channel, &state.public_url, &principal)))
}

/// An inbox's channels.
#[utoipa::path(tag = "channels", params(("id" = String, Path, description = "Inbox id")), responses(
    (status = 200, body = super::ListResponse<ChannelView>),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[get("/inboxes/{id}/channels")]
pub async fn list_channels(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> ApiResult<web::Json<super::ListResponse<ChannelView>>> {
    let inbox = visible_inbox(&state, &principal, &id).await?;
    let items = channels::list_for_inbox(state.db.pool(), principal.workspace_id(), &inbox.id)
        .await?
        .into_iter()
        .map(|c| ChannelView::new(c, &state.public_url, &principal))
        .collect();
    Ok(web::Json(super::ListResponse {
        items,
        next_cursor: None,
    }))
}

/// The channel if this user may see it (through its inbox); 404 otherwise.
pub async fn visible_channel(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> ApiResult<ChannelRow> {
    let channel = channels::get(state.db.pool(), principal.workspace_id(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("channel"))?;
    visible_inbox(state, principal, &channel.inbox_id)
        .await
        .map_err(|_| ApiError::not_found("channel"))?;
    Ok(channel)
}

/// Read one channel.
#[utoipa::path(tag = "channels", params(("id" = String, Path, description = "Channel id")), responses(
    (status = 200, body = ChannelView),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[get("/channels/{id}")]
pub async fn get_channel(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> ApiResult<web::Json<ChannelView>> {
    let channel = visible_channel(&state, &principal, &id).await?;
    Ok(web::Json(ChannelView::new(
        channel,
        &state.public_url,
        &principal,
    )))
}

/// Changes to a channel; absent fields stay. `settings` replaces the whole document.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateChannel {
    /// New name.
    #[schema(value_type = Option<String>)]
    pub name: Option<Name>,
    /// New settings (a JSON object).
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
}

/// Rename a channel or replace its settings (admins).
#[utoipa::path(tag = "channels", request_body = UpdateChannel,
    params(("id" = String, Path, description = "Channel id")), responses(
    (status = 200, body = ChannelView),
    (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[patch("/channels/{id}")]
#[tracing::instrument(skip_all, fields(actor = %principal.user.id, channel_id = %id))]
pub async fn update_channel(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    body: crate::extract::Json<UpdateChannel>,
) -> ApiResult<web::Json<ChannelView>> {
    principal.require_admin()?;
    let b = body.into_inner();
    let before = visible_channel(&state, &principal, &id).await?;
    let mut channel = before.clone();
    if let Some(n) = b.name {
        channel.name = n.into();
    }
    if let Some(s) = b.settings {
        channel.settings = check_settings(&before.kind, s)?;
    }
    let mut tx = state.db.pool().begin().await?;
    channels::update(&mut *tx, &channel).await?;
    audit::record(
        &mut tx,
        principal.audit(
            "channel.updated",
            "channel",
            &channel.id,
            json!({"name": [before.name, channel.name],
                            "settings_changed": before.settings != channel.settings}),
        ),
    )
    .await?;
    tx.commit().await?;
    let channel = visible_channel(&state, &principal, &id).await?;
    Ok(web::Json(ChannelView::new(
        channel,
        &state.public_url,
        &principal,
    )))
}

/// Delete a channel (admins).
#[utoipa::path(tag = "channels", params(("id" = String, Path, description = "Channel id")), responses(
    (status = 204, description = "Deleted"),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[delete("/channels/{id}")]
#[tracing::instrument(skip_all, fields(actor = %principal.user.id, channel_id = %id))]
pub async fn delete_channel(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    principal.require_admin()?;
    let ws = principal.workspace_id();
    let mut tx = state.db.pool().begin().await?;
    if !channels::delete(&mut *tx, ws, &id).await? {
        return Err(ApiError::not_found("channel"));
    }
    audit::record(
        &mut tx,
        principal.audit("channel.deleted", "channel", &id, json!({})),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Replace a chat channel's identity secret (admins). Identities signed with the old
/// secret are refused from then on.
#[utoipa::path(tag = "channels", params(("id" = String, Path, description = "Chat channel id")), responses(
    (status = 200, body = ChannelView),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[post("/channels/{id}/identity-secret")]
#[tracing::instrument(skip_all, fields(actor = %principal.user.id, channel_id = %id))]
pub async fn rotate_identity_secret(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> ApiResult<web::Json<ChannelView>> {
    principal.require_admin()?;
    let channel = visible_channel(&state, &principal, &id).await?;
    if channel.kind != "chat" {
        return Err(ApiError::not_found("chat channel"));
    }
    let mut tx = state.db.pool().begin().await?;
    channels::set_identity_secret(
        &mut *tx,
        &channel.workspace_id,
        &channel.id,
        &channels::new_identity_secret(),
    )
    .await?;
    audit::record(
        &mut tx,
        principal.audit(
            "channel.identity_secret_rotated",
            "channel",
            &channel.id,
            json!({}),
        ),
    )
    .await?;
    tx.commit().await?;
    let channel = visible_channel(&state, &principal, &id).await?;
    Ok(web::Json(ChannelView::new(
        channel,
        &state.public_url,
        &principal,
    )))
}
