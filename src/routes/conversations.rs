//! Conversations over HTTP. Reads come from the store; a posted message goes through the
//! conversation's actor exactly as a WebSocket `send` does — same order, same `seq`,
//! same idempotency by `client_id`.

use actix_web::{HttpResponse, get, post, web};
use parley_actors::engine::EngineError;
use parley_actors::engine::conversation::{InjectFault, Post};
use parley_actors::engine::hub::GetConversation;
use parley_actors::protocol::{
    Channel, ConversationEvent, ConversationObject, ConversationStatus, MessageObject, Participant,
    ParticipantKind, SendKind,
};
use parley_actors::store::{Appended, ConversationRecord, NewMessage};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::ListResponse;
use super::console::ListItem;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::startup::AppState;
use crate::store::{MAX_PAGE, audit, engine as sql, inboxes, users};

/// Register this module's routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_conversations)
        .service(get_conversation)
        .service(list_messages)
        .service(post_message)
        .service(assign)
        .service(close)
        .service(reopen)
        .service(inject_fault);
}

/// The conversation if this user may see it; 404 otherwise.
pub(crate) async fn visible(
    state: &AppState,
    p: &Principal,
    id: &str,
) -> ApiResult<ConversationRecord> {
    let record = sql::get_conversation(state.db.reader(), id)
        .await?
        .filter(|c| c.workspace_id == p.workspace_id())
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    if !p.is_admin()
        && !inboxes::is_member(
            state.db.reader(),
            p.workspace_id(),
            &record.inbox_id,
            &p.user.id,
        )
        .await?
    {
        return Err(ApiError::not_found("conversation"));
    }
    Ok(record)
}

/// Filters for the conversation list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationQuery {
    /// `open` or `closed`.
    pub status: Option<String>,
    /// `me`, `unassigned`, or a user id.
    pub assignee: Option<String>,
    /// Only this inbox.
    pub inbox_id: Option<String>,
    /// Only this channel kind (`chat`, `email`, `form`, `messenger`).
    pub channel: Option<String>,
    /// Only this channel (by id).
    pub channel_id: Option<String>,
    /// Search: contact name or email, or message text (comments included), case
    /// insensitive, at most 200 characters.
    pub q: Option<String>,
    /// Opaque cursor from `next_cursor`.
    pub cursor: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<i64>,
}

/// List conversations visible to the caller, newest first. Each item is a conversation
/// object plus `last_seq`, `contact {id, name, email}`, `last_message {kind, sender,
/// body}` (the first 140 characters, or `null`), `read_seq` and `unread` (the caller's
/// read mark, see `POST /conversations/{id}/read`).
#[utoipa::path(tag = "conversations", params(ConversationQuery), responses(
    (status = 200, body = ListResponse<Object>),
    (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[get("/conversations")]
pub async fn list_conversations(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<ConversationQuery>,
) -> ApiResult<web::Json<ListResponse<ListItem>>> {
    let q = query.into_inner();
    let limit = q.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::Validation(format!(
            "limit: must be between 1 and {MAX_PAGE}"
        )));
    }
    let before = match q.cursor.as_deref() {
        None | Some("") => String::new(),
        Some(c) => crate::store::decode_cursor(c)
            .ok_or_else(|| ApiError::Validation("cursor: not a valid cursor".into()))?,
    };
    if let Some(s) = q.status.as_deref()
        && s != "open"
        && s != "closed"
    {
        return Err(ApiError::Validation(
            "status: must be open or closed".into(),
        ));
    }
    if let Some(c) = q.channel.as_deref()
        && !["chat", "email", "form", "messenger"].contains(&c)
    {
        return Err(ApiError::Validation(
            "channel: must be chat, email, form or messenger".into(),
        ));
    }
    let assignee = match q.assignee.as_deref() {
        None => String::new(),
        Some("me") => principal.user.id.clone(),
        Some(other) => other.to_owned(),
    };
    let member = if principal.is_admin() {
        ""
    } else {
        principal.user.id.as_str()
    };
    let q_text = q.q.as_deref().unwrap_or_default().trim();
    if q_text.chars().count() > 200 {
        return Err(ApiError::Validation("q: at most 200 characters".into()));
    }
    let rows = crate::store::console::list(
        state.db.reader(),
        &crate::store::console::ListFilter {
            workspace_id: principal.workspace_id(),
            user_id: &principal.user.id,
            before_id: &before,
            status: q.status.as_deref().unwrap_or_default(),
            inbox_id: q.inbox_id.as_deref().unwrap_or_default(),
            channel: q.channel.as_deref().unwrap_or_default(),
            channel_id: q.channel_id.as_deref().unwrap_or_default(),
            assignee: &assignee,
            member_of: member,
            q: q_text,
            contact_id: "",
            id: "",
        },
        limit + 1,
    )
    .await?;
    let page = crate::store::Page::from_rows(rows, limit, |c| &c.record.id);
    Ok(web::Json(ListResponse::from_page(page, ListItem::from)))
}

/// Read one conversation: the conversation object plus the list item's fields
/// (`last_seq`, `contact`, `last_message`, `read_seq`, `unread`).
#[utoipa::path(tag = "conversations", params(("id" = String, Path, description = "Conversation id")), responses(
    (status = 200, body = Object),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[get("/conversations/{id}")]
pub async fn get_conversation(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> ApiResult<web::Json<ListItem>> {
    let record = visible(&state, &principal, &id).await?;
    let row = crate::store::console::list(
        state.db.reader(),
        &crate::store::console::ListFilter {
            workspace_id: principal.workspace_id(),
            user_id: &principal.user.id,
            id: &record.id,
            ..Default::default()
        },
        1,
    )
    .await?
    .pop()
    .ok_or_else(|| ApiError::not_found("conversation"))?;
    Ok(web::Json(ListItem::from(row)))
}

/// Paging through messages by `seq`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessagesQuery {
    /// Only messages with a larger `seq` (default 0: from the start).
    pub after_seq: Option<u64>,
    /// Page size, 1–500 (default 100).
    pub limit: Option<u32>,
}

/// Messages of a conversation in `seq` order. `next_cursor` is the `after_seq` of the
/// next page.
#[utoipa::path(tag = "conversations", params(("id" = String, Path, description = "Conversation id"), MessagesQuery), responses(
    (status = 200, body = ListResponse<Object>),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[get("/conversations/{id}/messages")]
pub async fn list_messages(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    query: web::Query<MessagesQuery>,
) -> ApiResult<web::Json<ListResponse<MessageObject>>> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::Validation(
            "limit: must be between 1 and 500".into(),
        ));
    }
    let record = visible(&state, &principal, &id).await?;
    let mut items = sql::messages_after(
        &state.db,
        &record.id,
        query.after_seq.unwrap_or(0),
        limit + 1,
    )
    .await?;
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|m| m.seq.to_string())
    } else {
        None
    };
    Ok(web::Json(ListResponse { items, next_cursor }))
}

/// A message to post.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    /// Text, 1–`engine.max_body_chars` characters.
    pub body: String,
    /// `reply` (default; the visitor sees it) or `comment` (agents only).
    #[schema(value_type = Option<String>)]
    pub kind: Option<SendKind>,
    /// Idempotency key: a retry with the same `client_id` returns the first message.
    pub client_id: String,
    /// Ids of files the caller uploaded (`POST /api/v1/uploads`), at most 10; with
    /// attachments, `body` may be empty.
    #[serde(default)]
    pub attachments: Vec<String>,
}

/// A stored message.
#[derive(Debug, Serialize, ToSchema)]
pub struct PostedMessage {
    /// The message (with its `seq`).
    #[schema(value_type = Object)]
    pub message: MessageObject,
    /// `true` when this `client_id` had been posted before.
    pub duplicate: bool,
}

/// Post a reply or an internal comment. Answers after the message is durable.
#[utoipa::path(tag = "conversations", request_body = PostMessage,
    params(("id" = String, Path, description = "Conversation id")), responses(
    (status = 201, body = PostedMessage, description = "Stored"),
    (status = 200, body = PostedMessage, description = "Already stored under this client_id"),
    (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[post("/conversations/{id}/messages")]
#[tracing::instrument(skip_all, fields(user_id = %principal.user.id, conversation_id = %id))]
pub async fn post_message(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    body: crate::extract::Json<PostMessage>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let max = state.engine.config.max_body_chars;
    if b.body.trim().is_empty() && b.attachments.is_empty() {
        return Err(ApiError::Validation("body: must not be empty".into()));
    }
    if b.attachments.len() > 10 {
        return Err(ApiError::Validation(
            "attachments: at most 10 per message".into(),
        ));
    }
    if b.body.chars().count() > max {
        return Err(ApiError::Validation(format!(
            "body: longer than {max} characters"
        )));
    }
    if b.client_id.trim().is_empty() || b.client_id.chars().count() > 100 {
        return Err(ApiError::Validation(
            "client_id: must be 1 to 100 characters".into(),
        ));
    }
    let record = visible(&state, &principal, &id).await?;
    let attachments = if b.attachments.is_empty() {
        Vec::new()
    } else {
        crate::store::uploads::claim(
            state.db.pool(),
            &b.attachments,
            "agent",
            &principal.user.id,
            &record.id,
        )
        .await?
        .ok_or_else(|| {
            ApiError::Validation(
                "attachments: unknown, not uploaded by you, or sent in another conversation".into(),
            )
        })?
    };
    let addr = state
        .engine
        .hub
        .send(GetConversation {
            id: record.id.clone(),
        })
        .await
        .map_err(|e| anyhow::anyhow!("hub: {e}"))?;
    let message = NewMessage {
        workspace_id: record.workspace_id.clone(),
        conversation_id: record.id.clone(),
        kind: b.kind.unwrap_or_default().message_kind(),
        sender: Participant {
            kind: ParticipantKind::Agent,
            id: principal.user.id.clone(),
            name: principal.user.name.clone(),
        },
        body: b.body,
        attachments,
        channel: Channel::Chat,
        client_id: Some(b.client_id),
    };
    let result = addr
        .send(Post {
            message,
            origin: None,
        })
        .await
        .map_err(|e| {
            ApiError::new(
                ErrorCode::Unavailable,
                format!("conversation restarting: {e}"),
            )
        })?;
    match result {
        Ok(Appended::New(message)) => Ok(HttpResponse::Created().json(PostedMessage {
            message,
            duplicate: false,
        })),
        Ok(Appended::Duplicate(message)) => Ok(HttpResponse::Ok().json(PostedMessage {
            message,
            duplicate: true,
        })),
        Ok(Appended::NoConversation) | Err(EngineError::NotFound) => {
            Err(ApiError::not_found("conversation"))
        }
        Err(e) => Err(ApiError::new(ErrorCode::Unavailable, e.to_string())),
    }
}

/// Tell every node's consoles (and the visitor) what happened to a conversation.
async fn announce(state: &AppState, event: ConversationEvent, record: &ConversationRecord) {
    parley_actors::engine::announce_conversation(
        &state.engine.backplane,
        &record.workspace_id,
        event,
        record.to_object(),
    )
    .await;
}

/// Who to assign.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    /// An active member of the conversation's inbox, or `null` to unassign.
    pub user_id: Option<String>,
}

/// Assign, reassign or unassign a conversation (admins, or members of its inbox).
/// Emits `conversation {event: "assigned"}` to consoles and the visitor, and an audit
/// entry saying who routed it to whom.
#[utoipa::path(tag = "conversations", request_body = AssignRequest,
    params(("id" = String, Path, description = "Conversation id")), responses(
    (status = 200, body = Object, description = "The conversation now"),
    (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[post("/conversations/{id}/assign")]
#[tracing::instrument(skip_all, fields(user_id = %principal.user.id, conversation_id = %id))]
pub async fn assign(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
    body: crate::extract::Json<AssignRequest>,
) -> ApiResult<web::Json<ConversationObject>> {
    let record = visible(&state, &principal, &id).await?;
    let ws = principal.workspace_id();
    if let Some(user_id) = &body.user_id {
        let user = users::get(state.db.reader(), ws, user_id)
            .await?
            .filter(|u| u.active)
            .ok_or_else(|| ApiError::Validation(format!("user_id: no active user {user_id:?}")))?;
        if !inboxes::is_member(state.db.reader(), ws, &record.inbox_id, &user.id).await? {
            return Err(ApiError::Validation(
                "user_id: the assignee must be a member of the conversation's inbox".into(),
            ));
        }
    }
    let before = record.assignee_id.clone();
    let mut tx = state.db.pool().begin().await?;
    sql::set_assignee(&mut *tx, ws, &record.id, body.user_id.as_deref()).await?;
    let reason = if body.user_id.as_deref() == Some(principal.user.id.as_str()) {
        format!("taken over by {}", principal.user.id)
    } else {
        format!("manual by {}", principal.user.id)
    };
    audit::record(
        &mut tx,
        principal.audit(
            "conversation.assigned",
            "conversation",
            &record.id,
            json!({"from": before, "to": body.user_id, "reason": reason}),
        ),
    )
    .await?;
    tx.commit().await?;
    // Re-read, so the event carries the new assignee's profile.
    let record = sql::get_conversation(state.db.pool(), &record.id)
        .await?
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    metrics::counter!("parley_assignments_total", "reason" => "manual").increment(1);
    announce(&state, ConversationEvent::Assigned, &record).await;
    state
        .engine
        .resync_routing(&record.workspace_id, &record.inbox_id);
    Ok(web::Json(record.to_object()))
}

async fn set_status(
    state: &AppState,
    principal: &Principal,
    id: &str,
    status: ConversationStatus,
) -> ApiResult<ConversationObject> {
    let mut record = visible(state, principal, id).await?;
    if record.status == status {
        return Ok(record.to_object());
    }
    let ws = principal.workspace_id();
    let (action, event) = match status {
        ConversationStatus::Closed => ("conversation.closed", ConversationEvent::Closed),
        ConversationStatus::Open => ("conversation.reopened", ConversationEvent::Reopened),
    };
    let mut tx = state.db.pool().begin().await?;
    sql::set_status(&mut *tx, ws, &record.id, status).await?;
    audit::record(
        &mut tx,
        principal.audit(action, "conversation", &record.id, json!({})),
    )
    .await?;
    tx.commit().await?;
    record.status = status;
    announce(state, event, &record).await;
    state
        .engine
        .resync_routing(&record.workspace_id, &record.inbox_id);
    Ok(record.to_object())
}

/// Close a conversation (admins, or members of its inbox). Idempotent.
#[utoipa::path(tag = "conversations", params(("id" = String, Path, description = "Conversation id")), responses(
    (status = 200, body = Object, description = "The conversation now"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[post("/conversations/{id}/close")]
pub async fn close(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> ApiResult<web::Json<ConversationObject>> {
    Ok(web::Json(
        set_status(&state, &principal, &id, ConversationStatus::Closed).await?,
    ))
}

/// Reopen a conversation (admins, or members of its inbox). Idempotent.
#[utoipa::path(tag = "conversations", params(("id" = String, Path, description = "Conversation id")), responses(
    (status = 200, body = Object, description = "The conversation now"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[post("/conversations/{id}/reopen")]
pub async fn reopen(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> ApiResult<web::Json<ConversationObject>> {
    Ok(web::Json(
        set_status(&state, &principal, &id, ConversationStatus::Open).await?,
    ))
}

/// Test only: crash the conversation's actors (404 unless `engine.fault_injection`).
#[utoipa::path(tag = "testing", params(("id" = String, Path, description = "Conversation id")), responses(
    (status = 204, description = "Fault injected"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
), security(("bearer" = []), ("cookie" = [])))]
#[post("/conversations/{id}/fault")]
pub async fn inject_fault(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    if !state.engine.config.fault_injection {
        return Err(ApiError::not_found("route"));
    }
    let record = visible(&state, &principal, &id).await?;
    let addr = state
        .engine
        .hub
        .send(GetConversation { id: record.id })
        .await
        .map_err(|e| anyhow::anyhow!("hub: {e}"))?;
    addr.do_send(InjectFault);
    Ok(HttpResponse::NoContent().finish())
}
