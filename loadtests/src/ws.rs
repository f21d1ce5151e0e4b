//! WebSocket connections and the server frames the generator reads (see
//! `docs/protocol.md`). Buffers are kept small: tungstenite's default read and write
//! buffers are 128 KiB each per socket, too much for many sockets.

use std::borrow::Cow;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A client socket.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Read buffer per socket, bytes.
pub const READ_BUFFER: usize = 8 * 1024;
/// Write buffer per socket, bytes (a flush always writes it out).
pub const WRITE_BUFFER: usize = 8 * 1024;
/// Longest wait for a handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connect to `url` (`ws://…`), with Nagle off.
pub async fn connect(url: &str) -> anyhow::Result<Socket> {
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER);
    let (socket, _) = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_tungstenite::connect_async_with_config(url, Some(config), true),
    )
    .await
    .context("WebSocket handshake timed out")?
    .with_context(|| {
        let redacted = url.split('?').next().unwrap_or(url);
        format!("WebSocket connect to {redacted}")
    })?;
    Ok(socket)
}

/// The fields of a server frame the generator looks at; everything else is skipped.
#[derive(Debug, Deserialize)]
pub struct Frame<'a> {
    /// The frame type.
    #[serde(rename = "type", borrow)]
    pub ty: Cow<'a, str>,
    /// `ack`: the client's id.
    #[serde(borrow, default)]
    pub client_id: Option<Cow<'a, str>>,
    /// `ack`: the conversation.
    #[serde(borrow, default)]
    pub conversation_id: Option<Cow<'a, str>>,
    /// `ack`: the message's seq.
    #[serde(default)]
    pub seq: Option<u64>,
    /// `error`: the code.
    #[serde(borrow, default)]
    pub code: Option<Cow<'a, str>>,
    /// `error`: the `client_id` of the refused frame.
    #[serde(rename = "ref", borrow, default)]
    pub r#ref: Option<Cow<'a, str>>,
    /// `error`: the human message.
    #[serde(borrow, default)]
    pub message: Option<Payload<'a>>,
    /// `presence`: whose.
    #[serde(borrow, default)]
    pub user_id: Option<Cow<'a, str>>,
}

/// `message` is an object in `message` frames and a string in `error` frames.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Payload<'a> {
    /// A message object.
    Message(#[serde(borrow)] MessageObject<'a>),
    /// An error's text.
    Text(#[serde(borrow)] Cow<'a, str>),
}

/// The parts of a message object the generator checks.
#[derive(Debug, Deserialize)]
pub struct MessageObject<'a> {
    /// Its conversation.
    #[serde(borrow)]
    pub conversation_id: Cow<'a, str>,
    /// Position in the conversation.
    pub seq: u64,
    /// Text (carries the schedule index).
    #[serde(borrow)]
    pub body: Cow<'a, str>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn frames_of_each_kind_parse() {
        let ack: Frame = serde_json::from_str(
            r#"{"type":"ack","client_id":"7","conversation_id":"c1","id":"m7","seq":7}"#,
        )
        .unwrap();
        assert_eq!((ack.ty.as_ref(), ack.seq), ("ack", Some(7)));
        let msg: Frame = serde_json::from_str(
            r#"{"type":"message","conversation_id":"c1","message":{"id":"m7","conversation_id":"c1","seq":7,"kind":"message","sender":{"type":"visitor","id":"k1","name":"V"},"body":"k=3;xx","attachments":[],"channel":"chat","created_at":"2025-03-14T09:30:00Z"}}"#,
        )
        .unwrap();
        let Some(Payload::Message(m)) = msg.message else {
            panic!("not a message object")
        };
        assert_eq!((m.seq, m.body.as_ref()), (7, "k=3;xx"));
        let err: Frame = serde_json::from_str(
            r#"{"type":"error","code":"rate_limited","message":"slow down","ref":"9"}"#,
        )
        .unwrap();
        assert!(matches!(err.message, Some(Payload::Text(_))));
        assert_eq!(err.r#ref.as_deref(), Some("9"));
    }
}
