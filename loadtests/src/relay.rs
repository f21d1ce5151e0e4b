//! The ceiling: a bare WebSocket relay speaking Parley's frames with no storage and no
//! routing. A `send` gets the next seq of its conversation (a visitor's first `send`
//! without `conversation_id` makes one), an `ack` at once, and a `message` frame to every
//! other socket following the conversation; `resume` follows a conversation (nothing is
//! stored, so nothing is replayed). Run by `parley-relay` as a process of its own so its
//! CPU and memory are measured apart from the load generator's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::proto::json_str;
use crate::ws::{READ_BUFFER, WRITE_BUFFER};

type Outbox = mpsc::UnboundedSender<Message>;

#[derive(Default)]
struct Conversation {
    seq: u64,
    followers: Vec<(u64, Outbox)>,
}

#[derive(Default)]
struct State {
    conversations: HashMap<String, Conversation>,
}

#[derive(Deserialize)]
struct ClientFrame {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    conversation_id: Option<String>,
    #[serde(default)]
    body: Option<String>,
}

/// Serve sockets from `listener` until the process ends.
pub async fn serve(listener: TcpListener) -> anyhow::Result<()> {
    let state = Arc::new(Mutex::new(State::default()));
    let ids = Arc::new(AtomicU64::new(1));
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let id = ids.fetch_add(1, Ordering::Relaxed);
        let conv_ids = ids.clone();
        tokio::spawn(async move {
            let _ = socket(stream, id, state, conv_ids).await;
        });
    }
}

async fn socket(
    stream: TcpStream,
    me: u64,
    state: Arc<Mutex<State>>,
    ids: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER);
    let ws = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await?;
    let (mut sink, mut stream) = ws.split();
    let (out, mut inbox) = mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(m) = inbox.recv().await {
            if sink.feed(m).await.is_err() {
                return;
            }
            while let Ok(m) = inbox.try_recv() {
                if sink.feed(m).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let mut following: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    while let Some(msg) = stream.next().await {
        let text = match msg {
            Ok(Message::Text(t)) => t,
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        let Ok(f) = serde_json::from_str::<ClientFrame>(&text) else {
            let _ = out.send(Message::text(
                r#"{"type":"error","code":"invalid_json","message":"not JSON"}"#,
            ));
            continue;
        };
        match f.ty.as_str() {
            "send" => {
                let (Some(client_id), Some(body)) = (f.client_id, f.body) else {
                    let _ = out.send(Message::text(
                        r#"{"type":"error","code":"invalid_frame","message":"send needs client_id and body"}"#,
                    ));
                    continue;
                };
                let conv = match f.conversation_id.or_else(|| current.clone()) {
                    Some(c) => c,
                    None => {
                        let c = format!("c{}", ids.fetch_add(1, Ordering::Relaxed));
                        current = Some(c.clone());
                        c
                    }
                };
                let conv_q = json_str(&conv);
                let mut st = state.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                let c = st.conversations.entry(conv.clone()).or_default();
                c.seq += 1;
                let seq = c.seq;
                let frame = format!(
                    r#"{{"type":"message","conversation_id":{conv_q},"message":{{"id":"m{seq}","conversation_id":{conv_q},"seq":{seq},"kind":"message","sender":{{"type":"visitor","id":"s{me}","name":"Visitor"}},"body":{},"attachments":[],"channel":"chat","created_at":"2025-01-01T00:00:00Z"}}}}"#,
                    json_str(&body)
                );
                let frame = Message::text(frame);
                c.followers
                    .retain(|(id, o)| *id == me || o.send(frame.clone()).is_ok());
                if !following.contains(&conv) {
                    c.followers.push((me, out.clone()));
                    following.push(conv.clone());
                }
                drop(st);
                let ack = format!(
                    r#"{{"type":"ack","client_id":{},"conversation_id":{conv_q},"id":"m{seq}","seq":{seq}}}"#,
                    json_str(&client_id)
                );
                let _ = out.send(Message::text(ack));
            }
            "resume" => {
                let Some(conv) = f.conversation_id else {
                    continue;
                };
                if !following.contains(&conv) {
                    let mut st = state.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                    st.conversations
                        .entry(conv.clone())
                        .or_default()
                        .followers
                        .push((me, out.clone()));
                    following.push(conv);
                }
            }
            _ => {}
        }
    }
    if let Ok(mut st) = state.lock() {
        for conv in &following {
            if let Some(c) = st.conversations.get_mut(conv) {
                c.followers.retain(|(id, _)| *id != me);
            }
        }
    }
    drop(out);
    let _ = writer.await;
    Ok(())
}
