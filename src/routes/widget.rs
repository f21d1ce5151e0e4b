//! Public endpoints for the chat widget: a visitor session on a chat channel. No login:
//! the visitor token it returns is the visitor's identity (kept by the widget across page
//! loads) and authenticates `/ws/visitor`.

use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth;
use crate::error::{ApiError, ApiResult};
use crate::startup::AppState;
use crate::store::{channels, visitors};

/// Register this module's routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_session);
}

/// Prefix of visitor tokens.
pub const VISITOR_PREFIX: &str = "plv_";

/// A visit.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVisitorSession {
    /// The page the widget is on.
    #[serde(default)]
    pub page_url: String,
    /// The token from an earlier visit, to stay the same visitor.
    pub visitor_token: Option<String>,
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
    /// `true` when the token given was unknown and a new visitor was made.
    pub new_visitor: bool,
}

/// Start (or continue) a visit on a chat channel.
#[utoipa::path(tag = "widget", request_body = CreateVisitorSession,
    params(("channel_id" = String, Path, description = "Chat channel id")), responses(
    (status = 200, body = VisitorSession),
    (status = 400, body = crate::error::Problem, content_type = "application/problem+json"),
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
    let ip = auth::client_ip(&req, state.settings.server.trust_proxy_headers);
    if let Err(nu) = state.ws_connect_limiter.check_key(&ip) {
        return Err(ApiError::RateLimited {
            retry_after: nu.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            )),
        });
    }
    let b = body.into_inner();
    if b.page_url.len() > 2048 {
        return Err(ApiError::Validation(
            "page_url: must be at most 2048 bytes".into(),
        ));
    }
    let channel = channels::get_any(state.db.pool(), &channel_id)
        .await?
        .filter(|c| c.kind == "chat")
        .ok_or_else(|| ApiError::not_found("chat channel"))?;
    let known = match b.visitor_token.as_deref() {
        Some(token) => visitors::find(state.db.pool(), &auth::token_hash(token))
            .await?
            .filter(|v| v.channel_id == channel.id)
            .map(|v| (token.to_owned(), v)),
        None => None,
    };
    if let Some((token, v)) = known {
        visitors::touch(state.db.pool(), &v.id, &b.page_url).await?;
        let conversation_ids =
            visitors::open_conversations(state.db.pool(), &v.contact_id, &v.channel_id).await?;
        return Ok(HttpResponse::Ok().json(VisitorSession {
            visitor_token: token,
            visitor_id: v.id,
            contact_id: v.contact_id,
            channel_id: v.channel_id,
            conversation_ids,
            new_visitor: false,
        }));
    }
    let token = auth::new_token(VISITOR_PREFIX);
    let user_agent: String = req
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .chars()
        .take(256)
        .collect();
    let mut tx = state.db.pool().begin().await?;
    let v = visitors::create(
        &mut tx,
        &channel.workspace_id,
        &channel.id,
        &auth::token_hash(&token),
        &b.page_url,
        &user_agent,
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(VisitorSession {
        visitor_token: token,
        visitor_id: v.id,
        contact_id: v.contact_id,
        channel_id: v.channel_id,
        conversation_ids: Vec::new(),
        new_visitor: true,
    }))
}
