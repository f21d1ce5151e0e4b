//! What travels on the backplane. Within a node every subscriber of a topic shares the
//! publisher's one `Arc<Event>`: nothing is encoded or decoded. Between nodes (Redis) an
//! event is JSON, encoded once by its publisher and decoded once by each node that
//! receives it, then shared by that node's subscribers in the same way. The JSON is
//! externally tagged (`{"conversation":{"message":{…}}}`), so a decoder meets the variant
//! before its fields and never buffers them.

use serde::{Deserialize, Serialize};

use crate::protocol::{
    ConversationEvent, ConversationObject, MessageObject, Participant, PresenceState,
};

/// Any event on the backplane: a conversation's topic carries [`ConvEvent`]s, a
/// workspace's and a contact's topics [`WsEvent`]s.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// On a conversation's topic.
    Conversation(ConvEvent),
    /// On a workspace's or a contact's topic.
    Workspace(WsEvent),
}

impl From<ConvEvent> for Event {
    fn from(event: ConvEvent) -> Self {
        Self::Conversation(event)
    }
}

impl From<WsEvent> for Event {
    fn from(event: WsEvent) -> Self {
        Self::Workspace(event)
    }
}

/// An event on a conversation's topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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

/// An event on a workspace's (or a contact's) topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::{TimeZone, Utc};
    use serde_json::{Value, json};

    use super::*;
    use crate::protocol::{Channel, MessageKind, ParticipantKind};

    fn message() -> MessageObject {
        MessageObject {
            id: "m1".into(),
            conversation_id: "c1".into(),
            seq: 3,
            kind: MessageKind::Comment,
            sender: Participant {
                kind: ParticipantKind::Agent,
                id: "u1".into(),
                name: "Ana".into(),
            },
            body: "@Bo look".into(),
            attachments: Vec::new(),
            channel: Channel::Chat,
            created_at: Utc
                .with_ymd_and_hms(2025, 3, 14, 9, 30, 0)
                .single()
                .unwrap(),
        }
    }

    /// Every kind of event crosses between nodes unchanged.
    #[test]
    fn every_event_survives_the_trip_between_nodes() {
        let events: Vec<Event> = vec![
            ConvEvent::Message { message: message() }.into(),
            ConvEvent::Typing {
                who: message().sender,
                on: true,
            }
            .into(),
            ConvEvent::ViewersChanged.into(),
            ConvEvent::Queue {
                position: 2,
                estimate_seconds: Some(40),
            }
            .into(),
            ConvEvent::Fault.into(),
            WsEvent::Membership {
                user_id: "u2".into(),
                inbox_ids: vec!["i1".into()],
            }
            .into(),
            WsEvent::Mention {
                inbox_id: "i1".into(),
                user_ids: vec!["u2".into()],
                message: message(),
            }
            .into(),
            WsEvent::Presence {
                user_id: "u2".into(),
                status: PresenceState::Away,
            }
            .into(),
        ];
        for event in events {
            let text = serde_json::to_string(&event).unwrap();
            let back: Event = serde_json::from_str(&text).unwrap();
            assert_eq!(serde_json::to_string(&back).unwrap(), text);
        }
    }

    /// The variant comes first (externally tagged), so decoding never buffers fields.
    #[test]
    fn events_are_tagged_by_their_outer_key() {
        let value: Value = serde_json::to_value(Event::from(ConvEvent::Queue {
            position: 1,
            estimate_seconds: None,
        }))
        .unwrap();
        assert_eq!(
            value,
            json!({"conversation": {"queue": {"position": 1, "estimate_seconds": null}}})
        );
        let value = serde_json::to_value(Event::from(ConvEvent::ViewersChanged)).unwrap();
        assert_eq!(value, json!({"conversation": "viewers_changed"}));
        // An absent estimate decodes as none.
        let event: Event =
            serde_json::from_value(json!({"conversation": {"queue": {"position": 4}}})).unwrap();
        assert!(matches!(
            event,
            Event::Conversation(ConvEvent::Queue {
                position: 4,
                estimate_seconds: None
            })
        ));
        assert!(serde_json::from_str::<Event>(r#"{"e":"message"}"#).is_err());
    }
}
