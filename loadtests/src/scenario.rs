//! Workloads as data. A scenario file (TOML, under `loadtests/scenarios/`) names the
//! workload; flags given on the command line override its keys, and defaults fill the
//! rest. The target (which server, which database) is never in the file: the same
//! scenario runs against SQLite, PostgreSQL or a remote node.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Deserialize;

/// The `steady` workload's knobs, each optional: as read from a file or from flags.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SteadyKnobs {
    /// What the scenario is for (files only).
    #[arg(skip)]
    pub description: Option<String>,
    /// Conversations, each with its own visitor socket [default: 100].
    #[arg(long)]
    pub conversations: Option<usize>,
    /// Agent sockets the conversations are spread over [default: 1].
    #[arg(long)]
    pub agents: Option<usize>,
    /// Messages per second, in total over all conversations [default: 1000].
    #[arg(long)]
    pub rate: Option<f64>,
    /// How long the measured part lasts, e.g. `10s` [default: 10s].
    #[arg(long)]
    pub duration: Option<String>,
    /// Sending at the same rate before measuring, e.g. `3s` [default: 3s].
    #[arg(long)]
    pub warmup: Option<String>,
    /// How long to wait after sending for the last acks and deliveries [default: 10s].
    #[arg(long)]
    pub drain: Option<String>,
    /// Bytes in each message body [default: 120].
    #[arg(long)]
    pub body_bytes: Option<usize>,
}

impl SteadyKnobs {
    /// Read a scenario file.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading scenario {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing scenario {}", path.display()))
    }

    /// These knobs, with `base`'s where these have none.
    pub fn or(self, base: SteadyKnobs) -> SteadyKnobs {
        SteadyKnobs {
            description: self.description.or(base.description),
            conversations: self.conversations.or(base.conversations),
            agents: self.agents.or(base.agents),
            rate: self.rate.or(base.rate),
            duration: self.duration.or(base.duration),
            warmup: self.warmup.or(base.warmup),
            drain: self.drain.or(base.drain),
            body_bytes: self.body_bytes.or(base.body_bytes),
        }
    }

    /// The complete workload, defaults filled in and values checked.
    pub fn resolve(&self) -> anyhow::Result<Steady> {
        let parse = |v: &Option<String>, default: &str, what: &str| {
            parse_duration(v.as_deref().unwrap_or(default)).with_context(|| format!("--{what}"))
        };
        let s = Steady {
            conversations: self.conversations.unwrap_or(100),
            agents: self.agents.unwrap_or(1),
            rate: self.rate.unwrap_or(1000.0),
            duration: parse(&self.duration, "10s", "duration")?,
            warmup: parse(&self.warmup, "3s", "warmup")?,
            drain: parse(&self.drain, "10s", "drain")?,
            body_bytes: self.body_bytes.unwrap_or(120),
        };
        if s.conversations == 0 {
            bail!("--conversations must be at least 1");
        }
        if s.agents == 0 || s.agents > s.conversations {
            bail!("--agents must be between 1 and the number of conversations");
        }
        if !(s.rate.is_finite() && s.rate > 0.0) {
            bail!("--rate must be a positive number of messages per second");
        }
        if s.duration.is_zero() {
            bail!("--duration must be more than zero");
        }
        if s.body_bytes < 24 || s.body_bytes > 10_000 {
            bail!("--body-bytes must be between 24 and 10000");
        }
        Ok(s)
    }
}

/// The `steady` workload: `conversations` visitors, each in its own conversation, send
/// `rate` messages per second in total on a fixed schedule; `agents` agent sockets
/// receive every message.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Steady {
    /// Conversations (and visitor sockets).
    pub conversations: usize,
    /// Agent sockets; conversation `i` is watched by agent `i % agents`.
    pub agents: usize,
    /// Messages per second, in total.
    pub rate: f64,
    /// Measured time.
    #[serde(with = "secs")]
    pub duration: Duration,
    /// Unmeasured sending before it.
    #[serde(with = "secs")]
    pub warmup: Duration,
    /// Longest wait for the last acks and deliveries after sending stops.
    #[serde(with = "secs")]
    pub drain: Duration,
    /// Body size in bytes.
    pub body_bytes: usize,
}

impl Steady {
    /// The same workload at another rate.
    pub fn at_rate(&self, rate: f64) -> Steady {
        Steady {
            rate,
            ..self.clone()
        }
    }
}

/// Serialise a duration as seconds (a float).
mod secs {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

/// `"10s"`, `"500ms"`, `"2m"`, `"1.5s"` or a bare number of seconds.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .with_context(|| format!("{text:?} is not a duration (try 10s, 500ms, 2m)"))?;
    if !(value.is_finite() && value >= 0.0) {
        bail!("{text:?} is not a duration (try 10s, 500ms, 2m)");
    }
    Ok(Duration::from_secs_f64(value * scale))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn durations_take_units_or_bare_seconds() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn flags_override_the_file_and_defaults_fill_the_rest() {
        let file: SteadyKnobs = toml::from_str("conversations = 7\nrate = 70.0\n").unwrap();
        let flags = SteadyKnobs {
            rate: Some(140.0),
            ..Default::default()
        };
        let s = flags.or(file).resolve().unwrap();
        assert_eq!(s.conversations, 7);
        assert_eq!(s.rate, 140.0);
        assert_eq!(s.duration, Duration::from_secs(10));
        assert_eq!(s.body_bytes, 120);
    }

    #[test]
    fn unknown_keys_in_a_file_are_refused() {
        assert!(toml::from_str::<SteadyKnobs>("conversatons = 7\n").is_err());
    }

    #[test]
    fn the_shipped_scenarios_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            SteadyKnobs::from_file(&path)
                .unwrap()
                .resolve()
                .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            n += 1;
        }
        assert!(n > 0);
    }
}
