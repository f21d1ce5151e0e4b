//! A chat channel's settings document. Every key has a default, so `{}` is a valid
//! document; unknown keys are refused (naming the field) so that a typo never passes
//! silently. The stored document is always the normalised, complete one.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most allowed origins a channel may list.
pub const MAX_ORIGINS: usize = 50;
/// Most opening-hours entries.
pub const MAX_HOURS: usize = 50;

/// A chat channel's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ChatSettings {
    /// Origins (`scheme://host[:port]`) whose pages may embed the widget; empty = any.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// How the widget looks.
    #[serde(default)]
    pub branding: Branding,
    /// When the team answers.
    #[serde(default)]
    pub availability: Availability,
    /// What the widget does when nobody is available.
    #[serde(default)]
    pub offline: Offline,
}

/// The widget's look.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Branding {
    /// `#rrggbb` (or `#rgb`).
    pub accent_color: String,
    /// The name in the widget's header.
    pub display_name: String,
    /// An `http(s)` image shown in the header, or `null`.
    pub avatar_url: Option<String>,
    /// The first line a visitor reads.
    pub greeting: String,
}

impl Default for Branding {
    fn default() -> Self {
        Self {
            accent_color: "#2563eb".into(),
            display_name: "Support".into(),
            avatar_url: None,
            greeting: "Hi! How can we help?".into(),
        }
    }
}

/// When the channel counts as available.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum AvailabilityMode {
    /// Always (the conversation waits in the queue if nobody is there).
    #[default]
    Always,
    /// During `hours` in `time_zone`.
    BusinessHours,
    /// While at least one agent of the inbox's routing pool is online.
    AgentsOnline,
}

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// Opening hours on one day: `open` ≤ time < `close`, both `HH:MM` (close may be `24:00`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Hours {
    /// Day of the week.
    pub day: Day,
    /// Opening time, `HH:MM`.
    pub open: String,
    /// Closing time, `HH:MM` (`24:00` = midnight at the end of the day).
    pub close: String,
}

/// Availability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Availability {
    /// `always`, `business_hours` or `agents_online`.
    pub mode: AvailabilityMode,
    /// IANA time zone of `hours`, e.g. `Europe/Paris`.
    pub time_zone: String,
    /// Opening hours (`business_hours` mode).
    pub hours: Vec<Hours>,
}

impl Default for Availability {
    fn default() -> Self {
        let day = |day| Hours {
            day,
            open: "09:00".into(),
            close: "17:00".into(),
        };
        Self {
            mode: AvailabilityMode::Always,
            time_zone: "UTC".into(),
            hours: vec![
                day(Day::Mon),
                day(Day::Tue),
                day(Day::Wed),
                day(Day::Thu),
                day(Day::Fri),
            ],
        }
    }
}

/// When nobody is available.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Offline {
    /// Ask for the visitor's email before they write.
    pub collect_email: bool,
    /// Shown to the visitor (say when they will hear back).
    pub message: String,
}

impl Default for Offline {
    fn default() -> Self {
        Self {
            collect_email: true,
            message: "We're away right now. Leave your email and we'll reply within a day.".into(),
        }
    }
}

/// Parse and validate a settings document; the error names the field
/// (`settings.branding.accent_color: …`).
pub fn parse(value: &serde_json::Value) -> Result<ChatSettings, String> {
    let mut s: ChatSettings = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            format!("settings: {}", e.inner())
        } else {
            format!("settings.{path}: {}", e.inner())
        }
    })?;
    validate(&mut s)?;
    Ok(s)
}

/// The settings stored for a channel, leniently: an unreadable document (written before
/// validation existed) reads as the defaults.
pub fn stored(value: &serde_json::Value) -> ChatSettings {
    parse(value).unwrap_or_default()
}

fn validate(s: &mut ChatSettings) -> Result<(), String> {
    if s.allowed_origins.len() > MAX_ORIGINS {
        return Err(format!(
            "settings.allowed_origins: at most {MAX_ORIGINS} origins"
        ));
    }
    let mut origins = Vec::with_capacity(s.allowed_origins.len());
    for (i, o) in s.allowed_origins.iter().enumerate() {
        let norm = normalize_origin(o).ok_or_else(|| {
            format!(
                "settings.allowed_origins[{i}]: {o:?} is not an origin like https://www.example.com \
                 (scheme, host and optional port; no path)"
            )
        })?;
        if !origins.contains(&norm) {
            origins.push(norm);
        }
    }
    s.allowed_origins = origins;

    let b = &mut s.branding;
    if !is_color(&b.accent_color) {
        return Err("settings.branding.accent_color: must be #rrggbb or #rgb".into());
    }
    b.accent_color = b.accent_color.to_ascii_lowercase();
    b.display_name = b.display_name.trim().to_owned();
    if b.display_name.is_empty() || b.display_name.chars().count() > 100 {
        return Err("settings.branding.display_name: must be 1 to 100 characters".into());
    }
    if b.display_name.chars().any(char::is_control) {
        return Err("settings.branding.display_name: must not contain control characters".into());
    }
    if let Some(url) = &b.avatar_url {
        let ok = (url.starts_with("https://") || url.starts_with("http://"))
            && url.len() <= 2048
            && !url.chars().any(|c| c.is_whitespace() || c.is_control());
        if !ok {
            return Err(
                "settings.branding.avatar_url: must be an http(s) URL of at most 2048 characters"
                    .into(),
            );
        }
    }
    if b.greeting.chars().count() > 500 {
        return Err("settings.branding.greeting: at most 500 characters".into());
    }

    let a = &s.availability;
    if a.time_zone.parse::<chrono_tz::Tz>().is_err() {
        return Err(format!(
            "settings.availability.time_zone: {:?} is not an IANA time zone (e.g. Europe/Paris)",
            a.time_zone
        ));
    }
    if a.hours.len() > MAX_HOURS {
        return Err(format!(
            "settings.availability.hours: at most {MAX_HOURS} entries"
        ));
    }
    for (i, h) in a.hours.iter().enumerate() {
        let open = parse_hhmm(&h.open)
            .filter(|m| *m < 24 * 60)
            .ok_or_else(|| {
                format!("settings.availability.hours[{i}].open: must be HH:MM (00:00 to 23:59)")
            })?;
        let close = parse_hhmm(&h.close).ok_or_else(|| {
            format!("settings.availability.hours[{i}].close: must be HH:MM (00:01 to 24:00)")
        })?;
        if close <= open {
            return Err(format!(
                "settings.availability.hours[{i}]: close must be after open"
            ));
        }
    }
    if a.mode == AvailabilityMode::BusinessHours && a.hours.is_empty() {
        return Err("settings.availability.hours: business_hours needs at least one entry".into());
    }
    if s.offline.message.chars().count() > 1000 {
        return Err("settings.offline.message: at most 1000 characters".into());
    }
    Ok(())
}

fn is_color(c: &str) -> bool {
    let Some(hex) = c.strip_prefix('#') else {
        return false;
    };
    (hex.len() == 6 || hex.len() == 3) && hex.chars().all(|c| c.is_ascii_hexdigit())
}

/// Minutes since midnight of `HH:MM` (`24:00` = 1440).
pub fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: u32 = h.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return None;
    }
    Some(h * 60 + m)
}

/// `scheme://host[:port]` lower-cased, with the scheme's default port dropped; `None`
/// when `o` is not such an origin (a path, query, user info or other scheme).
pub fn normalize_origin(o: &str) -> Option<String> {
    let o = o.trim().to_ascii_lowercase();
    let (scheme, rest) = o.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty()
        || rest.len() > 253
        || rest
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')))
    {
        return None;
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => {
            if p.is_empty() || p.len() > 5 || !p.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let port: u32 = p.parse().ok()?;
            if port == 0 || port > 65535 {
                return None;
            }
            (h, Some(port))
        }
        _ => (rest, None),
    };
    if host.is_empty() || host.starts_with('.') || host.starts_with('-') {
        return None;
    }
    let default = if scheme == "https" { 443 } else { 80 };
    Some(match port {
        Some(p) if p != default => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// Whether a page of `origin` (the request's `Origin` header, if any) may use the
/// widget. No list = any origin. With a list, a request without `Origin` (not from a
/// browser page) is allowed: the check protects visitors' browsers, and a script
/// outside a browser can send any header anyway.
pub fn origin_allowed(settings: &ChatSettings, origin: Option<&str>) -> bool {
    if settings.allowed_origins.is_empty() {
        return true;
    }
    match origin {
        None => true,
        Some(o) => normalize_origin(o).is_some_and(|n| settings.allowed_origins.contains(&n)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    #[test]
    fn empty_document_gets_every_default() {
        let s = parse(&json!({})).unwrap();
        assert_eq!(s, ChatSettings::default());
        assert_eq!(s.availability.hours.len(), 5);
    }

    #[test]
    fn unknown_keys_name_the_field() {
        let e = parse(&json!({"branding": {"accent_colour": "#fff"}})).unwrap_err();
        assert!(e.starts_with("settings.branding"), "{e}");
        assert!(e.contains("accent_colour"), "{e}");
        let e = parse(&json!({"origins": []})).unwrap_err();
        assert!(e.contains("origins"), "{e}");
    }

    #[test]
    fn bad_values_are_refused() {
        for (doc, field) in [
            (
                json!({"allowed_origins": ["https://x.com/path"]}),
                "allowed_origins[0]",
            ),
            (
                json!({"allowed_origins": ["ftp://x.com"]}),
                "allowed_origins[0]",
            ),
            (json!({"allowed_origins": ["*"]}), "allowed_origins[0]"),
            (
                json!({"branding": {"accent_color": "blue"}}),
                "accent_color",
            ),
            (json!({"branding": {"display_name": " "}}), "display_name"),
            (
                json!({"branding": {"avatar_url": "javascript:alert(1)"}}),
                "avatar_url",
            ),
            (
                json!({"availability": {"time_zone": "Mars/Olympus"}}),
                "time_zone",
            ),
            (
                json!({"availability": {"hours": [{"day": "mon", "open": "9", "close": "17:00"}]}}),
                "open",
            ),
            (
                json!({"availability": {"hours": [{"day": "mon", "open": "18:00", "close": "17:00"}]}}),
                "hours[0]",
            ),
            (
                json!({"availability": {"hours": [{"day": "funday", "open": "09:00", "close": "17:00"}]}}),
                "day",
            ),
            (
                json!({"availability": {"mode": "business_hours", "hours": []}}),
                "hours",
            ),
            (json!({"availability": {"mode": "sometimes"}}), "mode"),
        ] {
            let e = parse(&doc).unwrap_err();
            assert!(e.contains(field), "{doc}: {e}");
        }
    }

    #[test]
    fn origins_are_normalised() {
        let s = parse(&json!({"allowed_origins": [
            "HTTPS://WWW.Example.com/", "https://www.example.com:443", "http://localhost:3000"
        ]}))
        .unwrap();
        assert_eq!(
            s.allowed_origins,
            vec!["https://www.example.com", "http://localhost:3000"]
        );
        assert!(origin_allowed(&s, Some("https://www.example.com")));
        assert!(origin_allowed(&s, Some("http://localhost:3000")));
        assert!(!origin_allowed(&s, Some("http://localhost:3001")));
        assert!(!origin_allowed(&s, Some("https://evil.example.com")));
        assert!(!origin_allowed(&s, Some("null")));
        assert!(origin_allowed(&s, None));
        assert!(origin_allowed(
            &ChatSettings::default(),
            Some("https://any.site")
        ));
    }

    #[test]
    fn hhmm() {
        assert_eq!(parse_hhmm("00:00"), Some(0));
        assert_eq!(parse_hhmm("09:30"), Some(570));
        assert_eq!(parse_hhmm("24:00"), Some(1440));
        assert_eq!(parse_hhmm("24:01"), None);
        assert_eq!(parse_hhmm("9:30"), None);
        assert_eq!(parse_hhmm("09:60"), None);
    }
}
