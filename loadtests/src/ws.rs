//! WebSocket connections (the frames are read in [`crate::proto`]). Buffers are kept
//! small: tungstenite's default read and write buffers are 128 KiB each per socket, too
//! much for many sockets.

use std::time::Duration;

use anyhow::Context as _;
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
