//! Routing: who answers a conversation. This module holds the pure routing policy
//! ([`policy`]); the `Router` actor (one node, `Local`) and the Redis Lua script (many
//! nodes) arrive later and both carry out exactly this policy, so its code and tests are
//! the executable specification they are checked against.
//!
//! The policy owns no I/O, no clock and no actor: it is a value, [`RoutingState`], and
//! events that change it and say what happened ([`Outcome`], [`Assignment`]). Whoever
//! runs it must apply the events for one inbox one at a time (one actor's mailbox, or
//! one Lua script call in Redis, which runs atomically); that is what makes "never past
//! capacity, never assigned twice" hold with several nodes assigning at once.

pub mod policy;

pub use policy::{AgentState, Assignment, Outcome, RoutingError, RoutingState, eligible, pick};
