//! `parley-load`: a load generator for Parley that drives the real `parley` binary over
//! its public HTTP API and WebSockets, open-loop (a fixed send schedule, latency measured
//! from the scheduled send time, so a slow server cannot hide its queueing: no
//! coordinated omission), into HDR histograms, and checks every conversation's `seq` on
//! the receiving side so that each run counts lost, duplicated and reordered messages.
//!
//! # Layout
//! - [`scenario`]: the workloads — a `steady` scenario read from a TOML file under
//!   `loadtests/scenarios/` and/or flags — and duration parsing.
//! - [`node`]: the server under test: spawn the binary (fresh SQLite data dir, or a fresh
//!   PostgreSQL database and Redis key prefix, all removed afterwards) or use a running one.
//! - [`api`]: the HTTP calls that set a run up (login, users, inbox, chat channel,
//!   widget sessions).
//! - [`ws`]: WebSocket connections with small buffers, and the frames the generator reads.
//! - [`steady`]: the `steady` scenario: visitors send at a fixed total rate, agents
//!   receive; ack and delivery latency, throughput, loss checks.
//! - [`metrics`]: the server's `/metrics` before and after the window (group commits,
//!   batch size, commit time, trouble counters).
//! - [`report`]: latency summaries, the human table and the JSON document.
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
