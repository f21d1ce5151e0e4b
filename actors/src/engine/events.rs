//! What travels on the backplane: events serialised once as JSON.

use serde::{Deserialize, Serialize};

use crate::protocol::{
    ConversationEvent, ConversationObject, MessageObject, Participant, PresenceState,
};

/// An event on a conversation's topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "e", rename_all = "snake_case")]
pub enum ConvEvent {
    /// A committed message.
    Message {
        /// The stored message.
        message: MessageObject,
    },
    /// Someone started or stopped typing.
    Typing {
        /// Who.
        who: Participant,
        /// Started (true) or stopped.
        on: bool,
    },
    /// The viewers set changed: re-read it.
    ViewersChanged,
    /// The conversation waits in its inbox's queue at this position (1 = next).
    Queue {
        /// 1-based position.
        position: usize,
        /// Likely wait, in seconds, when known.
        #[serde(default)]
        estimate_seconds: Option<u64>,
    },
    /// Test-only: crash every node's actor of this conversation.
    Fault,
}

/// An event on a workspace's topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "e", rename_all = "snake_case")]
pub enum WsEvent {
    /// A conversation was created or changed.
    Conversation {
        /// What happened.
        event: ConversationEvent,
        /// The conversation now.
        conversation: ConversationObject,
    },
    /// A user's inbox memberships changed (their open consoles update what they see).
    Membership {
        /// The user.
        user_id: String,
        /// Every inbox they are a member of now.
        inbox_ids: Vec<String>,
    },
    /// A comment @mentioned these users (their consoles show a `mention` frame).
    Mention {
        /// The conversation's inbox (only agents who may see it are told).
        inbox_id: String,
        /// The mentioned users.
        user_ids: Vec<String>,
        /// The comment.
        message: MessageObject,
    },
    /// A user's aggregate presence may have changed: re-read it.
    Presence {
        /// The user.
        user_id: String,
        /// Their status as the publisher saw it.
        status: PresenceState,
    },
}
