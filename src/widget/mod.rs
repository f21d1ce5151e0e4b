//! The website chat's rules, free of I/O so they are unit-tested on their own:
//!
//! - [`settings`]: a chat channel's settings document (allowed origins, branding,
//!   availability, offline behaviour): parsing with defaults, validation, and the
//!   `Origin` check.
//! - [`targeting`]: which chatflow shows on a page (URL rules, query parameters,
//!   globs, priority).
//! - [`availability`]: whether a channel is open now (business hours in an IANA time
//!   zone).
//! - [`identity`]: the HMAC-SHA256 that lets a site vouch for a visitor's email.

pub mod availability;
pub mod identity;
pub mod settings;
pub mod targeting;
