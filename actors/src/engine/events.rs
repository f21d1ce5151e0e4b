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

/// A frame rendered once per node and shared: every agent console of a workspace sends
/// the same `conversation` frame for each of the workspace's conversation events (two
/// per visitor arriving, to every console), so the first session to send it renders it
/// and the others reuse the text. Not sent between nodes.
#[derive(Debug, Clone, Default)]
pub struct RenderedFrame(std::sync::OnceLock<std::sync::Arc<str>>);

impl RenderedFrame {
    /// The frame's text, rendered by `render` the first time.
    pub fn get_or_render(
        &self,
        render: impl FnOnce() -> std::sync::Arc<str>,
    ) -> std::sync::Arc<str> {
        self.0.get_or_init(render).clone()
    }
}

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
        /// Its `conversation` frame, once a session of this node has rendered it.
        #[serde(skip)]
        frame: RenderedFrame,
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

    /// A conversation event's frame is rendered once and shared; it never travels
    /// between nodes (a decoded event renders its own).
    #[test]
    fn a_rendered_frame_is_rendered_once_and_not_encoded() {
        let frame = RenderedFrame::default();
        let mut renders = 0;
        let first = frame.get_or_render(|| {
            renders += 1;
            "one".into()
        });
        let again = frame.get_or_render(|| {
            renders += 1;
            "two".into()
        });
        assert_eq!((renders, &*first, &*again), (1, "one", "one"));
        assert!(std::sync::Arc::ptr_eq(&first, &again));
        let shared = frame.clone();
        assert_eq!(&*shared.get_or_render(|| "three".into()), "one");
        let event = WsEvent::Conversation {
            event: ConversationEvent::Created,
            conversation: ConversationObject {
                id: "c1".into(),
                inbox_id: "i1".into(),
                channel: Channel::Chat,
                status: crate::protocol::ConversationStatus::Open,
                assignee_id: None,
                contact_id: "k1".into(),
                created_at: Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap(),
                last_message_at: Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap(),
                assignee: None,
            },
            frame: shared,
        };
        let text = serde_json::to_string(&event).unwrap();
        assert!(!text.contains("frame") && !text.contains("one"), "{text}");
        match serde_json::from_str::<WsEvent>(&text).unwrap() {
            WsEvent::Conversation { frame, .. } => {
                assert_eq!(&*frame.get_or_render(|| "fresh".into()), "fresh");
            }
            other => panic!("decoded {other:?}"),
        }
    }
}
