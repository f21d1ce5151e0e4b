//! Logging: `tracing` with an env-filter (`RUST_LOG` wins over `log.filter`), as text or
//! JSON lines. Every HTTP request runs in a span carrying its request id
//! (`tracing-actix-web`), so each log line of a request can be found by that id.

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Install the global subscriber. Safe to call twice (the second call is a no-op), which
/// the test suite relies on.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
