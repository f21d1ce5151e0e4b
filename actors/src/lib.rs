//! Parley's engine: the wire protocol, the supervised actor tree that carries messages
//! between sockets, and the two ports it depends on (a durable store and a backplane).
//!
//! # Layout
//!
//! - [`backplane`]: the `Backplane` port — cross-node fan-out (publish/subscribe on
//!   topics) and ephemeral sets with TTLs (presence, viewers) — with its two
//!   implementations, [`backplane::local::LocalBackplane`] (one process, the default)
//!   and [`backplane::redis::RedisBackplane`] (many nodes sharing Redis).
//! - [`engine`]: the actors — `Hub` (the node's conversation registry), `Writer` (group
//!   commit), `ConversationActor` (per-conversation ordering by `seq`, fan-out, gap
//!   fill, typing, viewers) and `Session` (one per socket) — with their config.
//! - [`protocol`]: the versioned WebSocket wire frames of contract v1. It has the
//!   client and server frame enums, the conversation and message objects, the
//!   protocol error codes and [`protocol::parse_client_frame`], which turns a text
//!   frame into a [`protocol::ClientFrame`] or a [`protocol::ProtocolError`] that
//!   says which of `invalid_json`, `unknown_frame` or `invalid_frame` applies.
//! - [`routing`]: the pure routing policy: eligibility, round-robin, the FIFO queue.
//! - [`store`]: the `Store` port — durable conversations and messages, `seq` assigned
//!   in the commit — with [`store::memory::MemoryStore`], the in-memory reference
//!   implementation (the SQL one lives in the server crate).
//!
//! Planned, not yet here (each arrives with its issue and gets a line above): the
//! `Router` (automatic assignment, driving [`routing`]) and channel `Connector`s.
#![forbid(unsafe_code)]

pub mod backplane;
pub mod engine;
pub mod protocol;
pub mod routing;
pub mod store;
