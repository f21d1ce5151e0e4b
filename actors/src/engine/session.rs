//! Session: one per WebSocket, agent or visitor (`AgentSession` and `VisitorSession` of
//! the design are the two [`Peer`] kinds of this one actor — they share parsing,
//! authorisation, ordering and the bounded outbound queue, and differ in what they may
//! send and see). The socket layer feeds it [`Inbound`] text frames, and the socket's
//! response body drains its [`Outbox`] into the socket; the session never touches the
//! socket itself.
//!
//! Inbound frames are handled strictly one at a time (`ctx.wait`), so a client's
//! messages are stored in the order it sent them. The outbound queue is bounded: a
//! client that cannot keep up is closed with [`CLOSE_TOO_SLOW`] and resumes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use actix::prelude::*;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::conversation::{
    Audience, ConversationActor, Deliver, Describe, Post, Subscribe, Typing, Unsubscribe,
    ViewersChanged,
};
use super::events::WsEvent;
use super::hub::GetConversation;
use super::outbox::{Outbox, PushError};
use super::{Engine, EngineError, online_key, presence_key, viewers_key, workspace_topic};
use crate::backplane::{Event, Payload};
use crate::protocol::{
    Attachment, Channel, ClientFrame, ConversationEvent, ErrorCode, MessageObject, Participant,
    ParticipantKind, PresenceState, PresenceStatus, SendKind, ServerFrame, parse_client_frame,
};
use crate::store::{Appended, ConversationRecord, NewConversation, NewMessage};

/// Posts one socket may have waiting for their commits at once. A socket that sends
/// faster than its messages commit has them batched together (instead of one commit
/// per message); past this many, the session reads no further frame until one is done.
const MAX_IN_FLIGHT: usize = 32;

/// Close code: the client fell too far behind; reconnect and `resume`.
pub const CLOSE_TOO_SLOW: u16 = 4008;
/// Close code: the server is shutting down; reconnect (to any node) and `resume`.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code: no pong within the heartbeat timeout.
pub const CLOSE_TIMEOUT: u16 = 4000;
/// Longest `client_id`, in characters.
pub const MAX_CLIENT_ID: usize = 100;
/// Most attachments on one message.
pub const MAX_ATTACHMENTS: usize = 10;

/// Who is on the other end of the socket.
#[derive(Debug, Clone)]
pub enum Peer {
    /// An agent's console.
    Agent {
        /// Workspace.
        workspace_id: String,
        /// The user.
        user_id: String,
        /// Display name.
        name: String,
        /// Admins see every inbox.
        is_admin: bool,
        /// Inboxes the agent is a member of.
        inbox_ids: HashSet<String>,
    },
    /// A website visitor's widget.
    Visitor {
        /// Workspace.
        workspace_id: String,
        /// Visitor id (rate-limit key).
        visitor_id: String,
        /// The contact the visitor is.
        contact_id: String,
        /// Display name shown to agents.
        name: String,
        /// The chat channel.
        channel_id: String,
        /// The channel's inbox.
        inbox_id: String,
        /// The visitor's open conversations, subscribed at start.
        open_conversations: Vec<String>,
    },
}

/// Text frames from the client, in the order they came: every whole frame the socket
/// had read when the first one was taken (see [`MAX_INBOUND_BATCH`]). The answer comes
/// once each has been handled, so a socket has one batch in the session at a time.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Inbound {
    /// The frames' texts.
    pub texts: Vec<String>,
}

/// Most frames one [`Inbound`] carries. A socket with a backlog hands its frames over in
/// batches: one round trip to the session per batch instead of per frame, so a backlog
/// drains faster than it builds up (with one frame per round trip, each socket's intake
/// was bounded by how often its reader was polled, and a backlog, once there, stayed).
pub const MAX_INBOUND_BATCH: usize = 32;

/// The socket is gone (or the server is shutting down): clean up and stop.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Disconnect;

/// A post's result, with what its answer needs (`client_id`, `ref`).
type PostOutcome = (
    Result<Result<Appended, EngineError>, actix::MailboxError>,
    String,
    Option<String>,
);

/// One socket's session.
pub struct Session {
    id: u64,
    engine: Engine,
    peer: Peer,
    out: Outbox,
    convs: HashMap<String, Addr<ConversationActor>>,
    viewing: Option<String>,
    status: PresenceStatus,
    known_presence: HashMap<String, PresenceState>,
    closed: bool,
    /// Posts waiting for their commits (see [`MAX_IN_FLIGHT`]), answered in order.
    posts: super::InOrder<PostOutcome>,
    /// A conversation this visitor's session just created: routed as soon as its first
    /// message is queued with it (see [`Session::start_conversation`]).
    route_on_post: Option<String>,
    /// Conversations this session handed to the router, so that none is handed over
    /// twice (its first message's ack after an early route; a visitor has a handful).
    routed: Vec<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("id", &self.id).finish()
    }
}

impl Session {
    /// A session for `peer`, writing to `out`.
    pub fn new(engine: Engine, peer: Peer, out: Outbox) -> Self {
        Self {
            // Random, not a counter: session ids name entries in sets shared by nodes.
            id: uuid::Uuid::new_v4().as_u64_pair().0,
            engine,
            peer,
            out,
            convs: HashMap::new(),
            viewing: None,
            status: PresenceStatus::Online,
            known_presence: HashMap::new(),
            closed: false,
            posts: super::InOrder::default(),
            route_on_post: None,
            routed: Vec::new(),
        }
    }

    fn workspace_id(&self) -> &str {
        match &self.peer {
            Peer::Agent { workspace_id, .. } | Peer::Visitor { workspace_id, .. } => workspace_id,
        }
    }

    fn participant(&self) -> Participant {
        match &self.peer {
            Peer::Agent { user_id, name, .. } => Participant {
                kind: ParticipantKind::Agent,
                id: user_id.clone(),
                name: name.clone(),
            },
            Peer::Visitor {
                contact_id, name, ..
            } => Participant {
                kind: ParticipantKind::Visitor,
                id: contact_id.clone(),
                name: name.clone(),
            },
        }
    }

    fn audience(&self) -> Audience {
        match &self.peer {
            Peer::Agent { user_id, .. } => Audience::Agent {
                user_id: user_id.clone(),
            },
            Peer::Visitor { contact_id, .. } => Audience::Visitor {
                contact_id: contact_id.clone(),
            },
        }
    }

    fn may_see(&self, record: &ConversationRecord) -> bool {
        match &self.peer {
            Peer::Agent {
                workspace_id,
                is_admin,
                inbox_ids,
                ..
            } => {
                record.workspace_id == *workspace_id
                    && (*is_admin || inbox_ids.contains(&record.inbox_id))
            }
            Peer::Visitor {
                workspace_id,
                contact_id,
                channel_id,
                ..
            } => {
                record.workspace_id == *workspace_id
                    && record.contact_id == *contact_id
                    && record.channel_id == *channel_id
            }
        }
    }

    /// Queue a frame; close the socket when the client cannot keep up.
    fn push(&mut self, frame: Arc<str>, ctx: &mut Context<Self>) {
        if self.closed {
            return;
        }
        match self.out.push(frame) {
            Ok(()) => {}
            Err(PushError::Full) => {
                self.close_too_slow("its outbound queue is full", ctx);
            }
            Err(PushError::Closed) => {
                self.closed = true;
                ctx.stop();
            }
        }
    }

    /// Close with 4008: the client reconnects and resumes (counted, and logged with why).
    fn close_too_slow(&mut self, why: &str, ctx: &mut Context<Self>) {
        metrics::counter!("parley_ws_too_slow_total").increment(1);
        tracing::info!(
            session = self.id,
            why,
            "Client too slow; closing so it resumes"
        );
        self.close(CLOSE_TOO_SLOW, "too slow: reconnect and resume", ctx);
    }

    fn send_frame(&mut self, frame: &ServerFrame, ctx: &mut Context<Self>) {
        self.push(frame.text(), ctx);
    }

    fn error(
        &mut self,
        code: ErrorCode,
        message: impl Into<String>,
        r#ref: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        metrics::counter!("parley_ws_errors_total", "code" => code.as_str()).increment(1);
        let message = message.into();
        if code == ErrorCode::Internal {
            // The client's request was fine; the server failed it. Say why in the log.
            tracing::warn!(session = %self.id, error = %message, "Answered a frame with an internal error");
        }
        self.send_frame(&ServerFrame::error(code, message, r#ref), ctx);
    }

    fn close(&mut self, code: u16, reason: &str, ctx: &mut Context<Self>) {
        if !self.closed {
            self.closed = true;
            // Closing never waits behind a full queue: the close overtakes it.
            self.out.close(code, reason);
        }
        ctx.stop();
    }

    /// Find, authorise and subscribe to a conversation, then run `then` with its address.
    fn with_conversation(
        &mut self,
        conversation_id: String,
        after_seq: Option<u64>,
        r#ref: Option<String>,
        ctx: &mut Context<Self>,
        then: impl FnOnce(&mut Self, Addr<ConversationActor>, &mut Context<Self>) + 'static,
    ) {
        if after_seq.is_none()
            && let Some(addr) = self.convs.get(&conversation_id)
        {
            then(self, addr.clone(), ctx);
            return;
        }
        let hub = self.engine.hub.clone();
        let recipient = ctx.address().recipient::<Deliver>();
        let audience = self.audience();
        let session_id = self.id;
        let id = conversation_id.clone();
        async move {
            let addr = hub
                .send(GetConversation { id })
                .await
                .map_err(|e| EngineError::Unavailable(e.to_string()))?;
            let record = addr
                .send(Describe)
                .await
                .map_err(|e| EngineError::Unavailable(e.to_string()))??;
            Ok::<_, EngineError>((addr, record))
        }
        .into_actor(self)
        .then(move |result, act, _ctx| {
            let outcome = match result {
                Ok((addr, record)) if act.may_see(&record) => Ok(addr),
                Ok(_) | Err(EngineError::NotFound) => Err(EngineError::NotFound),
                Err(e) => Err(e),
            };
            async move {
                let addr = outcome?;
                addr.send(Subscribe {
                    session_id,
                    recipient,
                    audience,
                    after_seq,
                })
                .await
                .map_err(|e| EngineError::Unavailable(e.to_string()))??;
                Ok::<_, EngineError>(addr)
            }
            .into_actor(act)
        })
        .map(move |result, act, ctx| match result {
            Ok(addr) => {
                act.convs.insert(conversation_id, addr.clone());
                then(act, addr, ctx);
            }
            Err(EngineError::NotFound) => act.error(
                ErrorCode::NotFound,
                format!("no conversation {conversation_id:?}"),
                r#ref,
                ctx,
            ),
            Err(e) => act.error(ErrorCode::Internal, e.to_string(), r#ref, ctx),
        })
        .wait(ctx);
    }

    fn handle_frame(&mut self, frame: ClientFrame, ctx: &mut Context<Self>) {
        match frame {
            ClientFrame::Send {
                client_id,
                conversation_id,
                body,
                kind,
                attachments,
            } => self.on_send(client_id, conversation_id, body, kind, attachments, ctx),
            ClientFrame::Typing {
                conversation_id,
                on,
            } => {
                let who = self.participant();
                self.with_conversation(conversation_id, None, None, ctx, move |_, addr, _| {
                    addr.do_send(Typing { who, on });
                });
            }
            ClientFrame::Resume {
                conversation_id,
                after_seq,
            } => {
                self.with_conversation(conversation_id, Some(after_seq), None, ctx, |_, _, _| {});
            }
            ClientFrame::View { conversation_id } => self.on_view(conversation_id, ctx),
            ClientFrame::Presence { status } => self.on_presence(status, ctx),
        }
    }

    fn on_send(
        &mut self,
        client_id: String,
        conversation_id: Option<String>,
        body: String,
        kind: Option<SendKind>,
        attachments: Vec<String>,
        ctx: &mut Context<Self>,
    ) {
        let r#ref = Some(client_id.clone());
        if attachments.len() > MAX_ATTACHMENTS {
            return self.error(
                ErrorCode::InvalidFrame,
                format!("at most {MAX_ATTACHMENTS} attachments per message"),
                r#ref,
                ctx,
            );
        }
        if client_id.trim().is_empty() || client_id.chars().count() > MAX_CLIENT_ID {
            return self.error(
                ErrorCode::InvalidFrame,
                format!("client_id must be 1 to {MAX_CLIENT_ID} characters"),
                r#ref,
                ctx,
            );
        }
        if body.trim().is_empty() && attachments.is_empty() {
            return self.error(
                ErrorCode::InvalidFrame,
                "body must not be empty",
                r#ref,
                ctx,
            );
        }
        let max = self.engine.config.max_body_chars;
        if body.chars().count() > max {
            return self.error(
                ErrorCode::BodyTooLong,
                format!("body is longer than {max} characters"),
                r#ref,
                ctx,
            );
        }
        let kind = kind.unwrap_or_default();
        if let Peer::Visitor { visitor_id, .. } = &self.peer {
            if kind == SendKind::Comment {
                return self.error(
                    ErrorCode::Forbidden,
                    "visitors cannot write comments",
                    r#ref,
                    ctx,
                );
            }
            if self.engine.visitor_limiter.check_key(visitor_id).is_err() {
                metrics::counter!("parley_ws_rate_limited_total").increment(1);
                return self.error(
                    ErrorCode::RateLimited,
                    "too many messages; slow down",
                    r#ref,
                    ctx,
                );
            }
        }
        let message = NewMessage {
            workspace_id: self.workspace_id().to_owned(),
            conversation_id: String::new(),
            kind: kind.message_kind(),
            sender: self.participant(),
            body,
            // Ids only until `post` resolves them (a resolved attachment has its url).
            attachments: attachments
                .into_iter()
                .map(|id| Attachment {
                    id,
                    name: String::new(),
                    content_type: String::new(),
                    size: 0,
                    url: String::new(),
                })
                .collect(),
            channel: Channel::Chat,
            client_id: Some(client_id.clone()),
        };
        match conversation_id {
            Some(id) => self.post(id, message, ctx),
            None => match &self.peer {
                Peer::Agent { .. } => self.error(
                    ErrorCode::InvalidFrame,
                    "agents must name the conversation_id",
                    r#ref,
                    ctx,
                ),
                Peer::Visitor { .. } => self.start_conversation(message, ctx),
            },
        }
    }

    /// A visitor's first `send`: reuse their open conversation on this channel (so a
    /// retried first send makes no second conversation), or open one.
    ///
    /// A conversation opened here is routed as soon as its first message is queued
    /// with its actor (the session listens to it by then, so its queue position reaches
    /// the visitor), not once that message is stored: the assignment's write then
    /// shares a group commit with the message's (or follows it at once) instead of
    /// waiting a round behind it. Should that message then fail to store, the
    /// conversation is open and empty and stays routed, as a resync would have routed it
    /// anyway (it reads every open, unassigned conversation of the inbox).
    fn start_conversation(&mut self, message: NewMessage, ctx: &mut Context<Self>) {
        let Peer::Visitor {
            workspace_id,
            contact_id,
            channel_id,
            inbox_id,
            open_conversations,
            ..
        } = &self.peer
        else {
            return;
        };
        if let Some(existing) = open_conversations.first().cloned() {
            return self.post(existing, message, ctx);
        }
        let new = NewConversation {
            workspace_id: workspace_id.clone(),
            inbox_id: inbox_id.clone(),
            channel_id: channel_id.clone(),
            channel: Channel::Chat,
            contact_id: contact_id.clone(),
        };
        let store = self.engine.store.clone();
        let backplane = self.engine.backplane.clone();
        let workspace_id = workspace_id.clone();
        let r#ref = message.client_id.clone();
        async move {
            let record = store.create_conversation(new).await?;
            super::announce_conversation(
                &backplane,
                &workspace_id,
                ConversationEvent::Created,
                record.to_object(),
            )
            .await;
            Ok::<_, crate::store::StoreError>(record)
        }
        .into_actor(self)
        .map(move |result, act, ctx| match result {
            Ok(record) => {
                metrics::counter!("parley_conversations_created_total").increment(1);
                if let Peer::Visitor {
                    open_conversations, ..
                } = &mut act.peer
                {
                    open_conversations.insert(0, record.id.clone());
                }
                // Its actor starts from the record we hold (no read back); the post
                // below then finds it live (the hub's mailbox keeps our order).
                let id = record.id.clone();
                act.engine.hub.do_send(super::hub::StartWith { record });
                act.route_on_post = Some(id.clone());
                act.post(id, message, ctx);
            }
            Err(e) => act.error(ErrorCode::Internal, e.to_string(), r#ref, ctx),
        })
        .wait(ctx);
    }

    fn post(&mut self, conversation_id: String, mut message: NewMessage, ctx: &mut Context<Self>) {
        if message.attachments.iter().any(|a| a.url.is_empty()) {
            // Bind the sender's uploads to the conversation first (idempotent for a
            // retry), then post with their full descriptions.
            let store = self.engine.store.clone();
            let who = message.sender.clone();
            let ids: Vec<String> = message.attachments.iter().map(|a| a.id.clone()).collect();
            let conv = conversation_id.clone();
            let r#ref = message.client_id.clone();
            async move { store.claim_attachments(&ids, &who, &conv).await }
                .into_actor(self)
                .map(move |result, act, ctx| match result {
                    Ok(Some(list)) => {
                        message.attachments = list;
                        act.post(conversation_id, message, ctx);
                    }
                    Ok(None) => act.error(
                        ErrorCode::InvalidFrame,
                        "attachments: unknown, not uploaded by you, or sent in another conversation",
                        r#ref,
                        ctx,
                    ),
                    Err(e) => act.error(ErrorCode::Internal, e.to_string(), r#ref, ctx),
                })
                .wait(ctx);
            return;
        }
        let r#ref = message.client_id.clone();
        let origin = Some(self.id);
        self.with_conversation(
            conversation_id.clone(),
            None,
            r#ref.clone(),
            ctx,
            move |act, addr, ctx| {
                let route_now = act.route_on_post.as_deref() == Some(conversation_id.as_str());
                message.conversation_id = conversation_id;
                let client_id = message.client_id.clone().unwrap_or_default();
                // Queued with the conversation now, so posts keep their order while up
                // to MAX_IN_FLIGHT of them wait for their commits together.
                let request = addr.send(Post { message, origin });
                if let Some(id) = act.route_on_post.take_if(|_| route_now) {
                    act.route(id);
                }
                let ticket = act.posts.start();
                metrics::counter!("parley_ws_posts_total").increment(1);
                let pending = request.into_actor(act).map(move |result, act, ctx| {
                    metrics::counter!("parley_ws_posts_answered_total").increment(1);
                    // Answers leave in the order the frames came.
                    for (result, client_id, r#ref) in
                        act.posts.finish(ticket, (result, client_id, r#ref))
                    {
                        act.on_posted(result, client_id, r#ref, ctx);
                    }
                });
                if act.posts.len() >= MAX_IN_FLIGHT {
                    // Backpressure: read no further frame until this one is stored.
                    pending.wait(ctx);
                } else {
                    pending.spawn(ctx);
                }
            },
        );
    }

    /// Answer a post: ack (and route a visitor's first message), or an error frame.
    fn on_posted(
        &mut self,
        result: Result<Result<Appended, EngineError>, actix::MailboxError>,
        client_id: String,
        r#ref: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        let act = self;
        match result {
            Ok(Ok(Appended::New(m))) if m.seq == 1 => {
                // A visitor's first message: the conversation is theirs and they listen
                // to it now, so it can be routed (and its queue position reach them),
                // unless it was routed when its message was queued.
                if !act.routed.contains(&m.conversation_id) {
                    act.route(m.conversation_id.clone());
                }
                act.ack(client_id, m, ctx);
            }
            Ok(Ok(Appended::New(m) | Appended::Duplicate(m))) => act.ack(client_id, m, ctx),
            Ok(Ok(Appended::NoConversation)) | Ok(Err(EngineError::NotFound)) => {
                act.error(ErrorCode::NotFound, "no such conversation", r#ref, ctx)
            }
            Ok(Err(e)) => act.error(ErrorCode::Internal, e.to_string(), r#ref, ctx),
            Err(e) => act.error(ErrorCode::Internal, e.to_string(), r#ref, ctx),
        }
    }

    /// Hand a visitor's conversation to the router (other peers route nothing).
    fn route(&mut self, conversation_id: String) {
        if let Peer::Visitor {
            workspace_id,
            inbox_id,
            ..
        } = &self.peer
        {
            self.engine.router.do_send(super::router::Arrived {
                workspace_id: workspace_id.clone(),
                inbox_id: inbox_id.clone(),
                conversation_id: conversation_id.clone(),
            });
            self.routed.push(conversation_id);
        }
    }

    fn ack(&mut self, client_id: String, m: MessageObject, ctx: &mut Context<Self>) {
        self.send_frame(
            &ServerFrame::Ack {
                client_id,
                conversation_id: m.conversation_id,
                id: m.id,
                seq: m.seq,
            },
            ctx,
        );
    }

    fn viewer_member(&self) -> String {
        let p = self.participant();
        format!("{}\t{}\t{}", p.id, p.name.replace('\t', " "), self.id)
    }

    fn on_view(&mut self, conversation_id: String, ctx: &mut Context<Self>) {
        if !matches!(self.peer, Peer::Agent { .. }) {
            return self.error(ErrorCode::Forbidden, "only agents can view", None, ctx);
        }
        self.stop_viewing();
        self.with_conversation(
            conversation_id.clone(),
            None,
            None,
            ctx,
            move |act, addr, ctx| {
                act.viewing = Some(conversation_id.clone());
                let backplane = act.engine.backplane.clone();
                let key = viewers_key(&conversation_id);
                let member = act.viewer_member();
                let ttl = act.engine.config.presence_ttl;
                async move { backplane.set_add(&key, &member, ttl).await }
                    .into_actor(act)
                    .map(move |result, _act, _ctx| {
                        if let Err(e) = result {
                            tracing::warn!(error = %e, "Could not record a viewer");
                        }
                        addr.do_send(ViewersChanged);
                    })
                    .wait(ctx);
            },
        );
    }

    fn stop_viewing(&mut self) {
        if let Some(prev) = self.viewing.take() {
            let backplane = self.engine.backplane.clone();
            let member = self.viewer_member();
            let addr = self.convs.get(&prev).cloned();
            actix::spawn(async move {
                let _ = backplane.set_remove(&viewers_key(&prev), &member).await;
                if let Some(addr) = addr {
                    addr.do_send(ViewersChanged);
                }
            });
        }
    }

    fn on_presence(&mut self, status: PresenceStatus, ctx: &mut Context<Self>) {
        if !matches!(self.peer, Peer::Agent { .. }) {
            return self.error(ErrorCode::Forbidden, "only agents have presence", None, ctx);
        }
        if status != self.status {
            // The old entry names the old status: drop it before adding the new one.
            if let Peer::Agent {
                workspace_id,
                user_id,
                ..
            } = &self.peer
            {
                let backplane = self.engine.backplane.clone();
                let key = presence_key(workspace_id, user_id);
                let old = format!("{}\t{}", self.id, status_str(self.status));
                async move { backplane.set_remove(&key, &old).await }
                    .into_actor(self)
                    .map(|_, _, _| {})
                    .wait(ctx);
            }
        }
        self.status = status;
        self.refresh_presence(ctx);
    }

    /// Refresh this session's presence entry and announce the user's aggregate status.
    fn refresh_presence(&mut self, ctx: &mut Context<Self>) {
        let Peer::Agent {
            workspace_id,
            user_id,
            ..
        } = &self.peer
        else {
            return;
        };
        let backplane = self.engine.backplane.clone();
        let key = presence_key(workspace_id, user_id);
        let member = format!("{}\t{}", self.id, status_str(self.status));
        let ttl = self.engine.config.presence_ttl;
        let topic = workspace_topic(workspace_id);
        let user_id = user_id.clone();
        let online = online_key(workspace_id);
        async move {
            backplane.set_add(&key, &member, ttl).await?;
            backplane.set_add(&online, &user_id, ttl).await?;
            announce_presence(&*backplane, &key, &topic, &user_id).await
        }
        .into_actor(self)
        .map(|result, _act, _ctx| {
            if let Err(e) = result {
                tracing::warn!(error = %e, "Presence refresh failed");
            }
        })
        .spawn(ctx);
    }

    /// Announce offline for users last seen present whose entries all expired (their
    /// node died): whoever notices first tells everyone.
    fn sweep_presence(&mut self, ctx: &mut Context<Self>) {
        let Peer::Agent { workspace_id, .. } = &self.peer else {
            return;
        };
        let present: Vec<String> = self
            .known_presence
            .iter()
            .filter(|(_, s)| **s != PresenceState::Offline)
            .map(|(u, _)| u.clone())
            .collect();
        if present.is_empty() {
            return;
        }
        let backplane = self.engine.backplane.clone();
        let workspace_id = workspace_id.clone();
        async move {
            for user_id in present {
                let key = presence_key(&workspace_id, &user_id);
                let topic = workspace_topic(&workspace_id);
                announce_presence(&*backplane, &key, &topic, &user_id).await?;
            }
            Ok::<_, crate::backplane::BackplaneError>(())
        }
        .into_actor(self)
        .map(|_, _, _| {})
        .spawn(ctx);
    }

    /// Unsubscribe from conversations whose inbox is no longer allowed.
    fn drop_conversations_outside(&mut self, allowed: &HashSet<String>, ctx: &mut Context<Self>) {
        let ids: Vec<(String, Addr<ConversationActor>)> = self
            .convs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let session_id = self.id;
        let allowed = allowed.clone();
        async move {
            let mut gone = Vec::new();
            for (id, addr) in ids {
                match addr.send(Describe).await {
                    Ok(Ok(record)) if allowed.contains(&record.inbox_id) => {}
                    _ => {
                        addr.do_send(Unsubscribe { session_id });
                        gone.push(id);
                    }
                }
            }
            gone
        }
        .into_actor(self)
        .map(|gone, act, _| {
            for id in gone {
                act.convs.remove(&id);
                if act.viewing.as_deref() == Some(id.as_str()) {
                    act.stop_viewing();
                }
            }
        })
        .spawn(ctx);
    }

    /// Tell a newly connected console who is present now.
    fn presence_snapshot(&mut self, ctx: &mut Context<Self>) {
        let Peer::Agent { workspace_id, .. } = &self.peer else {
            return;
        };
        let backplane = self.engine.backplane.clone();
        let workspace_id = workspace_id.clone();
        async move {
            let mut out = Vec::new();
            for user_id in backplane.set_members(&online_key(&workspace_id)).await? {
                let members = backplane
                    .set_members(&presence_key(&workspace_id, &user_id))
                    .await?;
                out.push((user_id, aggregate(&members)));
            }
            Ok::<_, crate::backplane::BackplaneError>(out)
        }
        .into_actor(self)
        .map(|result, act, ctx| match result {
            Ok(users) => {
                for (user_id, status) in users {
                    act.on_workspace_event(&WsEvent::Presence { user_id, status }, ctx);
                }
            }
            Err(e) => tracing::warn!(error = %e, "Presence snapshot failed"),
        })
        .spawn(ctx);
    }

    fn on_workspace_event(&mut self, event: &WsEvent, ctx: &mut Context<Self>) {
        if let WsEvent::Membership {
            user_id: changed,
            inbox_ids: now,
        } = event
            && let Peer::Agent {
                user_id,
                inbox_ids,
                is_admin,
                ..
            } = &mut self.peer
            && changed == user_id
        {
            *inbox_ids = now.iter().cloned().collect();
            if !*is_admin {
                // Conversations of inboxes left stop flowing at once.
                let allowed = inbox_ids.clone();
                self.drop_conversations_outside(&allowed, ctx);
            }
            return;
        }
        match (event, &self.peer) {
            (
                WsEvent::Conversation {
                    event,
                    conversation,
                    frame,
                },
                peer,
            ) => {
                let send = match peer {
                    Peer::Agent {
                        is_admin,
                        inbox_ids,
                        ..
                    } => *is_admin || inbox_ids.contains(&conversation.inbox_id),
                    Peer::Visitor { contact_id, .. } => {
                        conversation.contact_id == *contact_id
                            && *event != ConversationEvent::Created
                    }
                };
                if send {
                    let text = frame.get_or_render(|| {
                        ServerFrame::conversation(*event, conversation.clone()).text()
                    });
                    self.push(text, ctx);
                }
            }
            (WsEvent::Presence { user_id, status }, Peer::Agent { .. }) => {
                if self.known_presence.get(user_id) != Some(status) {
                    self.known_presence.insert(user_id.clone(), *status);
                    let frame = ServerFrame::Presence {
                        user_id: user_id.clone(),
                        status: *status,
                    };
                    self.send_frame(&frame, ctx);
                }
            }
            (
                WsEvent::Mention {
                    inbox_id,
                    user_ids,
                    message,
                },
                Peer::Agent {
                    user_id,
                    is_admin,
                    inbox_ids,
                    ..
                },
            ) => {
                if user_ids.contains(user_id) && (*is_admin || inbox_ids.contains(inbox_id)) {
                    let frame = ServerFrame::Mention {
                        conversation_id: message.conversation_id.clone(),
                        message: message.clone(),
                    };
                    self.send_frame(&frame, ctx);
                }
            }
            (WsEvent::Presence { .. } | WsEvent::Mention { .. }, Peer::Visitor { .. })
            | (WsEvent::Membership { .. }, _) => {}
        }
    }
}

/// A user's status from their sessions' entries: online if any session is online,
/// away if all are away, offline if none is left.
fn aggregate(members: &[String]) -> PresenceState {
    if members.iter().any(|m| m.ends_with("\tonline")) {
        PresenceState::Online
    } else if members.is_empty() {
        PresenceState::Offline
    } else {
        PresenceState::Away
    }
}

fn status_str(s: PresenceStatus) -> &'static str {
    match s {
        PresenceStatus::Online => "online",
        PresenceStatus::Away => "away",
    }
}

/// Read a user's sessions and publish their aggregate status: online if any session is
/// online, away if all are away, offline if none is left.
async fn announce_presence(
    backplane: &dyn crate::backplane::Backplane,
    key: &str,
    topic: &str,
    user_id: &str,
) -> Result<(), crate::backplane::BackplaneError> {
    let members = backplane.set_members(key).await?;
    let status = aggregate(&members);
    let event = WsEvent::Presence {
        user_id: user_id.to_owned(),
        status,
    };
    backplane
        .publish(topic, crate::backplane::payload(event))
        .await
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        metrics::gauge!("parley_ws_sessions").increment(1.0);
        self.engine
            .sessions
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        ctx.add_stream(tokio_stream::wrappers::WatchStream::new(
            self.engine.shutdown.subscribe(),
        ));
        // Agents hear the whole workspace; a visitor only their own contact's events.
        match &self.peer {
            Peer::Agent { workspace_id, .. } => {
                // A task drains the workspace's topic into the mailbox: while the session
                // waits on something (`ctx.wait`, e.g. a `resume`'s subscribe), a stream
                // would stop being read and a burst of arrivals would overrun the topic's
                // buffer. Mailbox messages sent with `do_send` wait their turn instead.
                let mut rx = self
                    .engine
                    .backplane
                    .subscribe(&workspace_topic(workspace_id));
                let addr = ctx.address();
                actix::spawn(async move {
                    loop {
                        let item = match rx.recv().await {
                            Ok(payload) => Ok(payload),
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                                Err(BroadcastStreamRecvError::Lagged(n))
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                        };
                        if !addr.connected() {
                            break;
                        }
                        addr.do_send(WorkspaceEvent(item));
                    }
                });
            }
            Peer::Visitor { contact_id, .. } => {
                let rx = self
                    .engine
                    .backplane
                    .subscribe(&super::contact_topic(contact_id));
                ctx.add_stream(BroadcastStream::new(rx));
            }
        }
        match &self.peer {
            Peer::Agent { .. } => {
                self.refresh_presence(ctx);
                self.presence_snapshot(ctx);
                ctx.run_interval(self.engine.config.heartbeat, |act, ctx| {
                    act.refresh_presence(ctx);
                    act.sweep_presence(ctx);
                    if let Some(viewing) = act.viewing.clone() {
                        let backplane = act.engine.backplane.clone();
                        let member = act.viewer_member();
                        let ttl = act.engine.config.presence_ttl;
                        actix::spawn(async move {
                            let _ = backplane
                                .set_add(&viewers_key(&viewing), &member, ttl)
                                .await;
                        });
                    }
                });
            }
            Peer::Visitor {
                open_conversations, ..
            } => {
                for id in open_conversations.clone() {
                    self.with_conversation(id, None, None, ctx, |_, _, _| {});
                }
            }
        }
    }

    fn stopping(&mut self, _ctx: &mut Context<Self>) -> Running {
        for addr in self.convs.values() {
            addr.do_send(Unsubscribe {
                session_id: self.id,
            });
        }
        self.stop_viewing();
        if let Peer::Agent {
            workspace_id,
            user_id,
            ..
        } = &self.peer
        {
            // The entry is left to expire: the user stays present for one presence TTL
            // after their last socket closes (a page reload does not flap them
            // offline); other consoles' sweeps announce `offline` when it lapses.
            // The session's own entry becomes one `linger` entry per status; an away
            // linger lapses a heartbeat earlier than an online one, so a user whose tabs
            // were mixed goes straight from online to offline, never briefly away.
            let backplane = self.engine.backplane.clone();
            let key = presence_key(workspace_id, user_id);
            let own = format!("{}\t{}", self.id, status_str(self.status));
            let linger = format!("linger\t{}", status_str(self.status));
            let config = &self.engine.config;
            let ttl = match self.status {
                PresenceStatus::Online => config.presence_ttl,
                PresenceStatus::Away => config.presence_ttl.saturating_sub(config.heartbeat),
            };
            actix::spawn(async move {
                let _ = backplane.set_add(&key, &linger, ttl).await;
                let _ = backplane.set_remove(&key, &own).await;
            });
        }
        Running::Stop
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        metrics::gauge!("parley_ws_sessions").decrement(1.0);
        self.engine
            .sessions
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Handler<Inbound> for Session {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: Inbound, _ctx: &mut Context<Self>) -> Self::Result {
        Box::pin(Intake {
            texts: msg.texts.into_iter(),
        })
    }
}

/// A batch of frames being handled, one after another. A frame whose handling waits for
/// something (`ctx.wait`: a full commit window, a new conversation) holds the rest back:
/// while a context waits it polls none of its other futures, this one included, so the
/// next frame is handled only after that wait, exactly as if it had come alone.
struct Intake {
    texts: std::vec::IntoIter<String>,
}

impl ActorFuture<Session> for Intake {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        act: &mut Session,
        ctx: &mut Context<Session>,
        _task: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let this = self.get_mut();
        for text in this.texts.by_ref() {
            act.on_text(&text, ctx);
            if ctx.waiting() {
                // Polled again once the wait is over (the context wakes for it).
                return std::task::Poll::Pending;
            }
        }
        std::task::Poll::Ready(())
    }
}

impl Session {
    /// One text frame from the client.
    fn on_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        metrics::counter!("parley_ws_frames_in_total").increment(1);
        match parse_client_frame(text) {
            Ok(frame) => self.handle_frame(frame, ctx),
            Err(e) => {
                metrics::counter!("parley_ws_errors_total", "code" => e.code().as_str())
                    .increment(1);
                self.send_frame(&e.to_frame(), ctx);
            }
        }
    }
}

impl Handler<Deliver> for Session {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Context<Self>) {
        self.push(msg.frame, ctx);
    }
}

impl StreamHandler<bool> for Session {
    fn handle(&mut self, shutting_down: bool, ctx: &mut Context<Self>) {
        if shutting_down {
            self.close(
                CLOSE_GOING_AWAY,
                "server shutting down: reconnect and resume",
                ctx,
            );
        }
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

impl Handler<Disconnect> for Session {
    type Result = ();

    fn handle(&mut self, _: Disconnect, ctx: &mut Context<Self>) {
        self.closed = true;
        ctx.stop();
    }
}

/// An agent session's workspace event, forwarded from its topic (see `started`).
#[derive(Message)]
#[rtype(result = "()")]
struct WorkspaceEvent(Result<Payload, BroadcastStreamRecvError>);

impl Handler<WorkspaceEvent> for Session {
    type Result = ();

    fn handle(&mut self, msg: WorkspaceEvent, ctx: &mut Context<Self>) {
        StreamHandler::handle(self, msg.0, ctx);
    }
}

impl StreamHandler<Result<Payload, BroadcastStreamRecvError>> for Session {
    fn handle(&mut self, item: Result<Payload, BroadcastStreamRecvError>, ctx: &mut Context<Self>) {
        let payload = match item {
            Ok(payload) => payload,
            Err(BroadcastStreamRecvError::Lagged(n)) => {
                // Events for this socket were dropped (it fell behind a burst): the
                // client reloads what it shows when it reconnects, so close as too slow.
                self.close_too_slow(&format!("it fell {n} events behind"), ctx);
                return;
            }
        };
        if let Event::Workspace(event) = &*payload {
            self.on_workspace_event(event, ctx);
        }
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}
