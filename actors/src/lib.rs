//! Parley's engine: the wire protocol today; the supervised actor tree, the ports it
//! depends on and the routing policy as the issues land.
//!
//! # Layout
//!
//! - [`backplane`]: the `Backplane` port — cross-node fan-out (publish/subscribe on
//!   topics) and ephemeral sets with TTLs (presence, typing, viewers) — with its two
//!   implementations, [`backplane::local::LocalBackplane`] (one process, the default)
//!   and [`backplane::redis::RedisBackplane`] (many nodes sharing Redis).
//! - [`protocol`]: the versioned WebSocket wire frames of contract v1. It has the
//!   client and server frame enums, the conversation and message objects, the
//!   protocol error codes and [`protocol::parse_client_frame`], which turns a text
//!   frame into a [`protocol::ClientFrame`] or a [`protocol::ProtocolError`] that
//!   says which of `invalid_json`, `unknown_frame` or `invalid_frame` applies.
//!
//! Planned, not yet here (each arrives with its issue and gets a line above):
//! the actor tree (`Supervisor`, `ConversationActor`, `AgentSession`,
//! `VisitorSession`, `Router`, `Connector`, `Writer`), the `Store` port with its
//! in-memory implementation, and the routing policy.
#![forbid(unsafe_code)]

pub mod backplane;
pub mod engine;
pub mod protocol;
pub mod store;
