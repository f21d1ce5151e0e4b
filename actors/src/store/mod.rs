//! The store port: what the engine needs from durable storage. The SQL implementation
//! lives in the server crate (`parley::store::engine`); [`memory::MemoryStore`] is the
//! in-memory reference implementation the engine's own tests run on.
//!
//! The store assigns `seq` inside the commit that makes a message durable, so `seq` is
//! gap-free per conversation whichever node writes, and a repeated `client_id` returns
//! the message it first made instead of making another.

pub mod memory;

use chrono::{DateTime, Utc};

use crate::protocol::{
    AgentProfile, Attachment, Channel, ConversationObject, ConversationStatus, MessageKind,
    MessageObject, Participant,
};

/// A conversation as the engine needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRecord {
    /// Opaque id.
    pub id: String,
    /// Workspace.
    pub workspace_id: String,
    /// Inbox it belongs to.
    pub inbox_id: String,
    /// Channel record it came through.
    pub channel_id: String,
    /// Channel kind.
    pub channel: Channel,
    /// The customer.
    pub contact_id: String,
    /// Open or closed.
    pub status: ConversationStatus,
    /// Assigned agent.
    pub assignee_id: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Time of the last message (creation time before the first).
    pub last_message_at: DateTime<Utc>,
    /// Highest `seq` committed.
    pub last_seq: u64,
    /// The assignee's public profile, when the store read it (`None` otherwise).
    pub assignee: Option<AgentProfile>,
}

impl ConversationRecord {
    /// The wire object.
    pub fn to_object(&self) -> ConversationObject {
        ConversationObject {
            id: self.id.clone(),
            inbox_id: self.inbox_id.clone(),
            channel: self.channel,
            status: self.status,
            assignee_id: self.assignee_id.clone(),
            contact_id: self.contact_id.clone(),
            created_at: self.created_at,
            last_message_at: self.last_message_at,
            assignee: self
                .assignee
                .clone()
                .filter(|a| Some(&a.id) == self.assignee_id.as_ref()),
        }
    }
}

/// A conversation to create.
#[derive(Debug, Clone)]
pub struct NewConversation {
    /// Workspace.
    pub workspace_id: String,
    /// Inbox.
    pub inbox_id: String,
    /// Channel record.
    pub channel_id: String,
    /// Channel kind.
    pub channel: Channel,
    /// The customer.
    pub contact_id: String,
}

/// A message to append.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Workspace (checked against the conversation's).
    pub workspace_id: String,
    /// Target conversation.
    pub conversation_id: String,
    /// Message, comment or event.
    pub kind: MessageKind,
    /// Who sent it.
    pub sender: Participant,
    /// Text.
    pub body: String,
    /// Attachments.
    pub attachments: Vec<Attachment>,
    /// Channel it was written in.
    pub channel: Channel,
    /// Idempotency key chosen by the client.
    pub client_id: Option<String>,
}

/// The outcome of one message of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Stored now, with its `seq`.
    New(MessageObject),
    /// The `client_id` was seen before: this is the message it made then.
    Duplicate(MessageObject),
    /// No such conversation in this workspace.
    NoConversation,
}

impl Appended {
    /// The stored message, new or earlier.
    pub fn message(&self) -> Option<&MessageObject> {
        match self {
            Appended::New(m) | Appended::Duplicate(m) => Some(m),
            Appended::NoConversation => None,
        }
    }
}

/// One agent in an inbox's routing pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolMember {
    /// The user.
    pub user_id: String,
    /// Max open assigned conversations (member override, else the inbox default).
    pub capacity: Option<u32>,
    /// Open conversations of this inbox assigned to them now.
    pub load: u32,
}

/// What routing needs to (re)build an inbox's state from durable records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingSnapshot {
    /// Workspace of the inbox.
    pub workspace_id: String,
    /// True for `round_robin`, false for `manual`.
    pub round_robin: bool,
    /// The agents who route here (inbox members, or the routing team's members),
    /// active users only.
    pub pool: Vec<PoolMember>,
    /// Open, unassigned conversations, oldest first.
    pub waiting: Vec<String>,
    /// Open conversations assigned now.
    pub assigned: Vec<String>,
    /// Return an offline agent's open conversations to the queue after this long
    /// (`None` = they keep them).
    pub return_after: Option<std::time::Duration>,
}

/// A store failure (the database is unreachable, a constraint broke, …).
#[derive(Debug, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(pub String);

/// Durable records the engine reads and writes.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Create a conversation (open, unassigned, `last_seq` 0).
    async fn create_conversation(
        &self,
        new: NewConversation,
    ) -> Result<ConversationRecord, StoreError>;

    /// Read a conversation.
    async fn conversation(&self, id: &str) -> Result<Option<ConversationRecord>, StoreError>;

    /// Append a batch in one transaction (group commit). Each message gets the next
    /// `seq` of its conversation; results are in the batch's order.
    async fn append(&self, batch: Vec<NewMessage>) -> Result<Vec<Appended>, StoreError>;

    /// The routing pool, loads and waiting conversations of an inbox (`None`: no such
    /// inbox).
    async fn routing_snapshot(&self, inbox_id: &str)
    -> Result<Option<RoutingSnapshot>, StoreError>;

    /// Assign a conversation if it is still open and unassigned and the agent has fewer
    /// than `capacity` open conversations in its inbox (checked under a per-agent lock,
    /// so concurrent nodes can never push an agent over); records `reason` in the
    /// audit log. `None` when it was refused.
    async fn assign_if_unassigned(
        &self,
        conversation_id: &str,
        agent_id: &str,
        capacity: Option<u32>,
        reason: &str,
    ) -> Result<Option<ConversationRecord>, StoreError>;

    /// Unassign an agent's open conversations in an inbox (recording `reason` in the
    /// audit log); returns them as they are now.
    async fn return_conversations(
        &self,
        inbox_id: &str,
        agent_id: &str,
        reason: &str,
    ) -> Result<Vec<ConversationRecord>, StoreError>;

    /// `(workspace_id, inbox_id)` of every round-robin inbox, for the router to pick
    /// up at start (what waited before a restart is routed as soon as someone can take
    /// it).
    async fn round_robin_inboxes(&self) -> Result<Vec<(String, String)>, StoreError>;

    /// Bind uploads (`ids`, all made by `uploader`) to a conversation of the uploader's
    /// (a visitor's own; an agent's workspace) and describe them, in `ids` order.
    /// Idempotent: uploads already bound to this conversation pass again. `None` when
    /// any is unknown, someone else's, or bound to another conversation. Stores without
    /// uploads refuse every id.
    async fn claim_attachments(
        &self,
        ids: &[String],
        uploader: &Participant,
        conversation_id: &str,
    ) -> Result<Option<Vec<Attachment>>, StoreError> {
        let _ = (ids, uploader, conversation_id);
        Ok(None)
    }

    /// Messages of a conversation with `seq > after_seq`, in order, at most `limit`.
    async fn messages_after(
        &self,
        conversation_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<MessageObject>, StoreError>;
}

/// A shared handle to the node's store.
pub type SharedStore = std::sync::Arc<dyn Store>;
