//! Public endpoints for the chat widget. No login: the visitor token that
//! `POST /widget/{channel_id}/sessions` returns is the visitor's identity (kept by the
//! widget across page loads) and authenticates `/ws/visitor` and the visitor's other
//! calls (`Authorization: Bearer plv_…`).
//!
//! Every call is checked against the channel's `allowed_origins` (the `Origin` header a
//! browser sends): an allowed origin is echoed in `Access-Control-Allow-Origin` (by
//! [`cors`], on success and on error alike), any other is refused with 403. Preflight
//! `OPTIONS` requests are answered by [`preflight`].

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage as _, HttpRequest, HttpResponse, get, post, web};
use parley_actors::engine::presence_key;
use parley_actors::protocol::{ConversationEvent, ConversationObject, ConversationStatus};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::chatflows::{ChatflowView, Display, Trigger};
use crate::auth;
use crate::domain::{EmailAddress, Name};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::startup::AppState;
use crate::store::channels::ChannelRow;
use crate::store::visitors::VisitorRow;
use crate::store::{audit, channels, chatflows, engine as sql, visitors};
use crate::widget::settings::{self as chat_settings, AvailabilityMode, Branding, ChatSettings};
use crate::widget::{availability, identity, targeting};

/// Register this module's routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.route(
        "/widget/{channel_id}/{tail:.*}",
        web::method(Method::OPTIONS).to(preflight),
    )
    .service(get_config)
    .service(create_session)
    .service(set_contact)
    .service(end_conversation);
}

/// Prefix of visitor tokens.
pub const VISITOR_PREFIX: &str = "plv_";

/// Set on a request whose `Origin` the channel allows; [`cors`] echoes it.
#[derive(Debug, Clone)]
pub struct AllowedOrigin(pub String);

/// Middleware (on `/api/v1`): a request a handler marked with [`AllowedOrigin`] gets the
/// CORS answer headers, whatever its status, so the widget can read errors too.
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let origin = res.request().extensions().get::<AllowedOrigin>().cloned();
    if let Some(AllowedOrigin(origin)) = origin
        && let Ok(v) = HeaderValue::from_str(&origin)
    {
        let h = res.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Retry-After, Content-Disposition"),
        );
    }
    Ok(res)
}

fn origin_header(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Refuse a request whose `Origin` the channel does not allow; mark an allowed one
/// for [`cors`].
pub fn check_origin(req: &HttpRequest, settings: &ChatSettings) -> ApiResult<()> {
    let origin = origin_header(req);
    if !chat_settings::origin_allowed(settings, origin.as_deref()) {
        return Err(ApiError::forbidden(format!(
            "origin {} may not use this chat channel (see its allowed_origins)",
            origin.as_deref().unwrap_or("(none)")
        )));
    }
    if let Some(o) = origin {
        req.extensions_mut().insert(AllowedOrigin(o));
    }
    Ok(())
}

/// A chat channel by id, with its settings, or 404.
pub async fn chat_channel(state: &AppState, id: &str) -> ApiResult<(ChannelRow, ChatSettings)> {
    let channel = channels::get_any(&state.db, id)
        .await?
        .filter(|c| c.kind == "chat")
        .ok_or_else(|| ApiError::not_found("chat channel"))?;
    let settings = chat_settings::stored(&channel.settings);
    Ok((channel, settings))
}

/// The chat channel, after its origin check.
async fn checked_channel(
    req: &HttpRequest,
    state: &AppState,
    id: &str,
) -> ApiResult<(ChannelRow, ChatSettings)> {
    let (channel, settings) = chat_channel(state, id).await?;
    check_origin(req, &settings)?;
    Ok((channel, settings))
}

/// The visitor named by `Authorization: Bearer plv_…`, on this channel; 401 otherwise.
pub async fn bearer_visitor(
    req: &HttpRequest,
    state: &AppState,
    channel_id: &str,
) -> ApiResult<VisitorRow> {
    let unauthorized = || {
        ApiError::new(
            ErrorCode::Unauthorized,
            "a visitor token is required (Authorization: Bearer plv_…)",
        )
    };
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| t.starts_with(VISITOR_PREFIX))
        .ok_or_else(unauthorized)?;
    visitors::find(&state.db, &auth::token_hash(token))
        .await?
        .filter(|v| v.channel_id == channel_id)
        .ok_or_else(unauthorized)
}

/// CORS preflight for the widget's endpoints: 204 with the allowed methods and headers
/// for an allowed origin, 403 problem otherwise.
pub async fn preflight(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (channel_id, _) = path.into_inner();
    let (_, settings) = chat_channel(&state, &channel_id).await?;
    check_origin(&req, &settings)?;
    Ok(HttpResponse::NoContent()
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"))
        .insert_header((
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "Content-Type, Authorization",
        ))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
        .finish())
}

/// The per-IP limit shared with socket connects (`engine.connects_per_ip_per_minute`).
pub fn rate_limit(req: &HttpRequest, state: &AppState) -> ApiResult<()> {
    let ip = auth::client_ip(req, state.settings.server.trust_proxy_headers);
    state
        .ws_connect_limiter
        .check_key(&ip)
        .map_err(|nu| ApiError::RateLimited {
            retry_after: nu.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            )),
        })
}

/// `?page_url=`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ConfigQuery {
    /// The page the widget is on (targeting reads it).
    #[serde(default)]
    pub page_url: String,
}

/// The chatflow the widget follows on this page.
#[derive(Debug, Serialize, ToSchema)]
pub struct WidgetChatflow {
    /// Chatflow id.
    pub id: String,
    /// When to open.
    pub trigger: Trigger,
    /// First message ("" = the branding's greeting).
    pub welcome_message: String,
    /// `popup` or `launcher`.
    pub display: Display,
}

/// What the widget needs before it shows.
#[derive(Debug, Serialize, ToSchema)]
pub struct WidgetConfig {
    /// The chat channel.
    pub channel_id: String,
    /// Look.
    pub branding: Branding,
    /// Whether someone is there now (else the widget shows the offline form).
    pub available: bool,
    /// What to do when not available.
    pub offline: chat_settings::Offline,
    /// The chatflow for this page; `null` = do not show the widget here.
    pub chatflow: Option<WidgetChatflow>,
}

/// Whether the channel is available now, per its availability mode.
async fn available(state: &AppState, channel: &ChannelRow, settings: &ChatSettings) -> bool {
    match settings.availability.mode {
        AvailabilityMode::Always => true,
        AvailabilityMode::BusinessHours => {
            availability::within_hours(&settings.availability, chrono::Utc::now())
        }
        AvailabilityMode::AgentsOnline => {
            let pool = match state.engine.store.routing_snapshot(&channel.inbox_id).await {
                Ok(Some(s)) => s.pool,
                _ => return false,
            };
            for member in pool {
                let key = presence_key(&channel.workspace_id, &member.user_id);
                if let Ok(sessions) = state.engine.backplane.set_members(&key).await
                    && sessions.iter().any(|s| s.ends_with("\tonline"))
                {
                    return true;
                }
            }
            false
        }
    }
}

/// The widget's configuration for a page: branding, availability, and the chatflow
/// that targets the page (by priority), if any.
#[utoipa::path(tag = "widget", params(("channel_id" = String, Path, description = "Chat channel id"), ConfigQuery), responses(
    (status = 200, body = WidgetConfig),
    (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[get("/widget/{channel_id}/config")]
pub async fn get_config(
    req: HttpRequest,
    state: web::Data<AppState>,
    channel_id: web::Path<String>,
    query: web::Query<ConfigQuery>,
) -> ApiResult<HttpResponse> {
    let (channel, settings) = checked_channel(&req, &state, &channel_id).await?;
    if query.page_url.len() > 2048 {
        return Err(ApiError::Validation(
            "page_url: must be at most 2048 bytes".into(),
        ));
    }
    let flows: Vec<ChatflowView> = chatflows::list_for_channel(state.db.reader(), &channel.id)
        .await?
        .into_iter()
        .map(ChatflowView::from)
        .collect();
    let candidates: Vec<targeting::Candidate<'_>> = flows
        .iter()
        .map(|f| targeting::Candidate {
            enabled: f.enabled,
            priority: f.priority,
            created_at: f.created_at.timestamp_millis(),
            id: &f.id,
            targeting: &f.targeting,
        })
        .collect();
    let chatflow = targeting::select(&candidates, &query.page_url).map(|i| {
        let f = &flows[i];
        WidgetChatflow {
            id: f.id.clone(),
            trigger: f.trigger,
            welcome_message: f.welcome_message.clone(),
            display: f.display,
        }
    });
    let available = available(&state, &channel, &settings).await;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(WidgetConfig {
            channel_id: channel.id,
            branding: settings.branding,
            available,
            offline: settings.offline,
            chatflow,
        }))
}

/// A site's word for who the visitor is: the email, and
/// `hex(HMAC-SHA256(identity_secret, email))` computed on the site's server.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitorIdentity {
    /// The logged-in user's email.
    #[schema(value_type = String)]
    pub email: EmailAddress,
    /// Their name, if the site knows it.
    #[schema(value_type = Option<String>)]
    pub name: Option<Name>,
    /// Lower-case hex HMAC-SHA256 of the email under the channel's identity secret.
    pub hash: String,
}

/// A visit.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVisitorSession {
    /// The page the widget is on.
    #[serde(default)]
    pub page_url: String,
    /// The token from an earlier visit, to stay the same visitor.
    pub visitor_token: Option<String>,
    /// Signed identity of a logged-in user: the visitor becomes that contact.
    pub identity: Option<VisitorIdentity>,
}

/// The visitor's identity and open conversations.
#[derive(Debug, Serialize, ToSchema)]
pub struct VisitorSession {
    /// Keep this (e.g. in localStorage) and send it back on the next visit.
    pub visitor_token: String,
    /// The visitor.
    pub visitor_id: String,
    /// The contact the visitor is.
    pub contact_id: String,
    /// The chat channel.
    pub channel_id: String,
    /// Open conversations, newest first.
    pub conversation_ids: Vec<String>,
    /// The same open conversations as objects (status, assignee profile), newest first.
    #[schema(value_type = Vec<Object>)]
    pub conversations: Vec<ConversationObject>,
    /// `true` when the token given was unknown and a new visitor was made.
    pub new_visitor: bool,
}

async fn session_answer(
    state: &AppState,
    token: String,
    v: VisitorRow,
    new_visitor: bool,
) -> ApiResult<HttpResponse> {
    // A visitor made just now has no conversations yet.
    let conversation_ids = if new_visitor {
        Vec::new()
    } else {
        visitors::open_conversations(&state.db, &v.contact_id, &v.channel_id).await?
    };
    let mut conversations = Vec::with_capacity(conversation_ids.len());
    for id in &conversation_ids {
        if let Some(c) = sql::read_conversation(&state.db, id).await? {
            conversations.push(c.to_object());
        }
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(VisitorSession {
            visitor_token: token,
            visitor_id: v.id,
            contact_id: v.contact_id,
            channel_id: v.channel_id,
            conversation_ids,
            conversations,
            new_visitor,
        }))
}

/// Start (or continue) a visit on a chat channel. With `identity`, the visitor is the
/// contact whose email the site vouched for; a wrong `hash` is `401 invalid_identity`
/// and changes nothing.
#[utoipa::path(tag = "widget", request_body = CreateVisitorSession,
    params(("channel_id" = String, Path, description = "Chat channel id")), responses(
    (status = 200, body = VisitorSession),
    (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 429, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[post("/widget/{channel_id}/sessions")]
#[tracing::instrument(skip_all, fields(channel_id = %channel_id))]
pub async fn create_session(
    req: HttpRequest,
    state: web::Data<AppState>,
    channel_id: web::Path<String>,
    body: crate::extract::Json<CreateVisitorSession>,
) -> ApiResult<HttpResponse> {
    let (channel, _) = checked_channel(&req, &state, &channel_id).await?;
    rate_limit(&req, &state)?;
    let b = body.into_inner();
    if b.page_url.len() > 2048 {
        return Err(ApiError::Validation(
            "page_url: must be at most 2048 bytes".into(),
        ));
    }
    // A signed identity names the contact; check it before anything changes.
    let identified = match &b.identity {
        None => None,
        Some(id) => {
            let ok = channel
                .identity_secret
                .as_deref()
                .is_some_and(|secret| identity::verify(secret, id.email.as_str(), &id.hash));
            if !ok {
                return Err(ApiError::new(
                    ErrorCode::InvalidIdentity,
                    "identity.hash: not the HMAC-SHA256 of the email under this channel's \
                     identity secret",
                ));
            }
            Some(id)
        }
    };
    let known = match b.visitor_token.as_deref() {
        Some(token) => visitors::find(&state.db, &auth::token_hash(token))
            .await?
            .filter(|v| v.channel_id == channel.id)
            .map(|v| (token.to_owned(), v)),
        None => None,
    };
    let user_agent: String = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .chars()
        .take(256)
        .collect();
    if let Some(id) = identified {
        let email = id.email.as_str();
        let mut tx = state.db.pool().begin().await?;
        let contact_id =
            match visitors::find_verified_contact(&mut *tx, &channel.workspace_id, email).await? {
                Some(c) => c,
                None => {
                    visitors::create_verified_contact(
                        &mut *tx,
                        &channel.workspace_id,
                        email,
                        id.name.as_ref().map(Name::as_str),
                    )
                    .await?
                }
            };
        if let Some(name) = &id.name {
            visitors::set_contact_name(&mut *tx, &contact_id, name.as_str()).await?;
        }
        if let Some((token, v)) = known.filter(|(_, v)| v.contact_id == contact_id) {
            visitors::touch(&mut *tx, &v.id, &b.page_url).await?;
            tx.commit().await?;
            return session_answer(&state, token, v, false).await;
        }
        let token = auth::new_token(VISITOR_PREFIX);
        let v = visitors::create_for_contact(
            &mut tx,
            &channel.workspace_id,
            &channel.id,
            &contact_id,
            &auth::token_hash(&token),
            &b.page_url,
            &user_agent,
        )
        .await?;
        tx.commit().await?;
        return session_answer(&state, token, v, true).await;
    }
    if let Some((token, v)) = known {
        let (id, page_url) = (v.id.clone(), b.page_url.clone());
        state
            .db
            .write(move |c| Box::pin(async move { visitors::touch(c, &id, &page_url).await }))
            .await?;
        return session_answer(&state, token, v, false).await;
    }
    let token = auth::new_token(VISITOR_PREFIX);
    let hash = auth::token_hash(&token);
    let v = state
        .db
        .write_conn(move |mut c| {
            Box::pin(async move {
                visitors::create(&mut c, &channel, &hash, &b.page_url, &user_agent).await
            })
        })
        .await?;
    session_answer(&state, token, v, true).await
}

/// The email (and name) a visitor left in the offline form.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactDetails {
    /// Where the team will answer.
    #[schema(value_type = String)]
    pub email: EmailAddress,
    /// Their name.
    #[schema(value_type = Option<String>)]
    pub name: Option<Name>,
}

/// The contact as the visitor sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactAnswer {
    /// The contact.
    pub contact_id: String,
    /// False when the contact's email was vouched for by the site (identity) and was
    /// kept.
    pub updated: bool,
}

/// The visitor leaves their email (and name), e.g. in the offline form, so the team can
/// answer by email. Needs `Authorization: Bearer <visitor_token>`. An identified
/// contact's email (vouched for by the site) is never replaced.
#[utoipa::path(tag = "widget", request_body = ContactDetails,
    params(("channel_id" = String, Path, description = "Chat channel id")), responses(
    (status = 200, body = ContactAnswer),
    (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[post("/widget/{channel_id}/contact")]
pub async fn set_contact(
    req: HttpRequest,
    state: web::Data<AppState>,
    channel_id: web::Path<String>,
    body: crate::extract::Json<ContactDetails>,
) -> ApiResult<web::Json<ContactAnswer>> {
    let (channel, _) = checked_channel(&req, &state, &channel_id).await?;
    let v = bearer_visitor(&req, &state, &channel.id).await?;
    let b = body.into_inner();
    let updated = visitors::set_unverified_email(
        state.db.pool(),
        &v.contact_id,
        b.email.as_str(),
        b.name.as_ref().map(Name::as_str),
    )
    .await?;
    Ok(web::Json(ContactAnswer {
        contact_id: v.contact_id,
        updated,
    }))
}

/// The visitor ends one of their conversations ("End chat"): it is closed, consoles and
/// the visitor get `conversation {event: "closed"}`, and the visitor's next `send`
/// without `conversation_id` (on a new socket) starts a new one. Idempotent.
#[utoipa::path(tag = "widget",
    params(("channel_id" = String, Path, description = "Chat channel id"),
           ("id" = String, Path, description = "Conversation id")), responses(
    (status = 200, body = Object, description = "The conversation now"),
    (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 403, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 404, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[post("/widget/{channel_id}/conversations/{id}/end")]
pub async fn end_conversation(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> ApiResult<web::Json<ConversationObject>> {
    let (channel_id, id) = path.into_inner();
    let (channel, _) = checked_channel(&req, &state, &channel_id).await?;
    let v = bearer_visitor(&req, &state, &channel.id).await?;
    let mut record = sql::get_conversation(state.db.pool(), &id)
        .await?
        .filter(|c| c.contact_id == v.contact_id && c.channel_id == channel.id)
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    if record.status == ConversationStatus::Closed {
        return Ok(web::Json(record.to_object()));
    }
    let mut tx = state.db.pool().begin().await?;
    sql::set_status(
        &mut *tx,
        &record.workspace_id,
        &record.id,
        ConversationStatus::Closed,
    )
    .await?;
    audit::record(
        &mut tx,
        audit::Entry {
            workspace_id: &record.workspace_id,
            actor_id: None,
            action: "conversation.closed",
            target_type: "conversation",
            target_id: &record.id,
            details: json!({"by": "visitor", "contact_id": v.contact_id}),
        },
    )
    .await?;
    tx.commit().await?;
    record.status = ConversationStatus::Closed;
    parley_actors::engine::announce_conversation(
        &state.engine.backplane,
        &record.workspace_id,
        ConversationEvent::Closed,
        record.to_object(),
    )
    .await;
    state
        .engine
        .resync_routing(&record.workspace_id, &record.inbox_id);
    Ok(web::Json(record.to_object()))
}
