//! Routing: who answers a conversation. This module holds the pure routing policy
//! ([`policy`]); the `Router` actor ([`crate::engine::router`]) carries out exactly
//! this policy on state it keeps in the backplane, so the policy's code and tests are
//! the executable specification.
//!
//! The policy owns no I/O, no clock and no actor: it is a value, [`RoutingState`], and
//! events that change it and say what happened ([`Outcome`], [`Assignment`]). Whoever
//! runs it must apply the events for one inbox one at a time: the Router applies them
//! to a copy of the shared state and writes it back by compare-and-set (retrying when
//! another node wrote first); that is what makes "never past capacity, never assigned
//! twice" hold with several nodes assigning at once.

pub mod policy;

pub use policy::{AgentState, Assignment, Outcome, RoutingError, RoutingState, eligible, pick};
