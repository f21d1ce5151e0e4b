//! The three wire dialects the one client speaks, so that every target is loaded by the
//! same code (equal client bias):
//!
//! - [`Proto::Parley`]: Parley's JSON frames (`docs/protocol.md`), one JSON object per
//!   WebSocket text message;
//! - [`Proto::SocketIo`]: Socket.IO v5 over Engine.IO v4 on a plain WebSocket
//!   (`/socket.io/?EIO=4&transport=websocket`): open `0{…}`, connect `40{auth}`, events
//!   `42["name",{…}]`, acks `43<id>[{…}]`, ping `2` / pong `3`. The peer's event payloads
//!   have the same fields as Parley's frames, so one decoder reads both;
//! - [`Proto::Relay`]: the bare relay (`parley-relay`) speaks Parley's frames.
//!
//! Decoding yields an [`Event`] borrowing from the text.

use std::borrow::Cow;

use serde::Deserialize;

/// Which dialect a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// Parley.
    Parley,
    /// The Socket.IO peer.
    SocketIo,
    /// The bare WebSocket relay (Parley's frames, nothing stored).
    Relay,
}

/// What a server frame means to the generator.
#[derive(Debug, PartialEq)]
pub enum Event<'a> {
    /// A `send` is durable.
    Ack {
        /// The client's id.
        client_id: Option<Cow<'a, str>>,
        /// Its conversation.
        conversation_id: Option<Cow<'a, str>>,
        /// Its seq.
        seq: Option<u64>,
    },
    /// A message of a followed conversation.
    Message {
        /// Its conversation.
        conversation_id: Cow<'a, str>,
        /// Its seq.
        seq: u64,
        /// Its body (carries the schedule index).
        body: Cow<'a, str>,
    },
    /// A refused frame.
    Error {
        /// The code.
        code: Cow<'a, str>,
        /// The refused `send`'s client id.
        r#ref: Option<Cow<'a, str>>,
    },
    /// A conversation was created or changed.
    Conversation {
        /// `created`, `assigned`, …
        event: Cow<'a, str>,
        /// Which.
        conversation_id: Cow<'a, str>,
        /// Its assignee after the change.
        assignee_id: Option<Cow<'a, str>>,
    },
    /// A waiting visitor's place in line.
    Queue {
        /// Which conversation.
        conversation_id: Cow<'a, str>,
    },
    /// An agent's presence.
    Presence {
        /// Whose.
        user_id: Option<Cow<'a, str>>,
    },
    /// Engine.IO ping: answer [`Proto::pong`].
    Ping,
    /// Engine.IO open (`0{…}`).
    Open,
    /// Socket.IO namespace connected (`40{…}`).
    Connected,
    /// Socket.IO connect refused (`44{…}`).
    ConnectError(Cow<'a, str>),
    /// Anything else (typing, viewers, presence of others, …).
    Other,
    /// Not readable in this dialect.
    Unreadable,
}

#[derive(Debug, Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow, default)]
    ty: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    client_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    conversation_id: Option<Cow<'a, str>>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(borrow, default)]
    code: Option<Cow<'a, str>>,
    #[serde(rename = "ref", borrow, default)]
    r#ref: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<Payload<'a>>,
    #[serde(borrow, default)]
    user_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    event: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    conversation: Option<ConversationObject<'a>>,
    /// A Socket.IO ack's refusal: `{client_id, error: {code, message}}`.
    #[serde(borrow, default)]
    error: Option<AckError<'a>>,
}

/// `message` is an object in `message` frames and a string in `error` frames.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Payload<'a> {
    Message(#[serde(borrow)] MessageObject<'a>),
    Text(#[allow(dead_code)] serde::de::IgnoredAny),
}

#[derive(Debug, Deserialize)]
struct MessageObject<'a> {
    #[serde(borrow)]
    conversation_id: Cow<'a, str>,
    seq: u64,
    #[serde(borrow)]
    body: Cow<'a, str>,
}

#[derive(Debug, Deserialize)]
struct ConversationObject<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow, default)]
    assignee_id: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct AckError<'a> {
    #[serde(borrow)]
    code: Cow<'a, str>,
}

impl<'a> Frame<'a> {
    /// The event a frame of type `ty` is.
    fn into_event(self, ty: &str) -> Event<'a> {
        match ty {
            "ack" => Event::Ack {
                client_id: self.client_id,
                conversation_id: self.conversation_id,
                seq: self.seq,
            },
            "message" => match self.message {
                Some(Payload::Message(m)) => Event::Message {
                    conversation_id: m.conversation_id,
                    seq: m.seq,
                    body: m.body,
                },
                _ => Event::Unreadable,
            },
            "error" | "error_frame" => Event::Error {
                code: self.code.unwrap_or(Cow::Borrowed("unknown")),
                r#ref: self.r#ref,
            },
            "conversation" => match (self.event, self.conversation) {
                (Some(event), Some(c)) => Event::Conversation {
                    event,
                    conversation_id: c.id,
                    assignee_id: c.assignee_id,
                },
                _ => Event::Unreadable,
            },
            "queue" => match self.conversation_id {
                Some(conversation_id) => Event::Queue { conversation_id },
                None => Event::Unreadable,
            },
            "presence" => Event::Presence {
                user_id: self.user_id,
            },
            _ => Event::Other,
        }
    }
}

/// Escape `s` as a JSON string (with the quotes).
pub fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

impl Proto {
    /// Decode one text message.
    pub fn decode<'a>(&self, text: &'a str) -> Event<'a> {
        match self {
            Proto::Parley | Proto::Relay => match serde_json::from_str::<Frame>(text) {
                Ok(f) => match f.ty.clone() {
                    Some(ty) => f.into_event(&ty),
                    None => Event::Unreadable,
                },
                Err(_) => Event::Unreadable,
            },
            Proto::SocketIo => decode_socketio(text),
        }
    }

    /// The text of a `send`. `conversation` is JSON-quoted already (or `None`: a visitor's
    /// first send); `ack_id` numbers the Socket.IO ack.
    pub fn send(
        &self,
        conversation: Option<&str>,
        client_id: &str,
        body: &str,
        ack_id: u64,
    ) -> String {
        let conv = match conversation {
            Some(c) => format!(r#","conversation_id":{c}"#),
            None => String::new(),
        };
        match self {
            Proto::Parley | Proto::Relay => {
                format!(r#"{{"type":"send","client_id":"{client_id}"{conv},"body":"{body}"}}"#)
            }
            Proto::SocketIo => {
                format!(r#"42{ack_id}["send",{{"client_id":"{client_id}"{conv},"body":"{body}"}}]"#)
            }
        }
    }

    /// The text of a `resume` (`conversation` JSON-quoted).
    pub fn resume(&self, conversation: &str, after_seq: u64) -> String {
        match self {
            Proto::Parley | Proto::Relay => format!(
                r#"{{"type":"resume","conversation_id":{conversation},"after_seq":{after_seq}}}"#
            ),
            Proto::SocketIo => format!(
                r#"42["resume",{{"conversation_id":{conversation},"after_seq":{after_seq}}}]"#
            ),
        }
    }

    /// The answer to [`Event::Ping`].
    pub fn pong(&self) -> &'static str {
        "3"
    }
}

fn decode_socketio(text: &str) -> Event<'_> {
    let bytes = text.as_bytes();
    match bytes.first() {
        Some(b'0') => return Event::Open,
        Some(b'2') => return Event::Ping,
        Some(b'4') => {}
        _ => return Event::Other,
    }
    match bytes.get(1) {
        Some(b'0') => Event::Connected,
        Some(b'4') => Event::ConnectError(Cow::Borrowed(&text[2..])),
        Some(b'2') => {
            // 42[<id>]["name",{…}]
            let rest = text[2..].trim_start_matches(|c: char| c.is_ascii_digit());
            match serde_json::from_str::<(Cow<str>, Frame)>(rest) {
                Ok((name, f)) => f.into_event(&name),
                Err(_) => Event::Unreadable,
            }
        }
        Some(b'3') => {
            // 43<id>[{…}]
            let rest = text[2..].trim_start_matches(|c: char| c.is_ascii_digit());
            match serde_json::from_str::<(Frame,)>(rest) {
                Ok((f,)) => match f.error {
                    Some(e) => Event::Error {
                        code: e.code,
                        r#ref: f.client_id,
                    },
                    None => f.into_event("ack"),
                },
                Err(_) => Event::Unreadable,
            }
        }
        _ => Event::Other,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn parley_frames_of_each_kind_decode() {
        let p = Proto::Parley;
        assert_eq!(
            p.decode(r#"{"type":"ack","client_id":"7","conversation_id":"c1","id":"m7","seq":7}"#),
            Event::Ack {
                client_id: Some("7".into()),
                conversation_id: Some("c1".into()),
                seq: Some(7)
            }
        );
        let msg = r#"{"type":"message","conversation_id":"c1","message":{"id":"m7","conversation_id":"c1","seq":7,"kind":"message","sender":{"type":"visitor","id":"k1","name":"V"},"body":"k=3;xx","attachments":[],"channel":"chat","created_at":"2025-03-14T09:30:00Z"}}"#;
        assert_eq!(
            p.decode(msg),
            Event::Message {
                conversation_id: "c1".into(),
                seq: 7,
                body: "k=3;xx".into()
            }
        );
        assert_eq!(
            p.decode(r#"{"type":"error","code":"rate_limited","message":"slow down","ref":"9"}"#),
            Event::Error {
                code: "rate_limited".into(),
                r#ref: Some("9".into())
            }
        );
        assert_eq!(
            p.decode(r#"{"type":"conversation","event":"assigned","conversation":{"id":"c1","assignee_id":"u1","status":"open"}}"#),
            Event::Conversation {
                event: "assigned".into(),
                conversation_id: "c1".into(),
                assignee_id: Some("u1".into())
            }
        );
        assert_eq!(
            p.decode(r#"{"type":"queue","conversation_id":"c1","position":2}"#),
            Event::Queue {
                conversation_id: "c1".into()
            }
        );
        assert_eq!(p.decode(r#"{"type":"typing"}"#), Event::Other);
        assert_eq!(p.decode("nope"), Event::Unreadable);
    }

    #[test]
    fn socketio_packets_decode() {
        let s = Proto::SocketIo;
        assert_eq!(
            s.decode(r#"0{"sid":"x","pingInterval":25000}"#),
            Event::Open
        );
        assert_eq!(s.decode(r#"40{"sid":"y"}"#), Event::Connected);
        assert_eq!(s.decode("2"), Event::Ping);
        assert!(matches!(
            s.decode(r#"44{"message":"unauthorized"}"#),
            Event::ConnectError(_)
        ));
        assert_eq!(
            s.decode(r#"4312[{"client_id":"11","conversation_id":"c1","id":"m","seq":3}]"#),
            Event::Ack {
                client_id: Some("11".into()),
                conversation_id: Some("c1".into()),
                seq: Some(3)
            }
        );
        assert_eq!(
            s.decode(r#"431[{"client_id":"11","error":{"code":"internal","message":"x"}}]"#),
            Event::Error {
                code: "internal".into(),
                r#ref: Some("11".into())
            }
        );
        assert_eq!(
            s.decode(r#"42["message",{"conversation_id":"c1","message":{"id":"m","conversation_id":"c1","seq":4,"body":"k=1;x","sender":{"type":"visitor","id":"v"}}}]"#),
            Event::Message {
                conversation_id: "c1".into(),
                seq: 4,
                body: "k=1;x".into()
            }
        );
        assert_eq!(
            s.decode(r#"42["conversation",{"event":"created","conversation":{"id":"c9","assignee_id":null}}]"#),
            Event::Conversation {
                event: "created".into(),
                conversation_id: "c9".into(),
                assignee_id: None
            }
        );
    }

    #[test]
    fn frames_are_written_in_each_dialect() {
        let c = json_str("c1");
        let p: serde_json::Value =
            serde_json::from_str(&Proto::Parley.send(Some(&c), "5", "hi", 6)).unwrap();
        assert_eq!(
            (p["type"].as_str(), p["conversation_id"].as_str()),
            (Some("send"), Some("c1"))
        );
        let s = Proto::SocketIo.send(None, "hello", "hi", 0);
        assert_eq!(s, r#"420["send",{"client_id":"hello","body":"hi"}]"#);
        let r = Proto::SocketIo.resume(&c, 3);
        assert_eq!(r, r#"42["resume",{"conversation_id":"c1","after_seq":3}]"#);
        let v: serde_json::Value = serde_json::from_str(&Proto::Relay.resume(&c, 0)).unwrap();
        assert_eq!(v["type"], "resume");
    }
}
