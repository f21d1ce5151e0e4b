//! `parley-load`: a load generator for Parley that drives the real `parley` binary over
//! its public HTTP API and WebSockets, open-loop (a fixed send schedule, latency measured
//! from the scheduled send time, so a slow server cannot hide its queueing: no
//! coordinated omission), into HDR histograms, and checks every conversation's `seq` on
//! the receiving side so that each run counts lost, duplicated and reordered messages.
//!
//! # Layout
//! - [`scenario`]: the workloads (`steady`, `burst`, `idle`, `reconnect`) read from TOML
//!   files under `loadtests/scenarios/` and/or flags, and duration parsing.
//! - [`node`]: the servers under test: Parley (one or two nodes), the Socket.IO peer or
//!   the bare relay, spawned with a fresh SQLite dir or PostgreSQL database and Redis key
//!   prefix (all removed afterwards), or running nodes.
//! - [`proto`], [`conn`]: the one client in three dialects (Parley, Socket.IO, relay).
//! - [`setup`], [`api`]: agents, channels and visitor credentials on each kind of target.
//! - [`ws`]: WebSocket connections with small buffers.
//! - [`ledger`]: per-conversation seq checks of one participant.
//! - [`steady`], [`burst`], [`idle`], [`reconnect`]: the scenarios.
//! - [`compare`]: the same scenario on each target, side by side.
//! - [`relay`]: the bare WebSocket relay (`parley-relay`), the ceiling.
//! - [`metrics`]: the server's `/metrics` before and after the window (group commits,
//!   batch size, commit time, trouble counters).
//! - [`report`]: latency summaries, the human tables and the JSON documents.
//! - [`procstat`]: CPU seconds and memory of processes, and machine CPU, from `/proc`.

pub mod api;
pub mod burst;
pub mod compare;
pub mod conn;
pub mod idle;
pub mod ledger;
pub mod metrics;
pub mod node;
pub mod procstat;
pub mod proto;
pub mod reconnect;
pub mod relay;
pub mod report;
pub mod scenario;
pub mod setup;
pub mod steady;
pub mod ws;
