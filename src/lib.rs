//! # Parley
//!
//! A real-time conversations engine: one shared inbox where a team sees, routes and
//! answers every customer message. This crate is the server: HTTP and WebSocket
//! endpoints, authentication, the SQL store, configuration and the CLI. The engine (the
//! supervised actor tree and the wire protocol) lives in the `parley-actors` crate.
//!
//! # Layout
//! - [`config`]: `Settings`, loaded from `config/default.toml`, `--config`, `PARLEY__…`.
//! - [`telemetry`]: tracing subscriber setup.
//! - [`process_metrics`]: the process's CPU time and memory on `/metrics` (from `/proc`).
//! - [`startup`]: `Application::build` wires store, Redis, limiters, metrics and routes.
//! - [`commands`]: the CLI's non-serving subcommands (`migrate`, `create-admin`).
//! - [`domain`]: validated newtypes (`EmailAddress`, `Name`, `Password`, `Role`, …).
//! - [`error`]: the error-code table and problem+json responses.
//! - [`extract`]: the JSON body extractor that names the offending field.
//! - [`auth`]: password hashing, tokens, the `Principal` extractor, CSRF, login limits.
//! - [`store`]: the SQL store (SQLite or PostgreSQL through `sqlx::Any`), one module
//!   per table group; every query is scoped to a workspace.
//! - [`routes`]: HTTP handlers, one module per resource, documented for OpenAPI.
//! - [`widget`]: the website chat's pure rules (settings, targeting, hours, identity).
//! - [`ws`]: the WebSocket endpoints, bridging each socket to an engine session actor.

#![forbid(unsafe_code)]

pub mod auth;
pub mod commands;
pub mod config;
pub mod domain;
pub mod error;
pub mod extract;
pub mod process_metrics;
pub mod routes;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod widget;
pub mod ws;
