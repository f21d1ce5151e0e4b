//! Parley's engine: the wire protocol today; the supervised actor tree, the ports it
//! depends on and the routing policy as the issues land.
//!
//! # Layout
//!
//! - [`protocol`]: the versioned WebSocket wire frames of contract v1. It has the
//!   client and server frame enums, the conversation and message objects, the
//!   protocol error codes and [`protocol::parse_client_frame`], which turns a text
//!   frame into a [`protocol::ClientFrame`] or a [`protocol::ProtocolError`] that
//!   says which of `invalid_json`, `unknown_frame` or `invalid_frame` applies.
//!
//! Planned, not yet here (each arrives with its issue and gets a line above):
//! the actor tree (`Supervisor`, `ConversationActor`, `AgentSession`,
//! `VisitorSession`, `Router`, `Connector`, `Writer`), the ports `Store` and
//! `Backplane` with their in-memory implementations, and the routing policy.
#![forbid(unsafe_code)]

pub mod protocol;
