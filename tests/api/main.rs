//! Black-box tests: the real server on port 0, spoken to over HTTP. Every test runs on
//! SQLite (with the in-process backplane) and on PostgreSQL (with Redis) — see
//! `helpers.rs` for how the services are found.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod admin;
mod auth;
mod bad_input;
mod browser;
mod console;
mod console_browser;
mod engine;
mod errors;
mod group_commit;
mod isolation;
mod multinode;
mod routing;
mod system;
mod widget;
mod widget_browser;
