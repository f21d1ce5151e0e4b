//! WebSocket endpoints: `/ws/agent` and `/ws/visitor`. Each socket is bridged to one
//! engine [`Session`] actor: a reader task turns text frames into `Inbound` messages
//! (awaiting each, so a flood of frames is back-pressured by the actor) and keeps the
//! ping/pong heartbeat; a writer task drains the session's bounded outbound queue into
//! the socket. Every exit path stops the session, which unregisters it everywhere.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use actix::Actor as _;
use actix_web::{HttpRequest, HttpResponse, get, web};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason};
use futures_util::StreamExt as _;
use parley_actors::engine::session::{CLOSE_TIMEOUT, Disconnect, Inbound, Outbound, Peer, Session};
use parley_actors::protocol::{ErrorCode, ServerFrame};
use serde::Deserialize;
use tokio::sync::mpsc;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::{self, Principal};
use crate::error::{ApiError, ApiResult};
use crate::startup::AppState;
use crate::store::{inboxes, visitors};

/// How often the server pings.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);
/// No frame (or pong) from the client for this long closes the socket.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(45);
/// Largest text frame accepted, in bytes.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Register the WebSocket routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(agent_ws).service(visitor_ws);
}

/// `?token=` for clients that cannot set headers.
#[derive(Debug, Deserialize, IntoParams)]
pub struct TokenQuery {
    /// A session token (agents) or visitor token (visitors).
    pub token: Option<String>,
}

fn check_connect_rate(state: &AppState, req: &HttpRequest) -> ApiResult<()> {
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

/// An agent's console socket (session cookie, bearer token, or `?token=`).
#[utoipa::path(tag = "websocket", params(TokenQuery), responses(
    (status = 101, description = "Switching to the WebSocket protocol (see docs/protocol.md)"),
    (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 429, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[get("/ws/agent")]
pub async fn agent_ws(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    principal: Principal,
) -> ApiResult<HttpResponse> {
    check_connect_rate(&state, &req)?;
    let user = principal.user;
    let inbox_ids: HashSet<String> = if user.role == crate::domain::Role::Admin {
        HashSet::new()
    } else {
        inboxes::member_inbox_ids(state.db.reader(), &user.workspace_id, &user.id)
            .await?
            .into_iter()
            .collect()
    };
    let peer = Peer::Agent {
        workspace_id: user.workspace_id,
        user_id: user.id,
        name: user.name,
        is_admin: user.role == crate::domain::Role::Admin,
        inbox_ids,
    };
    bridge(&req, body, &state, peer)
}

/// A website visitor's socket (`?token=` from `POST /api/v1/widget/{channel_id}/sessions`).
#[utoipa::path(tag = "websocket", params(TokenQuery), responses(
    (status = 101, description = "Switching to the WebSocket protocol (see docs/protocol.md)"),
    (status = 401, body = crate::error::Problem, content_type = "application/problem+json"),
    (status = 429, body = crate::error::Problem, content_type = "application/problem+json"),
))]
#[get("/ws/visitor")]
pub async fn visitor_ws(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    query: web::Query<TokenQuery>,
) -> ApiResult<HttpResponse> {
    check_connect_rate(&state, &req)?;
    let unauthorized = || {
        ApiError::new(
            crate::error::ErrorCode::Unauthorized,
            "a valid visitor token is required",
        )
    };
    let token = query.token.as_deref().ok_or_else(unauthorized)?;
    let visitor = visitors::find(state.db.reader(), &auth::token_hash(token))
        .await?
        .ok_or_else(unauthorized)?;
    // The page's origin must be one the chat channel allows (403 otherwise).
    let (_, settings) = crate::routes::widget::chat_channel(&state, &visitor.channel_id).await?;
    crate::routes::widget::check_origin(&req, &settings)?;
    let open =
        visitors::open_conversations(state.db.reader(), &visitor.contact_id, &visitor.channel_id)
            .await?;
    let peer = Peer::Visitor {
        workspace_id: visitor.workspace_id,
        visitor_id: visitor.id,
        contact_id: visitor.contact_id,
        name: visitor.contact_name.unwrap_or_else(|| "Visitor".into()),
        channel_id: visitor.channel_id,
        inbox_id: visitor.inbox_id,
        open_conversations: open,
    };
    bridge(&req, body, &state, peer)
}

fn bridge(
    req: &HttpRequest,
    body: web::Payload,
    state: &AppState,
    peer: Peer,
) -> ApiResult<HttpResponse> {
    let (response, session, stream) = actix_ws::handle(req, body)
        .map_err(|e| ApiError::Validation(format!("WebSocket handshake: {e}")))?;
    let stream = stream
        .max_frame_size(MAX_FRAME_BYTES)
        .aggregate_continuations()
        .max_continuation_size(MAX_FRAME_BYTES);
    let queue = match peer {
        Peer::Agent { .. } => state.engine.config.agent_outbound_queue,
        Peer::Visitor { .. } => state.engine.config.outbound_queue,
    };
    let (tx, rx) = mpsc::channel(queue.max(1));
    let (kill, mut killed) = tokio::sync::watch::channel(None::<(u16, String)>);
    let kill = std::sync::Arc::new(kill);
    let addr = Session::new(state.engine.clone(), peer, tx.clone(), kill.clone()).start();
    metrics::counter!("parley_ws_connections_total").increment(1);

    // Writer: the session's queue into the socket.
    let mut out_session = session.clone();
    actix_web::rt::spawn(async move {
        let mut rx = rx;
        let reason = |code: u16, text: String| {
            Some(CloseReason {
                code: if code == 1001 {
                    CloseCode::Away
                } else if code == 1009 {
                    CloseCode::Size
                } else {
                    CloseCode::Other(code)
                },
                description: Some(text),
            })
        };
        // The kill signal is watched while waiting for a frame *and* while writing
        // one: a client too slow to take the write is exactly the one to close.
        let mut watching = true;
        let close = loop {
            let item = tokio::select! {
                biased;
                changed = killed.changed(), if watching => {
                    match changed.as_ref().ok().and_then(|()| killed.borrow().clone()) {
                        Some((code, text)) => break reason(code, text),
                        None => { watching = changed.is_ok(); continue; }
                    }
                }
                item = rx.recv() => item,
            };
            match item {
                Some(Outbound::Text(text)) => {
                    tokio::select! {
                        biased;
                        changed = killed.changed(), if watching => {
                            match changed.as_ref().ok().and_then(|()| killed.borrow().clone()) {
                                Some((code, text)) => break reason(code, text),
                                None => watching = changed.is_ok(),
                            }
                        }
                        sent = out_session.text(text.to_string()) => {
                            if sent.is_err() {
                                break None;
                            }
                        }
                    }
                }
                Some(Outbound::Close(code, text)) => break reason(code, text),
                None => break None,
            }
        };
        let _ = out_session.close(close).await;
    });

    // Reader + heartbeat.
    let mut session = session;
    actix_web::rt::spawn(async move {
        let mut stream = stream;
        let mut last_heard = Instant::now();
        let mut ping = tokio::time::interval(HEARTBEAT_INTERVAL);
        ping.tick().await;
        let reason = loop {
            tokio::select! {
                frame = stream.next() => {
                    last_heard = Instant::now();
                    match frame {
                        Some(Ok(AggregatedMessage::Text(text))) => {
                            if addr.send(Inbound { text: text.to_string() }).await.is_err() {
                                break None;
                            }
                        }
                        Some(Ok(AggregatedMessage::Binary(_))) => {
                            let frame = ServerFrame::error(ErrorCode::InvalidFrame, "send JSON text frames, not binary", None);
                            let _ = tx.try_send(Outbound::Text(serde_json::to_string(&frame).unwrap_or_default().into()));
                        }
                        Some(Ok(AggregatedMessage::Ping(bytes))) => {
                            if session.pong(&bytes).await.is_err() {
                                break None;
                            }
                        }
                        Some(Ok(AggregatedMessage::Pong(_))) => {}
                        Some(Ok(AggregatedMessage::Close(reason))) => break reason,
                        Some(Err(e)) => {
                            let frame = ServerFrame::error(ErrorCode::FrameTooLarge, format!("unreadable frame: {e}"), None);
                            let _ = tx.try_send(Outbound::Text(serde_json::to_string(&frame).unwrap_or_default().into()));
                            let _ = tx.try_send(Outbound::Close(1009, "frame too large or malformed".into()));
                            break None;
                        }
                        None => break None,
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > CLIENT_TIMEOUT {
                        let _ = tx.try_send(Outbound::Close(CLOSE_TIMEOUT, "heartbeat timeout".into()));
                        break None;
                    }
                    if session.ping(b"").await.is_err() {
                        break None;
                    }
                }
            }
        };
        addr.do_send(Disconnect);
        drop(reason);
    });
    Ok(response)
}
