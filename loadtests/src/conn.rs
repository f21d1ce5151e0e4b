//! A client connection in any dialect: open the socket (optionally from a chosen
//! 127.0.0.x source address), do the dialect's handshake, then a writer ([`Tx`]) and a
//! reader ([`Rx`]) that answers Engine.IO pings by itself.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::proto::{Event, Proto};
use crate::ws::{self, Socket};

/// Longest wait for a handshake frame.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Who connects.
#[derive(Debug, Clone, Copy)]
pub enum Who<'a> {
    /// A visitor with their token.
    Visitor {
        /// Visitor token (Parley: `plv_…`; the peer: its visitor id).
        token: &'a str,
    },
    /// An agent.
    Agent {
        /// Session token (Parley) or agent id (the peer).
        token: &'a str,
        /// User id (Parley waits for this agent's own presence).
        user_id: &'a str,
        /// Capacity the peer is told (Parley's is set on the inbox).
        capacity: Option<u32>,
    },
}

/// The writing half (shared with the reader, which answers pings).
#[derive(Clone)]
pub struct Tx {
    sink: Arc<tokio::sync::Mutex<SplitSink<Socket, Message>>>,
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tx")
    }
}

impl Tx {
    /// Write one text message.
    pub async fn send(&self, text: String) -> anyhow::Result<()> {
        self.sink.lock().await.send(Message::text(text)).await?;
        Ok(())
    }

    /// Write several text messages with one flush.
    pub async fn send_all(&self, texts: impl IntoIterator<Item = String>) -> anyhow::Result<()> {
        let mut sink = self.sink.lock().await;
        for t in texts {
            sink.feed(Message::text(t)).await?;
        }
        sink.flush().await?;
        Ok(())
    }

    /// Close politely (at most one second).
    pub async fn close(&self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let _ = self.sink.lock().await.close().await;
        })
        .await;
    }
}

/// What the reader got.
#[derive(Debug)]
pub enum Incoming {
    /// A text message.
    Text(tokio_tungstenite::tungstenite::Utf8Bytes),
    /// The socket ended (the reason).
    Closed(String),
}

/// The reading half.
pub struct Rx {
    proto: Proto,
    stream: SplitStream<Socket>,
    tx: Tx,
}

impl std::fmt::Debug for Rx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rx")
    }
}

impl Rx {
    /// The next text message (Engine.IO pings are answered and skipped).
    pub async fn next(&mut self) -> Incoming {
        loop {
            match self.stream.next().await {
                Some(Ok(Message::Text(t))) => {
                    if self.proto == Proto::SocketIo && t.as_str() == "2" {
                        if let Err(e) = self.tx.send(self.proto.pong().to_owned()).await {
                            return Incoming::Closed(format!("pong failed: {e}"));
                        }
                        continue;
                    }
                    return Incoming::Text(t);
                }
                Some(Ok(Message::Close(c))) => {
                    return Incoming::Closed(format!(
                        "closed by the server ({})",
                        c.map(|c| u16::from(c.code)).unwrap_or(0)
                    ));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Incoming::Closed(format!("failed: {e}")),
                None => return Incoming::Closed("closed".into()),
            }
        }
    }

    /// The next text message; `None` once `stop` changes (the run is over), `Err(why)` when
    /// the socket ended.
    pub async fn next_or_stop(
        &mut self,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Option<Result<tokio_tungstenite::tungstenite::Utf8Bytes, String>> {
        tokio::select! {
            msg = self.next() => Some(match msg {
                Incoming::Text(t) => Ok(t),
                Incoming::Closed(why) => Err(why),
            }),
            _ = stop.changed() => None,
        }
    }

    /// The next text message within `limit`, or an error.
    pub async fn next_within(
        &mut self,
        limit: Duration,
    ) -> anyhow::Result<tokio_tungstenite::tungstenite::Utf8Bytes> {
        match tokio::time::timeout(limit, self.next()).await {
            Err(_) => bail!("no frame within {limit:?}"),
            Ok(Incoming::Closed(why)) => bail!("socket {why}"),
            Ok(Incoming::Text(t)) => Ok(t),
        }
    }
}

/// Open a socket to `url` from `bind` (a loopback source address; any when `None`), Nagle
/// off, small buffers.
pub async fn open_socket(url: &str, bind: Option<Ipv4Addr>) -> anyhow::Result<Socket> {
    let Some(bind) = bind else {
        return ws::connect(url).await;
    };
    let host_port = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .context("a ws:// URL")?;
    let addr: SocketAddr = host_port
        .parse()
        .with_context(|| format!("{host_port} is not IP:PORT"))?;
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket
        .bind(SocketAddr::from((bind, 0)))
        .with_context(|| format!("binding to {bind}"))?;
    let stream = tokio::time::timeout(ws::CONNECT_TIMEOUT, socket.connect(addr))
        .await
        .context("TCP connect timed out")?
        .with_context(|| format!("TCP connect from {bind}"))?;
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(ws::READ_BUFFER)
        .write_buffer_size(ws::WRITE_BUFFER);
    let (socket, _) = tokio::time::timeout(
        ws::CONNECT_TIMEOUT,
        tokio_tungstenite::client_async_with_config(
            url,
            tokio_tungstenite::MaybeTlsStream::Plain(stream),
            Some(config),
        ),
    )
    .await
    .context("WebSocket handshake timed out")?
    .context("WebSocket handshake")?;
    Ok(socket)
}

/// Connect `who` to the node at `ws_base` (`ws://HOST:PORT`) and finish the dialect's
/// handshake: Parley agents wait for their own presence; Socket.IO clients read the
/// Engine.IO open packet and connect the namespace with their credentials.
pub async fn connect(
    proto: Proto,
    ws_base: &str,
    who: Who<'_>,
    bind: Option<Ipv4Addr>,
) -> anyhow::Result<(Tx, Rx)> {
    let url = match (proto, who) {
        (Proto::Parley, Who::Visitor { token }) => format!("{ws_base}/ws/visitor?token={token}"),
        (Proto::Parley, Who::Agent { token, .. }) => format!("{ws_base}/ws/agent?token={token}"),
        (Proto::Relay, Who::Visitor { .. }) => format!("{ws_base}/ws/visitor"),
        (Proto::Relay, Who::Agent { .. }) => format!("{ws_base}/ws/agent"),
        (Proto::SocketIo, _) => format!("{ws_base}/socket.io/?EIO=4&transport=websocket"),
    };
    let socket = open_socket(&url, bind).await?;
    let (sink, stream) = socket.split();
    let tx = Tx {
        sink: Arc::new(tokio::sync::Mutex::new(sink)),
    };
    let mut rx = Rx {
        proto,
        stream,
        tx: tx.clone(),
    };
    match (proto, who) {
        (Proto::Parley, Who::Agent { user_id, .. }) => loop {
            let text = rx
                .next_within(HANDSHAKE_TIMEOUT)
                .await
                .context("agent socket: waiting for its own presence")?;
            if let Event::Presence { user_id: Some(u) } = proto.decode(&text)
                && u == user_id
            {
                break;
            }
        },
        (Proto::SocketIo, who) => {
            let text = rx.next_within(HANDSHAKE_TIMEOUT).await?;
            if proto.decode(&text) != Event::Open {
                bail!("Socket.IO: expected the open packet, got {text}");
            }
            let auth = match who {
                Who::Visitor { token } => serde_json::json!({"role": "visitor", "token": token}),
                Who::Agent {
                    token, capacity, ..
                } => serde_json::json!({"role": "agent", "token": token, "capacity": capacity}),
            };
            tx.send(format!("40{auth}")).await?;
            loop {
                let text = rx.next_within(HANDSHAKE_TIMEOUT).await?;
                match proto.decode(&text) {
                    Event::Connected => break,
                    Event::ConnectError(e) => bail!("Socket.IO connect refused: {e}"),
                    _ => {}
                }
            }
        }
        _ => {}
    }
    Ok((tx, rx))
}

/// The `i`-th source address of a spread over `127.0.0.2 ..= 127.0.0.(1 + addresses)`.
pub fn spread_address(i: usize, per_address: usize) -> Ipv4Addr {
    let k = 2 + (i / per_address.max(1)) % 250;
    Ipv4Addr::new(127, 0, 0, k as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_spread_over_loopback_addresses() {
        assert_eq!(spread_address(0, 1000), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(spread_address(999, 1000), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(spread_address(1000, 1000), Ipv4Addr::new(127, 0, 0, 3));
        assert_eq!(spread_address(18_999, 1000), Ipv4Addr::new(127, 0, 0, 20));
    }
}
