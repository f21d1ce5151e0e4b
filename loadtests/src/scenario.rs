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
    /// Which scenario the file is for (files only; `steady` when absent).
    #[arg(skip)]
    pub scenario: Option<String>,
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
        read_file(path, "steady", |k: &Self| k.scenario.as_deref())
    }

    /// These knobs, with `base`'s where these have none.
    pub fn or(self, base: SteadyKnobs) -> SteadyKnobs {
        SteadyKnobs {
            scenario: self.scenario.or(base.scenario),
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

/// Read a scenario file for scenario `name` (its `scenario` key, when present, must say
/// so).
fn read_file<T: serde::de::DeserializeOwned>(
    path: &Path,
    name: &str,
    key: impl Fn(&T) -> Option<&str>,
) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading scenario {}", path.display()))?;
    let knobs: T =
        toml::from_str(&text).with_context(|| format!("parsing scenario {}", path.display()))?;
    if let Some(other) = key(&knobs).filter(|s| *s != name) {
        bail!("{} is a `{other}` scenario, not `{name}`", path.display());
    }
    Ok(knobs)
}

/// The scenario a file is for (its `scenario` key; `steady` when absent).
pub fn scenario_of(path: &Path) -> anyhow::Result<String> {
    #[derive(Deserialize)]
    struct Head {
        scenario: Option<String>,
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading scenario {}", path.display()))?;
    let head: Head =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(head.scenario.unwrap_or_else(|| "steady".into()))
}

fn dur(v: &Option<String>, default: &str, what: &str) -> anyhow::Result<Duration> {
    parse_duration(v.as_deref().unwrap_or(default)).with_context(|| format!("--{what}"))
}

/// Generate a knobs struct (every field optional, from a file and/or flags), its `or`
/// and `from_file`.
macro_rules! knobs {
    ($(#[$meta:meta])* $name:ident, $scenario:literal { $($(#[$fmeta:meta])* $field:ident : $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, clap::Args, Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "kebab-case")]
        pub struct $name {
            /// Which scenario the file is for (files only).
            #[arg(skip)]
            pub scenario: Option<String>,
            /// What the scenario is for (files only).
            #[arg(skip)]
            pub description: Option<String>,
            $($(#[$fmeta])* #[arg(long)] pub $field: Option<$ty>,)*
        }

        impl $name {
            /// Read a scenario file.
            pub fn from_file(path: &Path) -> anyhow::Result<Self> {
                read_file(path, $scenario, |k: &Self| k.scenario.as_deref())
            }

            /// These knobs, with `base`'s where these have none.
            pub fn or(self, base: $name) -> $name {
                $name {
                    scenario: self.scenario.or(base.scenario),
                    description: self.description.or(base.description),
                    $($field: self.$field.or(base.$field),)*
                }
            }
        }
    };
}

knobs!(
    /// The `burst` workload's knobs.
    BurstKnobs, "burst" {
        /// Visitors that arrive [default: 100].
        visitors: usize,
        /// They arrive evenly spread over this time, e.g. `10s` [default: 10s].
        ramp: String,
        /// Agents online [default: 5].
        agents: usize,
        /// Open conversations per agent the router may assign [default: visitors ÷ agents, rounded up].
        capacity: u32,
        /// Messages each visitor sends after the first [default: 2].
        messages: u64,
        /// Time between a visitor's messages, e.g. `1s` [default: 1s].
        interval: String,
        /// Whether the assigned agent answers every visitor message [default: true].
        replies: bool,
        /// Longest wait for the last assignments, acks and deliveries [default: 30s].
        drain: String,
        /// Bytes in each message body [default: 120].
        body_bytes: usize,
        /// Visitor sockets per 127.0.0.x source address [default: 1000].
        per_address: usize,
    }
);

knobs!(
    /// The `idle` workload's knobs.
    IdleKnobs, "idle" {
        /// Idle visitor sockets to hold [default: 1000].
        sockets: usize,
        /// Sockets per 127.0.0.x source address [default: 1000].
        per_address: usize,
        /// New sockets per second [default: 2000].
        connect_rate: f64,
        /// How long to hold them all open, e.g. `10s` [default: 10s].
        hold: String,
        /// Then every socket sends one message, this many per second in total (0: no probe) [default: 2000].
        probe_rate: f64,
        /// Longest wait for the probe's acks [default: 30s].
        drain: String,
    }
);

knobs!(
    /// The `reconnect` workload's knobs.
    ReconnectKnobs, "reconnect" {
        /// Connected visitors, each in a conversation [default: 100].
        visitors: usize,
        /// Agent sockets sending into the conversations [default: 1].
        agents: usize,
        /// Agent messages per second, in total [default: 200].
        rate: f64,
        /// Traffic before the drop, e.g. `3s` [default: 3s].
        before: String,
        /// Every visitor drops and reconnects within this time [default: 1s].
        within: String,
        /// Traffic after the drops [default: 3s].
        after: String,
        /// Longest wait for the last resumes, acks and deliveries [default: 20s].
        drain: String,
        /// Bytes in each message body [default: 120].
        body_bytes: usize,
    }
);

impl BurstKnobs {
    /// The complete workload.
    pub fn resolve(&self) -> anyhow::Result<Burst> {
        let visitors = self.visitors.unwrap_or(100);
        let agents = self.agents.unwrap_or(5);
        if visitors == 0 || agents == 0 {
            bail!("--visitors and --agents must be at least 1");
        }
        let capacity = self.capacity.unwrap_or_else(|| {
            u32::try_from(visitors.div_ceil(agents))
                .unwrap_or(u32::MAX)
                .min(10_000)
        });
        let b = Burst {
            visitors,
            ramp: dur(&self.ramp, "10s", "ramp")?,
            agents,
            capacity,
            messages: self.messages.unwrap_or(2),
            interval: dur(&self.interval, "1s", "interval")?,
            replies: self.replies.unwrap_or(true),
            drain: dur(&self.drain, "30s", "drain")?,
            body_bytes: self.body_bytes.unwrap_or(120),
            per_address: self.per_address.unwrap_or(1000).max(1),
        };
        if b.capacity == 0 || b.capacity > 10_000 {
            bail!("--capacity must be between 1 and 10000");
        }
        if b.body_bytes < 40 || b.body_bytes > 10_000 {
            bail!("--body-bytes must be between 40 and 10000");
        }
        if b.visitors > 19_000 {
            bail!("--visitors: one process holds at most ~19,500 sockets here");
        }
        Ok(b)
    }
}

impl IdleKnobs {
    /// The complete workload.
    pub fn resolve(&self) -> anyhow::Result<Idle> {
        let i = Idle {
            sockets: self.sockets.unwrap_or(1000),
            per_address: self.per_address.unwrap_or(1000).max(1),
            connect_rate: self.connect_rate.unwrap_or(2000.0),
            hold: dur(&self.hold, "10s", "hold")?,
            probe_rate: self.probe_rate.unwrap_or(2000.0),
            drain: dur(&self.drain, "30s", "drain")?,
        };
        if i.sockets == 0 || i.sockets > 19_400 {
            bail!(
                "--sockets must be between 1 and 19400 (one process holds at most ~19,500 sockets; ulimit -n is 20,000)"
            );
        }
        if !(i.connect_rate.is_finite() && i.connect_rate > 0.0) {
            bail!("--connect-rate must be positive");
        }
        if !(i.probe_rate.is_finite() && i.probe_rate >= 0.0) {
            bail!("--probe-rate must be 0 or more");
        }
        Ok(i)
    }
}

impl ReconnectKnobs {
    /// The complete workload.
    pub fn resolve(&self) -> anyhow::Result<Reconnect> {
        let r = Reconnect {
            visitors: self.visitors.unwrap_or(100),
            agents: self.agents.unwrap_or(1),
            rate: self.rate.unwrap_or(200.0),
            before: dur(&self.before, "3s", "before")?,
            within: dur(&self.within, "1s", "within")?,
            after: dur(&self.after, "3s", "after")?,
            drain: dur(&self.drain, "20s", "drain")?,
            body_bytes: self.body_bytes.unwrap_or(120),
        };
        if r.visitors == 0 || r.visitors > 19_000 {
            bail!("--visitors must be between 1 and 19000");
        }
        if r.agents == 0 || r.agents > r.visitors {
            bail!("--agents must be between 1 and the number of visitors");
        }
        if !(r.rate.is_finite() && r.rate > 0.0) {
            bail!("--rate must be positive");
        }
        if r.body_bytes < 40 || r.body_bytes > 10_000 {
            bail!("--body-bytes must be between 40 and 10000");
        }
        Ok(r)
    }
}

/// The `burst` workload: `visitors` arrive evenly over `ramp`, each opening a widget
/// session and a socket and starting a conversation; `agents` agents online, each with
/// `capacity`, are assigned the conversations round-robin, follow them and answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Burst {
    /// Visitors.
    pub visitors: usize,
    /// Arrival window.
    #[serde(with = "secs")]
    pub ramp: Duration,
    /// Agents.
    pub agents: usize,
    /// Capacity per agent.
    pub capacity: u32,
    /// Messages per visitor after the first.
    pub messages: u64,
    /// Between a visitor's messages.
    #[serde(with = "secs")]
    pub interval: Duration,
    /// The agent answers each visitor message.
    pub replies: bool,
    /// Longest wait at the end.
    #[serde(with = "secs")]
    pub drain: Duration,
    /// Body size in bytes.
    pub body_bytes: usize,
    /// Sockets per source address.
    pub per_address: usize,
}

/// The `idle` workload: hold `sockets` idle visitor sockets and weigh the server.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Idle {
    /// Sockets.
    pub sockets: usize,
    /// Sockets per source address.
    pub per_address: usize,
    /// New sockets per second.
    pub connect_rate: f64,
    /// Time held.
    #[serde(with = "secs")]
    pub hold: Duration,
    /// Probe messages per second (0: none).
    pub probe_rate: f64,
    /// Longest wait for the probe.
    #[serde(with = "secs")]
    pub drain: Duration,
}

/// The `reconnect` workload: `visitors` in conversations receive agent messages at `rate`;
/// all drop and reconnect within `within`, resume, and must miss nothing.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Reconnect {
    /// Visitors (and conversations).
    pub visitors: usize,
    /// Agent sockets.
    pub agents: usize,
    /// Agent messages per second in total.
    pub rate: f64,
    /// Traffic before the drops.
    #[serde(with = "secs")]
    pub before: Duration,
    /// Drop window.
    #[serde(with = "secs")]
    pub within: Duration,
    /// Traffic after.
    #[serde(with = "secs")]
    pub after: Duration,
    /// Longest wait at the end.
    #[serde(with = "secs")]
    pub drain: Duration,
    /// Body size.
    pub body_bytes: usize,
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
        assert!(toml::from_str::<BurstKnobs>("visitor = 7\n").is_err());
    }

    #[test]
    fn a_file_for_another_scenario_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.toml");
        std::fs::write(&path, "scenario = \"burst\"\nvisitors = 3\n").unwrap();
        assert!(SteadyKnobs::from_file(&path).is_err());
        assert_eq!(BurstKnobs::from_file(&path).unwrap().visitors, Some(3));
        assert_eq!(scenario_of(&path).unwrap(), "burst");
    }

    #[test]
    fn burst_capacity_defaults_to_an_even_share() {
        let b = BurstKnobs {
            visitors: Some(10),
            agents: Some(3),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(b.capacity, 4);
        assert!(
            BurstKnobs {
                agents: Some(0),
                ..Default::default()
            }
            .resolve()
            .is_err()
        );
    }

    #[test]
    fn the_shipped_scenarios_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let checked = match scenario_of(&path).unwrap().as_str() {
                "steady" => SteadyKnobs::from_file(&path)
                    .and_then(|k| k.resolve())
                    .map(|_| ()),
                "burst" => BurstKnobs::from_file(&path)
                    .and_then(|k| k.resolve())
                    .map(|_| ()),
                "idle" => IdleKnobs::from_file(&path)
                    .and_then(|k| k.resolve())
                    .map(|_| ()),
                "reconnect" => ReconnectKnobs::from_file(&path)
                    .and_then(|k| k.resolve())
                    .map(|_| ()),
                other => panic!("{}: unknown scenario {other}", path.display()),
            };
            checked.unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            n += 1;
        }
        assert!(n >= 4);
        assert!(n > 0);
    }
}
