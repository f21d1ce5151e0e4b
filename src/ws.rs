//! WebSocket endpoints: `/ws/agent` and `/ws/visitor`. Each socket is bridged to one
//! engine [`Session`] actor: a reader task decodes the request's payload into frames,
//! turns text frames into `Inbound` messages (awaiting each, so a flood of frames is
//! back-pressured by the actor) and keeps the ping/pong heartbeat; the response body
//! ([`SocketBody`]) is the session's bounded outbox, encoded as frames as the HTTP
//! dispatcher asks for them (no writer task, no second queue). Every exit path stops the
//! session, which unregisters it everywhere.
//!
//! The framing is actix-http's own (`actix_http::ws`), the codec actix-ws wraps; using
//! it directly saves the channel and task actix-ws keeps per socket (see
//! docs/performance.md, idle sockets).

use std::collections::HashSet;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix::Actor as _;
use actix_codec::Decoder as _;
use actix_http::ws::{CloseReason, Codec, Frame, Item, OpCode, Parser};
use actix_web::body::{BodyStream, MessageBody as _};
use actix_web::web::{Bytes, BytesMut};
use actix_web::{HttpRequest, HttpResponse, get, web};
use futures_util::{FutureExt as _, Stream, StreamExt as _};
use parley_actors::engine::outbox::{Outbound, OutboxReceiver, outbox};
use parley_actors::engine::session::{
    CLOSE_TIMEOUT, Disconnect, Inbound, MAX_INBOUND_BATCH, Peer, Session,
};
use parley_actors::protocol::{ErrorCode, ServerFrame};
use serde::Deserialize;
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
        let (reader, workspace_id, user_id) = (
            state.db.reader().clone(),
            user.workspace_id.clone(),
            user.id.clone(),
        );
        state
            .db
            .run(async move { inboxes::member_inbox_ids(&reader, &workspace_id, &user_id).await })
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
    let visitor = visitors::find(&state.db, &auth::token_hash(token))
        .await?
        .ok_or_else(unauthorized)?;
    // The page's origin must be one the chat channel allows (403 otherwise); the
    // visitor's row carries its channel's settings (one read for both).
    if visitor.channel_kind != "chat" {
        return Err(ApiError::not_found("chat channel"));
    }
    let settings: serde_json::Value = serde_json::from_str(&visitor.channel_settings)
        .map_err(|e| ApiError::from(sqlx::Error::Decode(Box::new(e))))?;
    let settings = crate::widget::settings::stored(&settings);
    crate::routes::widget::check_origin(&req, &settings)?;
    let open =
        visitors::open_conversations(&state.db, &visitor.contact_id, &visitor.channel_id).await?;
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
    let mut handshake = actix_http::ws::handshake(req.head())
        .map_err(|e| ApiError::Validation(format!("WebSocket handshake: {e}")))?;
    let queue = match peer {
        Peer::Agent { .. } => state.engine.config.agent_outbound_queue,
        Peer::Visitor { .. } => state.engine.config.outbound_queue,
    };
    let (out, rx) = outbox(queue);
    let response = handshake
        .message_body(BodyStream::new(SocketBody { rx, done: false }).boxed())
        .map_err(|e| ApiError::Validation(format!("WebSocket handshake: {e}")))?;
    let addr = Session::new(state.engine.clone(), peer, out.clone()).start();
    metrics::counter!("parley_ws_connections_total").increment(1);

    // Reader + heartbeat.
    let mut frames = Frames::new(body.into_inner());
    actix_web::rt::spawn(async move {
        let error = |code: ErrorCode, message: String| -> std::sync::Arc<str> {
            ServerFrame::error(code, message, None).text()
        };
        let mut last_heard = Instant::now();
        let mut ping = tokio::time::interval(HEARTBEAT_INTERVAL);
        ping.tick().await;
        loop {
            tokio::select! {
                frame = frames.next() => {
                    last_heard = Instant::now();
                    // Text frames already read go to the session together (one round
                    // trip per batch); `after` is what ended the batch, if anything did.
                    let mut texts = Vec::new();
                    let mut after = Some(frame);
                    while let Some(Some(Ok(Received::Text(_)))) = &after {
                        if let Some(Some(Ok(Received::Text(text)))) = after.take() {
                            texts.push(text);
                        }
                        if texts.len() < MAX_INBOUND_BATCH {
                            after = frames.next().now_or_never();
                        }
                    }
                    if !texts.is_empty() && addr.send(Inbound { texts }).await.is_err() {
                        break;
                    }
                    let Some(frame) = after else { continue };
                    match frame {
                        Some(Ok(Received::Text(text))) => {
                            if addr.send(Inbound { texts: vec![text] }).await.is_err() {
                                break;
                            }
                        }
                        Some(Ok(Received::Binary)) => {
                            let _ = out.push(error(ErrorCode::InvalidFrame, "send JSON text frames, not binary".into()));
                        }
                        Some(Ok(Received::Ping(bytes))) => {
                            if out.pong(&bytes).is_err() {
                                break;
                            }
                        }
                        Some(Ok(Received::Pong)) => {}
                        Some(Ok(Received::Close)) | None => break,
                        Some(Err(e)) => {
                            let _ = out.push(error(ErrorCode::FrameTooLarge, format!("unreadable frame: {e}")));
                            out.close_after(1009, "frame too large or malformed");
                            break;
                        }
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > CLIENT_TIMEOUT {
                        out.close_after(CLOSE_TIMEOUT, "heartbeat timeout");
                        break;
                    }
                    if out.ping().is_err() {
                        break;
                    }
                }
            }
        }
        addr.do_send(Disconnect);
    });
    Ok(response.into())
}

/// The socket's response body: the session's outbox ([`outbox`]), encoded as WebSocket frames
/// whenever the HTTP dispatcher has room to write (everything queued at that moment
/// goes out as one chunk). A close is the last frame; when every writer is gone, a
/// close without a reason is.
struct SocketBody {
    rx: OutboxReceiver,
    done: bool,
}

/// Most bytes of frames encoded into one chunk of the body.
const MAX_CHUNK: usize = 64 * 1024;

impl Stream for SocketBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut buf = BytesMut::new();
        while !self.done && buf.len() < MAX_CHUNK {
            let item = match Pin::new(&mut self.rx).poll_next(cx) {
                Poll::Ready(item) => item,
                Poll::Pending => break,
            };
            match item {
                Some(Outbound::Text(text)) => {
                    Parser::write_message(&mut buf, text.as_bytes(), OpCode::Text, true, false);
                }
                Some(Outbound::Ping) => {
                    Parser::write_message(&mut buf, b"", OpCode::Ping, true, false);
                }
                Some(Outbound::Pong(payload)) => {
                    Parser::write_message(&mut buf, payload, OpCode::Pong, true, false);
                }
                Some(Outbound::Close(code, description)) => {
                    let reason = CloseReason {
                        code: code.into(),
                        description: Some(description),
                    };
                    Parser::write_close(&mut buf, Some(reason), false);
                    self.done = true;
                }
                None => {
                    Parser::write_close(&mut buf, None, false);
                    self.done = true;
                }
            }
        }
        if !buf.is_empty() {
            Poll::Ready(Some(Ok(buf.freeze())))
        } else if self.done {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}

/// A whole message or control frame from the client.
#[derive(Debug, PartialEq, Eq)]
enum Received {
    Text(String),
    Binary,
    Ping(Bytes),
    Pong,
    Close,
}

/// The request's payload decoded into [`Received`] frames: continuation frames are
/// joined (at most [`MAX_FRAME_BYTES`] in all; the codec checks their order), text is
/// checked to be UTF-8. Holds no buffer while no partial frame is waiting.
struct Frames<S> {
    payload: S,
    buf: BytesMut,
    codec: Codec,
    /// A fragmented message so far: whether it is text, and its bytes.
    partial: Option<(bool, BytesMut)>,
    ended: bool,
}

impl<S> Frames<S> {
    fn new(payload: S) -> Self {
        Self {
            payload,
            buf: BytesMut::new(),
            codec: Codec::new().max_size(MAX_FRAME_BYTES),
            partial: None,
            ended: false,
        }
    }

    /// What a decoded frame amounts to: a whole message, nothing yet, or an error.
    fn receive(&mut self, frame: Frame) -> Result<Option<Received>, String> {
        let whole = |text: bool, bytes: &[u8]| -> Result<Received, String> {
            if !text {
                return Ok(Received::Binary);
            }
            std::str::from_utf8(bytes)
                .map(|s| Received::Text(s.to_owned()))
                .map_err(|_| "a text message that is not UTF-8".to_owned())
        };
        let fragment = |partial: &mut Option<(bool, BytesMut)>, bytes: &[u8]| {
            let Some((_, so_far)) = partial else {
                return Err("a continuation frame with no message to continue".to_owned());
            };
            if so_far.len() + bytes.len() > MAX_FRAME_BYTES {
                return Err(format!("a message over {MAX_FRAME_BYTES} bytes"));
            }
            so_far.extend_from_slice(bytes);
            Ok(())
        };
        match frame {
            Frame::Text(bytes) => whole(true, &bytes).map(Some),
            Frame::Binary(_) => Ok(Some(Received::Binary)),
            Frame::Continuation(Item::FirstText(bytes)) => {
                self.partial = Some((true, BytesMut::from(&bytes[..])));
                Ok(None)
            }
            Frame::Continuation(Item::FirstBinary(bytes)) => {
                self.partial = Some((false, BytesMut::from(&bytes[..])));
                Ok(None)
            }
            Frame::Continuation(Item::Continue(bytes)) => {
                fragment(&mut self.partial, &bytes).map(|()| None)
            }
            Frame::Continuation(Item::Last(bytes)) => {
                fragment(&mut self.partial, &bytes)?;
                let (text, message) = self.partial.take().unwrap_or_default();
                whole(text, &message).map(Some)
            }
            Frame::Ping(bytes) => Ok(Some(Received::Ping(bytes))),
            Frame::Pong(_) => Ok(Some(Received::Pong)),
            Frame::Close(_) => Ok(Some(Received::Close)),
        }
    }
}

impl<S, E> Stream for Frames<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    type Item = Result<Received, String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            match this.codec.decode(&mut this.buf) {
                Ok(Some(frame)) => match this.receive(frame) {
                    Ok(Some(received)) => return Poll::Ready(Some(Ok(received))),
                    Ok(None) => continue,
                    Err(e) => {
                        this.ended = true;
                        return Poll::Ready(Some(Err(e)));
                    }
                },
                Ok(None) => {}
                Err(e) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(e.to_string())));
                }
            }
            if this.buf.is_empty() && this.buf.capacity() != 0 {
                // Idle sockets hold no read buffer (what was split off keeps its own).
                this.buf = BytesMut::new();
            }
            match Pin::new(&mut this.payload).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    if this.buf.is_empty() {
                        this.buf = BytesMut::from(chunk);
                    } else {
                        this.buf.extend_from_slice(&chunk);
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(e.to_string())));
                }
                Poll::Ready(None) => {
                    this.ended = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use actix_codec::Encoder as _;
    use actix_http::ws::Message;
    use futures_util::stream;
    use proptest::prelude::*;

    use super::*;

    /// `messages` as a client sends them (masked), in one buffer.
    fn wire(messages: Vec<Message>) -> Vec<u8> {
        let mut codec = Codec::new().client_mode();
        let mut buf = BytesMut::new();
        for message in messages {
            codec.encode(message, &mut buf).unwrap();
        }
        buf.to_vec()
    }

    /// Decode `bytes` fed in chunks of `chunk` bytes; everything the stream yields.
    async fn decode(bytes: &[u8], chunk: usize) -> Vec<Result<Received, String>> {
        let chunks: Vec<Result<Bytes, Infallible>> = bytes
            .chunks(chunk.max(1))
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Frames::new(stream::iter(chunks)).collect().await
    }

    fn text(s: &str) -> Result<Received, String> {
        Ok(Received::Text(s.to_owned()))
    }

    #[tokio::test]
    async fn fragments_are_joined_and_control_frames_may_come_between() {
        let bytes = wire(vec![
            Message::Continuation(actix_http::ws::Item::FirstText(Bytes::from_static(b"he"))),
            Message::Ping(Bytes::from_static(b"p")),
            Message::Continuation(actix_http::ws::Item::Continue(Bytes::from_static(b"ll"))),
            Message::Continuation(actix_http::ws::Item::Last(Bytes::from_static(b"o"))),
            Message::Binary(Bytes::from_static(b"\x00")),
            Message::Pong(Bytes::new()),
            Message::Close(None),
        ]);
        assert_eq!(
            decode(&bytes, 1).await,
            vec![
                Ok(Received::Ping(Bytes::from_static(b"p"))),
                text("hello"),
                Ok(Received::Binary),
                Ok(Received::Pong),
                Ok(Received::Close),
            ]
        );
    }

    #[tokio::test]
    async fn bad_messages_end_the_stream_with_an_error() {
        // Frames as a client could put them on the wire, valid or not.
        let raw = |frames: &[(OpCode, bool, &[u8])]| {
            let mut buf = BytesMut::new();
            for (op, fin, payload) in frames {
                Parser::write_message(&mut buf, payload, *op, *fin, true);
            }
            buf.to_vec()
        };
        let long = vec![b'a'; MAX_FRAME_BYTES - 10];
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (raw(&[(OpCode::Continue, true, b"x")]), "not started"),
            (
                raw(&[(OpCode::Text, false, b"a"), (OpCode::Text, true, b"b")]),
                "started",
            ),
            (
                raw(&[
                    (OpCode::Text, false, &long),
                    (OpCode::Continue, true, &[b'a'; 11]),
                ]),
                "over 65536 bytes",
            ),
            (
                raw(&[(
                    OpCode::Text,
                    true,
                    "x".repeat(MAX_FRAME_BYTES + 1).as_bytes(),
                )]),
                "size limit",
            ),
        ];
        for (bytes, why) in cases {
            let got = decode(&bytes, 4096).await;
            assert_eq!(got.len(), 1, "{got:?}");
            let e = got[0].as_ref().unwrap_err();
            assert!(e.to_lowercase().contains(why), "{e}");
        }
        // A text frame that is not UTF-8 (the codec does not check).
        let mut bytes = wire(vec![Message::Text("ab".into())]);
        // Unmask, corrupt, and re-mask with the zero mask the frame now claims.
        let (header, rest) = bytes.split_at_mut(2);
        let mask: [u8; 4] = rest[..4].try_into().unwrap();
        for (i, b) in rest[4..].iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
        rest[4] = 0xff;
        rest[..4].copy_from_slice(&[0; 4]);
        assert_eq!(header[1] & 0x80, 0x80);
        let got = decode(&bytes, 64).await;
        assert_eq!(got.len(), 1);
        assert!(got[0].as_ref().unwrap_err().contains("not UTF-8"));
    }

    #[tokio::test]
    async fn an_idle_decoder_holds_no_buffer() {
        let bytes = wire(vec![Message::Text("hello".into())]);
        let chunk: Result<Bytes, Infallible> = Ok(Bytes::copy_from_slice(&bytes));
        let mut frames = Frames::new(stream::iter([chunk]).chain(stream::pending()));
        assert_eq!(frames.next().await, Some(text("hello")));
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        assert!(Pin::new(&mut frames).poll_next(&mut cx).is_pending());
        assert_eq!(frames.buf.capacity(), 0);
    }

    proptest! {
        /// Whatever the chunk boundaries, the same messages come out.
        #[test]
        fn chunking_does_not_change_what_is_decoded(
            texts in proptest::collection::vec("[a-zé€]{0,300}", 1..8),
            chunk in 1usize..600,
        ) {
            let bytes = wire(texts.iter().map(|t| Message::Text(t.clone().into())).collect());
            let got = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(decode(&bytes, chunk));
            prop_assert_eq!(got, texts.iter().map(|t| text(t)).collect::<Vec<_>>());
        }
    }

    #[tokio::test]
    async fn the_body_writes_frames_in_order_and_closes_last() {
        let (out, rx) = outbox(8);
        out.push("one".into()).unwrap();
        out.push("two".into()).unwrap();
        out.pong(b"p").unwrap();
        let mut body = SocketBody { rx, done: false };
        let first = body.next().await.unwrap().unwrap();
        out.close(4008, "too slow");
        out.push("three".into()).unwrap_err();
        let second = body.next().await.unwrap().unwrap();
        assert_eq!(body.next().await, None);

        let mut codec = Codec::new().client_mode();
        let mut buf = BytesMut::from(&first[..]);
        buf.extend_from_slice(&second);
        let mut frames = Vec::new();
        while let Some(frame) = codec.decode(&mut buf).unwrap() {
            frames.push(frame);
        }
        assert_eq!(
            frames,
            vec![
                Frame::Pong(Bytes::from_static(b"p")),
                Frame::Text(Bytes::from_static(b"one")),
                Frame::Text(Bytes::from_static(b"two")),
                Frame::Close(Some(CloseReason {
                    code: 4008.into(),
                    description: Some("too slow".into()),
                })),
            ]
        );
    }
}
