//! The WebSocket wire frames of the Parley contract, version 1.
//!
//! The widget, the agent console, the load tester, bots and integrations are written
//! against these names, so this module is the single place they are spelled. Every
//! frame is a JSON object whose `type` field names it: `#[serde(tag = "type",
//! rename_all = "snake_case")]` on [`ClientFrame`] (what clients send) and
//! [`ServerFrame`] (what the engine sends).
//!
//! # Versioning
//!
//! The protocol changes only by addition. A new frame is a new variant, a new field is
//! an optional field (`Option` with `#[serde(default)]`) or one whose absence old
//! clients can live with, and a new error is a new [`ErrorCode`]. A frame, field, value
//! or code is never renamed, removed or given a new meaning: that takes a new protocol
//! version. Unknown fields in a client frame are ignored so that newer clients can talk
//! to older servers.
//!
//! # Parsing
//!
//! [`parse_client_frame`] checks a frame's shape only and sorts failures into three
//! classes a client can act on: `invalid_json`, `unknown_frame` and `invalid_frame` (see
//! [`ProtocolError`]). Limits and permissions (`frame_too_large`, `body_too_long`,
//! `forbidden`, ...) are the engine's business, checked after parsing.
//!
//! The human-readable reference is `docs/protocol.md`; a test keeps every frame type
//! and error code listed there.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest piece of client input (a frame type, a serde message) echoed back in an
/// error message, in characters. Longer input is cut and marked with `…`.
const MAX_ECHO_CHARS: usize = 120;

// ---------------------------------------------------------------------------------
// Client frames
// ---------------------------------------------------------------------------------

/// A frame a client (visitor widget or agent console) sends over its WebSocket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Post a message. Answered by [`ServerFrame::Ack`] once the message is durable.
    ///
    /// A visitor's first `send` without `conversation_id` starts a conversation.
    /// Retries carry the same `client_id`; the same `client_id` never makes two
    /// messages.
    Send {
        /// The client's idempotency key for this message, echoed in the `ack`.
        client_id: String,
        /// The conversation to post in; `None` only for a visitor starting one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation_id: Option<String>,
        /// The message text.
        body: String,
        /// `reply` (seen by the visitor) or `comment` (agents only); `None` means
        /// `reply`. See [`ClientFrame::send_kind`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<SendKind>,
        /// Ids of files uploaded by this sender (`POST /api/v1/widget/{channel}/uploads`
        /// or `POST /api/v1/uploads`) to attach; at most 10. With attachments, `body`
        /// may be empty.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<String>,
    },
    /// Start or stop the typing indicator in a conversation.
    Typing {
        /// The conversation being typed in.
        conversation_id: String,
        /// `true` while typing, `false` when stopped.
        on: bool,
    },
    /// Ask for every message of a conversation after `after_seq` (after a reconnect).
    Resume {
        /// The conversation to catch up on.
        conversation_id: String,
        /// The last `seq` the client saw; `0` means from the start.
        after_seq: u64,
    },
    /// Agent only: the agent now views this conversation (drives `viewers`).
    View {
        /// The conversation on the agent's screen.
        conversation_id: String,
    },
    /// Agent only: set one's own presence.
    Presence {
        /// `online` or `away`; `offline` is not something a client can ask for.
        status: PresenceStatus,
    },
}

impl ClientFrame {
    /// Every client frame `type`, in declaration order.
    pub const TYPES: [&'static str; 5] = ["send", "typing", "resume", "view", "presence"];

    /// This frame's `type` as it appears on the wire.
    pub const fn type_name(&self) -> &'static str {
        match self {
            Self::Send { .. } => "send",
            Self::Typing { .. } => "typing",
            Self::Resume { .. } => "resume",
            Self::View { .. } => "view",
            Self::Presence { .. } => "presence",
        }
    }

    /// For a `send`, its kind with the default applied (`reply` when absent);
    /// `None` for every other frame.
    pub fn send_kind(&self) -> Option<SendKind> {
        match self {
            Self::Send { kind, .. } => Some(kind.unwrap_or_default()),
            _ => None,
        }
    }
}

/// What a `send` frame posts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendKind {
    /// A reply in the conversation, seen by the visitor. The default.
    #[default]
    Reply,
    /// An internal note, seen by agents only.
    Comment,
}

impl SendKind {
    /// The [`MessageKind`] a message posted this way is stored with.
    pub const fn message_kind(self) -> MessageKind {
        match self {
            Self::Reply => MessageKind::Message,
            Self::Comment => MessageKind::Comment,
        }
    }
}

/// The presence an agent may ask for in a `presence` client frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceStatus {
    /// Available to take conversations.
    Online,
    /// Connected but not taking new conversations.
    Away,
}

// ---------------------------------------------------------------------------------
// Server frames
// ---------------------------------------------------------------------------------

/// A frame the engine sends to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The message sent with `client_id` is durable: it has an `id` and a `seq`.
    Ack {
        /// The `client_id` of the acknowledged `send`.
        client_id: String,
        /// The conversation the message is in (new if the `send` started one).
        conversation_id: String,
        /// The stored message's id.
        id: String,
        /// The message's position in its conversation.
        seq: u64,
    },
    /// A new message in a conversation the client follows.
    Message {
        /// The conversation the message is in.
        conversation_id: String,
        /// The message itself.
        message: MessageObject,
    },
    /// Someone started or stopped typing.
    Typing {
        /// The conversation being typed in.
        conversation_id: String,
        /// Who is typing.
        who: Participant,
        /// `true` while typing, `false` when stopped.
        on: bool,
    },
    /// The full list of agents now viewing a conversation (not a delta).
    Viewers {
        /// The conversation viewed.
        conversation_id: String,
        /// Everyone viewing it now.
        users: Vec<Viewer>,
    },
    /// A conversation was created or changed; carries its new state.
    Conversation {
        /// What happened.
        event: ConversationEvent,
        /// The conversation after the event.
        conversation: ConversationObject,
    },
    /// An agent's presence changed.
    Presence {
        /// The agent's user id.
        user_id: String,
        /// Their presence now.
        status: PresenceState,
    },
    /// A client frame was refused; nothing changed.
    Error {
        /// What went wrong, machine-readable.
        code: ErrorCode,
        /// What went wrong, for a human.
        message: String,
        /// The `client_id` of the frame refused, when there was one.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        r#ref: Option<String>,
    },
    /// A waiting visitor's place in the inbox's queue (1 = next), sent when it changes.
    Queue {
        /// The waiting conversation.
        conversation_id: String,
        /// 1-based position among the inbox's waiting conversations.
        position: usize,
        /// Seconds until an agent is likely to answer: the position times the recent
        /// average wait of this inbox's queue; absent until a wait has been observed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        estimate_seconds: Option<u64>,
    },
    /// The agent was @mentioned in a comment (agents only; see [`mentioned_user_ids`]).
    Mention {
        /// The conversation of the comment.
        conversation_id: String,
        /// The comment.
        message: MessageObject,
    },
}

/// The user ids a comment mentions: every `<@USER_ID>` in its body, each once, in order
/// (at most 20). The console inserts this markup when an agent picks a teammate after
/// typing `@`, and renders it as `@Name`.
pub fn mentioned_user_ids(body: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("<@") {
        rest = &rest[start + 2..];
        let Some(end) = rest.find('>') else { break };
        let id = &rest[..end];
        if !id.is_empty()
            && id.len() <= 64
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !out.iter().any(|o| o == id)
        {
            out.push(id.to_owned());
            if out.len() == 20 {
                break;
            }
        }
        rest = &rest[end..];
    }
    out
}

impl ServerFrame {
    /// The frame as it goes on the wire (a socket's outbox shares the text).
    pub fn text(&self) -> std::sync::Arc<str> {
        serde_json::to_string(self).unwrap_or_default().into()
    }

    /// Every server frame `type`, in declaration order.
    pub const TYPES: [&'static str; 9] = [
        "ack",
        "message",
        "typing",
        "viewers",
        "conversation",
        "presence",
        "error",
        "queue",
        "mention",
    ];

    /// This frame's `type` as it appears on the wire.
    pub const fn type_name(&self) -> &'static str {
        match self {
            Self::Ack { .. } => "ack",
            Self::Message { .. } => "message",
            Self::Typing { .. } => "typing",
            Self::Viewers { .. } => "viewers",
            Self::Conversation { .. } => "conversation",
            Self::Presence { .. } => "presence",
            Self::Error { .. } => "error",
            Self::Queue { .. } => "queue",
            Self::Mention { .. } => "mention",
        }
    }

    /// An `error` frame.
    pub fn error(code: ErrorCode, message: impl Into<String>, r#ref: Option<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
            r#ref,
        }
    }

    /// A `message` frame for `message`, its `conversation_id` taken from the message.
    pub fn message(message: MessageObject) -> Self {
        Self::Message {
            conversation_id: message.conversation_id.clone(),
            message,
        }
    }

    /// A `conversation` frame.
    pub fn conversation(event: ConversationEvent, conversation: ConversationObject) -> Self {
        Self::Conversation {
            event,
            conversation,
        }
    }

    /// Whether a visitor may receive this frame. Visitors never receive comments,
    /// viewers or agent presence; everything else is theirs to see.
    pub fn visible_to_visitor(&self) -> bool {
        match self {
            Self::Message { message, .. } => message.visible_to_visitor(),
            Self::Viewers { .. } | Self::Presence { .. } | Self::Mention { .. } => false,
            Self::Ack { .. }
            | Self::Typing { .. }
            | Self::Conversation { .. }
            | Self::Error { .. }
            | Self::Queue { .. } => true,
        }
    }
}

/// An agent's presence as the engine reports it in a `presence` server frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceState {
    /// Has a console open and takes conversations.
    Online,
    /// Has a console open but set themselves away.
    Away,
    /// No console open for longer than the presence TTL.
    Offline,
}

impl From<PresenceStatus> for PresenceState {
    fn from(status: PresenceStatus) -> Self {
        match status {
            PresenceStatus::Online => Self::Online,
            PresenceStatus::Away => Self::Away,
        }
    }
}

/// Someone taking part in a conversation: a message's `sender`, a typing frame's `who`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Participant {
    /// What kind of participant; `type` on the wire.
    #[serde(rename = "type")]
    pub kind: ParticipantKind,
    /// Their id (a visitor's contact id, an agent's user id, a bot's id).
    pub id: String,
    /// The name to show.
    pub name: String,
}

/// A message's `sender` is a [`Participant`].
pub type Sender = Participant;

/// What kind of [`Participant`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParticipantKind {
    /// The customer, through the widget or another channel.
    Visitor,
    /// A team member using the console.
    Agent,
    /// An automated responder.
    Bot,
    /// The engine itself (events such as "assigned to Ana").
    System,
}

/// An agent viewing a conversation, as listed in a `viewers` frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Viewer {
    /// The agent's user id.
    pub id: String,
    /// The name to show.
    pub name: String,
}

/// What happened to a conversation, in a `conversation` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationEvent {
    /// It was just started.
    Created,
    /// Its assignee changed (possibly to nobody).
    Assigned,
    /// It was closed.
    Closed,
    /// It was reopened.
    Reopened,
    /// Something else about it changed (for example `last_message_at`).
    Updated,
}

// ---------------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------------

/// A conversation as the wire shows it (the same shape as the HTTP API's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationObject {
    /// The conversation's id.
    pub id: String,
    /// The inbox it belongs to.
    pub inbox_id: String,
    /// The channel it came in through.
    pub channel: Channel,
    /// Open or closed.
    pub status: ConversationStatus,
    /// The assigned agent's user id; `null` (never omitted) when unassigned.
    pub assignee_id: Option<String>,
    /// The contact (customer) it is with.
    pub contact_id: String,
    /// When it was started, RFC 3339 UTC.
    pub created_at: DateTime<Utc>,
    /// When its latest message was posted, RFC 3339 UTC.
    pub last_message_at: DateTime<Utc>,
    /// The assigned agent's public profile (what a visitor may see), when assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<AgentProfile>,
}

/// What anyone in a conversation may see of its agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentProfile {
    /// The agent's user id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Avatar image URL.
    pub avatar_url: Option<String>,
    /// Booking/meeting link.
    pub meeting_link: Option<String>,
}

/// Whether a conversation is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationStatus {
    /// Waiting for or getting an answer.
    Open,
    /// Done. (A visitor's next first `send` opens a new conversation; reopening on a
    /// visitor message is not built yet.)
    Closed,
}

/// The channel a conversation or message came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// The live chat widget.
    Chat,
    /// Team email.
    Email,
    /// A web form.
    Form,
    /// Facebook Messenger.
    Messenger,
}

/// A message as the wire shows it (the same shape as the HTTP API's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageObject {
    /// The message's id.
    pub id: String,
    /// The conversation it is in.
    pub conversation_id: String,
    /// Its position in the conversation: gap-free and increasing, starting at 1.
    pub seq: u64,
    /// Message, comment or event.
    pub kind: MessageKind,
    /// Who posted it.
    pub sender: Sender,
    /// The text.
    pub body: String,
    /// Files attached to it; empty when none.
    pub attachments: Vec<Attachment>,
    /// The channel it came or goes through.
    pub channel: Channel,
    /// When it was committed, RFC 3339 UTC.
    pub created_at: DateTime<Utc>,
}

impl MessageObject {
    /// Whether a visitor may see this message: everything but comments.
    pub fn visible_to_visitor(&self) -> bool {
        self.kind.visible_to_visitor()
    }
}

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// A message between the visitor and the team.
    Message,
    /// An internal note between agents; never sent to visitors.
    Comment,
    /// Something that happened (assigned, closed, ...), posted by `system`.
    Event,
}

impl MessageKind {
    /// Whether a visitor may see a message of this kind: everything but comments.
    pub const fn visible_to_visitor(self) -> bool {
        !matches!(self, Self::Comment)
    }
}

/// A file attached to a message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Attachment {
    /// The attachment's id.
    pub id: String,
    /// Its file name.
    pub name: String,
    /// Its media type, such as `image/png`.
    pub content_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// Where to download it.
    pub url: String,
}

// ---------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------

/// The `code` of an `error` frame. Serialized in snake_case, as [`ErrorCode::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not valid JSON.
    InvalidJson,
    /// The frame's `type` is missing or names no client frame.
    UnknownFrame,
    /// The frame is not a JSON object, or a known type has missing or wrong fields.
    InvalidFrame,
    /// A `send` body is longer than the configured limit.
    BodyTooLong,
    /// The frame is larger than the configured limit.
    FrameTooLarge,
    /// Too many frames too fast; slow down and retry.
    RateLimited,
    /// The conversation (or other object) does not exist or is not visible to you.
    NotFound,
    /// You may not do this (for example a visitor sending `view`, or a `comment`).
    Forbidden,
    /// The request clashes with the current state. Reserved: no frame sends it today
    /// (a reused `client_id` answers with the original `ack`, whatever the body).
    Conflict,
    /// The engine failed; the frame may be retried with the same `client_id`.
    Internal,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [Self; 10] = [
        Self::InvalidJson,
        Self::UnknownFrame,
        Self::InvalidFrame,
        Self::BodyTooLong,
        Self::FrameTooLarge,
        Self::RateLimited,
        Self::NotFound,
        Self::Forbidden,
        Self::Conflict,
        Self::Internal,
    ];

    /// The code as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::UnknownFrame => "unknown_frame",
            Self::InvalidFrame => "invalid_frame",
            Self::BodyTooLong => "body_too_long",
            Self::FrameTooLarge => "frame_too_large",
            Self::RateLimited => "rate_limited",
            Self::NotFound => "not_found",
            Self::Forbidden => "forbidden",
            Self::Conflict => "conflict",
            Self::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a text frame is not a [`ClientFrame`]. See [`ProtocolError::code`] for the
/// error code each case is reported with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The text is not JSON (`invalid_json`).
    #[error("invalid JSON: {detail}")]
    InvalidJson {
        /// What the JSON parser said, with line and column.
        detail: String,
    },
    /// The JSON is an object with no string `type` field (`unknown_frame`).
    #[error("frame has no string `type` field")]
    MissingType,
    /// The `type` names no client frame (`unknown_frame`).
    #[error("unknown frame type `{type_name}`")]
    UnknownType {
        /// The type given, cut to a bounded length.
        type_name: String,
    },
    /// The JSON is not an object (`invalid_frame`).
    #[error("a frame must be a JSON object")]
    NotAnObject,
    /// The `type` is known but a field is missing or has the wrong type or value
    /// (`invalid_frame`).
    #[error("invalid `{type_name}` frame: {detail}")]
    InvalidFrame {
        /// The frame's `type`.
        type_name: &'static str,
        /// What is wrong, naming the field.
        detail: String,
        /// The frame's `client_id`, if it had a string one, for the error's `ref`.
        client_id: Option<String>,
    },
}

impl ProtocolError {
    /// The error code this failure is reported with.
    pub const fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidJson { .. } => ErrorCode::InvalidJson,
            Self::MissingType | Self::UnknownType { .. } => ErrorCode::UnknownFrame,
            Self::NotAnObject | Self::InvalidFrame { .. } => ErrorCode::InvalidFrame,
        }
    }

    /// The `client_id` of the refused frame, when it could be read.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Self::InvalidFrame { client_id, .. } => client_id.as_deref(),
            _ => None,
        }
    }

    /// The `error` frame that reports this failure to the client.
    pub fn to_frame(&self) -> ServerFrame {
        ServerFrame::error(
            self.code(),
            self.to_string(),
            self.client_id().map(str::to_owned),
        )
    }
}

/// Parse one WebSocket text frame sent by a client.
///
/// Checks shape only (see the module docs). Unknown fields are ignored.
///
/// # Errors
///
/// - [`ProtocolError::InvalidJson`] when `text` is not JSON;
/// - [`ProtocolError::MissingType`] or [`ProtocolError::UnknownType`] when it is JSON
///   without a `type` naming a client frame;
/// - [`ProtocolError::NotAnObject`] or [`ProtocolError::InvalidFrame`] when it is not
///   an object, or a known frame with missing or mistyped fields.
///
/// # Example
///
/// ```
/// use parley_actors::protocol::{parse_client_frame, ClientFrame, ErrorCode};
///
/// let frame = parse_client_frame(r#"{"type":"view","conversation_id":"c1"}"#);
/// assert_eq!(frame, Ok(ClientFrame::View { conversation_id: "c1".into() }));
///
/// let err = parse_client_frame(r#"{"type":"wave"}"#).map(|_| ()).unwrap_err();
/// assert_eq!(err.code(), ErrorCode::UnknownFrame);
/// assert_eq!(err.to_string(), "unknown frame type `wave`");
/// ```
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, ProtocolError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ProtocolError::InvalidJson {
        detail: e.to_string(),
    })?;
    let Value::Object(fields) = &value else {
        return Err(ProtocolError::NotAnObject);
    };
    let Some(given_type) = fields.get("type").and_then(Value::as_str) else {
        return Err(ProtocolError::MissingType);
    };
    let Some(type_name) = ClientFrame::TYPES
        .iter()
        .copied()
        .find(|known| *known == given_type)
    else {
        return Err(ProtocolError::UnknownType {
            type_name: cut(given_type),
        });
    };
    let client_id = fields
        .get("client_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    serde_json::from_value(value).map_err(|e| ProtocolError::InvalidFrame {
        type_name,
        detail: cut(&e.to_string()),
        client_id,
    })
}

/// `text` cut to [`MAX_ECHO_CHARS`] characters, with `…` when something was cut.
fn cut(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = chars.by_ref().take(MAX_ECHO_CHARS).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;
    use serde_json::json;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 14, h, m, s).single().unwrap()
    }

    fn to_json<T: Serialize>(value: &T) -> Value {
        serde_json::to_value(value).unwrap()
    }

    fn ana() -> Participant {
        Participant {
            kind: ParticipantKind::Agent,
            id: "u1".into(),
            name: "Ana".into(),
        }
    }

    fn sample_message() -> MessageObject {
        MessageObject {
            id: "m7".into(),
            conversation_id: "c1".into(),
            seq: 7,
            kind: MessageKind::Message,
            sender: ana(),
            body: "Hello!".into(),
            attachments: vec![Attachment {
                id: "a1".into(),
                name: "invoice.pdf".into(),
                content_type: "application/pdf".into(),
                size: 1024,
                url: "/api/v1/attachments/a1".into(),
            }],
            channel: Channel::Chat,
            created_at: at(9, 30, 0),
        }
    }

    fn sample_conversation() -> ConversationObject {
        ConversationObject {
            id: "c1".into(),
            inbox_id: "i1".into(),
            channel: Channel::Chat,
            status: ConversationStatus::Open,
            assignee_id: None,
            contact_id: "k1".into(),
            created_at: at(9, 0, 0),
            last_message_at: at(9, 30, 0),
            assignee: None,
        }
    }

    /// Asserts `frame` serializes to `expected` and parses back from it.
    fn assert_client_shape(frame: ClientFrame, expected: Value) {
        assert_eq!(to_json(&frame), expected);
        assert_eq!(parse_client_frame(&expected.to_string()), Ok(frame));
    }

    /// Asserts `frame` serializes to `expected` and deserializes back from it.
    fn assert_server_shape(frame: ServerFrame, expected: Value) {
        assert_eq!(to_json(&frame), expected);
        assert_eq!(
            serde_json::from_value::<ServerFrame>(expected).unwrap(),
            frame
        );
    }

    // --- client frame shapes ---

    #[test]
    fn a_send_frame_has_the_contract_shape() {
        assert_client_shape(
            ClientFrame::Send {
                client_id: "k-1".into(),
                conversation_id: Some("c1".into()),
                body: "hi".into(),
                kind: Some(SendKind::Comment),
                attachments: vec![],
            },
            json!({"type": "send", "client_id": "k-1", "conversation_id": "c1",
                   "body": "hi", "kind": "comment"}),
        );
    }

    #[test]
    fn a_send_frame_without_conversation_or_kind_omits_them() {
        assert_client_shape(
            ClientFrame::Send {
                client_id: "k-1".into(),
                conversation_id: None,
                body: "hi".into(),
                kind: None,
                attachments: vec![],
            },
            json!({"type": "send", "client_id": "k-1", "body": "hi"}),
        );
    }

    #[test]
    fn a_send_frame_accepts_null_for_its_optional_fields() {
        let frame = parse_client_frame(
            r#"{"type":"send","client_id":"k","conversation_id":null,"body":"b","kind":null}"#,
        );
        assert_eq!(
            frame,
            Ok(ClientFrame::Send {
                client_id: "k".into(),
                conversation_id: None,
                body: "b".into(),
                kind: None,
                attachments: vec![],
            })
        );
    }

    #[test]
    fn a_send_without_kind_is_a_reply_stored_as_a_message() {
        let frame = parse_client_frame(r#"{"type":"send","client_id":"k","body":"b"}"#).unwrap();
        assert_eq!(frame.send_kind(), Some(SendKind::Reply));
        assert_eq!(SendKind::Reply.message_kind(), MessageKind::Message);
        assert_eq!(SendKind::Comment.message_kind(), MessageKind::Comment);
        assert_eq!(
            ClientFrame::View {
                conversation_id: "c".into()
            }
            .send_kind(),
            None
        );
    }

    #[test]
    fn a_typing_frame_has_the_contract_shape() {
        assert_client_shape(
            ClientFrame::Typing {
                conversation_id: "c1".into(),
                on: true,
            },
            json!({"type": "typing", "conversation_id": "c1", "on": true}),
        );
    }

    #[test]
    fn a_resume_frame_has_the_contract_shape() {
        assert_client_shape(
            ClientFrame::Resume {
                conversation_id: "c1".into(),
                after_seq: 41,
            },
            json!({"type": "resume", "conversation_id": "c1", "after_seq": 41}),
        );
    }

    #[test]
    fn a_view_frame_has_the_contract_shape() {
        assert_client_shape(
            ClientFrame::View {
                conversation_id: "c1".into(),
            },
            json!({"type": "view", "conversation_id": "c1"}),
        );
    }

    #[test]
    fn a_presence_frame_has_the_contract_shape() {
        assert_client_shape(
            ClientFrame::Presence {
                status: PresenceStatus::Away,
            },
            json!({"type": "presence", "status": "away"}),
        );
        assert_client_shape(
            ClientFrame::Presence {
                status: PresenceStatus::Online,
            },
            json!({"type": "presence", "status": "online"}),
        );
    }

    #[test]
    fn client_frame_type_names_match_their_serialized_type() {
        let frames = [
            ClientFrame::Send {
                client_id: "k".into(),
                conversation_id: None,
                body: "b".into(),
                kind: None,
                attachments: vec![],
            },
            ClientFrame::Typing {
                conversation_id: "c".into(),
                on: false,
            },
            ClientFrame::Resume {
                conversation_id: "c".into(),
                after_seq: 0,
            },
            ClientFrame::View {
                conversation_id: "c".into(),
            },
            ClientFrame::Presence {
                status: PresenceStatus::Online,
            },
        ];
        let names: Vec<_> = frames.iter().map(ClientFrame::type_name).collect();
        assert_eq!(names, ClientFrame::TYPES);
        for frame in &frames {
            assert_eq!(to_json(frame)["type"], frame.type_name());
        }
    }

    #[test]
    fn unknown_fields_in_a_client_frame_are_ignored() {
        let frame = parse_client_frame(r#"{"type":"view","conversation_id":"c1","v":2}"#);
        assert_eq!(
            frame,
            Ok(ClientFrame::View {
                conversation_id: "c1".into()
            })
        );
    }

    // --- server frame shapes ---

    #[test]
    fn an_ack_frame_has_the_contract_shape() {
        assert_server_shape(
            ServerFrame::Ack {
                client_id: "k-1".into(),
                conversation_id: "c1".into(),
                id: "m7".into(),
                seq: 7,
            },
            json!({"type": "ack", "client_id": "k-1", "conversation_id": "c1",
                   "id": "m7", "seq": 7}),
        );
    }

    #[test]
    fn a_message_frame_has_the_contract_shape() {
        assert_server_shape(
            ServerFrame::message(sample_message()),
            json!({
                "type": "message",
                "conversation_id": "c1",
                "message": {
                    "id": "m7",
                    "conversation_id": "c1",
                    "seq": 7,
                    "kind": "message",
                    "sender": {"type": "agent", "id": "u1", "name": "Ana"},
                    "body": "Hello!",
                    "attachments": [{"id": "a1", "name": "invoice.pdf",
                                     "content_type": "application/pdf", "size": 1024,
                                     "url": "/api/v1/attachments/a1"}],
                    "channel": "chat",
                    "created_at": "2025-03-14T09:30:00Z"
                }
            }),
        );
    }

    #[test]
    fn a_typing_server_frame_has_the_contract_shape() {
        assert_server_shape(
            ServerFrame::Typing {
                conversation_id: "c1".into(),
                who: Participant {
                    kind: ParticipantKind::Visitor,
                    id: "k1".into(),
                    name: "Visitor".into(),
                },
                on: false,
            },
            json!({"type": "typing", "conversation_id": "c1",
                   "who": {"type": "visitor", "id": "k1", "name": "Visitor"}, "on": false}),
        );
    }

    #[test]
    fn a_viewers_frame_has_the_contract_shape() {
        assert_server_shape(
            ServerFrame::Viewers {
                conversation_id: "c1".into(),
                users: vec![Viewer {
                    id: "u1".into(),
                    name: "Ana".into(),
                }],
            },
            json!({"type": "viewers", "conversation_id": "c1",
                   "users": [{"id": "u1", "name": "Ana"}]}),
        );
    }

    #[test]
    fn a_conversation_frame_has_the_contract_shape_with_a_null_assignee() {
        assert_server_shape(
            ServerFrame::conversation(ConversationEvent::Created, sample_conversation()),
            json!({
                "type": "conversation",
                "event": "created",
                "conversation": {
                    "id": "c1",
                    "inbox_id": "i1",
                    "channel": "chat",
                    "status": "open",
                    "assignee_id": null,
                    "contact_id": "k1",
                    "created_at": "2025-03-14T09:00:00Z",
                    "last_message_at": "2025-03-14T09:30:00Z"
                }
            }),
        );
    }

    #[test]
    fn a_conversation_frame_names_every_event_in_snake_case() {
        let events = [
            (ConversationEvent::Created, "created"),
            (ConversationEvent::Assigned, "assigned"),
            (ConversationEvent::Closed, "closed"),
            (ConversationEvent::Reopened, "reopened"),
            (ConversationEvent::Updated, "updated"),
        ];
        for (event, name) in events {
            let mut conversation = sample_conversation();
            conversation.assignee_id = Some("u1".into());
            conversation.status = ConversationStatus::Closed;
            let json = to_json(&ServerFrame::conversation(event, conversation));
            assert_eq!(json["event"], name);
            assert_eq!(json["conversation"]["assignee_id"], "u1");
            assert_eq!(json["conversation"]["status"], "closed");
        }
    }

    #[test]
    fn a_presence_server_frame_has_the_contract_shape() {
        for (status, name) in [
            (PresenceState::Online, "online"),
            (PresenceState::Away, "away"),
            (PresenceState::Offline, "offline"),
        ] {
            assert_server_shape(
                ServerFrame::Presence {
                    user_id: "u1".into(),
                    status,
                },
                json!({"type": "presence", "user_id": "u1", "status": name}),
            );
        }
        assert_eq!(
            PresenceState::from(PresenceStatus::Away),
            PresenceState::Away
        );
    }

    #[test]
    fn an_error_frame_has_the_contract_shape_with_ref() {
        assert_server_shape(
            ServerFrame::error(ErrorCode::BodyTooLong, "body too long", Some("k-1".into())),
            json!({"type": "error", "code": "body_too_long", "message": "body too long",
                   "ref": "k-1"}),
        );
    }

    #[test]
    fn an_error_frame_without_ref_omits_it() {
        assert_server_shape(
            ServerFrame::error(ErrorCode::Internal, "oops", None),
            json!({"type": "error", "code": "internal", "message": "oops"}),
        );
    }

    #[test]
    fn server_frame_type_names_match_their_serialized_type() {
        let frames = [
            ServerFrame::Ack {
                client_id: "k".into(),
                conversation_id: "c".into(),
                id: "m".into(),
                seq: 1,
            },
            ServerFrame::message(sample_message()),
            ServerFrame::Typing {
                conversation_id: "c".into(),
                who: ana(),
                on: true,
            },
            ServerFrame::Viewers {
                conversation_id: "c".into(),
                users: vec![],
            },
            ServerFrame::conversation(ConversationEvent::Updated, sample_conversation()),
            ServerFrame::Presence {
                user_id: "u".into(),
                status: PresenceState::Online,
            },
            ServerFrame::error(ErrorCode::Conflict, "x", None),
            ServerFrame::Queue {
                conversation_id: "c".into(),
                position: 2,
                estimate_seconds: Some(90),
            },
            ServerFrame::Mention {
                conversation_id: "c".into(),
                message: sample_message(),
            },
        ];
        let names: Vec<_> = frames.iter().map(ServerFrame::type_name).collect();
        assert_eq!(names, ServerFrame::TYPES);
        for frame in &frames {
            assert_eq!(to_json(frame)["type"], frame.type_name());
        }
    }

    #[test]
    fn times_are_rfc3339_utc_with_z_and_keep_subseconds() {
        let t = at(9, 30, 0) + chrono::Duration::milliseconds(123);
        let mut message = sample_message();
        message.created_at = t;
        let json = to_json(&message);
        assert_eq!(json["created_at"], "2025-03-14T09:30:00.123Z");
        assert_eq!(
            serde_json::from_value::<MessageObject>(json).unwrap(),
            message
        );
    }

    #[test]
    fn visitors_see_everything_but_comments_viewers_and_presence() {
        let mut comment = sample_message();
        comment.kind = MessageKind::Comment;
        let mut event = sample_message();
        event.kind = MessageKind::Event;
        assert!(ServerFrame::message(sample_message()).visible_to_visitor());
        assert!(ServerFrame::message(event).visible_to_visitor());
        assert!(!ServerFrame::message(comment).visible_to_visitor());
        assert!(
            !ServerFrame::Viewers {
                conversation_id: "c".into(),
                users: vec![]
            }
            .visible_to_visitor()
        );
        assert!(
            !ServerFrame::Presence {
                user_id: "u".into(),
                status: PresenceState::Away
            }
            .visible_to_visitor()
        );
    }

    #[test]
    fn every_participant_kind_serializes_in_snake_case() {
        for (kind, name) in [
            (ParticipantKind::Visitor, "visitor"),
            (ParticipantKind::Agent, "agent"),
            (ParticipantKind::Bot, "bot"),
            (ParticipantKind::System, "system"),
        ] {
            assert_eq!(to_json(&kind), name);
        }
        for (channel, name) in [
            (Channel::Chat, "chat"),
            (Channel::Email, "email"),
            (Channel::Form, "form"),
            (Channel::Messenger, "messenger"),
        ] {
            assert_eq!(to_json(&channel), name);
        }
    }

    // --- error codes ---

    #[test]
    fn error_codes_serialize_as_their_str() {
        for code in ErrorCode::ALL {
            assert_eq!(to_json(&code), code.as_str());
            assert_eq!(code.to_string(), code.as_str());
            assert_eq!(
                serde_json::from_value::<ErrorCode>(json!(code.as_str())).unwrap(),
                code
            );
        }
    }

    #[test]
    fn the_contract_error_codes_all_exist() {
        let names: Vec<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        for required in [
            "invalid_json",
            "unknown_frame",
            "invalid_frame",
            "body_too_long",
            "frame_too_large",
            "rate_limited",
            "not_found",
            "forbidden",
            "conflict",
            "internal",
        ] {
            assert!(names.contains(&required), "missing {required}");
        }
    }

    #[test]
    fn mentions_are_read_from_the_markup_once_each() {
        assert_eq!(
            mentioned_user_ids("hi <@u-1> and <@u_2>, again <@u-1>"),
            vec!["u-1".to_owned(), "u_2".to_owned()]
        );
        assert!(mentioned_user_ids("a <@> b <@x y> c <@unclosed").is_empty());
        assert!(mentioned_user_ids("<img src=x onerror=alert(1)> @Ana").is_empty());
        let many: String = (0..30).map(|i| format!("<@u{i}>")).collect();
        assert_eq!(mentioned_user_ids(&many).len(), 20);
    }

    #[test]
    fn the_protocol_reference_lists_every_frame_and_code() {
        let doc = include_str!("../../docs/protocol.md");
        for code in ErrorCode::ALL {
            assert!(
                doc.contains(&format!("`{code}`")),
                "docs/protocol.md lacks code {code}"
            );
        }
        for name in ClientFrame::TYPES.iter().chain(ServerFrame::TYPES.iter()) {
            assert!(
                doc.contains(&format!("\"type\": \"{name}\"")),
                "docs/protocol.md lacks an example of frame {name}"
            );
        }
    }

    // --- the three error classes ---

    #[test]
    fn text_that_is_not_json_is_invalid_json() {
        for text in ["", "{", "hello", "{\"type\":\"view\",}", "\u{0}"] {
            let err = parse_client_frame(text).unwrap_err();
            assert!(matches!(err, ProtocolError::InvalidJson { .. }), "{text:?}");
            assert_eq!(err.code(), ErrorCode::InvalidJson);
            assert!(err.to_string().starts_with("invalid JSON: "));
        }
    }

    #[test]
    fn json_without_a_type_is_an_unknown_frame() {
        for text in [
            r#"{}"#,
            r#"{"kind":"send"}"#,
            r#"{"type":7}"#,
            r#"{"type":null}"#,
        ] {
            let err = parse_client_frame(text).unwrap_err();
            assert_eq!(err, ProtocolError::MissingType, "{text}");
            assert_eq!(err.code(), ErrorCode::UnknownFrame);
        }
    }

    #[test]
    fn json_with_an_unknown_type_is_an_unknown_frame_naming_it() {
        let err = parse_client_frame(r#"{"type":"ack","client_id":"k"}"#).unwrap_err();
        assert_eq!(err.code(), ErrorCode::UnknownFrame);
        assert_eq!(err.to_string(), "unknown frame type `ack`");
        assert_eq!(
            parse_client_frame(r#"{"type":"Send"}"#).unwrap_err().code(),
            ErrorCode::UnknownFrame
        );
    }

    #[test]
    fn a_long_unknown_type_is_cut_in_the_message() {
        let long = "x".repeat(10_000);
        let err = parse_client_frame(&json!({ "type": long }).to_string()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::UnknownFrame);
        assert!(err.to_string().len() < 200);
        assert!(err.to_string().ends_with("…`"));
    }

    #[test]
    fn json_that_is_not_an_object_is_an_invalid_frame() {
        for text in ["[]", "42", "\"send\"", "null", r#"[{"type":"view"}]"#] {
            let err = parse_client_frame(text).unwrap_err();
            assert_eq!(err, ProtocolError::NotAnObject, "{text}");
            assert_eq!(err.code(), ErrorCode::InvalidFrame);
        }
    }

    #[test]
    fn a_known_type_with_a_missing_field_is_an_invalid_frame_naming_it() {
        let err = parse_client_frame(r#"{"type":"send","client_id":"k-9"}"#).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidFrame);
        assert_eq!(
            err.to_string(),
            "invalid `send` frame: missing field `body`"
        );
        assert_eq!(err.client_id(), Some("k-9"));
    }

    #[test]
    fn a_known_type_with_a_mistyped_field_is_an_invalid_frame_naming_the_problem() {
        let err = parse_client_frame(r#"{"type":"resume","conversation_id":"c","after_seq":-1}"#)
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidFrame);
        let message = err.to_string();
        assert!(message.starts_with("invalid `resume` frame: "), "{message}");
        assert!(message.contains("-1"), "{message}");
        assert_eq!(err.client_id(), None);

        let err = parse_client_frame(r#"{"type":"presence","status":"offline"}"#).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidFrame);
        assert!(err.to_string().contains("offline"), "{err}");

        let err = parse_client_frame(r#"{"type":"typing","conversation_id":"c","on":"yes"}"#)
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidFrame);
    }

    #[test]
    fn a_protocol_error_becomes_an_error_frame_with_the_client_id_as_ref() {
        let err = parse_client_frame(r#"{"type":"send","client_id":"k-9","body":5}"#).unwrap_err();
        let frame = err.to_frame();
        let json = to_json(&frame);
        assert_eq!(json["type"], "error");
        assert_eq!(json["code"], "invalid_frame");
        assert_eq!(json["ref"], "k-9");
        assert_eq!(json["message"], err.to_string());

        let json = to_json(&parse_client_frame("nope").unwrap_err().to_frame());
        assert_eq!(json["code"], "invalid_json");
        assert!(json.get("ref").is_none());
    }

    // --- properties ---

    fn arb_send_kind() -> impl Strategy<Value = SendKind> {
        prop_oneof![Just(SendKind::Reply), Just(SendKind::Comment)]
    }

    fn arb_client_frame() -> impl Strategy<Value = ClientFrame> {
        prop_oneof![
            (
                any::<String>(),
                proptest::option::of(any::<String>()),
                any::<String>(),
                proptest::option::of(arb_send_kind()),
            )
                .prop_map(|(client_id, conversation_id, body, kind)| {
                    ClientFrame::Send {
                        client_id,
                        conversation_id,
                        body,
                        kind,
                        attachments: vec![],
                    }
                }),
            (any::<String>(), any::<bool>()).prop_map(|(conversation_id, on)| {
                ClientFrame::Typing {
                    conversation_id,
                    on,
                }
            }),
            (any::<String>(), any::<u64>()).prop_map(|(conversation_id, after_seq)| {
                ClientFrame::Resume {
                    conversation_id,
                    after_seq,
                }
            }),
            any::<String>().prop_map(|conversation_id| ClientFrame::View { conversation_id }),
            prop_oneof![Just(PresenceStatus::Online), Just(PresenceStatus::Away)]
                .prop_map(|status| ClientFrame::Presence { status }),
        ]
    }

    fn arb_time() -> impl Strategy<Value = DateTime<Utc>> {
        (0i64..4_102_444_800, 0u32..1_000_000_000)
            .prop_map(|(secs, nanos)| Utc.timestamp_opt(secs, nanos).single().unwrap())
    }

    fn arb_participant() -> impl Strategy<Value = Participant> {
        (
            prop_oneof![
                Just(ParticipantKind::Visitor),
                Just(ParticipantKind::Agent),
                Just(ParticipantKind::Bot),
                Just(ParticipantKind::System),
            ],
            any::<String>(),
            any::<String>(),
        )
            .prop_map(|(kind, id, name)| Participant { kind, id, name })
    }

    fn arb_server_frame() -> impl Strategy<Value = ServerFrame> {
        prop_oneof![
            (any::<String>(), any::<u64>(), arb_time(), arb_participant()).prop_map(
                |(body, seq, created_at, sender)| {
                    ServerFrame::message(MessageObject {
                        seq,
                        body,
                        created_at,
                        sender,
                        ..sample_message()
                    })
                }
            ),
            (arb_time(), proptest::option::of(any::<String>())).prop_map(
                |(last_message_at, assignee_id)| {
                    ServerFrame::conversation(
                        ConversationEvent::Assigned,
                        ConversationObject {
                            last_message_at,
                            assignee_id,
                            ..sample_conversation()
                        },
                    )
                }
            ),
            (any::<String>(), any::<bool>(), arb_participant()).prop_map(
                |(conversation_id, on, who)| ServerFrame::Typing {
                    conversation_id,
                    who,
                    on
                }
            ),
            (
                proptest::sample::select(ErrorCode::ALL.to_vec()),
                any::<String>(),
                proptest::option::of(any::<String>())
            )
                .prop_map(|(code, message, r#ref)| ServerFrame::error(code, message, r#ref)),
        ]
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
            proptest::sample::select(vec!["reply", "comment", "online", "away", "offline"])
                .prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z_]{0,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Objects that look like client frames: a known or random `type`, and known field
    /// names with arbitrary values.
    fn arb_frame_like() -> impl Strategy<Value = Value> {
        let type_value = prop_oneof![
            4 => proptest::sample::select(ClientFrame::TYPES.to_vec()).prop_map(Value::from),
            1 => arb_json(),
        ];
        let field = proptest::sample::select(vec![
            "client_id",
            "conversation_id",
            "body",
            "kind",
            "on",
            "after_seq",
            "status",
            "extra",
        ]);
        (
            type_value,
            proptest::collection::btree_map(field, arb_json(), 0..6),
        )
            .prop_map(|(type_value, fields)| {
                let mut map: serde_json::Map<String, Value> =
                    fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                map.insert("type".into(), type_value);
                Value::Object(map)
            })
    }

    proptest! {
        #[test]
        fn any_client_frame_round_trips_through_json(frame in arb_client_frame()) {
            let text = serde_json::to_string(&frame).unwrap();
            prop_assert_eq!(parse_client_frame(&text), Ok(frame));
        }

        #[test]
        fn any_server_frame_round_trips_through_json(frame in arb_server_frame()) {
            let text = serde_json::to_string(&frame).unwrap();
            prop_assert_eq!(serde_json::from_str::<ServerFrame>(&text).unwrap(), frame);
        }

        #[test]
        fn arbitrary_text_never_panics_the_parser(text in any::<String>()) {
            let _ = parse_client_frame(&text);
        }

        #[test]
        fn arbitrary_json_never_panics_the_parser(value in arb_json()) {
            let _ = parse_client_frame(&value.to_string());
        }

        #[test]
        fn frame_like_json_parses_to_a_stable_frame_or_a_classified_error(
            value in arb_frame_like()
        ) {
            let known_type = value["type"]
                .as_str()
                .is_some_and(|t| ClientFrame::TYPES.contains(&t));
            match parse_client_frame(&value.to_string()) {
                Ok(frame) => {
                    let again = serde_json::to_string(&frame).unwrap();
                    prop_assert_eq!(parse_client_frame(&again), Ok(frame));
                }
                Err(err) => {
                    let expected = if known_type {
                        ErrorCode::InvalidFrame
                    } else {
                        ErrorCode::UnknownFrame
                    };
                    prop_assert_eq!(err.code(), expected);
                }
            }
        }
    }
}
